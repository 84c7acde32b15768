/**
 * The robustness suite: three replicas on a PostgreSQL of its own behind deploy/haproxy.cfg,
 * publishers (with keys that retry, and without), watchers of every kind, feed consumers that
 * resume, a seeded schedule of faults (kill -9, SIGTERM and restart, PostgreSQL backends
 * terminated, PostgreSQL restarted, PostgreSQL unreachable without a reset, slow and vanishing
 * clients), then a checker over the recorded history against docs/guarantees.md.
 *
 *   npm run robustness                              # a fresh seed, 60 s
 *   npm run robustness -- --seed 42 --duration 10m  # reproduce, or run longer
 *
 * `--reporter…` and `--outputFile…` options are passed on to vitest (CI writes a JSON report).
 *
 * Prints the seed first; each violation is printed with the command that reproduces it (the
 * schedule of faults and the clients' choices follow from the seed; timing does not). Exits
 * non-zero on any violation. Needs haproxy and PostgreSQL's server binaries (initdb, pg_ctl).
 */
import { spawnSync } from "node:child_process";
import { randomInt } from "node:crypto";
import { fileURLToPath } from "node:url";

function durationMs(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (m === null) throw new Error(`--duration: expected e.g. 60s, 10m or 90000ms, got "${text}"`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3600_000 }[(m[2] ?? "s") as "ms" | "s" | "m" | "h"];
  return Math.round(Number(m[1]) * unit);
}

let seed = randomInt(1, 2_147_483_646);
let duration = 60_000;
/** vitest's reporter options, passed on as given (CI asks for a JSON report). */
const reporting: string[] = [];
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  const arg = args[i] as string;
  if (arg.startsWith("--reporter") || arg.startsWith("--outputFile")) {
    reporting.push(arg);
    continue;
  }
  const [flag, inline] = arg.split("=", 2);
  const value = inline ?? args[++i];
  if (value === undefined) throw new Error(`${flag}: a value is required`);
  if (flag === "--seed") seed = Number(value);
  else if (flag === "--duration") duration = durationMs(value);
  else throw new Error(`unknown option ${flag} (use --seed N and --duration 60s)`);
}
if (!Number.isInteger(seed) || seed < 1) throw new Error("--seed: a positive integer");

process.stdout.write(`robustness: seed ${seed}, duration ${duration / 1000} s\n`);
const root = fileURLToPath(new URL("..", import.meta.url));
const result = spawnSync(
  process.execPath,
  [
    "node_modules/vitest/vitest.mjs",
    "run",
    "--config",
    "test/robustness/vitest.config.ts",
    ...reporting,
  ],
  {
    cwd: root,
    stdio: "inherit",
    env: {
      ...process.env,
      ROBUSTNESS_SEED: String(seed),
      ROBUSTNESS_DURATION_MS: String(duration),
    },
  },
);
if (result.status !== 0) {
  process.stdout.write(
    `robustness: FAILED with seed ${seed}; reproduce: npm run robustness -- --seed ${seed} --duration ${duration / 1000}s\n`,
  );
}
process.exit(result.status ?? 1);
