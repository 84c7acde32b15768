import type { Socket } from "node:net";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresStore } from "../src/store/postgres-store.js";
import { Operation, ResourceType } from "../src/watch/model.js";
import { collectUntil, type EventInit, publish, type SeenEvent } from "./helpers/clients.js";
import { ORG_A, TOKENS, uuid } from "./helpers/fixtures.js";
import { scratchDatabase } from "./helpers/postgres.js";
import { startServer, type TestServer } from "./helpers/server.js";
import { TcpProxy, targetOf } from "./helpers/tcp-proxy.js";
import { connectClients, type WatchClient } from "./helpers/watchers.js";

/**
 * A TCP proxy to PostgreSQL that a test can cut: every connection closed, and each new one
 * closed as it comes, until restored.
 */
class OutageProxy extends TcpProxy {
  private down = false;

  override async cut(): Promise<void> {
    this.down = true;
    this.drop("close");
  }

  restore(): void {
    this.down = false;
  }

  protected override accept(client: Socket): void {
    if (this.down) client.destroy();
    else super.accept(client);
  }
}

let db: Awaited<ReturnType<typeof scratchDatabase>>;
let proxy: OutageProxy;
let server: TestServer;

beforeAll(async () => {
  db = await scratchDatabase();
  proxy = new OutageProxy(targetOf(db.url));
  await proxy.start();
  const store = await PostgresStore.open({ url: proxy.urlOf(db.url) });
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
