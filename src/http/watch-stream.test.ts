import { Readable, Writable } from "node:stream";
import { ConnectError } from "@connectrpc/connect";
import pino from "pino";
import { describe, expect, it, vi } from "vitest";
import type { Authenticator } from "../auth/authenticator.js";
import type { PublishedEvent } from "../bus/event-bus.js";
import type { WatchSessions, WatchStream } from "../rpc/watch-sessions.js";
import { BoundedQueue } from "../stream/bounded-queue.js";
import type { Exchange } from "./exchange.js";
import { jsonl } from "./watch-protocols.js";
import { handleWatch, type WatchStreamDeps } from "./watch-stream.js";

/** A session as WatchSessions opens one, with its end recorded. */
function fakeStream() {
  const events = new BoundedQueue<PublishedEvent>(16);
  const end = vi.fn();
  const stream: WatchStream = { events, wrote: () => {}, end };
  return { stream, end };
}

function deps(stream: WatchStream): WatchStreamDeps {
  return {
    authenticator: {
      authenticate: async () => ({ subject: "s", credentialId: "c", role: "member" }),
    } as unknown as Authenticator,
    sessions: { open: async () => stream } as unknown as WatchSessions,
    funnel: (err) => ConnectError.from(err),
    logger: pino({ level: "silent" }),
    requestMaxBytes: 1024,
  };
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

describe("handleWatch", () => {
  it("ends the session it opened when the head cannot be written any more", async () => {
    const { stream, end } = fakeStream();
    const { exchange, respond } = resetExchange();
    await handleWatch(
      exchange,
      { method: "POST", headers: {} },
      Readable.from([Buffer.from("{}")]),
      jsonl,
      deps(stream),
    );
    expect(end).toHaveBeenCalledTimes(1);
    expect(respond).not.toHaveBeenCalled(); // nobody to tell
  });
});
