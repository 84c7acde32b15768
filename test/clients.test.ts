import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Operation, ResourceType } from "../src/watch/model.js";
import { collectUntil, ev, publish, type SeenEvent } from "./helpers/clients.js";
import { ORG_B, TOKENS, USERS, uuid } from "./helpers/fixtures.js";
import { startServer, type TestServer } from "./helpers/server.js";
import { allClients } from "./helpers/watchers.js";

let server: TestServer;
beforeAll(async () => {
  server = await startServer();
});
afterAll(async () => {
  await server?.close();
});

describe.each(allClients)("$name", (client) => {
  it("receives exactly the events published after it opened, in order, with the right fields", async () => {
    await publish(server.url, [ev(ResourceType.PROJECT, Operation.CREATE, uuid())]);
    const before = server.bus.subscriberCount;
    const watch = await client.open(server.url, TOKENS.adminA);
    try {
      // buf curl compiles the proto files before it connects: seconds on a busy machine.
      await expect.poll(() => server.bus.subscriberCount, { timeout: 15_000 }).toBe(before + 1);
      const env = uuid();
      const project = uuid();
      const runner = uuid();
      const marker = uuid();
      await publish(server.url, [
        ev(ResourceType.ENVIRONMENT, Operation.CREATE, env, { creatorId: USERS.memberA }),
        ev(ResourceType.PROJECT, Operation.UPDATE, project),
        ev(ResourceType.TASK, Operation.CREATE, uuid(), { environmentId: env }),
        ev(ResourceType.RUNNER, Operation.UPDATE_STATUS, runner),
      ]);
      await publish(server.url, [
        { ...ev(ResourceType.PROJECT, Operation.CREATE, uuid()), organizationId: ORG_B },
      ]);
      await publish(server.url, [ev(ResourceType.ENVIRONMENT, Operation.DELETE, env)]);
      await publish(server.url, [ev(ResourceType.PROJECT, Operation.DELETE, marker)]);
      const got = await collectUntil<SeenEvent>(watch.events, (e) => e.resourceId === marker);
      expect(got).toEqual([
        {
          operation: "RESOURCE_OPERATION_CREATE",
          resourceType: "RESOURCE_TYPE_ENVIRONMENT",
          resourceId: env,
        },
        {
          operation: "RESOURCE_OPERATION_UPDATE",
          resourceType: "RESOURCE_TYPE_PROJECT",
          resourceId: project,
        },
        {
          operation: "RESOURCE_OPERATION_UPDATE_STATUS",
          resourceType: "RESOURCE_TYPE_RUNNER",
          resourceId: runner,
        },
        {
          operation: "RESOURCE_OPERATION_DELETE",
          resourceType: "RESOURCE_TYPE_ENVIRONMENT",
          resourceId: env,
        },
        {
          operation: "RESOURCE_OPERATION_DELETE",
          resourceType: "RESOURCE_TYPE_PROJECT",
          resourceId: marker,
        },
      ]);
    } finally {
      watch.close();
    }
    await expect.poll(() => server.bus.subscriberCount).toBe(before);
  });
});
