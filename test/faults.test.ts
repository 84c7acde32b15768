import { once } from "node:events";
import * as http2 from "node:http2";
import * as net from "node:net";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventService } from "../src/gen/gitpod/v1/event_pb.js";
import { Operation, ResourceType } from "../src/watch/model.js";
import { bearer, collectUntil, ev, publish, rawGrpcRequest } from "./helpers/clients.js";
import { TOKENS, uuid } from "./helpers/fixtures.js";
import { startServer, type TestServer } from "./helpers/server.js";
import { sdkClient } from "./helpers/watchers.js";

let server: TestServer;
beforeAll(async () => {
  server = await startServer({
    HEADERS_TIMEOUT_MS: "500",
    REQUEST_TIMEOUT_MS: "500",
    WATCH_MAX_STREAMS_PER_SUBJECT: "1000",
    H2_MAX_CONCURRENT_STREAMS: "100",
  });
});
afterAll(async () => {
  await server?.close();
});

const WATCH_PATH = "/gitpod.v1.EventService/WatchEvents";
const PUBLISH_PATH = "/eventservice.ingest.v1.IngestService/Publish";

/** Resolves when the server closes the socket (or it errors); the test timeout bounds it. */
function closed(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    socket.on("close", () => resolve());
    socket.on("error", () => {});
    socket.resume();
  });
}

/** Opens a JSONL watch over raw HTTP/1.1 and resolves once the 200 header has arrived. */
function openRawH1(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1", () => {
      socket.write(
        `POST ${WATCH_PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKENS.memberA}\r\n` +
          "Content-Type: application/jsonl\r\nContent-Length: 2\r\n\r\n{}",
      );
    });
    socket.once("data", (d: Buffer) => {
      if (d.toString("latin1").startsWith("HTTP/1.1 200")) resolve(socket);
      else reject(new Error(d.toString("latin1")));
    });
    socket.on("error", reject);
  });
}

/** Opens `n` gRPC watch streams on one HTTP/2 connection; resolves when all have headers. */
async function openRawH2(url: string, n: number): Promise<http2.ClientHttp2Session> {
  const session = http2.connect(url);
  session.on("error", () => {});
  const opened: Promise<void>[] = [];
  for (let i = 0; i < n; i++) {
    const stream = rawGrpcRequest(session, WATCH_PATH, TOKENS.memberA);
    stream.end(Buffer.from([0, 0, 0, 0, 0]));
    opened.push(
      new Promise<void>((resolve, reject) => {
        stream.once("response", () => resolve());
        stream.once("close", () => reject(new Error("stream closed before its response")));
      }),
    );
  }
  // gRPC response headers come with the first message: publish until every stream has one.
  let done = false;
  const all = Promise.all(opened).then(() => {
    done = true;
  });
  while (!done) {
    await publish(url, [ev(ResourceType.PROJECT, Operation.UPDATE, uuid())]);
    await Promise.race([all, new Promise((r) => setImmediate(r))]);
  }
  return session;
}

describe("abrupt disconnects", () => {
  it("removes every watcher of 2,000 abruptly closed HTTP/1.1 and HTTP/2 streams", async () => {
    const base = server.bus.subscriberCount;
    // 1,000 over HTTP/1.1 (one connection each), in rounds of 100.
    for (let round = 0; round < 10; round++) {
      const sockets = await Promise.all(Array.from({ length: 100 }, () => openRawH1(server.port)));
      expect(server.bus.subscriberCount).toBeGreaterThanOrEqual(base + 100);
      for (const s of sockets) s.resetAndDestroy();
    }
    // 1,000 over HTTP/2, 100 streams per connection.
    for (let round = 0; round < 10; round++) {
      const session = await openRawH2(server.url, 100);
      session.socket.resetAndDestroy();
      session.destroy();
    }
    await expect.poll(() => server.bus.subscriberCount, { timeout: 10_000 }).toBe(base);
    await expect.poll(() => server.app.listener.http2SessionCount, { timeout: 10_000 }).toBe(0);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(/eventserver_bus_subscribers 0/);
    expect(metrics).toMatch(
      /eventserver_streams_ended_total\{protocol="jsonl",reason="canceled"\} 1000/,
    );
  });
});

describe("streams reset while they open", () => {
  it("counts every stream reset before or while its head is written as ended, and leaks none", async () => {
    const base = server.bus.subscriberCount;
    const metricsText = async () => (await fetch(`${server.url}/metrics`)).text();
    const openNow = (text: string) =>
      [...text.matchAll(/^eventserver_streams_open\{[^}]*\} (\d+)$/gm)].reduce(
        (n, m) => n + Number(m[1]),
        0,
      );
    const before = openNow(await metricsText());
    const session = http2.connect(server.url);
    session.on("error", () => {});
    await once(session, "connect");
    // Each stream is reset at a different moment after its request: before the server reads
    // it, while it authenticates and opens the session, or as it writes the head.
    for (let i = 0; i < 300; i++) {
      const stream = rawGrpcRequest(session, WATCH_PATH, TOKENS.memberA);
      stream.end(Buffer.from([0, 0, 0, 0, 0]));
      const delay = i % 3;
      if (delay === 0) stream.close(http2.constants.NGHTTP2_CANCEL);
      else if (delay === 1) setImmediate(() => stream.close(http2.constants.NGHTTP2_CANCEL));
      else setTimeout(() => stream.close(http2.constants.NGHTTP2_CANCEL), 1);
    }
    await expect.poll(() => server.bus.subscriberCount, { timeout: 10_000 }).toBe(base);
    await expect.poll(async () => openNow(await metricsText()), { timeout: 10_000 }).toBe(before);
    session.destroy();
  });
});

describe("slow and silent clients", () => {
  it("closes a connection that sends nothing within the header timeout", async () => {
    const socket = net.connect(server.port, "127.0.0.1");
    await closed(socket);
  });

  it("closes an HTTP/1.1 connection whose headers never finish (slowloris)", async () => {
    const socket = net.connect(server.port, "127.0.0.1", () => {
      socket.write(`POST ${WATCH_PATH} HTTP/1.1\r\nHost: x\r\nX-Slow: `);
    });
    await closed(socket);
  });

  it("closes a connection that stops in the middle of the HTTP/2 preface", async () => {
    const socket = net.connect(server.port, "127.0.0.1", () => socket.write("PRI * HTTP/2.0\r\n"));
    await closed(socket);
  });

  it("resets an HTTP/2 request whose body never ends, and keeps streams whose body did", async () => {
    const session = http2.connect(server.url);
    session.on("error", () => {});
    // A watch whose request is complete: its response may stream for as long as it likes.
    const watch = rawGrpcRequest(session, WATCH_PATH, TOKENS.memberA);
    watch.end(Buffer.from([0, 0, 0, 0, 0]));
    // A publish that sends half an envelope and then nothing (slowloris on a stream).
    const stuck = rawGrpcRequest(session, PUBLISH_PATH, TOKENS.publisher);
    stuck.write(Buffer.from([0, 0, 0]));
    const started = performance.now();
    await once(stuck, "close");
    expect(stuck.rstCode).toBe(http2.constants.NGHTTP2_CANCEL);
    expect(performance.now() - started).toBeGreaterThanOrEqual(400);
    // Well past REQUEST_TIMEOUT_MS, the watch still delivers.
    const marker = uuid();
    let seen = "";
    watch.on("data", (chunk: Buffer) => {
      seen += chunk.toString("latin1");
    });
    await expect
      .poll(
        async () => {
          await publish(server.url, [ev(ResourceType.PROJECT, Operation.UPDATE, marker)]);
          return seen.includes(marker);
        },
        { timeout: 5000 },
      )
      .toBe(true);
    expect(watch.closed).toBe(false);
    session.destroy();
  });

  it("keeps serving after all of them", async () => {
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  });
});

describe("bad input on the wire", () => {
  it.each([
    [
      "a truncated Connect envelope",
      "application/connect+json",
      Buffer.from([0, 0, 0, 0, 9, 0x7b]),
      "invalid_argument",
    ],
    [
      "an envelope with garbage JSON",
      "application/connect+json",
      Buffer.from([0, 0, 0, 0, 3, 1, 2, 3]),
      "invalid_argument",
    ],
    [
      "garbage protobuf",
      "application/connect+proto",
      Buffer.from([0, 0, 0, 0, 3, 0xff, 0xff, 0xff]),
      "invalid_argument",
    ],
    [
      "a compressed flag without compression",
      "application/connect+proto",
      Buffer.from([1, 0, 0, 0, 0]),
      "invalid_argument",
    ],
  ])("answers %s with an error and no stream", async (_, contentType, body, code) => {
    const res = await fetch(`${server.url}${WATCH_PATH}`, {
      method: "POST",
      headers: { ...bearer(TOKENS.memberA), "content-type": contentType },
      body,
    });
    const bytes = Buffer.from(await res.arrayBuffer());
    // A Connect stream error: an end-stream envelope (flag 2) carrying an error.
    expect(bytes[0]).toBe(2);
    const end = JSON.parse(bytes.subarray(5).toString("utf8")) as { error?: { code: string } };
    expect(end.error?.code).toBe(code);
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  });

  it("answers a wrong content type with 415", async () => {
    const res = await fetch(`${server.url}${WATCH_PATH}`, {
      method: "POST",
      headers: { ...bearer(TOKENS.memberA), "content-type": "text/plain" },
      body: "hello",
    });
    expect(res.status).toBe(415);
  });
});

describe("limits", () => {
  it("refuses a subject's streams beyond WATCH_MAX_STREAMS_PER_SUBJECT with resource_exhausted", async () => {
    const s = await startServer({ WATCH_MAX_STREAMS_PER_SUBJECT: "2" });
    try {
      const a = await sdkClient.open(s.url, TOKENS.memberA);
      const b = await sdkClient.open(s.url, TOKENS.memberA);
      const res = await fetch(`${s.url}/api${WATCH_PATH}`, {
        method: "POST",
        headers: { ...bearer(TOKENS.memberA), "content-type": "application/jsonl" },
        body: "{}",
      });
      expect(res.status).toBe(429);
      expect(((await res.json()) as { code: string }).code).toBe("resource_exhausted");
      // Another subject is not affected.
      const c = await sdkClient.open(s.url, TOKENS.adminA);
      for (const w of [a, b, c]) w.close();
    } finally {
      await s.close();
    }
  });

  it("ends a stream with unavailable when it reaches WATCH_MAX_LIFETIME_MS", async () => {
    const s = await startServer({ WATCH_MAX_LIFETIME_MS: "300" });
    try {
      const client = createClient(
        EventService,
        createConnectTransport({ baseUrl: s.url, httpVersion: "2" }),
      );
      const err = await (async () => {
        try {
          for await (const _ of client.watchEvents({}, { headers: bearer(TOKENS.memberA) })) {
          }
        } catch (e) {
          return ConnectError.from(e);
        }
      })();
      expect(err?.code).toBe(Code.Unavailable);
      expect(err?.rawMessage).toContain("maximum lifetime");
    } finally {
      await s.close();
    }
  });

  it("limits a publisher's rate with resource_exhausted, and lets it go on later", async () => {
    const s = await startServer({ PUBLISH_MAX_EVENTS_PER_SECOND: "1000" });
    try {
      const batch = Array.from({ length: 1000 }, () =>
        ev(ResourceType.PROJECT, Operation.UPDATE, uuid()),
      );
      await publish(s.url, batch);
      const err = await publish(s.url, batch).then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
      expect(err?.code).toBe(Code.ResourceExhausted);
      // Another publisher has its own budget.
      await publish(s.url, batch.slice(0, 10), TOKENS.publisherA);
      // The bucket refills (1,000 events per second).
      await expect
        .poll(
          () =>
            publish(s.url, batch.slice(0, 100)).then(
              () => true,
              () => false,
            ),
          {
            timeout: 3000,
            interval: 50,
          },
        )
        .toBe(true);
    } finally {
      await s.close();
    }
  });
});

describe("metrics", () => {
  it("serves Prometheus metrics that follow publishes and streams", async () => {
    const watch = await sdkClient.open(server.url, TOKENS.adminA);
    await expect.poll(() => server.bus.subscriberCount).toBeGreaterThan(0);
    const marker = uuid();
    await publish(server.url, [ev(ResourceType.PROJECT, Operation.CREATE, marker)]);
    await collectUntil(watch.events, (e) => e.resourceId === marker);
    const res = await fetch(`${server.url}/metrics`);
    expect(res.headers.get("content-type")).toContain("text/plain");
    const text = await res.text();
    expect(text).toMatch(/eventserver_streams_open\{protocol="jsonl",scope="organization"\} 1/);
    expect(text).toMatch(/eventserver_events_published_total [1-9]/);
    expect(text).toMatch(/eventserver_deliveries_total [1-9]/);
    expect(text).toContain("eventserver_publish_to_write_seconds_bucket");
    expect(text).toContain("process_resident_memory_bytes");
    watch.close();
  });
});
