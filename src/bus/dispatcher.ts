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

/** Whether two arrays hold the same objects in the same order. */
function sameItems<T>(a: readonly T[], b: readonly T[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

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

/**
 * Watchers without filters that see exactly the same events: the same organization, and all
 * admins, or all the same member (see `viewKey`). An event is matched once for all of them.
 */
interface View {
  /** The plan of one of them, for matching: equal, for `matches`, to every other's. */
  readonly plan: WatchPlan;
  readonly watchers: Set<Watcher>;
}

/**
 * What decides, besides the organization, which events an organization-scope watcher without
 * filters may see (see `matches`): admins see all, a member also what they created.
 */
function viewKey(plan: WatchPlan): string {
  return plan.admin ? "" : plan.subject;
}

/** Organization-scope watchers of one organization, indexed by what they can receive. */
interface OrgBucket {
  /** Watchers without filters, by view (viewKey): candidates for every event of the organization. */
  readonly unfiltered: Map<string, View>;
  /**
   * Watchers with filters, under each resource type they name; made with the first of them
   * (most organizations have none, and an empty Map costs about 200 bytes).
   */
  byType: Map<number, Set<Watcher>> | undefined;
  size: number;
}

/**
 * The in-process fan-out shared by every bus: subscriptions and their indexes. Dispatch is
 * synchronous: each event is routed through
 * indexes (organization, resource type, environment) to the watchers that could receive it, so
 * its cost grows with those candidates, not with every connected watcher; each candidate is
 * matched once and gets the shared PublishedEvent pushed onto its bounded queue. Watchers
 * without filters are grouped by what they may see (View): a batch's events are matched once
 * per view, and what matched goes to each of its watchers as one shared array (`pushRun`), so
 * a watcher costs one push per batch rather than one per event. A full queue
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
      for (const view of bucket.unfiltered.values()) for (const w of view.watchers) w.fail(reason);
      if (bucket.byType !== undefined) {
        for (const set of bucket.byType.values()) for (const w of set) w.fail(reason);
      }
    }
    for (const set of this.environments.values()) for (const w of set) w.fail(reason);
  }

  /** Hands one event to every subscription whose plan matches it, in call order. */
  dispatch(published: PublishedEvent): void {
    const event = published.event;
    if (!this.dispatchOne(published)) return;
    const bucket = this.orgs.get(event.organizationId);
    if (bucket === undefined || bucket.unfiltered.size === 0) return;
    for (const view of bucket.unfiltered.values()) {
      if (!matches(view.plan, event, published.creatorId)) continue;
      for (const w of view.watchers) this.pushTo(w, published);
    }
  }

  /**
   * Hands a batch's events (in sequence order) to every subscription whose plan matches them,
   * as `dispatch` of each in turn would, with one push per watcher without filters.
   */
  dispatchAll(batch: readonly PublishedEvent[]): void {
    if (batch.length === 1) {
      this.dispatch(batch[0] as PublishedEvent);
      return;
    }
    let org: string | undefined;
    let mixed = false;
    for (const p of batch) {
      this.dispatchOne(p);
      const o = p.event.organizationId;
      if (org === undefined) org = o;
      else if (o !== org) mixed = true;
    }
    if (!mixed) this.toViews(org as string, batch);
    else {
      // Events of several organizations (a publisher of every organization): each one's own.
      const byOrg = new Map<string, PublishedEvent[]>();
      for (const p of batch) {
        const o = p.event.organizationId;
        const list = byOrg.get(o);
        if (list === undefined) byOrg.set(o, [p]);
        else list.push(p);
      }
      for (const [o, list] of byOrg) this.toViews(o, list);
    }
  }

  /** Events of one organization, in order, to its watchers without filters, view by view. */
  private toViews(organizationId: string, events: readonly PublishedEvent[]): void {
    const bucket = this.orgs.get(organizationId);
    if (bucket === undefined || bucket.unfiltered.size === 0) return;
    // Views that see the same events share one array (members, usually, unless the batch
    // holds what one of them created): the writers then encode it once for all.
    let previous: PublishedEvent[] | undefined;
    for (const view of bucket.unfiltered.values()) {
      let seen: PublishedEvent[] = [];
      for (const p of events) if (matches(view.plan, p.event, p.creatorId)) seen.push(p);
      if (seen.length === 0) continue;
      if (previous !== undefined && sameItems(previous, seen)) seen = previous;
      previous = seen;
      if (seen.length === 1) {
        const only = seen[0] as PublishedEvent;
        for (const w of view.watchers) this.pushTo(w, only);
        continue;
      }
      for (const w of view.watchers) {
        if (!w.pushRun(seen)) this.overflow(w);
      }
    }
  }

  /**
   * One event to its candidates other than the organization's watchers without filters:
   * environment scope, and organization scope with filters of its type. False when no
   * organization-scope watcher can see it (it is an environment's own).
   */
  private dispatchOne(published: PublishedEvent): boolean {
    const event = published.event;
    const type = event.resourceType;
    if (type === ResourceType.ENVIRONMENT || isEnvironmentOwned(type)) {
      const set = this.environments.get(event.environmentId);
      if (set !== undefined) for (const w of set) this.deliver(w, published);
      if (type !== ResourceType.ENVIRONMENT) return false;
    }
    const bucket = this.orgs.get(event.organizationId);
    if (bucket === undefined) return true;
    const typed = bucket.byType?.get(type);
    if (typed !== undefined) for (const w of typed) this.deliver(w, published);
    return true;
  }

  /** A matched event that does not end the watcher's stream. */
  private pushTo(w: Watcher, published: PublishedEvent): void {
    if (!w.push(published)) this.overflow(w);
  }

  /** The watcher's queue could not take what it was given: it is too far behind. */
  private overflow(w: Watcher): void {
    w.fail(
      new ServiceError(
        "resource_exhausted",
        `the stream fell more than ${w.capacity} events behind; reconnect and refetch`,
      ),
    );
  }

  private deliver(w: Watcher, published: PublishedEvent): void {
    if (!matches(w.plan, published.event, published.creatorId)) return;
    if (!endsStream(w.plan, published.event)) {
      this.pushTo(w, published);
      return;
    }
    // The event that ends the stream is delivered last even when merged into a pending one.
    if (!w.endWith(published)) {
      this.overflow(w);
      return;
    }
    // The consumer drains what is pending, then finishes; nothing more is routed to it.
    this.detach(w);
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
      bucket = { unfiltered: new Map(), byType: undefined, size: 0 };
      this.orgs.set(plan.organizationId, bucket);
    }
    bucket.size++;
    if (plan.filters === undefined) {
      const key = viewKey(plan);
      const view = bucket.unfiltered.get(key);
      if (view === undefined) bucket.unfiltered.set(key, { plan, watchers: new Set([w]) });
      else view.watchers.add(w);
      return;
    }
    bucket.byType ??= new Map();
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
    let removed = false;
    if (plan.filters === undefined) {
      const key = viewKey(plan);
      const view = bucket.unfiltered.get(key);
      removed = view?.watchers.delete(w) === true;
      if (removed && view?.watchers.size === 0) bucket.unfiltered.delete(key);
    } else {
      const byType = bucket.byType;
      for (const type of plan.filters.keys()) {
        const set = byType?.get(type);
        if (set?.delete(w)) {
          removed = true;
          if (set.size === 0) byType?.delete(type);
        }
      }
      if (byType?.size === 0) bucket.byType = undefined;
    }
    if (!removed) return;
    this.count--;
    if (--bucket.size === 0) this.orgs.delete(plan.organizationId);
  }
}
