/**
 * The README and docs/*.md, run as a new user would: every ```bash block, in order, on a copy of
 * this checkout (its files as they are, node_modules linked), against the servers the blocks
 * themselves start; what the blocks print is compared with the ```text blocks that show it.
 *
 * A block's info string says how it runs (GitHub shows only the language):
 *
 *   ```bash                  runs to its end and must exit 0
 *   ```bash background       keeps running, like a command in a terminal of its own (a server, a
 *                            watch); the next block runs beside it. It gets Ctrl-C (SIGINT to its
 *                            process group) when its output has been checked, when a later block
 *                            says stop=, or when the page ends; it must not end with an error
 *                            before that.
 *     name=X                 its name, for expect=X and stop=X
 *     wait="text"            do not go on before its output holds the text (wait2= a second one)
 *     stream                 do not go on before the server it calls holds one more subscription
 *                            (from /metrics): a watch must be open before the publish it shows
 *     needs=cmd              skipped, with a message, when `cmd` is not on PATH
 *   ```bash stop=X,Y         Ctrl-C the background blocks X and Y first, and wait for their end
 *   ```bash no-test          not run; listed in NOT_RUN with the reason
 *   ```text expect=X         each line must be a line of X's output (stdout or stderr), with "…"
 *                            standing for any text and outer spaces ignored; a background X has
 *                            20 s to print it
 *
 * The only changes made to the commands: ports 8080, 8081, 8082 and 9090 become free ports (PORT and
 * CLUSTER_PORT are set to the first one), and the database `events` gets a unique name (dropped
 * at the end), so that the test runs beside other servers and test runs on this machine. Pages
 * under docs/ assume the quick start's dev server: the test starts it (`npm run serve`, on a
 * fresh DATA_DIR, after the README's blocks built dist/).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../scripts/cluster.js";
import { TEST_DATABASE_URL } from "./helpers/postgres.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const PAGES = [
  "README.md",
  "docs/protocols.md",
  "docs/access.md",
  "docs/feed.md",
  "docs/audit.md",
  "docs/operations.md",
  "docs/scaling.md",
  "docs/architecture.md",
  "docs/proxies.md",
  "docs/sdks.md",
  "docs/security.md",
  "docs/guarantees.md",
];

/** Blocks marked no-test, by page and first line, and why they are not run here. */
const NOT_RUN: Record<string, string> = {
  "docs/proxies.md: EVENTS_LISTEN=:8080 EVENTS_SERVER=127.0.0.1:9090 caddy run --config deploy/Caddyfile":
    "binds every interface; npm run test:proxies runs deploy/Caddyfile as shipped, with each client kind through it",
  "README.md: npm ci":
    "the test copies this checkout, whose node_modules `npm ci` installed (CI runs it first)",
  "README.md: docker build -t gitpod-event-server .":
    "needs a Docker engine; .ci/docker-smoke.sh runs the same commands in CI",
  "README.md: npm test              # the whole suite (PostgreSQL on 127.0.0.1:5432), this README's commands included":
    "the development commands: CI (.ci/run) runs each of them",
  "docs/operations.md: grpcurl -plaintext 127.0.0.1:8080 list":
    "grpcurl is a separate Go program that npm ci does not install",
  "docs/scaling.md: npm run bench -- --only=replicas                          # 2 and 3 replicas, 3 rounds (~4 min)":
    "the benchmark takes minutes; it is not part of npm test",
};

const FOREGROUND_TIMEOUT_MS = 90_000;
const WAIT_TIMEOUT_MS = 60_000;
const EXPECT_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 15_000;

interface Fence {
  readonly lang: string;
  readonly attrs: ReadonlyMap<string, string>;
  readonly flags: ReadonlySet<string>;
  readonly body: string;
  readonly line: number;
}

/** Every fenced block of a Markdown page, with its info string split into flags and attributes. */
function fences(markdown: string): Fence[] {
  const out: Fence[] = [];
  const lines = markdown.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S+)(.*)$/.exec(lines[i] ?? "");
    if (!open) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !(lines[i] ?? "").startsWith("```"); i++)
      body.push(lines[i] ?? "");
    const attrs = new Map<string, string>();
    const flags = new Set<string>();
    for (const m of (open[2] ?? "").matchAll(/(\w[\w-]*)(?:=("[^"]*"|\S+))?/g)) {
      if (m[2] === undefined) flags.add(m[1] ?? "");
      else attrs.set(m[1] ?? "", m[2].replace(/^"|"$/g, ""));
    }
    out.push({ lang: open[1] ?? "", attrs, flags, body: body.join("\n"), line: start + 1 });
  }
  return out;
}

/** A block's process: its output so far and how it ended. */
interface Run {
  readonly name: string;
  readonly child: ChildProcess;
  stdout: string;
  stderr: string;
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  stopped: boolean;
  readonly ended: Promise<void>;
}

function lineMatcher(expected: string): RegExp {
  const parts = expected.trim().split("…");
  return new RegExp(`^${parts.map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join(".*")}$`);
}

/** The expected lines of `expected` that no line of the run's output matches. */
function missing(run: Run, expected: string): string[] {
  const lines = `${run.stdout}\n${run.stderr}`.split(/[\r\n]+/).map((l) => l.trim());
  return expected
    .split("\n")
    .filter((l) => l.trim() !== "")
    .filter((l) => !lines.some((line) => lineMatcher(l).test(line)));
}

async function until(what: () => boolean | Promise<boolean>, ms: number, why: () => string) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await what()) return;
    if (Date.now() > deadline) throw new Error(why());
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function subscriptions(port: number): Promise<number> {
  try {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const m = /^eventserver_bus_subscribers (\d+)/m.exec(text);
    return m ? Number(m[1]) : -1;
  } catch {
    return -1;
  }
}

function onPath(command: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${command}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

describe("the README and docs/ run verbatim, in order", () => {
  let work = "";
  const ports = new Map<string, number>();
  const database = `eventserver_docs_${process.pid}_${Date.now().toString(36)}`;
  const runs = new Map<string, Run>();
  /** Every block that ran, by name, with its output. */
  const finished = new Map<string, Run>();
  const env: NodeJS.ProcessEnv = { ...process.env };

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), "eventserver-docs-"));
    // The checkout's own files, committed or not, as a fresh clone would have them.
    const files = execFileSync("git", ["ls-files", "-co", "--exclude-standard", "-z"], {
      cwd: ROOT,
      encoding: "utf8",
    })
      .split("\0")
      .filter((f) => f !== "");
    for (const f of files) {
      mkdirSync(join(work, dirname(f)), { recursive: true });
      try {
        cpSync(join(ROOT, f), join(work, f));
      } catch {} // a file listed but deleted in the working tree
    }
    symlinkSync(join(ROOT, "node_modules"), join(work, "node_modules"), "dir");
    for (const p of ["8080", "8081", "8082", "9090"]) ports.set(p, await freePort());
    Object.assign(env, {
      PORT: String(ports.get("8080")),
      CLUSTER_PORT: String(ports.get("8080")),
      LOG_LEVEL: "info",
      NODE_ENV: "",
      FORCE_COLOR: "0",
      NO_COLOR: "1",
    });
    for (const k of ["AUTH_TOKENS_FILE", "AUTH_JWT_SECRET", "AUTH_JWKS_URL", "DATABASE_URL"]) {
      delete env[k];
    }
  });

  afterAll(async () => {
    await stopAll();
    const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    await admin.end();
    if (work !== "") rmSync(work, { recursive: true, force: true });
  }, 60_000);

  /** The block as the test runs it: the ports and the database name made its own. */
  function localize(text: string): string {
    return text
      .replace(/\b(8080|8081|8082|9090)\b/g, (p) => String(ports.get(p)))
      .replace(/:5432\/events\b/g, `:5432/${database}`)
      .replace(/CREATE DATABASE events\b/g, `CREATE DATABASE ${database}`);
  }

  function start(name: string, script: string, extraEnv: NodeJS.ProcessEnv = {}): Run {
    const child = spawn("bash", ["-c", script], {
      cwd: work,
      env: { ...env, ...extraEnv },
      detached: true, // its own process group, as a terminal's foreground job
      stdio: ["ignore", "pipe", "pipe"],
    });
    const run: Run = {
      name,
      child,
      stdout: "",
      stderr: "",
      exit: undefined,
      stopped: false,
      ended: once(child, "exit").then(([code, signal]) => {
        run.exit = { code: code as number | null, signal: signal as NodeJS.Signals | null };
      }),
    };
    child.stdout?.on("data", (d: Buffer) => {
      run.stdout += d.toString();
    });
    child.stderr?.on("data", (d: Buffer) => {
      run.stderr += d.toString();
    });
    runs.set(name, run);
    finished.set(name, run);
    return run;
  }

  function describeRun(run: Run): string {
    const tail = (s: string) => s.split("\n").slice(-40).join("\n");
    return `[${run.name}] exit ${JSON.stringify(run.exit)}\n--- stdout\n${tail(run.stdout)}\n--- stderr\n${tail(run.stderr)}`;
  }

  /** Ctrl-C, as a user stops a command in a terminal; SIGKILL if it does not end in time. */
  async function stop(run: Run): Promise<void> {
    if (run.exit === undefined && run.child.pid !== undefined) {
      run.stopped = true;
      try {
        process.kill(-run.child.pid, "SIGINT");
      } catch {}
      const timer = setTimeout(() => {
        try {
          if (run.child.pid !== undefined) process.kill(-run.child.pid, "SIGKILL");
        } catch {}
      }, STOP_TIMEOUT_MS);
      await run.ended;
      clearTimeout(timer);
    }
    runs.delete(run.name);
  }

  async function stopAll(): Promise<void> {
    for (const run of [...runs.values()].reverse()) await stop(run);
  }

  /** Fails when a background block ended by itself with an error. */
  function assertAlive(): void {
    for (const run of runs.values()) {
      if (run.exit !== undefined && !run.stopped && run.exit.code !== 0) {
        throw new Error(`a background block ended with an error\n${describeRun(run)}`);
      }
    }
  }

  async function runPage(page: string): Promise<{ ran: number; checked: number }> {
    try {
      return await runBlocks(page);
    } finally {
      await stopAll(); // what a failed page left running
    }
  }

  async function runBlocks(page: string): Promise<{ ran: number; checked: number }> {
    const blocks = fences(readFileSync(join(ROOT, page), "utf8"));
    let ran = 0;
    let checked = 0;
    let last: Run | undefined;
    for (const [index, block] of blocks.entries()) {
      const where = `${page}:${block.line}`;
      if (block.lang === "text" && block.attrs.has("expect")) {
        const name = block.attrs.get("expect") ?? "";
        const run = runs.get(name) ?? (last?.name === name ? last : undefined);
        if (!run) throw new Error(`${where}: expect=${name}, but no block of that name ran`);
        const expected = localize(block.body);
        await until(
          () => missing(run, expected).length === 0 || run.exit !== undefined,
          EXPECT_TIMEOUT_MS,
          () => `${where}: not printed: ${missing(run, expected).join(" | ")}\n${describeRun(run)}`,
        );
        const lost = missing(run, expected);
        if (lost.length > 0) {
          throw new Error(`${where}: not printed: ${lost.join(" | ")}\n${describeRun(run)}`);
        }
        checked++;
        if (runs.has(run.name)) await stop(run); // seen what the page shows: Ctrl-C
        continue;
      }
      if (block.lang !== "bash") continue;
      const first = block.body.split("\n")[0] ?? "";
      if (block.flags.has("no-test")) {
        expect(
          NOT_RUN[`${page}: ${first}`],
          `${where}: a no-test block not in NOT_RUN`,
        ).toBeDefined();
        continue;
      }
      const needs = block.attrs.get("needs");
      if (needs !== undefined && !onPath(needs)) {
        console.warn(`${where}: skipped, ${needs} is not installed`);
        continue;
      }
      for (const name of (block.attrs.get("stop") ?? "").split(",").filter((n) => n !== "")) {
        const run = runs.get(name);
        if (!run) throw new Error(`${where}: stop=${name}, but nothing of that name runs`);
        assertAlive();
        await stop(run);
      }
      assertAlive();
      const script = localize(block.body);
      const name = block.attrs.get("name") ?? `${page}#${index}`;
      if (!block.flags.has("background")) {
        const run = start(name, script);
        const timer = setTimeout(() => {
          if (run.child.pid !== undefined) process.kill(-run.child.pid, "SIGKILL");
        }, FOREGROUND_TIMEOUT_MS);
        await run.ended;
        clearTimeout(timer);
        runs.delete(name);
        if (run.exit?.code !== 0) throw new Error(`${where}: failed\n${describeRun(run)}`);
        last = run;
        ran++;
        continue;
      }
      const port = Number(/127\.0\.0\.1:(\d+)/.exec(script)?.[1] ?? ports.get("8080"));
      const before = block.flags.has("stream") ? await subscriptions(port) : 0;
      const run = start(name, script);
      last = run;
      ran++;
      for (const key of ["wait", "wait2"]) {
        const text = block.attrs.get(key);
        if (text === undefined) continue;
        const count = key === "wait2" ? 2 : 1;
        await until(
          () => `${run.stdout}${run.stderr}`.split(text).length > count || run.exit !== undefined,
          WAIT_TIMEOUT_MS,
          () => `${where}: "${text}" not printed\n${describeRun(run)}`,
        );
      }
      if (block.flags.has("stream")) {
        await until(
          async () => (await subscriptions(port)) > before || run.exit !== undefined,
          WAIT_TIMEOUT_MS,
          () => `${where}: no stream opened on port ${port}\n${describeRun(run)}`,
        );
      }
      if (run.exit !== undefined && run.exit.code !== 0) {
        throw new Error(`${where}: ended with an error\n${describeRun(run)}`);
      }
    }
    assertAlive();
    await stopAll();
    return { ran, checked };
  }

  it("README.md: the quick start, a token file, PostgreSQL and two replicas", async () => {
    const { ran, checked } = await runPage("README.md");
    expect(ran).toBeGreaterThanOrEqual(12);
    expect(checked).toBeGreaterThanOrEqual(4);
  }, 150_000);

  for (const page of PAGES.slice(1)) {
    const runnable = fences(readFileSync(join(ROOT, page), "utf8")).some(
      (f) => f.lang === "bash" && !f.flags.has("no-test"),
    );
    if (!runnable) {
      it(`${page}: has no block to run, and its no-test blocks are listed`, async () => {
        await runPage(page);
      });
      continue;
    }
    it(`${page}: against the quick start's dev server`, async () => {
      // The dev server of the quick start, built by the README's blocks, on fresh data.
      const server = start(`${page} dev server`, "npm run serve", {
        DATA_DIR: mkdtempSync(join(work, "data-")),
      });
      await until(
        () => server.stdout.includes("Dev mode") || server.exit !== undefined,
        WAIT_TIMEOUT_MS,
        () => describeRun(server),
      );
      expect(server.exit).toBeUndefined();
      await runPage(page);
      await stopAll();
      const cluster = finished.get("cluster");
      if (page === "docs/operations.md" && cluster !== undefined) {
        // npm run cluster: Ctrl-C drops its throwaway database.
        const name = /^database +postgres:\/\/\S+\/(\w+)/m.exec(cluster.stdout)?.[1];
        expect(name, describeRun(cluster)).toBeDefined();
        const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
        await admin.connect();
        const left = await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [name]);
        await admin.end();
        expect(left.rowCount, `${name} left behind after Ctrl-C`).toBe(0);
        // npm itself ends by the SIGINT it got, as in a terminal; never by the SIGKILL of stop().
        expect(cluster.exit?.signal, describeRun(cluster)).not.toBe("SIGKILL");
        expect(cluster.stdout).toContain("stopping...");
      }
    }, 120_000);
  }
});
