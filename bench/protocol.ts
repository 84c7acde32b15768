/** What the orchestrator (run.ts) and the load generator (loadgen.ts) say to each other over IPC. */

export interface Target {
  readonly host: string;
  readonly port: number;
  /** Pid of the server under test, for its CPU time in /proc/<pid>/stat. */
  readonly serverPid: number;
  /** Clock ticks per second of /proc/<pid>/stat (`getconf CLK_TCK`). */
  readonly clkTck: number;
  /** Scenario 6 on PostgreSQL: the scratch database, whose backends' CPU time is measured. */
  readonly database?: string;
  /** Scenario 9 (replicas): the ports of every replica, the target's first (replica A). */
  readonly replicaPorts?: readonly number[];
}

/** A closed-loop publisher: batches of `batch` events, at most `inflight` calls at once, never more than `windowEvents` ahead of the slowest stream. */
export interface LoopParams {
  readonly batch: number;
  readonly inflight: number;
  readonly windowEvents: number;
  readonly warmupMs: number;
  readonly durationMs: number;
}

/**
 * The method watch streams call: gitpod.v1.EventService/WatchEvents (the default) or
 * eventservice.feed.v1.FeedService/Watch with an empty `after` (scenario 8), whose streams
 * count events only (checkpoints are skipped).
 */
export type WatchApi = "watch" | "feed";

export type LoadgenParams =
  | (LoopParams & {
      /** Scenario 9: publish on replica A, watch on the others (and on A for latency). */
      readonly mode: "replicas";
      /** Fan-out streams, spread over the replicas other than A. */
      readonly streams: number;
      readonly connections: number;
      /** Latency: this many streams on A and as many on B. */
      readonly latencyStreams: number;
      readonly ratePerSec: number;
      readonly latencyWarmupMs: number;
      readonly latencyDurationMs: number;
      /** PostgreSQL's idle baseline: a window with the watchers open and nothing published. */
      readonly idleMs: number;
    })
  | (LoopParams & {
      readonly mode: "fanout";
      readonly streams: number;
      readonly connections: number;
      readonly filters: boolean;
      readonly api?: WatchApi;
    })
  | {
      readonly mode: "latency";
      readonly streams: number;
      readonly connections: number;
      readonly ratePerSec: number;
      readonly warmupMs: number;
      readonly durationMs: number;
    }
  | (LoopParams & {
      readonly mode: "dispatch";
      readonly targetStreams: number;
      readonly idleStreams: number;
      readonly idleConnections: number;
    })
  | {
      /** Scenario 6: publish throughput with persistence. */
      readonly mode: "persist";
      readonly batch: number;
      /** Resources the events cycle through. */
      readonly resources: number;
      /** Every event has an actor, so every event is also an audit log entry. */
      readonly audited: boolean;
      /** Publishes in flight at most. */
      readonly inflight: number;
      readonly warmupMs: number;
      readonly durationMs: number;
      /** 0: no watchers; else this many streams of organization 0 receive every event. */
      readonly streams: number;
      readonly connections: number;
      /** With streams: never more than this many events ahead of the slowest stream. */
      readonly windowEvents: number;
    }
  | {
      readonly mode: "memory-h2";
      readonly streams: number;
      readonly connections: number;
      readonly api?: WatchApi;
    }
  | {
      /**
       * Scenario 8: takes a cursor (the first checkpoint of a feed opened on the fresh server),
       * publishes `events` events in batches of `batch` (`inflight` at once), then opens one
       * feed stream after that cursor and times it until the last event arrives.
       */
      readonly mode: "feed-replay";
      readonly events: number;
      readonly batch: number;
      readonly inflight: number;
    }
  | {
      /**
       * Scenario 10: takes a cursor at the start of a fresh log, publishes `events` events of
       * organization 1, then measures WatchEvents latency (a watcher of organization 2, one
       * event published every 1000 / `ratePerSec` ms) and GET /healthz latency, first for
       * `baselineMs` with nothing else, then for `stormMs` while `attackers` members (of
       * organizations 3, 4, …: none has any event) each replay the feed from that cursor,
       * hang up after `hangUpMs` and open the next at once.
       */
      readonly mode: "replay-storm";
      readonly events: number;
      readonly batch: number;
      readonly inflight: number;
      readonly attackers: number;
      readonly hangUpMs: number;
      readonly ratePerSec: number;
      readonly baselineMs: number;
      readonly stormMs: number;
    }
  | { readonly mode: "memory-jsonl"; readonly streams: number }
  /** Scenario 7: `streams` JSONL watchers of organization 0, one HTTP/1.1 connection each. */
  | (LoopParams & { readonly mode: "jsonl-fanout"; readonly streams: number })
  | {
      /**
       * Scenario 7: `streams` JSONL watchers spread over `orgs` organizations (1: organization
       * 0; more: 1..orgs, stream n of organization 1 + n mod orgs); one event per publish,
       * `ratePerSec` publishes per second paced on a clock, to the organizations in turn.
       */
      readonly mode: "jsonl-latency";
      readonly streams: number;
      readonly orgs: number;
      readonly ratePerSec: number;
      readonly warmupMs: number;
      readonly durationMs: number;
      /** Also the server's memory before the streams open and after the window. */
      readonly probeMemory: boolean;
    }
  /** Scenario 7: memory per idle JSONL watcher (raw connections, organizations 1..1000). */
  | { readonly mode: "jsonl-memory"; readonly streams: number }
  | {
      /**
       * Scenario 11: `streams` idle watchers of organization 0 on one server process (gRPC over
       * `connections` HTTP/2 connections, or JSONL with one HTTP/1.1 connection each): memory
       * per stream, time to open them all and see an event on each, then `rounds` times one
       * event published to all of them, timed until the last stream has it, with the server's
       * CPU for it.
       */
      readonly mode: "scale";
      readonly protocol: "h2" | "jsonl";
      readonly streams: number;
      /** HTTP/2 only (JSONL: one connection per stream). */
      readonly connections: number;
      readonly rounds: number;
      /** JSONL: at most this many connections per load generator process (more: helpers). */
      readonly jsonlPerProcess: number;
      /** Ask the orchestrator for a CPU profile of the server over the rounds. */
      readonly profile: boolean;
    };

/**
 * Scenario 11's bounds: opening (until every response head) at most max(60 s, 5 ms per stream),
 * confirming (an event on every stream) at most max(30 s, 1 ms per stream), and each one-event
 * round at most 30 s. On this 2-core machine, busy with other work, ours opened about 400 JSONL
 * and 4,000 HTTP/2 streams per second.
 */
export function scaleOpenTimeoutMs(streams: number): number {
  return Math.max(60_000, 5 * streams);
}
export function scaleConfirmTimeoutMs(streams: number): number {
  return Math.max(30_000, streams);
}
export const SCALE_ROUND_TIMEOUT_MS = 30_000;

/**
 * Scenario 11's JSONL watchers live in helper processes (each is loadgen.js, forked by the load
 * generator) when they do not fit one process's open-file limit. What the load generator asks a
 * helper ("shard") to do, one request at a time per op.
 */
export type ShardRequest =
  | {
      /** Open `streams` JSONL watchers of organization `org`; reply once every head arrived. */
      readonly op: "open";
      readonly target: Target;
      readonly streams: number;
      readonly org: number;
    }
  /** Reply with a ShardState. */
  | { readonly op: "state" }
  /** Count every stream's messages from zero again (rounds wait for counts from here). */
  | { readonly op: "restart" }
  /** Start waiting until every live stream has `min` messages; reply at once (armed). */
  | { readonly op: "arm"; readonly min: number; readonly timeoutMs: number }
  /** Reply with the armed wait's ShardWait once it is over. */
  | { readonly op: "result" }
  | { readonly op: "close" };

export interface ShardState {
  /** Messages received by all streams of the shard since they opened. */
  readonly received: number;
  /** Streams not ended. */
  readonly live: number;
  /** Streams not ended that have received at least one message (since the last restart). */
  readonly delivering: number;
  readonly ended: Record<string, number>;
}

/** An armed wait's outcome; times are CLOCK_MONOTONIC ms (process.hrtime), the same in every process. */
export interface ShardWait {
  readonly ok: boolean;
  /** When the first socket chunk arrived after arming (null: none). */
  readonly firstAtMs: number | null;
  /** When the last live stream reached the count (or the wait timed out). */
  readonly lastAtMs: number;
  /** CPU time of the shard's process from arming to then, ms (is the client the bottleneck?). */
  readonly cpuMs: number;
}

export interface ProbeData {
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
  /** ours only: eventserver_streams_open summed over labels, from GET /metrics. */
  readonly streamsOpen?: number;
}

export type ToLoadgen =
  | { readonly type: "start"; readonly target: Target; readonly params: LoadgenParams }
  | { readonly type: "probe-result"; readonly id: number; readonly data: ProbeData | null }
  /** Scenario 11: where the profile was written (null: none, `error` says why). */
  | {
      readonly type: "profile-result";
      readonly id: number;
      readonly file: string | null;
      readonly error?: string;
    }
  /** To a helper (see ShardRequest). */
  | { readonly type: "shard"; readonly id: number; readonly request: ShardRequest };

export type FromLoadgen =
  | { readonly type: "probe"; readonly id: number }
  /** Scenario 11: start or stop a CPU profile of the server (the probe writes it). */
  | { readonly type: "profile"; readonly id: number; readonly action: "start" | "stop" }
  /** From a helper: the reply to the shard request `id`. */
  | { readonly type: "shard-reply"; readonly id: number; readonly reply: unknown }
  | { readonly type: "result"; readonly result: Record<string, unknown> }
  | { readonly type: "error"; readonly message: string };
