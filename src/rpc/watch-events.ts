import type { PublishedEvent } from "../bus/event-bus.js";
import {
  EventService,
  type WatchEventsRequestSchema,
  type WatchEventsResponseSchema,
} from "../gen/gitpod/v1/event_pb.js";
import type { WatchSessions } from "../session/watch-sessions.js";
import { fromWatchRequest, toWatchResponse } from "./convert.js";
import { callerOf, type StreamMethod } from "./stream-method.js";

/** gitpod.v1.EventService/WatchEvents, as the streaming edge serves it: a thin handler. */
export function watchEventsMethod(
  sessions: WatchSessions,
): StreamMethod<typeof WatchEventsRequestSchema, typeof WatchEventsResponseSchema, PublishedEvent> {
  return {
    method: EventService.method.watchEvents,
    open: (call) =>
      sessions.open({
        principal: callerOf(call),
        request: fromWatchRequest(call.request),
        protocol: call.protocol,
      }),
    toResponse: toWatchResponse,
  };
}
