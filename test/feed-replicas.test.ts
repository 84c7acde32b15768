import { Code, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EventInit, project, publish } from "./helpers/clients.js";
import { openFeed, type Seen, type SeenFeedEvent, trackFeeds } from "./helpers/feed.js";
import { ORG_A, ORG_B, random, TOKENS, uuid } from "./helpers/fixtures.js";
import { createReplicas, type Replica, type Replicas } from "./helpers/replicas.js";
import { startServer } from "./helpers/server.js";

// CONTRACT §12: cursors are bound to the event log and valid on every replica of it. Two real
// server processes share one PostgreSQL database; a feed client hands its cursor from one to
// the other while a publisher keeps publishing on both.

// A fresh replica has dispatched the whole log when it starts, so a feed opened on it without a
// cursor starts after everything earlier tests published.
let replicas: Replicas;
beforeAll(async () => {
  replicas = await createReplicas();
});
afterAll(() => replicas?.stopAll());

const feeds = trackFeeds({ timeoutMs: 20_000 });

describe("the resumable feed across replicas on one PostgreSQL", () => {
  it("resumes a cursor from replica A on replica B (A → B → A → B) while publishing goes on: every event of the organization once, in sequence order", async () => {
    const a = await replicas.start({ name: "A", env: { FEED_CHECKPOINT_MS: "0" } });
    const b = await replicas.start({ name: "B", env: { FEED_CHECKPOINT_MS: "0" } });
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
    const processed: SeenFeedEvent[] = [];
    let after = "";
    let dropped: SeenFeedEvent[] = [];
    let publishing: Promise<void> | undefined;
    for (const [s, replica] of route.entries()) {
      const where = `stream ${s} on ${replica.name} (seed ${seed})`;
      const feed = feeds.open(transportFor(replica), TOKENS.adminA, { after });
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
      after = (mine.at(-1) as SeenFeedEvent).cursor;
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
    const a = await replicas.start({ name: "A", env: { FEED_CHECKPOINT_MS: "50" } });
    const b = await replicas.start({ name: "B", env: { FEED_CHECKPOINT_MS: "50" } });
    const onA = feeds.open(createGrpcTransport({ baseUrl: a.url }), TOKENS.memberA);
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

    /** Resumes on B from `checkpoint` (it comes back first); the ids up to the marker. */
    const resumeOnB = async (checkpoint: Seen) => {
      const feed = feeds.open(
        createConnectTransport({ baseUrl: b.url, httpVersion: "1.1" }),
        TOKENS.memberA,
        { after: checkpoint.cursor },
      );
      await feed.until(marker);
      expect(feed.seen[0]).toEqual({ kind: "checkpoint", cursor: checkpoint.cursor });
      return feed.events().map((e) => e.id);
    };
    expect(await resumeOnB(idle)).toEqual([y, z, marker]);
    expect(await resumeOnB(first)).toEqual([x, y, z, marker]);
  });

  it("refuses a cursor of this database's log on a server with another database with out_of_range, and the other way round", async () => {
    const a = await replicas.start({ name: "A", env: { FEED_CHECKPOINT_MS: "0" } });
    const other = await startServer({ FEED_CHECKPOINT_MS: "0" });
    try {
      const id = uuid();
      const onA = feeds.open(createGrpcTransport({ baseUrl: a.url }), TOKENS.memberA);
      await onA.started();
      await publish(a.url, [project(id)]);
      await onA.until(id);
      const cursorOfA = (onA.events()[0] as SeenFeedEvent).cursor;

      const onOther = openFeed(createGrpcTransport({ baseUrl: other.url }), TOKENS.memberA, {
        after: cursorOfA,
      });
      await onOther.done;
      expect(onOther.failure?.code).toBe(Code.OutOfRange);
      expect(onOther.failure?.rawMessage).toMatch(/another event log.*refetch/);

      const local = feeds.open(createGrpcTransport({ baseUrl: other.url }), TOKENS.memberA);
      await local.started();
      const cursorOfOther = (local.seen[0] as Seen).cursor;
      const back = openFeed(createGrpcTransport({ baseUrl: a.url }), TOKENS.memberA, {
        after: cursorOfOther,
      });
      await back.done;
      expect(back.failure?.code).toBe(Code.OutOfRange);
      expect(back.failure?.rawMessage).toMatch(/another event log.*refetch/);
    } finally {
      await feeds.closeAll();
      await other.close();
    }
  });
});
