/** What the orchestrator (run.ts) and the load generator (loadgen.ts) say to each other over IPC. */

export interface Target {
  readonly host: string;
  readonly port: number;
  /** Pid of the server under test, for its CPU time in /proc/<pid>/stat. */
  readonly serverPid: number;
  /** Clock ticks per second of /proc/<pid>/stat (`getconf CLK_TCK`). */
  readonly clkTck: number;
}

/** A closed-loop publisher: batches of `batch` events, at most `inflight` calls at once, never more than `windowEvents` ahead of the slowest stream. */
export interface LoopParams {
  readonly batch: number;
  readonly inflight: number;
  readonly windowEvents: number;
  readonly warmupMs: number;
  readonly durationMs: number;
}

export type LoadgenParams =
  | (LoopParams & {
      readonly mode: "fanout";
      readonly streams: number;
      readonly connections: number;
      readonly filters: boolean;
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
  | { readonly mode: "memory-h2"; readonly streams: number; readonly connections: number }
  | { readonly mode: "memory-jsonl"; readonly streams: number };

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
