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
  | { readonly mode: "jsonl-memory"; readonly streams: number };

export interface ProbeData {
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
  /** ours only: eventserver_streams_open summed over labels, from GET /metrics. */
  readonly streamsOpen?: number;
}

export type ToLoadgen =
  | { readonly type: "start"; readonly target: Target; readonly params: LoadgenParams }
  | { readonly type: "probe-result"; readonly id: number; readonly data: ProbeData | null };

export type FromLoadgen =
  | { readonly type: "probe"; readonly id: number }
  | { readonly type: "result"; readonly result: Record<string, unknown> }
  | { readonly type: "error"; readonly message: string };
