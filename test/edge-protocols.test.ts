import { gzipSync } from "node:zlib";
import { Code, type Transport } from "@connectrpc/connect";
import {
  compressionBrotli,
  compressionGzip,
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ResourceType } from "../src/watch/model.js";
import { project, publish } from "./helpers/clients.js";
import { ORG_A, ORG_B, TOKENS, uuid } from "./helpers/fixtures.js";
import { startServer, type TestServer } from "./helpers/server.js";
import {
  connectOverHttp1,
  envelope,
  grpcOverHttp2,
  jsonlOverHttp1,
  jsonlOverHttp2,
  type ProbedStream,
  plainOverHttp1,
  plainOverHttp2,
  rpcStream,
  summary,
  WATCH_PATH,
} from "./helpers/streams.js";

// The rarer shapes of a WatchEvents request: compressed requests, gRPC over HTTP/1.1, unknown
// content types, and the official base URL's /api prefix. Each gets what the common shapes get:
// a stream whose headers come at once, or a prompt and clear refusal.

const REQUEST_MAX_BYTES = 1024;

let server: TestServer;
beforeAll(async () => {
  server = await startServer({ REQUEST_MAX_BYTES: String(REQUEST_MAX_BYTES) });
});
afterAll(async () => {
  await server?.close();
});

const opened: ProbedStream[] = [];
afterEach(async () => {
  for (const s of opened.splice(0)) s.close();
  await expect.poll(() => server.bus.subscriberCount).toBe(0);
});

function track(stream: ProbedStream): ProbedStream {
  opened.push(stream);
  return stream;
}

/** Headers come at once, before any event: a quiet stream must not look like a hung one. */
async function expectHeadersBeforeAnyEvent(stream: ProbedStream): Promise<void> {
  await expect
    .poll(() => stream.status ?? summary(stream.end), {
      timeout: 5000,
      message: `${stream.name}: response headers before any event is published`,
    })
    .toBe(200);
}

/** Publishes one event to `org` (through `base`) and asserts that `stream` receives it. */
async function expectDelivers(stream: ProbedStream, org: string, base = server.url): Promise<void> {
  await expect.poll(() => stream.end !== undefined || server.bus.subscriberCount === 1).toBe(true);
  const marker = uuid();
  await publish(base, [project(marker, org)]);
  expect(await stream.received(marker), summary(stream.end)).toBe(true);
}

const compressed: [string, (baseUrl: string) => Transport][] = [
  [
    "Connect JSON over HTTP/1.1, gzip",
    (baseUrl) =>
      createConnectTransport({
        baseUrl,
        httpVersion: "1.1",
        sendCompression: compressionGzip,
        compressMinBytes: 0,
      }),
  ],
  [
    "Connect binary over HTTP/2, gzip",
    (baseUrl) =>
      createConnectTransport({
        baseUrl,
        httpVersion: "2",
        useBinaryFormat: true,
        sendCompression: compressionGzip,
        compressMinBytes: 0,
      }),
  ],
  [
    "Connect binary over HTTP/2, brotli",
    (baseUrl) =>
      createConnectTransport({
        baseUrl,
        httpVersion: "2",
        useBinaryFormat: true,
        sendCompression: compressionBrotli,
        compressMinBytes: 0,
      }),
  ],
  [
    "gRPC over HTTP/2, gzip",
    (baseUrl) =>
      createGrpcTransport({ baseUrl, sendCompression: compressionGzip, compressMinBytes: 0 }),
  ],
  [
    "gRPC over HTTP/2, brotli",
    (baseUrl) =>
      createGrpcTransport({ baseUrl, sendCompression: compressionBrotli, compressMinBytes: 0 }),
  ],
  [
    "gRPC-Web over HTTP/1.1, gzip",
    (baseUrl) =>
      createGrpcWebTransport({
        baseUrl,
        httpVersion: "1.1",
        sendCompression: compressionGzip,
        compressMinBytes: 0,
      }),
  ],
  [
    "gRPC-Web over HTTP/2, brotli",
    (baseUrl) =>
      createGrpcWebTransport({
        baseUrl,
        httpVersion: "2",
        sendCompression: compressionBrotli,
        compressMinBytes: 0,
      }),
  ],
];

describe("a compressed request on a quiet organization", () => {
  it.each(compressed)(
    "gets its response headers at once and then its events: connect-node %s",
    async (name, transport) => {
      // ORG_B: nothing is published to it until the headers have arrived.
      const stream = track(rpcStream(name, transport(server.url), TOKENS.adminB));
      await expectHeadersBeforeAnyEvent(stream);
      await expectDelivers(stream, ORG_B);
    },
  );

  it.each([
    [
      "raw Connect with Connect-Content-Encoding: gzip",
      () =>
        connectOverHttp1(server.url, TOKENS.adminB, {
          headers: { "connect-content-encoding": "gzip" },
          body: envelope(1, gzipSync(Buffer.from("{}"))),
        }),
    ],
    [
      "raw gRPC with grpc-encoding: gzip",
      () =>
        grpcOverHttp2(server.url, TOKENS.adminB, {
          headers: { "grpc-encoding": "gzip" },
          body: envelope(1, gzipSync(Buffer.alloc(0))),
        }),
    ],
  ])("gets its response headers at once: %s", async (_, open) => {
    const stream = track(open());
    await expectHeadersBeforeAnyEvent(stream);
    await expectDelivers(stream, ORG_B);
  });
});

/** Refused before anything is served, with a code and a message that names the size. */
async function expectRefusedForSize(stream: ProbedStream): Promise<void> {
  // Ended, or served (subscribed): whichever comes first.
  await expect.poll(() => stream.end !== undefined || server.bus.subscriberCount > 0).toBe(true);
  const end = stream.end;
  expect(end?.kind, summary(end)).toBe("error");
  if (end?.kind !== "error") return;
  expect([Code.ResourceExhausted, Code.InvalidArgument], summary(end)).toContain(end.code);
  expect(end.message).toMatch(/size|larger|bytes/i);
  expect(stream.ids).toEqual([]);
}

// A request well over REQUEST_MAX_BYTES once decompressed, and tiny compressed.
const HUGE_JSON = `{"organization":true${" ".repeat(64 * 1024)}}`;
// WatchEventsRequest with an unknown field 15 (length-delimited) of 64 KiB: valid protobuf.
const HUGE_PROTO = Buffer.concat([Buffer.from([0x7a, 0x80, 0x80, 0x04]), Buffer.alloc(65536)]);
// 50 filters of 25 ids each: allowed by the rules, about 48 KiB, compresses to almost nothing.
const HUGE_REQUEST = {
  resourceTypeFilters: Array.from({ length: 50 }, () => ({
    resourceType: ResourceType.PROJECT,
    resourceIds: Array.from({ length: 25 }, () => "e0000000-0000-4000-8000-000000000001"),
  })),
};

describe("a compressed request larger than REQUEST_MAX_BYTES once decompressed", () => {
  it("is refused, not served: raw Connect with Connect-Content-Encoding: gzip", async () => {
    const body = envelope(1, gzipSync(Buffer.from(HUGE_JSON)));
    expect(body.length).toBeLessThan(REQUEST_MAX_BYTES);
    const stream = track(
      connectOverHttp1(server.url, TOKENS.memberA, {
        headers: { "connect-content-encoding": "gzip" },
        body,
      }),
    );
    await expectRefusedForSize(stream);
  });

  it("is refused, not served: raw gRPC with grpc-encoding: gzip", async () => {
    const body = envelope(1, gzipSync(HUGE_PROTO));
    expect(body.length).toBeLessThan(REQUEST_MAX_BYTES);
    const stream = track(
      grpcOverHttp2(server.url, TOKENS.memberA, { headers: { "grpc-encoding": "gzip" }, body }),
    );
    await expectRefusedForSize(stream);
  });

  it.each(
    compressed.filter(([name]) =>
      ["Connect binary over HTTP/2, gzip", "gRPC over HTTP/2, gzip"].includes(name),
    ),
  )("is refused, not served: connect-node %s", async (name, transport) => {
    const stream = track(rpcStream(name, transport(server.url), TOKENS.memberA, HUGE_REQUEST));
    await expectRefusedForSize(stream);
  });
});

describe("gRPC over HTTP/1.1", () => {
  // connect-es serves server streaming gRPC over HTTP/1.1 (only bidi is 505), with the status in
  // chunked trailers; the edge does the same, and sends the headers at once like everywhere.
  it("is served as over HTTP/2: headers at once, then the events", async () => {
    const stream = track(
      plainOverHttp1(server.url, TOKENS.memberA, "application/grpc", {
        headers: { te: "trailers" },
        body: envelope(0, new Uint8Array(0)),
      }),
    );
    await expectHeadersBeforeAnyEvent(stream);
    expect(stream.responseHeaders["content-type"]).toBe("application/grpc+proto");
    await expect.poll(() => server.bus.subscriberCount).toBe(1);
    const marker = uuid();
    await publish(server.url, [project(marker, ORG_A)]);
    // The binary frame carries the id as it is (field 3, a string).
    await expect.poll(() => stream.text.includes(marker), { timeout: 5000 }).toBe(true);
  });

  it("refuses a bad request promptly with its gRPC status", async () => {
    // WatchEventsRequest { environment_id: "nope" }: field 2, length-delimited.
    const request = new Uint8Array([0x12, 4, ...new TextEncoder().encode("nope")]);
    const stream = track(
      plainOverHttp1(server.url, TOKENS.memberA, "application/grpc", {
        headers: { te: "trailers" },
        body: envelope(0, request),
      }),
    );
    await expect.poll(() => stream.status, { timeout: 5000 }).toBe(200);
    expect(stream.responseHeaders["grpc-status"]).toBe(String(Code.InvalidArgument));
    expect(server.bus.subscriberCount).toBe(0);
  });
});

describe("an unknown content type", () => {
  it.each([
    ["HTTP/1.1", WATCH_PATH, plainOverHttp1],
    ["HTTP/1.1", `/api${WATCH_PATH}`, plainOverHttp1],
    ["HTTP/2", WATCH_PATH, plainOverHttp2],
    ["HTTP/2", `/api${WATCH_PATH}`, plainOverHttp2],
  ])("gets 415 promptly over %s at %s", async (_, path, request) => {
    const stream = track(request(server.url, TOKENS.memberA, "text/plain", { path, body: "hi" }));
    await expect.poll(() => stream.status ?? summary(stream.end), { timeout: 5000 }).toBe(415);
  });
});

describe("the /api prefix (the official base URL)", () => {
  const api = (url: string) => `${url}/api`;
  const apiPath = { path: `/api${WATCH_PATH}` };
  const cases: [string, () => ProbedStream][] = [
    ["JSONL over HTTP/1.1", () => jsonlOverHttp1(server.url, TOKENS.memberA, apiPath)],
    ["JSONL over HTTP/2", () => jsonlOverHttp2(server.url, TOKENS.memberA, apiPath)],
    ["raw Connect JSON over HTTP/1.1", () => connectOverHttp1(server.url, TOKENS.memberA, apiPath)],
    ["raw gRPC over HTTP/2", () => grpcOverHttp2(server.url, TOKENS.memberA, apiPath)],
    [
      "connect-node Connect JSON over HTTP/1.1",
      () =>
        rpcStream(
          "Connect JSON over HTTP/1.1",
          createConnectTransport({ baseUrl: api(server.url), httpVersion: "1.1" }),
          TOKENS.memberA,
        ),
    ],
    [
      "connect-node Connect binary over HTTP/2",
      () =>
        rpcStream(
          "Connect binary over HTTP/2",
          createConnectTransport({
            baseUrl: api(server.url),
            httpVersion: "2",
            useBinaryFormat: true,
          }),
          TOKENS.memberA,
        ),
    ],
    [
      "connect-node gRPC over HTTP/2",
      () =>
        rpcStream(
          "gRPC over HTTP/2",
          createGrpcTransport({ baseUrl: api(server.url) }),
          TOKENS.memberA,
        ),
    ],
    [
      "connect-node gRPC-Web over HTTP/1.1",
      () =>
        rpcStream(
          "gRPC-Web over HTTP/1.1",
          createGrpcWebTransport({ baseUrl: api(server.url), httpVersion: "1.1" }),
          TOKENS.memberA,
        ),
    ],
    [
      "connect-node gRPC-Web over HTTP/2",
      () =>
        rpcStream(
          "gRPC-Web over HTTP/2",
          createGrpcWebTransport({ baseUrl: api(server.url), httpVersion: "2" }),
          TOKENS.memberA,
        ),
    ],
    [
      "connect-node Connect binary over HTTP/2, gzip",
      () =>
        rpcStream(
          "Connect binary over HTTP/2, gzip",
          createConnectTransport({
            baseUrl: api(server.url),
            httpVersion: "2",
            useBinaryFormat: true,
            sendCompression: compressionGzip,
            compressMinBytes: 0,
          }),
          TOKENS.memberA,
        ),
    ],
  ];

  it.each(cases)("serves %s at /api, with publishes at /api too", async (_, open) => {
    const stream = track(open());
    await expectDelivers(stream, ORG_A, api(server.url));
    expect(stream.status).toBe(200);
  });
});
