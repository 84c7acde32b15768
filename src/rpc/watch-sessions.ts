import type { Logger } from "pino";
import type { Authenticator } from "../auth/authenticator.js";
import type { EventBus, PublishedEvent } from "../bus/event-bus.js";
import { ServiceError } from "../errors.js";
import type { Principal, WatchRequest } from "../watch/model.js";
import { planWatch } from "../watch/plan.js";
import { isViolation, validateWatchRequest } from "../watch/validate.js";

// setTimeout's longest delay; longer credential lifetimes re-arm the timer.
const MAX_TIMER_MS = 2_147_483_647;

export interface WatchSessionsDeps {
  readonly bus: EventBus;
  readonly authenticator: Authenticator;
  readonly logger: Logger;
  readonly maxBacklog: number;
  readonly now: () => number;
}

/**
 * Opens watch streams for both edges (Connect and JSONL): validates and authorizes the
 * request, subscribes to the bus, and ends the stream with `unauthenticated` when its
 * credential expires or is revoked, or with `unavailable` when the server drains.
 */
export class WatchSessions {
  private readonly byCredential = new Map<string, Set<AbortController>>();
  private draining = false;
  private readonly stopRevocations: () => void;

  constructor(private readonly deps: WatchSessionsDeps) {
    this.stopRevocations = deps.authenticator.onRevoke((ids) => {
      for (const id of ids) {
        const set = this.byCredential.get(id);
        if (set === undefined) continue;
        for (const c of set) c.abort(new ServiceError("unauthenticated", "credential revoked"));
      }
    });
  }

  /** Refuses new streams from now on (open ones are ended by the bus closing). */
  drain(): void {
    this.draining = true;
    this.stopRevocations();
  }

  /**
   * Opens a stream for `principal`. Throws ServiceError before anything is streamed when the
   * request is invalid or not allowed; the returned iterator ends when `signal` aborts (with its
   * reason), and throws or finishes as the bus decides.
   */
  async open(
    principal: Principal,
    raw: WatchRequest,
    signal: AbortSignal,
  ): Promise<AsyncIterableIterator<PublishedEvent>> {
    if (this.draining) throw new ServiceError("unavailable", "the server is shutting down");
    const request = validateWatchRequest(raw);
    if (isViolation(request)) throw new ServiceError(request.kind, request.message);
    const environment =
      request.scope.kind === "environment"
        ? await this.deps.bus.environment(request.scope.environmentId)
        : undefined;
    const plan = planWatch(principal, request, environment);
    if (isViolation(plan)) throw new ServiceError(plan.kind, plan.message);

    const controller = new AbortController();
    const onAbort = () => controller.abort(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
    const credentialId = principal.credentialId;
    let set = this.byCredential.get(credentialId);
    if (set === undefined) {
      set = new Set();
      this.byCredential.set(credentialId, set);
    }
    set.add(controller);
    let timer: NodeJS.Timeout | undefined;
    const expiresAtMs = principal.expiresAtMs;
    if (expiresAtMs !== undefined) {
      const arm = () => {
        const left = expiresAtMs - this.deps.now();
        if (left <= 0) {
          controller.abort(new ServiceError("unauthenticated", "token expired"));
          return;
        }
        timer = setTimeout(arm, Math.min(left, MAX_TIMER_MS));
        timer.unref();
      };
      arm();
    }
    const cleanup = () => {
      signal.removeEventListener("abort", onAbort);
      if (timer !== undefined) clearTimeout(timer);
      const s = this.byCredential.get(credentialId);
      if (s?.delete(controller) && s.size === 0) this.byCredential.delete(credentialId);
    };
    return this.deps.bus.subscribe(plan, {
      signal: controller.signal,
      maxBacklog: this.deps.maxBacklog,
      onClose: cleanup,
    });
  }
}
