/**
 * The pending items of an open stream, in push mode: `onReadable` wakes the writer, which takes
 * what is pending with `poll` (no promise per item); once `isClosed` and nothing is pending,
 * `next()` settles with how the stream ended (done: cleanly; rejected: with that error).
 */
export interface PullSource<T> {
  poll(): T | undefined;
  onReadable(listener: () => void): void;
  readonly isClosed: boolean;
  next(): Promise<IteratorResult<T>>;
  /** Ends the source early with `reason`: pending items are dropped, `next()` rejects with it. */
  cancel(reason: unknown): void;
}

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
