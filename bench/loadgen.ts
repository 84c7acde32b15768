import { type ChildProcess, fork } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import * as http from "node:http";
import * as http2 from "node:http2";
import { createHistogram } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import {
  checkpointCursor,
  confirmationFrame,
  FEED_CHECKPOINT_TAG,
  FEED_PATH,
  FILTERED_IDS,
  feedRequestFrame,
  latencyTemplate,
  memberToken,
  PUBLISHER_TOKEN,
  persistFrames,
  publishFrames,
  TIME_HEX_DIGITS,
  WATCH_PATH,
  watchRequestFrame,
} from "./fixtures.js";
import { grpcHeaderBlock, H2Connection, Tally } from "./h2-watch-client.js";
import { JsonlConnection, jsonlWatchRequest } from "./jsonl-watch-client.js";
import {
  type FromLoadgen,
  type LoadgenParams,
  type LoopParams,
  type ProbeData,
  SCALE_ROUND_TIMEOUT_MS,
  type ShardRequest,
  type ShardState,
  type ShardWait,
  scaleConfirmTimeoutMs,
  scaleOpenTimeoutMs,
  type Target,
  type ToLoadgen,
  type WatchApi,
} from "./protocol.js";
import { Publisher } from "./publisher.js";

/**
 * The load generator: one process, forked by run.ts with an IPC channel, that runs one scenario
 * part against one server and sends back its figures. Watch streams use the frame-counting
 * HTTP/2 client (h2-watch-client.ts), or for JSONL the line-counting HTTP/1.1 client
 * (jsonl-watch-client.ts, one connection per watcher); publishes go through node:http2 with
 * frames encoded once, up front. It measures the server's CPU time itself (from /proc, at the edges of its
 * measurement window) and its own (process.cpuUsage), so that both cover the same interval.
 */

const JSONL_PATH = "/gitpod.v1.EventService/WatchEvents";
/** Connections opened at once while setting up streams. */
const CONNECT_PARALLEL = 20;
/** JSONL connections (one per watcher) set up at once. */
const JSONL_CONNECT_PARALLEL = 100;
/**
 * Source addresses 127.0.0.2 .. 127.0.0.(1 + this) that JSONL connections are spread over: each
 * address has its own ephemeral ports, so 10,000 connections (and the TIME_WAITs of earlier
 * parts) stay far from the ~28,000 ports one source address has towards one server port.
 */
const JSONL_SOURCE_ADDRESSES = 8;
const CONFIRM_TIMEOUT_MS = 30_000;

let target: Target;

function send(m: FromLoadgen): void {
  process.send?.(m);
}

const probes = new Map<number, (d: ProbeData | null) => void>();
let probeId = 0;
/** Asks the orchestrator to measure the server's memory (after a full GC). */
function probe(): Promise<ProbeData | null> {
  const id = ++probeId;
  return new Promise((resolve) => {
    probes.set(id, resolve);
    send({ type: "probe", id });
  });
}

/** utime + stime of the server process (all threads), in seconds. */
function serverCpuSec(): number {
  const stat = readFileSync(`/proc/${target.serverPid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
  return (Number(fields[11]) + Number(fields[12])) / target.clkTck;
}

/** CPU seconds the whole machine spent busy (all CPUs, everything but idle and iowait). */
function machineBusySec(): number {
  const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0] ?? "";
  const t = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = t.reduce((a, b) => a + b, 0);
  return (total - (t[3] ?? 0) - (t[4] ?? 0)) / target.clkTck;
}

/** utime + stime of any process from its /proc/<pid>/stat text, in seconds. */
function cpuOfStat(stat: string): number {
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / target.clkTck;
}

/** PostgreSQL's own background processes (shared by every database on the server). */
const PG_BACKGROUND =
  /checkpointer|background writer|walwriter|wal writer|autovacuum launcher|logical replication launcher|stats collector|archiver/;

/**
 * CPU seconds of the PostgreSQL processes that work for the benchmark, by pid: the backends
 * connected to the scratch database (their command line names it; autovacuum workers too), the
 * background writers and the postmaster. Backends of other databases (tests running meanwhile)
 * are left out: they show up as "other load".
 */
function postgresCpu(database: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const entry of readdirSync("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      if (!stat.includes("(postgres)")) continue;
      const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ");
      const isPostmaster = !cmd.startsWith("postgres:");
      if (isPostmaster || cmd.includes(` ${database} `) || PG_BACKGROUND.test(cmd)) {
        out.set(pid, cpuOfStat(stat));
      }
    } catch {
      // The process ended meanwhile.
    }
  }
  return out;
}

/** CPU seconds spent between two postgresCpu() readings (a process new in `end` counts whole). */
function postgresCpuBetween(start: Map<number, number>, end: Map<number, number>): number {
  let sum = 0;
  for (const [pid, sec] of end) sum += sec - (start.get(pid) ?? 0);
  return sum;
}

function ownCpuSec(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

interface Watchers {
  readonly tally: Tally;
  /** HTTP/2 connections, or JSONL connections (one per stream). */
  readonly connections: readonly { close(): void }[];
}

/**
 * Opens `streams` watch streams over `connections` connections (spread evenly), stream n with
 * the token of organization `orgOf(n)`, at most CONNECT_PARALLEL connections being set up at once.
 * `api` "feed": FeedService.Watch streams (`body` a feed WatchRequest), which count events only.
 */
async function openWatchers(
  streams: number,
  connections: number,
  orgOf: (n: number) => number,
  body: Buffer,
  api: WatchApi = "watch",
  port: number = target.port,
  tally: Tally = new Tally(),
): Promise<Watchers> {
  if (api === "feed") tally.skipFirstByte = FEED_CHECKPOINT_TAG;
  const path = api === "feed" ? FEED_PATH : WATCH_PATH;
  const authority = `${target.host}:${port}`;
  const blocks = new Map<number, Buffer>();
  const block = (org: number) => {
    let b = blocks.get(org);
    if (b === undefined) {
      b = grpcHeaderBlock(authority, path, memberToken(org));
      blocks.set(org, b);
    }
    return b;
  };
  const conns: H2Connection[] = [];
  let n = 0;
  for (let c0 = 0; c0 < connections; c0 += CONNECT_PARALLEL) {
    const group: Promise<void>[] = [];
    for (let c = c0; c < Math.min(connections, c0 + CONNECT_PARALLEL); c++) {
      const count = Math.floor(streams / connections) + (c < streams % connections ? 1 : 0);
      const headerBlocks: Buffer[] = [];
      for (let i = 0; i < count; i++) headerBlocks.push(block(orgOf(n++)));
      const conn = new H2Connection({ host: target.host, port });
      conns.push(conn);
      group.push(
        conn.ready.then(() => {
          if (count > conn.peerMaxConcurrent) {
            throw new Error(`server allows ${conn.peerMaxConcurrent} streams per connection`);
          }
          conn.open(headerBlocks, body, tally);
        }),
      );
    }
    await Promise.all(group);
  }
  return { tally, connections: conns };
}

let jsonlOpened = 0;

/**
 * Opens `streams` JSONL watchers, each on its own HTTP/1.1 connection (the official SDKs' way),
 * stream n with the token of organization `orgOf(n)`, JSONL_CONNECT_PARALLEL at a time (each
 * group waits for its response heads). Only ever connects to 127.0.0.0/8, from 127.0.0.2 and up.
 */
async function openJsonlWatchers(
  streams: number,
  orgOf: (n: number) => number,
  tally = new Tally(),
): Promise<Watchers> {
  if (!target.host.startsWith("127."))
    throw new Error("JSONL watchers connect to 127.0.0.0/8 only");
  const authority = `${target.host}:${target.port}`;
  const requests = new Map<number, Buffer>();
  const request = (org: number) => {
    let r = requests.get(org);
    if (r === undefined) {
      r = jsonlWatchRequest(authority, `/api${JSONL_PATH}`, memberToken(org));
      requests.set(org, r);
    }
    return r;
  };
  const conns: JsonlConnection[] = [];
  for (let c0 = 0; c0 < streams; c0 += JSONL_CONNECT_PARALLEL) {
    const group: Promise<void>[] = [];
    for (let n = c0; n < Math.min(streams, c0 + JSONL_CONNECT_PARALLEL); n++) {
      const conn = new JsonlConnection({
        host: target.host,
        port: target.port,
        localAddress: `127.0.0.${2 + (jsonlOpened++ % JSONL_SOURCE_ADDRESSES)}`,
        request: request(orgOf(n)),
        tally,
      });
      conns.push(conn);
      group.push(conn.ready);
    }
    await Promise.all(group);
  }
  return { tally, connections: conns };
}

/**
 * Publishes one event per organization of the group, again every second, until every stream
 * has received one (a stream that the server has not set up yet misses an event: there is no
 * replay). Returns how many streams deliver.
 */
async function confirm(pub: Publisher, frame: Buffer, tally: Tally): Promise<number> {
  const deadline = performance.now() + CONFIRM_TIMEOUT_MS;
  while (performance.now() < deadline) {
    if (!(await pub.publish(frame))) await sleep(100);
    if (await tally.waitForMin(1, Math.min(1000, deadline - performance.now()))) break;
  }
  return tally.streams.filter((s) => s.state !== "ended" && s.received >= 1).length;
}

function endReasons(tally: Tally): Record<string, number> {
  const reasons: Record<string, number> = {};
  for (const s of tally.streams) {
    if (s.state === "ended") reasons[s.endReason] = (reasons[s.endReason] ?? 0) + 1;
  }
  return reasons;
}

interface Sample {
  readonly t: number;
  readonly delivered: number;
  readonly serverCpu: number;
  readonly ownCpu: number;
  readonly machineBusy: number;
}

function sample(tally: Tally): Sample {
  return {
    t: performance.now(),
    delivered: tally.received,
    serverCpu: serverCpuSec(),
    ownCpu: ownCpuSec(),
    machineBusy: machineBusySec(),
  };
}

/**
 * CPU use over a window, in cores: the server, the load generator, and everything else on the
 * machine (other processes, and kernel work not charged to either), which should be near 0.
 */
function cores(start: Sample, end: Sample) {
  const seconds = (end.t - start.t) / 1000;
  const server = (end.serverCpu - start.serverCpu) / seconds;
  const loadgen = (end.ownCpu - start.ownCpu) / seconds;
  const machine = (end.machineBusy - start.machineBusy) / seconds;
  return {
    serverCores: server,
    loadgenCores: loadgen,
    otherCores: Math.max(0, machine - server - loadgen),
  };
}

/**
 * Publishes as fast as the server delivers: batches cycle through `frames`, at most
 * `inflight` publishes are outstanding, and a publish waits while it would put the slowest
 * stream more than `windowEvents` events behind. (Publishing faster than the streams are
 * written only fills buffers: ours would coalesce or cut slow streams, limit and peer would
 * queue without bound.) Measures deliveries and CPU over [warmup, warmup + duration], then
 * checks that every stream received every event.
 */
async function closedLoop(pub: Publisher, frames: Buffer[], tally: Tally, p: LoopParams) {
  const base = tally.min();
  let sent = 0;
  let acked = 0;
  let k = 0;
  let failures = 0;
  const t0 = performance.now();
  const stopAt = t0 + p.warmupMs + p.durationMs;
  let start: Sample | undefined;
  let end: Sample | undefined;
  const startTimer = setTimeout(() => {
    start = sample(tally);
  }, p.warmupMs);
  const endTimer = setTimeout(() => {
    end = sample(tally);
  }, p.warmupMs + p.durationMs);
  let inflight = 0;
  let slotFreed: (() => void) | undefined;
  // Where the publisher waited: for a free call slot (the server answering Publish) or at the
  // window (the slowest stream catching up).
  let slotWaitMs = 0;
  let windowWaitMs = 0;
  while (performance.now() < stopAt && failures < 100) {
    if (inflight >= p.inflight) {
      const w0 = performance.now();
      await new Promise<void>((resolve) => {
        slotFreed = resolve;
      });
      slotWaitMs += performance.now() - w0;
      continue;
    }
    const left = stopAt - performance.now();
    const w0 = performance.now();
    const ok = await tally.waitForMin(base + sent + p.batch - p.windowEvents, left);
    windowWaitMs += performance.now() - w0;
    if (!ok || performance.now() >= stopAt) break;
    const frame = frames[k++ % frames.length] as Buffer;
    sent += p.batch;
    inflight++;
    void pub.publish(frame).then((published) => {
      inflight--;
      if (published) acked += p.batch;
      else {
        sent -= p.batch;
        failures++;
      }
      const wake = slotFreed;
      slotFreed = undefined;
      wake?.();
    });
  }
  while (inflight > 0) {
    await new Promise<void>((resolve) => {
      slotFreed = resolve;
    });
  }
  const remaining = stopAt - performance.now();
  if (remaining > 0) await sleep(remaining);
  clearTimeout(startTimer);
  clearTimeout(endTimer);
  start ??= sample(tally);
  end ??= sample(tally);
  const complete = await tally.waitForMin(base + acked, 10_000);
  const seconds = (end.t - start.t) / 1000;
  const deliveries = end.delivered - start.delivered;
  const live = tally.live;
  return {
    seconds,
    deliveries,
    deliveriesPerSec: deliveries / seconds,
    eventsPerSec: live > 0 ? deliveries / live / seconds : 0,
    serverCpuSec: end.serverCpu - start.serverCpu,
    ...cores(start, end),
    eventsPublished: acked,
    publishFailures: failures,
    everyEventDelivered: complete,
    shortestStream: tally.min() - base,
    publisherWaits: {
      forCallSlotMs: Math.round(slotWaitMs),
      forWindowMs: Math.round(windowWaitMs),
      runMs: Math.round(p.warmupMs + p.durationMs),
    },
  };
}

/** Scenarios 1 and 5 over HTTP/2, and scenario 7's fan-out over JSONL connections. */
async function fanout(p: Extract<LoadgenParams, { mode: "fanout" | "jsonl-fanout" }>) {
  const t0 = performance.now();
  const filters = p.mode === "fanout" && p.filters;
  const api = p.mode === "fanout" ? (p.api ?? "watch") : "watch";
  const w =
    p.mode === "jsonl-fanout"
      ? await openJsonlWatchers(p.streams, () => 0)
      : await openWatchers(
          p.streams,
          p.connections,
          () => 0,
          api === "feed" ? feedRequestFrame("") : watchRequestFrame(filters),
          api,
        );
  const pub = new Publisher(target.host, target.port, PUBLISHER_TOKEN);
  const confirmed = await confirm(pub, confirmationFrame(0, 1), w.tally);
  const setupSeconds = (performance.now() - t0) / 1000;
  const frames = publishFrames(0, filters ? FILTERED_IDS : 1000, p.batch);
  const loop = await closedLoop(pub, frames, w.tally, p);
  const result = {
    streams: p.streams,
    streamsConfirmed: confirmed,
    setupSeconds,
    streamsEnded: endReasons(w.tally),
    ...loop,
    serverCpuSecPerMillion:
      loop.deliveries > 0 ? (loop.serverCpuSec / loop.deliveries) * 1e6 : null,
    publishFailureReasons: Object.fromEntries(pub.failures),
    received: w.tally.received,
    ...(api === "feed" && { api, checkpointsReceived: w.tally.skipped }),
  };
  pub.close();
  for (const c of w.connections) c.close();
  return result;
}

/** CPU readings at one edge of a scenario 6 window. */
interface PersistSample {
  readonly t: number;
  readonly serverCpu: number;
  readonly ownCpu: number;
  readonly machineBusy: number;
  readonly postgres: Map<number, number> | undefined;
}

function persistSample(): PersistSample {
  return {
    t: performance.now(),
    serverCpu: serverCpuSec(),
    ownCpu: ownCpuSec(),
    machineBusy: machineBusySec(),
    postgres: target.database === undefined ? undefined : postgresCpu(target.database),
  };
}

/**
 * One scenario 6 measurement: publishes `frames` (continuing at `cursor.next`) with at most
 * `inflight` calls outstanding, as fast as the server answers (with `tally`: also never more
 * than `windowEvents` ahead of its slowest stream), for warm-up plus window. Counts the events
 * of the publishes answered inside the window, and records each one's round trip.
 */
async function publishWindow(
  pub: Publisher,
  frames: Buffer[],
  cursor: { next: number; accepted: number },
  p: Extract<LoadgenParams, { mode: "persist" }>,
  inflight: number,
  tally: Tally | undefined,
) {
  const rtt = createHistogram({ lowest: 1, highest: 600_000_000, figures: 3 });
  const base = tally?.min() ?? 0;
  const t0 = performance.now();
  const from = t0 + p.warmupMs;
  const stopAt = from + p.durationMs;
  let start: PersistSample | undefined;
  let end: PersistSample | undefined;
  const startTimer = setTimeout(() => {
    start = persistSample();
  }, p.warmupMs);
  const endTimer = setTimeout(() => {
    end = persistSample();
  }, p.warmupMs + p.durationMs);
  let sent = 0;
  let outstanding = 0;
  let failures = 0;
  let acceptedInWindow = 0;
  let publishesInWindow = 0;
  let slotFreed: (() => void) | undefined;
  while (performance.now() < stopAt && failures < 100) {
    if (outstanding >= inflight) {
      await new Promise<void>((resolve) => {
        slotFreed = resolve;
      });
      continue;
    }
    if (tally !== undefined) {
      const ok = await tally.waitForMin(
        base + sent + p.batch - p.windowEvents,
        stopAt - performance.now(),
      );
      if (!ok || performance.now() >= stopAt) break;
    }
    const frame = frames[cursor.next++ % frames.length] as Buffer;
    sent += p.batch;
    outstanding++;
    const sentAt = performance.now();
    void pub.publish(frame).then((ok) => {
      const at = performance.now();
      outstanding--;
      if (ok) {
        cursor.accepted += p.batch;
        if (at >= from && at < stopAt) {
          acceptedInWindow += p.batch;
          publishesInWindow++;
          rtt.record(Math.max(1, Math.round((at - sentAt) * 1000)));
        }
      } else {
        sent -= p.batch;
        failures++;
      }
      const wake = slotFreed;
      slotFreed = undefined;
      wake?.();
    });
  }
  while (outstanding > 0) {
    await new Promise<void>((resolve) => {
      slotFreed = resolve;
    });
  }
  const remaining = stopAt - performance.now();
  if (remaining > 0) await sleep(remaining);
  clearTimeout(startTimer);
  clearTimeout(endTimer);
  start ??= persistSample();
  end ??= persistSample();
  const seconds = (end.t - start.t) / 1000;
  const serverCpuSec = end.serverCpu - start.serverCpu;
  const postgresSec =
    start.postgres === undefined || end.postgres === undefined
      ? null
      : postgresCpuBetween(start.postgres, end.postgres);
  const machine = (end.machineBusy - start.machineBusy) / seconds;
  const serverCores = serverCpuSec / seconds;
  const loadgenCores = (end.ownCpu - start.ownCpu) / seconds;
  const postgresCores = postgresSec === null ? null : postgresSec / seconds;
  const ms = (q: number) => (publishesInWindow > 0 ? rtt.percentile(q) / 1000 : null);
  return {
    inflight,
    seconds,
    eventsAccepted: acceptedInWindow,
    eventsPerSec: acceptedInWindow / seconds,
    publishes: publishesInWindow,
    publishFailures: failures,
    publishP50Ms: ms(50),
    publishP99Ms: ms(99),
    publishMaxMs: publishesInWindow > 0 ? rtt.max / 1000 : null,
    serverCores,
    serverCpuUsPerEvent: acceptedInWindow > 0 ? (serverCpuSec / acceptedInWindow) * 1e6 : null,
    postgresCores,
    loadgenCores,
    otherCores: Math.max(0, machine - serverCores - loadgenCores - (postgresCores ?? 0)),
  };
}

/**
 * Scenario 6: publish throughput with persistence, one in-flight count per server process (a
 * fresh store each). With `streams`, the 1,000-stream fan-out of scenario 1 runs meanwhile.
 */
async function persist(p: Extract<LoadgenParams, { mode: "persist" }>) {
  const frames = persistFrames(0, p.resources, p.batch, p.audited);
  const pub = new Publisher(target.host, target.port, PUBLISHER_TOKEN);
  const cursor = { next: 0, accepted: 0 };
  let w: Watchers | undefined;
  let confirmed = 0;
  let base = 0;
  if (p.streams > 0) {
    w = await openWatchers(p.streams, p.connections, () => 0, watchRequestFrame(false));
    confirmed = await confirm(pub, confirmationFrame(0, 1), w.tally);
    base = w.tally.min();
  }
  // Each confirmation publish is one event, stored like the others.
  const confirmationEvents = pub.accepted;
  const window = await publishWindow(pub, frames, cursor, p, p.inflight, w?.tally);
  const complete =
    w === undefined ? null : await w.tally.waitForMin(base + cursor.accepted, 10_000);
  const result = {
    streams: p.streams,
    ...(w !== undefined && {
      streamsConfirmed: confirmed,
      streamsEnded: endReasons(w.tally),
      everyEventDelivered: complete,
      received: w.tally.received,
    }),
    audited: p.audited,
    ...window,
    /** Every event accepted over the whole run (warm-up, window, confirmations). */
    eventsAcceptedTotal: cursor.accepted + confirmationEvents,
    auditEntriesExpected: p.audited ? cursor.accepted : 0,
    publishFailureReasons: Object.fromEntries(pub.failures),
  };
  pub.close();
  for (const c of w?.connections ?? []) c.close();
  return result;
}

/** The send time (µs, from the last 12 hex digits of resource_id), or -1. */
function sentMicros(buf: Buffer, start: number, length: number): number {
  let i = start;
  const end = start + length;
  while (i < end) {
    const tag = buf[i++] as number;
    const wire = tag & 7;
    if (wire === 0) {
      while (((buf[i++] as number) & 0x80) !== 0 && i < end);
      continue;
    }
    if (wire !== 2) return -1;
    let len = 0;
    let shift = 0;
    let b: number;
    do {
      b = buf[i++] as number;
      len += (b & 0x7f) * 2 ** shift;
      shift += 7;
    } while (b & 0x80 && i < end);
    if (tag >> 3 === 3) {
      if (len < TIME_HEX_DIGITS) return -1;
      let v = 0;
      for (let j = i + len - TIME_HEX_DIGITS; j < i + len; j++) {
        const c = buf[j] as number;
        v = v * 16 + (c <= 0x39 ? c - 0x30 : (c | 0x20) - 0x57);
      }
      return v;
    }
    i += len;
  }
  return -1;
}

function writeMicros(frame: Buffer, offset: number, micros: number): void {
  const hex = Math.floor(micros).toString(16).padStart(TIME_HEX_DIGITS, "0");
  frame.write(hex, offset, TIME_HEX_DIGITS, "latin1");
}

/** What a latency window publishes: one event per publish, to the organizations in turn. */
interface LatencyPlan {
  /** Stream n of the group belongs to `orgs[n % orgs.length]`. */
  readonly orgs: readonly number[];
  readonly ratePerSec: number;
  readonly warmupMs: number;
  readonly durationMs: number;
}

/**
 * Publishes one event per publish at `ratePerSec` (paced on a clock, open loop), each stamped
 * with the send time, and records publish-to-receive for every delivery whose event was sent
 * within the window (after the warm-up). Then waits (10 s at most) until every live stream has
 * every event of its organization published since the start.
 */
async function latencyWindow(w: Watchers, pub: Publisher, plan: LatencyPlan, jsonl: boolean) {
  const streams = w.tally.streams;
  const base = streams.map((s) => s.received);
  const hist = createHistogram({ lowest: 1, highest: 600_000_000, figures: 3 });
  const publishHist = createHistogram({ lowest: 1, highest: 600_000_000, figures: 3 });
  let nowUs = 0;
  let fromUs = Number.POSITIVE_INFINITY;
  let toUs = Number.POSITIVE_INFINITY;
  let measured = 0;
  w.tally.onChunk = () => {
    nowUs = performance.now() * 1000;
  };
  const record = (sent: number) => {
    if (sent >= fromUs && sent < toUs) {
      hist.record(Math.max(1, Math.round(nowUs - sent)));
      measured++;
    }
  };
  if (jsonl) w.tally.onSentMicros = record;
  else w.tally.onMessage = (buf, start, length) => record(sentMicros(buf, start, length));
  const k = plan.orgs.length;
  const templates = plan.orgs.map((o) => latencyTemplate(o));
  const streamsOf = plan.orgs.map(
    (_, i) => Math.floor(streams.length / k) + (i < streams.length % k ? 1 : 0),
  );
  const publishedTo = new Array<number>(k).fill(0);
  const intervalMs = 1000 / plan.ratePerSec;
  const t0 = performance.now() + 10;
  fromUs = (t0 + plan.warmupMs) * 1000;
  toUs = (t0 + plan.warmupMs + plan.durationMs) * 1000;
  const stopAt = t0 + plan.warmupMs + plan.durationMs;
  let published = 0;
  let expected = 0;
  let failures = 0;
  let inflight = 0;
  const first = sample(w.tally);
  for (let i = 0; ; i++) {
    const due = t0 + i * intervalMs;
    if (due >= stopAt) break;
    const wait = due - performance.now();
    if (wait > 0.5) await sleep(wait);
    if (inflight >= 1000) {
      failures++;
      continue;
    }
    const org = i % k;
    const template = templates[org] as { frame: Buffer; offset: number };
    const frame = Buffer.from(template.frame);
    const sentUs = performance.now() * 1000;
    writeMicros(frame, template.offset, sentUs);
    if (sentUs >= fromUs && sentUs < toUs) expected += streamsOf[org] as number;
    inflight++;
    void pub.publish(frame).then((ok) => {
      inflight--;
      if (ok) {
        published++;
        publishedTo[org] = (publishedTo[org] as number) + 1;
      } else failures++;
      // The publish round trip: how long the server took to accept the event.
      if (sentUs >= fromUs && sentUs < toUs) {
        publishHist.record(Math.max(1, Math.round(performance.now() * 1000 - sentUs)));
      }
    });
  }
  const used = cores(first, sample(w.tally));
  while (inflight > 0) await sleep(5); // each publish times out after 30 s
  // Every live stream should have every event of its organization.
  const gap = () => {
    let deliveries = 0;
    let short = 0;
    for (let n = 0; n < streams.length; n++) {
      const s = streams[n];
      if (s === undefined || s.state === "ended") continue;
      const want = (base[n] as number) + (publishedTo[n % k] as number);
      if (s.received < want) {
        deliveries += want - s.received;
        short++;
      }
    }
    return { deliveries, streams: short };
  };
  const deadline = performance.now() + 10_000;
  let missing = gap();
  while (missing.deliveries > 0 && performance.now() < deadline) {
    await sleep(50);
    missing = gap();
  }
  const ms = (q: number) => hist.percentile(q) / 1000;
  return {
    ratePerSec: plan.ratePerSec,
    eventsPublished: published,
    publishFailures: failures,
    deliveriesMeasured: measured,
    deliveriesExpected: expected,
    everyEventDelivered: missing.deliveries === 0,
    deliveriesMissing: missing.deliveries,
    streamsMissingEvents: missing.streams,
    p50Ms: ms(50),
    p99Ms: ms(99),
    p999Ms: ms(99.9),
    maxMs: hist.max / 1000,
    meanMs: hist.mean / 1000,
    publishP50Ms: publishHist.percentile(50) / 1000,
    publishP99Ms: publishHist.percentile(99) / 1000,
    ...used,
  };
}

async function latency(p: Extract<LoadgenParams, { mode: "latency" }>) {
  const w = await openWatchers(p.streams, p.connections, () => 0, watchRequestFrame(false));
  const pub = new Publisher(target.host, target.port, PUBLISHER_TOKEN);
  const confirmed = await confirm(pub, confirmationFrame(0, 1), w.tally);
  const window = await latencyWindow(w, pub, { ...p, orgs: [0] }, false);
  const result = {
    streams: p.streams,
    streamsConfirmed: confirmed,
    streamsEnded: endReasons(w.tally),
    ...window,
    publishFailureReasons: Object.fromEntries(pub.failures),
    received: w.tally.received,
  };
  pub.close();
  for (const c of w.connections) c.close();
  return result;
}

/** The server's resident memory now (VmRSS) and at its peak (VmHWM), in bytes. */
function serverRss(): { rssBytes: number; peakRssBytes: number } | null {
  try {
    const status = readFileSync(`/proc/${target.serverPid}/status`, "utf8");
    const kb = (name: string) =>
      Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1]);
    return { rssBytes: kb("VmRSS") * 1024, peakRssBytes: kb("VmHWM") * 1024 };
  } catch {
    return null;
  }
}

/**
 * Scenario 7's latency parts: JSONL watchers (one connection each) of one organization or spread
 * over many, one event per publish at a fixed rate. With `probeMemory` (10,000 watchers), also
 * the server's memory before the watchers open and after the window, its peak RSS, and every
 * error counted.
 */
async function jsonlLatency(p: Extract<LoadgenParams, { mode: "jsonl-latency" }>) {
  const orgs = p.orgs <= 1 ? [0] : Array.from({ length: p.orgs }, (_, i) => 1 + i);
  const pub = new Publisher(target.host, target.port, PUBLISHER_TOKEN);
  const before = p.probeMemory ? await probe() : null;
  const t0 = performance.now();
  const w = await openJsonlWatchers(p.streams, (n) => orgs[n % orgs.length] as number);
  const first = orgs[0] as number;
  const confirmed = await confirm(pub, confirmationFrame(first, first + orgs.length), w.tally);
  const setupSeconds = (performance.now() - t0) / 1000;
  const window = await latencyWindow(w, pub, { ...p, orgs }, true);
  const rss = serverRss();
  const after = p.probeMemory ? await probe() : null;
  const ended = endReasons(w.tally);
  const errors = {
    streamsNotDelivering: p.streams - confirmed,
    streamsEnded: Object.values(ended).reduce((a, b) => a + b, 0),
    publishFailures: window.publishFailures,
    streamsMissingEvents: window.streamsMissingEvents,
  };
  const result = {
    streams: p.streams,
    orgs: orgs.length,
    streamsConfirmed: confirmed,
    setupSeconds,
    streamsEnded: ended,
    ...window,
    errors,
    errorCount: Object.values(errors).reduce((a, b) => a + b, 0),
    ...(p.probeMemory && {
      memory: perStream(before, after, confirmed),
      rssAtEndBytes: rss?.rssBytes ?? null,
      peakRssBytes: rss?.peakRssBytes ?? null,
    }),
    publishFailureReasons: Object.fromEntries(pub.failures),
    received: w.tally.received,
  };
  pub.close();
  for (const c of w.connections) c.close();
  return result;
}

async function dispatch(p: Extract<LoadgenParams, { mode: "dispatch" }>) {
  const body = watchRequestFrame(false);
  const targets = await openWatchers(p.targetStreams, 1, () => 0, body);
  const pub = new Publisher(target.host, target.port, PUBLISHER_TOKEN);
  const targetsConfirmed = await confirm(pub, confirmationFrame(0, 1), targets.tally);
  const frames = publishFrames(0, 1000, p.batch);
  const without = await closedLoop(pub, frames, targets.tally, p);
  // 1,000 other organizations, 10 idle streams each (with 10,000 streams).
  const orgs = Math.min(1000, p.idleStreams);
  const t1 = performance.now();
  const idle = await openWatchers(p.idleStreams, p.idleConnections, (n) => 1 + (n % orgs), body);
  const idleConfirmed = await confirm(pub, confirmationFrame(1, 1 + orgs), idle.tally);
  const idleSetupSeconds = (performance.now() - t1) / 1000;
  const withIdle = await closedLoop(pub, frames, targets.tally, p);
  const idleEnded = endReasons(idle.tally);
  // Again without them (A, B, A'): a drift in the server's cost over time (JIT, GC, a growing
  // store) then weighs on both sides of the ratio instead of on B alone.
  for (const c of idle.connections) c.close();
  await sleep(1000);
  const again = await closedLoop(pub, frames, targets.tally, p);
  const perEvent = (r: typeof without) =>
    r.deliveries > 0 ? (r.serverCpuSec / (r.deliveries / p.targetStreams)) * 1e6 : null;
  const a1 = perEvent(without);
  const a2 = perEvent(again);
  const a = a1 !== null && a2 !== null ? (a1 + a2) / 2 : null;
  const b = perEvent(withIdle);
  const result = {
    targetStreams: p.targetStreams,
    targetStreamsConfirmed: targetsConfirmed,
    idleStreams: p.idleStreams,
    idleStreamsConfirmed: idleConfirmed,
    idleSetupSeconds,
    streamsEnded: endReasons(targets.tally),
    idleStreamsEnded: idleEnded,
    withoutIdle: {
      ...without,
      serverCpuUsPerEvent: a,
      serverCpuUsPerEventBefore: a1,
      serverCpuUsPerEventAfter: a2,
    },
    withIdle: { ...withIdle, serverCpuUsPerEvent: b },
    withoutIdleAgain: { ...again, serverCpuUsPerEvent: a2 },
    costRatio: a !== null && b !== null ? b / a : null,
    publishFailureReasons: Object.fromEntries(pub.failures),
    received: targets.tally.received + idle.tally.received,
  };
  pub.close();
  for (const c of targets.connections) c.close();
  return result;
}

const WARMUP_STREAMS = 10;

/** Memory per stream = (after - before) / streams; `before` already has warm-up streams open. */
function perStream(before: ProbeData | null, after: ProbeData | null, streams: number) {
  if (before === null || after === null || streams === 0) return null;
  return {
    rssBytesPerStream: (after.rssBytes - before.rssBytes) / streams,
    heapBytesPerStream: (after.heapUsedBytes - before.heapUsedBytes) / streams,
    before,
    after,
  };
}

async function memoryH2(p: Extract<LoadgenParams, { mode: "memory-h2" }>) {
  const api = p.api ?? "watch";
  const body = api === "feed" ? feedRequestFrame("") : watchRequestFrame(false);
  const pub = new Publisher(target.host, target.port, PUBLISHER_TOKEN);
  // Warm-up streams load every lazily initialized code path before the baseline.
  const warm = await openWatchers(WARMUP_STREAMS, 1, (n) => 1 + n, body, api);
  await confirm(pub, confirmationFrame(1, 1 + WARMUP_STREAMS), warm.tally);
  await sleep(200);
  const before = await probe();
  const orgs = Math.min(1000, p.streams);
  const t0 = performance.now();
  const w = await openWatchers(p.streams, p.connections, (n) => 1 + (n % orgs), body, api);
  const confirmed = await confirm(pub, confirmationFrame(1, 1 + orgs), w.tally);
  const setupSeconds = (performance.now() - t0) / 1000;
  await sleep(500);
  const after = await probe();
  const result = {
    api,
    streams: p.streams,
    connections: p.connections,
    streamsConfirmed: confirmed,
    setupSeconds,
    streamsEnded: endReasons(w.tally),
    memory: perStream(before, after, confirmed),
  };
  pub.close();
  for (const c of [...warm.connections, ...w.connections]) c.close();
  return result;
}

async function memoryJsonl(p: Extract<LoadgenParams, { mode: "memory-jsonl" }>) {
  // Each request its own connection: the agent never has a free socket to reuse while the
  // earlier responses stream.
  const agent = new http.Agent({ keepAlive: true, maxSockets: p.streams + 100 });
  const requests: http.ClientRequest[] = [];
  let lines = 0;
  const open = (org: number) =>
    new Promise<boolean>((resolve) => {
      const req = http.request(
        {
          host: target.host,
          port: target.port,
          method: "POST",
          path: JSONL_PATH,
          agent,
          headers: {
            authorization: `Bearer ${memberToken(org)}`,
            "content-type": "application/jsonl",
          },
        },
        (res) => {
          let seen = false;
          res.on("data", (chunk: Buffer) => {
            if (!seen && chunk.includes(10)) {
              seen = true;
              lines++;
            }
          });
          res.on("error", () => {});
          resolve(res.statusCode === 200);
        },
      );
      req.on("error", () => resolve(false));
      req.setTimeout(CONFIRM_TIMEOUT_MS, () => {
        req.destroy();
        resolve(false);
      });
      req.end("{}");
      requests.push(req);
    });
  const openMany = async (from: number, count: number) => {
    let ok = 0;
    for (let i = 0; i < count; i += 100) {
      const batch = [];
      for (let j = i; j < Math.min(count, i + 100); j++) batch.push(open(1 + ((from + j) % 1000)));
      ok += (await Promise.all(batch)).filter(Boolean).length;
    }
    return ok;
  };
  const pub = new Publisher(target.host, target.port, PUBLISHER_TOKEN);
  await openMany(0, WARMUP_STREAMS);
  await sleep(200);
  const before = await probe();
  const opened = await openMany(WARMUP_STREAMS, p.streams);
  // Confirm: one event for every organization; every stream should print one line.
  const orgs = Math.min(1000, p.streams + WARMUP_STREAMS);
  await pub.publish(confirmationFrame(1, 1 + orgs));
  const deadline = performance.now() + CONFIRM_TIMEOUT_MS;
  while (lines < opened + WARMUP_STREAMS && performance.now() < deadline) await sleep(20);
  await sleep(500);
  const after = await probe();
  const result = {
    streams: p.streams,
    streamsOpened: opened,
    streamsConfirmed: Math.max(0, lines - WARMUP_STREAMS),
    memory: perStream(before, after, opened),
  };
  pub.close();
  for (const r of requests) r.destroy();
  agent.destroy();
  return result;
}

/**
 * Scenario 7: memory per idle JSONL watcher, measured as scenario 4 measures HTTP/2 streams
 * (warm-up streams first, then the baseline, then `streams` watchers of organizations 1..1000
 * opened and confirmed), with the raw JSONL client: one connection per watcher.
 */
async function jsonlMemory(p: Extract<LoadgenParams, { mode: "jsonl-memory" }>) {
  const pub = new Publisher(target.host, target.port, PUBLISHER_TOKEN);
  const warm = await openJsonlWatchers(WARMUP_STREAMS, (n) => 1 + n);
  await confirm(pub, confirmationFrame(1, 1 + WARMUP_STREAMS), warm.tally);
  await sleep(200);
  const before = await probe();
  const orgs = Math.min(1000, p.streams);
  const t0 = performance.now();
  const w = await openJsonlWatchers(p.streams, (n) => 1 + (n % orgs));
  const confirmed = await confirm(pub, confirmationFrame(1, 1 + orgs), w.tally);
  const setupSeconds = (performance.now() - t0) / 1000;
  await sleep(500);
  const after = await probe();
  const result = {
    streams: p.streams,
    streamsConfirmed: confirmed,
    setupSeconds,
    streamsEnded: endReasons(w.tally),
    memory: perStream(before, after, confirmed),
    received: w.tally.received + warm.tally.received,
  };
  pub.close();
  for (const c of [...warm.connections, ...w.connections]) c.close();
  return result;
}

/**
 * The cursor of the first message of a feed opened now: a checkpoint with the log's head. One
 * node:http2 stream (a single call, so node:http2's cost does not matter), closed once read.
 */
async function headCursor(): Promise<string> {
  const session = http2.connect(`http://${target.host}:${target.port}`);
  session.on("error", () => {}); // the stream reports its own failure
  try {
    return await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => fail("no checkpoint within 10 s"), 10_000);
      const fail = (why: string) => {
        clearTimeout(timer);
        reject(new Error(`feed: ${why}`));
      };
      const req = session.request({
        ":method": "POST",
        ":path": FEED_PATH,
        "content-type": "application/grpc",
        te: "trailers",
        authorization: `Bearer ${memberToken(0)}`,
      });
      let buf = Buffer.alloc(0);
      req.on("data", (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        if (buf.length < 5 || buf.length < 5 + buf.readUInt32BE(1)) return;
        clearTimeout(timer);
        const cursor = checkpointCursor(buf.subarray(5, 5 + buf.readUInt32BE(1)));
        req.close(http2.constants.NGHTTP2_CANCEL);
        if (cursor === undefined) fail("the first message is not a checkpoint");
        else resolve(cursor);
      });
      req.on("error", (err) => fail(err.message));
      // After a resolve, a later reject does nothing.
      req.on("close", () => fail("the stream closed before its first message"));
      req.end(feedRequestFrame(""));
    });
  } finally {
    session.destroy();
  }
}

/**
 * Publishes `total` events in `frames` of `batch` events, at most `inflight` at once, as fast as
 * the server answers; stops early after 100 failed publishes or `timeoutMs`.
 */
async function publishAll(
  pub: Publisher,
  frames: Buffer[],
  total: number,
  batch: number,
  inflight: number,
  timeoutMs: number,
) {
  const t0 = performance.now();
  const deadline = t0 + timeoutMs;
  let accepted = 0;
  let failures = 0;
  let outstanding = 0;
  let k = 0;
  let slotFreed: (() => void) | undefined;
  while (accepted + outstanding * batch < total && failures < 100) {
    if (performance.now() >= deadline) break;
    if (outstanding >= inflight) {
      await new Promise<void>((resolve) => {
        slotFreed = resolve;
      });
      continue;
    }
    outstanding++;
    void pub.publish(frames[k++ % frames.length] as Buffer).then((ok) => {
      outstanding--;
      if (ok) accepted += batch;
      else failures++;
      const wake = slotFreed;
      slotFreed = undefined;
      wake?.();
    });
  }
  while (outstanding > 0) {
    await new Promise<void>((resolve) => {
      slotFreed = resolve;
    });
  }
  const seconds = (performance.now() - t0) / 1000;
  return { accepted, failures, seconds, eventsPerSec: accepted / seconds };
}

/**
 * Scenario 8, replay: on a fresh server, a cursor from before any event (the first checkpoint
 * of a feed opened first), then `events` events published, then one feed stream with that
 * cursor as `after`, timed from the moment its request is sent until its last event arrives.
 * The stream counts events only; every one must arrive, and no more.
 */
async function feedReplay(p: Extract<LoadgenParams, { mode: "feed-replay" }>) {
  const cursor = await headCursor();
  const pub = new Publisher(target.host, target.port, PUBLISHER_TOKEN);
  const published = await publishAll(
    pub,
    publishFrames(0, 5000, p.batch),
    p.events,
    p.batch,
    p.inflight,
    300_000,
  );
  const expected = published.accepted;
  const tally = new Tally();
  tally.skipFirstByte = FEED_CHECKPOINT_TAG;
  const conn = new H2Connection({ host: target.host, port: target.port });
  await conn.ready;
  const block = grpcHeaderBlock(`${target.host}:${target.port}`, FEED_PATH, memberToken(0));
  const body = feedRequestFrame(cursor);
  // Memory after a full GC (which also clears the publishes' garbage before the clock starts).
  const memoryBefore = await probe();
  await sleep(500);
  const pgStart = target.database === undefined ? undefined : postgresCpu(target.database);
  const start = sample(tally);
  conn.open([block], body, tally);
  const gotFirst = await tally.waitForMin(1, 30_000);
  const first = performance.now();
  // Bounded: 60 s, or longer for a replay slower than 5,000 events/s.
  const complete = gotFirst && (await tally.waitForMin(expected, Math.max(60_000, expected / 5)));
  const end = sample(tally);
  const pgEnd = target.database === undefined ? undefined : postgresCpu(target.database);
  const peakRss = serverRss()?.peakRssBytes ?? null;
  // Anything after the last event would be a duplicate.
  await sleep(300);
  const memoryAfter = await probe();
  const seconds = (end.t - start.t) / 1000;
  const serverCpuSec = end.serverCpu - start.serverCpu;
  const postgresSec =
    pgStart === undefined || pgEnd === undefined ? null : postgresCpuBetween(pgStart, pgEnd);
  const stream = tally.streams[0];
  const used = cores(start, end);
  const postgresCores = postgresSec === null ? null : postgresSec / seconds;
  const result = {
    events: p.events,
    eventsPublished: expected,
    publishSeconds: published.seconds,
    publishEventsPerSec: published.eventsPerSec,
    publishFailures: published.failures,
    publishFailureReasons: Object.fromEntries(pub.failures),
    complete,
    eventsReceived: end.delivered,
    eventsReceivedAfterWait: tally.received,
    checkpointsReceived: tally.skipped,
    streamEnded: stream?.state === "ended" ? stream.endReason : null,
    seconds,
    eventsPerSec: complete ? expected / seconds : null,
    msToFirstEvent: gotFirst ? first - start.t : null,
    eventsPerSecAfterFirst:
      complete && end.t > first ? (expected - 1) / ((end.t - first) / 1000) : null,
    serverCpuSec,
    serverCpuUsPerEvent: end.delivered > 0 ? (serverCpuSec / end.delivered) * 1e6 : null,
    ...used,
    otherCores: Math.max(0, used.otherCores - (postgresCores ?? 0)),
    postgresCores,
    /** After a full GC, before the replay and 0.3 s after its last event (the stream still open). */
    memoryBefore,
    memoryAfter,
    /** The server's peak RSS (VmHWM) at the last event: publishing included. */
    peakRssBytes: peakRss,
  };
  pub.close();
  conn.close();
  return result;
}

/** p50, p99 and max of `values` (ms), or nulls when there are none. */
function percentiles(values: number[]) {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) =>
    sorted.length === 0
      ? null
      : (sorted[Math.min(sorted.length - 1, Math.ceil((q / 100) * sorted.length) - 1)] as number);
  return { count: sorted.length, p50Ms: at(50), p99Ms: at(99), maxMs: sorted.at(-1) ?? null };
}

/**
 * Scenario 10's probes for one window: WatchEvents latency (publish sent to event received, one
 * watcher of organization 2, node:http2, events matched to publishes in order) and GET /healthz
 * latency (one request at a time, a new one every 1000 / ratePerSec ms when the last is back).
 */
async function probeWindow(
  pub: Publisher,
  watcher: { arrivals: number[] },
  frames: Buffer[],
  ratePerSec: number,
  durationMs: number,
) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const sent: number[] = [];
  const firstArrival = watcher.arrivals.length;
  const health: number[] = [];
  let healthBusy = false;
  const interval = 1000 / ratePerSec;
  const end = performance.now() + durationMs;
  let k = 0;
  while (performance.now() < end) {
    const t = performance.now();
    sent.push(t);
    void pub.publish(frames[k++ % frames.length] as Buffer);
    if (!healthBusy) {
      healthBusy = true;
      const req = http.get(
        { host: target.host, port: target.port, path: "/healthz", agent },
        (res) => {
          res.resume();
          res.on("end", () => {
            health.push(performance.now() - t);
            healthBusy = false;
          });
        },
      );
      req.on("error", () => {
        healthBusy = false;
      });
    }
    await sleep(Math.max(0, t + interval - performance.now()));
  }
  // The last events and health checks: at most 30 s (a frozen server is what is measured).
  const deadline = performance.now() + 30_000;
  while (
    (watcher.arrivals.length - firstArrival < sent.length || healthBusy) &&
    performance.now() < deadline
  ) {
    await sleep(20);
  }
  agent.destroy();
  const arrivals = watcher.arrivals.slice(firstArrival, firstArrival + sent.length);
  return {
    published: sent.length,
    received: arrivals.length,
    watchEvents: percentiles(arrivals.map((a, i) => a - (sent[i] as number))),
    healthz: percentiles(health),
  };
}

/** Scenario 10: see LoadgenParams' "replay-storm". */
async function replayStorm(p: Extract<LoadgenParams, { mode: "replay-storm" }>) {
  const cursor = await headCursor();
  const pub = new Publisher(target.host, target.port, PUBLISHER_TOKEN);
  const published = await publishAll(
    pub,
    publishFrames(1, 5000, p.batch),
    p.events,
    p.batch,
    p.inflight,
    600_000,
  );
  // The watcher: WatchEvents of organization 2, one arrival time per gRPC message.
  const session = http2.connect(`http://${target.host}:${target.port}`);
  session.on("error", () => {});
  const watcher = { arrivals: [] as number[] };
  const watch = session.request({
    ":method": "POST",
    ":path": WATCH_PATH,
    "content-type": "application/grpc",
    te: "trailers",
    authorization: `Bearer ${memberToken(2)}`,
  });
  let pending = Buffer.alloc(0);
  watch.on("data", (chunk: Buffer) => {
    const now = performance.now();
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= 5 && pending.length >= 5 + pending.readUInt32BE(1)) {
      pending = pending.subarray(5 + pending.readUInt32BE(1));
      watcher.arrivals.push(now);
    }
  });
  watch.on("error", () => {});
  watch.end(watchRequestFrame(false));
  await sleep(500);
  const frames = publishFrames(2, 1000, 1);
  const baseline = await probeWindow(pub, watcher, frames, p.ratePerSec, p.baselineMs);

  // The attackers: each its own member, its own connection, replaying from the start in a loop.
  let stormOver = false;
  const outcomes = new Map<string, number>();
  let opened = 0;
  const sessions: http2.ClientHttp2Session[] = [];
  const attacker = async (i: number) => {
    const s = http2.connect(`http://${target.host}:${target.port}`);
    s.on("error", () => {});
    sessions.push(s);
    while (!stormOver && !s.destroyed) {
      opened++;
      await new Promise<void>((resolve) => {
        const req = s.request({
          ":method": "POST",
          ":path": FEED_PATH,
          "content-type": "application/grpc",
          te: "trailers",
          authorization: `Bearer ${memberToken(3 + i)}`,
        });
        let status = "hung up";
        const timer = setTimeout(() => req.close(http2.constants.NGHTTP2_CANCEL), p.hangUpMs);
        const note = (h: http2.IncomingHttpHeaders) => {
          if (h["grpc-status"] !== undefined) status = `grpc-status ${String(h["grpc-status"])}`;
        };
        req.on("response", note);
        req.on("trailers", note);
        req.on("data", () => {});
        req.on("error", () => {});
        req.on("close", () => {
          clearTimeout(timer);
          outcomes.set(status, (outcomes.get(status) ?? 0) + 1);
          resolve();
        });
        req.end(feedRequestFrame(cursor));
      });
    }
    s.destroy();
  };
  const attackers = Array.from({ length: p.attackers }, (_, i) => attacker(i));
  const storm = await probeWindow(pub, watcher, frames, p.ratePerSec, p.stormMs);
  stormOver = true;
  // A frozen server reads nothing, so a cancel may never leave: destroying the sessions closes
  // every stream at once, and the attackers end.
  for (const s of sessions) s.destroy();
  await Promise.all(attackers);
  watch.close(http2.constants.NGHTTP2_CANCEL);
  session.destroy();
  pub.close();
  return {
    events: p.events,
    eventsPublished: published.accepted,
    publishSeconds: published.seconds,
    attackers: p.attackers,
    hangUpMs: p.hangUpMs,
    replaysOpened: opened,
    replayOutcomes: Object.fromEntries(outcomes),
    baseline,
    storm,
  };
}

/**
 * Scenario 9: replicas of ours on one PostgreSQL database. Publishes on replica A (the target),
 * watches on the others. (1) PostgreSQL's idle CPU with every watcher open and nothing
 * published; (2) closed-loop fan-out as scenario 1, the streams spread over the replicas other
 * than A, with PostgreSQL's CPU over the loop; (3) latency at a moderate rate, one event per
 * publish, `latencyStreams` streams on A (same replica) and as many on B (cross replica) at
 * the same time, with PostgreSQL's CPU over that window too.
 */
async function replicas(p: Extract<LoadgenParams, { mode: "replicas" }>) {
  const ports = target.replicaPorts ?? [target.port];
  const database = target.database;
  if (database === undefined) throw new Error("replicas: no database");
  const others = ports.slice(1);
  if (others.length === 0) throw new Error("replicas: one replica only");
  const body = watchRequestFrame(false);
  // (1) Fan-out watchers on B, C, …, one tally for all of them.
  const tally = new Tally();
  const connections: { close(): void }[] = [];
  for (const [i, port] of others.entries()) {
    const n = Math.floor(p.streams / others.length) + (i < p.streams % others.length ? 1 : 0);
    const c = Math.max(1, Math.round(p.connections / others.length));
    const w = await openWatchers(n, c, () => 0, body, "watch", port, tally);
    connections.push(...w.connections);
  }
  const pub = new Publisher(target.host, target.port, PUBLISHER_TOKEN);
  const confirmed = await confirm(pub, confirmationFrame(0, 1), tally);
  // Idle baseline, after the confirmation (every replica has LISTENed and caught up).
  await sleep(500);
  const idle0 = postgresCpu(database);
  const idleT0 = performance.now();
  await sleep(p.idleMs);
  const idleSec = postgresCpuBetween(idle0, postgresCpu(database));
  const idleCores = idleSec / ((performance.now() - idleT0) / 1000);
  // (2) Closed loop.
  const pg0 = postgresCpu(database);
  const loopT0 = performance.now();
  const frames = publishFrames(0, 1000, p.batch);
  const loop = await closedLoop(pub, frames, tally, p);
  const loopSeconds = (performance.now() - loopT0) / 1000;
  const loopPgSec = postgresCpuBetween(pg0, postgresCpu(database));
  const perEvent = (sec: number, seconds: number, events: number) =>
    events > 0 ? (Math.max(0, sec - idleCores * seconds) / events) * 1e6 : null;
  const fanout = {
    streams: p.streams,
    streamsConfirmed: confirmed,
    streamsEnded: endReasons(tally),
    ...loop,
    postgresCores: loopPgSec / loopSeconds,
    postgresCpuUsPerEvent: perEvent(loopPgSec, loopSeconds, loop.eventsPublished),
    postgresCpuUsPerEventPerReplica:
      (perEvent(loopPgSec, loopSeconds, loop.eventsPublished) ?? 0) / ports.length,
  };
  for (const c of connections) c.close();
  // (3) Latency: streams on A and on B at once.
  const same = await openWatchers(p.latencyStreams, 1, () => 0, body, "watch", target.port);
  const cross = await openWatchers(p.latencyStreams, 1, () => 0, body, "watch", others[0]);
  await confirm(pub, confirmationFrame(0, 1), same.tally);
  await cross.tally.waitForMin(1, 10_000);
  await sleep(200);
  const crossBase = cross.tally.streams.map((s) => s.received);
  const hist = createHistogram({ lowest: 1, highest: 600_000_000, figures: 3 });
  let nowUs = 0;
  const fromUs = (performance.now() + 10 + p.latencyWarmupMs) * 1000;
  const toUs = fromUs + p.latencyDurationMs * 1000;
  cross.tally.onChunk = () => {
    nowUs = performance.now() * 1000;
  };
  cross.tally.onMessage = (buf, start, length) => {
    const sent = sentMicros(buf, start, length);
    if (sent >= fromUs && sent < toUs) hist.record(Math.max(1, Math.round(nowUs - sent)));
  };
  const lat0 = postgresCpu(database);
  const latT0 = performance.now();
  const sameWindow = await latencyWindow(
    same,
    pub,
    {
      orgs: [0],
      ratePerSec: p.ratePerSec,
      warmupMs: p.latencyWarmupMs,
      durationMs: p.latencyDurationMs,
    },
    false,
  );
  const latSeconds = (performance.now() - latT0) / 1000;
  const latPgSec = postgresCpuBetween(lat0, postgresCpu(database));
  const wantCross = (n: number) => (crossBase[n] as number) + sameWindow.eventsPublished;
  const crossComplete = await (async () => {
    const deadline = performance.now() + 10_000;
    for (;;) {
      const short = cross.tally.streams.filter(
        (s, n) => s.state !== "ended" && s.received < wantCross(n),
      ).length;
      if (short === 0) return true;
      if (performance.now() > deadline) return false;
      await sleep(50);
    }
  })();
  const ms = (q: number) => hist.percentile(q) / 1000;
  const result = {
    replicas: ports.length,
    idle: { seconds: p.idleMs / 1000, postgresCores: idleCores },
    fanout,
    latency: {
      streamsPerSide: p.latencyStreams,
      ratePerSec: p.ratePerSec,
      same: sameWindow,
      cross: {
        deliveriesMeasured: hist.count,
        everyEventDelivered: crossComplete,
        p50Ms: ms(50),
        p99Ms: ms(99),
        p999Ms: ms(99.9),
        maxMs: hist.max / 1000,
      },
      postgresCores: latPgSec / latSeconds,
      postgresCpuUsPerEvent: perEvent(latPgSec, latSeconds, sameWindow.eventsPublished),
      postgresCpuUsPerEventPerReplica:
        (perEvent(latPgSec, latSeconds, sameWindow.eventsPublished) ?? 0) / ports.length,
    },
    received: tally.received,
  };
  pub.close();
  for (const c of [...same.connections, ...cross.connections]) c.close();
  return result;
}

// --- scenario 11: scale on one process -------------------------------------------------------

/** CLOCK_MONOTONIC in ms (process.hrtime): the same clock in the load generator and its helpers. */
function monotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** The server's CPU seconds so far: user and system time (all threads), and its main thread's. */
interface CpuSplit {
  readonly user: number;
  readonly system: number;
  readonly main: number;
}

function serverCpuSplit(): CpuSplit {
  const fields = (path: string) => {
    const stat = readFileSync(path, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  };
  const all = fields(`/proc/${target.serverPid}/stat`);
  // The main thread (its tid is the pid) runs the JS; the others are V8's GC helpers and
  // libuv's thread pool (fdatasync, file I/O).
  const main = fields(`/proc/${target.serverPid}/task/${target.serverPid}/stat`);
  return {
    user: Number(all[11]) / target.clkTck,
    system: Number(all[12]) / target.clkTck,
    main: (Number(main[11]) + Number(main[12])) / target.clkTck,
  };
}

/** CPU between two readings, in ms (ticks of 1 / CLK_TCK s, 10 ms here). */
function cpuBetween(a: CpuSplit, b: CpuSplit) {
  const user = (b.user - a.user) * 1000;
  const system = (b.system - a.system) * 1000;
  const main = (b.main - a.main) * 1000;
  return {
    totalMs: user + system,
    userMs: user,
    systemMs: system,
    mainThreadMs: main,
    otherThreadsMs: user + system - main,
  };
}

/** The server's open-file limit (soft; Node raises it to the hard limit) and files open now. */
function serverOpenFiles(): { limit: number; open: number } | null {
  try {
    const limits = readFileSync(`/proc/${target.serverPid}/limits`, "utf8");
    const m = /^Max open files\s+(\S+)/m.exec(limits);
    const limit = m?.[1] === "unlimited" ? Number.POSITIVE_INFINITY : Number(m?.[1]);
    return { limit, open: readdirSync(`/proc/${target.serverPid}/fd`).length };
  } catch {
    return null;
  }
}

/**
 * A group of watchers that the scale scenario drives as one: in this process (LocalShard), or
 * in a helper process (RemoteShard) when this one has not enough open files for them.
 */
interface Shard {
  /** Opens the streams; resolves once every response head arrived (or the stream ended). */
  open(timeoutMs: number): Promise<number>;
  state(): Promise<ShardState>;
  restart(): Promise<void>;
  /** Arms a wait until every live stream has `min` messages (since the last restart). */
  arm(min: number, timeoutMs: number): Promise<void>;
  /** The armed wait's outcome, once it is over. */
  result(): Promise<ShardWait>;
  close(): Promise<void>;
}

class LocalShard implements Shard {
  readonly tally = new Tally();
  private watchers: Watchers | undefined;
  private wait: Promise<ShardWait> | undefined;

  constructor(private readonly openWith: (tally: Tally) => Promise<Watchers>) {}

  async open(timeoutMs: number): Promise<number> {
    const deadline = performance.now() + timeoutMs;
    this.watchers = await this.openWith(this.tally);
    // HTTP/2 streams are only written by now: wait for their response heads. (Ours sends the
    // head once the stream is subscribed, limit at once: either way it is ready for events.)
    const streams = this.tally.streams;
    while (streams.some((s) => s.state === "opening") && performance.now() < deadline) {
      await sleep(20);
    }
    return streams.length;
  }

  async state(): Promise<ShardState> {
    const ended: Record<string, number> = {};
    let live = 0;
    let delivering = 0;
    for (const s of this.tally.streams) {
      if (s.state === "ended") ended[s.endReason] = (ended[s.endReason] ?? 0) + 1;
      else {
        live++;
        if (s.received >= 1) delivering++;
      }
    }
    return { received: this.tally.received, live, delivering, ended };
  }

  async restart(): Promise<void> {
    this.tally.restart();
  }

  async arm(min: number, timeoutMs: number): Promise<void> {
    let first: number | null = null;
    this.tally.onChunk = () => {
      if (first === null) first = monotonicMs();
    };
    const cpu0 = ownCpuSec();
    this.wait = this.tally.waitForMin(min, timeoutMs).then((ok) => {
      const lastAtMs = monotonicMs();
      this.tally.onChunk = undefined;
      return { ok, firstAtMs: first, lastAtMs, cpuMs: (ownCpuSec() - cpu0) * 1000 };
    });
  }

  result(): Promise<ShardWait> {
    const wait = this.wait;
    this.wait = undefined;
    return wait ?? Promise.reject(new Error("no wait armed"));
  }

  async close(): Promise<void> {
    for (const c of this.watchers?.connections ?? []) c.close();
  }
}

/** A LocalShard of JSONL watchers in a helper process (loadgen.js forked), driven over IPC. */
class RemoteShard implements Shard {
  private readonly child: ChildProcess;
  private seq = 0;
  private readonly pending = new Map<
    number,
    (reply: { value?: unknown; error?: string }) => void
  >();

  constructor(
    private readonly streams: number,
    private readonly org: number,
  ) {
    // Inherits the load generator's CPU affinity (taskset), so it runs on the load generator's CPU.
    this.child = fork(fileURLToPath(import.meta.url), [], {
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    this.child.on("message", (m: FromLoadgen) => {
      if (m.type !== "shard-reply") return;
      this.pending.get(m.id)?.(m.reply as { value?: unknown; error?: string });
      this.pending.delete(m.id);
    });
    this.child.on("exit", (code) => {
      for (const reply of this.pending.values()) reply({ error: `helper exited (${code})` });
      this.pending.clear();
    });
  }

  private ask<T>(request: ShardRequest): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (!this.child.connected) {
        reject(new Error("helper gone"));
        return;
      }
      const id = ++this.seq;
      this.pending.set(id, (reply) => {
        if (reply.error !== undefined) reject(new Error(`helper: ${reply.error}`));
        else resolve(reply.value as T);
      });
      const m: ToLoadgen = { type: "shard", id, request };
      this.child.send(m);
    });
  }

  async open(timeoutMs: number): Promise<number> {
    const request = { op: "open", target, streams: this.streams, org: this.org } as const;
    const timer = new AbortController();
    try {
      return await Promise.race([
        this.ask<number>(request),
        sleep(timeoutMs, undefined, { signal: timer.signal }).then(() => {
          throw new Error(`helper: not open within ${timeoutMs} ms`);
        }),
      ]);
    } finally {
      timer.abort();
    }
  }

  state(): Promise<ShardState> {
    return this.ask({ op: "state" });
  }

  restart(): Promise<void> {
    return this.ask({ op: "restart" });
  }

  arm(min: number, timeoutMs: number): Promise<void> {
    return this.ask({ op: "arm", min, timeoutMs });
  }

  result(): Promise<ShardWait> {
    return this.ask({ op: "result" });
  }

  async close(): Promise<void> {
    await this.ask({ op: "close" }).catch(() => {});
    this.child.kill("SIGKILL");
  }
}

/** In a helper process: its one shard, driven by the load generator that forked it. */
let helperShard: LocalShard | undefined;

function serveShard(id: number, request: ShardRequest): void {
  const reply = (work: () => Promise<unknown>) => {
    work().then(
      (value) => send({ type: "shard-reply", id, reply: { value } }),
      (err: unknown) =>
        send({ type: "shard-reply", id, reply: { error: (err as Error).message ?? String(err) } }),
    );
  };
  const shard = () => {
    if (helperShard === undefined) throw new Error("no shard opened");
    return helperShard;
  };
  switch (request.op) {
    case "open": {
      target = request.target;
      // Leave with the load generator: a helper never outlives it.
      process.once("disconnect", () => process.exit(0));
      const { streams, org } = request;
      const opened = new LocalShard((tally) => openJsonlWatchers(streams, () => org, tally));
      helperShard = opened;
      // openJsonlWatchers waits for every response head itself.
      reply(() => opened.open(0));
      return;
    }
    case "state":
      reply(() => shard().state());
      return;
    case "restart":
      reply(() => shard().restart());
      return;
    case "arm":
      reply(() => shard().arm(request.min, request.timeoutMs));
      return;
    case "result":
      reply(() => shard().result());
      return;
    case "close":
      reply(async () => {
        await shard().close();
        setTimeout(() => process.exit(0), 100).unref();
      });
      return;
  }
}

const profiles = new Map<number, (file: string | null, error?: string) => void>();
let profileId = 0;
/** Asks the orchestrator to start or stop a CPU profile of the server (scenario 11). */
function profileServer(action: "start" | "stop"): Promise<{ file: string | null; error?: string }> {
  const id = ++profileId;
  return new Promise((resolve) => {
    profiles.set(id, (file, error) => resolve({ file, ...(error !== undefined && { error }) }));
    send({ type: "profile", id, action });
  });
}

/** Scenario 11: after a fan-out, until no stream receives anything for 500 ms (15 s at most). */
async function quiet(shards: readonly Shard[]): Promise<void> {
  const total = async () =>
    (await Promise.all(shards.map((s) => s.state()))).reduce((a, s) => a + s.received, 0);
  const deadline = performance.now() + 15_000;
  let last = await total();
  let still = 0;
  while (still < 2 && performance.now() < deadline) {
    await sleep(250);
    const now = await total();
    still = now === last ? still + 1 : 0;
    last = now;
  }
}

/** One wait over all shards: armed on each, then their outcomes. */
async function waitAll(shards: readonly Shard[], min: number, timeoutMs: number) {
  await Promise.all(shards.map((s) => s.arm(min, timeoutMs)));
  return Promise.all(shards.map((s) => s.result()));
}

/** Between rounds, so that one round's after-work (GC) is not the next one's. */
const SCALE_ROUND_GAP_MS = 500;
/**
 * Files the server keeps open besides the JSONL connections (listening socket, the store's
 * files, IPC, the publisher's connection, warm-up streams), with room to spare.
 */
const SCALE_FD_RESERVE = 300;

/** One event published to every stream: times from the publish (ms), and the server's CPU. */
interface ScaleRound extends ReturnType<typeof cpuBetween> {
  /** Every live stream had it (within SCALE_ROUND_TIMEOUT_MS) and Publish succeeded. */
  readonly complete: boolean;
  /** Until the first socket chunk reached the load generator (null: none). */
  readonly firstMs: number | null;
  /** Until the last live stream had it. */
  readonly lastMs: number;
  /** Until Publish was answered. */
  readonly publishMs: number;
  /** The load generator's CPU over the round: all its processes, and its busiest one. */
  readonly loadgenCpuMs: number;
  readonly loadgenBusiestCpuMs: number;
  /** The machine's CPU used by neither the server nor the load generator over the round. */
  readonly otherCores: number;
}

function median(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)] as number;
}

/**
 * Scenario 11: `streams` idle watchers of organization 0 (gRPC over HTTP/2 connections, or
 * JSONL, one HTTP/1.1 connection each, in helper processes when they do not fit this one's
 * open-file limit). Measures memory per stream (probe, after a full GC), the time to open them
 * all (every response head) and to see a first event on every one, the server's idle CPU with
 * them open, then `rounds` times: one event published to all, the time until the first and the
 * last stream have it and until Publish is answered, and the server's CPU for it, split.
 */
async function scale(p: Extract<LoadgenParams, { mode: "scale" }>) {
  const jsonl = p.protocol === "jsonl";
  const files = serverOpenFiles();
  // JSONL needs a file per stream on the server: what does not fit is not asked for.
  let streams = p.streams;
  if (jsonl && files !== null && streams + WARMUP_STREAMS + SCALE_FD_RESERVE > files.limit) {
    streams = Math.max(
      0,
      Math.floor((files.limit - WARMUP_STREAMS - SCALE_FD_RESERVE) / 100) * 100,
    );
  }
  const pub = new Publisher(target.host, target.port, PUBLISHER_TOKEN);
  const body = watchRequestFrame(false);
  const warm = jsonl
    ? await openJsonlWatchers(WARMUP_STREAMS, (n) => 1 + n)
    : await openWatchers(WARMUP_STREAMS, 1, (n) => 1 + n, body);
  await confirm(pub, confirmationFrame(1, 1 + WARMUP_STREAMS), warm.tally);
  await sleep(200);
  const before = await probe();
  const shards: Shard[] = [];
  if (!jsonl) {
    shards.push(
      new LocalShard((tally) =>
        openWatchers(streams, p.connections, () => 0, body, "watch", target.port, tally),
      ),
    );
  } else if (streams <= p.jsonlPerProcess) {
    shards.push(new LocalShard((tally) => openJsonlWatchers(streams, () => 0, tally)));
  } else {
    const k = Math.ceil(streams / p.jsonlPerProcess);
    for (let i = 0; i < k; i++) {
      shards.push(new RemoteShard(Math.floor(streams / k) + (i < streams % k ? 1 : 0), 0));
    }
  }
  try {
    const cpu0 = serverCpuSplit();
    const t0 = performance.now();
    await Promise.all(shards.map((s) => s.open(scaleOpenTimeoutMs(streams))));
    const openSeconds = (performance.now() - t0) / 1000;
    // One event to organization 0 reaches every stream open by now; again every 5 s for any
    // the server had not set up yet (there is no replay), until the time-out.
    const deadline = performance.now() + scaleConfirmTimeoutMs(streams);
    const confirmFrame = confirmationFrame(0, 1);
    let confirmPublishes = 0;
    while (performance.now() < deadline) {
      confirmPublishes++;
      if (!(await pub.publish(confirmFrame))) await sleep(100);
      const left = deadline - performance.now();
      const waits = await waitAll(shards, 1, Math.max(1, Math.min(5000, left)));
      if (waits.every((w) => w.ok)) break;
    }
    const setupSeconds = (performance.now() - t0) / 1000;
    const setupCpu = cpuBetween(cpu0, serverCpuSplit());
    await quiet(shards);
    const confirmed = (await Promise.all(shards.map((s) => s.state()))).reduce(
      (a, s) => a + s.delivering,
      0,
    );
    await sleep(500);
    const after = await probe();
    const rss = serverRss();
    // The server's own work with every stream open and nothing published (timers, pings).
    const i0 = serverCpuSplit();
    const it0 = performance.now();
    await sleep(1000);
    const idle = cpuBetween(i0, serverCpuSplit());
    const idleCores = idle.totalMs / (performance.now() - it0);

    await Promise.all(shards.map((s) => s.restart()));
    const profileStart = p.profile ? await profileServer("start") : undefined;
    const frames = publishFrames(0, 1000, 1);
    const rounds: ScaleRound[] = [];
    for (let r = 1; r <= p.rounds; r++) {
      await Promise.all(shards.map((s) => s.arm(r, SCALE_ROUND_TIMEOUT_MS)));
      const own0 = ownCpuSec();
      const machine0 = machineBusySec();
      const c0 = serverCpuSplit();
      const sentAt = monotonicMs();
      const answered = pub
        .publish(frames[r % frames.length] as Buffer)
        .then((ok) => ({ ok, at: monotonicMs() }));
      const waits = await Promise.all(shards.map((s) => s.result()));
      const ack = await answered;
      const cpu = cpuBetween(c0, serverCpuSplit());
      const roundMs = monotonicMs() - sentAt;
      const machineMs = (machineBusySec() - machine0) * 1000;
      // The load generator: this process, and the helpers (a local shard's CPU is this one's).
      const ownMs = (ownCpuSec() - own0) * 1000;
      const helpersMs = waits.flatMap((w, i) =>
        shards[i] instanceof RemoteShard ? [w.cpuMs] : [],
      );
      const loadgenMs = helpersMs.reduce((a, b) => a + b, ownMs);
      const firsts = waits.flatMap((w) => (w.firstAtMs === null ? [] : [w.firstAtMs]));
      rounds.push({
        complete: ack.ok && waits.every((w) => w.ok),
        firstMs: firsts.length > 0 ? Math.min(...firsts) - sentAt : null,
        lastMs: Math.max(...waits.map((w) => w.lastAtMs)) - sentAt,
        publishMs: ack.at - sentAt,
        ...cpu,
        loadgenCpuMs: loadgenMs,
        loadgenBusiestCpuMs: Math.max(ownMs, ...helpersMs),
        otherCores: Math.max(0, machineMs - cpu.totalMs - loadgenMs) / roundMs,
      });
      await sleep(SCALE_ROUND_GAP_MS);
    }
    const profile =
      profileStart === undefined
        ? undefined
        : profileStart.error !== undefined
          ? profileStart
          : await profileServer("stop");
    const states = await Promise.all(shards.map((s) => s.state()));
    const ended: Record<string, number> = {};
    for (const s of states) {
      for (const [reason, n] of Object.entries(s.ended)) ended[reason] = (ended[reason] ?? 0) + n;
    }
    const live = states.reduce((a, s) => a + s.live, 0);
    const med = (f: (r: ScaleRound) => number | null) =>
      median(rounds.flatMap((r) => (f(r) === null ? [] : [f(r) as number])));
    const cpuMs = med((r) => r.totalMs);
    return {
      protocol: p.protocol,
      streamsRequested: p.streams,
      streams,
      connections: jsonl ? streams : p.connections,
      helperProcesses: shards.filter((s) => s instanceof RemoteShard).length,
      serverOpenFiles: files,
      streamsConfirmed: confirmed,
      streamsEnded: ended,
      openSeconds,
      setupSeconds,
      confirmPublishes,
      setupCpu,
      memory: perStream(before, after, confirmed),
      rssNoGcBytes: rss?.rssBytes ?? null,
      peakRssBytes: rss?.peakRssBytes ?? null,
      idle: { ...idle, serverCores: idleCores },
      rounds,
      fanout: {
        rounds: rounds.length,
        everyRoundComplete: rounds.every((r) => r.complete) && Object.keys(ended).length === 0,
        firstMs: med((r) => r.firstMs),
        lastMs: med((r) => r.lastMs),
        lastMsMax: rounds.length > 0 ? Math.max(...rounds.map((r) => r.lastMs)) : null,
        publishMs: med((r) => r.publishMs),
        cpuMs,
        userMs: med((r) => r.userMs),
        systemMs: med((r) => r.systemMs),
        mainThreadMs: med((r) => r.mainThreadMs),
        otherThreadsMs: med((r) => r.otherThreadsMs),
        cpuUsPerDelivery: cpuMs !== null && live > 0 ? (cpuMs * 1000) / live : null,
        loadgenCpuMs: med((r) => r.loadgenCpuMs),
        loadgenBusiestCpuMs: med((r) => r.loadgenBusiestCpuMs),
        otherCores: med((r) => r.otherCores),
      },
      ...(profile !== undefined && { profile }),
      received: states.reduce((a, s) => a + s.received, 0) + warm.tally.received,
    };
  } finally {
    await Promise.all(shards.map((s) => s.close()));
    for (const c of warm.connections) c.close();
    pub.close();
  }
}

async function run(params: LoadgenParams): Promise<Record<string, unknown>> {
  switch (params.mode) {
    case "scale":
      return scale(params);
    case "replicas":
      return replicas(params);
    case "feed-replay":
      return feedReplay(params);
    case "replay-storm":
      return replayStorm(params);
    case "fanout":
    case "jsonl-fanout":
      return fanout(params);
    case "jsonl-latency":
      return jsonlLatency(params);
    case "jsonl-memory":
      return jsonlMemory(params);
    case "latency":
      return latency(params);
    case "dispatch":
      return dispatch(params);
    case "persist":
      return persist(params);
    case "memory-h2":
      return memoryH2(params);
    case "memory-jsonl":
      return memoryJsonl(params);
  }
}

process.on("message", (m: ToLoadgen) => {
  if (m.type === "probe-result") {
    probes.get(m.id)?.(m.data);
    probes.delete(m.id);
    return;
  }
  if (m.type === "profile-result") {
    profiles.get(m.id)?.(m.file, m.error);
    profiles.delete(m.id);
    return;
  }
  if (m.type === "shard") {
    serveShard(m.id, m.request);
    return;
  }
  if (m.type !== "start") return;
  target = m.target;
  run(m.params).then(
    (result) => {
      send({ type: "result", result });
      process.disconnect();
      // Sockets may linger (closing connections); the result is out, so leave.
      setTimeout(() => process.exit(0), 100).unref();
    },
    (err: unknown) => {
      send({ type: "error", message: (err as Error).stack ?? String(err) });
      process.disconnect();
      setTimeout(() => process.exit(1), 100).unref();
    },
  );
});
