import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  FeedService,
  type WatchRequestSchema,
  type WatchResponse,
  WatchResponseSchema,
} from "../gen/eventservice/feed/v1/feed_pb.js";
import type { FeedItem, FeedSessions } from "../session/feed-sessions.js";
import { encodeFeedResponse } from "./feed-encoding.js";
import type { StreamMethod } from "./stream-method.js";
import { watchOptionsOf } from "./watch-events.js";

/** The response of one feed item (the edge asks once per item per wire form). */
export function toFeedResponse(item: FeedItem): WatchResponse {
  if (item.kind === "checkpoint") {
    return create(WatchResponseSchema, {
      kind: { case: "checkpoint", value: { cursor: item.cursor } },
    });
  }
  const e = item.event;
  return create(WatchResponseSchema, {
    kind: {
      case: "event",
      value: {
        operation: e.event.operation,
        resourceType: e.event.resourceType,
        resourceId: e.event.resourceId,
        cursor: item.cursor,
        publishedAt: timestampFromMs(e.acceptedAtMs),
      },
    },
  });
}

/** eventservice.feed.v1.FeedService/Watch, as the streaming edge serves it: a thin handler. */
export function feedWatchMethod(
  feed: FeedSessions,
): StreamMethod<typeof WatchRequestSchema, typeof WatchResponseSchema, FeedItem> {
  return {
    method: FeedService.method.watch,
    open: (call) => feed.open({ ...watchOptionsOf(call), after: call.request.after }),
    toResponse: toFeedResponse,
    toBinary: encodeFeedResponse,
    // Live events' items are shared by every feed stream; replayed ones and checkpoints are not.
    shared: (item) => item.kind === "event" && item.shared === true,
  };
}
