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
  readonly publishedAtMs?: number;
}

export interface PublishResult {
  readonly firstSequence: number;
  readonly lastSequence: number;
}

export interface SubscribeOptions {
  /** Aborting it ends the subscription with `signal.reason`. */
  readonly signal: AbortSignal;
  /** Events a subscriber may fall behind by before its stream is ended. */
  readonly maxBacklog: number;
  /** Called once when the subscription ends, however it ends. */
  readonly onClose?: () => void;
}

/**
 * The event bus port. `publish` accepts a validated batch whole and hands its events, in batch
 * order after every earlier batch, to every subscription whose plan matches them. A
 * subscription yields its events in that order; it throws when it is ended by the bus (falling
 * behind: `resource_exhausted`; bus closed: `unavailable`) and finishes normally after the
 * deletion of the environment it watches.
 */
export interface EventBus {
  publish(events: readonly ResourceEvent[]): Promise<PublishResult>;
  /** What is known of an environment, to authorize environment scope. */
  environment(environmentId: string): Promise<EnvironmentRecord | undefined>;
  subscribe(plan: WatchPlan, options: SubscribeOptions): AsyncIterableIterator<PublishedEvent>;
  /** Open subscriptions (for health, metrics and leak tests). */
  readonly subscriberCount: number;
  /** Ends every subscription with `reason` and refuses new work. */
  close(reason: unknown): Promise<void>;
}
