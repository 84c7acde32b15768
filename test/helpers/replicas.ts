import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { TOKEN_ENTRIES } from "./fixtures.js";
import { scratchDatabase } from "./postgres.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** One server process (`node dist/main.js`). */
export interface Replica {
  readonly name: string;
  readonly url: string;
  readonly process: ChildProcess;
}

export interface Replicas {
  /**
   * Starts `node dist/main.js` on the shared database with the fixture tokens; resolves with its
   * URL once it logs that it listens, rejects (with its output) if it exits first. `env`
   * overrides configuration variables; `name` only labels it in errors.
   */
  start(options?: { name?: string; env?: Record<string, string> }): Promise<Replica>;
  /**
   * Kills (SIGKILL) every replica still running and waits for them to exit, then drops the
   * database and removes the token file.
   */
  stopAll(): Promise<void>;
}

/** Replicas of one server on a scratch PostgreSQL database, all reading one token file. */
export async function createReplicas(): Promise<Replicas> {
  const db = await scratchDatabase();
  const dir = mkdtempSync(join(tmpdir(), "events-replicas-"));
  const tokensFile = join(dir, "tokens.json");
  writeFileSync(tokensFile, JSON.stringify({ tokens: TOKEN_ENTRIES }));
  const processes: ChildProcess[] = [];
  return {
    start({ name = "", env = {} } = {}) {
      const child = spawn(process.execPath, ["dist/main.js"], {
        cwd: ROOT,
        env: {
          PATH: process.env.PATH ?? "",
          PORT: "0",
          HOST: "127.0.0.1",
          AUTH_TOKENS_FILE: tokensFile,
          DATABASE_URL: db.url,
          SHUTDOWN_TIMEOUT_MS: "2000",
          PUBLISH_MAX_EVENTS_PER_SECOND: "0",
          ...env,
        },
        stdio: ["ignore", "pipe", "pipe"],
      });
      processes.push(child);
      let output = "";
      child.stderr?.on("data", (d: Buffer) => {
        output += d.toString();
      });
      return new Promise((resolve, reject) => {
        child.stdout?.on("data", (d: Buffer) => {
          output += d.toString();
          const m = /"port":(\d+).*"msg":"listening"/.exec(output);
          if (m) resolve({ name, url: `http://127.0.0.1:${m[1]}`, process: child });
        });
        child.once("exit", (code) =>
          reject(new Error(`replica${name && ` ${name}`} exited ${code}: ${output}`)),
        );
      });
    },
    async stopAll() {
      const running = processes.filter((p) => p.exitCode === null && p.signalCode === null);
      const exited = running.map((p) => once(p, "exit"));
      for (const p of running) p.kill("SIGKILL");
      await Promise.all(exited);
      await db.drop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
