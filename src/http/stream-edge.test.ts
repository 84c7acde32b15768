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
    connection: undefined,
  };
  return { exchange, respond };
}

/** An exchange that records each write the edge makes. */
function recordingExchange() {
  const writes: Buffer[][] = [];
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      writes.push([chunk]);
      cb();
    },
    writev(chunks, cb) {
      writes.push(chunks.map((c) => c.chunk as Buffer));
      cb();
    },
  });
  const exchange: Exchange = {
    start: () => {},
    sink,
    finish: () => {},
    respond: () => {},
    abort: () => {},
    onClose: () => {},
    offClose: () => {},
    gone: false,
    connection: undefined,
  };
  return { exchange, writes };
}

function published(sequence: number): PublishedEvent {
  return {
    sequence,
    event: {
      resourceType: 3,
      operation: 2,
      resourceId: `00000000-0000-4000-8000-${sequence.toString(16).padStart(12, "0")}`,
      organizationId: "0a0a0a0a-0000-4000-8000-000000000001",
      environmentId: "",
      creatorId: "",
    },
    creatorId: "",
    publishedAtMs: 0,
    acceptedAtMs: 0,
  };
}

describe("StreamEdge", () => {
  it("writes runs and other items pending, in order, in one write whose bytes every stream shares", async () => {
    const streams = [0, 1].map(() => {
      const items = new BoundedQueue<PublishedEvent>(64);
      const wrote = vi.fn();
      const session: StreamSession<PublishedEvent> = { items, wrote, end: vi.fn() };
      return { items, wrote, session, ...recordingExchange() };
    });
    const scheduler = new FlushScheduler();
    const edge = new StreamEdge({
      auth: {
        principal: async () => ({ subject: "s", credentialId: "c", role: "member" }),
      } as unknown as CallAuthentication,
      funnel: (err) => ConnectError.from(err),
      scheduler,
      requestMaxBytes: 1024,
      prefixes: [""],
      keepAliveMs: 0,
    });
    let opened = 0;
    edge.add({
      method: EventService.method.watchEvents,
      open: async () => (streams[opened++] as (typeof streams)[number]).session,
      toResponse: toWatchResponse,
    });
    for (const s of streams) {
      await edge.serve(
        PATH,
        s.exchange,
        { method: "POST", headers: { "content-type": "application/jsonl" } },
        Readable.from([Buffer.from("{}")]),
      );
    }
    await new Promise((resolve) => setImmediate(resolve));
    const first = [1, 2, 3].map(published);
    const single = published(4);
    const second = [5, 6].map(published);
    for (const s of streams) {
      s.items.pushRun(first);
      s.items.push(single);
      s.items.pushRun(second);
    }
    await new Promise((resolve) => setImmediate(resolve));
    const [a, b] = streams as [(typeof streams)[number], (typeof streams)[number]];
    expect(a.writes).toHaveLength(1);
    expect(b.writes).toHaveLength(1);
    const [bytes] = a.writes[0] as Buffer[];
    expect(a.writes[0]).toHaveLength(1);
    // Made once for both streams: the same Buffer.
    expect((b.writes[0] as Buffer[])[0]).toBe(bytes);
    // The first run's bytes, the single item's, the second run's: each ends on 64 bytes, as
    // JSONL wants every write to (CONTRACT §10); the lines are the six events in order.
    const text = (bytes as Buffer).toString();
    const ends = [...text.matchAll(/\n/g)].map((m) => (m.index as number) + 1);
    expect([ends[2], ends[3], ends[5]].map((e) => (e as number) % 64)).toEqual([0, 0, 0]);
    const lines = text.split("\n").slice(0, -1);
    expect(lines.map((l) => JSON.parse(l).resourceId)).toEqual(
      [1, 2, 3, 4, 5, 6].map((n) => published(n).event.resourceId),
    );
    expect(a.wrote).toHaveBeenCalledWith(second[1], 6);
  });

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
