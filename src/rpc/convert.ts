import { create } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import type { PublishedEvent } from "../bus/event-bus.js";
import type { ResourceEvent as ProtoResourceEvent } from "../gen/eventservice/ingest/v1/ingest_pb.js";
import {
  type WatchEventsRequest,
  type WatchEventsResponse,
  WatchEventsResponseSchema,
} from "../gen/gitpod/v1/event_pb.js";
import type { ResourceEvent, WatchRequest } from "../watch/model.js";

/** What a watch request says, in WatchEvents and in FeedService/Watch alike. */
export type WatchRequestFields = Pick<WatchEventsRequest, "scope" | "resourceTypeFilters">;

/** proto -> domain, without judging: validation is the rules' job. */
export function fromWatchRequest(req: WatchRequestFields): WatchRequest {
  return {
    scope:
      req.scope.case === "environmentId"
        ? { kind: "environment", environmentId: req.scope.value }
        : { kind: "organization" },
    filters: req.resourceTypeFilters.map((f) => ({
      resourceType: f.resourceType,
      resourceIds: f.resourceIds,
      creatorIds: f.creatorIds,
    })),
  };
}

export function fromResourceEvent(e: ProtoResourceEvent): ResourceEvent {
  return {
    resourceType: e.resourceType,
    operation: e.operation,
    resourceId: e.resourceId,
    organizationId: e.organizationId,
    environmentId: e.environmentId,
    creatorId: e.creatorId,
    actorId: e.actorId,
    actorPrincipal: e.actorPrincipal,
    action: e.action,
    ...(e.occurredAt !== undefined && { occurredAtMs: timestampMs(e.occurredAt) }),
  };
}

/**
 * The response message of an event. The streaming edge asks once per event per wire form and
 * shares the encoded bytes with every stream, so nothing is cached here.
 */
export function toWatchResponse(p: PublishedEvent): WatchEventsResponse {
  return create(WatchEventsResponseSchema, {
    operation: p.event.operation,
    resourceType: p.event.resourceType,
    resourceId: p.event.resourceId,
  });
}
