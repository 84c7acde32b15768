import { describe, expect, it } from "vitest";
import { Operation, type ResourceEvent, ResourceType } from "../watch/model.js";
import {
  type BatchOutcome,
  type GroupBatch,
  GroupCommit,
  type GroupCommitOptions,
} from "./group-commit.js";

const EVENT: ResourceEvent = {
  resourceType: ResourceType.PROJECT,
  operation: Operation.UPDATE,
  resourceId: "0f0f0f0f-0000-4000-8000-000000000001",
  organizationId: "0a0a0a0a-0000-4000-8000-00000000000a",
  environmentId: "",
  creatorId: "",
};

function batch(events: number, key?: string): GroupBatch {
  return {
    events: Array.from({ length: events }, () => EVENT),
    nowMs: 1,
    ...(key !== undefined && { key: { publisher: "p", key, digest: Buffer.from(key) } }),
  };
}

function deferred(): { promise: Promise<void>; resolve: () => void; reject: (err: Error) => void } {
  let resolve = () => {};
  let reject: (err: Error) => void = () => {};
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * A group commit whose transactions number the events of each group after the last, as a store
 * does, and record the sizes of the groups; `hold` keeps the next transaction open until released.
 */
function recording(options: Omit<GroupCommitOptions, "commit">) {
  const groups: number[][] = [];
  let last = 0;
  let held: Promise<void> | undefined;
  const commits = new GroupCommit({
    ...options,
    commit: async (batches) => {
      groups.push(batches.map((b) => b.events.length));
      const hold = held;
      held = undefined;
      await hold;
      return batches.map((b): BatchOutcome => {
        const events = b.events.map((event) => ({
          sequence: ++last,
          event,
          creatorId: "",
          acceptedAtMs: b.nowMs,
        }));
        return { replayed: false, events };
      });
    },
  });
  const sequences = (b: GroupBatch) =>
    commits.append(b).then((r) => (r.replayed ? [] : r.events.map((s) => s.sequence)));
  return {
    groups,
    sequences,
    hold() {
      const d = deferred();
      held = d.promise;
      return d;
    },
  };
}

describe("GroupCommit", () => {
  it("next-turn: the batches of one turn share one transaction, a later turn's its own", async () => {
    const c = recording({ start: "next-turn" });
    const first = [c.sequences(batch(2)), c.sequences(batch(1, "k")), c.sequences(batch(1, "k"))];
    expect(c.groups).toEqual([]);
    expect(await Promise.all(first)).toEqual([[1, 2], [3], [4]]);
    expect(await c.sequences(batch(3))).toEqual([5, 6, 7]);
    expect(c.groups).toEqual([[2, 1, 1], [3]]);
  });

  it("at-once: starts alone; those arriving meanwhile share the next, within the limit and without a key twice", async () => {
    const c = recording({ start: "at-once", maxGroupEvents: 4, distinctKeys: true });
    const release = c.hold();
    const all = [
      c.sequences(batch(1)),
      c.sequences(batch(2, "k")),
      c.sequences(batch(1, "k")),
      c.sequences(batch(2)),
      c.sequences(batch(5)),
    ];
    expect(c.groups).toEqual([[1]]);
    release.resolve();
    expect(await Promise.all(all)).toEqual([[1], [2, 3], [6], [4, 5], [7, 8, 9, 10, 11]]);
    expect(c.groups).toEqual([[1], [2, 2], [1], [5]]);
  });

  it("fails every batch of a group whose transaction fails, and goes on with the next", async () => {
    const c = recording({ start: "next-turn" });
    const release = c.hold();
    const failing = [c.sequences(batch(1)), c.sequences(batch(2))];
    await expect.poll(() => c.groups).toEqual([[1, 2]]);
    release.reject(new Error("lost"));
    await Promise.all(failing.map((f) => expect(f).rejects.toThrow("lost")));
    expect(await c.sequences(batch(1))).toEqual([1]);
  });

  it("acknowledges after the sync; groups committed during one share the next; a failed sync is final", async () => {
    const syncs: ReturnType<typeof deferred>[] = [];
    const commits = new GroupCommit({
      start: "next-turn",
      commit: async (batches) => batches.map(() => ({ replayed: false, events: [] })),
      sync: () => {
        const d = deferred();
        syncs.push(d);
        return d.promise;
      },
    });
    const acked: string[] = [];
    const append = (name: string) =>
      commits.append(batch(1)).then(
        () => acked.push(name),
        (err: Error) => acked.push(`${name}: ${err.message}`),
      );
    const a = append("a");
    await expect.poll(() => syncs.length).toBe(1);
    const bc = [append("b"), append("c")];
    await new Promise((r) => setImmediate(r));
    expect(acked).toEqual([]);
    syncs[0]?.resolve();
    await a;
    expect(acked).toEqual(["a"]);
    await expect.poll(() => syncs.length).toBe(2);
    syncs[1]?.reject(new Error("EIO"));
    await Promise.all(bc);
    expect(acked).toEqual(["a", "b: EIO", "c: EIO"]);
    expect(commits.failure).toMatchObject({ message: "EIO" });
    await expect(commits.append(batch(1))).rejects.toThrow("EIO");
    await commits.synced();
    expect(syncs).toHaveLength(2);
  });
});
