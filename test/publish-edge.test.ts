import { once } from "node:events";
import * as http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import {
  compressionGzip,
  createConnectTransport,
  createGrpcTransport,
} from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PublishRequestSchema } from "../src/gen/eventservice/ingest/v1/ingest_pb.js";
import { Operation, ResourceType } from "../src/watch/model.js";
import { collectUntil, type EventInit, rawGrpcRequest } from "./helpers/clients.js";
import { ORG_A, ORG_B, TOKENS, uuid } from "./helpers/fixtures.js";
import {
  connectPublisher,
  grpcJsPublisher,
  type Publish,
  type PublishOutcome,
} from "./helpers/publishers.js";
import { startServer, type TestServer } from "./helpers/server.js";
import { rawJsonlClient } from "./helpers/watchers.js";

// gRPC publishes over HTTP/2 (binary, uncompressed) are served on the raw stream
// (src/http/publish-edge.ts); every other form by the Connect runtime. Both must answer alike.

const MAX_BYTES = 65_536;
let server: TestServer;
beforeAll(async () => {
  server = await startServer({ REQUEST_MAX_BYTES: String(MAX_BYTES) });
});
afterAll(async () => {
  await server?.close();
});

type EventFields = Partial<
  Record<"resourceId" | "organizationId" | "creatorId" | "action", string>
>;

const project = (more: EventFields = {}): EventInit => ({
  resourceType: ResourceType.PROJECT,
  operation: Operation.UPDATE,
  resourceId: uuid(),
  organizationId: ORG_A,
  ...more,
});

describe("gRPC Publish on the raw HTTP/2 stream", () => {
  let grpcJs: ReturnType<typeof grpcJsPublisher>;
  const clients: Record<string, Publish> = {};
  beforeAll(() => {
    grpcJs = grpcJsPublisher(server.url);
    clients["Connect JSON over HTTP/1.1 (Connect runtime)"] = connectPublisher(
      createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
    );
    clients["connect-node gRPC (raw stream)"] = connectPublisher(
      createGrpcTransport({ baseUrl: server.url }),
    );
    clients["connect-node gRPC, gzip (Connect runtime)"] = connectPublisher(
      createGrpcTransport({
        baseUrl: server.url,
        sendCompression: compressionGzip,
        compressMinBytes: 1,
      }),
    );
    clients["@grpc/grpc-js (raw stream)"] = grpcJs;
  });
  afterAll(() => grpcJs?.close());

  it("accepts a batch from every client with consecutive sequence numbers, and delivers it", async () => {
    const watch = await rawJsonlClient.open(server.url, TOKENS.adminA);
    const ids: string[] = [];
    let previous: bigint | undefined;
    for (const [name, publish] of Object.entries(clients)) {
      const batch = [project(), project()];
      ids.push(...batch.map((e) => e.resourceId as string));
      const r = await publish({ events: batch }, TOKENS.publisher);
      expect(r, name).toMatchObject({ code: "ok" });
      expect(r.last, name).toBe((r.first as bigint) + 1n);
      if (previous !== undefined) expect(r.first, name).toBe(previous + 1n);
      previous = r.last;
    }
    const got = await collectUntil(watch.events, (e) => e.resourceId === ids.at(-1));
    expect(got.map((e) => e.resourceId)).toEqual(ids);
    watch.close();
  });

  const refusals: [string, () => EventInit[], string | undefined, Code, string | RegExp][] = [
    ["no token", () => [project()], undefined, Code.Unauthenticated, /token/],
    ["an unknown token", () => [project()], "nope", Code.Unauthenticated, /token/],
    ["a member's token", () => [project()], TOKENS.memberA, Code.PermissionDenied, /publish/],
    [
      "a publisher of another organization",
      () => [project({ organizationId: ORG_B })],
      TOKENS.publisherA,
      Code.PermissionDenied,
      /organization/,
    ],
    [
      "an invalid event",
      () => [project(), project({ resourceId: "nope" })],
      TOKENS.publisher,
      Code.InvalidArgument,
      "events[1].resource_id: not a UUID",
    ],
    ["an empty batch", () => [], TOKENS.publisher, Code.InvalidArgument, /event/],
    [
      "a message over REQUEST_MAX_BYTES",
      () =>
        Array.from({ length: 1000 }, () => project({ creatorId: uuid(), action: "x".repeat(40) })),
      TOKENS.publisher,
      Code.ResourceExhausted,
      /larger than configured readMaxBytes/,
    ],
  ];

  it.each(refusals)("refuses %s alike on every edge", async (_, events, token, code, message) => {
    const batch = events();
    const outcomes = await Promise.all(
      Object.entries(clients).map(async ([name, publish]) => [
        name,
        await publish({ events: batch }, token),
      ]),
    );
    for (const [name, outcome] of outcomes as [string, PublishOutcome][]) {
      expect(outcome.code, name).toBe(code);
      expect(outcome.message, name).toMatch(message);
    }
    // The exact words are the same on the raw stream as in the Connect runtime.
    const byMessage = new Set(
      (outcomes as [string, PublishOutcome][])
        .filter(([name]) => !name.includes("HTTP/1.1"))
        .map(([, o]) => o.message),
    );
    if (code !== Code.ResourceExhausted) expect(byMessage.size).toBe(1);
  });
});

describe("gRPC Publish: malformed requests on a raw HTTP/2 connection", () => {
  /** One request with `body` and extra headers; the gRPC status and message it got. */
  async function rawPublish(
    body: Buffer,
    headers: Record<string, string> = {},
    resetAfterHeaders = false,
  ): Promise<{ status: string | undefined; message: string | undefined }> {
    const session = http2.connect(server.url);
    try {
      const req = rawGrpcRequest(
        session,
        "/eventservice.ingest.v1.IngestService/Publish",
        TOKENS.publisher,
        headers,
      );
      if (resetAfterHeaders) {
        await once(req, "ready");
        req.write(body.subarray(0, 3));
        req.close(http2.constants.NGHTTP2_CANCEL);
        await once(req, "close");
        return { status: undefined, message: undefined };
      }
      req.end(body);
      return await new Promise((resolve, reject) => {
        let status: string | undefined;
        let message: string | undefined;
        const take = (h: http2.IncomingHttpHeaders) => {
          status ??= h["grpc-status"] as string | undefined;
          message ??= h["grpc-message"] as string | undefined;
        };
        req.on("response", take);
        req.on("trailers", take);
        req.on("data", () => {});
        req.on("end", () => resolve({ status, message }));
        req.on("error", reject);
      });
    } finally {
      session.close();
    }
  }

  const frame = (payload: Uint8Array, flags = 0) => {
    const out = Buffer.alloc(5 + payload.length);
    out[0] = flags;
    out.writeUInt32BE(payload.length, 1);
    out.set(payload, 5);
    return out;
  };
  const valid = () =>
    toBinary(PublishRequestSchema, create(PublishRequestSchema, { events: [project()] }));

  it("answers a valid request with status 0", async () => {
    expect(await rawPublish(frame(valid()))).toEqual({ status: "0", message: undefined });
  });

  it.each([
    [
      "bytes that are not a PublishRequest",
      () => frame(Buffer.from([0xff, 0xff, 0xff])),
      /not a valid PublishRequest/,
    ],
    [
      "two messages",
      () => Buffer.concat([frame(valid()), frame(valid())]),
      /exactly one request message/,
    ],
    ["a cut envelope", () => frame(valid()).subarray(0, 8), /incomplete envelope/],
    ["a compressed flag without grpc-encoding", () => frame(valid(), 1), /compressed/],
  ])("answers %s with invalid_argument", async (_, body, message) => {
    const r = await rawPublish(body());
    expect(r.status).toBe(String(Code.InvalidArgument));
    expect(decodeURIComponent(r.message ?? "")).toMatch(message);
  });

  it("answers an envelope that promises more than REQUEST_MAX_BYTES at once, with resource_exhausted", async () => {
    const head = Buffer.from([0, 0, 0x10, 0, 0]); // 1 MiB promised, 5 bytes sent
    const r = await rawPublish(head);
    expect(r.status).toBe(String(Code.ResourceExhausted));
  });

  it("answers a malformed grpc-timeout with invalid_argument", async () => {
    const r = await rawPublish(frame(valid()), { "grpc-timeout": "soon" });
    expect(r.status).toBe(String(Code.InvalidArgument));
    expect(decodeURIComponent(r.message ?? "")).toContain("grpc-timeout");
  });

  it("keeps serving after clients reset their publishes halfway", async () => {
    for (let i = 0; i < 20; i++) await rawPublish(frame(valid()), {}, true);
    expect(await rawPublish(frame(valid()))).toEqual({ status: "0", message: undefined });
  });
});
