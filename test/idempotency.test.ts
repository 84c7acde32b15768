import { Code, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IngestService } from "../src/gen/eventservice/ingest/v1/ingest_pb.js";
import { PostgresStore } from "../src/store/postgres-store.js";
import type { Store } from "../src/store/store.js";
import { bearer, collectUntil, type EventInit, project } from "./helpers/clients.js";
import { random, TOKENS } from "./helpers/fixtures.js";
import { scratchDatabase } from "./helpers/postgres.js";
import {
  connectPublisher,
  grpcJsPublisher,
  type Publish,
  type PublishOutcome,
} from "./helpers/publishers.js";
import { createReplicas, type Replicas } from "./helpers/replicas.js";
import { GoStyleReader, sdkStyleWatch } from "./helpers/sdk-readers.js";
import { startServer, type TestServer } from "./helpers/server.js";
import { rawJsonlClient } from "./helpers/watchers.js";

// CONTRACT §13: a Publish with an idempotency key is written at most once, on every edge (the
// Connect runtime and the gRPC fast path), on both stores, across replicas and restarts.

/** This file's publishes: always with a key, as the global publisher unless told otherwise. */
type Publisher = (events: EventInit[], key: string, token?: string) => Promise<PublishOutcome>;

function keyed(publish: Publish): Publisher {
  return (events, key, token = TOKENS.publisher) => publish({ events, idempotencyKey: key }, token);
}

function viaConnect(transport: Transport): Publisher {
  return keyed(connectPublisher(transport, 10_000));
}

let keys = 0;
/** A key of this run (the SQLite store lives as long as the file's server). */
function newKey(): string {
  keys++;
  return `test-${process.pid}-${keys}`;
}

function clientsOf(url: string): { clients: Record<string, Publisher>; close(): void } {
  const grpcJs = grpcJsPublisher(url);
  return {
    clients: {
      "Connect JSON over HTTP/1.1 (Connect runtime)": viaConnect(
        createConnectTransport({ baseUrl: url, httpVersion: "1.1" }),
      ),
      "connect-node gRPC (raw stream)": viaConnect(createGrpcTransport({ baseUrl: url })),
      "@grpc/grpc-js (raw stream)": keyed(grpcJs),
    },
    close: () => grpcJs.close(),
  };
}

describe.each([
  ["SQLite", undefined],
  ["PostgreSQL", "postgres"],
] as const)("idempotent Publish on %s", (_, backend) => {
  let server: TestServer;
  let edges: ReturnType<typeof clientsOf>;
  let dropDatabase: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    let store: Store | undefined;
    if (backend === "postgres") {
      const db = await scratchDatabase();
      dropDatabase = db.drop;
      store = await PostgresStore.open({ url: db.url });
    }
    server = await startServer(
      { PUBLISH_MAX_EVENTS_PER_SECOND: "0" },
      store === undefined ? {} : { store, replicated: true },
    );
    edges = clientsOf(server.url);
  });
  afterAll(async () => {
    edges?.close();
    await server?.close();
    await dropDatabase?.();
  });

  it("answers a retry with the first call's sequences and replayed, on every edge, and delivers once", async () => {
    const watch = await rawJsonlClient.open(server.url, TOKENS.adminA);
    const ids: string[] = [];
    for (const [name, publish] of Object.entries(edges.clients)) {
      const batch = [project(), project()];
      ids.push(...batch.map((e) => e.resourceId as string));
      const key = newKey();
      const first = await publish(batch, key);
      expect(first, name).toMatchObject({ code: "ok", replayed: false });
      // The retry on every edge, not only the one that wrote it.
      for (const [other, again] of Object.entries(edges.clients)) {
        expect(await again(batch, key), `${name}, retried by ${other}`).toEqual({
          ...first,
          replayed: true,
        });
      }
    }
    const last = project();
    await edges.clients["connect-node gRPC (raw stream)"]?.([last], newKey());
    const got = await collectUntil(watch.events, (e) => e.resourceId === last.resourceId);
    expect(got.map((e) => e.resourceId)).toEqual([...ids, last.resourceId]);
    watch.close();
  });

  it("refuses the same key with another batch with already_exists, naming the key", async () => {
    const key = newKey();
    const publish = edges.clients["Connect JSON over HTTP/1.1 (Connect runtime)"] as Publisher;
    expect(await publish([project()], key)).toMatchObject({ code: "ok" });
    const before = await server.store.lastSequence();
    for (const [name, again] of Object.entries(edges.clients)) {
      const r = await again([project()], key);
      expect(r.code, name).toBe(Code.AlreadyExists);
      expect(r.message, name).toContain(`idempotency_key "${key}"`);
    }
    expect(await server.store.lastSequence()).toBe(before);
  });

  it.each([
    ["longer than 128 characters", "k".repeat(129)],
    ["not ASCII", "schlüssel"],
    ["with a control character", "a\tb"],
  ])("refuses a key %s with invalid_argument naming idempotency_key", async (_, key) => {
    for (const [name, publish] of Object.entries(edges.clients)) {
      const r = await publish([project()], key);
      expect(r.code, name).toBe(Code.InvalidArgument);
      expect(r.message, name).toMatch(/^idempotency_key: /);
    }
  });

  it("accepts a key of 128 printable characters, spaces included", async () => {
    const key = `${newKey()} ~!`.padEnd(128, "x");
    const publish = edges.clients["connect-node gRPC (raw stream)"] as Publisher;
    expect(await publish([project()], key)).toMatchObject({ code: "ok", replayed: false });
    expect(await publish([project()], key)).toMatchObject({ code: Code.AlreadyExists });
  });

  it("keeps the keys of different publishers apart", async () => {
    const key = newKey();
    const publish = edges.clients["connect-node gRPC (raw stream)"] as Publisher;
    const batch = [project()];
    const a = await publish(batch, key, TOKENS.publisher);
    const b = await publish(batch, key, TOKENS.publisherA);
    expect([a.replayed, b.replayed]).toEqual([false, false]);
    expect(b.first).toBeGreaterThan(a.last as bigint);
  });

  it("writes each batch once when a publisher abandons attempts after 1-4 ms and retries with its key", async () => {
    // Read as the Go SDK reads (node:http): fetch's body, read here while four publishers
    // abandon calls around it, ended now and then with no error and no event in this test.
    const watch = sdkStyleWatch(server.url, TOKENS.adminA, new GoStyleReader());
    expect(await watch.status).toBe(200);
    const next = random(18);
    const transports = [
      createGrpcTransport({ baseUrl: server.url }),
      createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
    ];
    const ids: string[] = [];
    let abandoned = 0;
    await Promise.all(
      Array.from({ length: 4 }, async (_, p) => {
        const client = createClient(IngestService, transports[p % 2] as Transport);
        for (let b = 0; b < 10; b++) {
          const batch = [project(), project(), project()];
          ids.push(...batch.map((e) => e.resourceId as string));
          const key = newKey();
          for (let attempt = 1; ; attempt++) {
            // Half the attempts give up by deadline (the server hears it), half by dropping
            // the call (it does not); the last ones wait, as a backoff would let them.
            const giveUpMs = attempt > 6 ? 10_000 : 1 + next(4);
            const byDeadline = next(2) === 0;
            try {
              await client.publish(
                { events: batch, idempotencyKey: key },
                {
                  headers: bearer(TOKENS.publisher),
                  ...(byDeadline
                    ? { timeoutMs: giveUpMs }
                    : { signal: AbortSignal.timeout(giveUpMs) }),
                },
              );
              break;
            } catch {
              abandoned++;
            }
          }
        }
      }),
    );
    const last = project();
    await edges.clients["connect-node gRPC (raw stream)"]?.([last], newKey());
    await watch.reader.until(ids.length + 1);
    const got = watch.reader.events;
    watch.close();
    const delivered = got.map((e) => e.resourceId);
    expect(abandoned).toBeGreaterThan(0);
    expect(new Set(delivered).size).toBe(delivered.length);
    expect([...delivered].sort()).toEqual([...ids, last.resourceId].sort());
    // And the log holds each event once.
    const log = await server.store.readAfter(0, 100_000);
    const logged = log.map((s) => s.event.resourceId).filter((id) => ids.includes(id));
    expect(logged.length).toBe(ids.length);
  });
});

describe("idempotent Publish across replicas and restarts (PostgreSQL, real processes)", () => {
  let replicas: Replicas;
  beforeAll(async () => {
    replicas = await createReplicas();
  });
  afterAll(async () => {
    await replicas?.stopAll();
  });

  it("replays a key on another replica and after the replica that wrote it is killed and restarted", async () => {
    const a = await replicas.start({ name: "A" });
    const b = await replicas.start({ name: "B" });
    const onA = viaConnect(createGrpcTransport({ baseUrl: a.url }));
    const onB = viaConnect(createConnectTransport({ baseUrl: b.url, httpVersion: "1.1" }));
    const batch = [project(), project()];
    const key = newKey();
    const first = await onA(batch, key);
    expect(first).toMatchObject({ code: "ok", replayed: false });
    expect(await onB(batch, key)).toEqual({ ...first, replayed: true });
    expect(await onB([project()], key)).toMatchObject({ code: Code.AlreadyExists });

    a.process.kill("SIGKILL");
    const again = await replicas.start({ name: "A again" });
    const onAgain = viaConnect(createGrpcTransport({ baseUrl: again.url }));
    expect(await onAgain(batch, key)).toEqual({ ...first, replayed: true });
  });

  it("writes a key once when two replicas are sent it at the same moment", async () => {
    const a = await replicas.start({ name: "A" });
    const b = await replicas.start({ name: "B" });
    const onA = viaConnect(createGrpcTransport({ baseUrl: a.url }));
    const onB = viaConnect(createGrpcTransport({ baseUrl: b.url }));
    for (let round = 0; round < 20; round++) {
      const batch = [project()];
      const key = newKey();
      const [x, y] = await Promise.all([onA(batch, key), onB(batch, key)]);
      expect([x?.replayed, y?.replayed].sort(), `round ${round}`).toEqual([false, true]);
      expect(x?.first).toBe(y?.first);
    }
  });
});
