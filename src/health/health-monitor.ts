import { ServiceError } from "../errors.js";
import type { StreamSession } from "../session/stream-session.js";
import { BoundedQueue } from "../stream/bounded-queue.js";
import type { Readiness } from "./readiness.js";

/** A serving status, as grpc.health.v1 numbers it. */
export type ServingStatus = 1 | 2 | 3;
export const SERVING: ServingStatus = 1;
export const NOT_SERVING: ServingStatus = 2;
export const SERVICE_UNKNOWN: ServingStatus = 3;

/**
 * One status as a stream item. There is one shared object per status, so that the streaming
 * edge encodes each status once for every watcher.
 */
export interface HealthItem {
  readonly status: ServingStatus;
}
const ITEMS: Record<ServingStatus, HealthItem> = {
  1: Object.freeze({ status: SERVING }),
  2: Object.freeze({ status: NOT_SERVING }),
  3: Object.freeze({ status: SERVICE_UNKNOWN }),
};

export interface HealthMonitorOptions {
  readonly readiness: Readiness;
  /** Fully-qualified names of the services of the port ("" is always known). */
  readonly services: readonly string[];
  /** How often readiness is asked while someone watches, in ms. */
  readonly pollMs?: number;
  /**
   * Watches open at once (they need no credential); more are refused with resource_exhausted.
   * Default 100.
   */
  readonly maxWatches?: number;
}

/**
 * The health of the server and its services, from readiness (starting, draining, the store):
 * every known service is as healthy as the server. Watches get the status at once, then each
 * change; they are polled (at most once per `pollMs`, one check for all) only while someone
 * watches.
 */
export class HealthMonitor {
  private readonly known: ReadonlySet<string>;
  /** Open watches, and whether each is of a known service (the others stay SERVICE_UNKNOWN). */
  private readonly watches = new Map<BoundedQueue<HealthItem>, boolean>();
  private current: ServingStatus | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed: unknown;

  constructor(private readonly options: HealthMonitorOptions) {
    this.known = new Set(["", ...options.services]);
  }

  /** Open watches (leak tests). */
  get watchCount(): number {
    return this.watches.size;
  }

  /** The status of `service` now; undefined for a service the server does not know. */
  async check(service: string): Promise<ServingStatus | undefined> {
    if (!this.known.has(service)) return undefined;
    return (await this.options.readiness.check()).ready ? SERVING : NOT_SERVING;
  }

  /**
   * A stream of `service`'s status: now, then each change; SERVICE_UNKNOWN (once) for a service
   * the server does not know. Ends with the reason given to `close`.
   */
  async watch(service: string): Promise<StreamSession<HealthItem>> {
    const max = this.options.maxWatches ?? 100;
    if (this.closed === undefined && this.watches.size >= max) {
      throw new ServiceError(
        "resource_exhausted",
        `too many health watches open on this server (at most ${max}); use Check, or retry later`,
      );
    }
    const items = new BoundedQueue<HealthItem>(2, {
      // A watcher behind by a change only needs the newest status.
      coalesce: { key: () => "status", merge: (_, next) => next },
      onClose: () => this.forget(items),
    });
    const session: StreamSession<HealthItem> = {
      items,
      wrote() {},
      // However the edge stopped, the watch is over: release it.
      end: () => items.cancel(undefined),
    };
    if (this.closed !== undefined) {
      items.cancel(this.closed);
      return session;
    }
    const known = this.known.has(service);
    this.watches.set(items, known);
    if (!known) {
      items.push(ITEMS[SERVICE_UNKNOWN]);
      return session;
    }
    const status = (await this.check(service)) as ServingStatus;
    this.current ??= status;
    items.push(ITEMS[status]);
    this.timer ??= setInterval(() => void this.refresh(), this.options.pollMs ?? 1000).unref();
    return session;
  }

  /** Asks readiness now and tells every watch if the status changed (drain calls it). */
  async refresh(): Promise<void> {
    if (this.watches.size === 0) return;
    const status = (await this.options.readiness.check()).ready ? SERVING : NOT_SERVING;
    if (status === this.current) return;
    this.current = status;
    for (const [items, known] of this.watches) if (known) items.push(ITEMS[status]);
  }

  /** Ends every watch with `reason` (shutdown: unavailable), and refuses new ones with it. */
  close(reason: unknown): void {
    this.closed = reason;
    for (const items of [...this.watches.keys()]) items.cancel(reason);
  }

  private forget(items: BoundedQueue<HealthItem>): void {
    this.watches.delete(items);
    if (this.watches.size === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
      this.current = undefined;
    }
  }
}
