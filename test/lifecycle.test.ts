import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterEach, describe, expect, it } from "vitest";
import { EventService } from "../src/gen/gitpod/v1/event_pb.js";
import { bearer } from "./helpers/clients.js";
import { TOKENS } from "./helpers/fixtures.js";
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
