/**
 * A local cluster: a throwaway PostgreSQL database, three replicas of the server on it, and
 * HAProxy in front of them with deploy/haproxy.cfg (the same file the cluster tests use).
 *
 *   npm run cluster            # then watch and publish through http://127.0.0.1:8080
 *   CLUSTER_PORT=9090 npm run cluster
 *
 * Needs `haproxy` (apt-get install haproxy) and PostgreSQL (CLUSTER_DATABASE_URL, default
 * postgres://postgres@127.0.0.1:5432/postgres: a database is created there and dropped at the
 * end). Ctrl-C stops everything. Without AUTH_TOKENS_FILE the replicas run in dev mode, with the
 * dev tokens of the README.
 *
 * The cluster tests import `startCluster` from here.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { createServer } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import pg from "pg";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

export interface ClusterOptions {
  /** The load balancer's port (0: any free one). */
  readonly port?: number;
  readonly replicas?: number;
  /** The PostgreSQL server on which a scratch database is created. */
  readonly adminDatabaseUrl?: string;
  /** Environment of every replica, on top of the cluster's own settings. */
  readonly env?: Readonly<Record<string, string>>;
  /** Node options of the replicas (npm start's by default). */
  readonly nodeArgs?: readonly string[];
  /** Where the replicas' and HAProxy's output goes (default: nowhere). */
  readonly log?: (line: string) => void;
}

export interface Replica {
  readonly port: number;
  readonly url: string;
  /** Running now. */
  readonly process: ChildProcess | undefined;
}

export interface Cluster {
  /** The load balancer, e.g. http://127.0.0.1:8080. */
  readonly url: string;
  readonly databaseUrl: string;
  readonly replicas: readonly Replica[];
  /** Starts replica `i` (again), resolves once it is ready. */
  start(i: number): Promise<void>;
  /** SIGTERM: the replica drains and exits; resolves when it has exited. */
  stop(i: number): Promise<void>;
  /** SIGKILL: the replica dies at once; resolves when it is gone. */
  kill(i: number): Promise<void>;
  /** Resolves when HAProxy routes to replica `i` again, or no longer (`up` false). */
  balancerSees(i: number, up: boolean): Promise<void>;
  /** Stops everything and drops the database. */
  close(): Promise<void>;
  /**
   * What went on lately, for a failing test to print: the last lines of every replica's and
   * HAProxy's output (kept whether or not `log` is set), each replica's process state, and
   * HAProxy's view of each replica (status, last check and its answer).
   */
  report(): Promise<string>;
}

/** Lines of output kept for `report()`, all processes together. */
const RECENT_LINES = 400;

/** A free TCP port on 127.0.0.1 (released before it is used: fine on a machine of our own). */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, "close");
  return port;
}

async function until(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs = 20_000,
  explain?: () => Promise<string>,
) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await sleep(100);
  }
  const why = explain === undefined ? "" : await explain().catch((err: unknown) => String(err));
  throw new Error(`timed out waiting for ${what}${why === "" ? "" : `\n${why}`}`);
}

/**
 * Sends `signal` to `child` and resolves once it has exited; at once if it has exited already,
 * by a signal too (Ctrl-C in a terminal signals the whole process group): waiting for an 'exit'
 * event that has fired already would leave nothing to keep Node running, and it would quit
 * before the database is dropped.
 */
async function stopProcess(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit");
  child.kill(signal);
  await exited;
}

async function ready(url: string): Promise<boolean> {
  const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(1000) });
  return res.status === 200;
}

/** What `/readyz` answers now, as one line (for failure reports). */
async function readyz(url: string): Promise<string> {
  const started = performance.now();
  try {
    const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2000) });
    const ms = Math.round(performance.now() - started);
    return `${res.status} ${(await res.text()).trim()} (${ms} ms)`;
  } catch (err) {
    return `no answer: ${String(err)}`;
  }
}

export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const recent: string[] = [];
  const log = (line: string) => {
    recent.push(`${new Date().toISOString()} ${line}`);
    if (recent.length > RECENT_LINES) recent.splice(0, recent.length - RECENT_LINES);
    options.log?.(line);
  };
  const admin =
    options.adminDatabaseUrl ??
    process.env.CLUSTER_DATABASE_URL ??
    "postgres://postgres@127.0.0.1:5432/postgres";
  const name = `eventserver_cluster_${randomBytes(5).toString("hex")}`;
  const client = new pg.Client({ connectionString: admin });
  await client.connect();
  await client.query(`CREATE DATABASE ${name}`);
  await client.end();
  const dbUrl = new URL(admin);
  dbUrl.pathname = `/${name}`;
  const databaseUrl = dbUrl.toString();

  const count = options.replicas ?? 3;
  const ports: number[] = [];
  for (let i = 0; i < count; i++) ports.push(await freePort());
  const lbPort = options.port || (await freePort());
  const processes: (ChildProcess | undefined)[] = new Array(count).fill(undefined);
  const children = new Set<ChildProcess>();

  const pipe = (child: ChildProcess, tag: string) => {
    for (const s of [child.stdout, child.stderr]) {
      s?.setEncoding("utf8");
      s?.on("data", (d: string) => {
        for (const line of d.split("\n")) if (line !== "") log(`${tag} ${line}`);
      });
    }
  };

  const start = async (i: number) => {
    const child = spawn(
      process.execPath,
      [...(options.nodeArgs ?? ["--max-semi-space-size=8"]), "dist/main.js"],
      {
        cwd: ROOT,
        env: {
          PATH: process.env.PATH ?? "",
          HOST: "127.0.0.1",
          SHUTDOWN_TIMEOUT_MS: "3000",
          ...options.env,
          PORT: String(ports[i]),
          DATABASE_URL: databaseUrl,
        },
        stdio: ["ignore", "pipe", "pipe"],
        // A process group of its own: Ctrl-C in the terminal reaches only this script, which
        // then stops the replicas in order (drain) and drops the database.
        detached: true,
      },
    );
    children.add(child);
    child.once("exit", () => children.delete(child));
    processes[i] = child;
    pipe(child, `[r${i + 1}]`);
    await until(`replica ${i + 1} to be ready`, () => ready(`http://127.0.0.1:${ports[i]}`));
  };
  const exit = async (i: number, signal: NodeJS.Signals) => {
    const child = processes[i];
    if (child === undefined) return;
    processes[i] = undefined;
    await stopProcess(child, signal);
  };

  const haproxyEnv: Record<string, string> = {
    PATH: process.env.PATH ?? "",
    LB_BIND: `127.0.0.1:${lbPort}`,
  };
  ports.forEach((p, i) => {
    haproxyEnv[`REPLICA_${i + 1}`] = `127.0.0.1:${p}`;
  });
  // HAProxy's statistics socket tells which replicas it routes to.
  const statsPort = await freePort();
  haproxyEnv.LB_STATS_BIND = `127.0.0.1:${statsPort}`;

  /** HAProxy's statistics rows of the replicas, as `r1 UP L7OK 200 …` lines. */
  const balancerView = async (): Promise<string> => {
    const csv = await (await fetch(`http://127.0.0.1:${statsPort}/stats;csv`)).text();
    const [header = "", ...rows] = csv.split("\n");
    const columns = header.replace(/^# /, "").split(",");
    const pick = (row: string[], name: string) => row[columns.indexOf(name)] ?? "";
    return rows
      .map((r) => r.split(","))
      .filter((r) => r[0] === "replicas" && r[1] !== "BACKEND")
      .map((r) =>
        [
          `${r[1]} ${pick(r, "status")}`,
          `check ${pick(r, "check_status")} ${pick(r, "check_code")} "${pick(r, "check_desc")}"`,
          `last change ${pick(r, "lastchg")} s ago, ${pick(r, "chkfail")} failed checks`,
        ].join(", "),
      )
      .join("\n");
  };
  const processView = () =>
    processes
      .map((child, i) => {
        const state =
          child === undefined
            ? "not running (stopped by the cluster)"
            : child.exitCode !== null || child.signalCode !== null
              ? `EXITED (code ${child.exitCode}, signal ${child.signalCode})`
              : `running, pid ${child.pid}`;
        return `replica ${i + 1} (port ${ports[i]}): ${state}`;
      })
      .join("\n");
  const report = async () =>
    [
      "--- replicas",
      processView(),
      "--- HAProxy's view",
      await balancerView().catch((err: unknown) => `(stats unavailable: ${String(err)})`),
      `--- the last ${recent.length} lines of output`,
      ...recent,
    ].join("\n");

  let haproxy: ChildProcess | undefined;
  const cluster: Cluster = {
    url: `http://127.0.0.1:${lbPort}`,
    databaseUrl,
    get replicas() {
      return ports.map((port, i) => ({
        port,
        url: `http://127.0.0.1:${port}`,
        process: processes[i],
      }));
    },
    start,
    stop: (i) => exit(i, "SIGTERM"),
    kill: (i) => exit(i, "SIGKILL"),
    async balancerSees(i, up) {
      await until(
        `HAProxy to see replica ${i + 1} ${up ? "up" : "down"}`,
        async () => {
          const csv = await (await fetch(`http://127.0.0.1:${statsPort}/stats;csv`)).text();
          const row = csv.split("\n").find((l) => l.startsWith(`replicas,r${i + 1},`));
          const status = row?.split(",")[17] ?? "";
          return up ? status === "UP" : status.startsWith("DOWN");
        },
        20_000,
        async () =>
          [
            processView(),
            await balancerView(),
            `/readyz of replica ${i + 1}: ${await readyz(`http://127.0.0.1:${ports[i]}`)}`,
          ].join("\n"),
      );
    },
    report,
    async close() {
      await Promise.all(ports.map((_, i) => exit(i, "SIGTERM")));
      for (const child of children) child.kill("SIGKILL");
      if (haproxy !== undefined) await stopProcess(haproxy, "SIGTERM");
      const c = new pg.Client({ connectionString: admin });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };

  try {
    // The first replica migrates the database; the others start once it is ready.
    await start(0);
    await Promise.all(ports.slice(1).map((_, i) => start(i + 1)));
    haproxy = spawn(
      "haproxy",
      ["-db", "-f", `${ROOT}deploy/haproxy.cfg`, "-f", `${ROOT}deploy/haproxy-stats.cfg`],
      {
        env: haproxyEnv,
        stdio: ["ignore", "pipe", "pipe"],
        detached: true,
      },
    );
    children.add(haproxy);
    pipe(haproxy, "[haproxy]");
    for (let i = 0; i < count; i++) await cluster.balancerSees(i, true);
  } catch (err) {
    await cluster.close();
    throw err;
  }
  return cluster;
}

// ---- npm run cluster --------------------------------------------------------------------------

if (import.meta.main) {
  const port = Number(process.env.CLUSTER_PORT ?? 8080);
  const verbose = process.env.CLUSTER_LOG === "1";
  process.stdout.write("starting a PostgreSQL database, 3 replicas and HAProxy...\n");
  const cluster = await startCluster({
    port,
    ...(verbose && { log: (line) => process.stdout.write(`${line}\n`) }),
    env: Object.fromEntries(
      Object.entries(process.env).filter(
        (e): e is [string, string] =>
          e[1] !== undefined && /^(AUTH_|WATCH_|FEED_|JSONL_|LOG_LEVEL)/.test(e[0]),
      ),
    ),
  });
  process.stdout.write(
    [
      "",
      `load balancer  ${cluster.url}  (HTTP/1.1 and h2c; deploy/haproxy.cfg)`,
      ...cluster.replicas.map((r, i) => `replica ${i + 1}      ${r.url}`),
      `database       ${cluster.databaseUrl}  (dropped on exit)`,
      "",
      "Watch through the balancer (dev tokens unless AUTH_TOKENS_FILE is set):",
      `  curl -N -X POST ${cluster.url}/api/gitpod.v1.EventService/WatchEvents \\`,
      "    -H 'Authorization: Bearer dev-admin-token' -H 'Content-Type: application/jsonl' -d '{}'",
      `Publish: EVENTS_URL=${cluster.url} npm run demo`,
      "Ctrl-C stops everything.",
      "",
    ].join("\n"),
  );
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    process.stdout.write("stopping...\n");
    cluster.close().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`${(err as Error).message}\n`);
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}
