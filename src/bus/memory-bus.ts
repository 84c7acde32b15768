import { ServiceError } from "../errors.js";
import type { EnvironmentRecord, ResourceEvent } from "../watch/model.js";
import type { WatchPlan } from "../watch/plan.js";
import { Dispatcher } from "./dispatcher.js";
import type {
  EventBus,
  PublishedEvent,
  PublishResult,
  SubscribeOptions,
  Subscription,
} from "./event-bus.js";
import { ResourceDirectory } from "./resource-directory.js";

export interface MemoryBusOptions {
  /** Resources whose creator and organization are remembered (see ResourceDirectory). */
  readonly directoryMaxEntries: number;
}

/**
 * The in-process event bus without persistence: sequence numbers and what it learns of
 * resources live in memory and die with the process. Publishing dispatches at once.
 */
export class MemoryBus implements EventBus {
  private sequence = 0;
  private readonly dispatcher = new Dispatcher();
  private readonly directory: ResourceDirectory;

  constructor(options: MemoryBusOptions) {
    this.directory = new ResourceDirectory(options.directoryMaxEntries);
  }

  get subscriberCount(): number {
    return this.dispatcher.subscriberCount;
  }

  async publish(events: readonly ResourceEvent[]): Promise<PublishResult> {
    if (this.dispatcher.isClosed) {
      throw new ServiceError("unavailable", "the server is shutting down");
    }
    const publishedAtMs = performance.now();
    const firstSequence = this.sequence + 1;
    for (const event of events) {
      const creatorId = this.directory.creatorOf(event);
      const published: PublishedEvent = {
        sequence: ++this.sequence,
        event,
        creatorId,
        publishedAtMs,
      };
      this.dispatcher.dispatch(published);
      this.directory.learn(event, creatorId);
    }
    return { firstSequence, lastSequence: this.sequence };
  }

  async environment(environmentId: string): Promise<EnvironmentRecord | undefined> {
    return this.directory.environment(environmentId);
  }

  subscribe(plan: WatchPlan, options: SubscribeOptions): Subscription {
    return this.dispatcher.subscribe(plan, options);
  }

  async close(reason: unknown): Promise<void> {
    this.dispatcher.close(reason);
  }
}
