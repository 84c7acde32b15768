import { execFile } from "node:child_process";
import { chmodSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import { freePort } from "../../scripts/cluster.js";
import { type ProxiedConnection, TcpProxy } from "../helpers/tcp-proxy.js";

const run = promisify(execFile);

/**
 * A PostgreSQL cluster of the suite's own (initdb into a temporary folder), so that it may be
 * stopped, restarted and have its backends terminated without touching anyone else's. Runs as
 * the `postgres` user when started as root (PostgreSQL refuses to run as root).
 */
export interface OwnPostgres {
  readonly port: number;
  /** postgres://postgres@127.0.0.1:port/postgres */
  readonly url: string;
  /** pg_ctl restart: `fast` (clean shutdown) or `immediate` (as a crash; recovery at start). */
  restart(mode: "fast" | "immediate"): Promise<void>;
  /** Terminates every backend of `database` (pg_terminate_backend), as an operator might. */
  terminateBackends(database: string): Promise<number>;
  close(): Promise<void>;
}

function postgresBin(): string {
  const root = "/usr/lib/postgresql";
  const versions = readdirSync(root).sort((a, b) => Number(b) - Number(a));
  if (versions[0] === undefined) throw new Error(`no PostgreSQL under ${root}`);
  return join(root, versions[0], "bin");
}

export async function startOwnPostgres(): Promise<OwnPostgres> {
  const bin = postgresBin();
  const dir = mkdtempSync(join(tmpdir(), "robustness-pg-"));
  chmodSync(dir, 0o777);
  const data = join(dir, "data");
  const asRoot = process.getuid?.() === 0;
  const as = async (cmd: string, args: string[]) =>
    asRoot
      ? run("runuser", ["-u", "postgres", "--", join(bin, cmd), ...args])
      : run(join(bin, cmd), args);
  await as("initdb", ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]);
  const port = await freePort();
  const options = [
    `-p ${port}`,
    `-k ${dir}`,
    "-c listen_addresses=127.0.0.1",
    // Durability against a crash of the process is what the faults test; the machine's own
    // crash is not, and fsync would only slow the run down.
    "-c fsync=off",
    "-c max_connections=200",
  ].join(" ");
  await as("pg_ctl", ["-D", data, "-o", options, "-l", join(dir, "log"), "-w", "start"]);
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  return {
    port,
    url,
    async restart(mode) {
      // With its log file again: without, the new postmaster would inherit pg_ctl's output, and
      // execFile would wait for it to close.
      await as("pg_ctl", [
        "-D",
        data,
        "-m",
        mode,
        "-l",
        join(dir, "log"),
        "-w",
        "-t",
        "60",
        "restart",
      ]);
    },
    async terminateBackends(database) {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        const res = await c.query(
          "SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
          [database],
        );
        return res.rows[0]?.n ?? 0;
      } finally {
        await c.end();
      }
    },
    async close() {
      await as("pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"]).catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A TCP proxy in front of PostgreSQL that can stall: while stalled it forwards nothing, either
 * way, on open and on new connections, and resets nothing (as a network that drops packets);
 * what was sent meanwhile is delivered on `resume`, as TCP would once the network is back.
 */
export class StallProxy extends TcpProxy {
  private stalled = false;
  private readonly held: { to: Socket; data: Buffer }[] = [];

  constructor(targetPort: number) {
    super({ host: "127.0.0.1", port: targetPort });
  }

  stall(): void {
    this.stalled = true;
  }

  resume(): void {
    this.stalled = false;
    for (const { to, data } of this.held.splice(0)) if (!to.destroyed) to.write(data);
  }

  protected override relay(data: Buffer, to: Socket, connection: ProxiedConnection): void {
    if (this.stalled) this.held.push({ to, data });
    else super.relay(data, to, connection);
  }
}
