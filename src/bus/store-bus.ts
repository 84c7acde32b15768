import type { Logger } from "pino";
import { shuttingDown } from "../errors.js";
import type { EventLog, LogScope, ScopedPage, Store, StoredEvent } from "../store/store.js";
import type { EnvironmentRecord, ResourceEvent } from "../watch/model.js";
import type { WatchPlan } from "../watch/plan.js";
import { Dispatcher } from "./dispatcher.js";
import {
  type EventBus,
  LOG_PAGE_EVENTS,
  type PublishedEvent,
  type PublishOptions,
  type PublishResult,
  type SubscribeOptions,
  type Subscription,
} from "./event-bus.js";

export interface StoreBusOptions {
  readonly store: Store;
  readonly logger: Logger;
  /**
   * Several replicas share the store: events appended elsewhere are read from the log, woken
   * by the store's notifications and, in case one is lost, every `pollIntervalMs`.
   */
  readonly replicated: boolean;
  readonly pollIntervalMs?: number;
  /** Wall clock for the stored times (ms since the epoch). */
  readonly now?: () => number;
}

/**
 * The event bus on a store: a publish is appended (durable, numbered in the one global order)
 * before any watcher sees it, then dispatched. The log is the truth: this replica dispatches
 * sequence after sequence, its own batches straight from memory and everything else read from
 * the log, so a lost notification, a dropped connection or a slow replica delays delivery but
 * never loses or reorders it. Every replica dispatches the same events in the same order.
 */
export class StoreBus implements EventBus {
  private readonly dispatcher = new Dispatcher();
  private readonly store: Store;
  private readonly logger: Logger;
  private readonly replicated: boolean;
  private readonly now: () => number;
  /** The last sequence handed to the dispatcher. */
  private dispatched: number;
  /**
   * Replicated: the highest sequence known to be in the log (own appends, notifications). The
   * log is read only while it is ahead of `dispatched`, or when a read was asked for since the
   * last one that succeeded (a reconnect, the periodic poll: something may have been missed):
   * a replica's own appends, dispatched from memory, cost no query.
   */
  private known: number;
  private readsAsked = 0;
  private readsDone = 0;
  /** This replica's appended batches not yet dispatched, by their first sequence. */
  private readonly local = new Map<number, PublishedEvent[]>();
  private pumping: Promise<void> | undefined;
  private again = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private stopListening: (() => Promise<void>) | undefined;
  private closed = false;

  private constructor(options: StoreBusOptions, last: number) {
    this.store = options.store;
    this.logger = options.logger;
    this.replicated = options.replicated;
    this.now = options.now ?? Date.now;
    this.dispatched = last;
    this.known = last;
  }

  /** Starts after the last event already in the log: watchers see what is published from now on. */
  static async open(options: StoreBusOptions): Promise<StoreBus> {
    const bus = new StoreBus(options, await options.store.lastSequence());
    if (options.replicated) {
      if (options.store.listen !== undefined) {
        bus.stopListening = await options.store.listen((lastSequence) =>
          bus.appended(lastSequence),
        );
      }
      bus.pollTimer = setInterval(() => bus.appended(undefined), options.pollIntervalMs ?? 1000);
      bus.pollTimer.unref();
    }
    return bus;
  }

  get subscriberCount(): number {
    return this.dispatcher.subscriberCount;
  }

  get dispatchedSequence(): number {
    return this.dispatched;
  }

  readScoped(sequence: number, limit: number, scope: LogScope): Promise<ScopedPage> {
    return this.store.readScoped(sequence, limit, scope);
  }

  log(): Promise<EventLog> {
    return this.store.log();
  }

  async publish(
    events: readonly ResourceEvent[],
    options: PublishOptions = {},
  ): Promise<PublishResult> {
    if (this.closed) throw shuttingDown();
    const publishedAtMs = performance.now();
    const appendOptions = options.signal === undefined ? undefined : { signal: options.signal };
    let stored: StoredEvent[];
    if (options.key === undefined) {
      stored = await this.store.append(events, this.now(), appendOptions);
    } else {
      const result = await this.store.appendOnce(events, this.now(), options.key, appendOptions);
      if (result.replayed) {
        // Appended before (here, or on another replica, or before a restart): dispatched from
        // the log, never again from memory.
        if (result.lastSequence > this.known) this.known = result.lastSequence;
        if (this.replicated) await this.catchUp();
        return { ...result, replayed: true };
      }
      stored = result.events;
    }
    const first = stored[0] as StoredEvent;
    const last = stored[stored.length - 1] as StoredEvent;
    if (last.sequence > this.known) this.known = last.sequence;
    this.local.set(
      first.sequence,
      stored.map((s) => ({ ...s, publishedAtMs })),
    );
    await this.catchUp();
    return { firstSequence: first.sequence, lastSequence: last.sequence, replayed: false };
  }

  async environment(environmentId: string): Promise<EnvironmentRecord | undefined> {
    return this.store.environment(environmentId);
  }

  subscribe(plan: WatchPlan, options: SubscribeOptions): Subscription {
    return this.dispatcher.subscribe(plan, options);
  }

  async close(reason: unknown): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.pollTimer !== undefined) clearInterval(this.pollTimer);
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    this.dispatcher.close(reason);
    await this.stopListening?.();
  }

  /**
   * Something was appended up to `lastSequence` (a notification), or may have been (undefined:
   * a reconnect, the poll): catch up, unless it is dispatched already.
   */
  private appended(lastSequence: number | undefined): void {
    if (lastSequence === undefined) this.readsAsked++;
    else if (lastSequence <= this.dispatched) return;
    else if (lastSequence > this.known) this.known = lastSequence;
    void this.catchUp();
  }

  /**
   * Dispatches everything up to the end of the log, one pump at a time; a call while pumping
   * makes the pump go round once more and shares its promise.
   */
  private catchUp(): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.pumping !== undefined) {
      this.again = true;
      return this.pumping;
    }
    this.pumping = (async () => {
      try {
        do {
          this.again = false;
          await this.drain();
        } while (this.again && !this.closed);
      } catch (err) {
        // The store is unreachable: watchers keep their streams; try again shortly.
        this.logger.warn({ err }, "cannot read the event log; retrying");
        this.retryTimer ??= setTimeout(() => {
          this.retryTimer = undefined;
          void this.catchUp();
        }, 500);
        this.retryTimer.unref();
      } finally {
        this.pumping = undefined;
      }
    })();
    return this.pumping;
  }

  private async drain(): Promise<void> {
    for (;;) {
      if (this.closed) return;
      const batch = this.local.get(this.dispatched + 1);
      if (batch !== undefined) {
        this.local.delete(this.dispatched + 1);
        this.dispatcher.dispatchAll(batch);
        this.dispatched = (batch[batch.length - 1] as PublishedEvent).sequence;
        continue;
      }
      // Single process: every sequence is appended here, so nothing else can be missing.
      if (!this.replicated) return;
      if (this.dispatched >= this.known && this.readsDone === this.readsAsked) return;
      const asked = this.readsAsked;
      const rows = await this.store.readAfter(this.dispatched, LOG_PAGE_EVENTS);
      // A full batch may not be all: the next round reads on.
      this.readsDone = rows.length === LOG_PAGE_EVENTS ? asked - 1 : asked;
      if (rows.length === 0) return;
      const at = performance.now();
      const page: PublishedEvent[] = new Array(rows.length);
      let expected = this.dispatched + 1;
      for (let i = 0; i < rows.length; i++) {
        const r = rows[i] as StoredEvent;
        if (r.sequence !== expected) {
          // Only retention pruning can open a gap (appends are gap-free): this replica was
          // further behind than the log keeps. Go on rather than stop delivering.
          this.logger.error(
            { expected, read: r.sequence },
            "event log gap: events pruned before this replica read them",
          );
        }
        expected = r.sequence + 1;
        page[i] = { ...r, publishedAtMs: at };
      }
      this.dispatcher.dispatchAll(page);
      this.dispatched = (rows[rows.length - 1] as StoredEvent).sequence;
      if (this.dispatched > this.known) this.known = this.dispatched;
      for (const [first, b] of this.local) {
        if ((b[b.length - 1] as PublishedEvent).sequence <= this.dispatched)
          this.local.delete(first);
      }
    }
  }
}
