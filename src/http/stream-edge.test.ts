import { Readable, Writable } from "node:stream";
import { ConnectError } from "@connectrpc/connect";
import { describe, expect, it, vi } from "vitest";
import type { PublishedEvent } from "../bus/event-bus.js";
import { EventService } from "../gen/gitpod/v1/event_pb.js";
import type { CallAuthentication } from "../rpc/authenticate.js";
import { toWatchResponse } from "../rpc/convert.js";
import type { StreamSession } from "../session/stream-session.js";
import { BoundedQueue } from "../stream/bounded-queue.js";
import type { Exchange } from "./exchange.js";
import { FlushScheduler } from "./flush-scheduler.js";
import { StreamEdge } from "./stream-edge.js";

const PATH = "/gitpod.v1.EventService/WatchEvents";

/** A session as WatchSessions opens one, with its end recorded. */
function fakeSession() {
  const items = new BoundedQueue<PublishedEvent>(16);
  const end = vi.fn();
  const session: StreamSession<PublishedEvent> = { items, wrote: () => {}, end };
  return { session, end };
}

function edgeFor(session: StreamSession<PublishedEvent>): StreamEdge {
  const edge = new StreamEdge({
    auth: {
      principal: async () => ({ subject: "s", credentialId: "c", role: "member" }),
    } as unknown as CallAuthentication,
    funnel: (err) => ConnectError.from(err),
    scheduler: new FlushScheduler(),
    requestMaxBytes: 1024,
    prefixes: [""],
    keepAliveMs: 0,
  });
  edge.add({
    method: EventService.method.watchEvents,
    open: async () => session,
    toResponse: toWatchResponse,
  });
  return edge;
}

/** An exchange whose peer is gone by the time the head is written (a reset HTTP/2 stream). */
function resetExchange() {
  const respond = vi.fn();
  const exchange: Exchange = {
    start: () => {
      throw Object.assign(new Error("The stream has been destroyed"), {
        code: "ERR_HTTP2_INVALID_STREAM",
      });
    },
    sink: new Writable({ write: (_c, _e, cb) => cb() }),
    finish: () => {},
    respond,
    abort: () => {},
    onClose: () => {},
    offClose: () => {},
    gone: true,
  };
  return { exchange, respond };
}

describe("StreamEdge", () => {
  it("ends the session it opened when the head cannot be written any more", async () => {
    const { session, end } = fakeSession();
    const { exchange, respond } = resetExchange();
    await edgeFor(session).serve(
      PATH,
      exchange,
      { method: "POST", headers: { "content-type": "application/jsonl" } },
      Readable.from([Buffer.from("{}")]),
    );
    expect(end).toHaveBeenCalledTimes(1);
    expect(respond).not.toHaveBeenCalled(); // nobody to tell
  });
});
