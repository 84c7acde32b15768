import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { FeedService, type WatchResponse } from "../src/gen/eventservice/feed/v1/feed_pb.js";
import { Operation, ResourceType } from "../src/watch/model.js";
import { bearer, type EventInit, publish } from "./helpers/clients.js";
import { ORG_A, ORG_B, TOKEN_ENTRIES, TOKENS, uuid } from "./helpers/fixtures.js";
import { scratchDatabase } from "./helpers/postgres.js";
import { startServer } from "./helpers/server.js";

// CONTRACT §12: cursors are bound to the event log and valid on every replica of it. Two real
// server processes share one PostgreSQL database; a feed client hands its cursor from one to
// the other while a publisher keeps publishing on both.

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "events-feed-replicas-"));
const tokensFile = join(dir, "tokens.json");
writeFileSync(tokensFile, JSON.stringify({ tokens: TOKEN_ENTRIES }));

let db: Awaited<ReturnType<typeof scratchDatabase>>;
const processes: ChildProcess[] = [];

interface Replica {
  readonly name: string;
  readonly url: string;
}

/**
 * Starts `node dist/main.js` on the shared database (as test/replicas.test.ts does); resolves
 * with its URL once it listens. A fresh replica has dispatched the whole log when it starts, so
 * a feed opened on it without a cursor starts after everything earlier tests published.
 */
async function startReplica(name: string, env: Record<string, string> = {}): Promise<Replica> {
  const child = spawn(process.execPath, ["dist/main.js"], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? "",
      PORT: "0",
      HOST: "127.0.0.1",
      AUTH_TOKENS_FILE: tokensFile,
      DATABASE_URL: db.url,
      SHUTDOWN_TIMEOUT_MS: "2000",
      PUBLISH_MAX_EVENTS_PER_SECOND: "0",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  processes.push(child);
  let output = "";
  child.stderr?.on("data", (d: Buffer) => {
    output += d.toString();
  });
  return new Promise((resolve, reject) => {
    child.stdout?.on("data", (d: Buffer) => {
      output += d.toString();
      const m = /"port":(\d+).*"msg":"listening"/.exec(output);
      if (m) resolve({ name, url: `http://127.0.0.1:${m[1]}` });
    });
    child.once("exit", (code) => reject(new Error(`replica ${name} exited ${code}: ${output}`)));
  });
}

beforeAll(async () => {
  db = await scratchDatabase();
});
afterAll(async () => {
  const running = processes.filter((p) => p.exitCode === null && p.signalCode === null);
  const exited = running.map((p) => once(p, "exit"));
  for (const p of running) p.kill("SIGKILL");
  await Promise.all(exited);
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

/** A PROJECT update (seen by every member of `org`). */
function project(id = uuid(), org = ORG_A): EventInit {
  return {
    resourceType: ResourceType.PROJECT,
    operation: Operation.UPDATE,
    resourceId: id,
    organizationId: org,
  };
}

type Seen = { kind: "checkpoint"; cursor: string } | { kind: "event"; id: string; cursor: string };
type SeenEvent = Extract<Seen, { kind: "event" }>;

function seenOf(r: WatchResponse): Seen {
  if (r.kind.case === "event") {
    return { kind: "event", id: r.kind.value.resourceId, cursor: r.kind.value.cursor };
  }
  if (r.kind.case === "checkpoint") return { kind: "checkpoint", cursor: r.kind.value.cursor };
  throw new Error("empty WatchResponse");
}

/** A feed (organization scope) through connect-node, with what it received so far. */
function openFeed(transport: Transport, token: string, after = "") {
  const abort = new AbortController();
  const client = createClient(FeedService, transport);
  const seen: Seen[] = [];
  let failure: ConnectError | undefined;
  const done = (async () => {
    try {
      for await (const r of client.watch(
        { after },
        { headers: bearer(token), signal: abort.signal },
      )) {
        seen.push(seenOf(r));
      }
    } catch (err) {
      failure = ConnectError.from(err);
    }
  })();
  const events = () => seen.filter((s): s is SeenEvent => s.kind === "event");
  /** Fails the poll at once with the stream's error rather than waiting for its timeout. */
  const check = () => {
    if (failure !== undefined && !abort.signal.aborted) throw failure;
  };
  return {
    seen,
    events,
    get failure() {
      return failure;
    },
    done,
    /** Resolves once the first message (always a checkpoint) has arrived. */
    async started() {
      await expect
        .poll(
          () => {
            check();
            return seen.length;
          },
          { timeout: 20_000 },
        )
        .toBeGreaterThan(0);
    },
    /** Resolves once at least `n` events have arrived. */
    async untilEvents(n: number) {
      await expect
        .poll(
          () => {
            check();
            return events().length;
          },
          { timeout: 20_000 },
        )
        .toBeGreaterThanOrEqual(n);
    },
    /** Resolves once the event of resource `id` has arrived. */
    async until(id: string) {
      await expect
        .poll(
          () => {
            check();
            return events().some((e) => e.id === id);
          },
          { timeout: 20_000 },
        )
        .toBe(true);
    },
    /** Disconnects, and resolves once the client has let go of the stream. */
    async close() {
      abort.abort();
      await done;
    },
  };
}
type Feed = ReturnType<typeof openFeed>;

const open: Feed[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((f) => f.close()));
});
function track(f: Feed): Feed {
  open.push(f);
  return f;
}

/** A deterministic pseudo-random source (Lehmer), so that a failure can be replayed. */
function random(seed: number): (n: number) => number {
  let state = seed;
  return (n) => {
    state = (state * 48271) % 2147483647;
    return state % n;
  };
}

describe("the resumable feed across replicas on one PostgreSQL", () => {
  it("resumes a cursor from replica A on replica B (A → B → A → B) while publishing goes on: every event of the organization once, in sequence order", async () => {
    const a = await startReplica("A", { FEED_CHECKPOINT_MS: "0" });
    const b = await startReplica("B", { FEED_CHECKPOINT_MS: "0" });
    // A different wire on each replica: the cursor is the only thing handed over.
    const transportFor = (r: Replica): Transport =>
      r === a
        ? createGrpcTransport({ baseUrl: r.url })
        : createConnectTransport({ baseUrl: r.url, httpVersion: "1.1" });
    const seed = 20_260_214;
    const rand = random(seed);
    const BATCHES = 60;
    // The publisher holds before each gate until hand-over j has disconnected, then publishes
    // that batch before the client resumes: events are published while it is away, and the
    // batches after it race with the replay on the other replica.
    const GATES = [12, 27, 42];
    // Hand-over j happens once the client has received every ORG_A event of the batches
    // before GATES[j] - 2 (the publisher tells how many that is once it has published them).
    const received = GATES.map(() => Promise.withResolvers<number>());
    const disconnected = GATES.map(() => Promise.withResolvers<void>());
    const publishedWhileAway = GATES.map(() => Promise.withResolvers<void>());
    const all = [...received, ...disconnected, ...publishedWhileAway];
    for (const d of all) d.promise.catch(() => {});

    /** Every ORG_A event published, with the sequence its Publish response gave it. */
    const published: { id: string; seq: number }[] = [];
    const publishOne = async (target: Replica, batch: EventInit[]) => {
      const res = await publish(target.url, batch);
      const first = Number(res.firstSequence);
      expect(Number(res.lastSequence) - first + 1).toBe(batch.length);
      batch.forEach((e, i) => {
        if (e.organizationId === ORG_A)
          published.push({ id: e.resourceId as string, seq: first + i });
      });
    };
    const publisher = async () => {
      try {
        for (let i = 0; i < BATCHES; i++) {
          const gate = GATES.indexOf(i);
          if (gate >= 0) await disconnected[gate]?.promise;
          // 1-20 events, the first of ORG_A, about one in five of the others of ORG_B (which
          // an ORG_A admin must not see), alternating between the replicas.
          const batch = Array.from({ length: 1 + rand(20) }, (_, k) =>
            project(uuid(), k > 0 && rand(5) === 0 ? ORG_B : ORG_A),
          );
          await publishOne(i % 2 === 0 ? a : b, batch);
          if (gate >= 0) publishedWhileAway[gate]?.resolve();
          const handOver = GATES.indexOf(i + 3);
          if (handOver >= 0) received[handOver]?.resolve(published.length);
        }
      } catch (err) {
        for (const d of all) d.reject(err);
        throw err;
      }
    };

    const route = [a, b, a, b];
    /** What the client processed, across every stream, in order. */
    const processed: SeenEvent[] = [];
    let after = "";
    let dropped: SeenEvent[] = [];
    let publishing: Promise<void> | undefined;
    for (const [s, replica] of route.entries()) {
      const where = `stream ${s} on ${replica.name} (seed ${seed})`;
      const feed = track(openFeed(transportFor(replica), TOKENS.adminA, after));
      await feed.started();
      if (after === "") {
        expect(feed.seen[0]?.kind, where).toBe("checkpoint");
        // Everything published from now on comes after the first checkpoint.
        publishing = publisher();
        // Awaited below; handled here too, so that a failure of this test that leaves it running
        // does not also surface as an unhandled rejection when the replicas are stopped.
        publishing.catch(() => {});
      } else {
        expect(feed.seen[0], `${where}: first message`).toEqual({
          kind: "checkpoint",
          cursor: after,
        });
      }
      if (dropped.length > 0) {
        await feed.untilEvents(dropped.length);
        expect(
          feed.events().slice(0, dropped.length),
          `${where}: redelivered after the cursor`,
        ).toEqual(dropped);
      }
      const handOver = received[s];
      if (handOver === undefined) {
        // The last stream: once publishing is over, a marker published after everything else
        // tells when every event before it has arrived (events come in sequence order).
        await publishing;
        const marker = uuid();
        await publishOne(a, [project(marker)]);
        await feed.until(marker);
        processed.push(...feed.events());
        break;
      }
      const wanted = (await handOver.promise) - processed.length;
      await feed.untilEvents(wanted);
      // Disconnect mid-stream. The client processed exactly `wanted` events; whatever else it
      // received (or the server still had in flight) it drops: it must come again after the
      // cursor of the last event it processed.
      await feed.close();
      const got = feed.events();
      const mine = got.slice(0, wanted);
      processed.push(...mine);
      after = (mine.at(-1) as SeenEvent).cursor;
      disconnected[s]?.resolve();
      await publishedWhileAway[s]?.promise;
      // What this stream received past the cursor must come first on the next one, with the
      // same cursors.
      dropped = got.slice(wanted);
    }
    await publishing;

    published.sort((x, y) => x.seq - y.seq);
    // Exactly ORG_A's events (ORG_B's share the same sequences and must not show), in the order
    // of the sequences their Publish responses gave: none lost, none twice, none extra.
    expect(processed.map((e) => e.id)).toEqual(published.map((p) => p.id));
    expect(new Set(processed.map((e) => e.cursor)).size).toBe(processed.length);
  }, 90_000);

  it("resumes on replica B from checkpoints of replica A: the first one, and one sent while idle", async () => {
    const a = await startReplica("A", { FEED_CHECKPOINT_MS: "50" });
    const b = await startReplica("B", { FEED_CHECKPOINT_MS: "50" });
    const onA = track(openFeed(createGrpcTransport({ baseUrl: a.url }), TOKENS.memberA));
    await onA.started();
    const first = onA.seen[0] as Seen;
    expect(first.kind).toBe("checkpoint");

    const x = uuid();
    await publish(b.url, [project(x), project(uuid(), ORG_B)]);
    await onA.until(x);
    // Idle now: A sends a checkpoint that covers X.
    const afterX = () =>
      onA.seen.slice(onA.seen.findIndex((m) => m.kind === "event" && m.id === x));
    await expect
      .poll(() => afterX().some((m) => m.kind === "checkpoint"), { timeout: 20_000 })
      .toBe(true);
    const idle = afterX().find((m) => m.kind === "checkpoint") as Seen;
    await onA.close();

    const y = uuid();
    const z = uuid();
    await publish(a.url, [project(uuid(), ORG_B), project(y)]);
    await publish(b.url, [project(z), project(uuid(), ORG_B)]);
    const marker = uuid();
    await publish(a.url, [project(marker)]);

    const fromIdle = track(
      openFeed(
        createConnectTransport({ baseUrl: b.url, httpVersion: "1.1" }),
        TOKENS.memberA,
        idle.cursor,
      ),
    );
    await fromIdle.until(marker);
    expect(fromIdle.seen[0]).toEqual({ kind: "checkpoint", cursor: idle.cursor });
    expect(fromIdle.events().map((e) => e.id)).toEqual([y, z, marker]);

    const fromFirst = track(
      openFeed(
        createConnectTransport({ baseUrl: b.url, httpVersion: "1.1" }),
        TOKENS.memberA,
        first.cursor,
      ),
    );
    await fromFirst.until(marker);
    expect(fromFirst.seen[0]).toEqual({ kind: "checkpoint", cursor: first.cursor });
    expect(fromFirst.events().map((e) => e.id)).toEqual([x, y, z, marker]);
  });

  it("refuses a cursor of this database's log on a server with another database with out_of_range, and the other way round", async () => {
    const a = await startReplica("A", { FEED_CHECKPOINT_MS: "0" });
    const other = await startServer({ FEED_CHECKPOINT_MS: "0" });
    try {
      const id = uuid();
      const onA = track(openFeed(createGrpcTransport({ baseUrl: a.url }), TOKENS.memberA));
      await onA.started();
      await publish(a.url, [project(id)]);
      await onA.until(id);
      const cursorOfA = (onA.events()[0] as SeenEvent).cursor;

      const onOther = openFeed(
        createGrpcTransport({ baseUrl: other.url }),
        TOKENS.memberA,
        cursorOfA,
      );
      await onOther.done;
      expect(onOther.failure?.code).toBe(Code.OutOfRange);
      expect(onOther.failure?.rawMessage).toMatch(/another event log.*refetch/);

      const local = track(openFeed(createGrpcTransport({ baseUrl: other.url }), TOKENS.memberA));
      await local.started();
      const cursorOfOther = (local.seen[0] as Seen).cursor;
      const back = openFeed(createGrpcTransport({ baseUrl: a.url }), TOKENS.memberA, cursorOfOther);
      await back.done;
      expect(back.failure?.code).toBe(Code.OutOfRange);
      expect(back.failure?.rawMessage).toMatch(/another event log.*refetch/);
    } finally {
      await Promise.all(open.splice(0).map((f) => f.close()));
      await other.close();
    }
  });
});
