import { ServiceError } from "../errors.js";
import {
  BoundedQueue,
  type BoundedQueueOptions,
  type BoundedQueueStats,
  type CoalescePolicy,
} from "../stream/bounded-queue.js";
import { coalesce, deliveredOperation } from "../watch/coalesce.js";
import { ResourceType } from "../watch/model.js";
import { endsStream, matches, type WatchPlan } from "../watch/plan.js";
import { isEnvironmentOwned } from "../watch/visibility.js";
import type { PublishedEvent, SubscribeOptions, Subscription } from "./event-bus.js";

/**
 * A subscription: its plan, and the bounded queue its events wait in. One object per stream
 * (it is also what the dispatcher's indexes hold), which leaves the dispatcher when it closes.
 */
class Watcher extends BoundedQueue<PublishedEvent> {
  constructor(
    readonly plan: WatchPlan,
    capacity: number,
    options: BoundedQueueOptions<PublishedEvent>,
    private readonly dispatcher: Dispatcher,
    private readonly onEnd: SubscribeOptions["onClose"],
  ) {
    super(capacity, options);
  }

  protected override onClosed(stats: BoundedQueueStats): void {
    this.dispatcher.detach(this);
    this.onEnd?.(stats);
  }
}

/** Organization-scope watchers of one organization, indexed by what they can receive. */
interface OrgBucket {
  /** Watchers without filters: candidates for every event of the organization. */
  readonly unfiltered: Set<Watcher>;
  /** Watchers with filters, under each resource type they name. */
  readonly byType: Map<number, Set<Watcher>>;
  size: number;
}

/**
 * The in-process fan-out shared by every bus: subscriptions and their indexes. Dispatch is
 * synchronous: each event is routed through
 * indexes (organization, resource type, environment) to the watchers that could receive it, so
 * its cost grows with those candidates, not with every connected watcher; each candidate is
 * matched once and gets the shared PublishedEvent pushed onto its bounded queue. A full queue
 * coalesces the pending events of each resource (see `coalesce`); one that still cannot take a
 * new resource ends that stream with `resource_exhausted`. The publisher never waits on a
 * reader.
 */
export class Dispatcher {
  private closedReason: unknown;
  private closed = false;
  private readonly orgs = new Map<string, OrgBucket>();
  private readonly environments = new Map<string, Set<Watcher>>();
  private count = 0;
  /**
   * Fold states of merged events whose state is not the operation they show (RECREATED): only
   * ever set while a queue coalesces, and gone with the event.
   */
  private readonly foldStates = new WeakMap<PublishedEvent, number>();
  /** Shared by every queue; called only by queues that are full. */
  private readonly coalescing: CoalescePolicy<PublishedEvent> = {
    key: (p) => `${p.event.resourceType}:${p.event.resourceId}`,
    merge: (pending, next) => this.merge(pending, next),
  };

  get subscriberCount(): number {
    return this.count;
  }

  /** Queue options of subscriptions without a signal, shared by all of them. */
  private readonly queueOptions: BoundedQueueOptions<PublishedEvent> = {
    coalesce: this.coalescing,
  };

  subscribe(plan: WatchPlan, options: SubscribeOptions): Subscription {
    const signal = options.signal;
    const live = signal !== undefined && !signal.aborted;
    const watcher = new Watcher(
      plan,
      options.maxBacklog,
      live ? { coalesce: this.coalescing, signal } : this.queueOptions,
      this,
      options.onClose,
    );
    if (this.closed) watcher.fail(this.closedReason);
    else if (signal?.aborted) watcher.fail(signal.reason);
    else this.add(watcher);
    return watcher;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Ends every subscription with `reason`; later subscriptions fail at once with it. */
  close(reason: unknown): void {
    if (this.closed) return;
    this.closed = true;
    this.closedReason = reason;
    for (const bucket of this.orgs.values()) {
      for (const w of bucket.unfiltered) w.fail(reason);
      for (const set of bucket.byType.values()) for (const w of set) w.fail(reason);
    }
    for (const set of this.environments.values()) for (const w of set) w.fail(reason);
  }

  /** Hands one event to every subscription whose plan matches it, in call order. */
  dispatch(published: PublishedEvent): void {
    const event = published.event;
    const type = event.resourceType;
    if (type === ResourceType.ENVIRONMENT || isEnvironmentOwned(type)) {
      const set = this.environments.get(event.environmentId);
      if (set !== undefined) for (const w of set) this.deliver(w, published);
      if (type !== ResourceType.ENVIRONMENT) return;
    }
    const bucket = this.orgs.get(event.organizationId);
    if (bucket === undefined) return;
    for (const w of bucket.unfiltered) this.deliver(w, published);
    const typed = bucket.byType.get(type);
    if (typed !== undefined) for (const w of typed) this.deliver(w, published);
  }

  private deliver(w: Watcher, published: PublishedEvent): void {
    if (!matches(w.plan, published.event, published.creatorId)) return;
    const last = endsStream(w.plan, published.event);
    // The event that ends the stream is delivered last even when merged into a pending one.
    if (!(last ? w.endWith(published) : w.push(published))) {
      w.fail(
        new ServiceError(
          "resource_exhausted",
          `the stream fell more than ${w.capacity} events behind; reconnect and refetch`,
        ),
      );
      return;
    }
    // The consumer drains what is pending, then finishes; nothing more is routed to it.
    if (last) this.detach(w);
  }

  /**
   * Two pending events of one resource as one: the operation `coalesce` gives, the newest
   * sequence, the first event's identity; undefined when they cancel out.
   */
  private merge(pending: PublishedEvent, next: PublishedEvent): PublishedEvent | undefined {
    const before = this.foldStates.get(pending) ?? pending.event.operation;
    const state = coalesce(before, next.event.operation);
    if (state === undefined) return undefined;
    const operation = deliveredOperation(state);
    const merged: PublishedEvent = {
      sequence: next.sequence,
      event: { ...pending.event, operation },
      creatorId: pending.creatorId || next.creatorId,
      // The oldest change it carries: latency measures how stale the reader's view was.
      publishedAtMs: pending.publishedAtMs,
      acceptedAtMs: next.acceptedAtMs,
    };
    if (state !== operation) this.foldStates.set(merged, state);
    return merged;
  }

  private add(w: Watcher): void {
    this.count++;
    const plan = w.plan;
    if (plan.environmentId !== undefined) {
      let set = this.environments.get(plan.environmentId);
      if (set === undefined) {
        set = new Set();
        this.environments.set(plan.environmentId, set);
      }
      set.add(w);
      return;
    }
    let bucket = this.orgs.get(plan.organizationId);
    if (bucket === undefined) {
      bucket = { unfiltered: new Set(), byType: new Map(), size: 0 };
      this.orgs.set(plan.organizationId, bucket);
    }
    bucket.size++;
    if (plan.filters === undefined) {
      bucket.unfiltered.add(w);
      return;
    }
    for (const type of plan.filters.keys()) {
      let set = bucket.byType.get(type);
      if (set === undefined) {
        set = new Set();
        bucket.byType.set(type, set);
      }
      set.add(w);
    }
  }

  /** Takes a watcher out of the indexes (again: nothing happens). */
  detach(w: Watcher): void {
    const plan = w.plan;
    if (plan.environmentId !== undefined) {
      const set = this.environments.get(plan.environmentId);
      if (set?.delete(w)) {
        this.count--;
        if (set.size === 0) this.environments.delete(plan.environmentId);
      }
      return;
    }
    const bucket = this.orgs.get(plan.organizationId);
    if (bucket === undefined) return;
    let removed = bucket.unfiltered.delete(w);
    if (plan.filters !== undefined) {
      for (const type of plan.filters.keys()) {
        const set = bucket.byType.get(type);
        if (set?.delete(w)) {
          removed = true;
          if (set.size === 0) bucket.byType.delete(type);
        }
      }
    }
    if (!removed) return;
    this.count--;
    if (--bucket.size === 0) this.orgs.delete(plan.organizationId);
  }
}
