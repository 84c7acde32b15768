import { pino } from "pino";
import { describe, expect, it } from "vitest";
import {
  ADMIN as ADMIN_A,
  filter,
  MEMBER as MEMBER_A,
  ORG as ORG_A,
  OTHER_ORG as ORG_B,
  OTHER_MEMBER as OTHER_MEMBER_A,
  orgPlan,
  plan,
  principal,
} from "../../test/helpers/rule-fixtures.js";
import { ServiceError } from "../errors.js";
import { SqliteStore } from "../store/sqlite-store.js";
import { BoundedQueue } from "../stream/bounded-queue.js";
import {
  Operation,
  type Principal,
  type ResourceEvent,
  ResourceType,
  type WatchRequest,
} from "../watch/model.js";
import type { WatchPlan } from "../watch/plan.js";
import type { PublishedEvent, SubscriptionStats } from "./event-bus.js";
import { StoreBus } from "./store-bus.js";

const ADMIN_B = "0c0c0c0c-0000-4000-8000-0000000000b1";

const adminA = principal("admin", ADMIN_A, ORG_A);
const memberA = principal("member", MEMBER_A, ORG_A);
const otherMemberA = principal("member", OTHER_MEMBER_A, ORG_A);
const adminB = principal("admin", ADMIN_B, ORG_B);

let counter = 0;
/** A fresh UUID per resource. */
function uuid(): string {
  counter++;
  return `0f0f0f0f-0000-4000-8000-${counter.toString(16).padStart(12, "0")}`;
}

/** A validated-shape event: an ENVIRONMENT carries its own id as environment_id. */
function ev(more: Partial<ResourceEvent> = {}): ResourceEvent {
  const resourceId = more.resourceId ?? uuid();
  const resourceType = more.resourceType ?? ResourceType.RUNNER;
  return {
    resourceType,
    operation: Operation.UPDATE,
    resourceId,
    organizationId: ORG_A,
    environmentId: resourceType === ResourceType.ENVIRONMENT ? resourceId : "",
    creatorId: "",
    ...more,
  };
}

/** The CREATE of an environment, by `creatorId` (default: none recorded). */
function envCreated(creatorId = ""): ResourceEvent {
  return ev({ resourceType: ResourceType.ENVIRONMENT, operation: Operation.CREATE, creatorId });
}

async function envPlan(bus: StoreBus, p: Principal, environmentId: string): Promise<WatchPlan> {
  const request: WatchRequest = { scope: { kind: "environment", environmentId }, filters: [] };
  return plan(p, request, await bus.environment(environmentId));
}

/** A single-process bus on an in-memory SQLite store. */
async function newBus(): Promise<StoreBus> {
  const store = await SqliteStore.open({ path: ":memory:" });
  return StoreBus.open({ store, logger: pino({ level: "silent" }), replicated: false });
}

function subscribe(bus: StoreBus, p: WatchPlan, maxBacklog = 100) {
  const controller = new AbortController();
  const closes: { count: number; stats?: SubscriptionStats } = { count: 0 };
  const sub = bus.subscribe(p, {
    signal: controller.signal,
    maxBacklog,
    onClose: (stats) => {
      closes.count++;
      closes.stats = stats;
    },
  });
  return { sub, controller, closes };
}

/** Events a subscription holds for its reader (the memory bus hands out its queue). */
function pending(sub: AsyncIterator<PublishedEvent>): number {
  expect(sub).toBeInstanceOf(BoundedQueue);
  return (sub as BoundedQueue<PublishedEvent>).size;
}

/** The error a subscription's next pull throws. */
async function failure(sub: AsyncIterator<PublishedEvent>): Promise<unknown> {
  return sub.next().then(
    (r) => new Error(`expected the subscription to throw, got ${JSON.stringify(r)}`),
    (err: unknown) => err,
  );
}

/** The next `n` events of a subscription, failing if it ends first. */
async function take(sub: AsyncIterator<PublishedEvent>, n: number): Promise<PublishedEvent[]> {
  const out: PublishedEvent[] = [];
  for (let i = 0; i < n; i++) {
    const r = await sub.next();
    if (r.done) throw new Error(`subscription ended after ${i} of ${n} events`);
    out.push(r.value);
  }
  return out;
}

async function takeEvents(sub: AsyncIterator<PublishedEvent>, n: number): Promise<ResourceEvent[]> {
  return (await take(sub, n)).map((p) => p.event);
}

describe("StoreBus (single process, SQLite in memory)", () => {
  it("delivers events in publish order across batches, each once", async () => {
    const bus = await newBus();
    const { sub } = subscribe(bus, orgPlan(adminA));
    const batches = [[ev(), ev(), ev()], [ev()], [ev(), ev()]];
    for (const batch of batches) await bus.publish(batch);
    const sentinel = ev();
    await bus.publish([sentinel]);
    expect(await takeEvents(sub, 7)).toEqual([...batches.flat(), sentinel]);
  });

  it("hands a keyed batch on once: a retry with its key is replayed and dispatches nothing", async () => {
    const bus = await newBus();
    const { sub } = subscribe(bus, orgPlan(adminA));
    const batch = [ev(), ev()];
    const key = { publisher: ADMIN_A, key: "k-1" };
    const first = await bus.publish(batch, { key });
    const again = await bus.publish(batch, { key });
    expect(again).toEqual({ ...first, replayed: true });
    const sentinel = ev();
    await bus.publish([sentinel]);
    expect((await take(sub, 3)).map((p) => p.event)).toEqual([...batch, sentinel]);
    expect(pending(sub)).toBe(0);
  });

  it("assigns consecutive sequence numbers, reported by publish and carried by each event", async () => {
    const bus = await newBus();
    const { sub } = subscribe(bus, orgPlan(adminA));
    const first = await bus.publish([ev(), ev(), ev()]);
    const second = await bus.publish([ev()]);
    const third = await bus.publish([ev(), ev()]);
    expect(first.lastSequence - first.firstSequence).toBe(2);
    expect(second).toEqual({
      firstSequence: first.lastSequence + 1,
      lastSequence: first.lastSequence + 1,
      replayed: false,
    });
    expect(third).toEqual({
      firstSequence: second.lastSequence + 1,
      lastSequence: second.lastSequence + 2,
      replayed: false,
    });
    const sequences = (await take(sub, 6)).map((p) => p.sequence);
    expect(sequences).toEqual([0, 1, 2, 3, 4, 5].map((i) => first.firstSequence + i));
  });

  it("keeps organizations apart", async () => {
    const bus = await newBus();
    const a = subscribe(bus, orgPlan(adminA));
    const b = subscribe(bus, orgPlan(adminB));
    const a1 = ev();
    const b1 = ev({ organizationId: ORG_B });
    const a2 = ev();
    const b2 = ev({ organizationId: ORG_B });
    await bus.publish([a1, b1]);
    await bus.publish([a2, b2]);
    expect(await takeEvents(a.sub, 2)).toEqual([a1, a2]);
    expect(await takeEvents(b.sub, 2)).toEqual([b1, b2]);
  });

  it("gives a filtered subscriber only its types, an unfiltered one all it may see", async () => {
    const bus = await newBus();
    const filtered = subscribe(bus, orgPlan(memberA, [filter(ResourceType.RUNNER)]));
    const unfiltered = subscribe(bus, orgPlan(memberA));
    const runner1 = ev({ resourceType: ResourceType.RUNNER });
    const project = ev({ resourceType: ResourceType.PROJECT });
    const secret = ev({ resourceType: ResourceType.SECRET, creatorId: MEMBER_A });
    const ownEnv = ev({ resourceType: ResourceType.ENVIRONMENT, creatorId: MEMBER_A });
    const othersEnv = ev({ resourceType: ResourceType.ENVIRONMENT, creatorId: OTHER_MEMBER_A });
    const task = ev({ resourceType: ResourceType.TASK, environmentId: ownEnv.resourceId });
    const runner2 = ev({ resourceType: ResourceType.RUNNER });
    await bus.publish([runner1, project, secret, ownEnv, othersEnv, task, runner2]);
    expect(await takeEvents(filtered.sub, 2)).toEqual([runner1, runner2]);
    expect(await takeEvents(unfiltered.sub, 4)).toEqual([runner1, project, ownEnv, runner2]);
  });

  it("gives an environment-scope subscriber its environment's events, then finishes after its DELETE", async () => {
    const bus = await newBus();
    const env = envCreated(MEMBER_A);
    const other = envCreated();
    await bus.publish([env, other]);
    const { sub, closes } = subscribe(bus, await envPlan(bus, memberA, env.resourceId));
    const ownTask = ev({ resourceType: ResourceType.TASK, environmentId: env.resourceId });
    const otherTask = ev({ resourceType: ResourceType.TASK, environmentId: other.resourceId });
    const runner = ev({ resourceType: ResourceType.RUNNER, creatorId: MEMBER_A });
    const envUpdate = ev({ ...env, operation: Operation.UPDATE_STATUS, creatorId: "" });
    const otherUpdate = ev({ ...other, operation: Operation.UPDATE });
    const execution = ev({
      resourceType: ResourceType.TASK_EXECUTION,
      environmentId: env.resourceId,
    });
    const service = ev({ resourceType: ResourceType.SERVICE, environmentId: env.resourceId });
    const envDelete = ev({ ...env, operation: Operation.DELETE, creatorId: "" });
    const after = ev({ resourceType: ResourceType.TASK, environmentId: env.resourceId });
    await bus.publish([ownTask, otherTask, runner, envUpdate, otherUpdate, execution]);
    await bus.publish([service, envDelete, after]);
    expect(bus.subscriberCount).toBe(0);
    expect(await takeEvents(sub, 5)).toEqual([ownTask, envUpdate, execution, service, envDelete]);
    expect(await sub.next()).toEqual({ value: undefined, done: true });
    expect(closes.count).toBe(1);
  });

  it("shows a DELETE without creator_id to the member who created the resource earlier", async () => {
    const bus = await newBus();
    const creator = subscribe(bus, orgPlan(memberA));
    const other = subscribe(bus, orgPlan(otherMemberA));
    const token = ev({
      resourceType: ResourceType.PERSONAL_ACCESS_TOKEN,
      operation: Operation.CREATE,
      creatorId: MEMBER_A,
    });
    const tokenDelete = ev({ ...token, operation: Operation.DELETE, creatorId: "" });
    await bus.publish([token]);
    await bus.publish([tokenDelete]);
    const sentinel = ev({ resourceType: ResourceType.RUNNER });
    await bus.publish([sentinel]);
    const seen = await take(creator.sub, 3);
    expect(seen.map((p) => p.event)).toEqual([token, tokenDelete, sentinel]);
    expect(seen[1]?.creatorId).toBe(MEMBER_A);
    expect(await takeEvents(other.sub, 1)).toEqual([sentinel]);
  });

  it("learns a creator from an earlier event of the same batch", async () => {
    const bus = await newBus();
    const { sub } = subscribe(bus, orgPlan(memberA));
    const env = envCreated(MEMBER_A);
    const envDelete = ev({ ...env, operation: Operation.DELETE, creatorId: "" });
    await bus.publish([env, envDelete]);
    expect(await takeEvents(sub, 2)).toEqual([env, envDelete]);
  });

  it("shows a DELETE of a resource whose creator it never learned to admins only", async () => {
    const bus = await newBus();
    const member = subscribe(bus, orgPlan(memberA));
    const admin = subscribe(bus, orgPlan(adminA));
    const orphan = ev({ resourceType: ResourceType.ENVIRONMENT, operation: Operation.DELETE });
    const sentinel = ev();
    await bus.publish([orphan, sentinel]);
    expect(await takeEvents(admin.sub, 2)).toEqual([orphan, sentinel]);
    expect(await takeEvents(member.sub, 1)).toEqual([sentinel]);
  });

  it("knows an environment after its CREATE and forgets it after its DELETE", async () => {
    const bus = await newBus();
    const env = envCreated(MEMBER_A);
    const anonymous = envCreated();
    expect(await bus.environment(env.resourceId)).toBeUndefined();
    await bus.publish([env, anonymous]);
    expect(await bus.environment(env.resourceId)).toEqual({
      organizationId: ORG_A,
      creatorId: MEMBER_A,
    });
    expect(await bus.environment(anonymous.resourceId)).toEqual({
      organizationId: ORG_A,
      creatorId: "",
    });
    await bus.publish([ev({ ...env, operation: Operation.DELETE, creatorId: "" })]);
    expect(await bus.environment(env.resourceId)).toBeUndefined();
  });

  it("does not take a non-environment resource for an environment", async () => {
    const bus = await newBus();
    const runner = ev({ resourceType: ResourceType.RUNNER, creatorId: MEMBER_A });
    await bus.publish([runner]);
    expect(await bus.environment(runner.resourceId)).toBeUndefined();
  });

  it("ends a subscriber whose backlog overflows with resource_exhausted, not the others", async () => {
    const bus = await newBus();
    const slow = subscribe(bus, orgPlan(adminA), 2);
    const fast = subscribe(bus, orgPlan(adminA), 100);
    const events = [ev(), ev(), ev(), ev()];
    await bus.publish(events);
    expect(bus.subscriberCount).toBe(1);
    expect(slow.closes.count).toBe(1);
    const error = await slow.sub.next().then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(ServiceError);
    expect((error as ServiceError).kind).toBe("resource_exhausted");
    expect(await takeEvents(fast.sub, 4)).toEqual(events);
    const more = ev();
    await bus.publish([more]);
    expect(await takeEvents(fast.sub, 1)).toEqual([more]);
  });

  it("keeps a subscriber that is exactly at its backlog limit", async () => {
    const bus = await newBus();
    const { sub } = subscribe(bus, orgPlan(adminA), 2);
    const events = [ev(), ev()];
    await bus.publish(events);
    expect(bus.subscriberCount).toBe(1);
    expect(await takeEvents(sub, 2)).toEqual(events);
  });

  it("counts only events the subscriber may see against its backlog", async () => {
    const bus = await newBus();
    const { sub } = subscribe(bus, orgPlan(memberA, [filter(ResourceType.PROJECT)]), 1);
    const project = ev({ resourceType: ResourceType.PROJECT });
    await bus.publish([ev(), ev(), ev({ organizationId: ORG_B }), project, ev()]);
    expect(bus.subscriberCount).toBe(1);
    expect(await takeEvents(sub, 1)).toEqual([project]);
  });

  it.each([
    ["an organization-scope", false],
    ["an environment-scope", true],
  ])("removes %s subscriber when its signal aborts", async (_, environmentScope) => {
    const bus = await newBus();
    const env = ev({ resourceType: ResourceType.ENVIRONMENT, creatorId: MEMBER_A });
    await bus.publish([env]);
    const p = environmentScope ? await envPlan(bus, memberA, env.resourceId) : orgPlan(memberA);
    const { sub, controller, closes } = subscribe(bus, p);
    const waiting = sub.next();
    expect(bus.subscriberCount).toBe(1);
    const reason = new Error("client cancelled");
    controller.abort(reason);
    await expect(waiting).rejects.toBe(reason);
    expect(bus.subscriberCount).toBe(0);
    expect(closes.count).toBe(1);
  });

  it("removes a subscriber on return()", async () => {
    const bus = await newBus();
    const { sub, closes } = subscribe(bus, orgPlan(memberA, [filter(ResourceType.RUNNER)]));
    expect(bus.subscriberCount).toBe(1);
    await sub.return?.();
    expect(bus.subscriberCount).toBe(0);
    expect(closes.count).toBe(1);
    await bus.publish([ev()]);
    expect(await sub.next()).toEqual({ value: undefined, done: true });
  });

  it("removes a subscriber that leaves a for-await loop", async () => {
    const bus = await newBus();
    const { sub } = subscribe(bus, orgPlan(adminA));
    await bus.publish([ev(), ev()]);
    for await (const _ of sub) break;
    expect(bus.subscriberCount).toBe(0);
  });

  it("never registers a subscriber whose signal is already aborted", async () => {
    const bus = await newBus();
    const reason = new Error("gone");
    const sub = bus.subscribe(orgPlan(adminA), {
      signal: AbortSignal.abort(reason),
      maxBacklog: 10,
    });
    expect(bus.subscriberCount).toBe(0);
    await expect(sub.next()).rejects.toBe(reason);
  });

  it("fails every subscription with the close reason and refuses new ones at once", async () => {
    const bus = await newBus();
    const env = ev({ resourceType: ResourceType.ENVIRONMENT, creatorId: MEMBER_A });
    await bus.publish([env]);
    const subs = [
      subscribe(bus, orgPlan(adminA)),
      subscribe(bus, orgPlan(memberA, [filter(ResourceType.RUNNER), filter(ResourceType.PROJECT)])),
      subscribe(bus, orgPlan(adminB)),
      subscribe(bus, await envPlan(bus, memberA, env.resourceId)),
    ];
    // One waits for an event, another has one pending (which closing drops).
    const waiting = subs[0]?.sub.next();
    await bus.publish([ev({ organizationId: ORG_B })]);
    expect(bus.subscriberCount).toBe(4);
    const reason = new ServiceError("unavailable", "shutting down");
    await bus.close(reason);
    expect(bus.subscriberCount).toBe(0);
    await expect(waiting).rejects.toBe(reason);
    for (const s of subs) {
      await expect(s.sub.next()).rejects.toBe(reason);
      expect(s.closes.count).toBe(1);
    }
    const late = subscribe(bus, orgPlan(adminA));
    expect(bus.subscriberCount).toBe(0);
    await expect(late.sub.next()).rejects.toBe(reason);
    expect(late.closes.count).toBe(1);
  });

  it("refuses to publish after close with unavailable", async () => {
    const bus = await newBus();
    await bus.close(new Error("shutdown"));
    await expect(bus.publish([ev()])).rejects.toMatchObject({ kind: "unavailable" });
  });

  describe("a subscriber that falls behind", () => {
    it("gets the pending events of each resource merged, in order, while others get everything", async () => {
      const bus = await newBus();
      const slow = subscribe(bus, orgPlan(adminA), 4);
      const fast = subscribe(bus, orgPlan(adminA), 2000);
      // The first resource is created, then updated; the second gets both kinds of update,
      // status first; the third only status updates.
      const resources = [uuid(), uuid(), uuid()];
      const operationOf = (i: number): number => {
        const round = Math.floor(i / 3);
        if (i % 3 === 0) return round === 0 ? Operation.CREATE : Operation.UPDATE;
        if (i % 3 === 1) return round % 2 === 0 ? Operation.UPDATE_STATUS : Operation.UPDATE;
        return Operation.UPDATE_STATUS;
      };
      const events = Array.from({ length: 1000 }, (_, i) =>
        ev({ resourceId: resources[i % 3] as string, operation: operationOf(i) }),
      );
      let last = 0;
      for (let i = 0; i < events.length; i += 10) {
        last = (await bus.publish(events.slice(i, i + 10))).lastSequence;
        expect(pending(slow.sub)).toBeLessThanOrEqual(3);
      }
      expect(bus.subscriberCount).toBe(2);
      expect(await takeEvents(fast.sub, 1000)).toEqual(events);
      const merged = await take(slow.sub, 3);
      // Each is the first pending event of its resource with the merged operation...
      expect(merged.map((p) => p.event)).toEqual([
        events[0],
        { ...events[1], operation: Operation.UPDATE },
        events[2],
      ]);
      // ...and the sequence of the newest event it stands for (events 999, 997, 998).
      expect(merged.map((p) => p.sequence)).toEqual([last, last - 2, last - 1]);
      expect(pending(slow.sub)).toBe(0);
      const sentinel = ev();
      await bus.publish([sentinel]);
      expect(await takeEvents(slow.sub, 1)).toEqual([sentinel]);
      await slow.sub.return?.();
      expect(slow.closes.stats).toEqual({ coalesced: 997 });
    });

    it("ends with resource_exhausted when more resources than its backlog are pending, not the others", async () => {
      const bus = await newBus();
      const slow = subscribe(bus, orgPlan(adminA), 4);
      const fast = subscribe(bus, orgPlan(adminA), 100);
      const early = [ev(), ev()];
      await bus.publish(early);
      expect(await takeEvents(slow.sub, 2)).toEqual(early);
      const resources = [uuid(), uuid(), uuid(), uuid()];
      const updates = resources.flatMap((resourceId) => [ev({ resourceId }), ev({ resourceId })]);
      await bus.publish(updates);
      expect(bus.subscriberCount).toBe(2);
      expect(pending(slow.sub)).toBe(4);
      const fifth = ev();
      await bus.publish([fifth]);
      expect(bus.subscriberCount).toBe(1);
      expect(slow.closes).toEqual({ count: 1, stats: { coalesced: 4 } });
      const error = await failure(slow.sub);
      expect(error).toBeInstanceOf(ServiceError);
      expect((error as ServiceError).kind).toBe("resource_exhausted");
      expect(await takeEvents(fast.sub, 11)).toEqual([...early, ...updates, fifth]);
    });

    it("merges only events of the same resource type", async () => {
      const bus = await newBus();
      const { sub } = subscribe(bus, orgPlan(adminA), 2);
      const resourceId = uuid();
      const runner = ev({ resourceId, resourceType: ResourceType.RUNNER });
      const project = ev({ resourceId, resourceType: ResourceType.PROJECT });
      const runnerAgain = ev({ ...runner, operation: Operation.DELETE });
      await bus.publish([runner, project, runnerAgain]);
      expect(await takeEvents(sub, 2)).toEqual([
        { ...runner, operation: Operation.DELETE },
        project,
      ]);
    });

    it("drops a resource created and deleted while pending", async () => {
      const bus = await newBus();
      const { sub, closes } = subscribe(bus, orgPlan(adminA), 2);
      const kept = ev();
      const created = ev({ operation: Operation.CREATE });
      const other = ev();
      await bus.publish([kept, created, ev({ ...created, operation: Operation.DELETE }), other]);
      expect(await takeEvents(sub, 2)).toEqual([kept, other]);
      await sub.return?.();
      expect(closes.stats).toEqual({ coalesced: 2 });
    });

    it("still tells a watcher that knew a resource that it was deleted, re-created and deleted", async () => {
      const bus = await newBus();
      const { sub } = subscribe(bus, orgPlan(adminA), 2);
      const known = ev({ operation: Operation.UPDATE });
      const other = ev();
      await bus.publish([
        known,
        other,
        ev({ ...known, operation: Operation.DELETE }),
        ev({ ...known, operation: Operation.CREATE }),
        ev({ ...known, operation: Operation.UPDATE_STATUS }),
        ev({ ...known, operation: Operation.DELETE }),
      ]);
      expect(await takeEvents(sub, 2)).toEqual([{ ...known, operation: Operation.DELETE }, other]);
      // Re-created and not deleted again: CREATE.
      const recreated = ev();
      const third = ev();
      await bus.publish([
        recreated,
        third,
        ev({ ...recreated, operation: Operation.DELETE }),
        ev({ ...recreated, operation: Operation.CREATE }),
        ev({ ...recreated, operation: Operation.UPDATE }),
      ]);
      expect(await takeEvents(sub, 2)).toEqual([
        { ...recreated, operation: Operation.CREATE },
        third,
      ]);
    });

    it("delivers the DELETE of a watched environment last, even when merged, then finishes", async () => {
      const bus = await newBus();
      const env = envCreated(MEMBER_A);
      await bus.publish([env]);
      const { sub, closes } = subscribe(bus, await envPlan(bus, memberA, env.resourceId), 2);
      const envStatus = ev({ ...env, operation: Operation.UPDATE_STATUS, creatorId: "" });
      const task = ev({ resourceType: ResourceType.TASK, environmentId: env.resourceId });
      const taskAgain = ev({ ...task, operation: Operation.UPDATE_STATUS });
      const envDelete = ev({ ...env, operation: Operation.DELETE, creatorId: "" });
      await bus.publish([envStatus, task, taskAgain, envDelete]);
      expect(bus.subscriberCount).toBe(0);
      expect(closes.count).toBe(0);
      expect(await takeEvents(sub, 2)).toEqual([
        { ...task, operation: Operation.UPDATE },
        envDelete,
      ]);
      expect(await sub.next()).toEqual({ value: undefined, done: true });
      expect(closes).toEqual({ count: 1, stats: { coalesced: 2 } });
    });
  });
});

describe("StoreBus replicas sharing one log", () => {
  /**
   * A replica's view of a shared store: its reads of the log are counted, and its
   * notifications (as LISTEN would bring them) are sent by the test.
   */
  function replicaView(store: SqliteStore) {
    const reads = { count: 0 };
    const listeners: ((lastSequence?: number) => void)[] = [];
    const view = new Proxy(store, {
      get(target, key) {
        if (key === "readAfter") {
          return (sequence: number, limit: number) => {
            reads.count++;
            return target.readAfter(sequence, limit);
          };
        }
        if (key === "listen") {
          return async (onAppend: (lastSequence?: number) => void) => {
            listeners.push(onAppend);
            return async () => {};
          };
        }
        const value = Reflect.get(target, key, target) as unknown;
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const notify = (lastSequence?: number) => {
      for (const l of listeners) l(lastSequence);
    };
    return { view, reads, notify };
  }

  async function replicas(pollIntervalMs = 60_000) {
    const store = await SqliteStore.open({ path: ":memory:" });
    const logger = pino({ level: "silent" });
    const a = replicaView(store);
    const b = replicaView(store);
    const busA = await StoreBus.open({ store: a.view, logger, replicated: true, pollIntervalMs });
    const busB = await StoreBus.open({ store: b.view, logger, replicated: true, pollIntervalMs });
    return { a, b, busA, busB };
  }

  it("reads the log for other replicas' appends only, and delivers them in order", async () => {
    const { a, b, busA, busB } = await replicas();
    const onA = subscribe(busA, orgPlan(adminA)).sub;
    const onB = subscribe(busB, orgPlan(adminA)).sub;
    const events = [ev(), ev(), ev()];
    for (const e of events) await busA.publish([e]);
    expect(await takeEvents(onA, 3)).toEqual(events);
    // A's own appends are dispatched from memory; its own notifications are stale.
    a.notify(3);
    await new Promise((r) => setImmediate(r));
    expect(a.reads.count).toBe(0);
    // B learns of them from the notification: one read, everything in order.
    b.notify(3);
    expect(await takeEvents(onB, 3)).toEqual(events);
    expect(b.reads.count).toBe(1);
    // Interleaved: B's own append after A's sequence 3 needs no read either.
    const fromB = ev();
    await busB.publish([fromB]);
    expect(await takeEvents(onB, 1)).toEqual([fromB]);
    expect(b.reads.count).toBe(1);
    // A never heard of it: its next append finds a gap before its own and reads it.
    const fromA = ev();
    await busA.publish([fromA]);
    expect(await takeEvents(onA, 2)).toEqual([fromB, fromA]);
    expect(a.reads.count).toBe(1);
    await busA.close(new Error("done"));
    await busB.close(new Error("done"));
  });

  it("finds an append whose notification was lost at the next poll, and after a reconnect", async () => {
    const { b, busA, busB } = await replicas(20);
    const onB = subscribe(busB, orgPlan(adminA)).sub;
    const lost = ev();
    await busA.publish([lost]); // nobody notifies B
    expect(await takeEvents(onB, 1)).toEqual([lost]);
    const again = ev();
    await busA.publish([again]);
    b.notify(undefined); // the channel reconnected: anything may be new
    expect(await takeEvents(onB, 1)).toEqual([again]);
    await busA.close(new Error("done"));
    await busB.close(new Error("done"));
  });
});
