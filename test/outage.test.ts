import * as net from "node:net";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresStore } from "../src/store/postgres-store.js";
import { Operation, ResourceType } from "../src/watch/model.js";
import { collectUntil, type EventInit, publish, type SeenEvent } from "./helpers/clients.js";
import { ORG_A, TOKENS, uuid } from "./helpers/fixtures.js";
import { scratchDatabase } from "./helpers/postgres.js";
import { startServer, type TestServer } from "./helpers/server.js";
import { connectClients, type WatchClient } from "./helpers/watchers.js";

/** A TCP proxy to PostgreSQL that a test can cut (every connection reset, new ones refused). */
function createProxy(target: URL) {
  const sockets = new Set<net.Socket>();
  let open = true;
  const server = net.createServer((client) => {
    if (!open) {
      client.destroy();
      return;
    }
    const upstream = net.connect(Number(target.port || 5432), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => {});
    }
    client.pipe(upstream).pipe(client);
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  });
  return {
    listen: () =>
      new Promise<number>((resolve) =>
        server.listen(0, "127.0.0.1", () => resolve((server.address() as net.AddressInfo).port)),
      ),
    cut() {
      open = false;
      for (const s of sockets) s.destroy();
    },
    restore() {
      open = true;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

let db: Awaited<ReturnType<typeof scratchDatabase>>;
let proxy: ReturnType<typeof createProxy>;
let server: TestServer;

beforeAll(async () => {
  db = await scratchDatabase();
  const target = new URL(db.url);
  proxy = createProxy(target);
  const port = await proxy.listen();
  const url = new URL(db.url);
  url.hostname = "127.0.0.1";
  url.port = String(port);
  const store = await PostgresStore.open({ url: url.toString() });
  server = await startServer({}, { store, replicated: true });
});
afterAll(async () => {
  proxy?.restore();
  await server?.close();
  await proxy?.close();
  await db?.drop();
});

const project = (id: string): EventInit => ({
  resourceType: ResourceType.PROJECT,
  operation: Operation.UPDATE,
  resourceId: id,
  organizationId: ORG_A,
});

describe("a database outage", () => {
  it("fails publishes with unavailable and readiness with 503, keeps streams, and recovers", async () => {
    const watch = await (connectClients[1] as WatchClient).open(server.url, TOKENS.adminA);
    await expect.poll(() => server.bus.subscriberCount).toBe(1);
    const before = uuid();
    await publish(server.url, [project(before)]);
    await collectUntil<SeenEvent>(watch.events, (e) => e.resourceId === before);

    proxy.cut();
    const err = await publish(server.url, [project(uuid())]).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(err?.code).toBe(Code.Unavailable);
    await expect
      .poll(async () => (await fetch(`${server.url}/readyz`)).status, { timeout: 10_000 })
      .toBe(503);
    expect(server.bus.subscriberCount).toBe(1);

    proxy.restore();
    const after = uuid();
    await expect
      .poll(
        () =>
          publish(server.url, [project(after)]).then(
            () => true,
            () => false,
          ),
        {
          timeout: 15_000,
          interval: 200,
        },
      )
      .toBe(true);
    const got = await collectUntil<SeenEvent>(watch.events, (e) => e.resourceId === after);
    // The refused publish is not there: nothing of it was written.
    expect(got.map((e) => e.resourceId).filter((id) => id !== after)).toEqual([]);
    await expect
      .poll(async () => (await fetch(`${server.url}/readyz`)).status, { timeout: 10_000 })
      .toBe(200);
    watch.close();
  });
});
