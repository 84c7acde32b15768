import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterEach, describe, expect, it } from "vitest";
import { EventService } from "../src/gen/gitpod/v1/event_pb.js";
import { Operation, ResourceType } from "../src/watch/model.js";
import { bearer, publish } from "./helpers/clients.js";
import { ORG_A, TOKENS, uuid } from "./helpers/fixtures.js";
import { startServer, type TestServer } from "./helpers/server.js";
import { connectClients, sdkClient, type Watch, type WatchClient } from "./helpers/watchers.js";

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function outcome(watch: Watch): Promise<unknown> {
  try {
    for (let r = await watch.events.next(); !r.done; r = await watch.events.next()) {}
  } catch (err) {
    return err;
  }
  return "ended normally";
}

describe("graceful shutdown", () => {
  it("ends open Connect, gRPC, gRPC-Web and JSONL streams so clients reconnect, and stops serving", async () => {
    const s = await startServer();
    server = s;
    const clients: WatchClient[] = [...connectClients, sdkClient];
    const watches: Watch[] = [];
    for (const c of clients) watches.push(await c.open(s.url, TOKENS.memberA));
    await expect.poll(() => s.bus.subscriberCount).toBe(clients.length);
    const results = Promise.all(watches.map(outcome));
    await s.app.close(2000);
    const errors = await results;
    for (const [i, err] of errors.entries()) {
      const name = clients[i]?.name;
      if (name === sdkClient.name) {
        // The JSONL stream is aborted, never ended cleanly: the SDK raises.
        expect(err, name).toBeInstanceOf(Error);
      } else {
        expect(ConnectError.from(err).code, name).toBe(Code.Unavailable);
      }
    }
    expect(s.bus.subscriberCount).toBe(0);
    await expect(fetch(`${s.url}/healthz`)).rejects.toThrow();
  });

  it("shuts down under load: publishes stop with unavailable, every stream ends, close is prompt", async () => {
    const s = await startServer();
    server = s;
    const clients: WatchClient[] = [...connectClients, sdkClient];
    const watches: Watch[] = [];
    for (const c of clients) watches.push(await c.open(s.url, TOKENS.adminA));
    await expect.poll(() => s.bus.subscriberCount).toBe(clients.length);
    const results = Promise.all(watches.map(outcome));
    let publishing = true;
    let published = 0;
    const publisher = (async () => {
      while (publishing) {
        try {
          await publish(
            s.url,
            Array.from({ length: 100 }, () => ({
              resourceType: ResourceType.PROJECT,
              operation: Operation.UPDATE,
              resourceId: uuid(),
              organizationId: ORG_A,
            })),
          );
          published++;
        } catch (err) {
          return ConnectError.from(err);
        }
      }
    })();
    await expect.poll(() => published, { timeout: 5000 }).toBeGreaterThan(5);
    const started = performance.now();
    await s.app.close(2000);
    const elapsed = performance.now() - started;
    publishing = false;
    const publishError = await publisher;
    // Refused while draining (unavailable), or its keep-alive connection closed between two
    // requests (the client's transport reports aborted, or internal with EPIPE/ECONNRESET):
    // either way the client knows the publish did not happen.
    const transportGone =
      publishError?.code === Code.Aborted ||
      (publishError?.code === Code.Internal && /EPIPE|ECONNRESET/.test(publishError.rawMessage));
    expect(publishError?.code === Code.Unavailable || transportGone, String(publishError)).toBe(
      true,
    );
    const errors = await results;
    for (const [i, err] of errors.entries()) {
      expect(err, clients[i]?.name).not.toBe("ended normally");
    }
    expect(s.bus.subscriberCount).toBe(0);
    expect(elapsed).toBeLessThan(2500);
  });

  it("turns /readyz to 503 and refuses new streams with unavailable while draining", async () => {
    const s = await startServer();
    server = s;
    s.app.drain();
    expect((await fetch(`${s.url}/readyz`)).status).toBe(503);
    expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
    const err = await (async () => {
      try {
        const client = createClient(EventService, createGrpcTransport({ baseUrl: s.url }));
        for await (const _ of client.watchEvents({}, { headers: bearer(TOKENS.memberA) })) break;
      } catch (e) {
        return ConnectError.from(e);
      }
    })();
    expect(err?.code).toBe(Code.Unavailable);
  });
});

describe("deadlines", () => {
  it.each([
    ["Connect-Timeout-Ms", createConnectTransport],
    ["grpc-timeout", createGrpcTransport],
  ] as const)(
    "ends a stream with deadline_exceeded when the client's %s passes",
    async (_, make) => {
      const s = await startServer();
      server = s;
      const client = createClient(
        EventService,
        make({ baseUrl: s.url, httpVersion: "2" } as never),
      );
      const err = await (async () => {
        try {
          for await (const _ of client.watchEvents(
            {},
            { headers: bearer(TOKENS.memberA), timeoutMs: 300 },
          ))
            break;
        } catch (e) {
          return ConnectError.from(e);
        }
      })();
      expect(err?.code).toBe(Code.DeadlineExceeded);
      await expect.poll(() => s.bus.subscriberCount).toBe(0);
    },
  );
});
