import type { PublishedEvent } from "../bus/event-bus.js";
import {
  EventService,
  type WatchEventsRequestSchema,
  type WatchEventsResponseSchema,
} from "../gen/gitpod/v1/event_pb.js";
import type { WatchSessions } from "../session/watch-sessions.js";
import { fromWatchRequest, toWatchResponse } from "./convert.js";
import type { StreamMethod } from "./stream-method.js";

/** gitpod.v1.EventService/WatchEvents, as the streaming edge serves it: a thin handler. */
export function watchEventsMethod(
  sessions: WatchSessions,
): StreamMethod<typeof WatchEventsRequestSchema, typeof WatchEventsResponseSchema, PublishedEvent> {
  return {
    method: EventService.method.watchEvents,
    open: ({ principal, request, protocol }) =>
      // The edge authenticates every call of a non-public method.
      sessions.open({
        principal: principal as NonNullable<typeof principal>,
        request: fromWatchRequest(request),
        protocol,
      }),
    toResponse: toWatchResponse,
  };
}
