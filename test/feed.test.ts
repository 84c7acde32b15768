import { mkdtempSync, rmSync } from "node:fs";
import * as http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fromBinary } from "@bufbuild/protobuf";
import { Code, type Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WatchResponseSchema } from "../src/gen/eventservice/feed/v1/feed_pb.js";
import { decodeCursor, encodeCursor } from "../src/session/feed-cursor.js";
import { SqliteStore } from "../src/store/sqlite-store.js";
import { Operation, ResourceType } from "../src/watch/model.js";
import { bearer, ev, project, publish, rawGrpcRequest } from "./helpers/clients.js";
import { openFeed, trackFeeds } from "./helpers/feed.js";
import { ORG_A, ORG_B, random, TOKENS, USERS, uuid } from "./helpers/fixtures.js";
import { startServer, type TestServer } from "./helpers/server.js";

// CONTRACT §12: the resumable feed, eventservice.feed.v1.FeedService/Watch.

const FEED_PATH = "/eventservice.feed.v1.FeedService/Watch";

let server: TestServer;
const feeds = trackFeeds();

describe("FeedService.Watch", () => {
  beforeAll(async () => {
    server = await startServer({ FEED_CHECKPOINT_MS: "0" });
  });
  afterAll(() => server.close());
  const grpc = () => createGrpcTransport({ baseUrl: server.url });

  it("starts with a checkpoint at the head, then sends every new event with a cursor", async () => {
    await publish(server.url, [project(), project()]);
    const feed = feeds.open(grpc(), TOKENS.memberA);
    await expect.poll(() => feed.seen.length).toBe(1);
    expect(feed.seen[0]?.kind).toBe("checkpoint");
    const ids = [uuid(), uuid(), uuid()];
    await publish(
      server.url,
      ids.map((id) => project(id)),
    );
    await feed.untilExactly(3);
    expect(feed.events().map((e) => e.id)).toEqual(ids);
    expect(new Set(feed.events().map((e) => e.cursor)).size).toBe(3);
  });

  it("resumes after a cursor: every later event, none twice, then live", async () => {
    const first = feeds.open(grpc(), TOKENS.memberA);
    await expect.poll(() => first.seen.length).toBe(1);
    const ids = Array.from({ length: 10 }, () => uuid());
    await publish(
      server.url,
      ids.map((id) => project(id)),
    );
    await first.untilExactly(10);
    await first.close();
    // Resume after the 4th event; the rest is replayed from the log, then more comes live.
    const cursor = first.events()[3]?.cursor as string;
    const resumed = feeds.open(grpc(), TOKENS.memberA, { after: cursor });
    await resumed.untilExactly(6);
    expect(resumed.seen[0]).toEqual({ kind: "checkpoint", cursor });
    const later = [uuid(), uuid()];
    await publish(
      server.url,
      later.map((id) => project(id)),
    );
    await resumed.untilExactly(8);
    expect(resumed.events().map((e) => e.id)).toEqual([...ids.slice(4), ...later]);
    // The cursors are the same ones the first stream saw.
    expect(
      resumed
        .events()
        .slice(0, 6)
        .map((e) => e.cursor),
    ).toEqual(
      first
        .events()
        .slice(4)
        .map((e) => e.cursor),
    );
  });

  it("resumes from a checkpoint's cursor too", async () => {
    const a = feeds.open(grpc(), TOKENS.memberA);
    await expect.poll(() => a.seen.length).toBe(1);
    const checkpoint = a.seen[0]?.cursor as string;
    await a.close();
    const id = uuid();
    await publish(server.url, [project(id)]);
    const b = feeds.open(grpc(), TOKENS.memberA, { after: checkpoint });
    await b.untilExactly(1);
    expect(b.events()[0]?.id).toBe(id);
  });

  it("replays only what the caller may see, as it was when published", async () => {
    const start = feeds.open(grpc(), TOKENS.memberA);
    await expect.poll(() => start.seen.length).toBe(1);
    const cursor = start.seen[0]?.cursor as string;
    await start.close();
    const mine = uuid();
    const theirs = uuid();
    const visible = uuid();
    await publish(server.url, [
      // An environment of another member, one of the caller's, an admin-only type, another org.
      ev(ResourceType.ENVIRONMENT, Operation.CREATE, theirs, { creatorId: USERS.otherMemberA }),
      ev(ResourceType.ENVIRONMENT, Operation.CREATE, mine, { creatorId: USERS.memberA }),
      ev(ResourceType.SECRET, Operation.CREATE, uuid()),
      project(uuid(), ORG_B),
      project(visible),
    ]);
    const replay = feeds.open(grpc(), TOKENS.memberA, { after: cursor });
    await replay.untilExactly(2);
    expect(replay.events().map((e) => e.id)).toEqual([mine, visible]);
    const filtered = feeds.open(grpc(), TOKENS.memberA, {
      after: cursor,
      types: [ResourceType.PROJECT],
    });
    await filtered.untilExactly(1);
    expect(filtered.events().map((e) => e.id)).toEqual([visible]);
  });

  it("replays an environment's events and ends cleanly after its DELETE", async () => {
    const env = uuid();
    const task = uuid();
    await publish(server.url, [
      ev(ResourceType.ENVIRONMENT, Operation.CREATE, env, { creatorId: USERS.adminA }),
    ]);
    const start = feeds.open(grpc(), TOKENS.adminA, { environmentId: env });
    await expect.poll(() => start.seen.length).toBe(1);
    const cursor = start.seen[0]?.cursor as string;
    await start.close();
    await publish(server.url, [
      {
        resourceType: ResourceType.TASK,
        operation: Operation.CREATE,
        resourceId: task,
        organizationId: ORG_A,
        environmentId: env,
      },
      ev(ResourceType.ENVIRONMENT, Operation.UPDATE_STATUS, env),
      project(),
    ]);
    const feed = openFeed(grpc(), TOKENS.adminA, { after: cursor, environmentId: env });
    await feed.untilExactly(2);
    expect(feed.events().map((e) => e.id)).toEqual([task, env]);
    await publish(server.url, [ev(ResourceType.ENVIRONMENT, Operation.DELETE, env)]);
    await feed.done;
    expect(feed.failure).toBeUndefined();
    expect(feed.ended).toBe(true);
    expect(feed.events().at(-1)?.op).toBe(Operation.DELETE);
  });

  it.each([
    ["not a cursor", "nope", Code.InvalidArgument, "after: not a cursor"],
    [
      "a cursor of another log",
      encodeCursor({ logId: "00000000-0000-4000-8000-000000000000", sequence: 1 }),
      Code.OutOfRange,
      "another event log",
    ],
  ])("refuses %s", async (_, after, code, message) => {
    const feed = openFeed(grpc(), TOKENS.memberA, { after });
    await feed.done;
    expect(feed.failure?.code).toBe(code);
    expect(feed.failure?.rawMessage).toContain(message);
  });

  it("refuses a cursor older than the log's retention with out_of_range, saying to refetch", async () => {
    const start = feeds.open(grpc(), TOKENS.memberA);
    await expect.poll(() => start.seen.length).toBe(1);
    await publish(server.url, [project()]);
    await start.untilExactly(1);
    await start.close();
    const old = start.seen[0]?.cursor as string;
    await publish(server.url, [project()]);
    // Retention: everything accepted so far is gone.
    await server.store.prune({ eventsBeforeMs: Date.now() + 1000 });
    const feed = openFeed(grpc(), TOKENS.memberA, { after: old });
    await feed.done;
    expect(feed.failure?.code).toBe(Code.OutOfRange);
    expect(feed.failure?.rawMessage).toMatch(/retention.*refetch/);
  });

  it("refuses a cursor ahead of the log's head (a restored backup) with out_of_range", async () => {
    const start = feeds.open(grpc(), TOKENS.memberA);
    await expect.poll(() => start.seen.length).toBe(1);
    await start.close();
    const head = decodeCursor(start.seen[0]?.cursor as string);
    const ahead = encodeCursor({ logId: head.logId, sequence: head.sequence + 1000 });
    const feed = openFeed(grpc(), TOKENS.memberA, { after: ahead });
    await feed.done;
    expect(feed.failure?.code).toBe(Code.OutOfRange);
    expect(feed.failure?.rawMessage).toMatch(/ahead of the event log.*refetch/);
    // The head itself is fine.
    const atHead = feeds.open(grpc(), TOKENS.memberA, { after: start.seen[0]?.cursor as string });
    await expect.poll(() => atHead.seen.length).toBe(1);
    expect(atHead.failure).toBeUndefined();
  });

  it("applies WatchEvents' rules to who may watch", async () => {
    const feed = openFeed(grpc(), TOKENS.publisher);
    await feed.done;
    expect(feed.failure?.code).toBe(Code.PermissionDenied);
    const anonymous = openFeed(grpc(), "nope");
    await anonymous.done;
    expect(anonymous.failure?.code).toBe(Code.Unauthenticated);
  });
});

describe("FeedService.Watch on every protocol", () => {
  beforeAll(async () => {
    server = await startServer({ FEED_CHECKPOINT_MS: "0" });
  });
  afterAll(() => server.close());

  const transports: [string, () => Transport][] = [
    ["gRPC", () => createGrpcTransport({ baseUrl: server.url })],
    [
      "Connect JSON over HTTP/1.1",
      () => createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
    ],
    [
      "Connect binary over HTTP/2 at /api",
      () =>
        createConnectTransport({
          baseUrl: `${server.url}/api`,
          httpVersion: "2",
          useBinaryFormat: true,
        }),
    ],
    [
      "gRPC-Web over HTTP/1.1",
      () => createGrpcWebTransport({ baseUrl: server.url, httpVersion: "1.1" }),
    ],
  ];
  it.each(transports)("%s: checkpoint, then events", async (_, transport) => {
    const feed = feeds.open(transport(), TOKENS.memberA);
    await expect.poll(() => feed.seen.length).toBe(1);
    const id = uuid();
    await publish(server.url, [project(id)]);
    await feed.untilExactly(1);
    expect(feed.events()[0]?.id).toBe(id);
  });

  it("JSONL (curl -N friendly): one JSON message per line, aligned like WatchEvents", async () => {
    const abort = new AbortController();
    const res = await fetch(`${server.url}/api${FEED_PATH}`, {
      method: "POST",
      headers: { ...bearer(TOKENS.memberA), "content-type": "application/jsonl" },
      body: "{}",
      signal: abort.signal,
    });
    expect(res.headers.get("content-type")).toBe("application/jsonl");
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    let text = "";
    const lines = async (n: number) => {
      while (text.split("\n").length - 1 < n) {
        const r = await reader.read();
        if (r.done) throw new Error("ended");
        text += Buffer.from(r.value).toString("utf8");
      }
      return text
        .split("\n")
        .slice(0, n)
        .map(
          (l) =>
            JSON.parse(l) as {
              checkpoint?: { cursor: string };
              event?: { resourceId: string; cursor: string; publishedAt: string };
            },
        );
    };
    const [checkpoint] = await lines(1);
    expect(checkpoint?.checkpoint?.cursor).toMatch(/^[A-Za-z0-9_-]+$/);
    const id = uuid();
    await publish(server.url, [project(id)]);
    const [, event] = await lines(2);
    expect(event?.event?.resourceId).toBe(id);
    expect(Date.parse(event?.event?.publishedAt ?? "")).toBeGreaterThan(Date.now() - 60_000);
    expect(Buffer.byteLength(text.slice(0, text.lastIndexOf("\n") + 1)) % 64).toBe(0);
    abort.abort();
  });
});

describe("checkpoints while idle", () => {
  it("sends the head as a checkpoint every FEED_CHECKPOINT_MS without an event", async () => {
    const s = await startServer({ FEED_CHECKPOINT_MS: "40" });
    try {
      const feed = feeds.open(createGrpcTransport({ baseUrl: s.url }), TOKENS.memberA);
      await expect.poll(() => feed.seen.length).toBeGreaterThanOrEqual(1);
      const before = feed.seen.length;
      // Events of another organization move the head without concerning this stream.
      await publish(s.url, [project(uuid(), ORG_B)]);
      await expect
        .poll(() => feed.seen.filter((x) => x.kind === "checkpoint").length, { timeout: 5000 })
        .toBeGreaterThanOrEqual(before + 2);
      expect(feed.events()).toEqual([]);
      const last = feed.seen.at(-1)?.cursor as string;
      expect(last).not.toBe(feed.seen[0]?.cursor);
      // Resuming from the newest checkpoint skips the other organization's event: nothing comes.
      const id = uuid();
      await publish(s.url, [project(id)]);
      const resumed = feeds.open(createGrpcTransport({ baseUrl: s.url }), TOKENS.memberA, {
        after: last,
      });
      await resumed.untilExactly(1);
      expect(resumed.events().map((e) => e.id)).toEqual([id]);
    } finally {
      await s.close();
    }
  });
});

describe("the seam between replay and live", () => {
  it("loses and repeats nothing while publishes race with the switch (many seeds)", async () => {
    const s = await startServer({
      FEED_CHECKPOINT_MS: "0",
      WATCH_MAX_BACKLOG: "64",
      PUBLISH_MAX_EVENTS_PER_SECOND: "0",
    });
    try {
      const transport = createGrpcTransport({ baseUrl: s.url });
      // Every event of the run, in sequence order (members see PROJECT events of ORG_A).
      const all: { id: string; seq: number }[] = [];
      const start = feeds.open(transport, TOKENS.adminA);
      await expect.poll(() => start.seen.length).toBe(1);
      const cursors: string[] = [start.seen[0]?.cursor as string];
      for (let seed = 1; seed <= 12; seed++) {
        const rand = random(seed * 7919);
        // Two publishers racing, batches of 1-40.
        const publisher = async (rounds: number) => {
          for (let r = 0; r < rounds; r++) {
            const batch = Array.from({ length: 1 + rand(40) }, () =>
              project(uuid(), rand(5) === 0 ? ORG_B : ORG_A),
            );
            const res = await publish(s.url, batch);
            batch.forEach((e, i) => {
              if (e.organizationId === ORG_A)
                all.push({ id: e.resourceId as string, seq: Number(res.firstSequence) + i });
            });
          }
        };
        // A feed resuming from a random earlier cursor, opened while publishing goes on.
        const from = cursors[rand(cursors.length)] as string;
        const publishing = Promise.all([publisher(3 + rand(4)), publisher(3 + rand(4))]);
        const feed = feeds.open(transport, TOKENS.adminA, { after: from });
        await publishing;
        all.sort((a, b) => a.seq - b.seq);
        // What it must see: every ORG_A event after its cursor's position.
        await start.untilExactly(all.length);
        const position = positionOf(from);
        const expected = all.filter((e) => e.seq > position).map((e) => e.id);
        await feed.untilExactly(expected.length);
        expect(
          feed.events().map((e) => e.id),
          `seed ${seed}`,
        ).toEqual(expected);
        cursors.push(feed.events().at(rand(feed.events().length))?.cursor ?? from);
        await feed.close();
      }
      expect(start.events().map((e) => e.id)).toEqual(all.map((e) => e.id));
    } finally {
      await s.close();
    }
  });
});

/** The sequence a cursor names (cursors are opaque to clients; the test knows their form). */
function positionOf(cursor: string): number {
  return decodeCursor(cursor).sequence;
}

describe("a slow reader", () => {
  it("never coalesces nor ends: read nothing while 20,000 resources change, then every event in order", async () => {
    const s = await startServer({
      FEED_CHECKPOINT_MS: "0",
      WATCH_MAX_BACKLOG: "256",
      PUBLISH_MAX_EVENTS_PER_SECOND: "0",
    });
    const session = http2.connect(s.url);
    session.on("error", () => {});
    try {
      const stream = rawGrpcRequest(session, FEED_PATH, TOKENS.memberA);
      stream.end(Buffer.from([0, 0, 0, 0, 0]));
      stream.pause();
      await expect.poll(() => s.bus.subscriberCount).toBe(1);
      const ids: string[] = [];
      for (let b = 0; b < 20; b++) {
        const batch = Array.from({ length: 1000 }, () => project());
        ids.push(...batch.map((e) => e.resourceId as string));
        await publish(s.url, batch);
      }
      // Still open, with the server holding at most its backlog for it.
      expect(stream.closed).toBe(false);
      const received: string[] = [];
      let buf = Buffer.alloc(0);
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        buf = Buffer.concat([buf, chunk]);
        while (buf.length >= 5 && buf.length >= 5 + buf.readUInt32BE(1)) {
          const len = buf.readUInt32BE(1);
          const r = fromBinary(WatchResponseSchema, buf.subarray(5, 5 + len));
          if (r.kind.case === "event") received.push(r.kind.value.resourceId);
          buf = buf.subarray(5 + len);
        }
        if (received.length === ids.length) break;
      }
      expect(received).toEqual(ids);
    } finally {
      session.destroy();
      await s.close();
    }
  });
});

describe("across restarts and shutdown", () => {
  it("ends feeds with unavailable on shutdown; they resume from their last cursor after a restart", async () => {
    const dir = mkdtempSync(join(tmpdir(), "feed-restart-"));
    const path = join(dir, "events.db");
    try {
      const a = await startServer(
        { FEED_CHECKPOINT_MS: "0" },
        { store: await SqliteStore.open({ path }) },
      );
      const feed = openFeed(createGrpcTransport({ baseUrl: a.url }), TOKENS.memberA);
      await expect.poll(() => feed.seen.length).toBe(1);
      const before = [uuid(), uuid()];
      await publish(
        a.url,
        before.map((id) => project(id)),
      );
      await feed.untilExactly(2);
      const missed = uuid();
      // Published after the reader's last event: it must not be lost across the restart.
      const lastCursor = feed.events().at(-1)?.cursor as string;
      await publish(a.url, [project(missed)]);
      await feed.untilExactly(3);
      await a.close();
      await feed.done;
      expect(feed.failure?.code).toBe(Code.Unavailable);

      const b = await startServer(
        { FEED_CHECKPOINT_MS: "0" },
        { store: await SqliteStore.open({ path }) },
      );
      try {
        const later = uuid();
        const resumed = feeds.open(createGrpcTransport({ baseUrl: b.url }), TOKENS.memberA, {
          after: lastCursor,
        });
        await resumed.untilExactly(1);
        await publish(b.url, [project(later)]);
        await resumed.untilExactly(2);
        expect(resumed.events().map((e) => e.id)).toEqual([missed, later]);
      } finally {
        await b.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
