/**
 * A bounded push->pull queue: one producer pushes synchronously (the bus, never waiting), one
 * consumer pulls with `for await` (a stream writer, at the pace of its client).
 *
 * Overflow policy: `push` refuses an item when `capacity` items are pending and leaves the
 * decision to the producer (which ends the stream: see the bus). Nothing here grows without bound.
 *
 * Lifecycle: `end()` lets the consumer drain what is pending and then finish; `fail(err)` drops
 * what is pending and makes the consumer throw `err`; an aborted `signal` is `fail(signal.reason)`;
 * the consumer leaving (`break`, `return`) closes the queue. `onClose` runs exactly once, whichever
 * of these comes first, so the producer can forget the queue.
 */
export class BoundedQueue<T> implements AsyncIterableIterator<T> {
  private items: T[] = [];
  private head = 0;
  private ended = false;
  private error: unknown = undefined;
  private failed = false;
  private closed = false;
  private waiter: ((r: IteratorResult<T>) => void) | undefined;
  private waiterReject: ((err: unknown) => void) | undefined;
  private readonly abortListener: (() => void) | undefined;

  constructor(
    readonly capacity: number,
    private readonly options: { signal?: AbortSignal; onClose?: () => void } = {},
  ) {
    const signal = options.signal;
    if (signal) {
      if (signal.aborted) {
        this.fail(signal.reason);
      } else {
        this.abortListener = () => this.fail(signal.reason);
        signal.addEventListener("abort", this.abortListener, { once: true });
      }
    }
  }

  /** Items waiting for the consumer. */
  get size(): number {
    return this.items.length - this.head;
  }

  /** True once no more items are accepted. */
  get isClosed(): boolean {
    return this.closed || this.ended || this.failed;
  }

  /** Hands an item to the consumer; false (nothing changed) when full or no longer open. */
  push(item: T): boolean {
    if (this.ended || this.failed || this.closed) return false;
    const waiter = this.waiter;
    if (waiter !== undefined) {
      this.waiter = undefined;
      this.waiterReject = undefined;
      waiter({ value: item, done: false });
      return true;
    }
    if (this.size >= this.capacity) return false;
    this.items.push(item);
    return true;
  }

  /** No more items: the consumer finishes after draining what is pending. */
  end(): void {
    if (this.ended || this.failed || this.closed) return;
    this.ended = true;
    const waiter = this.waiter;
    if (waiter !== undefined && this.size === 0) {
      this.waiter = undefined;
      this.waiterReject = undefined;
      waiter({ value: undefined, done: true });
      this.close();
    }
  }

  /** Ends with an error: pending items are dropped and the consumer throws `err`. */
  fail(err: unknown): void {
    if (this.failed || this.closed) return;
    this.failed = true;
    this.error = err;
    this.items = [];
    this.head = 0;
    const reject = this.waiterReject;
    this.waiter = undefined;
    this.waiterReject = undefined;
    this.close();
    if (reject !== undefined) reject(err);
  }

  next(): Promise<IteratorResult<T>> {
    if (this.failed) return Promise.reject(this.error);
    if (this.size > 0) {
      const value = this.items[this.head] as T;
      this.items[this.head] = undefined as T;
      this.head++;
      if (this.head === this.items.length) {
        this.items.length = 0;
        this.head = 0;
      } else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
        this.items = this.items.slice(this.head);
        this.head = 0;
      }
      return Promise.resolve({ value, done: false });
    }
    if (this.ended || this.closed) {
      this.close();
      return Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve, reject) => {
      this.waiter = resolve;
      this.waiterReject = reject;
    });
  }

  return(): Promise<IteratorResult<T>> {
    this.items = [];
    this.head = 0;
    this.ended = true;
    const waiter = this.waiter;
    this.waiter = undefined;
    this.waiterReject = undefined;
    waiter?.({ value: undefined, done: true });
    this.close();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.abortListener) this.options.signal?.removeEventListener("abort", this.abortListener);
    this.options.onClose?.();
  }
}
