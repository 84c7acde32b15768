import type { ServiceImpl } from "@connectrpc/connect";
import type { EventService } from "../gen/gitpod/v1/event_pb.js";
import { fromWatchRequest, toWatchResponse } from "./convert.js";
import type { ErrorFunnel } from "./error-funnel.js";
import { principalOf } from "./principal-context.js";
import type { WatchSessions, WatchStream } from "./watch-sessions.js";

/** gitpod.v1.EventService on Connect: a thin edge over WatchSessions. */
export function createEventService(
  sessions: WatchSessions,
  funnel: ErrorFunnel,
): Partial<ServiceImpl<typeof EventService>> {
  return {
    async *watchEvents(req, ctx) {
      let stream: WatchStream | undefined;
      let error: unknown;
      try {
        stream = await sessions.open(
          principalOf(ctx),
          fromWatchRequest(req),
          ctx.signal,
          ctx.protocolName,
        );
        for await (const published of stream.events) {
          yield toWatchResponse(published);
          stream.wrote(published);
        }
      } catch (err) {
        error = err;
        throw funnel(err, "WatchEvents");
      } finally {
        // Leaving without an error while the call is aborted means the client went away.
        stream?.end(error ?? (ctx.signal.aborted ? ctx.signal.reason : undefined));
      }
    },
  };
}
