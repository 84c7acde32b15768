import type { Logger } from "pino";
import type { Authenticator } from "../auth/authenticator.js";
import type {
  EventBus,
  PublishedEvent,
  Subscription,
  SubscriptionStats,
} from "../bus/event-bus.js";
import { accepted, codeName, codeOf, ServiceError, shuttingDown } from "../errors.js";
import { LongTimer } from "../long-timer.js";
import type { Metrics } from "../metrics.js";
import type { Principal, WatchRequest } from "../watch/model.js";
import { planWatch, type WatchPlan } from "../watch/plan.js";
import { validateWatchRequest } from "../watch/validate.js";
import type { StreamSession } from "./stream-session.js";

// One delivery in this many feeds the publish-to-write latency histogram.
const LATENCY_SAMPLE_EVERY = 8;

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

/** One open watch stream: its items are the subscription's events, in order. */
export interface WatchStream extends StreamSession<PublishedEvent> {
  /** What the stream may see (the feed replays the log through it). */
  readonly plan: WatchPlan;
}

/** What a stream is opened with. */
export interface OpenWatchOptions {
  readonly principal: Principal;
  readonly request: WatchRequest;
  /** The wire form, for logs and metrics. */
  readonly protocol: string;
  /** For the stream's log line (default WatchEvents). */
  readonly rpc?: string;
}

/**
 * Opens watch streams, whatever the transport: validates and authorizes the
 * request, caps streams per subject, subscribes to the bus, and ends the stream with
 * `unauthenticated` when its credential expires or is revoked, with `unavailable` when it
 * reaches its maximum lifetime, or when the server drains.
 */
export class WatchSessions {
  /** @internal For OpenStream. */
  readonly byCredential = new Map<string, Set<Subscription>>();
  /** @internal For OpenStream. */
  readonly perSubject = new Map<string, number>();
  private draining = false;
  private readonly stopRevocations: () => void;

  constructor(readonly deps: WatchSessionsDeps) {
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
   * Opens a stream. Throws ServiceError before anything is streamed when the request is invalid
   * or not allowed; the stream's items end when the edge cancels them, and fail or finish as
   * the bus decides.
   */
  async open(options: OpenWatchOptions): Promise<WatchStream> {
    const { principal, request: raw, protocol } = options;
    if (this.draining) throw shuttingDown();
    const request = accepted(validateWatchRequest(raw));
    const environment =
      request.scope.kind === "environment"
        ? await this.deps.bus.environment(request.scope.environmentId)
        : undefined;
    const plan = accepted(planWatch(principal, request, environment));
    // The credential was checked when the headers came; the body may have taken a while, and a
    // revocation only ends streams already registered. From this check to the registration
    // below nothing waits, so no revocation falls in between.
    if (!this.deps.authenticator.isValid(principal)) {
      throw new ServiceError("unauthenticated", "credential revoked or expired");
    }
    const subject = principal.subject;
    const streams = this.perSubject.get(subject) ?? 0;
    if (streams >= this.deps.maxStreamsPerSubject) {
      throw new ServiceError(
        "resource_exhausted",
        `too many open streams for this caller (at most ${this.deps.maxStreamsPerSubject})`,
      );
    }
    this.perSubject.set(subject, streams + 1);

    const stream = new OpenStream(
      this,
      protocol,
      request.scope.kind,
      principal,
      plan,
      options.rpc ?? "WatchEvents",
    );
    // The edge's `cancel` (client gone, deadline) ends the subscription; so do expiry,
    // revocation and the lifetime.
    const events = this.deps.bus.subscribe(plan, {
      maxBacklog: this.deps.maxBacklog,
      // Bound rather than an arrow: an arrow here would keep this call's context alive as long
      // as the stream, one more object per open stream.
      onClose: stream.released.bind(stream),
    });
    stream.items = events;
    if (events.isClosed) return stream;
    let set = this.byCredential.get(principal.credentialId);
    if (set === undefined) {
      set = new Set();
      this.byCredential.set(principal.credentialId, set);
    }
    set.add(events);
    if (principal.expiresAtMs !== undefined) stream.expireAt(principal.expiresAtMs);
    if (this.deps.maxLifetimeMs > 0) {
      // Jitter spreads reconnections of streams opened together (a deploy, say).
      stream.endAfter(this.deps.maxLifetimeMs * (0.9 + 0.1 * Math.random()));
    }
    return stream;
  }
}

/**
 * One open stream: its subscription, the timers that may end it, what it delivered. One object
 * with fields (no closures) since thousands are open at once.
 */
class OpenStream implements WatchStream {
  items!: Subscription;
  private readonly subject: string;
  private readonly credentialId: string;
  private readonly startedAt: number;
  private expiry: LongTimer | undefined;
  private lifetime: NodeJS.Timeout | undefined;
  private delivered = 0;
  private coalesced = 0;
  private ended = false;

  constructor(
    private readonly sessions: WatchSessions,
    private readonly protocol: string,
    private readonly scope: string,
    principal: Principal,
    readonly plan: WatchPlan,
    private readonly rpc: string,
  ) {
    this.subject = principal.subject;
    this.credentialId = principal.credentialId;
    this.startedAt = sessions.deps.monotonicNow();
    sessions.deps.metrics.streamOpened(protocol, scope);
  }

  /** Ends the stream with `unauthenticated` once the credential expires. */
  expireAt(expiresAtMs: number): void {
    // Credentials may live longer than a timer can wait: the timer re-arms until they expire.
    const { now } = this.sessions.deps;
    this.expiry = new LongTimer(
      () => expiresAtMs - now(),
      () => this.items.cancel(new ServiceError("unauthenticated", "token expired")),
    );
  }

  /** Ends the stream with `unavailable` after `ms`. */
  endAfter(ms: number): void {
    this.lifetime = setTimeout(() => {
      this.items.cancel(
        new ServiceError("unavailable", "stream reached its maximum lifetime; reconnect"),
      );
    }, ms);
    this.lifetime.unref();
  }

  /** The subscription closed (however it ended): forget it. */
  released(stats: SubscriptionStats): void {
    this.coalesced = stats.coalesced;
    this.expiry?.clear();
    clearTimeout(this.lifetime);
    const { byCredential, perSubject } = this.sessions;
    const set = byCredential.get(this.credentialId);
    // `items` is unset when the subscription ended as it was made (an aborted signal).
    if (this.items !== undefined && set?.delete(this.items) && set.size === 0) {
      byCredential.delete(this.credentialId);
    }
    const n = (perSubject.get(this.subject) ?? 1) - 1;
    if (n <= 0) perSubject.delete(this.subject);
    else perSubject.set(this.subject, n);
  }

  wrote(event: PublishedEvent, count: number): void {
    const before = this.delivered;
    this.delivered = before + count;
    const { metrics, monotonicNow } = this.sessions.deps;
    metrics.deliveries += count;
    // One write in LATENCY_SAMPLE_EVERY feeds the publish-to-write latency histogram.
    if (
      Math.floor(before / LATENCY_SAMPLE_EVERY) !==
      Math.floor(this.delivered / LATENCY_SAMPLE_EVERY)
    ) {
      metrics.observeLatencyMs(monotonicNow() - event.publishedAtMs);
    }
  }

  end(error: unknown): void {
    if (this.ended) return;
    this.ended = true;
    // Leaving early (a client gone mid-write) must still unsubscribe; the subscription reports
    // its stats (coalesced) as it closes.
    void this.items.return?.();
    const { metrics, logger, monotonicNow } = this.sessions.deps;
    metrics.coalesced += this.coalesced;
    const reason = codeName(error === undefined ? undefined : codeOf(error));
    metrics.streamEnded(this.protocol, this.scope, reason);
    logger.info(
      {
        rpc: this.rpc,
        protocol: this.protocol,
        scope: this.scope,
        subject: this.subject,
        code: reason,
        durationMs: Math.round(monotonicNow() - this.startedAt),
        delivered: this.delivered,
        coalesced: this.coalesced,
      },
      "stream ended",
    );
  }
}
