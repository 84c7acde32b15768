import { describe, expect, it } from "vitest";
import type { EventBus, PublishedEvent } from "../bus/event-bus.js";
import { ServiceError } from "../errors.js";
import type { LogScope, StoredEvent } from "../store/store.js";
import { BoundedQueue } from "../stream/bounded-queue.js";
import type { WatchPlan } from "../watch/plan.js";
import { encodeCursor } from "./feed-cursor.js";
import { type FeedItem, FeedSessions } from "./feed-sessions.js";
import type { WatchSessions, WatchStream } from "./watch-sessions.js";

const ORG = "a0000000-0000-4000-8000-00000000000a";
const LOG = "10000000-0000-4000-8000-000000000001";
const PLAN: WatchPlan = {
  organizationId: ORG,
  subject: "a0000000-0000-4000-8000-0000000000a1",
  admin: true,
  environmentId: undefined,
  filters: undefined,
};

function stored(sequence: number, resourceType = 3): StoredEvent {
  return {
    sequence,
    creatorId: "",
    acceptedAtMs: 0,
    event: {
      resourceType,
      operation: 2,
      resourceId: `r-${sequence}`,
      organizationId: ORG,
      environmentId: "",
      creatorId: "",
    },
  };
}

interface SetupOptions {
  /** The resource type of every event (3, PROJECT: every member sees it). */
  readonly resourceType?: number;
  readonly plan?: WatchPlan;
  readonly maxReplaysPerSubject?: number;
  readonly maxReplays?: number;
}

/**
 * A log of `size` events of ORG and a bus that dispatches nothing live (replay only). `reads`
 * counts the pages read; `scopes` records what each read asked for.
 */
function setup(size: number, maxBacklog: number, options: SetupOptions = {}) {
  const reads = { count: 0, scopes: [] as LogScope[] };
  /** The live subscription of each stream opened, in order. */
  const queues: BoundedQueue<PublishedEvent>[] = [];
  const page = (after: number, limit: number) => {
    reads.count++;
    const out: StoredEvent[] = [];
    for (let s = after + 1; s <= Math.min(size, after + limit); s++) {
      out.push(stored(s, options.resourceType));
    }
    return out;
  };
  const bus = {
    dispatchedSequence: size,
    log: async () => ({ id: LOG, firstSequence: 1, lastSequence: size }),
    readAfter: async (after: number, limit: number) => page(after, limit),
    readScoped: async (after: number, limit: number, scope: LogScope) => {
      reads.scopes.push(scope);
      const events = page(after, limit);
      return {
        events,
        through: events.length === limit ? (events.at(-1)?.sequence ?? after) : size,
        firstSequence: 1,
      };
    },
  } as unknown as EventBus;
  const sessions = {
    open: async () =>
      ({
        items: queues[
          queues.push(new BoundedQueue<PublishedEvent>(maxBacklog)) - 1
        ] as BoundedQueue<PublishedEvent>,
        plan: options.plan ?? PLAN,
        wrote() {},
        end() {},
      }) satisfies WatchStream,
  } as unknown as WatchSessions;
  const feed = new FeedSessions({
    bus,
    sessions,
    maxBacklog,
    checkpointMs: 0,
    maxReplaysPerSubject: options.maxReplaysPerSubject ?? 4,
    maxReplays: options.maxReplays ?? 64,
  });
  return Object.assign(feed, { reads, queues });
}

const principal = (subject: string = PLAN.subject) =>
  ({
    subject,
    organization: ORG,
    role: "admin",
    expiresAtMs: undefined,
    credentialId: `c-${subject}`,
  }) as const;

const fromStart = (feed: FeedSessions, subject?: string) =>
  feed.open({
    principal: principal(subject),
    request: { scope: { kind: "organization" }, filters: [] },
    after: encodeCursor({ logId: LOG, sequence: 0 }),
    protocol: "grpc",
  });

const fromNow = (feed: FeedSessions) =>
  feed.open({
    principal: principal(),
    request: { scope: { kind: "organization" }, filters: [] },
    after: "",
    protocol: "grpc",
  });

const live = (sequence: number): PublishedEvent => ({ ...stored(sequence), publishedAtMs: 0 });

describe("FeedSessions", () => {
  it("hands a run of live events on whole, one shared array of items for every stream", async () => {
    const feed = setup(10, 64);
    const a = await fromNow(feed);
    const b = await fromNow(feed);
    for (const s of [a, b]) expect((s.items.poll() as FeedItem).kind).toBe("checkpoint");
    const run = [11, 12, 13].map(live);
    for (const q of feed.queues) q.pushRun(run);
    const got = a.items.pollRun?.();
    expect(got).toBe(b.items.pollRun?.());
    expect(got?.map((i) => (i.kind === "event" ? i.event.sequence : 0))).toEqual([11, 12, 13]);
    // Taken one by one, a run gives its items in order; pollRun gives nothing once one is taken.
    const next = [14, 15].map(live);
    (feed.queues[0] as BoundedQueue<PublishedEvent>).pushRun(next);
    const first = a.items.poll() as FeedItem;
    expect(first.kind === "event" && first.event.sequence).toBe(14);
    expect(a.items.pollRun?.()).toBeUndefined();
    const second = a.items.poll() as FeedItem;
    expect(second.kind === "event" && second.event.sequence).toBe(15);
    expect(a.items.poll()).toBeUndefined();
    // A run that starts at or before what was handed on goes event by event: 15 is not again.
    (feed.queues[0] as BoundedQueue<PublishedEvent>).pushRun([15, 16].map(live));
    expect(a.items.pollRun?.()).toBeUndefined();
    const third = a.items.poll() as FeedItem;
    expect(third.kind === "event" && third.event.sequence).toBe(16);
    expect(a.items.poll()).toBeUndefined();
    a.end(undefined);
    b.end(undefined);
  });

  it("replays the log in order and holds at most its backlog and one page, however long the replay", async () => {
    const size = 20_000;
    const feed = setup(size, 256);
    const stream = await fromStart(feed);
    const items = stream.items;
    const seen: number[] = [];
    let held = 0;
    while (seen.length < size) {
      // A reader slower than the log: one item per turn, so pages keep arriving behind it.
      await new Promise<void>((resolve) => setImmediate(resolve));
      const item = items.poll() as FeedItem | undefined;
      if (item === undefined) continue;
      if (item.kind === "event") seen.push(item.event.sequence);
      held = Math.max(held, (stream as unknown as { out: unknown[] }).out.length);
    }
    expect(seen).toEqual(Array.from({ length: size }, (_, i) => i + 1));
    // The queue's array, handed-on slots included, stays within backlog + a page + compaction.
    expect(held).toBeLessThanOrEqual(256 + 500 + 1024);
    stream.end(undefined);
  });

  it("reads only its organization's events, and lets the event loop run between pages", async () => {
    // 100,000 events the member may not see (SECRET: admins only): every page matches nothing.
    const size = 100_000;
    const member: WatchPlan = { ...PLAN, admin: false };
    const feed = setup(size, 256, { resourceType: 16, plan: member });
    const stream = await fromStart(feed);
    // A timer set now fires after a turn or two of the loop, long before 200 pages are read.
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(feed.reads.count).toBeGreaterThan(0);
    expect(feed.reads.count).toBeLessThan(size / 500);
    expect(feed.reads.scopes[0]).toEqual({ organizationId: ORG });
    // It still reaches the head, and its checkpoints move on with what it scanned.
    await expect.poll(() => feed.replaysInProgress, { timeout: 20_000 }).toBe(0);
    const items: FeedItem[] = [];
    for (let item = stream.items.poll(); item !== undefined; item = stream.items.poll()) {
      items.push(item);
    }
    expect(items.filter((i) => i.kind === "event")).toEqual([]);
    (stream as unknown as { tick(): void }).tick();
    (stream as unknown as { tick(): void }).tick();
    expect(stream.items.poll()).toEqual({
      kind: "checkpoint",
      cursor: encodeCursor({ logId: LOG, sequence: size }),
    });
    stream.end(undefined);
  });

  it("reads an environment's events only, for environment scope", async () => {
    const env = "e0000000-0000-4000-8000-0000000000e1";
    const feed = setup(10, 256, { plan: { ...PLAN, environmentId: env } });
    const stream = await fromStart(feed);
    await expect.poll(() => feed.replaysInProgress).toBe(0);
    expect(feed.reads.scopes[0]).toEqual({ organizationId: ORG, environmentId: env });
    stream.end(undefined);
  });

  it("bounds replays from a cursor per caller and in all, with resource_exhausted naming the bound", async () => {
    // Readers that read nothing: replays stay in progress.
    const feed = setup(10_000, 16, { maxReplaysPerSubject: 2, maxReplays: 3 });
    const a1 = await fromStart(feed, "a");
    const a2 = await fromStart(feed, "a");
    await expect(fromStart(feed, "a")).rejects.toThrow(
      new ServiceError(
        "resource_exhausted",
        "too many feed replays from a cursor in progress for this caller (at most 2); retry once one has caught up",
      ),
    );
    const b1 = await fromStart(feed, "b");
    await expect(fromStart(feed, "c")).rejects.toMatchObject({
      kind: "resource_exhausted",
      message: expect.stringContaining("on this server (at most 3)"),
    });
    // An ended replay gives its slot back; so does one that caught up.
    a1.end(undefined);
    const a3 = await fromStart(feed, "a");
    expect(feed.replaysInProgress).toBe(3);
    for (const s of [a2, b1, a3]) s.end(undefined);
    expect(feed.replaysInProgress).toBe(0);
    const small = setup(5, 16, { maxReplaysPerSubject: 1 });
    const s1 = await fromStart(small, "a");
    await expect.poll(() => small.replaysInProgress).toBe(0);
    const s2 = await fromStart(small, "a");
    s1.end(undefined);
    s2.end(undefined);
  });
});
