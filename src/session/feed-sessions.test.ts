import { describe, expect, it } from "vitest";
import type { EventBus, PublishedEvent } from "../bus/event-bus.js";
import type { StoredEvent } from "../store/store.js";
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

function stored(sequence: number): StoredEvent {
  return {
    sequence,
    creatorId: "",
    acceptedAtMs: 0,
    event: {
      resourceType: 3,
      operation: 2,
      resourceId: `r-${sequence}`,
      organizationId: ORG,
      environmentId: "",
      creatorId: "",
    },
  };
}

/** A log of `size` events and a bus that dispatches nothing live (replay only). */
function setup(size: number, maxBacklog: number) {
  const bus = {
    dispatchedSequence: size,
    log: async () => ({ id: LOG, firstSequence: 1, lastSequence: size }),
    readAfter: async (after: number, limit: number) => {
      const out: StoredEvent[] = [];
      for (let s = after + 1; s <= Math.min(size, after + limit); s++) out.push(stored(s));
      return out;
    },
  } as unknown as EventBus;
  const live: WatchStream = {
    items: new BoundedQueue<PublishedEvent>(maxBacklog),
    plan: PLAN,
    wrote() {},
    end() {},
  };
  const sessions = { open: async () => live } as unknown as WatchSessions;
  const feed = new FeedSessions({ bus, sessions, maxBacklog, checkpointMs: 0 });
  return feed;
}

describe("FeedSessions", () => {
  it("replays the log in order and holds at most its backlog and one page, however long the replay", async () => {
    const size = 20_000;
    const feed = setup(size, 256);
    const stream = await feed.open({
      principal: {
        subject: PLAN.subject,
        organization: ORG,
        role: "admin",
        expiresAtMs: undefined,
        credentialId: "c",
      },
      request: { scope: { kind: "organization" }, filters: [] },
      after: encodeCursor({ logId: LOG, sequence: 0 }),
      protocol: "grpc",
    });
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
});
