import * as http from "node:http";
import * as http2 from "node:http2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bearer, project, publish, type SeenEvent } from "./helpers/clients.js";
import { ORG_A, TOKENS, uuid } from "./helpers/fixtures.js";
import { PythonStyleReader } from "./helpers/sdk-readers.js";
import { startServer, type TestServer } from "./helpers/server.js";
import {
  curlJsonlClient,
  rawJsonlClient,
  sdkClient,
  type WatchClient,
} from "./helpers/watchers.js";

// CONTRACT §10: every SDK reads every event at once, however it reads the body.

const WATCH_PATH = "/api/gitpod.v1.EventService/WatchEvents";
/** The bound: an event surfaces this soon after its publish is answered. */
const SURFACE_WITHIN_MS = 100;
const KEEPALIVE_MS = 20;

interface PythonWatch {
  readonly reader: PythonStyleReader;
  /** Resolves when the body ends cleanly; rejects when it is cut. */
  readonly ended: Promise<void>;
  close(): void;
}

/** A JSONL watch read the Python SDK's way, over HTTP/1.1 (as the SDK) or HTTP/2. */
async function pythonWatch(
  url: string,
  version: 1 | 2,
  body: object = {},
  token: string = TOKENS.adminA,
): Promise<PythonWatch> {
  const reader = new PythonStyleReader();
  const headers = {
    ...bearer(token),
    "content-type": "application/json",
    accept: "application/jsonl",
  };
  if (version === 1) {
    const req = http.request(`${url}${WATCH_PATH}`, { method: "POST", headers });
    req.end(JSON.stringify(body));
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      req.on("response", resolve);
      req.on("error", reject);
    });
    expect(res.statusCode).toBe(200);
    const ended = new Promise<void>((resolve, reject) => {
      res.on("data", (chunk: Buffer) => reader.feed(chunk));
      res.on("end", () => {
        reader.end(undefined);
        resolve();
      });
      res.on("aborted", () => reject(new Error("aborted")));
      res.on("error", reject);
    });
    ended.catch(() => {});
    return { reader, ended, close: () => req.destroy() };
  }
  const session = http2.connect(url);
  session.on("error", () => {});
  const stream = session.request({ ":method": "POST", ":path": WATCH_PATH, ...headers });
  stream.end(JSON.stringify(body));
  const head = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
    stream.on("response", resolve);
    stream.on("error", reject);
  });
  expect(head[":status"]).toBe(200);
  const ended = new Promise<void>((resolve, reject) => {
    stream.on("data", (chunk: Buffer) => reader.feed(chunk));
    stream.on("end", () => {
      reader.end(undefined);
      resolve();
    });
    stream.on("close", () => {
      if (stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR) reject(new Error("reset"));
    });
  });
  ended.catch(() => {});
  return { reader, ended, close: () => session.destroy() };
}

/** Publishes and resolves with the time its answer arrived (performance.now()). */
async function publishAt(url: string, ids: string[]): Promise<number> {
  await publish(
    url,
    ids.map((id) => project(id)),
  );
  return performance.now();
}

describe("JSONL read as the Python SDK reads it (64-byte chunks, then lines)", () => {
  let server: TestServer;
  let quiet: TestServer;
  beforeAll(async () => {
    server = await startServer({ JSONL_KEEPALIVE_MS: String(KEEPALIVE_MS) });
    // No keep-alives: nothing but the event itself can bring it to the reader.
    quiet = await startServer({ JSONL_KEEPALIVE_MS: "0" });
  });
  afterAll(async () => {
    await server.close();
    await quiet.close();
  });

  for (const version of [1, 2] as const) {
    describe(`over HTTP/${version === 1 ? "1.1" : "2"}`, () => {
      it("surfaces a lone event at once: nothing of it is held back", async () => {
        const w = await pythonWatch(quiet.url, version);
        try {
          const id = uuid();
          const answeredAt = await publishAt(quiet.url, [id]);
          await w.reader.until(1);
          expect(performance.now() - answeredAt).toBeLessThan(SURFACE_WITHIN_MS);
          expect(w.reader.events).toEqual([
            {
              operation: "RESOURCE_OPERATION_UPDATE",
              resourceType: "RESOURCE_TYPE_PROJECT",
              resourceId: id,
            },
          ]);
          expect(w.reader.heldBytes).toBe(0);
          expect(w.reader.received % 64).toBe(0);
        } finally {
          w.close();
        }
      });

      it("surfaces each event of a batch, and each of several batches, at once", async () => {
        const w = await pythonWatch(quiet.url, version);
        try {
          const first = [uuid(), uuid(), uuid()];
          await publishAt(quiet.url, first);
          await w.reader.until(3);
          const second = Array.from({ length: 17 }, () => uuid());
          const answeredAt = await publishAt(quiet.url, second);
          await w.reader.until(20);
          expect(performance.now() - answeredAt).toBeLessThan(SURFACE_WITHIN_MS);
          expect(w.reader.events.map((e) => e.resourceId)).toEqual([...first, ...second]);
          expect(w.reader.heldBytes).toBe(0);
          expect(w.reader.ended).toBeUndefined();
        } finally {
          w.close();
        }
      });

      it("writes 64 spaces while idle and surfaces the event after a run of keep-alives", async () => {
        const w = await pythonWatch(server.url, version);
        try {
          // At least five keep-alives, with no event yet.
          await expect.poll(() => w.reader.received, { timeout: 5000 }).toBeGreaterThanOrEqual(320);
          expect(w.reader.received % 64).toBe(0);
          expect(w.reader.events).toEqual([]);
          const id = uuid();
          const answeredAt = await publishAt(server.url, [id]);
          await w.reader.until(1);
          expect(performance.now() - answeredAt).toBeLessThan(SURFACE_WITHIN_MS);
          expect(w.reader.events[0]?.resourceId).toBe(id);
          expect(w.reader.ended).toBeUndefined();
        } finally {
          w.close();
        }
      });
    });
  }

  it("ends an environment's stream cleanly after its DELETE, with nothing after the last event", async () => {
    const env = uuid();
    await publish(server.url, [
      { resourceType: 1, operation: 1, resourceId: env, organizationId: ORG_A, creatorId: uuid() },
    ]);
    const w = await pythonWatch(server.url, 1, { environmentId: env });
    await publish(server.url, [
      { resourceType: 1, operation: 3, resourceId: env, organizationId: ORG_A },
    ]);
    await w.ended;
    expect(w.reader.events.map((e) => e.operation)).toEqual(["RESOURCE_OPERATION_DELETE"]);
    expect(w.reader.received % 64).toBe(0);
    expect(w.reader.ended).toEqual({ kind: "clean", detail: "end of body" });
  });
});

describe("JSONL with keep-alives, read by the TypeScript SDK and the raw readers", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer({ JSONL_KEEPALIVE_MS: String(KEEPALIVE_MS) });
  });
  afterAll(() => server.close());

  const readers: WatchClient[] = [sdkClient, rawJsonlClient, curlJsonlClient];
  it.each(readers.map((c) => [c.name, c] as const))(
    "%s sees a lone event at once, after keep-alives",
    async (_, client) => {
      const watch = await client.open(server.url, TOKENS.adminA);
      try {
        // Several keep-alives reach the reader before the event.
        const before = server.app.metrics.keepAlives;
        await expect
          .poll(() => server.app.metrics.keepAlives, { timeout: 5000 })
          .toBeGreaterThanOrEqual(before + 3);
        const id = uuid();
        const answeredAt = await publishAt(server.url, [id]);
        const r = await watch.events.next();
        expect(performance.now() - answeredAt).toBeLessThan(SURFACE_WITHIN_MS);
        expect(r.done).toBe(false);
        expect((r.value as SeenEvent).resourceId).toBe(id);
      } finally {
        watch.close();
      }
    },
  );
});
