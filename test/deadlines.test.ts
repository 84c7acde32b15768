import { create, toBinary } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { PublishRequestSchema } from "../src/gen/eventservice/ingest/v1/ingest_pb.js";
import { bearer, project, publish } from "./helpers/clients.js";
import { TOKENS, uuid } from "./helpers/fixtures.js";
import { startServer, type TestServer } from "./helpers/server.js";
import {
  connectOverHttp1,
  envelope,
  grpcOverHttp2,
  type ProbedStream,
  PUBLISH_PATH,
  summary,
} from "./helpers/streams.js";

// Client deadlines (CONTRACT §7): every value the headers allow is a valid deadline. Connect's
// Connect-Timeout-Ms has up to 10 digits (up to about 115 days), gRPC's grpc-timeout up to 8
// digits and a unit (up to 99,999,999 hours). Node's timers hold at most 2^31-1 ms (about 24.8
// days): a longer delay given to setTimeout fires after 1 ms instead, with a
// TimeoutOverflowWarning. So a long deadline must never end a stream early.
//
// The requests are raw: a client library would arm a timer of its own for the same deadline.

const warnings: string[] = [];
const onWarning = (w: Error) => {
  if (w.name === "TimeoutOverflowWarning") warnings.push(w.message);
};
process.on("warning", onWarning);

let server: TestServer;
beforeAll(async () => {
  server = await startServer();
});
afterAll(async () => {
  process.off("warning", onWarning);
  await server?.close();
});

const opened: ProbedStream[] = [];
afterEach(async () => {
  for (const s of opened.splice(0)) s.close();
  await expect.poll(() => server.bus.subscriberCount).toBe(0);
});

/**
 * Asserts that `stream` opens, receives an event published after it opened, and is still open
 * afterwards; then hangs up from the client side.
 */
async function expectOpenAndDelivering(stream: ProbedStream): Promise<void> {
  const mark = warnings.length;
  opened.push(stream);
  expect(await stream.opened(), summary(stream.end)).toBe(200);
  await expect.poll(() => stream.end !== undefined || server.bus.subscriberCount === 1).toBe(true);
  const marker = uuid();
  await publish(server.url, [project(marker)]);
  expect(await stream.received(marker), summary(stream.end)).toBe(true);
  expect(summary(stream.end)).toBe("still open");
  expect(warnings.slice(mark), "TimeoutOverflowWarning").toEqual([]);
}

describe("long deadlines on streams", () => {
  it.each(["2147483647", "2147483648", "9999999999"])(
    "keeps a Connect stream with Connect-Timeout-Ms: %s open and delivering",
    async (value) => {
      await expectOpenAndDelivering(
        connectOverHttp1(server.url, TOKENS.memberA, { headers: { "connect-timeout-ms": value } }),
      );
    },
  );

  // 2147483S is just under setTimeout's limit (2^31-1 ms), 2147484S and 35792M just over.
  it.each(["99999999m", "2147483S", "2147484S", "35792M", "99999999S", "99999999H"])(
    "keeps a gRPC stream with grpc-timeout: %s open and delivering",
    async (value) => {
      await expectOpenAndDelivering(
        grpcOverHttp2(server.url, TOKENS.memberA, { headers: { "grpc-timeout": value } }),
      );
    },
  );
});

describe("deadlines the headers do not allow", () => {
  // TimeoutValue is "at most 8 digits" (gRPC over HTTP/2); a longer one is a protocol error.
  it("refuses a gRPC stream with a 10-digit grpc-timeout (2147483647m) with invalid_argument", async () => {
    const stream = grpcOverHttp2(server.url, TOKENS.memberA, {
      headers: { "grpc-timeout": "2147483647m" },
    });
    opened.push(stream);
    const end = await stream.finished();
    expect(end.kind === "error" && end.code, summary(end)).toBe(Code.InvalidArgument);
  });
});

describe("short deadlines on streams", () => {
  it("ends a Connect stream with deadline_exceeded when Connect-Timeout-Ms: 200 passes", async () => {
    const stream = connectOverHttp1(server.url, TOKENS.memberA, {
      headers: { "connect-timeout-ms": "200" },
    });
    opened.push(stream);
    const end = await stream.finished();
    expect(end.kind === "error" && end.code, summary(end)).toBe(Code.DeadlineExceeded);
  });

  it("ends a gRPC stream with deadline_exceeded when grpc-timeout: 200m passes", async () => {
    const stream = grpcOverHttp2(server.url, TOKENS.memberA, {
      headers: { "grpc-timeout": "200m" },
    });
    opened.push(stream);
    const end = await stream.finished();
    expect(end.kind === "error" && end.code, summary(end)).toBe(Code.DeadlineExceeded);
  });
});

describe("long deadlines on unary calls", () => {
  // A full batch takes the server a few milliseconds: longer than a deadline timer that
  // overflowed (and fires after 1 ms) takes to fire.
  const batch = () => Array.from({ length: 1000 }, () => project(uuid()));

  it.each(["2147483648", "9999999999"])(
    "publishes with Connect unary JSON and Connect-Timeout-Ms: %s",
    async (value) => {
      const mark = warnings.length;
      const res = await fetch(`${server.url}${PUBLISH_PATH}`, {
        method: "POST",
        headers: {
          ...bearer(TOKENS.publisher),
          "content-type": "application/json",
          "connect-protocol-version": "1",
          "connect-timeout-ms": value,
        },
        body: JSON.stringify({ events: batch() }),
      });
      const body = await res.text();
      expect(res.status, body).toBe(200);
      expect(JSON.parse(body)).toHaveProperty("firstSequence");
      // Served in time only because the call is quicker than an overflowed timer's 1 ms, maybe.
      expect(warnings.slice(mark), "TimeoutOverflowWarning").toEqual([]);
    },
  );

  it.each(["2147484S", "99999999H"])("publishes with gRPC and grpc-timeout: %s", async (value) => {
    const mark = warnings.length;
    const request = create(PublishRequestSchema, { events: batch() });
    const call = grpcOverHttp2(server.url, TOKENS.publisher, {
      path: PUBLISH_PATH,
      headers: { "grpc-timeout": value },
      body: envelope(0, toBinary(PublishRequestSchema, request)),
    });
    expect(summary(await call.finished())).toBe("clean end");
    expect(warnings.slice(mark), "TimeoutOverflowWarning").toEqual([]);
  });
});

describe("the timers behind deadlines", () => {
  // Runs last: every deadline above has been armed by then.
  it("emits no TimeoutOverflowWarning for any deadline the headers allow", () => {
    expect(warnings).toEqual([]);
  });
});
