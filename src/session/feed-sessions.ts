import { type EventBus, LOG_PAGE_EVENTS, type PublishedEvent } from "../bus/event-bus.js";
import { ServiceError } from "../errors.js";
import { shouldCompact } from "../stream/compaction.js";
import type { PullSource, Waker } from "../stream/pull-source.js";
import type { Principal, WatchRequest } from "../watch/model.js";
import { endsStream, matches } from "../watch/plan.js";
import { cursorEncoder, decodeCursor } from "./feed-cursor.js";
import { IDLE_TICKS, type IdleTarget, IdleTicker } from "./idle-ticker.js";
import type { StreamSession } from "./stream-session.js";
import type { WatchSessions, WatchStream } from "./watch-sessions.js";

/** One message of a feed stream. Event items of live events are shared by every stream. */
export type FeedItem =
  | {
      readonly kind: "event";
      readonly event: PublishedEvent;
      readonly cursor: string;
      /** A live event's item, which every feed stream of its view writes; unset: one stream's. */
      readonly shared?: true;
    }
  | { readonly kind: "checkpoint"; readonly cursor: string };

export interface FeedSessionsOptions {
  readonly bus: EventBus;
  /** Validation, authorization, caps, expiry, revocation, lifetime and drain: as watch streams. */
  readonly sessions: WatchSessions;
  /** Items a stream holds for its reader; past that it reads the log in pages instead. */
  readonly maxBacklog: number;
  /** A checkpoint after this long without a message, in ms (0: none). */
  readonly checkpointMs: number;
  /** Streams replaying from a cursor at once, per subject (until each has caught up). */
  readonly maxReplaysPerSubject: number;
  /** Streams replaying from a cursor at once, in this process. */
  readonly maxReplays: number;
}

export interface OpenFeedOptions {
  readonly principal: Principal;
  readonly request: WatchRequest;
  /** A cursor, or "" for "from now". */
  readonly after: string;
  /** The wire form, for logs and metrics. */
  readonly protocol: string;
}

/** Events read from the log per query while replaying, at most: the bus's page. */
const PAGE = LOG_PAGE_EVENTS;
/** ... and at least, however slow a page was. */
const MIN_PAGE = 25;
/**
 * How long one page may hold the event loop (the store's synchronous part, SQLite's query, and
 * matching), in ms: a page that took longer halves the next one, a quick one doubles it back.
 */
const PAGE_BUDGET_MS = 5;

function refetch(why: string): ServiceError {
  return new ServiceError(
    "out_of_range",
    `after: ${why}; refetch what you need and watch from now (empty after)`,
  );
}

/**
 * `make` of an object, made once and kept while the object lives. Every stream asks in turn for
 * the same live event or run, so the last one asked answers first, before the WeakMap.
 */
function madeOnce<K extends object, V>(make: (key: K) => V): (key: K) => V {
  const made = new WeakMap<K, V>();
  let lastKey: K | undefined;
  let lastValue: V | undefined;
  return (key) => {
    if (key === lastKey) return lastValue as V;
    let value = made.get(key);
    if (value === undefined) {
      value = make(key);
      made.set(key, value);
    }
    lastKey = key;
    lastValue = value;
    return value;
  };
}

/** Lets the event loop run (I/O, timers, other streams) before a replay reads its next page. */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * What a feed stream needs of the FeedSessions that opened it, and nothing else: the log's
 * bounds and pages, the live items every stream shares, cursors, and its idle ticker.
 */
interface FeedContext {
  /** Items a stream holds for its reader. */
  readonly maxBacklog: number;
  /** The last sequence the bus handed to subscriptions. */
  dispatchedSequence(): number;
  readScoped: EventBus["readScoped"];
  /** The shared item of a live event. */
  itemOf(p: PublishedEvent): FeedItem;
  /** The shared items of a run of live events (PullSource.pollRun), in one shared array. */
  runOf(run: readonly PublishedEvent[]): readonly FeedItem[];
  cursor(sequence: number): string;
  /** The stream ended: no more checkpoint ticks. */
  forget(stream: FeedStream): void;
}

/**
 * The resumable feed (CONTRACT §12): each stream starts with a checkpoint, replays the log
 * after its cursor, then goes live with no gap and no duplicate at the seam, and never
 * coalesces nor ends for being slow: past its backlog it drops what it buffered and reads the
 * log in pages until it has caught up. Everything a watch stream enforces (who may see what,
 * caps, expiry, revocation, lifetime, drain) comes from WatchSessions, whose subscription is
 * the live source.
 */
export class FeedSessions {
  /** Live events as items, made once per event and shared by every stream. */
  private readonly itemOf = madeOnce(
    (p: PublishedEvent): FeedItem => ({
      kind: "event",
      event: p,
      cursor: this.cursor(p.sequence),
      shared: true,
    }),
  );
  /** Runs of live events as runs of items, made once per run and shared by every stream. */
  private readonly runOf = madeOnce((run: readonly PublishedEvent[]): readonly FeedItem[] =>
    run.map(this.itemOf),
  );
  /** Checkpoints of idle streams; none when checkpointMs is 0. */
  private readonly ticker: IdleTicker | undefined;
  /** The log's id: made once with the log, so asked once. */
  private logId: string | undefined;
  /** The cursors of that log (see `cursorEncoder`). */
  private encodeCursor: ((sequence: number) => string) | undefined;
  /** Streams replaying from a cursor, per subject and in all, until they catch up or end. */
  private readonly replaysBySubject = new Map<string, number>();
  private replays = 0;
  /** What every stream of this feed is given. */
  private readonly context: FeedContext;

  constructor(private readonly options: FeedSessionsOptions) {
    if (options.checkpointMs > 0) this.ticker = new IdleTicker(options.checkpointMs);
    const { bus } = options;
    this.context = {
      maxBacklog: options.maxBacklog,
      dispatchedSequence: () => bus.dispatchedSequence,
      readScoped: (sequence, limit, scope) => bus.readScoped(sequence, limit, scope),
      itemOf: this.itemOf,
      runOf: this.runOf,
      cursor: (sequence) => this.cursor(sequence),
      forget: (stream) => this.ticker?.delete(stream),
    };
  }

  /** Opens a stream; throws ServiceError before anything is streamed when it may not open. */
  async open(options: OpenFeedOptions): Promise<StreamSession<FeedItem>> {
    const after = options.after === "" ? undefined : decodeCursor(options.after);
    // Only a cursor needs the log's extent; "from now" needs its id alone.
    if (after !== undefined || this.logId === undefined) {
      const log = await this.options.bus.log();
      if (this.logId !== log.id) {
        this.logId = log.id;
        this.encodeCursor = cursorEncoder(log.id);
      }
      if (after !== undefined) {
        if (after.logId !== log.id) throw refetch("the cursor is from another event log");
        if (after.sequence + 1 < log.firstSequence) {
          throw refetch("the cursor is older than the event log's retention");
        }
        // Ahead of the head: events in between would be skipped silently (a log restored
        // from a backup keeps its id but holds fewer events).
        if (after.sequence > log.lastSequence) {
          throw refetch("the cursor is ahead of the event log (was the log restored?)");
        }
      }
    }
    const release = after === undefined ? undefined : this.admitReplay(options.principal.subject);
    let live: WatchStream;
    try {
      live = await this.options.sessions.open({
        principal: options.principal,
        request: options.request,
        protocol: options.protocol,
        rpc: "FeedService.Watch",
      });
    } catch (err) {
      release?.();
      throw err;
    }
    // The subscription exists now: it gets every event after this sequence.
    const head = this.options.bus.dispatchedSequence;
    const stream = new FeedStream({
      context: this.context,
      live,
      start: after?.sequence ?? head,
      replaySlot: release,
    });
    this.ticker?.add(stream);
    return stream;
  }

  /**
   * Takes a replay slot for `subject`, or throws `resource_exhausted` naming the bound. Returns
   * the function that gives it back (once; later calls do nothing).
   */
  private admitReplay(subject: string): () => void {
    const { maxReplaysPerSubject, maxReplays } = this.options;
    const mine = this.replaysBySubject.get(subject) ?? 0;
    if (mine >= maxReplaysPerSubject) {
      throw new ServiceError(
        "resource_exhausted",
        `too many feed replays from a cursor in progress for this caller (at most ${maxReplaysPerSubject}); retry once one has caught up`,
      );
    }
    if (this.replays >= maxReplays) {
      throw new ServiceError(
        "resource_exhausted",
        `too many feed replays from a cursor in progress on this server (at most ${maxReplays}); retry with backoff`,
      );
    }
    this.replaysBySubject.set(subject, mine + 1);
    this.replays++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.replays--;
      const n = (this.replaysBySubject.get(subject) ?? 1) - 1;
      if (n <= 0) this.replaysBySubject.delete(subject);
      else this.replaysBySubject.set(subject, n);
    };
  }

  /** Replays from a cursor in progress (metrics, tests). */
  get replaysInProgress(): number {
    return this.replays;
  }

  private cursor(sequence: number): string {
    return (this.encodeCursor as (sequence: number) => string)(sequence);
  }
}

/** What a feed stream is opened with. */
interface FeedStreamOptions {
  readonly context: FeedContext;
  /** The watch stream whose subscription is the live source. */
  readonly live: WatchStream;
  /** The sequence the stream starts after: its cursor's, or the head's ("from now"). */
  readonly start: number;
  /** The replay slot of a stream opened with a cursor (it replays first); undefined: live. */
  readonly replaySlot: (() => void) | undefined;
}

/**
 * Where a feed stream is. Live: each event of the subscription is handed on as it comes.
 * Replay: the log is read in pages after `position` while the subscription's events are
 * buffered. The last three are ends: nothing is handed on after them but what was pending
 * (finished), or nothing at all (failed, ended).
 */
type FeedPhase =
  | { readonly name: "live" }
  | {
      readonly name: "replay";
      /** Events of the subscription since the current page began (at most maxBacklog). */
      buffer: PublishedEvent[];
      /** The buffer overflowed (or the reader fell behind), and the replay must read on. */
      overflowed: boolean;
    }
  /** Ended cleanly (the environment's DELETE was handed on): what is pending is the rest. */
  | { readonly name: "finished" }
  | { readonly name: "failed"; readonly error: unknown }
  /** The edge is done with the stream; everything is released. */
  | { readonly name: "ended" };

const LIVE: FeedPhase = { name: "live" };
const FINISHED: FeedPhase = { name: "finished" };
const ENDED: FeedPhase = { name: "ended" };

function replaying(overflowed: boolean): FeedPhase {
  return { name: "replay", buffer: [], overflowed };
}

/**
 * One feed stream, live or replaying (see FeedPhase). Once a read reaches the end of the log
 * with the buffer intact since before that read began, every event after `position` is in the
 * buffer (an event is in the log before it is dispatched), so the stream hands on the buffer
 * and goes live. A full backlog (the reader is slow) or a full buffer sends it back to replay,
 * so memory stays bounded.
 */
class FeedStream implements StreamSession<FeedItem>, PullSource<FeedItem>, IdleTarget, Waker {
  private readonly context: FeedContext;
  private readonly live: WatchStream;
  private phase: FeedPhase;
  /**
   * Items for the reader from `outHead` on; slots before it are handed on (and cleared). A run
   * of live events handed on whole is one slot, the shared array of its items (told apart by
   * `Array.isArray`), so that the edge can write the bytes made once for every stream.
   */
  private readonly out: (FeedItem | readonly FeedItem[] | undefined)[] = [];
  private outHead = 0;
  /** Pending items beyond one per slot: for each pending run, its untaken items less one. */
  private outExtra = 0;
  /** Items already taken from the run at `outHead` (0 when it is not a run). */
  private runTaken = 0;
  /** The last sequence accounted for: handed on, or read and not for this stream. */
  private position: number;
  /**
   * The subscription finished cleanly (the environment was deleted): end after the rest. A fact
   * of the live source, kept across phases: a replay that sees it ends once caught up.
   */
  private liveDone = false;
  /** A read loop is running; at most one, whatever phases it goes through. */
  private reading = false;
  private readable: Waker | undefined;
  private idleTicks = 0;
  /** Rows of the next page: halved after a slow page, doubled back after quick ones. */
  private pageRows = PAGE;
  /** Gives back the replay slot of a stream opened with a cursor: once it is live, or ends. */
  private replaySlot: (() => void) | undefined;

  constructor(options: FeedStreamOptions) {
    const { context, live, start, replaySlot } = options;
    this.context = context;
    this.live = live;
    this.replaySlot = replaySlot;
    this.position = start;
    const replay = replaySlot !== undefined;
    this.phase = replay ? replaying(false) : LIVE;
    this.push({ kind: "checkpoint", cursor: context.cursor(start) });
    live.items.onReadable(this);
    this.onLive();
    if (replay) void this.read();
  }

  get items(): PullSource<FeedItem> {
    return this;
  }

  // ---- PullSource, for the edge ---------------------------------------------------------------

  get isClosed(): boolean {
    const { name } = this.phase;
    return name !== "live" && name !== "replay";
  }

  poll(): FeedItem | undefined {
    if (this.phase.name === "failed" || this.pending === 0) return undefined;
    const entry = this.out[this.outHead];
    if (!Array.isArray(entry)) {
      this.taken();
      return entry as FeedItem;
    }
    const run = entry as readonly FeedItem[];
    const item = run[this.runTaken++] as FeedItem;
    if (this.runTaken < run.length) this.outExtra--;
    else {
      this.runTaken = 0;
      this.taken();
    }
    return item;
  }

  /** The next pending run of live events whole, when none of it was taken yet (see `out`). */
  pollRun(): readonly FeedItem[] | undefined {
    if (this.phase.name === "failed" || this.runTaken !== 0) return undefined;
    const entry = this.out[this.outHead];
    if (!Array.isArray(entry)) return undefined;
    const run = entry as readonly FeedItem[];
    this.outExtra -= run.length - 1;
    this.taken();
    return run;
  }

  /** The slot at `outHead` was handed on. */
  private taken(): void {
    // Let go of what was handed on: a replay keeps appending pages, so `out` may not empty for
    // a long time, and it must not hold every event sent meanwhile.
    this.out[this.outHead++] = undefined;
    if (this.outHead === this.out.length) {
      // Drained: start over. (pop() of the usual single slot keeps the array's storage, where
      // length = 0 frees it and the next push, a live stream's every event, allocates it again.)
      if (this.outHead === 1) this.out.pop();
      else this.out.length = 0;
      this.outHead = 0;
    } else if (shouldCompact(this.outHead, this.out.length)) {
      this.out.splice(0, this.outHead);
      this.outHead = 0;
    }
    // The reader made room: a replay reads on.
    if (this.phase.name === "replay" && this.pending < this.context.maxBacklog / 2) {
      void this.read();
    }
  }

  onReadable(waker: Waker): void {
    this.readable = waker;
  }

  /** The subscription has events, or ended (Waker: the subscription wakes this stream). */
  wake(): void {
    this.onLive();
  }

  next(): Promise<IteratorResult<FeedItem>> {
    if (this.phase.name === "failed") return Promise.reject(this.phase.error);
    const item = this.poll();
    if (item !== undefined) return Promise.resolve({ value: item, done: false });
    return Promise.resolve({ value: undefined, done: true });
  }

  cancel(reason: unknown): void {
    this.fail(reason);
  }

  // ---- StreamSession --------------------------------------------------------------------------

  wrote(last: FeedItem, count: number): void {
    if (last.kind === "event") this.live.wrote(last.event, count);
  }

  end(error: unknown): void {
    if (this.phase.name === "ended") return;
    this.phase = ENDED;
    this.context.forget(this);
    this.replaySlot?.();
    this.replaySlot = undefined;
    this.live.end(error);
  }

  /** A checkpoint tick: a stream that sent nothing for IDLE_TICKS ticks and has nothing pending sends one. */
  tick(): void {
    if (++this.idleTicks < IDLE_TICKS) return;
    if (this.pending > 0 || this.isClosed) return;
    // Live and drained: every event up to what the bus dispatched was handed on or is not ours.
    const at =
      this.phase.name === "live"
        ? Math.max(this.position, this.context.dispatchedSequence())
        : this.position;
    this.push({ kind: "checkpoint", cursor: this.context.cursor(at) });
  }

  // ---- internals ------------------------------------------------------------------------------

  private get pending(): number {
    return this.out.length - this.outHead + this.outExtra;
  }

  /** Hands an item on, or a run of live items as one slot (see `out`). */
  private push(entry: FeedItem | readonly FeedItem[]): void {
    const wasEmpty = this.pending === 0;
    this.out.push(entry);
    if (Array.isArray(entry)) this.outExtra += entry.length - 1;
    this.idleTicks = 0;
    if (wasEmpty) this.readable?.wake();
  }

  /** Events of the subscription: handed on (live), buffered (replay), or dropped (ended). */
  private onLive(): void {
    const sub = this.live.items;
    for (;;) {
      const run = this.phase.name === "live" ? sub.pollRun?.() : undefined;
      if (run !== undefined) {
        this.liveRun(run);
        continue;
      }
      const p = sub.poll();
      if (p === undefined) break;
      this.liveEvent(p);
    }
    if (sub.isClosed && this.phase.name !== "failed" && !this.liveDone) {
      sub.next().then(
        () => this.finishWhenDone(),
        (err: unknown) => this.fail(err),
      );
    }
  }

  /** One event of the subscription (see onLive). */
  private liveEvent(p: PublishedEvent): void {
    const phase = this.phase;
    if (phase.name === "live") this.handLive(p);
    else if (phase.name === "replay" && !phase.overflowed) {
      if (phase.buffer.length < this.context.maxBacklog) phase.buffer.push(p);
      else {
        phase.buffer = [];
        phase.overflowed = true;
      }
    }
  }

  /**
   * A run of the subscription's events while live: handed on whole when all of it is new and
   * fits the backlog (one shared slot), else event by event as they would have come.
   */
  private liveRun(run: readonly PublishedEvent[]): void {
    const first = run[0] as PublishedEvent;
    if (first.sequence > this.position && this.pending + run.length <= this.context.maxBacklog) {
      this.position = (run[run.length - 1] as PublishedEvent).sequence;
      this.push(this.context.runOf(run));
      return;
    }
    for (const p of run) this.liveEvent(p);
  }

  /** Hands a live event on; false when it was not (already handed on, or the reader is behind). */
  private handLive(p: PublishedEvent): boolean {
    if (p.sequence <= this.position) return false;
    const phase = this.phase;
    if (phase.name === "replay") {
      phase.buffer = [];
      phase.overflowed = true;
      return false;
    }
    if (this.pending >= this.context.maxBacklog) {
      // The reader is behind: stop buffering, read the log from here once it has room.
      this.phase = replaying(true);
      return false;
    }
    this.position = p.sequence;
    this.push(this.context.itemOf(p));
    return true;
  }

  /** The subscription is over cleanly: after the environment's DELETE. */
  private finishWhenDone(): void {
    this.liveDone = true;
    // In replay, the DELETE is in the log (and in the buffer): the replay ends at it.
    if (this.phase.name === "live") this.finish();
  }

  private finish(): void {
    if (this.isClosed) return;
    this.phase = FINISHED;
    this.readable?.wake();
  }

  private fail(err: unknown): void {
    if (this.isClosed) return;
    this.phase = { name: "failed", error: err };
    this.out.length = 0;
    this.outHead = 0;
    this.outExtra = 0;
    this.runTaken = 0;
    this.live.items.cancel(err);
    this.readable?.wake();
  }

  /**
   * Reads pages of the log while there is room, then goes live once caught up. Only what the
   * stream's scope can match is read (its organization, or its environment, through an index),
   * each page is bounded in rows and in time, and the event loop runs between pages: however
   * big the log, a replay never holds the server for long.
   */
  private async read(): Promise<void> {
    if (this.reading) return;
    this.reading = true;
    try {
      const { context } = this;
      const plan = this.live.plan;
      const scope = {
        organizationId: plan.organizationId,
        ...(plan.environmentId !== undefined && { environmentId: plan.environmentId }),
      };
      let firstPage = true;
      for (;;) {
        if (!firstPage) {
          if (this.phase.name !== "replay") return;
          await nextTurn();
        }
        firstPage = false;
        const phase = this.phase;
        if (phase.name !== "replay") return;
        const room = context.maxBacklog - this.pending;
        if (room <= 0) return;
        // Events dispatched from now on are buffered; earlier ones are in the log.
        if (phase.overflowed) {
          phase.overflowed = false;
          phase.buffer = [];
        }
        const limit = Math.min(this.pageRows, room);
        // What the page holds the event loop for: the store's synchronous part (SQLite runs its
        // query in the call), then the matching below.
        let started = performance.now();
        const reading = context.readScoped(this.position, limit, scope);
        let busyMs = performance.now() - started;
        const page = await reading;
        // Still replaying, in the same phase: only this loop leaves a replay for live.
        if (this.isClosed) return;
        started = performance.now();
        if (page.firstSequence > this.position + 1) {
          throw refetch("events after the cursor were pruned before they were read");
        }
        const at = performance.now();
        for (const row of page.events) {
          this.position = row.sequence;
          if (!matches(plan, row.event, row.creatorId)) continue;
          this.push({
            kind: "event",
            event: { ...row, publishedAtMs: at },
            cursor: context.cursor(row.sequence),
          });
          if (endsStream(plan, row.event)) {
            this.finish();
            return;
          }
        }
        const full = page.events.length === limit;
        // Everything up to `through` was read or is not in scope: checkpoints move on with it.
        if (page.through > this.position) this.position = page.through;
        busyMs += performance.now() - started;
        if (busyMs > PAGE_BUDGET_MS) this.pageRows = Math.max(MIN_PAGE, this.pageRows >> 1);
        else if (busyMs < PAGE_BUDGET_MS / 4) this.pageRows = Math.min(PAGE, this.pageRows * 2);
        if (full || phase.overflowed) continue;
        // Caught up: the buffer holds every event after `position`.
        this.phase = LIVE;
        this.replaySlot?.();
        this.replaySlot = undefined;
        for (const p of phase.buffer) {
          if (this.handLive(p) && endsStream(plan, p.event)) {
            this.finish();
            return;
          }
        }
        if (this.liveDone && this.phase.name === "live") this.finish();
      }
    } catch (err) {
      this.fail(err);
    } finally {
      this.reading = false;
    }
  }
}
