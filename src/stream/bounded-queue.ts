import { shouldCompact } from "./compaction.js";
import type { PullSource, Waker } from "./pull-source.js";

/**
 * How a full queue makes room: items with the same key may be merged into one. The queue calls
 * these only while it is coalescing (see BoundedQueue), never while it has room.
 */
export interface CoalescePolicy<T> {
  /** What an item is about; pending items with equal keys are merged. */
  key(item: T): string;
  /**
   * One item standing for `pending` followed by `next` (same key; the result stays in the place
   * and under the key of `pending`), or `undefined` when the two amount to nothing and both are
   * dropped.
   */
  merge(pending: T, next: T): T | undefined;
}

/** Reported once to `onClose`. */
export interface BoundedQueueStats {
  /**
   * Accepted items that did not reach the consumer as an item of their own: each merge absorbs
   * one, each cancelling pair removes two. Accepted = delivered + pending + coalesced.
   */
  readonly coalesced: number;
}

export interface BoundedQueueOptions<T> {
  /** Aborting it is `fail(signal.reason)`. */
  readonly signal?: AbortSignal;
  /** Runs exactly once, when the queue closes however it closes. */
  readonly onClose?: (stats: BoundedQueueStats) => void;
  /** Without it a full queue refuses every push. */
  readonly coalesce?: CoalescePolicy<T>;
}

/** Marks the place of an item removed from the middle of the backlog (only while coalescing). */
const HOLE: unique symbol = Symbol("hole");

/**
 * `items` (and `keys`) of every queue with nothing in that array: one shared array, never
 * written (a queue makes its own before it writes). Telling that a queue's array is empty then
 * reads a line that every queue shares instead of one of its own, and an idle queue holds no
 * array of its own.
 */
const EMPTY: never[] = [];

/**
 * Several items pushed as one entry (`pushRun`) are kept as the array they came in, told apart
 * from an item by `Array.isArray` (items are never arrays): the same array may sit in many
 * queues at once (one publish's events for every stream of one view), so it is never changed.
 * A run counts as its length towards the capacity; `poll` takes its items one by one,
 * `pollRun` takes it whole.
 */
type Entry<T> = T | readonly T[];

function isRun<T>(entry: Entry<T> | typeof HOLE | undefined): entry is readonly T[] {
  return Array.isArray(entry);
}

/**
 * A bounded push->pull queue: one producer pushes synchronously (the bus, never waiting), one
 * consumer takes at the pace of its client: the streaming edge is woken by `onReadable` and
 * takes with `poll` (no promise per item); `next()` (and `for await`) also work.
 *
 * Overflow policy: `push` refuses an item when `capacity` items are pending and leaves the
 * decision to the producer (which ends the stream: see the bus). With a `coalesce` policy, a push
 * that finds the queue full first switches it to coalescing: pending items with the same key are
 * merged (a merged item keeps the place of the earliest), and from then on an item whose key is
 * pending is merged into it, while an item of a new key is accepted only while fewer than
 * `capacity` items are pending. The queue stops coalescing once it is empty again. A queue
 * that never fills keeps no index and never calls the policy. Nothing here grows without bound:
 * at most `capacity` items, as many keys, and no more holes than items.
 *
 * Lifecycle: `end()` (or `endWith(last)`) lets the consumer drain what is pending and then
 * finish; `fail(err)` drops what is pending and makes the consumer throw `err`; an aborted
 * `signal` is `fail(signal.reason)`; the consumer leaving (`break`, `return`) closes the queue.
 * `onClose` runs exactly once, whichever of these comes first, so the producer can forget the
 * queue.
 */
export class BoundedQueue<T> implements PullSource<T>, AsyncIterableIterator<T> {
  /**
   * The one pending item of a queue that holds exactly one (and no run), kept in a field
   * rather than in `items`: that is a live stream's usual state, and reaching an array and its
   * storage would be two more cache misses per delivery, on push and on take, when an event goes
   * to thousands of streams. Set only while `items` is empty and the queue is not coalescing;
   * the next push moves it into `items` first.
   */
  private solo: T | undefined;
  /** Pending entries from `head` on; EMPTY when none (write through `writable()`). */
  private items: (Entry<T> | typeof HOLE | undefined)[] = EMPTY;
  private head = 0;
  /** Pending items beyond one per entry: for each pending run, its untaken items less one. */
  private extra = 0;
  /** Items already taken from the run at `head` (0 when it is not a run). */
  private runTaken = 0;
  /** Set only while coalescing: the key of each pending item -> its position in `items`. */
  private index: Map<string, number> | undefined;
  /** While coalescing, `keys[i]` is the key of `items[i]`. */
  private keys: (string | undefined)[] = EMPTY;
  /** HOLEs in `items` after `head` (only while coalescing). */
  private holes = 0;
  private coalescedCount = 0;
  private ended = false;
  private error: unknown = undefined;
  private failed = false;
  private closed = false;
  private waker: Waker | undefined;
  private waiter: ((r: IteratorResult<T>) => void) | undefined;
  private waiterReject: ((err: unknown) => void) | undefined;
  private readonly abortListener: (() => void) | undefined;

  constructor(
    readonly capacity: number,
    private readonly options: BoundedQueueOptions<T> = {},
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
    const solo = this.solo === undefined ? 0 : 1;
    return this.items.length - this.head - this.holes + this.extra + solo;
  }

  /** See BoundedQueueStats. */
  get coalesced(): number {
    return this.coalescedCount;
  }

  /** True while a full queue merges items (see the class comment). */
  get isCoalescing(): boolean {
    return this.index !== undefined;
  }

  /** True once no more items are accepted. */
  get isClosed(): boolean {
    return this.closed || this.ended || this.failed;
  }

  /**
   * Hands an item to the consumer, or merges it into a pending one while coalescing; false
   * (nothing changed) when full or no longer open.
   */
  push(item: T): boolean {
    if (this.ended || this.failed || this.closed) return false;
    const waiter = this.waiter;
    if (waiter !== undefined) {
      this.waiter = undefined;
      this.waiterReject = undefined;
      waiter({ value: item, done: false });
      return true;
    }
    if (this.index === undefined) {
      const solo = this.solo;
      if (solo === undefined && this.items.length === 0 && this.capacity > 0) {
        this.solo = item;
        this.waker?.wake();
        return true;
      }
      if (this.size < this.capacity) {
        if (solo !== undefined) this.unsolo(solo);
        this.writable().push(item);
        if (this.waker !== undefined && this.size === 1) this.waker.wake();
        return true;
      }
      if (!this.startCoalescing()) return false;
      if (this.index === undefined) return this.push(item); // the backlog cancelled out
    }
    const policy = this.options.coalesce as CoalescePolicy<T>;
    const key = policy.key(item);
    const at = this.index.get(key);
    if (at === undefined) {
      if (this.size >= this.capacity) return false;
      this.append(item, key);
      if (this.waker !== undefined && this.size === 1) this.waker.wake();
      return true;
    }
    if (this.mergeInto(at, item, policy)) this.removeAt(at);
    return true;
  }

  /**
   * Hands `items` (in order, at least one) to the consumer as `push` would one by one, keeping
   * the array itself as one entry while the queue has room for all of them: `pollRun` can then
   * give the same array back, and a writer can reuse whatever it made of it for every stream
   * it was pushed to. The array must never change afterwards. False when the queue could not
   * take them all (those before the first refused were accepted).
   */
  pushRun(items: readonly T[]): boolean {
    if (items.length === 1) return this.push(items[0] as T);
    if (this.ended || this.failed || this.closed) return false;
    if (this.index === undefined && this.waiter === undefined) {
      const size = this.size;
      if (size + items.length <= this.capacity) {
        const solo = this.solo;
        if (solo !== undefined) this.unsolo(solo);
        this.writable().push(items);
        this.extra += items.length - 1;
        if (this.waker !== undefined && size === 0) this.waker.wake();
        return true;
      }
    }
    for (const item of items) if (!this.push(item)) return false;
    return true;
  }

  /**
   * Hands `item` to the consumer as the last one, then ends as `end()` does. While coalescing, a
   * pending item with the same key is merged into it and the result is delivered last, not in
   * the pending item's place; if the two cancel out, `item` itself is delivered, for a final item
   * must reach the consumer. False (nothing changed) when full or no longer open.
   */
  endWith(item: T): boolean {
    if (this.ended || this.failed || this.closed) return false;
    if (this.index === undefined && this.size >= this.capacity) this.startCoalescing();
    const index = this.index;
    if (index !== undefined) {
      const policy = this.options.coalesce as CoalescePolicy<T>;
      const at = index.get(policy.key(item));
      if (at !== undefined) {
        const merged = policy.merge(this.items[at] as T, item) ?? item;
        this.coalescedCount++;
        this.removeAt(at);
        item = merged;
      }
    }
    if (!this.push(item)) return false;
    this.end();
    return true;
  }

  /** No more items: the consumer finishes after draining what is pending. */
  end(): void {
    if (this.ended || this.failed || this.closed) return;
    this.ended = true;
    this.waker?.wake();
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
    this.clear();
    const reject = this.waiterReject;
    this.waiter = undefined;
    this.waiterReject = undefined;
    this.close();
    if (reject !== undefined) reject(err);
    this.waker?.wake();
  }

  /**
   * Push mode, for a writer that drains with `poll`: `waker.wake()` is called when an item
   * arrives in an empty queue, and when the queue ends or fails (then `next()` tells which),
   * instead of a pending `next()` being resolved. No promise per item.
   */
  onReadable(waker: Waker): void {
    this.waker = waker;
  }

  /**
   * Takes the next pending item without waiting, or undefined when none is pending (or the
   * queue failed: `next()` then reports it). Lets a writer batch what is already there.
   */
  poll(): T | undefined {
    if (this.failed) return undefined;
    const solo = this.solo;
    if (solo !== undefined) {
      this.solo = undefined;
      return solo;
    }
    if (this.size === 0) return undefined;
    return this.take();
  }

  /**
   * Takes the next pending run whole, when the next pending item is the first of one: the
   * array `pushRun` was given. Undefined otherwise (nothing taken; `poll` then).
   */
  pollRun(): readonly T[] | undefined {
    if (this.solo !== undefined || this.runTaken !== 0 || this.failed) return undefined;
    if (this.index !== undefined) return undefined;
    const entry = this.items[this.head];
    if (!isRun(entry)) return undefined;
    this.extra -= entry.length - 1;
    this.advance(entry[0] as T);
    return entry;
  }

  /** `fail`, under the name the bus's Subscription gives it. */
  cancel(reason: unknown): void {
    this.fail(reason);
  }

  next(): Promise<IteratorResult<T>> {
    if (this.failed) return Promise.reject(this.error);
    if (this.size > 0) return Promise.resolve({ value: this.take(), done: false });
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
    this.clear();
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

  private take(): T {
    const solo = this.solo;
    if (solo !== undefined) {
      this.solo = undefined;
      return solo;
    }
    if (this.index !== undefined) return this.shift();
    const items = this.items;
    const entry = items[this.head];
    if (isRun(entry)) {
      const run = entry;
      const value = run[this.runTaken++] as T;
      if (this.runTaken < run.length) {
        this.extra--;
        return value;
      }
      this.runTaken = 0;
      return this.advance(value);
    }
    return this.advance(entry as T);
  }

  /** Moves the solo item into `items` (empty while it is set), ahead of what comes next. */
  private unsolo(solo: T): void {
    this.writable().push(solo);
    this.solo = undefined;
  }

  /** `items`, made the queue's own first if it is the shared EMPTY. */
  private writable(): (Entry<T> | typeof HOLE | undefined)[] {
    let items = this.items;
    if (items === EMPTY) {
      items = [];
      this.items = items;
    }
    return items;
  }

  /** Removes the entry at `head`, whose last item `value` was just taken, and returns it. */
  private advance(value: T): T {
    const items = this.items;
    items[this.head] = undefined;
    this.head++;
    if (this.head === items.length) {
      // Drained: start over. (A single item waits in `solo`, not here: what gets here is a run
      // or a backlog, and its array is let go rather than kept by each idle stream.)
      this.items = EMPTY;
      this.head = 0;
    } else if (shouldCompact(this.head, this.items.length)) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return value;
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.abortListener) this.options.signal?.removeEventListener("abort", this.abortListener);
    this.onClosed({ coalesced: this.coalescedCount });
  }

  /** Runs exactly once, when the queue closes; calls `options.onClose` unless overridden. */
  protected onClosed(stats: BoundedQueueStats): void {
    this.options.onClose?.(stats);
  }

  /**
   * Merges `item` into the pending item at `at` and counts what coalesced: one item, or both
   * when they cancel out. True when they cancelled out: the caller frees the place (at once, or
   * as a hole).
   */
  private mergeInto(at: number, item: T, policy: CoalescePolicy<T>): boolean {
    const merged = policy.merge(this.items[at] as T, item);
    if (merged === undefined) {
      this.coalescedCount += 2;
      return true;
    }
    this.coalescedCount++;
    this.items[at] = merged;
    return false;
  }

  /** Drops everything pending and stops coalescing. */
  private clear(): void {
    this.solo = undefined;
    this.items = EMPTY;
    this.head = 0;
    this.extra = 0;
    this.runTaken = 0;
    this.index = undefined;
    this.keys = EMPTY;
    this.holes = 0;
  }

  /**
   * Switches a full queue to coalescing: indexes the pending items by key, merging those with
   * the same key into the place of the earliest. False without a policy (or with nothing
   * pending, when capacity is 0). Costs O(capacity), paid once per backlog that fills up.
   */
  private startCoalescing(): boolean {
    const policy = this.options.coalesce;
    if (policy === undefined || this.size === 0) return false;
    const solo = this.solo;
    if (solo !== undefined) this.unsolo(solo);
    const pending = this.items;
    const start = this.head;
    const taken = this.runTaken;
    this.clear();
    this.index = new Map<string, number>();
    for (let i = start; i < pending.length; i++) {
      const entry = pending[i];
      if (isRun(entry)) {
        // Runs are taken apart: from here on every item is indexed on its own.
        const run = entry;
        for (let j = i === start ? taken : 0; j < run.length; j++) this.coalesceIn(run[j] as T);
      } else this.coalesceIn(entry as T);
    }
    if (this.size === 0) this.clear();
    else if (this.holes > 0) this.compact();
    return true;
  }

  /** One pending item into a queue that is starting to coalesce (see startCoalescing). */
  private coalesceIn(item: T): void {
    const policy = this.options.coalesce as CoalescePolicy<T>;
    const key = policy.key(item);
    const at = (this.index as Map<string, number>).get(key);
    if (at === undefined) this.append(item, key);
    else if (this.mergeInto(at, item, policy)) this.punch(at);
  }

  private append(item: T, key: string): void {
    const items = this.writable();
    (this.index as Map<string, number>).set(key, items.length);
    items.push(item);
    if (this.keys === EMPTY) this.keys = [];
    this.keys.push(key);
  }

  /** Removes the pending item at `at` (coalescing only), leaving a HOLE in its place. */
  private punch(at: number): void {
    (this.index as Map<string, number>).delete(this.keys[at] as string);
    this.items[at] = HOLE;
    this.keys[at] = undefined;
    this.holes++;
  }

  private removeAt(at: number): void {
    this.punch(at);
    this.tidy();
  }

  /** Takes the first pending item (coalescing only; size > 0). */
  private shift(): T {
    const items = this.items;
    while (items[this.head] === HOLE) {
      items[this.head] = undefined;
      this.head++;
      this.holes--;
    }
    const value = items[this.head] as T;
    items[this.head] = undefined;
    (this.index as Map<string, number>).delete(this.keys[this.head] as string);
    this.keys[this.head] = undefined;
    this.head++;
    this.tidy();
    return value;
  }

  /**
   * Keeps the coalescing backlog small: stops coalescing once it is drained, and compacts it
   * when holes outnumber items or the consumed prefix is large. Each compaction costs at most
   * twice the holes and consumed items it drops, so this stays O(1) amortized.
   */
  private tidy(): void {
    if (this.size === 0) this.clear();
    else if (this.holes > this.size || shouldCompact(this.head, this.items.length)) {
      this.compact();
    }
  }

  /** Rewrites the backlog without holes or consumed prefix, re-indexing it (coalescing only). */
  private compact(): void {
    const index = this.index as Map<string, number>;
    // Coalescing: no runs are pending (startCoalescing took them apart).
    const items: (Entry<T> | typeof HOLE | undefined)[] = [];
    const keys: (string | undefined)[] = [];
    for (let i = this.head; i < this.items.length; i++) {
      const item = this.items[i];
      if (item === HOLE) continue;
      const key = this.keys[i] as string;
      index.set(key, items.length);
      items.push(item);
      keys.push(key);
    }
    this.items = items;
    this.keys = keys;
    this.head = 0;
    this.holes = 0;
  }
}
