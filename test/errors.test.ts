import { once } from "node:events";
import * as http2 from "node:http2";
import * as net from "node:net";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import Gitpod from "@gitpod/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WatchRequestSchema as FeedWatchRequestSchema } from "../src/gen/eventservice/feed/v1/feed_pb.js";
import { IngestService } from "../src/gen/eventservice/ingest/v1/ingest_pb.js";
import { EventService, ListAuditLogsRequestSchema } from "../src/gen/gitpod/v1/event_pb.js";
import { Operation, ResourceType } from "../src/watch/model.js";
import { bearer, collectUntil, publish, rawGrpcRequest } from "./helpers/clients.js";
import { ORG_A, TOKENS, uuid } from "./helpers/fixtures.js";
import { startServer, type TestServer } from "./helpers/server.js";
import { rawJsonlClient } from "./helpers/watchers.js";

let server: TestServer;
beforeAll(async () => {
  server = await startServer({ REQUEST_MAX_BYTES: "131072" });
});
afterAll(async () => {
  await server?.close();
});

const watchUrl = () => `${server.url}/api/gitpod.v1.EventService/WatchEvents`;

async function jsonlPost(headers: Record<string, string>, body: string | Uint8Array = "{}") {
  const res = await fetch(watchUrl(), {
    method: "POST",
    headers: { "content-type": "application/jsonl", ...headers },
    body,
  });
  return {
    status: res.status,
    type: res.headers.get("content-type"),
    body: (await res.json()) as { code: string; message: string },
  };
}

async function connectError(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the call to fail");
}

function watchOnce(transport: ReturnType<typeof createConnectTransport>, token?: string) {
  const client = createClient(EventService, transport);
  return (async () => {
    for await (const _ of client.watchEvents({}, token ? { headers: bearer(token) } : {})) break;
  })();
}

describe("authentication", () => {
  it.each([
    ["missing", {}],
    ["unknown", bearer("not-a-known-token")],
    ["malformed", { authorization: "Basic dXNlcjpwYXNz" }],
  ])(
    "answers a JSONL watch with a %s token with HTTP 401 and a Connect error body",
    async (_, h) => {
      const r = await jsonlPost(h);
      expect(r.status).toBe(401);
      expect(r.type).toBe("application/json");
      expect(r.body).toEqual({ code: "unauthenticated", message: expect.any(String) });
    },
  );

  it("ends a Connect watch with a wrong token with unauthenticated", async () => {
    const err = await connectError(
      watchOnce(createConnectTransport({ baseUrl: server.url, httpVersion: "2" }), "nope"),
    );
    expect(err.code).toBe(Code.Unauthenticated);
  });

  it("ends a gRPC watch without a token with unauthenticated", async () => {
    const err = await connectError(watchOnce(createGrpcTransport({ baseUrl: server.url })));
    expect(err.code).toBe(Code.Unauthenticated);
  });

  it("refuses a publish with a wrong token with unauthenticated", async () => {
    const err = await connectError(
      publish(server.url, [{ resourceType: 3, operation: 1 }], "wrong-token"),
    );
    expect(err.code).toBe(Code.Unauthenticated);
  });

  it("raises an authentication error in the official SDK", async () => {
    const client = new Gitpod({ bearerToken: "nope", baseURL: `${server.url}/api`, maxRetries: 0 });
    await expect(client.events.watch({})).rejects.toMatchObject({ status: 401 });
  });
});

describe("roles", () => {
  it("refuses a watch by a publisher with permission_denied (JSONL: 403)", async () => {
    const r = await jsonlPost(bearer(TOKENS.publisher));
    expect(r.status).toBe(403);
    expect(r.body.code).toBe("permission_denied");
  });

  it("refuses a watch by an auditor with permission_denied", async () => {
    const err = await connectError(
      watchOnce(
        createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
        TOKENS.auditorA,
      ),
    );
    expect(err.code).toBe(Code.PermissionDenied);
  });

  it.each([
    ["member", TOKENS.memberA],
    ["admin", TOKENS.adminA],
  ])("refuses a publish by a %s with permission_denied", async (_, token) => {
    const err = await connectError(
      publish(
        server.url,
        [{ resourceType: 3, operation: 1, resourceId: uuid(), organizationId: ORG_A }],
        token,
      ),
    );
    expect(err.code).toBe(Code.PermissionDenied);
  });

  it("refuses a publisher bound to one organization publishing for another", async () => {
    const err = await connectError(
      publish(
        server.url,
        [{ resourceType: 3, operation: 1, resourceId: uuid(), organizationId: uuid() }],
        TOKENS.publisherA,
      ),
    );
    expect(err.code).toBe(Code.PermissionDenied);
    expect(err.rawMessage).toContain("events[0].organization_id");
  });
});

describe("publish validation", () => {
  it("refuses a batch with one bad event whole, naming the index and field, and delivers none of it", async () => {
    const watch = await rawJsonlClient.open(server.url, TOKENS.adminA);
    const good = uuid();
    const err = await connectError(
      publish(server.url, [
        { resourceType: 3, operation: 1, resourceId: good, organizationId: ORG_A },
        { resourceType: 3, operation: 1, resourceId: "nope", organizationId: ORG_A },
      ]),
    );
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toBe("events[1].resource_id: not a UUID");
    const marker = uuid();
    await publish(server.url, [
      { resourceType: 3, operation: 1, resourceId: marker, organizationId: ORG_A },
    ]);
    const got = await collectUntil(watch.events, (e) => e.resourceId === marker);
    expect(got.map((e) => e.resourceId)).toEqual([marker]);
    watch.close();
  });

  it("refuses an empty batch and one of 1001 events", async () => {
    expect((await connectError(publish(server.url, []))).code).toBe(Code.InvalidArgument);
    const many = Array.from({ length: 1001 }, () => ({
      resourceType: ResourceType.PROJECT,
      operation: Operation.UPDATE,
      resourceId: uuid(),
      organizationId: ORG_A,
    }));
    const err = await connectError(
      createClient(
        IngestService,
        createConnectTransport({ baseUrl: server.url, httpVersion: "2", useBinaryFormat: true }),
      ).publish({ events: many }, { headers: bearer(TOKENS.publisher) }),
    );
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toContain("at most 1000");
  });

  it("answers with consecutive sequence numbers", async () => {
    const e = () => ({
      resourceType: ResourceType.PROJECT,
      operation: Operation.UPDATE,
      resourceId: uuid(),
      organizationId: ORG_A,
    });
    const a = await publish(server.url, [e(), e(), e()]);
    const b = await publish(server.url, [e()]);
    expect(a.lastSequence - a.firstSequence).toBe(2n);
    expect(b.firstSequence).toBe(a.lastSequence + 1n);
  });
});

describe("bad input", () => {
  it.each([
    ["garbage JSON", "{not json"],
    ["a wrong field type", '{"environmentId": 12}'],
    ["invalid UTF-8", new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])],
    ["a JSON array", "[]"],
  ])("answers a JSONL watch with %s with invalid_argument", async (_, body) => {
    const r = await jsonlPost(bearer(TOKENS.adminA), body);
    expect(r.status).toBe(400);
    expect(r.body.code).toBe("invalid_argument");
  });

  it("answers an oversized JSONL body with invalid_argument", async () => {
    const r = await jsonlPost(bearer(TOKENS.adminA), `{"x":"${"a".repeat(200_000)}"}`);
    expect(r.status).toBe(400);
    expect(r.body.message).toContain("larger than 131072 bytes");
  });

  it("answers an oversized gRPC watch request over HTTP/2 with its status, not a reset", async () => {
    const session = http2.connect(server.url);
    try {
      const req = rawGrpcRequest(session, "/gitpod.v1.EventService/WatchEvents", TOKENS.adminA);
      req.on("data", () => {});
      req.end(Buffer.alloc(200_000));
      const [headers] = (await once(req, "response")) as [http2.IncomingHttpHeaders];
      expect(headers["grpc-status"]).toBe(String(Code.InvalidArgument));
      expect(decodeURIComponent(String(headers["grpc-message"]))).toContain(
        "larger than 131072 bytes",
      );
    } finally {
      session.close();
    }
  });

  it("answers an oversized Connect message with resource_exhausted", async () => {
    const events = Array.from({ length: 2000 }, () => ({
      resourceType: ResourceType.PROJECT,
      operation: Operation.UPDATE,
      resourceId: uuid(),
      organizationId: ORG_A,
      creatorId: uuid(),
    }));
    const err = await connectError(publish(server.url, events));
    expect(err.code).toBe(Code.ResourceExhausted);
  });

  it("answers a Connect publish with a malformed JSON body with invalid_argument", async () => {
    const res = await fetch(`${server.url}/eventservice.ingest.v1.IngestService/Publish`, {
      method: "POST",
      headers: { ...bearer(TOKENS.publisher), "content-type": "application/json" },
      body: "{nope",
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { code: string }).code).toBe("invalid_argument");
  });

  it("survives garbage bytes on a raw connection and keeps serving", async () => {
    for (const bytes of [
      Buffer.from("\x00\x01\x02garbage\r\n\r\n"),
      Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\xff\xff\xff\xff\xff\xff\xff\xff\xff"),
      Buffer.from("GET / HTTP/1.1\r\nHost: x\r\nX: \x00\r\n\r\n"),
    ]) {
      await new Promise<void>((resolve) => {
        const s = net.connect(server.port, "127.0.0.1", () => s.end(bytes));
        s.on("error", () => resolve());
        s.on("close", () => resolve());
        s.resume();
      });
    }
    const res = await fetch(`${server.url}/healthz`);
    expect(res.status).toBe(200);
  });

  it("answers an unknown path with a Connect 404", async () => {
    const res = await fetch(`${server.url}/gitpod.v1.NoSuchService/Nope`, { method: "POST" });
    expect(res.status).toBe(404);
  });
});

describe("health", () => {
  it("answers /healthz and /readyz with 200 while serving", async () => {
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
  });
});

describe("grpc-message on every gRPC path", () => {
  /** The raw grpc-message of a gRPC call (header or trailer), as the wire carries it. */
  async function rawGrpcMessage(path: string, token: string, body: Uint8Array): Promise<string> {
    const session = http2.connect(server.url);
    session.on("error", () => {});
    try {
      const stream = rawGrpcRequest(session, path, token);
      let message = "";
      stream.on("response", (h) => {
        if (typeof h["grpc-message"] === "string") message = h["grpc-message"];
      });
      stream.on("trailers", (h) => {
        if (typeof h["grpc-message"] === "string") message = h["grpc-message"];
      });
      stream.resume();
      const frame = Buffer.alloc(5 + body.length);
      frame.writeUInt32BE(body.length, 1);
      frame.set(body, 5);
      stream.end(frame);
      await once(stream, "close");
      return message;
    } finally {
      session.close();
    }
  }

  it("is percent-encoded as the gRPC spec says (printable ASCII kept) by the fast path and the Connect router alike", async () => {
    // The streaming edge (a feed cursor that does not parse) and the Connect router (a page
    // token that does not verify): both messages have ": " in them.
    const feed = await rawGrpcMessage(
      "/eventservice.feed.v1.FeedService/Watch",
      TOKENS.memberA,
      toBinary(FeedWatchRequestSchema, create(FeedWatchRequestSchema, { after: "nope" })),
    );
    const audit = await rawGrpcMessage(
      "/gitpod.v1.EventService/ListAuditLogs",
      TOKENS.adminA,
      toBinary(
        ListAuditLogsRequestSchema,
        create(ListAuditLogsRequestSchema, { pagination: { token: "not-a-token" } }),
      ),
    );
    expect(feed).toBe("after: not a cursor");
    expect(audit).toBe("pagination.token: invalid page token");
  });
});
