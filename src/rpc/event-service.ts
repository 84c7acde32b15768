import type { ServiceImpl } from "@connectrpc/connect";
import type { EventService } from "../gen/gitpod/v1/event_pb.js";
import { fromWatchRequest, toWatchResponse } from "./convert.js";
import type { ErrorFunnel } from "./error-funnel.js";
import { principalOf } from "./principal-context.js";
import type { WatchSessions } from "./watch-sessions.js";

/** gitpod.v1.EventService on Connect: a thin edge over WatchSessions. */
export function createEventService(
  sessions: WatchSessions,
  funnel: ErrorFunnel,
): Partial<ServiceImpl<typeof EventService>> {
  return {
    async *watchEvents(req, ctx) {
      try {
        const events = await sessions.open(principalOf(ctx), fromWatchRequest(req), ctx.signal);
        for await (const published of events) yield toWatchResponse(published);
      } catch (err) {
        throw funnel(err, "WatchEvents");
      }
    },
  };
}
