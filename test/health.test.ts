import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  Health,
  HealthCheckResponse_ServingStatus as Status,
} from "../src/gen/grpc/health/v1/health_pb.js";
import { startServer, type TestServer } from "./helpers/server.js";
import { PROTO_DIR } from "./helpers/watchers.js";

// CONTRACT §11: grpc.health.v1 on the same port and protocols, without a token.

const SERVICES = [
  "",
  "gitpod.v1.EventService",
  "eventservice.ingest.v1.IngestService",
  "eventservice.feed.v1.FeedService",
  "grpc.health.v1.Health",
];

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

function transports(url: string) {
  return [
    ["gRPC", createGrpcTransport({ baseUrl: url })],
    ["Connect JSON over HTTP/1.1", createConnectTransport({ baseUrl: url, httpVersion: "1.1" })],
    [
      "Connect binary over HTTP/2",
      createConnectTransport({ baseUrl: url, httpVersion: "2", useBinaryFormat: true }),
    ],
  ] as const;
}

/** A @grpc/grpc-js client of the health service, as probes written in Node would use. */
function grpcJsHealth(url: string) {
  const def = protoLoader.loadSync("grpc/health/v1/health.proto", {
    includeDirs: [PROTO_DIR],
    enums: String,
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
  };
  return new pkg.grpc.health.v1.Health(new URL(url).host, grpc.credentials.createInsecure());
}

describe("grpc.health.v1.Health/Check", () => {
  it("answers SERVING without a token for the server and each service, on every protocol", async () => {
    server = await startServer();
    for (const [, transport] of transports(server.url)) {
      const client = createClient(Health, transport);
      for (const service of SERVICES) {
        expect((await client.check({ service })).status).toBe(Status.SERVING);
      }
    }
  });

  it("answers an unknown service with not_found", async () => {
    server = await startServer();
    const client = createClient(Health, createGrpcTransport({ baseUrl: server.url }));
    const err = await client.check({ service: "no.such.Service" }).catch((e: unknown) => e);
    expect(ConnectError.from(err).code).toBe(Code.NotFound);
  });

  it("answers @grpc/grpc-js, as a probe would ask", async () => {
    server = await startServer();
    const client = grpcJsHealth(server.url);
    try {
      const res = await new Promise<{ status: string }>((resolve, reject) =>
        (client.Check as (...a: unknown[]) => void)(
          { service: "" },
          (err: Error | null, r: { status: string }) => (err ? reject(err) : resolve(r)),
        ),
      );
      expect(res.status).toBe("SERVING");
    } finally {
      client.close();
    }
  });

  it("answers NOT_SERVING while the store is unreachable, and SERVING again after", async () => {
    server = await startServer();
    const client = createClient(Health, createGrpcTransport({ baseUrl: server.url }));
    const ping = vi.spyOn(server.store, "ping").mockRejectedValue(new Error("connection refused"));
    await expect
      .poll(async () => (await client.check({ service: "" })).status, { timeout: 5000 })
      .toBe(Status.NOT_SERVING);
    ping.mockRestore();
    await expect
      .poll(async () => (await client.check({ service: "" })).status, { timeout: 5000 })
      .toBe(Status.SERVING);
  });

  it("answers NOT_SERVING while draining", async () => {
    server = await startServer();
    const client = createClient(
      Health,
      createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
    );
    server.app.drain();
    expect((await client.check({ service: "gitpod.v1.EventService" })).status).toBe(
      Status.NOT_SERVING,
    );
  });
});

describe("grpc.health.v1.Health/Watch", () => {
  it.each([0, 1, 2])(
    "sends SERVING at once, NOT_SERVING on drain, then ends with unavailable on shutdown (transport %i)",
    async (i) => {
      server = await startServer();
      const [name, transport] = transports(server.url)[i] as ReturnType<typeof transports>[number];
      const client = createClient(Health, transport);
      const it = client.watch({ service: "" })[Symbol.asyncIterator]();
      expect((await it.next()).value?.status, name).toBe(Status.SERVING);
      // Closing drains first.
      const closed = server.close();
      server = undefined;
      expect((await it.next()).value?.status, name).toBe(Status.NOT_SERVING);
      const end = await it.next().catch((e: unknown) => e);
      expect(ConnectError.from(end).code, name).toBe(Code.Unavailable);
      await closed;
    },
  );

  it("sends a change of the store's health to every watcher", async () => {
    server = await startServer();
    const client = createClient(Health, createGrpcTransport({ baseUrl: server.url }));
    const watches = [0, 1, 2].map(() =>
      client.watch({ service: "gitpod.v1.EventService" })[Symbol.asyncIterator](),
    );
    for (const w of watches) expect((await w.next()).value?.status).toBe(Status.SERVING);
    vi.spyOn(server.store, "ping").mockRejectedValue(new Error("connection refused"));
    for (const w of watches) expect((await w.next()).value?.status).toBe(Status.NOT_SERVING);
    for (const w of watches) await w.return?.();
  });

  it("sends SERVICE_UNKNOWN for an unknown service and keeps the stream open", async () => {
    server = await startServer();
    const client = createClient(Health, createGrpcTransport({ baseUrl: server.url }));
    const abort = new AbortController();
    const it = client
      .watch({ service: "no.such.Service" }, { signal: abort.signal })
      [Symbol.asyncIterator]();
    expect((await it.next()).value?.status).toBe(Status.SERVICE_UNKNOWN);
    abort.abort();
  });

  it("leaves no watch behind when clients go away", async () => {
    server = await startServer();
    const client = createClient(Health, createGrpcTransport({ baseUrl: server.url }));
    for (let i = 0; i < 20; i++) {
      const abort = new AbortController();
      const it = client.watch({ service: "" }, { signal: abort.signal })[Symbol.asyncIterator]();
      await it.next();
      abort.abort();
    }
    await expect.poll(() => server?.app.health.watchCount).toBe(0);
  });

  it("bounds open watches (HEALTH_MAX_WATCHES) with resource_exhausted, and shows them in /metrics", async () => {
    server = await startServer({ HEALTH_MAX_WATCHES: "2" });
    const client = createClient(Health, createGrpcTransport({ baseUrl: server.url }));
    const abort = new AbortController();
    const open = [0, 1].map(() =>
      client.watch({ service: "" }, { signal: abort.signal })[Symbol.asyncIterator](),
    );
    for (const w of open) expect((await w.next()).value?.status).toBe(Status.SERVING);
    const third = await client
      .watch({ service: "" })
      [Symbol.asyncIterator]()
      .next()
      .catch((e: unknown) => ConnectError.from(e));
    expect(third).toMatchObject({ code: Code.ResourceExhausted });
    expect((third as ConnectError).rawMessage).toContain("at most 2");
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(/^eventserver_health_watches 2$/m);
    abort.abort();
    await expect.poll(() => server?.app.health.watchCount).toBe(0);
  });
});
