import { type ChildProcess, execFileSync, fork, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as net from "node:net";
import { cpus, tmpdir } from "node:os";
import { join, resolve as resolvePath } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath, pathToFileURL } from "node:url";
import pg from "pg";
import { type DispatchResult, runDispatch } from "./dispatch.js";
import { tokenFileJson } from "./fixtures.js";
import {
  type FromLoadgen,
  type LoadgenParams,
  type ProbeData,
  SCALE_ROUND_TIMEOUT_MS,
  scaleConfirmTimeoutMs,
  scaleOpenTimeoutMs,
  type Target,
  type ToLoadgen,
} from "./protocol.js";
import {
  buildReport,
  type Outcome,
  type PersistPartInfo,
  printTables,
  type ScenarioResults,
} from "./report.js";

/**
 * The benchmark harness entry point (`npm run bench [-- --quick]`); see bench/README.md. For each
 * scenario and each server kind it starts the server in its own process, runs the load generator
 * in another, collects the figures and stops the server. Not part of `npm test`: figures are
 * printed and written to bench/results/latest.json; targets are reported, never asserted.
 */

const quick = process.argv.includes("--quick");
const HOST = "127.0.0.1";
const ROOT = fileURLToPath(new URL("../../", import.meta.url)); // dist-bench/bench -> repo
const HERE = new URL("./", import.meta.url);
const KINDS = ["ours", "limit", "peer"] as const;
/**
 * limit-batched: limit with one write per stream per publish, the ceiling (scenarios 1 and 7).
 * limit-durable: limit that appends and fdatasyncs each publish before it fans it out and
 * answers, the anchor for a server that acknowledges only what is on disk (scenarios 1 and 2).
 */
type Kind = (typeof KINDS)[number] | "limit-batched" | "limit-durable";

const clkTck = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

const tmp = mkdtempSync(join(tmpdir(), "eventserver-bench-"));
const tokensFile = join(tmp, "tokens.json");
writeFileSync(tokensFile, tokenFileJson());

/**
 * The server under test and the load generator each get a CPU of their own (taskset): on a
 * 2-core machine the scheduler otherwise moves the server, its helper threads and the load
 * generator across both cores, and the same load costs a server anywhere from 0.4 to 0.8 cores
 * from one run to the next (see bench/README.md, "Pinning"). BENCH_PIN=server:loadgen sets the
 * CPU lists (default "0:1"); BENCH_PIN=off lets them share the machine. PostgreSQL (scenario 6)
 * is never pinned.
 */
function pinning(): { server: string; loadgen: string } | undefined {
  const setting = process.env.BENCH_PIN;
  if (setting === "off") return undefined;
  if (setting === undefined || setting === "") {
    if (cpus().length < 2) return undefined;
    try {
      execFileSync("taskset", ["-c", "0", "true"], { stdio: "ignore" });
    } catch {
      return undefined; // no taskset here
    }
    return { server: "0", loadgen: "1" };
  }
  const [server, loadgen] = setting.split(":");
  return { server: server || "0", loadgen: loadgen || "1" };
}
const PIN = pinning();

/** The hard open-file limit of this process, which its children inherit (Node raises its soft limit to it). */
function openFileLimit(): number {
  try {
    const m = /^Max open files\s+\S+\s+(\S+)/m.exec(readFileSync("/proc/self/limits", "utf8"));
    return m?.[1] === "unlimited"
      ? Number.POSITIVE_INFINITY
      : Number(m?.[1]) || Number.POSITIVE_INFINITY;
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}

const openFilePrefixes = new Map<number, string[]>();
/**
 * A command prefix that starts a server with `files` open files allowed (`prlimit`), when this
 * process's limit is lower and raising it is allowed (root with CAP_SYS_RESOURCE); [] when it
 * is not needed or not allowed. Scenario 11 then opens as many JSONL streams as fit, and says so.
 */
function withOpenFiles(files: number): string[] {
  if (files <= openFileLimit()) return [];
  let prefix = openFilePrefixes.get(files);
  if (prefix === undefined) {
    const option = `--nofile=${files}:${files}`;
    try {
      execFileSync("prlimit", [option, "true"], { stdio: "ignore" });
      prefix = ["prlimit", option, "--"];
    } catch {
      prefix = [];
    }
    openFilePrefixes.set(files, prefix);
  }
  return prefix;
}

// --- servers ---------------------------------------------------------------------------------

interface Server {
  readonly kind: Kind;
  readonly child: ChildProcess;
  readonly port: number;
  readonly output: string[];
  /** ours: its DATA_DIR (the SQLite database is events.db in it). */
  readonly dataDir?: string;
  exited: boolean;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, HOST, () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

let oursRuns = 0;
let durableRuns = 0;

/**
 * The node options ours runs with in production: those of `npm start` (package.json), which
 * the Docker image's CMD repeats (a test checks that they agree).
 */
function oursNodeOptions(): string[] {
  const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
    scripts: Record<string, string>;
  };
  const m = /\bnode((?: --[^\s]+)*) dist\/main\.js/.exec(pkg.scripts.start ?? "");
  if (m === null) throw new Error("package.json: the start script does not run node dist/main.js");
  return (m[1] ?? "").split(" ").filter(Boolean);
}

/**
 * How to run a server kind. `jsonl`: limit and limit-batched are the JSONL reference server
 * (servers/limit-jsonl.ts, node:http) instead of the gRPC one (servers/limit.ts, node:http2).
 */
function serverCommand(
  kind: Kind,
  oursEnv: Record<string, string> = {},
  jsonl = false,
): { script: string; nodeOptions: string[]; env: Record<string, string> } {
  switch (kind) {
    case "ours":
      return {
        nodeOptions: oursNodeOptions(),
        // BENCH_OURS_MAIN: another build of ours (a branch, a commit) to measure instead.
        script: process.env.BENCH_OURS_MAIN ?? join(ROOT, "dist/main.js"),
        env: {
          NODE_ENV: "production",
          AUTH_TOKENS_FILE: tokensFile,
          LOG_LEVEL: "warn",
          WATCH_MAX_STREAMS_PER_SUBJECT: "100000",
          PUBLISH_MAX_EVENTS_PER_SECOND: "0",
          H2_MAX_CONCURRENT_STREAMS: "1000",
          SHUTDOWN_TIMEOUT_MS: "2000",
          // A fresh, empty store for every run (ours persists events there).
          DATA_DIR: join(tmp, `ours-data-${++oursRuns}`),
          // The part's own settings (scenario 6: the store), then BENCH_OURS_ENV (JSON): more
          // settings for ours, for experiments.
          ...oursEnv,
          ...(JSON.parse(process.env.BENCH_OURS_ENV ?? "{}") as Record<string, string>),
        },
      };
    case "limit":
    case "limit-batched":
      return {
        script: fileURLToPath(new URL(jsonl ? "servers/limit-jsonl.js" : "servers/limit.js", HERE)),
        nodeOptions: [],
        env: {
          AUTH_TOKENS_FILE: tokensFile,
          LIMIT_WRITES: kind === "limit-batched" ? "batch" : "event",
        },
      };
    case "limit-durable":
      if (jsonl) throw new Error("limit-durable speaks gRPC only");
      return {
        script: fileURLToPath(new URL("servers/limit.js", HERE)),
        nodeOptions: [],
        env: {
          AUTH_TOKENS_FILE: tokensFile,
          LIMIT_WRITES: "event",
          // A fresh log for every run, on the same file system as ours' DATA_DIR.
          LIMIT_DURABLE_FILE: join(tmp, `limit-durable-${++durableRuns}.log`),
        },
      };
    case "peer":
      return {
        script: fileURLToPath(new URL("servers/peer.js", HERE)),
        nodeOptions: [],
        env: { AUTH_TOKENS_FILE: tokensFile },
      };
  }
}

const running = new Set<ChildProcess>();
process.on("exit", () => {
  for (const c of running) c.kill("SIGKILL");
});

async function startServer(
  kind: Kind,
  oursEnv?: Record<string, string>,
  jsonl = false,
  /** Open files the server needs (scenario 11); raised with prlimit where needed and allowed. */
  openFiles = 0,
): Promise<Server> {
  const port = await freePort();
  const { script, nodeOptions, env } = serverCommand(kind, oursEnv, jsonl);
  const probeModule = pathToFileURL(fileURLToPath(new URL("servers/probe.js", HERE))).href;
  // BENCH_OURS_NODE_ARGS (BENCH_LIMIT_NODE_ARGS, …): extra node options for that server, e.g.
  // "--cpu-prof --cpu-prof-dir=/tmp/prof".
  const extra = (process.env[`BENCH_${kind.toUpperCase().replace("-", "_")}_NODE_ARGS`] ?? "")
    .split(" ")
    .filter(Boolean);
  const args = ["--expose-gc", ...nodeOptions, ...extra, "--import", probeModule, script];
  // prlimit and taskset each exec the next: the server keeps the pid the load generator reads.
  const command = [
    ...withOpenFiles(openFiles),
    ...(PIN ? ["taskset", "-c", PIN.server] : []),
    process.execPath,
    ...args,
  ];
  const child = spawn(command[0] as string, command.slice(1), {
    cwd: ROOT,
    env: { ...process.env, ...env, PORT: String(port), HOST },
    stdio: ["ignore", "pipe", "pipe", "ipc"],
  });
  running.add(child);
  const server: Server = {
    kind,
    child,
    port,
    output: [],
    exited: false,
    ...(env.DATA_DIR !== undefined && { dataDir: env.DATA_DIR }),
  };
  const keep = (chunk: Buffer) => {
    server.output.push(chunk.toString("utf8"));
    if (server.output.length > 50) server.output.shift();
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  child.once("exit", () => {
    server.exited = true;
    running.delete(child);
  });
  const deadline = performance.now() + 20_000;
  while (performance.now() < deadline && !server.exited) {
    if (await isReady(kind, port)) return server;
    await sleep(50);
  }
  await stopServer(server);
  const output = server.output.join("");
  const reason =
    output.split("\n").find((l) => /error|invalid|cannot/i.test(l)) ?? output.slice(-300);
  throw new Error(`${kind} did not become ready: ${reason.trim()}`);
}

/** ours: GET /readyz answers 200; the others listen only once they are set up. */
function isReady(kind: Kind, port: number): Promise<boolean> {
  if (kind !== "ours") {
    return new Promise((resolve) => {
      const s = net.connect({ host: HOST, port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on("error", () => resolve(false));
    });
  }
  return fetch(`http://${HOST}:${port}/readyz`).then(
    (r) => r.status === 200,
    () => false,
  );
}

/** SIGTERM (ours drains and exits, writing a --cpu-prof profile if asked), SIGKILL after 3 s. */
function stopServer(server: Server): Promise<void> {
  if (server.exited) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => server.child.kill("SIGKILL"), 3000);
    server.child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
    server.child.kill("SIGTERM");
  });
}

/** Scenario 11: starts or stops a CPU profile in the server (the probe writes it to `file`). */
function profileServer(
  server: Server,
  action: "start" | "stop",
  file: string,
): Promise<{ file: string | null; error?: string }> {
  const id = ++probeSeq;
  return new Promise((resolve) => {
    const timer = setTimeout(() => done({ file: null, error: "no answer within 60 s" }), 60_000);
    const onMessage = (m: { type?: string; id?: number; file?: string | null; error?: string }) => {
      if (m?.type === "profile-result" && m.id === id) {
        done({ file: m.file ?? null, ...(m.error !== undefined && { error: m.error }) });
      }
    };
    const done = (v: { file: string | null; error?: string }) => {
      clearTimeout(timer);
      server.child.off("message", onMessage);
      resolve(v);
    };
    server.child.on("message", onMessage);
    server.child.send({ type: "profile", id, action, file });
  });
}

let probeSeq = 0;
/** Full GC, then memory, via the probe preloaded into the server; ours also: open streams from /metrics. */
async function probeServer(server: Server): Promise<ProbeData | null> {
  const id = ++probeSeq;
  const mem = await new Promise<{ rssBytes: number; heapUsedBytes: number } | null>((resolve) => {
    const timer = setTimeout(() => done(null), 20_000);
    const onMessage = (m: {
      type?: string;
      id?: number;
      rssBytes: number;
      heapUsedBytes: number;
    }) => {
      if (m?.type === "probe-result" && m.id === id) done(m);
    };
    const done = (v: { rssBytes: number; heapUsedBytes: number } | null) => {
      clearTimeout(timer);
      server.child.off("message", onMessage);
      resolve(v);
    };
    server.child.on("message", onMessage);
    server.child.send({ type: "probe", id });
  });
  if (mem === null) return null;
  if (server.kind !== "ours") return { rssBytes: mem.rssBytes, heapUsedBytes: mem.heapUsedBytes };
  const streamsOpen = await oursMetric(server, "eventserver_streams_open");
  return {
    rssBytes: mem.rssBytes,
    heapUsedBytes: mem.heapUsedBytes,
    ...(streamsOpen !== null && { streamsOpen }),
  };
}

/** A metric of ours from GET /metrics, summed over its labels; null when unavailable. */
async function oursMetric(server: Server, name: string): Promise<number | null> {
  try {
    const text = await (await fetch(`http://${HOST}:${server.port}/metrics`)).text();
    let sum: number | null = null;
    for (const line of text.split("\n")) {
      if (line.startsWith(`${name} `) || line.startsWith(`${name}{`)) {
        sum = (sum ?? 0) + Number(line.split(" ").pop());
      }
    }
    return sum;
  } catch {
    return null;
  }
}

// --- scenario 6: the stores ------------------------------------------------------------------

/** Where scenario 6 creates its scratch databases (any database of the server to connect to). */
const ADMIN_URL = process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
let scratchSeq = 0;

async function withClient<T>(url: string, f: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  client.on("error", () => {});
  await client.connect();
  try {
    return await f(client);
  } finally {
    await client.end().catch(() => {});
  }
}

/** The scratch database in use, dropped also when the run is interrupted. */
let scratchInUse: string | undefined;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    for (const c of running) c.kill("SIGKILL");
    const name = scratchInUse;
    const exit = () => process.exit(130);
    if (name === undefined) exit();
    else dropScratchDatabase(name).then(exit, exit);
  });
}

/** A fresh, empty database for one ours process; returns its name and URL. */
async function createScratchDatabase(): Promise<{ name: string; url: string }> {
  const name = `eventserver_bench_${process.pid}_${++scratchSeq}`;
  await withClient(ADMIN_URL, (c) => c.query(`CREATE DATABASE ${name}`));
  scratchInUse = name;
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return { name, url: url.href };
}

async function dropScratchDatabase(name: string): Promise<void> {
  await withClient(ADMIN_URL, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
  if (scratchInUse === name) scratchInUse = undefined;
}

/** What the store holds after the run: the cross-check of the accepted events. */
interface StoredCounts {
  readonly events: number;
  readonly auditEntries: number;
}

function countPostgres(url: string): Promise<StoredCounts> {
  return withClient(url, async (c) => {
    const r = await c.query<{ e: string; a: string }>(
      "SELECT (SELECT count(*) FROM events) AS e, (SELECT count(*) FROM audit_log) AS a",
    );
    return { events: Number(r.rows[0]?.e), auditEntries: Number(r.rows[0]?.a) };
  });
}

function countSqlite(dataDir: string): StoredCounts {
  const db = new DatabaseSync(join(dataDir, "events.db"));
  try {
    const n = (table: string) =>
      Number((db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n);
    return { events: n("events"), auditEntries: n("audit_log") };
  } finally {
    db.close();
  }
}

// --- load generator --------------------------------------------------------------------------

async function runLoadgen(
  server: Server,
  params: LoadgenParams,
  timeoutMs: number,
  database?: string,
  replicaPorts?: readonly number[],
  /** Scenario 11: where the server's CPU profile goes, when the load generator asks for one. */
  profileFile?: string,
): Promise<Record<string, unknown>> {
  const child = fork(fileURLToPath(new URL("loadgen.js", HERE)), [], {
    cwd: ROOT,
    ...(PIN && { execPath: "taskset", execArgv: ["-c", PIN.loadgen, process.execPath] }),
    stdio: ["ignore", "pipe", "pipe", "ipc"],
  });
  running.add(child);
  const output: string[] = [];
  child.stdout?.on("data", (c: Buffer) => output.push(c.toString()));
  child.stderr?.on("data", (c: Buffer) => output.push(c.toString()));
  const target: Target = {
    host: HOST,
    port: server.port,
    serverPid: server.child.pid ?? 0,
    clkTck,
    ...(database !== undefined && { database }),
    ...(replicaPorts !== undefined && { replicaPorts }),
  };
  try {
    return await new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`load generator timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      child.on("message", (m: FromLoadgen) => {
        if (m.type === "probe") {
          void probeServer(server).then((data) => {
            const reply: ToLoadgen = { type: "probe-result", id: m.id, data };
            if (child.connected) child.send(reply);
          });
        } else if (m.type === "profile") {
          const reply = (r: { file: string | null; error?: string }) => {
            const message: ToLoadgen = { type: "profile-result", id: m.id, ...r };
            if (child.connected) child.send(message);
          };
          if (profileFile === undefined) reply({ file: null, error: "no profile file set" });
          else void profileServer(server, m.action, profileFile).then(reply);
        } else if (m.type === "result") {
          clearTimeout(timer);
          resolve(m.result);
        } else if (m.type === "error") {
          clearTimeout(timer);
          reject(new Error(m.message));
        }
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`load generator exited (${code}): ${output.join("").slice(-800)}`));
      });
      const start: ToLoadgen = { type: "start", target, params };
      child.send(start);
    });
  } finally {
    child.kill("SIGKILL");
    running.delete(child);
  }
}

// --- scenarios -------------------------------------------------------------------------------

const timing = quick
  ? { warmupMs: 1000, durationMs: 3000 }
  : { warmupMs: 2000, durationMs: 10_000 };
// BENCH_LOOP (JSON) overrides the publisher's loop settings, for experiments.
const loop = {
  batch: 100,
  inflight: 2,
  windowEvents: 500,
  ...timing,
  ...(JSON.parse(process.env.BENCH_LOOP ?? "{}") as object),
};

interface Part {
  readonly name: string;
  readonly params: LoadgenParams;
  readonly kinds: readonly Kind[];
  /**
   * Full runs repeat the part this many times (servers interleaved, so that a change in the
   * machine's load hits all of them alike) and keep, per server, the run with the median of
   * `median` (a path into the result); quick runs measure `quickRounds` times (default once).
   */
  readonly repeat?: {
    readonly rounds: number;
    readonly median: string;
    readonly quickRounds?: number;
  };
  /** Scenario 7: limit and limit-batched are the JSONL reference server (limit-jsonl.ts). */
  readonly jsonl?: boolean;
  /** More settings for ours (scenario 8: FEED_CHECKPOINT_MS). */
  readonly env?: Record<string, string>;
  /** Run ours on a fresh scratch PostgreSQL database (DATABASE_URL), as scenario 6 does. */
  readonly postgres?: boolean;
  /** Scenario 9: this many ours processes on the one scratch database (implies `postgres`). */
  readonly replicas?: number;
  /** Scenario 11: open files the server needs (raised with prlimit where needed and allowed). */
  readonly openFiles?: number;
  /** Scenario 6: ours' store settings, and the row's labels and target. */
  readonly persist?: PersistPartInfo & {
    readonly env?: Record<string, string>;
    /** Run ours on a fresh scratch PostgreSQL database (DATABASE_URL). */
    readonly postgres?: boolean;
  };
}

/** Scenario 6: warm-up and window of each measurement (quick: 0.5 + 1.5 s; full: 1 + 5 s). */
const persistTiming = quick
  ? { warmupMs: 500, durationMs: 1500 }
  : { warmupMs: 1000, durationMs: 5000 };
const PERSIST_INFLIGHTS = [1, 4, 16];
const PERSIST_TARGETS = { sqlite: 50_000, postgres: 20_000 };

/**
 * Scenario 6's parts for one row: ours on one store, creator-only or audited events. Without
 * watchers, one part (a fresh server and store) per in-flight count: 1, 4 and 16. With scenario
 * 1's 1,000-stream fan-out running, one part with scenario 1's closed loop and timing, so that
 * its events/s compare with scenario 1's.
 */
function persistRowParts(
  store: "sqlite-full" | "sqlite-normal" | "postgres",
  audited: boolean,
  fanout = false,
): Part[] {
  const postgres = store === "postgres";
  const row = `${store}/${audited ? "audited" : "creator"}${fanout ? "/fanout" : ""}`;
  return (fanout ? [loop.inflight] : PERSIST_INFLIGHTS).map((inflight) => ({
    name: `${row}/${inflight}`,
    kinds: ["ours"],
    params: {
      mode: "persist",
      batch: 100,
      resources: 5000,
      audited,
      inflight,
      ...(fanout ? { warmupMs: loop.warmupMs, durationMs: loop.durationMs } : persistTiming),
      streams: fanout ? 1000 : 0,
      connections: 10,
      windowEvents: loop.windowEvents,
    },
    persist: {
      row,
      inflight,
      store: postgres
        ? "PostgreSQL"
        : `SQLite synchronous=${store === "sqlite-full" ? "full" : "normal"}`,
      events: audited ? "creator + actor (audited)" : "creator",
      watchers: fanout ? 1000 : 0,
      ...(!fanout && { target: postgres ? PERSIST_TARGETS.postgres : PERSIST_TARGETS.sqlite }),
      ...(postgres
        ? { postgres: true }
        : { env: { SQLITE_SYNCHRONOUS: store === "sqlite-full" ? "full" : "normal" } }),
    },
  }));
}

/** Scenario 7: idle JSONL watchers whose memory is measured (one server process each). */
const JSONL_MEMORY_STREAMS = [2000, 8000];
/**
 * Scenario 7, 10,000 watchers of 1,000 organizations, one event per organization per second:
 * 60 s measured (after 5 s) in full runs, 15 s (after 2 s) in quick runs.
 */
const JSONL_10K_TIMING = quick
  ? { warmupMs: 2000, durationMs: 15_000 }
  : { warmupMs: 5000, durationMs: 60_000 };

/** A positive integer option `--name=N` (scenario 11's sizes), or `fallback`. */
function countOption<F extends number | undefined>(name: string, fallback: F): number | F {
  const arg = process.argv.find((a) => a.startsWith(`--${name}=`));
  if (arg === undefined) return fallback;
  const n = Number(arg.slice(name.length + 3));
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name}: expected a positive integer`);
  return n;
}

/**
 * Scenario 11's sizes, the same in quick and full runs: --scale-streams (gRPC streams),
 * --scale-connections (their HTTP/2 connections), --scale-jsonl (JSONL streams, one connection
 * each), --scale-rounds (one-event fan-outs measured).
 */
const SCALE = {
  streams: countOption("scale-streams", 100_000),
  connections: countOption("scale-connections", 400),
  jsonl: countOption("scale-jsonl", 20_000),
  rounds: countOption("scale-rounds", 5),
};
/**
 * Scenario 2's size: --latency-streams (default 1,000) over --latency-connections (default
 * 10). With few streams the figures are a publish's own cost, without the fan-out.
 * --latency-rounds: its rounds, in quick and full runs alike (default: 3 quick, 5 full); an
 * A/B of two builds needs many (bench/README.md, "How far apart two builds must be").
 * --latency-rate: publishes per second (default 200; fewer leave the server's core less busy).
 */
const LATENCY = {
  streams: countOption("latency-streams", 1000),
  connections: countOption("latency-connections", 10),
  rate: countOption("latency-rate", 200),
  rounds: countOption("latency-rounds", undefined),
};
/** Scenario 11: BENCH_SCALE_PROFILE=<dir> writes a CPU profile of each server over the rounds there. */
const SCALE_PROFILE_DIR =
  process.env.BENCH_SCALE_PROFILE === undefined || process.env.BENCH_SCALE_PROFILE === ""
    ? undefined
    : resolvePath(process.env.BENCH_SCALE_PROFILE);
if (SCALE_PROFILE_DIR !== undefined) mkdirSync(SCALE_PROFILE_DIR, { recursive: true });
/**
 * Scenario 11: JSONL watchers per load generator process (more: helper processes, each with its
 * share), well within a process's usual 20,000 open files. BENCH_JSONL_PER_PROCESS overrides.
 */
const JSONL_PER_PROCESS = (() => {
  const n = Number(process.env.BENCH_JSONL_PER_PROCESS ?? 10_000);
  if (!Number.isInteger(n) || n < 1) throw new Error("BENCH_JSONL_PER_PROCESS: a positive integer");
  return n;
})();
/**
 * Scenario 11's settings for ours: all streams are one member's (organization 0), so the limit
 * per subject must let them all open (its maximum); and HTTP/2 must allow as many streams per
 * connection as the part puts on one.
 */
const SCALE_ENV = {
  WATCH_MAX_STREAMS_PER_SUBJECT: "1000000",
  H2_MAX_CONCURRENT_STREAMS: String(
    Math.min(100_000, Math.max(1000, Math.ceil(SCALE.streams / SCALE.connections))),
  ),
};

/** Scenario 10: the log replayed from its start (quick runs: a fifth; BENCH_STORM_EVENTS overrides). */
const STORM_EVENTS = Number(process.env.BENCH_STORM_EVENTS ?? (quick ? 200_000 : 1_000_000));

/** Scenario 8: events published, then replayed to one feed stream (quick runs: fewer). */
const FEED_REPLAY_EVENTS = quick ? 100_000 : 200_000;
/**
 * Scenario 8: every ours process of it, those serving WatchEvents included, runs with these
 * (the default, set so that runs stay comparable if the default changes; no stream in it is
 * idle long enough for a periodic checkpoint).
 */
const FEED_ENV = { FEED_CHECKPOINT_MS: "15000" };

interface Scenario {
  readonly key: string;
  readonly title: string;
  readonly parts: readonly Part[];
  /**
   * Full runs: round r of every part runs before round r + 1 of any (instead of each part's
   * rounds in a row), so that a change in the machine's load hits the parts it compares alike.
   */
  readonly interleave?: boolean;
}

const SCENARIOS: readonly Scenario[] = [
  {
    key: "fanout",
    title: "1. Fan-out throughput: 1,000 streams of one organization over 10 connections",
    parts: [
      {
        name: "fanout",
        kinds: [...KINDS, "limit-batched", "limit-durable"],
        params: { mode: "fanout", streams: 1000, connections: 10, filters: false, ...loop },
        repeat: { rounds: 3, median: "deliveriesPerSec" },
      },
    ],
  },
  {
    key: "latency",
    title: `2. Latency: ${LATENCY.streams.toLocaleString("en-US")} streams, ${LATENCY.rate} events/s (one event per publish)`,
    parts: [
      {
        name: "latency",
        kinds: [...KINDS, "limit-durable"],
        params: {
          mode: "latency",
          streams: LATENCY.streams,
          connections: Math.min(LATENCY.connections, LATENCY.streams),
          ratePerSec: LATENCY.rate,
          ...timing,
        },
        // Its targets are ratios to limit-durable, judged per round (see report.ts), and a
        // 3-second window is short: quick runs take three rounds too.
        repeat: {
          rounds: LATENCY.rounds ?? 5,
          quickRounds: LATENCY.rounds ?? 3,
          median: "p99Ms",
        },
      },
    ],
  },
  {
    key: "dispatch",
    title:
      "3. Dispatch scaling: 10 target streams; with 10,000 idle streams of 1,000 other organizations; without them again",
    parts: [
      {
        name: "dispatch",
        kinds: KINDS,
        params: {
          mode: "dispatch",
          targetStreams: 10,
          idleStreams: 10_000,
          idleConnections: 100,
          ...loop,
        },
        // One process's own base cost moves by 10-50% between its windows, and single runs of
        // one build spread from 0.9 to 1.7: full runs judge the median of five.
        repeat: { rounds: 5, median: "costRatio" },
      },
    ],
  },
  {
    key: "memory",
    title:
      "4. Memory: 10,000 idle HTTP/2 streams over 100 connections; 1,000 HTTP/1.1 JSONL streams",
    parts: [
      {
        name: "h2",
        kinds: KINDS,
        params: { mode: "memory-h2", streams: 10_000, connections: 100 },
      },
      { name: "jsonl", kinds: ["ours"], params: { mode: "memory-jsonl", streams: 1000 } },
    ],
  },
  {
    key: "filters",
    title: "5. Filters: scenario 1 with 50 filters of 25 ids on every stream",
    parts: [
      {
        name: "fanout",
        kinds: KINDS,
        params: { mode: "fanout", streams: 1000, connections: 10, filters: true, ...loop },
      },
    ],
  },
  {
    key: "persist",
    title:
      "6. Publish throughput with persistence: batches of 100 PROJECT UPDATEs of 5,000 resources (ours)",
    parts: [
      ...persistRowParts("sqlite-full", false),
      ...persistRowParts("sqlite-full", true),
      ...persistRowParts("sqlite-normal", false),
      ...persistRowParts("sqlite-normal", true),
      ...persistRowParts("postgres", false),
      ...persistRowParts("postgres", true),
      ...persistRowParts("sqlite-full", false, true),
      ...persistRowParts("postgres", false, true),
    ],
  },
  {
    key: "jsonl",
    title:
      "7. JSONL over HTTP/1.1 (the official SDKs' path): one connection per watcher; limit = bare node:http",
    parts: [
      {
        name: "fanout",
        kinds: ["ours", "limit", "limit-batched"],
        jsonl: true,
        params: { mode: "jsonl-fanout", streams: 1000, ...loop },
        repeat: { rounds: 3, median: "serverCpuSecPerMillion" },
      },
      // One event per publish: limit-batched would write exactly as limit does.
      ...[20, 200].map(
        (ratePerSec): Part => ({
          name: `latency${ratePerSec}`,
          kinds: ["ours", "limit"],
          jsonl: true,
          params: {
            mode: "jsonl-latency",
            streams: 1000,
            orgs: 1,
            ratePerSec,
            ...timing,
            probeMemory: false,
          },
          repeat: { rounds: 3, median: "p99Ms" },
        }),
      ),
      ...JSONL_MEMORY_STREAMS.map(
        (streams): Part => ({
          name: `memory${streams}`,
          kinds: ["ours", "limit"],
          jsonl: true,
          params: { mode: "jsonl-memory", streams },
        }),
      ),
      {
        name: "watchers10k",
        kinds: ["ours", "limit"],
        jsonl: true,
        params: {
          mode: "jsonl-latency",
          streams: 10_000,
          orgs: 1000,
          ratePerSec: 1000,
          ...JSONL_10K_TIMING,
          probeMemory: true,
        },
      },
    ],
  },
  {
    key: "feed",
    title:
      "8. Resumable feed (ours): replay from the log to one stream; 1,000-stream fan-out and 10,000 idle streams, FeedService.Watch beside WatchEvents",
    interleave: true,
    parts: [
      ...(["sqlite", "postgres"] as const).map(
        (store): Part => ({
          name: `replay-${store}`,
          kinds: ["ours"],
          env: FEED_ENV,
          postgres: store === "postgres",
          params: { mode: "feed-replay", events: FEED_REPLAY_EVENTS, batch: 1000, inflight: 4 },
          repeat: { rounds: 3, median: "eventsPerSec" },
        }),
      ),
      ...(["watch", "feed"] as const).map(
        (api): Part => ({
          name: `fanout-${api}`,
          kinds: ["ours"],
          env: FEED_ENV,
          params: { mode: "fanout", streams: 1000, connections: 10, filters: false, api, ...loop },
          // Judged on the median of the rounds' own feed/watch ratios (report.ts), which spread
          // from 0.6 to 1.0 on this host from one pair of rounds to the next.
          repeat: { rounds: 5, median: "deliveriesPerSec" },
        }),
      ),
      ...(["watch", "feed"] as const).map(
        (api): Part => ({
          name: `memory-${api}`,
          kinds: ["ours"],
          env: FEED_ENV,
          params: { mode: "memory-h2", streams: 10_000, connections: 100, api },
          // RSS per stream varies by about 1 KiB from one process to the next.
          repeat: { rounds: 3, median: "memory.rssBytesPerStream" },
        }),
      ),
    ],
  },
  {
    key: "storm",
    title:
      "10. Replays from the start of a big log (of another organization) while WatchEvents and /healthz latency are measured",
    parts: [
      {
        name: "replay-storm",
        kinds: ["ours"],
        params: {
          mode: "replay-storm",
          events: STORM_EVENTS,
          batch: 1000,
          inflight: 4,
          attackers: Number(process.env.BENCH_STORM_ATTACKERS ?? 10),
          hangUpMs: 150,
          ratePerSec: 50,
          baselineMs: quick ? 3000 : 5000,
          stormMs: quick ? 5000 : 10_000,
        },
      },
    ],
  },
  {
    key: "replicas",
    title:
      "9. Replicas of ours on one PostgreSQL database: publish on A, watch on B (and C); same-replica latency beside",
    interleave: true,
    // BENCH_REPLICAS=6,2: other replica counts, for experiments (default 3 and 2).
    parts: (process.env.BENCH_REPLICAS ?? "3,2")
      .split(",")
      .map(Number)
      .map(
        (replicas): Part => ({
          name: `replicas${replicas}`,
          kinds: ["ours"],
          replicas,
          params: {
            mode: "replicas",
            streams: 1000,
            connections: 10,
            ...loop,
            latencyStreams: 100,
            ratePerSec: 200,
            latencyWarmupMs: timing.warmupMs,
            latencyDurationMs: timing.durationMs,
            idleMs: quick ? 3000 : 10_000,
          },
          repeat: { rounds: 3, median: "latency.cross.p99Ms" },
        }),
      ),
  },
  {
    key: "scale",
    title: `11. Scale on one process: ${SCALE.streams.toLocaleString("en-US")} idle gRPC streams over ${SCALE.connections.toLocaleString("en-US")} HTTP/2 connections, ${SCALE.jsonl.toLocaleString("en-US")} JSONL streams over HTTP/1.1; one event to all of them`,
    parts: (["h2", "jsonl"] as const).map(
      (protocol): Part => ({
        name: protocol,
        kinds: ["ours", "limit"],
        jsonl: protocol === "jsonl",
        env: SCALE_ENV,
        openFiles: (protocol === "jsonl" ? SCALE.jsonl : SCALE.connections) + 1000,
        params: {
          mode: "scale",
          protocol,
          streams: protocol === "jsonl" ? SCALE.jsonl : SCALE.streams,
          connections: protocol === "jsonl" ? SCALE.jsonl : SCALE.connections,
          rounds: SCALE.rounds,
          jsonlPerProcess: JSONL_PER_PROCESS,
          profile: SCALE_PROFILE_DIR !== undefined,
        },
      }),
    ),
  },
];

function partTimeoutMs(params: LoadgenParams): number {
  switch (params.mode) {
    case "replicas":
      return (
        params.idleMs +
        params.warmupMs +
        params.durationMs +
        params.latencyWarmupMs +
        params.latencyDurationMs +
        120_000
      );
    case "fanout":
    case "latency":
    case "jsonl-fanout":
      return params.warmupMs + params.durationMs + 90_000;
    case "jsonl-latency":
      return params.warmupMs + params.durationMs + 180_000;
    case "dispatch":
      return 3 * (params.warmupMs + params.durationMs) + 120_000;
    case "persist":
      return params.warmupMs + params.durationMs + 90_000;
    case "replay-storm":
      // Publishing (at most 600 s), the two windows, and up to 30 s after each.
      return 600_000 + params.baselineMs + params.stormMs + 120_000;
    case "feed-replay":
      // Publishing (at most 300 s), then the replay (at most max(60 s, events / 5,000 per s)).
      return 300_000 + Math.max(60_000, params.events / 5) + 60_000;
    case "scale":
      // Opening, confirming, each round at their bounds; two probes and the rest in 120 s.
      return (
        scaleOpenTimeoutMs(params.streams) +
        scaleConfirmTimeoutMs(params.streams) +
        params.rounds * (SCALE_ROUND_TIMEOUT_MS + 1000) +
        120_000
      );
    default:
      return 120_000;
  }
}

const kindsFilter = process.argv
  .find((a) => a.startsWith("--kinds="))
  ?.slice("--kinds=".length)
  .split(",");
const only = process.argv.find((a) => a.startsWith("--only="))?.slice("--only=".length);
/**
 * --parts=prefix,…: run only the parts of the chosen scenarios whose name starts with one of
 * them (scenario 6: `sqlite-full/audited` for its three parts, `sqlite-full/audited/4` for one).
 */
const partsFilter = process.argv
  .find((a) => a.startsWith("--parts="))
  ?.slice("--parts=".length)
  .split(",");
const started = performance.now();
const results: Record<string, ScenarioResults> = {};
const timings: Record<string, number> = {};

console.log(
  `Benchmark (${quick ? "quick" : "full"}): ${cpus().length} CPUs (${cpus()[0]?.model ?? "?"}), Node ${process.version}, ${
    PIN === undefined
      ? "server and load generator not pinned"
      : `server on CPU ${PIN.server}, load generator on CPU ${PIN.loadgen}`
  }`,
);
/**
 * Runs one part against one server: start it (scenario 6 on PostgreSQL: on a fresh scratch
 * database), run the load generator, stop it; scenario 6 then counts what the store holds.
 */
async function runPart(
  scenario: Scenario,
  part: Part,
  kind: Kind,
  round: number,
): Promise<Outcome> {
  const t = performance.now();
  let server: Server | undefined;
  const others: Server[] = [];
  let database: { name: string; url: string } | undefined;
  let outcome: Outcome;
  try {
    if (part.persist?.postgres || part.postgres || part.replicas !== undefined) {
      database = await createScratchDatabase();
    }
    const env = {
      ...part.persist?.env,
      ...part.env,
      ...(database !== undefined && { DATABASE_URL: database.url }),
    };
    server = await startServer(kind, env, part.jsonl, part.openFiles);
    // Scenario 9: the other replicas (B, C), started after A has created the schema.
    for (let i = 1; i < (part.replicas ?? 1); i++) others.push(await startServer(kind, env));
    const result = await runLoadgen(
      server,
      part.params,
      partTimeoutMs(part.params),
      database?.name,
      part.replicas === undefined ? undefined : [server, ...others].map((s) => s.port),
      SCALE_PROFILE_DIR === undefined
        ? undefined
        : join(SCALE_PROFILE_DIR, `${scenario.key}-${part.name}-${kind}.cpuprofile`),
    );
    const died = others.find((o) => o.exited);
    if (died !== undefined)
      throw new Error(`a replica exited: ${died.output.join("").slice(-300)}`);
    // Scenario 9's fan-out streams are on the other replicas: no cross-check with A's count.
    if (kind === "ours" && typeof result.received === "number" && part.replicas === undefined) {
      // Cross-check of the client's count: what ours says it wrote.
      result.serverCountedDeliveries = await oursMetric(server, "eventserver_deliveries_total");
    }
    outcome = server.exited
      ? { result, error: `server exited: ${server.output.join("").slice(-300)}` }
      : { result };
  } catch (err) {
    const tail = server === undefined ? "" : server.output.join("").slice(-300);
    const first = (err as Error).message.split("\n")[0];
    // A server that died meanwhile (its /proc entry gone) says how.
    const died = server?.exited
      ? ` (the server had exited: ${server.child.exitCode ?? server.child.signalCode})`
      : "";
    outcome = { error: `${first}${died}${tail ? ` | server: ${tail}` : ""}` };
  } finally {
    await Promise.all(others.map((o) => stopServer(o)));
    if (server !== undefined) await stopServer(server);
  }
  if (part.persist !== undefined && outcome.result !== undefined) {
    // Cross-check of the accepted events: what the store holds once ours has stopped.
    try {
      outcome.result.stored =
        database !== undefined
          ? await countPostgres(database.url)
          : server?.dataDir !== undefined
            ? countSqlite(server.dataDir)
            : null;
    } catch (err) {
      outcome.result.stored = { error: (err as Error).message };
    }
  }
  if (database !== undefined) {
    await dropScratchDatabase(database.name).catch((err: unknown) => {
      console.log(`  could not drop ${database?.name}: ${(err as Error).message}`);
    });
  }
  const seconds = (performance.now() - t) / 1000;
  const label = `${scenario.key}/${part.name}/${kind}${round > 0 ? ` (round ${round + 1})` : ""}`;
  timings[label] = seconds;
  console.log(
    `  ${label}: ${seconds.toFixed(1)} s${outcome.error ? `  FAILED: ${outcome.error}` : ""}`,
  );
  return outcome;
}

/** The outcome whose `path` is the median of the rounds (failed rounds sort last). */
function median(outcomes: Outcome[], path: string): Outcome {
  const value = (o: Outcome) => {
    let v: unknown = o.result;
    for (const k of path.split(".")) v = (v as Record<string, unknown> | undefined)?.[k];
    return typeof v === "number" && o.error === undefined ? v : Number.POSITIVE_INFINITY;
  };
  const sorted = [...outcomes].sort((a, b) => value(a) - value(b));
  const chosen = sorted[Math.floor((sorted.length - 1) / 2)] as Outcome;
  return outcomes.length === 1
    ? chosen
    : {
        ...chosen,
        rounds: outcomes.map((o) => (value(o) === Number.POSITIVE_INFINITY ? null : value(o))),
        roundResults: outcomes.map((o) =>
          o.error === undefined && o.result !== undefined ? o.result : null,
        ),
      };
}

for (const scenario of SCENARIOS) {
  if (only !== undefined && !only.split(",").includes(scenario.key)) continue;
  const byKind: ScenarioResults = {};
  const parts = scenario.parts.filter(
    (part) => partsFilter === undefined || partsFilter.some((f) => part.name.startsWith(f)),
  );
  const roundsOf = (part: Part) =>
    quick ? (part.repeat?.quickRounds ?? 1) : (part.repeat?.rounds ?? 1);
  const schedule: { part: Part; round: number }[] = [];
  if (scenario.interleave) {
    const most = Math.max(0, ...parts.map(roundsOf));
    for (let round = 0; round < most; round++) {
      // Odd rounds in the reverse order: of two parts compared (scenario 8's watch and feed,
      // back to back), each goes first as often as the other.
      const order = round % 2 === 1 ? [...parts].reverse() : parts;
      for (const part of order) if (round < roundsOf(part)) schedule.push({ part, round });
    }
  } else {
    for (const part of parts) {
      for (let round = 0; round < roundsOf(part); round++) schedule.push({ part, round });
    }
  }
  const outcomesOf = new Map<Part, Map<Kind, Outcome[]>>();
  for (const { part, round } of schedule) {
    const listed = part.kinds.filter((k) => kindsFilter === undefined || kindsFilter.includes(k));
    // Odd rounds run the servers in the reverse order: each goes first as often as the others,
    // so that what the one before leaves behind (a warm disk cache, a busier host) evens out.
    const kinds = round % 2 === 1 ? [...listed].reverse() : listed;
    const outcomes = outcomesOf.get(part) ?? new Map<Kind, Outcome[]>();
    outcomesOf.set(part, outcomes);
    for (const kind of kinds) {
      const o = await runPart(scenario, part, kind, round);
      outcomes.set(kind, [...(outcomes.get(kind) ?? []), o]);
    }
  }
  for (const part of parts) {
    for (const [kind, list] of outcomesOf.get(part) ?? []) {
      const chosen =
        part.repeat === undefined ? (list[0] as Outcome) : median(list, part.repeat.median);
      byKind[kind] = { ...byKind[kind], [part.name]: chosen };
    }
  }
  results[scenario.key] = byKind;
}

let dispatchInProcess: DispatchResult[] | undefined;
if (only === undefined || only.split(",").includes("dispatch")) {
  const t = performance.now();
  dispatchInProcess = await runDispatch({ quick });
  timings["dispatch.in-process"] = (performance.now() - t) / 1000;
  console.log(`  dispatch/in-process: ${timings["dispatch.in-process"].toFixed(1)} s`);
}

const persistParts = new Map<string, PersistPartInfo>();
for (const sc of SCENARIOS) {
  for (const part of sc.parts) if (part.persist) persistParts.set(part.name, part.persist);
}
const report = buildReport(results, dispatchInProcess, persistParts);
const totalSeconds = (performance.now() - started) / 1000;
printTables(SCENARIOS, report);
printReplicas(results.replicas);
printStorm(results.storm);
console.log(`\nTotal: ${totalSeconds.toFixed(0)} s (${quick ? "quick" : "full"} run)`);

/** Scenario 10's figures (also in latest.json's results.storm). */
function printStorm(byKind: ScenarioResults | undefined): void {
  const outcome = byKind?.ours?.["replay-storm"];
  if (outcome === undefined) return;
  console.log(`\n${SCENARIOS.find((s) => s.key === "storm")?.title ?? "storm"}`);
  if (outcome.error !== undefined || outcome.result === undefined) {
    console.log(`  FAILED: ${outcome.error ?? "no result"}`);
    return;
  }
  // biome-ignore lint/suspicious/noExplicitAny: the load generator's result, read for printing
  const r = outcome.result as any;
  const f = (v: unknown) => (typeof v === "number" ? v.toFixed(1) : "n/a");
  console.log(
    `  log: ${r.eventsPublished} events of another organization (published in ${f(r.publishSeconds)} s); ${r.attackers} members replay from its start, hanging up after ${r.hangUpMs} ms: ${r.replaysOpened} replays, ${JSON.stringify(r.replayOutcomes)}`,
  );
  for (const w of ["baseline", "storm"] as const) {
    const x = r[w];
    console.log(
      `  ${w.padEnd(8)} WatchEvents p50 ${f(x.watchEvents.p50Ms)} p99 ${f(x.watchEvents.p99Ms)} max ${f(x.watchEvents.maxMs)} ms (${x.received}/${x.published} events); /healthz p50 ${f(x.healthz.p50Ms)} p99 ${f(x.healthz.p99Ms)} max ${f(x.healthz.maxMs)} ms (${x.healthz.count} checks)`,
    );
  }
}

/** Scenario 9's table (its figures are in latest.json's results.replicas too). */
function printReplicas(byKind: ScenarioResults | undefined): void {
  const parts = byKind?.ours;
  if (parts === undefined) return;
  const title = SCENARIOS.find((s) => s.key === "replicas")?.title ?? "replicas";
  console.log(`\n${title}`);
  const f = (v: unknown, digits = 1) =>
    typeof v === "number" && Number.isFinite(v) ? v.toFixed(digits) : "n/a";
  for (const [name, outcome] of Object.entries(parts)) {
    if (outcome.error !== undefined || outcome.result === undefined) {
      console.log(`  ${name}: FAILED: ${outcome.error ?? "no result"}`);
      continue;
    }
    // biome-ignore lint/suspicious/noExplicitAny: the load generator's result, read for printing
    const r = outcome.result as any;
    const same = r.latency.same;
    const cross = r.latency.cross;
    const target = 1.2 * same.p99Ms + 5;
    console.log(
      `  ${name} (${r.replicas} replicas; rounds: ${JSON.stringify(outcome.rounds ?? [])})`,
    );
    console.log(
      `    fan-out, ${r.fanout.streams} streams on B..: ${f(r.fanout.deliveriesPerSec, 0)} deliveries/s, ${f(r.fanout.eventsPublished, 0)} events published, every event on every stream: ${r.fanout.everyEventDelivered} (streams confirmed ${r.fanout.streamsConfirmed}, ended ${JSON.stringify(r.fanout.streamsEnded)})`,
    );
    console.log(
      `      PostgreSQL ${f(r.fanout.postgresCores, 2)} cores, ${f(r.fanout.postgresCpuUsPerEvent)} µs CPU per event (${f(r.fanout.postgresCpuUsPerEventPerReplica)} per replica), idle baseline ${f(r.idle.postgresCores, 3)} cores subtracted; ours A ${f(r.fanout.serverCores, 2)} cores`,
    );
    console.log(
      `    latency, ${r.latency.ratePerSec} events/s, ${r.latency.streamsPerSide} streams each: same replica p50 ${f(same.p50Ms, 2)} p99 ${f(same.p99Ms, 2)} ms; cross replica p50 ${f(cross.p50Ms, 2)} p99 ${f(cross.p99Ms, 2)} ms (target <= ${f(target, 2)}: ${cross.p99Ms <= target ? "PASS" : "FAIL"}); complete: same ${same.everyEventDelivered}, cross ${cross.everyEventDelivered}`,
    );
    console.log(
      `      PostgreSQL ${f(r.latency.postgresCores, 3)} cores, ${f(r.latency.postgresCpuUsPerEvent)} µs CPU per event (${f(r.latency.postgresCpuUsPerEventPerReplica)} per replica)`,
    );
  }
}

const out = {
  date: new Date().toISOString(),
  node: process.version,
  quick,
  machine: { cpus: cpus().length, model: cpus()[0]?.model ?? "", clkTck },
  pinning: PIN ?? "off",
  totalSeconds,
  timings,
  parameters: Object.fromEntries(
    SCENARIOS.map((s) => [s.key, Object.fromEntries(s.parts.map((p) => [p.name, p.params]))]),
  ),
  rows: report.rows,
  persistRows: report.persistRows,
  feedRows: report.feedRows,
  notes: report.notes,
  results,
  dispatchInProcess,
};
mkdirSync(new URL("./results/", pathToFileURL(join(ROOT, "bench/"))), { recursive: true });
writeFileSync(join(ROOT, "bench/results/latest.json"), `${JSON.stringify(out, null, 2)}\n`);
console.log("Written to bench/results/latest.json");
rmSync(tmp, { recursive: true, force: true });
