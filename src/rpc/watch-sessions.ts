import { codeToString } from "@connectrpc/connect/protocol-connect";
import type { Logger } from "pino";
import type { Authenticator } from "../auth/authenticator.js";
import type {
  EventBus,
  PublishedEvent,
  Subscription,
  SubscriptionStats,
} from "../bus/event-bus.js";
import { ServiceError, toConnectError } from "../errors.js";
import type { Metrics } from "../metrics.js";
import type { Principal, WatchRequest } from "../watch/model.js";
import { planWatch } from "../watch/plan.js";
import { isViolation, validateWatchRequest } from "../watch/validate.js";

// setTimeout's longest delay; longer credential lifetimes re-arm the timer.
const MAX_TIMER_MS = 2_147_483_647;
// One write in this many feeds the publish-to-write latency histogram.
const LATENCY_SAMPLE_MASK = 7;

export interface WatchSessionsDeps {
  readonly bus: EventBus;
  readonly authenticator: Authenticator;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly maxBacklog: number;
  readonly maxStreamsPerSubject: number;
  /** 0: streams live as long as their clients want. */
  readonly maxLifetimeMs: number;
  /** Wall clock, ms since the epoch (credential expiry). */
  readonly now: () => number;
  /** Monotonic clock, ms (durations, latency). */
  readonly monotonicNow: () => number;
}

/** One open stream, as an edge drives it. */
export interface WatchStream {
  /** The events to write, in order. Throws when the stream is ended by the server. */
  readonly events: Subscription;
  /** Call after each event is handed to the transport. */
  wrote(event: PublishedEvent): void;
  /**
   * Call exactly once when the edge stops, with what ended it (undefined: a normal end).
   * Logs the one line per stream and updates the metrics.
   */
  end(error: unknown): void;
}

/**
 * Opens watch streams for both edges (Connect and JSONL): validates and authorizes the
 * request, caps streams per subject, subscribes to the bus, and ends the stream with
 * `unauthenticated` when its credential expires or is revoked, with `unavailable` when it
 * reaches its maximum lifetime, or when the server drains.
 */
export class WatchSessions {
  private readonly byCredential = new Map<string, Set<Subscription>>();
  private readonly perSubject = new Map<string, number>();
  private draining = false;
  private readonly stopRevocations: () => void;

  constructor(private readonly deps: WatchSessionsDeps) {
    this.stopRevocations = deps.authenticator.onRevoke((ids) => {
      for (const id of ids) {
        const set = this.byCredential.get(id);
        if (set === undefined) continue;
        for (const sub of set)
          sub.cancel(new ServiceError("unauthenticated", "credential revoked"));
      }
    });
  }

  /** Refuses new streams from now on (open ones are ended by the bus closing). */
  drain(): void {
    this.draining = true;
    this.stopRevocations();
  }

  /**
   * Opens a stream for `principal` over `protocol` (for logs and metrics). Throws ServiceError
   * before anything is streamed when the request is invalid or not allowed; the stream's events
   * end when `signal` aborts (with its reason), and throw or finish as the bus decides.
   */
  async open(
    principal: Principal,
    raw: WatchRequest,
    signal: AbortSignal,
    protocol: string,
  ): Promise<WatchStream> {
    if (this.draining) throw new ServiceError("unavailable", "the server is shutting down");
    const request = validateWatchRequest(raw);
    if (isViolation(request)) throw new ServiceError(request.kind, request.message);
    const environment =
      request.scope.kind === "environment"
        ? await this.deps.bus.environment(request.scope.environmentId)
        : undefined;
    const plan = planWatch(principal, request, environment);
    if (isViolation(plan)) throw new ServiceError(plan.kind, plan.message);
    const subject = principal.subject;
    const streams = this.perSubject.get(subject) ?? 0;
    if (streams >= this.deps.maxStreamsPerSubject) {
      throw new ServiceError(
        "resource_exhausted",
        `too many open streams for this caller (at most ${this.deps.maxStreamsPerSubject})`,
      );
    }
    this.perSubject.set(subject, streams + 1);

    const credentialId = principal.credentialId;
    const timers: NodeJS.Timeout[] = [];
    let coalesced = 0;
    // Set once subscribed; a subscription that ends at once (aborted signal) closes before.
    let subscription: Subscription | undefined;
    const release = (stats: SubscriptionStats) => {
      coalesced = stats.coalesced;
      for (const t of timers) clearTimeout(t);
      const s = this.byCredential.get(credentialId);
      if (subscription !== undefined && s?.delete(subscription) && s.size === 0) {
        this.byCredential.delete(credentialId);
      }
      const n = (this.perSubject.get(subject) ?? 1) - 1;
      if (n <= 0) this.perSubject.delete(subject);
      else this.perSubject.set(subject, n);
    };
    // The caller's signal (client gone, deadline) ends the subscription; expiry, revocation and
    // the lifetime end it with `cancel`.
    const events = this.deps.bus.subscribe(plan, {
      signal,
      maxBacklog: this.deps.maxBacklog,
      onClose: release,
    });
    subscription = events;
    if (!events.isClosed) {
      let set = this.byCredential.get(credentialId);
      if (set === undefined) {
        set = new Set();
        this.byCredential.set(credentialId, set);
      }
      set.add(events);
    }

    const expiresAtMs = principal.expiresAtMs;
    if (expiresAtMs !== undefined && !events.isClosed) {
      const arm = () => {
        const left = expiresAtMs - this.deps.now();
        if (left <= 0) {
          events.cancel(new ServiceError("unauthenticated", "token expired"));
          return;
        }
        const t = setTimeout(arm, Math.min(left, MAX_TIMER_MS));
        t.unref();
        timers.push(t);
      };
      arm();
    }
    if (this.deps.maxLifetimeMs > 0 && !events.isClosed) {
      // Jitter spreads reconnections of streams opened together (a deploy, say).
      const lifetime = this.deps.maxLifetimeMs * (0.9 + 0.1 * Math.random());
      const t = setTimeout(() => {
        events.cancel(
          new ServiceError("unavailable", "stream reached its maximum lifetime; reconnect"),
        );
      }, lifetime);
      t.unref();
      timers.push(t);
    }
    const { metrics, logger, monotonicNow } = this.deps;
    const scope = request.scope.kind;
    const startedAt = monotonicNow();
    let delivered = 0;
    let ended = false;
    metrics.streamOpened(protocol, scope);
    return {
      events,
      wrote(event) {
        delivered++;
        metrics.deliveries++;
        if ((delivered & LATENCY_SAMPLE_MASK) === 0) {
          metrics.observeLatencyMs(monotonicNow() - event.publishedAtMs);
        }
      },
      end(error) {
        if (ended) return;
        ended = true;
        // Leaving the loop early (a client gone mid-write) must still unsubscribe; the
        // subscription reports its stats (coalesced) as it closes.
        void events.return?.();
        metrics.coalesced += coalesced;
        const reason = error === undefined ? "ok" : codeToString(toConnectError(error).code);
        metrics.streamEnded(protocol, scope, reason);
        logger.info(
          {
            rpc: "WatchEvents",
            protocol,
            scope,
            subject,
            code: reason,
            durationMs: Math.round(monotonicNow() - startedAt),
            delivered,
            coalesced,
          },
          "stream ended",
        );
      },
    };
  }
}
