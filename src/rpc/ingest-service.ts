import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import type { EventBus } from "../bus/event-bus.js";
import { accepted, refused, ServiceError, shuttingDown } from "../errors.js";
import type {
  IngestService,
  PublishRequest,
  PublishResponseSchema,
} from "../gen/eventservice/ingest/v1/ingest_pb.js";
import type { Metrics } from "../metrics.js";
import type { Principal } from "../watch/model.js";
import { authorizePublish } from "../watch/plan.js";
import { checkIdempotencyKey, validatePublishBatch } from "../watch/validate.js";
import { principalOf } from "./authenticate.js";
import { fromResourceEvent } from "./convert.js";
import type { ErrorFunnel } from "./error-funnel.js";
import type { RateLimiter } from "./rate-limiter.js";

/** What a publish needs, whichever edge received it. */
export interface PublishDeps {
  readonly bus: EventBus;
  readonly isDraining: () => boolean;
  /** Per-publisher rate limit, in events. */
  readonly limiter: RateLimiter;
  readonly metrics: Metrics;
  /** Wall clock, ms since the epoch: `occurred_at` may be at most `maxClockSkewMs` ahead of it. */
  readonly now: () => number;
  readonly maxClockSkewMs: number;
  /** Whether the caller's credential is still valid (see Authenticator.isValid). */
  readonly isValid: (principal: Principal) => boolean;
}

/**
 * A publish by `principal`: authorize, validate the whole batch and its key, publish (at most
 * once per key); throws ServiceError. `signal` aborts when the caller stops waiting (its
 * deadline, a disconnect): the publish goes on, but the search for the outcome of a commit
 * whose connection died ends then with `unavailable` (outcome unknown).
 */
export type PublishCall = (
  principal: Principal,
  req: PublishRequest,
  signal?: AbortSignal,
) => Promise<MessageInitShape<typeof PublishResponseSchema>>;

export function createPublishCall(deps: PublishDeps): PublishCall {
  const { bus, isDraining, limiter, metrics, isValid, now, maxClockSkewMs } = deps;
  return async (principal, req, signal) => {
    const raw = req.events.map(fromResourceEvent);
    const denied = authorizePublish(principal, raw);
    if (denied) throw refused(denied);
    const events = accepted(validatePublishBatch(raw, { nowMs: now(), maxSkewMs: maxClockSkewMs }));
    const badKey = checkIdempotencyKey(req.idempotencyKey);
    if (badKey) throw refused(badKey);
    if (isDraining()) throw shuttingDown();
    if (!limiter.take(principal.subject, events.length)) {
      throw new ServiceError(
        "resource_exhausted",
        "publish rate limit exceeded for this publisher; retry with backoff",
      );
    }
    // Authenticated when the headers came; the body may have taken a while. Checked again in
    // the turn that hands the batch to the store, so a revoked credential never writes.
    if (!isValid(principal)) {
      throw new ServiceError("unauthenticated", "credential revoked or expired");
    }
    const result = await bus.publish(events, {
      ...(req.idempotencyKey !== "" && {
        key: { publisher: principal.subject, key: req.idempotencyKey },
      }),
      ...(signal !== undefined && { signal }),
    });
    if (!result.replayed) metrics.published += events.length;
    return {
      firstSequence: BigInt(result.firstSequence),
      lastSequence: BigInt(result.lastSequence),
      replayed: result.replayed,
    };
  };
}

/** eventservice.ingest.v1.IngestService on the Connect runtime. */
export function createIngestService(
  publish: PublishCall,
  funnel: ErrorFunnel,
): ServiceImpl<typeof IngestService> {
  return {
    async publish(req, ctx) {
      try {
        return await publish(principalOf(ctx), req, ctx.signal);
      } catch (err) {
        throw funnel(err, "Publish");
      }
    },
  };
}
