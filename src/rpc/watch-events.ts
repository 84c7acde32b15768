import type { DescMessage } from "@bufbuild/protobuf";
import type { PublishedEvent } from "../bus/event-bus.js";
import {
  EventService,
  type WatchEventsRequestSchema,
  type WatchEventsResponseSchema,
} from "../gen/gitpod/v1/event_pb.js";
import type { OpenWatchOptions, WatchSessions } from "../session/watch-sessions.js";
import { fromWatchRequest, toWatchResponse, type WatchRequestFields } from "./convert.js";
import { callerOf, type StreamCall, type StreamMethod } from "./stream-method.js";

/**
 * How a watch-shaped call opens its session: the caller, the request in domain terms, the wire
 * form. WatchEvents opens with exactly this; FeedService/Watch adds its cursor.
 */
export function watchOptionsOf<I extends DescMessage>(
  call: StreamCall<I> & { readonly request: WatchRequestFields },
): OpenWatchOptions {
  return {
    principal: callerOf(call),
    request: fromWatchRequest(call.request),
    protocol: call.protocol,
  };
}

/** gitpod.v1.EventService/WatchEvents, as the streaming edge serves it: a thin handler. */
export function watchEventsMethod(
  sessions: WatchSessions,
): StreamMethod<typeof WatchEventsRequestSchema, typeof WatchEventsResponseSchema, PublishedEvent> {
  return {
    method: EventService.method.watchEvents,
    open: (call) => sessions.open(watchOptionsOf(call)),
    toResponse: toWatchResponse,
  };
}
