import { afterEach, describe, expect, it } from "vitest";
import type {
  AuditEntry,
  AuditFilter,
  AuditPageQuery,
  Store,
  StoredEvent,
} from "../src/store/store.js";
import {
  type EnvironmentRecord,
  Operation,
  type ResourceEvent,
  ResourceType,
} from "../src/watch/model.js";

export interface StoreContractOptions {
  /**
   * Opens the database of `closed` again (the suite has closed it). Absent for a store that
   * keeps nothing across close; the persistence cases are then skipped.
   */
  readonly reopen?: (closed: Store) => Promise<Store>;
}

const ORG_A = "0a0a0a0a-0000-4000-8000-00000000000a";
const ORG_B = "0b0b0b0b-0000-4000-8000-00000000000b";
const ALICE = "0c0c0c0c-0000-4000-8000-0000000000a1";
const BOB = "0c0c0c0c-0000-4000-8000-0000000000b2";
const CAROL = "0c0c0c0c-0000-4000-8000-0000000000c3";
const NOW = 1_700_000_000_000;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** `gitpod.v1.Principal` numbers used here. */
const Principal = { UNSPECIFIED: 0, USER: 2, RUNNER: 3, SERVICE_ACCOUNT: 5 } as const;

/** Resource n (a UUID). */
function id(n: number): string {
  return `0f0f0f0f-0000-4000-8000-${n.toString(16).padStart(12, "0")}`;
}

/** The environment that owns the TASK / TASK_EXECUTION / SERVICE events below. */
const OWNER_ENV = id(0xe0);

function ev(more: Partial<ResourceEvent> = {}): ResourceEvent {
  const resourceId = more.resourceId ?? id(1);
  const resourceType = more.resourceType ?? ResourceType.PROJECT;
  const environmentId =
    resourceType === ResourceType.ENVIRONMENT
      ? resourceId
      : resourceType === ResourceType.TASK ||
          resourceType === ResourceType.TASK_EXECUTION ||
          resourceType === ResourceType.SERVICE
        ? OWNER_ENV
        : "";
  return {
    resourceType,
    operation: Operation.CREATE,
    resourceId,
    organizationId: ORG_A,
    environmentId,
    creatorId: "",
    ...more,
  };
}

/** What a watcher needs of a stored event (the audit fields live in the audit log only). */
function watchView(s: StoredEvent) {
  return {
    sequence: s.sequence,
    resourceType: s.event.resourceType,
    operation: s.event.operation,
    resourceId: s.event.resourceId,
    organizationId: s.event.organizationId,
    environmentId: s.event.environmentId,
    creatorId: s.creatorId,
  };
}

/** An event without creator_id that changes nothing: what the store recalls for a resource. */
function probe(organizationId: string, resourceId: string): ResourceEvent {
  return ev({ organizationId, resourceId, operation: Operation.UPDATE });
}

/** The audit log's order: (createdAtMs, id), ids compared as lower-case text. */
function byTimeThenId(a: AuditEntry, b: AuditEntry): number {
  if (a.createdAtMs !== b.createdAtMs) return a.createdAtMs - b.createdAtMs;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

function filterOf(more: Partial<AuditFilter> = {}): AuditFilter {
  return {
    organizationId: ORG_A,
    actorIds: [],
    actorPrincipals: [],
    subjectIds: [],
    subjectTypes: [],
    ...more,
  };
}

function page(filter: AuditFilter, more: Partial<AuditPageQuery> = {}): AuditPageQuery {
  return { filter, descending: false, limit: 1000, ...more };
}

/** Every page of `query`, following the keyset from the last entry of each. */
async function allPages(store: Store, query: AuditPageQuery): Promise<AuditEntry[][]> {
  const pages: AuditEntry[][] = [];
  let after: AuditPageQuery["after"];
  for (;;) {
    const entries = await store.listAudit({ ...query, ...(after === undefined ? {} : { after }) });
    pages.push(entries);
    const last = entries.at(-1);
    if (last === undefined) return pages;
    after = { createdAtMs: last.createdAtMs, id: last.id };
  }
}

interface CreatorCase {
  readonly name: string;
  /** Appended in order, one append per batch. */
  readonly batches: readonly (readonly ResourceEvent[])[];
  /** The creator resolved for each event of every batch, in order. */
  readonly creators: readonly string[];
  /** Afterwards: what an event without creator_id of [organization, resource] resolves to. */
  readonly recalled?: readonly (readonly [string, string, string])[];
  readonly environments?: readonly (readonly [string, EnvironmentRecord | undefined])[];
}

const P1 = id(1);
const E1 = id(0xe1);
const { CREATE, UPDATE, DELETE } = Operation;
const ENV = ResourceType.ENVIRONMENT;

/** The learning rule of every store (`learn` in records.ts, Store.append), case by case. */
const CREATOR_CASES: readonly CreatorCase[] = [
  {
    name: "uses the event's own creator",
    batches: [[ev({ creatorId: ALICE })], [ev({ operation: UPDATE, creatorId: BOB })]],
    creators: [ALICE, BOB],
    recalled: [[ORG_A, P1, BOB]],
  },
  {
    name: "recalls the recorded creator in a later batch",
    batches: [[ev({ creatorId: ALICE })], [ev({ operation: UPDATE })], [ev({ operation: DELETE })]],
    creators: [ALICE, ALICE, ALICE],
    recalled: [[ORG_A, P1, ""]],
  },
  {
    name: "resolves events of one resource in one batch against the state as of each",
    batches: [
      [
        ev({ creatorId: ALICE }),
        ev({ operation: UPDATE }),
        ev({ operation: DELETE }),
        ev({ operation: CREATE }),
        ev({ operation: UPDATE, creatorId: BOB }),
        ev({ operation: UPDATE }),
      ],
    ],
    creators: [ALICE, ALICE, ALICE, "", BOB, BOB],
    recalled: [[ORG_A, P1, BOB]],
  },
  {
    name: "forgets a deleted resource",
    batches: [[ev({ creatorId: ALICE })], [ev({ operation: DELETE })], [ev({ operation: UPDATE })]],
    creators: [ALICE, ALICE, ""],
    recalled: [[ORG_A, P1, ""]],
  },
  {
    name: "records nothing for a non-environment resource without creator",
    batches: [[ev()], [ev({ organizationId: ORG_B, creatorId: BOB })], [ev({ operation: UPDATE })]],
    // ORG_A never recorded P1, so ORG_B may claim the id.
    creators: ["", BOB, ""],
    recalled: [
      [ORG_A, P1, ""],
      [ORG_B, P1, BOB],
    ],
  },
  {
    name: "neither uses nor changes a resource known in another organization",
    batches: [
      [ev({ creatorId: ALICE })],
      [ev({ organizationId: ORG_B, operation: UPDATE })],
      [ev({ organizationId: ORG_B, operation: UPDATE, creatorId: BOB })],
      [ev({ organizationId: ORG_B, operation: DELETE })],
      [ev({ operation: UPDATE })],
    ],
    creators: [ALICE, "", BOB, "", ALICE],
    recalled: [
      [ORG_A, P1, ALICE],
      [ORG_B, P1, ""],
    ],
  },
  {
    name: "keeps organizations apart within one batch",
    batches: [
      [
        ev({ creatorId: ALICE }),
        ev({ organizationId: ORG_B, operation: UPDATE, creatorId: BOB }),
        ev({ organizationId: ORG_B, operation: DELETE }),
        ev({ operation: UPDATE }),
        ev({ operation: DELETE }),
        ev({ organizationId: ORG_B, creatorId: BOB }),
        ev({ organizationId: ORG_B, operation: UPDATE }),
      ],
    ],
    // Once ORG_A deleted it, the id is free for ORG_B.
    creators: [ALICE, BOB, "", ALICE, ALICE, BOB, BOB],
    recalled: [
      [ORG_A, P1, ""],
      [ORG_B, P1, BOB],
    ],
  },
  {
    name: "records an environment without creator, and learns its creator later",
    batches: [
      [ev({ resourceType: ENV, resourceId: E1 })],
      [ev({ resourceType: ENV, resourceId: E1, operation: UPDATE })],
      [ev({ resourceType: ENV, resourceId: E1, operation: UPDATE, creatorId: BOB })],
      [ev({ resourceType: ENV, resourceId: E1, operation: UPDATE })],
    ],
    creators: ["", "", BOB, BOB],
    recalled: [[ORG_A, E1, BOB]],
    environments: [[E1, { organizationId: ORG_A, creatorId: BOB }]],
  },
  {
    name: "does not let another organization take or change an environment",
    batches: [
      [ev({ resourceType: ENV, resourceId: E1 })],
      [ev({ resourceType: ENV, resourceId: E1, organizationId: ORG_B, creatorId: BOB })],
      [ev({ resourceType: ENV, resourceId: E1, organizationId: ORG_B, operation: DELETE })],
    ],
    creators: ["", BOB, ""],
    recalled: [[ORG_B, E1, ""]],
    environments: [[E1, { organizationId: ORG_A, creatorId: "" }]],
  },
  {
    name: "forgets a deleted environment, also within one batch",
    batches: [
      [
        ev({ resourceType: ENV, resourceId: E1, creatorId: ALICE }),
        ev({ resourceType: ENV, resourceId: E1, operation: UPDATE }),
        ev({ resourceType: ENV, resourceId: E1, operation: DELETE }),
      ],
    ],
    creators: [ALICE, ALICE, ALICE],
    recalled: [[ORG_A, E1, ""]],
    environments: [[E1, undefined]],
  },
  {
    name: "takes no other type for an environment, nor the environment an owned resource names",
    batches: [
      [
        ev({ resourceType: ResourceType.TASK, resourceId: id(2), creatorId: ALICE }),
        ev({ resourceType: ResourceType.PROJECT, resourceId: id(3), creatorId: ALICE }),
      ],
    ],
    creators: [ALICE, ALICE],
    recalled: [[ORG_A, id(2), ALICE]],
    environments: [
      [id(2), undefined],
      [id(3), undefined],
      [OWNER_ENV, undefined],
    ],
  },
  {
    name: "keeps the type a resource was first recorded with",
    // A later event of the same id updates only the creator.
    batches: [
      [ev({ resourceType: ENV, resourceId: E1, creatorId: ALICE })],
      [
        ev({
          resourceType: ResourceType.PROJECT,
          resourceId: E1,
          operation: UPDATE,
          creatorId: BOB,
        }),
      ],
    ],
    creators: [ALICE, BOB],
    environments: [[E1, { organizationId: ORG_A, creatorId: BOB }]],
  },
];

/**
 * The behaviour every Store implementation shares (see store.ts). `open` returns a store on a
 * new, empty database each time; the suite closes what it opened.
 */
export function describeStoreContract(
  name: string,
  open: () => Promise<Store>,
  options: StoreContractOptions = {},
): void {
  describe(name, () => {
    let opened: Store[] = [];
    const closed = new WeakSet<Store>();

    async function fresh(): Promise<Store> {
      const store = await open();
      opened.push(store);
      return store;
    }

    async function close(store: Store): Promise<void> {
      if (closed.has(store)) return;
      closed.add(store);
      await store.close();
    }

    async function reopen(store: Store): Promise<Store> {
      if (options.reopen === undefined) throw new Error("reopen is not supported");
      await close(store);
      const again = await options.reopen(store);
      opened.push(again);
      return again;
    }

    afterEach(async () => {
      const stores = opened;
      opened = [];
      await Promise.all(stores.map(close));
    });

    describe("sequences", () => {
      it("numbers a fresh store's first batch 1, 2, 3 and returns the events as given", async () => {
        const store = await fresh();
        expect(await store.lastSequence()).toBe(0);
        const events = [
          ev({ resourceId: id(1) }),
          ev({ resourceId: id(2) }),
          ev({ resourceId: id(3) }),
        ];
        const stored = await store.append(events, NOW);
        expect(stored.map((s) => s.sequence)).toEqual([1, 2, 3]);
        expect(stored.map((s) => s.event)).toEqual(events);
        expect(await store.lastSequence()).toBe(3);
      });

      it("continues consecutively across batches", async () => {
        const store = await fresh();
        const sequences: number[] = [];
        for (const size of [2, 1, 4, 3]) {
          const batch = Array.from({ length: size }, (_, i) => ev({ resourceId: id(100 + i) }));
          sequences.push(...(await store.append(batch, NOW)).map((s) => s.sequence));
        }
        expect(sequences).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
        expect(await store.lastSequence()).toBe(10);
      });

      it("numbers concurrent appends in call order, each its own consecutive range, resolving creators across them", async () => {
        const store = await fresh();
        const creator = id(0xc0);
        // The first batch records the creator; later ones, committed with it or after, must
        // resolve it, and each batch keeps its own time.
        const batches = Array.from({ length: 20 }, (_, b) =>
          Array.from({ length: 1 + (b % 5) }, (_, i) =>
            ev(
              b === 0 && i === 0
                ? { creatorId: creator }
                : {
                    resourceId: i === 0 ? id(1) : id(1000 + b * 10 + i),
                    operation: Operation.UPDATE,
                  },
            ),
          ),
        );
        const results = await Promise.all(batches.map((batch, b) => store.append(batch, NOW + b)));
        let next = 1;
        for (const [b, stored] of results.entries()) {
          expect(stored.map((s) => s.sequence)).toEqual(
            Array.from({ length: batches[b]?.length ?? 0 }, (_, i) => next + i),
          );
          expect(stored.map((s) => s.event)).toEqual(batches[b]);
          next += stored.length;
        }
        const read = await store.readAfter(0, 1000);
        expect(read.map((s) => s.sequence)).toEqual(results.flat().map((s) => s.sequence));
        expect(
          read.filter((s) => s.event.resourceId === id(1)).every((s) => s.creatorId === creator),
        ).toBe(true);
      });
    });

    describe("idempotency keys", () => {
      const KEY = { publisher: ALICE, key: "batch-1" };

      it("appends a keyed batch once and answers a retry with the first append's sequences", async () => {
        const store = await fresh();
        await store.append([ev({ resourceId: id(9) })], NOW);
        const batch = [ev({ resourceId: id(1) }), ev({ resourceId: id(2), actorId: BOB })];
        const first = await store.appendOnce(batch, NOW, KEY);
        expect(first.replayed).toBe(false);
        expect(first.replayed ? [] : first.events.map((s) => s.sequence)).toEqual([2, 3]);
        const again = await store.appendOnce(batch, NOW + 5, KEY);
        expect(again).toEqual({ replayed: true, firstSequence: 2, lastSequence: 3 });
        expect((await store.readAfter(0, 100)).map((s) => s.sequence)).toEqual([1, 2, 3]);
        expect(await store.lastSequence()).toBe(3);
        expect(await store.listAudit(page(filterOf()))).toHaveLength(1);
      });

      it("refuses the same key with another batch with already_exists, writing nothing", async () => {
        const store = await fresh();
        await store.appendOnce([ev({ resourceId: id(1) })], NOW, KEY);
        const other = store.appendOnce([ev({ resourceId: id(2) })], NOW, KEY);
        await expect(other).rejects.toMatchObject({ kind: "already_exists" });
        await expect(other).rejects.toThrow(/idempotency_key "batch-1"/);
        // A changed field of one event is another batch too.
        await expect(
          store.appendOnce([ev({ resourceId: id(1), operation: Operation.UPDATE })], NOW, KEY),
        ).rejects.toMatchObject({ kind: "already_exists" });
        expect(await store.lastSequence()).toBe(1);
      });

      it("keeps the keys of different publishers apart", async () => {
        const store = await fresh();
        const batch = [ev({ resourceId: id(1) })];
        const a = await store.appendOnce(batch, NOW, { publisher: ALICE, key: "k" });
        const b = await store.appendOnce(batch, NOW, { publisher: BOB, key: "k" });
        expect([a.replayed, b.replayed]).toEqual([false, false]);
        expect(await store.lastSequence()).toBe(2);
      });

      it("settles each batch of one group on its own: a duplicate key replays, a conflict fails alone", async () => {
        const store = await fresh();
        await store.appendOnce([ev({ resourceId: id(7) })], NOW, { publisher: BOB, key: "old" });
        const batch = [ev({ resourceId: id(1) }), ev({ resourceId: id(2) })];
        // Started together: one group (one transaction) where the store groups appends.
        const results = await Promise.allSettled([
          store.append([ev({ resourceId: id(3) })], NOW),
          store.appendOnce(batch, NOW, KEY),
          store.appendOnce(batch, NOW, KEY),
          store.appendOnce([ev({ resourceId: id(4) })], NOW, KEY),
          store.appendOnce([ev({ resourceId: id(5) })], NOW, { publisher: BOB, key: "old" }),
          store.append([ev({ resourceId: id(6) })], NOW),
        ]);
        expect(results.map((r) => r.status)).toEqual([
          "fulfilled",
          "fulfilled",
          "fulfilled",
          "rejected",
          "rejected",
          "fulfilled",
        ]);
        const [, first, second] = results.map((r) => (r.status === "fulfilled" ? r.value : r));
        expect(first).toMatchObject({ replayed: false });
        expect(second).toEqual({ replayed: true, firstSequence: 3, lastSequence: 4 });
        expect((await store.readAfter(0, 100)).map((s) => s.event.resourceId)).toEqual([
          id(7),
          id(3),
          id(1),
          id(2),
          id(6),
        ]);
      });

      it("forgets a key when retention prunes the events appended with it", async () => {
        const store = await fresh();
        const batch = [ev({ resourceId: id(1) })];
        await store.appendOnce(batch, NOW - 2000, KEY);
        await store.appendOnce([ev({ resourceId: id(2) })], NOW, { publisher: ALICE, key: "new" });
        await store.prune({ eventsBeforeMs: NOW - 1000 });
        expect(
          await store.appendOnce([ev({ resourceId: id(2) })], NOW, {
            publisher: ALICE,
            key: "new",
          }),
        ).toEqual({ replayed: true, firstSequence: 2, lastSequence: 2 });
        const anew = await store.appendOnce(batch, NOW, KEY);
        expect(anew.replayed ? [] : anew.events.map((s) => s.sequence)).toEqual([3]);
      });
    });

    describe("readAfter", () => {
      it("reads the events after a sequence, in order, at most limit", async () => {
        const store = await fresh();
        const stored = [
          ...(await store.append(
            [ev({ resourceId: id(1), creatorId: ALICE }), ev({ resourceId: id(2) })],
            NOW,
          )),
          ...(await store.append(
            [
              ev({ resourceId: id(1), operation: UPDATE }),
              ev({ resourceType: ENV, resourceId: E1, organizationId: ORG_B }),
              ev({ resourceType: ResourceType.TASK, resourceId: id(3), operation: DELETE }),
            ],
            NOW + 1,
          )),
        ];
        const all = stored.map(watchView);
        expect((await store.readAfter(0, 100)).map(watchView)).toEqual(all);
        expect((await store.readAfter(0, 2)).map(watchView)).toEqual(all.slice(0, 2));
        expect((await store.readAfter(2, 2)).map(watchView)).toEqual(all.slice(2, 4));
        expect((await store.readAfter(4, 100)).map(watchView)).toEqual(all.slice(4));
        expect(await store.readAfter(5, 100)).toEqual([]);
        // The resolved creator travels with the event.
        expect((await store.readAfter(2, 1))[0]?.creatorId).toBe(ALICE);
      });
    });

    describe("readScoped", () => {
      it("reads one organization's events, or one environment's, with how far the log was read", async () => {
        const store = await fresh();
        const stored = await store.append(
          [
            ev({ resourceId: id(1) }), // 1: A
            ev({ resourceId: id(2), organizationId: ORG_B }), // 2: B
            ev({ resourceType: ENV, resourceId: OWNER_ENV }), // 3: A, the environment
            ev({ resourceType: ResourceType.TASK, resourceId: id(3) }), // 4: A, in it
            ev({ resourceType: ResourceType.TASK, resourceId: id(4), organizationId: ORG_B }), // 5: B, same environment id
            ev({ resourceId: id(5), organizationId: ORG_B }), // 6: B
          ],
          NOW,
        );
        const seqs = (p: { events: { sequence: number }[] }) => p.events.map((e) => e.sequence);
        const a = await store.readScoped(0, 100, { organizationId: ORG_A });
        expect(seqs(a)).toEqual([1, 3, 4]);
        expect(a.events.map(watchView)).toEqual(
          [0, 2, 3].map((i) => watchView(stored[i] as StoredEvent)),
        );
        // Not full: everything up to the head was read.
        expect(a).toMatchObject({ through: 6, firstSequence: 1 });
        // Full: read up to its last event, no further.
        const page = await store.readScoped(0, 2, { organizationId: ORG_A });
        expect(seqs(page)).toEqual([1, 3]);
        expect(page.through).toBe(3);
        expect(seqs(await store.readScoped(3, 2, { organizationId: ORG_A }))).toEqual([4]);
        const env = await store.readScoped(0, 100, {
          organizationId: ORG_A,
          environmentId: OWNER_ENV,
        });
        expect(seqs(env)).toEqual([3, 4]);
        expect(env.through).toBe(6);
        const other = await store.readScoped(0, 100, {
          organizationId: ORG_B,
          environmentId: OWNER_ENV,
        });
        expect(seqs(other)).toEqual([5]);
        const none = await store.readScoped(6, 100, { organizationId: ORG_A });
        expect(none).toEqual({ events: [], through: 6, firstSequence: 1 });
        await store.prune({ eventsBeforeMs: NOW + 1 });
        expect(await store.readScoped(0, 100, { organizationId: ORG_A })).toEqual({
          events: [],
          through: 6,
          firstSequence: 7,
        });
      });
    });

    describe("creators and environments", () => {
      it.each(CREATOR_CASES.map((c) => [c.name, c] as const))("%s", async (_, c) => {
        const store = await fresh();
        const creators: string[] = [];
        for (const [i, batch] of c.batches.entries()) {
          creators.push(...(await store.append(batch, NOW + i)).map((s) => s.creatorId));
        }
        expect(creators).toEqual(c.creators);
        expect((await store.readAfter(0, 1000)).map((s) => s.creatorId)).toEqual(c.creators);
        for (const [eid, record] of c.environments ?? []) {
          expect(await store.environment(eid), `environment ${eid}`).toEqual(record);
        }
        for (const [org, rid, creator] of c.recalled ?? []) {
          const [recalled] = await store.append([probe(org, rid)], NOW + 100);
          expect(recalled?.creatorId, `recalled ${rid} in ${org}`).toBe(creator);
        }
      });

      it("knows an environment after its CREATE and forgets it after its DELETE", async () => {
        const store = await fresh();
        expect(await store.environment(E1)).toBeUndefined();
        await store.append([ev({ resourceType: ENV, resourceId: E1, creatorId: ALICE })], NOW);
        expect(await store.environment(E1)).toEqual({ organizationId: ORG_A, creatorId: ALICE });
        await store.append([ev({ resourceType: ENV, resourceId: E1, operation: DELETE })], NOW);
        expect(await store.environment(E1)).toBeUndefined();
      });
    });

    describe("audit entries", () => {
      it("records one RESOURCE_CHANGE entry per event with an actor, and none without", async () => {
        const store = await fresh();
        await store.append(
          [
            ev({ resourceId: id(1), actorId: ALICE, actorPrincipal: Principal.USER }),
            ev({ resourceId: id(2), actorId: "" }),
            ev({ resourceId: id(3) }),
            ev({ resourceId: id(4), resourceType: ResourceType.RUNNER, actorId: BOB }),
          ],
          NOW,
        );
        const entries = await store.listAudit(page(filterOf()));
        expect(entries).toHaveLength(2);
        const [first, second] = [...entries].sort((a, b) => a.subjectId.localeCompare(b.subjectId));
        expect(first).toEqual({
          id: expect.stringMatching(UUID_RE),
          organizationId: ORG_A,
          actorId: ALICE,
          actorPrincipal: Principal.USER,
          subjectId: id(1),
          subjectType: ResourceType.PROJECT,
          action: "project.create",
          createdAtMs: NOW,
          kind: 3,
        });
        expect(second).toMatchObject({
          actorId: BOB,
          actorPrincipal: Principal.UNSPECIFIED,
          subjectId: id(4),
          subjectType: ResourceType.RUNNER,
          kind: 3,
        });
        expect(first?.id).not.toBe(second?.id);
      });

      it("keeps the event's action and derives one from type and operation when empty", async () => {
        const store = await fresh();
        await store.append(
          [
            ev({ resourceType: ENV, resourceId: id(1), actorId: ALICE }),
            ev({
              resourceType: ResourceType.TASK_EXECUTION,
              resourceId: id(2),
              operation: Operation.UPDATE_STATUS,
              actorId: ALICE,
            }),
            ev({
              resourceType: ENV,
              resourceId: id(3),
              actorId: ALICE,
              action: "environment.start",
            }),
            ev({ resourceId: id(4), operation: DELETE, actorId: ALICE, action: "" }),
          ],
          NOW,
        );
        const actions = new Map(
          (await store.listAudit(page(filterOf()))).map((e) => [e.subjectId, e.action]),
        );
        expect(Object.fromEntries(actions)).toEqual({
          [id(1)]: "environment.create",
          [id(2)]: "task_execution.update_status",
          [id(3)]: "environment.start",
          [id(4)]: "project.delete",
        });
      });

      it("dates an entry at occurredAtMs, or at the time of the append", async () => {
        const store = await fresh();
        await store.append(
          [
            ev({ resourceId: id(1), actorId: ALICE, occurredAtMs: NOW - 5000 }),
            ev({ resourceId: id(2), actorId: ALICE }),
          ],
          NOW,
        );
        const times = new Map(
          (await store.listAudit(page(filterOf()))).map((e) => [e.subjectId, e.createdAtMs]),
        );
        expect(times.get(id(1))).toBe(NOW - 5000);
        expect(times.get(id(2))).toBe(NOW);
      });
    });

    describe("listAudit and getAudit", () => {
      // [subject n, actor, principal, type, ms after NOW] in ORG_A; 2 and 3 share a time.
      const FIXTURE = [
        [1, ALICE, Principal.USER, ResourceType.PROJECT, 0],
        [2, BOB, Principal.USER, ENV, 10],
        [3, ALICE, Principal.SERVICE_ACCOUNT, ResourceType.RUNNER, 10],
        [4, CAROL, Principal.RUNNER, ResourceType.PROJECT, 20],
        [5, BOB, Principal.USER, ResourceType.TASK, 30],
        [6, ALICE, Principal.USER, ENV, 40],
      ] as const;

      /** The fixture, plus entries of ORG_B by ALICE about the same subjects at the same times. */
      async function seeded(): Promise<{ store: Store; a: AuditEntry[]; b: AuditEntry[] }> {
        const store = await fresh();
        await store.append(
          FIXTURE.map(([n, actorId, actorPrincipal, resourceType, dt]) =>
            ev({
              resourceId: id(n),
              resourceType,
              actorId,
              actorPrincipal,
              occurredAtMs: NOW + dt,
            }),
          ),
          NOW,
        );
        await store.append(
          [1, 2].map((n) =>
            ev({
              organizationId: ORG_B,
              resourceId: id(n),
              actorId: ALICE,
              occurredAtMs: NOW + 10,
            }),
          ),
          NOW,
        );
        const a = await store.listAudit(page(filterOf()));
        const b = await store.listAudit(page(filterOf({ organizationId: ORG_B })));
        return { store, a, b };
      }

      const subjectsOf = (entries: readonly AuditEntry[]) =>
        entries.map((e) => Number.parseInt(e.subjectId.slice(-12), 16));

      it("lists one organization's entries by (createdAtMs, id), ascending and descending", async () => {
        const { store, a, b } = await seeded();
        expect(a).toHaveLength(FIXTURE.length);
        expect([...a].sort(byTimeThenId)).toEqual(a);
        expect(subjectsOf(a).sort()).toEqual([1, 2, 3, 4, 5, 6]);
        expect(a.every((e) => e.organizationId === ORG_A)).toBe(true);
        expect(subjectsOf(b).sort()).toEqual([1, 2]);
        expect(b.every((e) => e.organizationId === ORG_B)).toBe(true);
        const desc = await store.listAudit(page(filterOf(), { descending: true }));
        expect(desc).toEqual([...a].reverse());
        expect(await store.listAudit(page(filterOf(), { limit: 2 }))).toEqual(a.slice(0, 2));
        expect(await store.listAudit(page(filterOf(), { limit: 2, descending: true }))).toEqual(
          [...a].reverse().slice(0, 2),
        );
      });

      const FILTER_CASES: readonly [string, Partial<AuditFilter>, number[]][] = [
        ["one actor", { actorIds: [ALICE] }, [1, 3, 6]],
        ["two actors", { actorIds: [ALICE, CAROL] }, [1, 3, 4, 6]],
        ["an unknown actor", { actorIds: [id(0xbad)] }, []],
        ["one principal", { actorPrincipals: [Principal.USER] }, [1, 2, 5, 6]],
        [
          "two principals",
          { actorPrincipals: [Principal.SERVICE_ACCOUNT, Principal.RUNNER] },
          [3, 4],
        ],
        ["subjects", { subjectIds: [id(1), id(5)] }, [1, 5]],
        ["one subject type", { subjectTypes: [ENV] }, [2, 6]],
        [
          "two subject types",
          { subjectTypes: [ResourceType.PROJECT, ResourceType.RUNNER] },
          [1, 3, 4],
        ],
        ["actor and type together", { actorIds: [ALICE], subjectTypes: [ENV] }, [6]],
        ["from (inclusive)", { fromMs: NOW + 10 }, [2, 3, 4, 5, 6]],
        ["to (exclusive)", { toMs: NOW + 20 }, [1, 2, 3]],
        ["from and to around one time", { fromMs: NOW + 20, toMs: NOW + 21 }, [4]],
        ["from equal to to", { fromMs: NOW + 10, toMs: NOW + 10 }, []],
        ["from after everything", { fromMs: NOW + 41 }, []],
      ];

      it.each(FILTER_CASES)("filters by %s, in both orders", async (_, filter, expected) => {
        const { store, a } = await seeded();
        const asc = await store.listAudit(page(filterOf(filter)));
        expect(subjectsOf(asc).sort()).toEqual(expected);
        // The same entries as in the unfiltered list, in the same order.
        expect(asc).toEqual(a.filter((e) => asc.some((x) => x.id === e.id)));
        const desc = await store.listAudit(page(filterOf(filter), { descending: true }));
        expect(desc).toEqual([...asc].reverse());
      });

      it("gets an entry only within its organization", async () => {
        const { store, a, b } = await seeded();
        const mine = a[0] as AuditEntry;
        const theirs = b[0] as AuditEntry;
        expect(await store.getAudit(ORG_A, mine.id)).toEqual(mine);
        expect(await store.getAudit(ORG_B, theirs.id)).toEqual(theirs);
        expect(await store.getAudit(ORG_A, theirs.id)).toBeUndefined();
        expect(await store.getAudit(ORG_B, mine.id)).toBeUndefined();
        expect(await store.getAudit(ORG_A, id(0xbad))).toBeUndefined();
      });

      it("pages through 120 entries 50 at a time, each exactly once, in both orders", async () => {
        const store = await fresh();
        // Only 7 distinct times: most pages end inside a run of equal times.
        const events = Array.from({ length: 120 }, (_, i) =>
          ev({
            resourceId: id(1000 + i),
            actorId: i % 2 === 0 ? ALICE : BOB,
            occurredAtMs: NOW + (i % 7),
          }),
        );
        await store.append(events.slice(0, 60), NOW);
        await store.append(
          [ev({ organizationId: ORG_B, resourceId: id(999), actorId: ALICE, occurredAtMs: NOW })],
          NOW,
        );
        await store.append(events.slice(60), NOW);

        const all = await store.listAudit(page(filterOf()));
        expect(all).toHaveLength(120);
        for (const descending of [false, true]) {
          const pages = await allPages(store, page(filterOf(), { limit: 50, descending }));
          expect(pages.map((p) => p.length)).toEqual([50, 50, 20, 0]);
          const flat = pages.flat();
          expect(new Set(flat.map((e) => e.id)).size).toBe(120);
          expect(flat).toEqual(descending ? [...all].reverse() : all);
        }
        const alice = await allPages(store, page(filterOf({ actorIds: [ALICE] }), { limit: 25 }));
        expect(alice.map((p) => p.length)).toEqual([25, 25, 10, 0]);
        expect(alice.flat()).toEqual(all.filter((e) => e.actorId === ALICE));
        const both = await allPages(
          store,
          page(filterOf({ actorIds: [BOB, ALICE] }), { limit: 50, descending: true }),
        );
        expect(both.map((p) => p.length)).toEqual([50, 50, 20, 0]);
        expect(both.flat()).toEqual([...all].reverse());
      });
    });

    describe("prune", () => {
      it("deletes events created before a time, keeping the sequence and what was learned", async () => {
        const store = await fresh();
        await store.append(
          [ev({ resourceId: id(1), creatorId: ALICE }), ev({ resourceId: id(2), actorId: BOB })],
          NOW - 2000,
        );
        await store.append([ev({ resourceId: id(3) })], NOW - 1000);
        await store.append([ev({ resourceId: id(4) })], NOW);
        await store.prune({ eventsBeforeMs: NOW - 1000 });
        expect((await store.readAfter(0, 100)).map((s) => s.sequence)).toEqual([3, 4]);
        expect(await store.lastSequence()).toBe(4);
        expect(await store.listAudit(page(filterOf()))).toHaveLength(1);
        const [next] = await store.append([probe(ORG_A, id(1))], NOW);
        expect(next).toMatchObject({ sequence: 5, creatorId: ALICE });
      });

      it("deletes only a prefix of the log: an old event after a newer one waits for it", async () => {
        // Replicas whose clocks differ append in sequence order with times out of order. A hole
        // in the middle of the log would let a replay from before it skip events unannounced.
        const store = await fresh();
        await store.append([ev({ resourceId: id(1) })], NOW - 3000);
        await store.append([ev({ resourceId: id(2) })], NOW); // a clock ahead
        await store.append([ev({ resourceId: id(3) })], NOW - 3000); // a clock behind
        await store.append([ev({ resourceId: id(4) })], NOW);
        await store.prune({ eventsBeforeMs: NOW - 1000 });
        expect((await store.readAfter(0, 100)).map((s) => s.sequence)).toEqual([2, 3, 4]);
        expect(await store.log()).toMatchObject({ firstSequence: 2, lastSequence: 4 });
        await store.prune({ eventsBeforeMs: NOW + 1 });
        expect(await store.readAfter(0, 100)).toEqual([]);
        expect(await store.log()).toMatchObject({ firstSequence: 5, lastSequence: 4 });
      });

      it("deletes audit entries created before a time, and no events", async () => {
        const store = await fresh();
        await store.append(
          [1000, 2000, 3000].map((dt, i) =>
            ev({ resourceId: id(i + 1), actorId: ALICE, occurredAtMs: NOW + dt }),
          ),
          NOW,
        );
        await store.prune({ auditBeforeMs: NOW + 2000 });
        const left = await store.listAudit(page(filterOf()));
        expect(left.map((e) => e.createdAtMs)).toEqual([NOW + 2000, NOW + 3000]);
        expect(await store.readAfter(0, 100)).toHaveLength(3);
        await store.prune({});
        expect(await store.listAudit(page(filterOf()))).toHaveLength(2);
      });
    });

    describe("the event log", () => {
      it("has an id of its own from the start, and holds nothing yet", async () => {
        const store = await fresh();
        const log = await store.log();
        expect(log.id).not.toBe("");
        expect(log).toMatchObject({ firstSequence: 1, lastSequence: 0 });
        expect((await store.log()).id).toBe(log.id);
        const other = await fresh();
        expect((await other.log()).id).not.toBe(log.id);
      });

      it("knows the sequences it holds, through appends and retention", async () => {
        const store = await fresh();
        await store.append([ev({ resourceId: id(1) }), ev({ resourceId: id(2) })], NOW - 2000);
        await store.append([ev({ resourceId: id(3) })], NOW);
        expect(await store.log()).toMatchObject({ firstSequence: 1, lastSequence: 3 });
        await store.prune({ eventsBeforeMs: NOW - 1000 });
        expect(await store.log()).toMatchObject({ firstSequence: 3, lastSequence: 3 });
        await store.prune({ eventsBeforeMs: NOW + 1 });
        expect(await store.log()).toMatchObject({ firstSequence: 4, lastSequence: 3 });
      });

      it("dates each event at its append's time, as appended and as read back", async () => {
        const store = await fresh();
        const stored = await store.append([ev({ resourceId: id(1), occurredAtMs: NOW - 5 })], NOW);
        expect(stored[0]?.acceptedAtMs).toBe(NOW);
        expect((await store.readAfter(0, 10))[0]?.acceptedAtMs).toBe(NOW);
      });
    });

    describe("secret, ping", () => {
      it("keeps one 32-byte secret per database", async () => {
        const store = await fresh();
        const secret = await store.secret();
        expect(secret).toBeInstanceOf(Uint8Array);
        expect(secret.byteLength).toBe(32);
        expect(await store.secret()).toEqual(secret);
        const other = await fresh();
        expect(Buffer.from(await other.secret()).equals(Buffer.from(secret))).toBe(false);
      });

      it("answers ping", async () => {
        const store = await fresh();
        await expect(store.ping()).resolves.toBeUndefined();
      });
    });

    describe.skipIf(options.reopen === undefined)("persistence", () => {
      it("keeps events, sequence, creators, environments, audit log, secret and log id across reopen", async () => {
        const store = await fresh();
        await store.append(
          [
            ev({ resourceType: ENV, resourceId: E1, creatorId: ALICE, actorId: ALICE }),
            ev({ resourceId: id(1), creatorId: BOB }),
          ],
          NOW,
        );
        const events = (await store.readAfter(0, 100)).map(watchView);
        const audit = await store.listAudit(page(filterOf()));
        const secret = await store.secret();
        const log = await store.log();

        const again = await reopen(store);
        expect(await again.log()).toEqual(log);
        expect(await again.lastSequence()).toBe(2);
        expect((await again.readAfter(0, 100)).map(watchView)).toEqual(events);
        expect(await again.environment(E1)).toEqual({ organizationId: ORG_A, creatorId: ALICE });
        expect(await again.listAudit(page(filterOf()))).toEqual(audit);
        expect(await again.getAudit(ORG_A, audit[0]?.id ?? "")).toEqual(audit[0]);
        expect(await again.secret()).toEqual(secret);
        const next = await again.append([probe(ORG_A, id(1))], NOW);
        expect(next.map((s) => [s.sequence, s.creatorId])).toEqual([[3, BOB]]);
      });

      it("never numbers from an older sequence after reopen, whatever retention deleted", async () => {
        const store = await fresh();
        await store.append([ev({ resourceId: id(1) }), ev({ resourceId: id(2) })], NOW - 2000);
        await store.append([ev({ resourceId: id(3) })], NOW - 2000);
        await store.prune({ eventsBeforeMs: NOW - 1000 }); // all of them
        await store.append([ev({ resourceId: id(4) })], NOW);
        await store.prune({ eventsBeforeMs: NOW - 1000 }); // none
        const again = await reopen(store);
        expect(await again.log()).toMatchObject({ firstSequence: 4, lastSequence: 4 });
        await again.prune({ eventsBeforeMs: NOW + 1 }); // all again, the newest too
        const third = await reopen(again);
        expect(await third.log()).toMatchObject({ firstSequence: 5, lastSequence: 4 });
        const [next] = await third.append([ev({ resourceId: id(5) })], NOW);
        expect(next?.sequence).toBe(5);
      });

      it("keeps idempotency keys across reopen", async () => {
        const store = await fresh();
        const batch = [ev({ resourceId: id(1) })];
        await store.appendOnce(batch, NOW, { publisher: ALICE, key: "k" });
        const again = await reopen(store);
        expect(await again.appendOnce(batch, NOW, { publisher: ALICE, key: "k" })).toEqual({
          replayed: true,
          firstSequence: 1,
          lastSequence: 1,
        });
        await expect(
          again.appendOnce([ev({ resourceId: id(2) })], NOW, { publisher: ALICE, key: "k" }),
        ).rejects.toMatchObject({ kind: "already_exists" });
      });
    });
  });
}
