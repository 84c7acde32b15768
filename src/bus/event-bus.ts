import type { BatchKey, EventLog, LogScope, ScopedPage } from "../store/store.js";
import type { PullSource } from "../stream/pull-source.js";
import type { EnvironmentRecord, ResourceEvent } from "../watch/model.js";
import type { WatchPlan } from "../watch/plan.js";

/** An accepted event with what the server resolved for it; shared, read-only, by every stream. */
export interface PublishedEvent {
  /** Position in the one global order of accepted events; only grows. */
  readonly sequence: number;
  readonly event: ResourceEvent;
  /** The creator as the server knows it: the event's own, or the one recorded earlier, or "". */
  readonly creatorId: string;
  /** When the publish was accepted (monotonic ms, performance.now()), for latency metrics. */
  readonly publishedAtMs: number;
  /** When the store accepted it (ms since the epoch). */
  readonly acceptedAtMs: number;
}

/** A subscription's events, in order; `poll` takes what is already pending without waiting. */
export interface Subscription
  extends PullSource<PublishedEvent>,
    AsyncIterableIterator<PublishedEvent> {
  next(): Promise<IteratorResult<PublishedEvent>>;
}

export interface PublishResult {
  readonly firstSequence: number;
  readonly lastSequence: number;
  /** True when the batch's key was known: nothing was written, the sequences are the first call's. */
  readonly replayed: boolean;
}

export interface PublishOptions {
  /** The publisher's idempotency key: the batch is appended at most once under it (CONTRACT §13). */
  readonly key?: BatchKey;
  /** The caller stops waiting: bounds the search for the outcome of a commit that lost its connection. */
  readonly signal?: AbortSignal;
}

/** What a subscription did, reported once when it ends (for the edge's end-of-stream log). */
export interface SubscriptionStats {
  /**
   * Events that did not reach the subscriber as an event of their own, because it was behind
   * and they were merged with, or cancelled by, another event of the same resource.
   */
  readonly coalesced: number;
}

export interface SubscribeOptions {
  /** Aborting it ends the subscription with `signal.reason` (as `cancel` does). */
  readonly signal?: AbortSignal;
  /**
   * How many events a subscriber may fall behind by. Once that many are pending, its pending
   * events of one resource are merged into one (see `coalesce` in src/watch); its stream is
   * ended only when more than `maxBacklog` distinct resources are pending.
   */
  readonly maxBacklog: number;
  /** Called once when the subscription ends, however it ends, with what it did. */
  readonly onClose?: (stats: SubscriptionStats) => void;
}

/**
 * Events read from the log per query, at most: a replica catching up with other replicas'
 * appends, and a feed stream replaying from a cursor (which may read fewer when pages are slow).
 */
export const LOG_PAGE_EVENTS = 500;

/**
 * The event bus port. `publish` accepts a validated batch whole and hands its events, in batch
 * order after every earlier batch, to every subscription whose plan matches them; with a key it
 * does so at most once per key (a replay hands nothing on again). A
 * subscription yields its events in that order, except that a subscriber that has fallen
 * `maxBacklog` events behind gets the pending events of one resource merged into one event, in
 * the place of the first of them (that event carries the newest sequence). It throws when it
 * is ended by the bus (falling behind by more than `maxBacklog` resources: `resource_exhausted`;
 * bus closed: `unavailable`) and finishes normally after the deletion of the environment it
 * watches, which is always its last event.
 */
export interface EventBus {
  publish(events: readonly ResourceEvent[], options?: PublishOptions): Promise<PublishResult>;
  /** What is known of an environment, to authorize environment scope. */
  environment(environmentId: string): Promise<EnvironmentRecord | undefined>;
  subscribe(plan: WatchPlan, options: SubscribeOptions): Subscription;
  /** Open subscriptions (for health, metrics and leak tests). */
  readonly subscriberCount: number;
  /**
   * The last sequence handed to subscriptions: a subscription made now receives every matching
   * event after it, and none before.
   */
  readonly dispatchedSequence: number;
  /**
   * Events of the log in `scope` after `sequence`, in order, at most `limit` (replays): read
   * through an index of the scope, never the whole log.
   */
  readScoped(sequence: number, limit: number, scope: LogScope): Promise<ScopedPage>;
  /** The event log's id and the sequences it holds. */
  log(): Promise<EventLog>;
  /** Ends every subscription with `reason` and refuses new work. */
  close(reason: unknown): Promise<void>;
}
