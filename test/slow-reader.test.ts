import * as http2 from "node:http2";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Operation, ResourceType } from "../src/watch/model.js";
import { ev, publish, rawGrpcRequest } from "./helpers/clients.js";
import { ORG_A, TOKENS, uuid } from "./helpers/fixtures.js";
import { startServer, type TestServer } from "./helpers/server.js";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

const BACKLOG = 1024;
let server: TestServer;
beforeEach(async () => {
  server = await startServer({
    WATCH_MAX_BACKLOG: String(BACKLOG),
    PUBLISH_MAX_EVENTS_PER_SECOND: "0",
  });
});
afterEach(async () => {
  await server?.close();
});

/** An organization-scope gRPC watch on a raw HTTP/2 stream of its own connection. */
function grpcWatch(url: string, token: string) {
  const session = http2.connect(url);
  session.on("error", () => {});
  const stream = rawGrpcRequest(session, "/gitpod.v1.EventService/WatchEvents", token);
  stream.end(Buffer.from([0, 0, 0, 0, 0])); // one empty WatchEventsRequest
  return { session, stream };
}

/** A gRPC watch on a raw HTTP/2 stream that reads nothing until told to. */
function silentWatch(url: string) {
  const { session, stream } = grpcWatch(url, TOKENS.memberA);
  stream.pause();
  return {
    /**
     * Reads until the stream ends or `untilId` arrives: the resource ids received, and the
     * grpc-status of the end.
     */
    async readAll(untilId?: string): Promise<{ ids: string[]; status: string | undefined }> {
      const trailers = new Promise<string | undefined>((resolve) => {
        stream.once("trailers", (t) => resolve(t["grpc-status"] as string | undefined));
        stream.once("close", () => resolve(undefined));
      });
      let buf = Buffer.alloc(0);
      const ids: string[] = [];
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        buf = Buffer.concat([buf, chunk]);
        while (buf.length >= 5) {
          const len = buf.readUInt32BE(1);
          if (buf.length < 5 + len) break;
          // WatchEventsResponse: field 3 (resource_id) is the last 36 bytes of the message.
          ids.push(buf.subarray(5 + len - 36, 5 + len).toString("latin1"));
          buf = buf.subarray(5 + len);
        }
        if (untilId !== undefined && ids.at(-1) === untilId) break;
      }
      const status = untilId === undefined ? await trailers : undefined;
      session.destroy();
      return { ids, status };
    },
  };
}

/**
 * A fast watcher that counts what it receives, in order, and can be waited on. It reads raw
 * gRPC frames: connect-node's client keeps about 500 bytes per received message while its
 * stream is open, which would drown the server's memory figure this test measures.
 */
function fastWatch(url: string, stopAt: string, expected: (i: number) => string) {
  const { session, stream } = grpcWatch(url, TOKENS.adminA);
  let count = 0;
  let waiter: { n: number; resolve: () => void } | undefined;
  const done = (async () => {
    let ordered = true;
    let buf = Buffer.alloc(0);
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 5) {
        const len = buf.readUInt32BE(1);
        if (buf.length < 5 + len) break;
        const id = buf.subarray(5 + len - 36, 5 + len).toString("latin1");
        buf = buf.subarray(5 + len);
        if (id === stopAt) {
          session.destroy();
          return { count, ordered };
        }
        if (id !== expected(count)) ordered = false;
        count++;
        if (waiter !== undefined && count >= waiter.n) {
          waiter.resolve();
          waiter = undefined;
        }
      }
    }
    return { count, ordered };
  })();
  return {
    done,
    /** Resolves once `n` events have arrived: the publisher waits for this reader only. */
    received(n: number): Promise<void> {
      if (count >= n) return Promise.resolve();
      return new Promise((resolve) => {
        waiter = { n, resolve };
      });
    },
  };
}

const resource = (i: number) => `f0000000-0000-4000-8000-${i.toString(16).padStart(12, "0")}`;

/**
 * Publishes straight into the bus (the publish RPC is tested elsewhere), so that the only
 * memory this test allocates is the server's own, and yields to I/O between batches.
 */
async function publishMany(
  total: number,
  id: (i: number) => string,
  fast: ReturnType<typeof fastWatch>,
): Promise<void> {
  for (let i = 0; i < total; i += 1000) {
    // Keep pace with the fast reader (one batch, under its backlog, in flight): the slow one
    // is never waited for.
    await fast.received(i);
    await server.bus.publish(
      Array.from({ length: 1000 }, (_, j) => ({
        resourceType: ResourceType.PROJECT,
        operation: Operation.UPDATE,
        resourceId: id(i + j),
        organizationId: ORG_A,
        environmentId: "",
        creatorId: "",
      })),
    );
  }
}

describe("a reader that never reads", () => {
  it("gets the coalesced remainder while others get all 150,000 events, with bounded memory", async () => {
    const TOTAL = 150_000;
    const RESOURCES = 200;
    const slow = silentWatch(server.url);
    const marker = uuid();
    const id = (i: number) => resource((i % RESOURCES) + 1);
    const fast = fastWatch(server.url, marker, id);
    await expect.poll(() => server.bus.subscriberCount).toBe(2);
    gc();
    const heapBefore = process.memoryUsage().heapUsed;
    // 200 resources, cycled.
    await publishMany(TOTAL, id, fast);
    gc();
    const heapGrowth = process.memoryUsage().heapUsed - heapBefore;
    await publish(server.url, [ev(ResourceType.PROJECT, Operation.UPDATE, marker)]);
    const got = await fast.done;
    expect(got).toEqual({ count: TOTAL, ordered: true });
    // Bound: the slow stream holds at most one entry per distinct resource in its backlog,
    // plus what HTTP/2 flow control lets sit in buffers; all 150,000 events would be ~45 MB.
    expect(heapGrowth).toBeLessThan(12 * 1024 * 1024);
    // Now it reads: what it gets up to a final marker is the coalesced remainder.
    const end = uuid();
    const reading = slow.readAll(end);
    await publish(server.url, [ev(ResourceType.PROJECT, Operation.DELETE, end)]);
    const { ids } = await reading;
    expect(ids.length).toBeLessThan(TOTAL / 10);
    // The coalesced remainder still names every resource that changed.
    expect(new Set(ids.filter((id) => id.startsWith("f0000000"))).size).toBe(RESOURCES);
  });

  it("ends with resource_exhausted when more distinct resources than the backlog are pending", async () => {
    const slow = silentWatch(server.url);
    const marker = uuid();
    const id = (i: number) => resource(1_000_000 + i);
    const fast = fastWatch(server.url, marker, id);
    await expect.poll(() => server.bus.subscriberCount).toBe(2);
    await publishMany(50_000, id, fast);
    await publish(server.url, [ev(ResourceType.PROJECT, Operation.UPDATE, marker)]);
    const got = await fast.done;
    expect(got).toEqual({ count: 50_000, ordered: true });
    const { status } = await slow.readAll();
    expect(status).toBe("8"); // RESOURCE_EXHAUSTED
    await expect.poll(() => server.bus.subscriberCount).toBe(0);
  });
});
