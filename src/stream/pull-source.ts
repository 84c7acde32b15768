/**
 * The pending items of an open stream, in push mode: `onReadable` wakes the writer, which takes
 * what is pending with `poll` (no promise per item); once `isClosed` and nothing is pending,
 * `next()` settles with how the stream ended (done: cleanly; rejected: with that error). The
 * one contract of a bus subscription (`Subscription`), of a session's items and of the bounded
 * queue behind them.
 */
/**
 * Who a source wakes (see `onReadable`): the writer itself, as an object with a method rather
 * than a closure. An event for a thousand streams wakes a thousand writers, and a closure is two
 * more objects (the function and its context) to reach each one through: two more cache misses
 * per delivery, measured as a fifth of the dispatch's time.
 */
export interface Waker {
  wake(): void;
}

export interface PullSource<T> {
  /** The next pending item, without waiting; undefined when none is pending. */
  poll(): T | undefined;
  /**
   * The next pending items at once, when they were handed over as one array (BoundedQueue's
   * `pushRun`): the same array object every source it was pushed to gives back, never changed.
   * Undefined otherwise, with nothing taken: `poll` then.
   */
  pollRun?(): readonly T[] | undefined;
  /**
   * Push mode: `waker.wake()` runs when an item arrives while none is pending, and when the
   * source ends or fails (`next()` then tells which). A writer that drains with `poll` then
   * needs no promise per item.
   */
  onReadable(waker: Waker): void;
  /** True once no more items will arrive (pending ones may still be polled). */
  readonly isClosed: boolean;
  next(): Promise<IteratorResult<T>>;
  /** Ends the source early with `reason`: pending items are dropped, `next()` rejects with it. */
  cancel(reason: unknown): void;
}
