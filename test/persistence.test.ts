import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { SqliteStore } from "../src/store/sqlite-store.js";
import { Operation, ResourceType } from "../src/watch/model.js";
import { collectUntil, ev, publish, type SeenEvent } from "./helpers/clients.js";
import { TOKENS, USERS, uuid } from "./helpers/fixtures.js";
import { startServer, type TestServer } from "./helpers/server.js";
import { connectClients, sdkClient, type WatchClient } from "./helpers/watchers.js";

const dir = mkdtempSync(join(tmpdir(), "events-persist-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function embedded(file: string): Promise<TestServer> {
  return startServer({}, { store: await SqliteStore.open({ path: join(dir, file) }) });
}

describe("the embedded store", () => {
  it("keeps what it learned across a restart: environment scope and DELETE visibility still work", async () => {
    const env = uuid();
    const pat = uuid();
    let server = await embedded("restart.db");
    const first = await publish(server.url, [
      ev(ResourceType.ENVIRONMENT, Operation.CREATE, env, { creatorId: USERS.memberA }),
      ev(ResourceType.PERSONAL_ACCESS_TOKEN, Operation.CREATE, pat, { creatorId: USERS.memberA }),
    ]);
    await server.close();

    server = await embedded("restart.db");
    try {
      const envWatch = await sdkClient.open(server.url, TOKENS.memberA, { environmentId: env });
      const orgWatch = await (connectClients[0] as WatchClient).open(server.url, TOKENS.memberA);
      await expect.poll(() => server.bus.subscriberCount).toBe(2);
      const second = await publish(server.url, [
        // No creator_id: only the creator learned before the restart makes these visible.
        ev(ResourceType.PERSONAL_ACCESS_TOKEN, Operation.DELETE, pat),
        ev(ResourceType.ENVIRONMENT, Operation.DELETE, env),
      ]);
      expect(second.firstSequence).toBe(first.lastSequence + 1n);
      const got: SeenEvent[] = [];
      for (let r = await envWatch.events.next(); !r.done; r = await envWatch.events.next()) {
        got.push(r.value);
      }
      expect(got.map((e) => [e.resourceType, e.operation])).toEqual([
        ["RESOURCE_TYPE_ENVIRONMENT", "RESOURCE_OPERATION_DELETE"],
      ]);
      const org = await collectUntil<SeenEvent>(orgWatch.events, (e) => e.resourceId === env);
      expect(org.map((e) => e.resourceId)).toEqual([pat, env]);
      orgWatch.close();
    } finally {
      await server.close();
    }
  });

  it("has every acknowledged event in its log, in order", async () => {
    const server = await embedded("log.db");
    try {
      const ids = [uuid(), uuid(), uuid()];
      const r = await publish(
        server.url,
        ids.map((id) => ev(ResourceType.PROJECT, Operation.UPDATE, id)),
      );
      const rows = await server.store.readAfter(Number(r.firstSequence) - 1, 10);
      expect(rows.map((x) => [x.sequence, x.event.resourceId])).toEqual(
        ids.map((id, i) => [Number(r.firstSequence) + i, id]),
      );
    } finally {
      await server.close();
    }
  });
});
