import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EventJson, PublishRefused, publishWithRetry } from "../examples/publish.js";
import { collectUntil } from "./helpers/clients.js";
import { ORG_A, TOKENS } from "./helpers/fixtures.js";
import { startServer, type TestServer } from "./helpers/server.js";
import { rawJsonlClient } from "./helpers/watchers.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

let server: TestServer;
beforeAll(async () => {
  server = await startServer();
});
afterAll(async () => {
  await server?.close();
});

function projectJson(): EventJson {
  return {
    resourceType: "RESOURCE_TYPE_PROJECT",
    operation: "RESOURCE_OPERATION_CREATE",
    resourceId: randomUUID(),
    organizationId: ORG_A,
  };
}

/**
 * An HTTP proxy in front of the server that lets the first `lose` requests reach it and then
 * breaks their connections before the answer gets back: the publisher cannot know the outcome.
 */
async function answerLosingProxy(target: string, lose: number): Promise<Server> {
  let seen = 0;
  const proxy = createServer((req, res) => {
    const losing = seen++ < lose;
    const upstream = request(
      new URL(req.url ?? "/", target),
      { method: req.method, headers: req.headers },
      (answer) => {
        if (losing) {
          answer.resume();
          answer.once("end", () => req.socket.destroy());
          return;
        }
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    req.pipe(upstream);
  });
  proxy.listen(0, "127.0.0.1");
  await once(proxy, "listening");
  return proxy;
}

describe("examples/publish.ts", () => {
  it("publishes a batch with a key and answers a repeat of it as replayed", async () => {
    const events = [projectJson()];
    const first = await publishWithRetry({
      baseUrl: server.url,
      token: TOKENS.publisher,
      events,
      key: "example-1",
    });
    expect(first).toMatchObject({ replayed: false, attempts: 1, key: "example-1" });
    const again = await publishWithRetry({
      baseUrl: server.url,
      token: TOKENS.publisher,
      events,
      key: "example-1",
    });
    expect(again).toEqual({ ...first, replayed: true });
  });

  it("retries a batch whose answers were lost with its key: logged and delivered once", async () => {
    const watch = await rawJsonlClient.open(server.url, TOKENS.adminA);
    const proxy = await answerLosingProxy(server.url, 2);
    try {
      const events = [projectJson(), projectJson()];
      const published = await publishWithRetry({
        baseUrl: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`,
        token: TOKENS.publisher,
        events,
        baseDelayMs: 10,
      });
      expect(published).toMatchObject({ attempts: 3, replayed: true });
      const last = projectJson();
      await publishWithRetry({ baseUrl: server.url, token: TOKENS.publisher, events: [last] });
      const got = await collectUntil(watch.events, (e) => e.resourceId === last.resourceId);
      expect(got.map((e) => e.resourceId)).toEqual([
        ...events.map((e) => e.resourceId),
        last.resourceId,
      ]);
    } finally {
      watch.close();
      proxy.close();
      proxy.closeAllConnections();
    }
  });

  it("does not retry a refusal", async () => {
    const refused = publishWithRetry({
      baseUrl: server.url,
      token: TOKENS.memberA,
      events: [projectJson()],
    });
    await expect(refused).rejects.toBeInstanceOf(PublishRefused);
    await expect(refused).rejects.toThrow(/^permission_denied/);
  });

  it("runs as a script", async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ["examples/publish.ts"], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? "",
        EVENTS_URL: server.url,
        EVENTS_TOKEN: TOKENS.publisher,
        EVENTS_ORGANIZATION: ORG_A,
      },
    });
    expect(JSON.parse(stdout)).toMatchObject({ replayed: false, attempts: 1 });
  });
});
