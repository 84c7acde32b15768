/** Something the scheduler flushes: writes what it has pending, or ends itself if `flush` throws. */
export interface Flushable {
  flush(): void;
  /** The flush threw (a bug, not the client): end this one stream with `err`. */
  fail(err: unknown): void;
}

/**
 * Streams of one HTTP/2 connection flushed in a turn yield the turn once this many streams
 * (of any connection) were flushed in it: see FlushScheduler.
 */
export const YIELD_AFTER_STREAMS = 32;

/**
 * The streams of one connection waiting to be flushed. An HTTP/2 session's frames leave
 * together, from a native immediate that Node runs before the next turn's JavaScript
 * immediates (`sendsLater`); every HTTP/1.1 stream writes to its own socket at once, and they
 * all share one group.
 */
export class FlushGroup {
  // Targets waiting are ready[0..count); the arrays are swapped at each run and their slots
  // cleared, never the arrays themselves (emptying one frees its storage, and with a thousand
  // streams written per turn the next turn would grow it again, step by step).
  private ready: (Flushable | undefined)[] = [];
  private count = 0;
  private spare: (Flushable | undefined)[] = [];
  /** In the scheduler's queue. */
  queued = false;

  constructor(readonly sendsLater: boolean) {}

  add(target: Flushable): void {
    this.ready[this.count++] = target;
  }

  /** Flushes every target that was waiting (not those added meanwhile); returns how many. */
  flushAll(): number {
    const targets = this.ready;
    const count = this.count;
    this.ready = this.spare;
    this.count = 0;
    for (let i = 0; i < count; i++) {
      const target = targets[i] as Flushable;
      targets[i] = undefined;
      try {
        target.flush();
      } catch (err) {
        // End this stream with it (logged once), keep flushing the others.
        target.fail(err);
      }
    }
    this.spare = targets;
    return count;
  }
}

/**
 * Streams with items to write wait here and are flushed together once per turn of the event
 * loop (setImmediate: after the turn's I/O callbacks). Every publish handled in that turn has
 * been dispatched by then, so a stream gets all of them in one write: when the server is busy,
 * turns are long and carry several publishes, and writes get fewer and larger just when that
 * helps; when it is idle, a turn holds one publish and nothing waits. (Flushing after each
 * publish instead, in a microtask, cost 10-25% more CPU per delivery in the benchmarks.)
 *
 * Streams are flushed connection by connection, in the order their connections first had
 * something to write. Node sends what was written to an HTTP/2 session only after the turn's
 * JavaScript immediates: flushing a thousand streams of ten connections in one run would hold
 * every byte until the last stream is written. So once YIELD_AFTER_STREAMS streams were
 * flushed, the rest wait for the next turn, which begins with sending what was written: the
 * first connections' events leave while the others are written (a turn costs about 2 µs; a
 * write to a stream about 1 µs).
 *
 * One per app; a stream is scheduled at most once per turn (its own flag says so).
 */
export class FlushScheduler {
  /** Groups waiting, from `head` on; those queued during a run wait for the next one. */
  private queue: (FlushGroup | undefined)[] = [];
  private head = 0;
  private queued = false;
  private readonly run = () => this.flushSome();
  /** The groups of HTTP/2 sessions (or any connection object), made on first use. */
  private readonly groups = new WeakMap<object, FlushGroup>();
  /** The group of streams whose writes go out at once (HTTP/1.1). */
  private readonly direct = new FlushGroup(false);

  /**
   * The group of the streams of `connection`, whose writes leave together after the turn (an
   * HTTP/2 session); undefined: a stream that writes to its own socket at once (HTTP/1.1).
   */
  group(connection: object | undefined): FlushGroup {
    if (connection === undefined) return this.direct;
    let group = this.groups.get(connection);
    if (group === undefined) {
      group = new FlushGroup(true);
      this.groups.set(connection, group);
    }
    return group;
  }

  schedule(target: Flushable, group: FlushGroup): void {
    group.add(target);
    if (group.queued) return;
    group.queued = true;
    this.queue.push(group);
    if (!this.queued) {
      this.queued = true;
      setImmediate(this.run);
    }
  }

  private flushSome(): void {
    this.queued = false;
    const queue = this.queue;
    const end = queue.length;
    let flushed = 0;
    while (this.head < end && flushed < YIELD_AFTER_STREAMS) {
      const group = queue[this.head] as FlushGroup;
      queue[this.head++] = undefined;
      group.queued = false;
      const n = group.flushAll();
      if (group.sendsLater) flushed += n;
    }
    if (this.head === queue.length) {
      queue.length = 0;
      this.head = 0;
      return;
    }
    // Drop the flushed prefix once it is half the array: each copy costs at most twice what it
    // drops, and a queue that never empties holds at most twice what waits.
    if (this.head * 2 >= queue.length) {
      queue.splice(0, this.head);
      this.head = 0;
    }
    if (!this.queued) {
      // Groups left, or queued during this run: the next turn, after this one's sends.
      this.queued = true;
      setImmediate(this.run);
    }
  }
}
