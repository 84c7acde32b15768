import type { MessageInitShape } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { EventBus } from "../bus/event-bus.js";
import { ServiceError } from "../errors.js";
import type {
  IngestService,
  PublishRequest,
  PublishResponseSchema,
} from "../gen/eventservice/ingest/v1/ingest_pb.js";
import type { Metrics } from "../metrics.js";
import { authorizePublish } from "../watch/plan.js";
import { isViolation, validatePublishBatch } from "../watch/validate.js";
import { fromResourceEvent } from "./convert.js";
import type { ErrorFunnel } from "./error-funnel.js";
import { principalOf } from "./principal-context.js";
import type { RateLimiter } from "./rate-limiter.js";

/** eventservice.ingest.v1.IngestService: authorize, validate the whole batch, publish. */
export interface IngestServiceDeps {
  readonly bus: EventBus;
  readonly isDraining: () => boolean;
  readonly funnel: ErrorFunnel;
  /** Per-publisher rate limit, in events. */
  readonly limiter: RateLimiter;
  readonly metrics: Metrics;
}

export function createIngestService(deps: IngestServiceDeps): ServiceImpl<typeof IngestService> {
  const { bus, isDraining, funnel, limiter, metrics } = deps;
  return {
    async publish(req, ctx) {
      try {
        return await publish(req, ctx);
      } catch (err) {
        throw funnel(err, "Publish");
      }
    },
  };

  async function publish(
    req: PublishRequest,
    ctx: HandlerContext,
  ): Promise<MessageInitShape<typeof PublishResponseSchema>> {
    const principal = principalOf(ctx);
    const raw = req.events.map(fromResourceEvent);
    const denied = authorizePublish(principal, raw);
    if (denied) throw new ServiceError(denied.kind, denied.message);
    const events = validatePublishBatch(raw);
    if (isViolation(events)) throw new ServiceError(events.kind, events.message);
    if (isDraining()) throw new ServiceError("unavailable", "the server is shutting down");
    if (!limiter.take(principal.subject, events.length)) {
      throw new ServiceError(
        "resource_exhausted",
        "publish rate limit exceeded for this publisher; retry with backoff",
      );
    }
    const result = await bus.publish(events);
    metrics.published += events.length;
    return {
      firstSequence: BigInt(result.firstSequence),
      lastSequence: BigInt(result.lastSequence),
    };
  }
}
