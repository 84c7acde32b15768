import type { PullSource } from "../stream/pull-source.js";

export type { Waker } from "../stream/pull-source.js";

/** One open stream as the edge drives it. */
export interface StreamSession<T> {
  readonly items: PullSource<T>;
  /** Called after `count` items were handed to the transport, the last of them `last`. */
  wrote(last: T, count: number): void;
  /**
   * Called exactly once when the edge stops, with what ended the stream (undefined: a clean
   * end). The session releases what it holds and logs its one line.
   */
  end(error: unknown): void;
}
