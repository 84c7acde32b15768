import { describe, expect, it } from "vitest";
import {
  ADMIN,
  filter,
  MEMBER,
  ORG,
  OTHER_MEMBER,
  OTHER_ORG,
  orgPlan,
  plan,
  principal,
  uuid,
} from "../../test/helpers/rule-fixtures.js";
import { Operation, type ResourceEvent, ResourceType } from "../watch/model.js";
import { endsStream, matches, type WatchPlan } from "../watch/plan.js";
import { Dispatcher } from "./dispatcher.js";
import type { PublishedEvent, Subscription } from "./event-bus.js";

// The dispatcher's indexes and views are a shortcut: what each subscription receives must be
// exactly what `matches` says, in order, ending after the event that `endsStream`, whether a
// batch is dispatched whole or event by event.

const ENV_A = uuid(900);
const ENV_B = uuid(901);
const SUBJECTS = [ADMIN, MEMBER, OTHER_MEMBER];
const TYPES = [
  ResourceType.PROJECT, // members
  ResourceType.RUNNER, // members
  ResourceType.ENVIRONMENT, // creator
  ResourceType.AGENT_EXECUTION, // creator
  ResourceType.TASK, // environment's own
  ResourceType.SERVICE, // environment's own
  ResourceType.SECRET, // admins
];

function seeded(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return s / 2 ** 31;
  };
}

/** A random plan: admin or member of either organization, with or without filters, or an environment. */
function randomPlan(random: () => number): WatchPlan {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)] as T;
  const org = random() < 0.8 ? ORG : OTHER_ORG;
  const subject = pick(SUBJECTS);
  const p = principal(subject === ADMIN ? "admin" : "member", subject, org);
  const r = random();
  if (r < 0.15) {
    const environmentId = pick([ENV_A, ENV_B]);
    return plan(
      principal("admin", ADMIN, ORG),
      { scope: { kind: "environment", environmentId }, filters: [] },
      { organizationId: ORG, creatorId: MEMBER },
    );
  }
  if (r < 0.4) {
    return orgPlan(p, [
      filter(pick(TYPES)),
      filter(pick(TYPES), { resourceIds: [uuid(Math.floor(random() * 4))] }),
      filter(pick(TYPES), { creatorIds: [pick(SUBJECTS)] }),
    ]);
  }
  return orgPlan(p);
}

function randomEvent(random: () => number, sequence: number): PublishedEvent {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)] as T;
  const resourceType = pick(TYPES);
  const env = pick([ENV_A, ENV_B]);
  const resourceId =
    resourceType === ResourceType.ENVIRONMENT ? env : uuid(Math.floor(random() * 4));
  const event: ResourceEvent = {
    resourceType,
    operation: random() < 0.1 ? Operation.DELETE : Operation.UPDATE,
    resourceId,
    organizationId: random() < 0.8 ? ORG : OTHER_ORG,
    environmentId:
      resourceType === ResourceType.ENVIRONMENT ||
      resourceType === ResourceType.TASK ||
      resourceType === ResourceType.SERVICE
        ? env
        : "",
    creatorId: "",
  };
  return {
    sequence,
    event,
    creatorId: random() < 0.3 ? "" : pick(SUBJECTS),
    publishedAtMs: 0,
    acceptedAtMs: 0,
  };
}

/** A PROJECT UPDATE of ORG (every member may see it), numbered `sequence`. */
function project(sequence: number): PublishedEvent {
  return {
    sequence,
    event: {
      resourceType: ResourceType.PROJECT,
      operation: Operation.UPDATE,
      resourceId: uuid(sequence),
      organizationId: ORG,
      environmentId: "",
      creatorId: "",
    },
    creatorId: "",
    publishedAtMs: 0,
    acceptedAtMs: 0,
  };
}

/** What `plan` should receive of `events`, by the rules alone. */
function expected(p: WatchPlan, events: readonly PublishedEvent[]): PublishedEvent[] {
  const out: PublishedEvent[] = [];
  for (const e of events) {
    if (!matches(p, e.event, e.creatorId)) continue;
    out.push(e);
    if (endsStream(p, e.event)) break;
  }
  return out;
}

/** Everything pending on `sub`, taking runs whole where it can. */
function takeAll(sub: Subscription): PublishedEvent[] {
  const out: PublishedEvent[] = [];
  for (;;) {
    const run = sub.pollRun?.();
    if (run !== undefined) out.push(...run);
    else {
      const one = sub.poll();
      if (one === undefined) return out;
      out.push(one);
    }
  }
}

describe("Dispatcher", () => {
  it.each([
    ["whole batches", true],
    ["event by event", false],
  ])("gives every subscription exactly what the rules allow, in order, with %s", (_, whole) => {
    for (let seed = 1; seed <= 200; seed++) {
      const random = seeded(seed);
      const dispatcher = new Dispatcher();
      const plans = Array.from({ length: 12 }, () => randomPlan(random));
      const subs = plans.map((p) => dispatcher.subscribe(p, { maxBacklog: 10_000 }));
      const all: PublishedEvent[] = [];
      for (let b = 0, sequence = 0; b < 20; b++) {
        const batch = Array.from({ length: 1 + Math.floor(random() * 6) }, () =>
          randomEvent(random, ++sequence),
        );
        all.push(...batch);
        if (whole) dispatcher.dispatchAll(batch);
        else for (const e of batch) dispatcher.dispatch(e);
      }
      plans.forEach((p, i) => {
        expect(takeAll(subs[i] as Subscription), `seed ${seed}, subscription ${i}`).toEqual(
          expected(p, all),
        );
      });
    }
  });

  it("hands one array to every subscription of a view, and each member what they may see", () => {
    const dispatcher = new Dispatcher();
    const admin = orgPlan(principal("admin", ADMIN, ORG));
    const member = orgPlan(principal("member", MEMBER, ORG));
    const other = orgPlan(principal("member", OTHER_MEMBER, ORG));
    const subs = [admin, admin, member, member, other].map((p) =>
      dispatcher.subscribe(p, { maxBacklog: 100 }),
    );
    // Projects only: every view sees the same, and all share one array.
    dispatcher.dispatchAll([project(1), project(2)]);
    const runs = subs.map((s) => s.pollRun?.());
    expect(runs[0]).toHaveLength(2);
    for (const run of runs) expect(run).toBe(runs[0]);
    // An environment of MEMBER's: admins and MEMBER see it, OTHER_MEMBER does not.
    const mine: PublishedEvent = {
      ...project(4),
      event: {
        ...project(4).event,
        resourceType: ResourceType.ENVIRONMENT,
        environmentId: uuid(4),
      },
      creatorId: MEMBER,
    };
    dispatcher.dispatchAll([project(3), mine, project(5)]);
    const [a1, a2, m1, m2, o] = subs.map((s) => s.pollRun?.());
    expect(a1).toHaveLength(3);
    expect(a2).toBe(a1);
    expect(m1).toEqual(a1);
    expect(m2).toBe(m1);
    expect(o?.map((p) => p.sequence)).toEqual([3, 5]);
  });

  it("ends a subscription that cannot take a batch with resource_exhausted, not the others", async () => {
    const dispatcher = new Dispatcher();
    const p = orgPlan(principal("admin", ADMIN, ORG));
    const small = dispatcher.subscribe(p, { maxBacklog: 2 });
    const large = dispatcher.subscribe(p, { maxBacklog: 10 });
    const batch = [1, 2, 3].map(project);
    dispatcher.dispatchAll(batch);
    await expect(small.next()).rejects.toMatchObject({ kind: "resource_exhausted" });
    expect(takeAll(large)).toEqual(batch);
    expect(dispatcher.subscriberCount).toBe(1);
  });
});
