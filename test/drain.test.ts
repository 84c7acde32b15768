import { writeFileSync } from "node:fs";
import { Code, type Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { SignJWT } from "jose";
import { afterEach, describe, expect, it } from "vitest";
import { Operation, ResourceType } from "../src/watch/model.js";
import { ORG_A, TOKEN_ENTRIES, TOKENS, USERS } from "./helpers/fixtures.js";
import { startServer, type TestServer } from "./helpers/server.js";
import {
  curlJsonl,
  grpcJsStream,
  jsonlOverHttp1,
  jsonlOverHttp2,
  type ProbedStream,
  rpcStream,
  type StreamEnd,
  summary,
} from "./helpers/streams.js";

// A stream that the server ends because of an error must never look like a clean end to its
// client (CONTRACT §4, §7): JSONL has no way to say why, so HTTP/1.1 closes without the last
// chunk and HTTP/2 resets the stream; the RPC protocols carry the code.

let server: TestServer | undefined;
const streams: ProbedStream[] = [];
afterEach(async () => {
  for (const s of streams.splice(0)) s.close();
  await server?.close();
  server = undefined;
});

/** How a client of this kind sees a stream ended by an error. */
type Wire = "http1" | "http2" | "rpc";

interface Opener {
  readonly name: string;
  readonly wire: Wire;
  open(url: string, token: string): ProbedStream;
}

const JSONL_H1: Opener = {
  name: "JSONL over HTTP/1.1 (node:http, as the SDKs send it)",
  wire: "http1",
  open: (url, token) => jsonlOverHttp1(url, token),
};
const JSONL_H2: Opener = {
  name: "JSONL over HTTP/2 (node:http2)",
  wire: "http2",
  open: (url, token) => jsonlOverHttp2(url, token),
};

const rpc = (name: string, transport: (baseUrl: string) => Transport): Opener => ({
  name,
  wire: "rpc",
  open: (url, token) => rpcStream(name, transport(url), token),
});

const OPENERS: Opener[] = [
  JSONL_H1,
  JSONL_H2,
  rpc("Connect JSON over HTTP/1.1 (connect-node)", (baseUrl) =>
    createConnectTransport({ baseUrl, httpVersion: "1.1" }),
  ),
  rpc("Connect binary over HTTP/2 (connect-node)", (baseUrl) =>
    createConnectTransport({ baseUrl, httpVersion: "2", useBinaryFormat: true }),
  ),
  rpc("gRPC over HTTP/2 (connect-node)", (baseUrl) => createGrpcTransport({ baseUrl })),
  { name: "gRPC over HTTP/2 (@grpc/grpc-js)", wire: "rpc", open: grpcJsStream },
  rpc("gRPC-Web over HTTP/1.1 (connect-node)", (baseUrl) =>
    createGrpcWebTransport({ baseUrl, httpVersion: "1.1" }),
  ),
  rpc("gRPC-Web over HTTP/2 (connect-node)", (baseUrl) =>
    createGrpcWebTransport({ baseUrl, httpVersion: "2" }),
  ),
];

/** Opens a stream on a quiet organization and waits for its response headers (sent at once). */
async function openAndWait(opener: Opener, url: string, token: string): Promise<ProbedStream> {
  const stream = opener.open(url, token);
  streams.push(stream);
  const status = await stream.opened();
  expect(status, `${opener.name}: ${summary(stream.end)} ${stream.text}`).toBe(200);
  return stream;
}

/** Asserts that the stream ended as its wire says an error must, with `code` where it can. */
function expectEndedWithError(opener: Opener, end: StreamEnd, code: Code): void {
  const seen = summary(end);
  switch (opener.wire) {
    case "http1":
      // Closed without the last chunk: 'aborted' / ECONNRESET, never 'end'.
      expect(seen, opener.name).toMatch(/^aborted/);
      break;
    case "http2":
      // RST_STREAM with a non-zero code, and no END_STREAM before it.
      expect(seen, opener.name).toMatch(/^reset \(RST_STREAM [1-9]/);
      break;
    case "rpc":
      expect(end.kind === "error" ? end.code : seen, `${opener.name}: ${seen}`).toBe(code);
      break;
  }
}

describe("draining (app.close)", () => {
  const LONG_SHUTDOWN_MS = 120_000;

  it.each(OPENERS)("ends an open $name stream with an error, never a clean end", async (opener) => {
    const s = await startServer();
    server = s;
    const stream = await openAndWait(opener, s.url, TOKENS.memberA);
    await expect.poll(() => s.bus.subscriberCount).toBe(1);
    // A shutdown timeout far beyond the test's: the stream must be ended by the drain itself,
    // not by the connections being destroyed when the timeout runs out.
    const closing = s.app.close(LONG_SHUTDOWN_MS);
    expectEndedWithError(opener, await stream.finished(), Code.Unavailable);
    await closing;
  });

  it("ends every kind of stream at once with an error when they are open together", async () => {
    const s = await startServer();
    server = s;
    const open = await Promise.all(OPENERS.map((o) => openAndWait(o, s.url, TOKENS.memberA)));
    await expect.poll(() => s.bus.subscriberCount).toBe(OPENERS.length);
    const closing = s.app.close(LONG_SHUTDOWN_MS);
    const ends = await Promise.all(open.map((w) => w.finished()));
    for (const [i, end] of ends.entries()) {
      expectEndedWithError(OPENERS[i] as Opener, end, Code.Unavailable);
    }
    await closing;
  });

  it.each([
    ["1.1", /^aborted \(curl exited 18\)$/],
    ["2", /^aborted \(curl exited [1-9]\d*\)$/],
  ] as const)("makes curl over HTTP/%s exit with an error, not 0", async (version, expected) => {
    const s = await startServer();
    server = s;
    const stream = curlJsonl(s.url, TOKENS.memberA, version);
    streams.push(stream);
    expect(await stream.opened()).toBe(200);
    await expect.poll(() => s.bus.subscriberCount).toBe(1);
    const closing = s.app.close(LONG_SHUTDOWN_MS);
    // HTTP/1.1: 18 (transfer closed with outstanding read data); HTTP/2: 92 (stream error).
    expect(summary(await stream.finished())).toMatch(expected);
    await closing;
  });
});

describe("the maximum lifetime (WATCH_MAX_LIFETIME_MS)", () => {
  it.each(OPENERS)("ends a $name stream with unavailable, never a clean end", async (opener) => {
    const s = await startServer({ WATCH_MAX_LIFETIME_MS: "500" });
    server = s;
    const stream = await openAndWait(opener, s.url, TOKENS.memberA);
    const end = await stream.finished();
    expectEndedWithError(opener, end, Code.Unavailable);
    if (end.kind === "error") expect(end.message).toContain("maximum lifetime");
    await expect.poll(() => s.bus.subscriberCount).toBe(0);
  });
});

describe("a backlog that overflows (WATCH_MAX_BACKLOG)", () => {
  const BACKLOG = 64;
  it.each([JSONL_H1, JSONL_H2])(
    "ends a $name stream that reads nothing with an error, never a clean end",
    async (opener) => {
      const s = await startServer({
        WATCH_MAX_BACKLOG: String(BACKLOG),
        PUBLISH_MAX_EVENTS_PER_SECOND: "0",
      });
      server = s;
      const stream =
        opener.wire === "http1"
          ? jsonlOverHttp1(s.url, TOKENS.memberA, { paused: true })
          : jsonlOverHttp2(s.url, TOKENS.memberA, { paused: true });
      streams.push(stream);
      expect(await stream.opened()).toBe(200);
      await expect.poll(() => s.bus.subscriberCount).toBe(1);
      // Batches of half the backlog, of distinct resources (nothing coalesces): a reader keeping
      // up never overflows; this one fills the socket's buffers or flow-control window, then the
      // backlog, and the server ends the subscription.
      let n = 0;
      while (s.bus.subscriberCount > 0) {
        await s.bus.publish(
          Array.from({ length: BACKLOG / 2 }, () => ({
            resourceType: ResourceType.PROJECT,
            operation: Operation.UPDATE,
            resourceId: `f0000000-0000-4000-8000-${(n++).toString(16).padStart(12, "0")}`,
            organizationId: ORG_A,
            environmentId: "",
            creatorId: "",
          })),
        );
        // One turn of the event loop: the server writes what it can between two batches.
        await new Promise((resolve) => setImmediate(resolve));
      }
      stream.resume();
      expectEndedWithError(opener, await stream.finished(), Code.ResourceExhausted);
    },
  );
});

describe("credentials that stop being valid", () => {
  it.each(OPENERS)(
    "ends a $name stream whose token is removed from the token file with an error",
    async (opener) => {
      const s = await startServer();
      server = s;
      const stream = await openAndWait(opener, s.url, TOKENS.otherMemberA);
      await expect.poll(() => s.bus.subscriberCount).toBe(1);
      writeFileSync(
        s.tokensFile,
        JSON.stringify({ tokens: TOKEN_ENTRIES.filter((t) => t.token !== TOKENS.otherMemberA) }),
      );
      expectEndedWithError(opener, await stream.finished(), Code.Unauthenticated);
    },
  );

  const JWT_SECRET = "a-test-secret-that-is-at-least-32-characters-long";
  it.each([JSONL_H1, JSONL_H2])(
    "ends a $name stream opened with a JWT with an error when the JWT expires",
    async (opener) => {
      const s = await startServer({ AUTH_JWT_SECRET: JWT_SECRET });
      server = s;
      const jwt = await new SignJWT({ org: ORG_A, role: "member" })
        .setProtectedHeader({ alg: "HS256" })
        .setSubject(USERS.memberA)
        .setExpirationTime(Math.ceil(Date.now() / 1000) + 1)
        .sign(new TextEncoder().encode(JWT_SECRET));
      const stream = await openAndWait(opener, s.url, jwt);
      expectEndedWithError(opener, await stream.finished(), Code.Unauthenticated);
    },
  );
});
