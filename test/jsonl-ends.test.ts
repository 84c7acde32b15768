import { writeFileSync } from "node:fs";
import * as http2 from "node:http2";
import Gitpod from "@gitpod/sdk";
import { afterEach, describe, expect, it } from "vitest";
import { JSONL_MAX_UNTERMINATED_BYTES } from "../src/http/wire/jsonl-wire.js";
import { publish } from "./helpers/clients.js";
import { ORG_A, TOKEN_ENTRIES, TOKENS, uuid } from "./helpers/fixtures.js";
import {
  GoStyleReader,
  PythonStyleReader,
  type SdkEnd,
  type SdkReader,
  sdkStyleWatch,
} from "./helpers/sdk-readers.js";
import { startServer, type TestServer } from "./helpers/server.js";

// CONTRACT §10: every JSONL stream the server ends with an error reaches every official SDK as
// an error: first an unterminated tail no JSON parser accepts, then the cut. Go's reader drops
// the cut, so the tail is all it has; and it gives up silently on a line of 64 KiB, so runs of
// keep-alives stay far below that.

let server: TestServer | undefined;
const closers: (() => void)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0)) c();
  await server?.close();
  server = undefined;
});

const READERS: [string, () => SdkReader][] = [
  ["a Go-SDK-style reader (bufio.Scanner, errors dropped)", () => new GoStyleReader()],
  ["a Python-SDK-style reader (64-byte chunks, then lines)", () => new PythonStyleReader()],
];

function open<R extends SdkReader>(
  s: TestServer,
  reader: R,
  token: string = TOKENS.memberA,
  body = {},
) {
  const w = sdkStyleWatch(s.url, token, reader, body);
  closers.push(w.close);
  return w;
}

/** The TypeScript SDK's loop over a watch: how it ended, as its caller sees it. */
async function sdkLoop(url: string, token: string): Promise<{ ended: Promise<SdkEnd> }> {
  const client = new Gitpod({ bearerToken: token, baseURL: `${url}/api`, maxRetries: 0 });
  const stream = await client.events.watch({});
  closers.push(() => stream.controller.abort());
  const ended = (async (): Promise<SdkEnd> => {
    try {
      for await (const _ of stream) {
        // events are not looked at here
      }
      return { kind: "clean", detail: "loop ended" };
    } catch (err) {
      return { kind: "error", detail: String(err) };
    }
  })();
  return { ended };
}

describe.each(READERS)("JSONL read by %s", (_, makeReader) => {
  it("raises when the server drains (SIGTERM), after the events it sent", async () => {
    const s = await startServer();
    server = s;
    const w = open(s, makeReader());
    expect(await w.status).toBe(200);
    await expect.poll(() => s.bus.subscriberCount).toBe(1);
    const id = uuid();
    await publish(s.url, [
      { resourceType: 3, operation: 2, resourceId: id, organizationId: ORG_A },
    ]);
    await expect.poll(() => w.reader.events.length).toBe(1);
    const closing = s.app.close(60_000);
    const end = await w.ended;
    expect(end.kind, end.detail).toBe("error");
    expect(w.reader.events.map((e) => e.resourceId)).toEqual([id]);
    // The body stays aligned for the Python SDK, tail included.
    expect(w.reader.received % 64).toBe(0);
    await closing;
  });

  it("raises when the stream reaches its maximum lifetime", async () => {
    const s = await startServer({ WATCH_MAX_LIFETIME_MS: "300" });
    server = s;
    const end = await open(s, makeReader()).ended;
    expect(end.kind, end.detail).toBe("error");
  });

  it("raises when the client's deadline (Connect-Timeout-Ms) passes", async () => {
    const s = await startServer();
    server = s;
    // The SDKs send no deadline by default; a caller may add one.
    const viaHeader = await fetch(`${s.url}/api/gitpod.v1.EventService/WatchEvents`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${TOKENS.memberA}`,
        "content-type": "application/jsonl",
        "connect-timeout-ms": "300",
      },
      body: "{}",
    });
    const deadlineReader = makeReader();
    let cut: Error | undefined;
    try {
      for await (const chunk of viaHeader.body as AsyncIterable<Uint8Array>) {
        deadlineReader.feed(Buffer.from(chunk));
      }
    } catch (err) {
      cut = err as Error;
    }
    const end = deadlineReader.end(cut);
    expect(end.kind, end.detail).toBe("error");
  });

  it("raises when its token is revoked", async () => {
    const s = await startServer();
    server = s;
    const w = open(s, makeReader(), TOKENS.otherMemberA);
    expect(await w.status).toBe(200);
    await expect.poll(() => s.bus.subscriberCount).toBe(1);
    writeFileSync(
      s.tokensFile,
      JSON.stringify({ tokens: TOKEN_ENTRIES.filter((t) => t.token !== TOKENS.otherMemberA) }),
    );
    const end = await w.ended;
    expect(end.kind, end.detail).toBe("error");
  });

  it("ends cleanly after the watched environment's DELETE, with nothing after the last event", async () => {
    const s = await startServer();
    server = s;
    const env = uuid();
    await publish(s.url, [
      { resourceType: 1, operation: 1, resourceId: env, organizationId: ORG_A, creatorId: uuid() },
    ]);
    const w = open(s, makeReader(), TOKENS.adminA, { environmentId: env });
    expect(await w.status).toBe(200);
    await expect.poll(() => s.bus.subscriberCount).toBe(1);
    await publish(s.url, [
      { resourceType: 1, operation: 3, resourceId: env, organizationId: ORG_A },
    ]);
    const end = await w.ended;
    expect(end.kind, end.detail).toBe("clean");
    expect(w.reader.events.map((e) => e.operation)).toEqual(["RESOURCE_OPERATION_DELETE"]);
    expect(w.reader.unterminated).toBe(0);
  });
});

describe("idle JSONL streams and Go's 64 KiB line limit", () => {
  it("never lets a run of keep-alives reach 64 KiB: the stream ends with an error the Go reader sees", async () => {
    // 2 ms keep-alives: the run that would take over two hours at 15 s takes about a second.
    const s = await startServer({ JSONL_KEEPALIVE_MS: "2" });
    server = s;
    const go = open(s, new GoStyleReader());
    const python = open(s, new PythonStyleReader());
    const ts = await sdkLoop(s.url, TOKENS.memberA);
    const [goEnd, pythonEnd, tsEnd] = await Promise.all([go.ended, python.ended, ts.ended]);
    expect(goEnd.kind, goEnd.detail).toBe("error");
    expect(goEnd.detail).toMatch(/json\.Unmarshal/);
    expect(pythonEnd.kind, pythonEnd.detail).toBe("error");
    expect(tsEnd.kind, tsEnd.detail).toBe("error");
    // Keep-alives and the tail: one unterminated run, within half of Go's limit.
    expect(go.reader.received).toBeLessThanOrEqual(JSONL_MAX_UNTERMINATED_BYTES);
    expect(go.reader.received).toBeGreaterThan(JSONL_MAX_UNTERMINATED_BYTES - 128);
    expect(JSONL_MAX_UNTERMINATED_BYTES).toBeLessThan(GoStyleReader.MAX_TOKEN_BYTES / 2 + 1);
  });

  it("starts a new run after each event: a stream with events now and then is never ended for idling", async () => {
    const s = await startServer({ JSONL_KEEPALIVE_MS: "5" });
    server = s;
    const go = open(s, new GoStyleReader());
    expect(await go.status).toBe(200);
    // Each event after 80 keep-alives (far below the 511 that end a run); in all, more than a
    // whole run's worth.
    const rounds = 8;
    for (let i = 1; i <= rounds; i++) {
      await expect
        .poll(() => go.reader.unterminated, { interval: 5 })
        .toBeGreaterThanOrEqual(80 * 64);
      await publish(s.url, [
        { resourceType: 3, operation: 2, resourceId: uuid(), organizationId: ORG_A },
      ]);
      await expect.poll(() => go.reader.events.length).toBe(i);
    }
    expect(go.reader.ended).toBeUndefined();
    expect(go.reader.received).toBeGreaterThan(JSONL_MAX_UNTERMINATED_BYTES);
  });
});

describe("the tail reaches the client before the cut", () => {
  it("over HTTP/2: 64 spaces, then RST_STREAM (no END_STREAM)", async () => {
    const s = await startServer();
    server = s;
    const session = http2.connect(s.url);
    closers.push(() => session.destroy());
    session.on("error", () => {});
    const stream = session.request({
      ":method": "POST",
      ":path": "/api/gitpod.v1.EventService/WatchEvents",
      "content-type": "application/jsonl",
      authorization: `Bearer ${TOKENS.memberA}`,
    });
    stream.on("error", () => {});
    const chunks: Buffer[] = [];
    let sawEnd = false;
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("end", () => {
      sawEnd = true;
    });
    const closed = new Promise<number>((resolve) =>
      stream.on("close", () => resolve(stream.rstCode ?? -1)),
    );
    stream.end("{}");
    await new Promise((resolve) => stream.once("response", resolve));
    await expect.poll(() => s.bus.subscriberCount).toBe(1);
    const closing = s.app.close(60_000);
    expect(await closed).toBe(http2.constants.NGHTTP2_INTERNAL_ERROR);
    expect(sawEnd).toBe(false);
    expect(Buffer.concat(chunks).toString("latin1")).toBe(" ".repeat(64));
    await closing;
  });

  it("sends X-Accel-Buffering: no on every kind of streaming response", async () => {
    const s = await startServer();
    server = s;
    for (const contentType of [
      "application/jsonl",
      "application/connect+json",
      "application/grpc-web+proto",
    ]) {
      const abort = new AbortController();
      const res = await fetch(`${s.url}/gitpod.v1.EventService/WatchEvents`, {
        method: "POST",
        headers: { authorization: `Bearer ${TOKENS.memberA}`, "content-type": contentType },
        body:
          contentType === "application/jsonl"
            ? "{}"
            : Buffer.from([0, 0, 0, 0, contentType.includes("json") ? 2 : 0, 0x7b, 0x7d]).subarray(
                0,
                contentType.includes("json") ? 7 : 5,
              ),
        signal: abort.signal,
      });
      expect(res.status, contentType).toBe(200);
      expect(res.headers.get("x-accel-buffering"), contentType).toBe("no");
      abort.abort();
    }
  });
});
