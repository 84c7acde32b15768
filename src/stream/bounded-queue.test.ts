import { describe, expect, it, vi } from "vitest";
import { BoundedQueue, type BoundedQueueStats } from "./bounded-queue.js";

/** A queue whose onClose calls are counted. */
function queue(capacity: number, signal?: AbortSignal) {
  const closes = { count: 0 };
  const q = new BoundedQueue<number>(capacity, {
    ...(signal !== undefined && { signal }),
    onClose: () => {
      closes.count++;
    },
  });
  return { q, closes };
}

const done = { value: undefined, done: true };
const item = <T>(value: T) => ({ value, done: false });

describe("BoundedQueue", () => {
  it("yields pushed items in push order", async () => {
    const { q } = queue(10);
    for (const n of [1, 2, 3]) expect(q.push(n)).toBe(true);
    expect(q.size).toBe(3);
    expect(await q.next()).toEqual(item(1));
    expect(await q.next()).toEqual(item(2));
    expect(await q.next()).toEqual(item(3));
    expect(q.size).toBe(0);
  });

  it("agrees with a plain array under random pushes and polls, in push mode", () => {
    // A seeded generator: the same 2,000 sequences every run.
    let seed = 42;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let run = 0; run < 2000; run++) {
      const capacity = 1 + Math.floor(random() * 4);
      const q = new BoundedQueue<number>(capacity);
      let wakes = 0;
      q.onReadable({ wake: () => wakes++ });
      const model: number[] = [];
      let expectedWakes = 0;
      for (let step = 0, n = 0; step < 12; step++) {
        if (random() < 0.6) {
          const accepted = model.length < capacity;
          if (accepted && model.length === 0) expectedWakes++;
          expect(q.push(++n)).toBe(accepted);
          if (accepted) model.push(n);
        } else {
          expect(q.poll()).toBe(model.shift());
        }
        expect(q.size).toBe(model.length);
      }
      expect(wakes).toBe(expectedWakes);
    }
  });

  it("hands a pushed item straight to a waiting consumer", async () => {
    const { q } = queue(1);
    const waiting = q.next();
    expect(q.push(7)).toBe(true);
    expect(q.size).toBe(0);
    expect(await waiting).toEqual(item(7));
  });

  it("keeps order when pushes and pulls interleave", async () => {
    const { q } = queue(2);
    const seen: number[] = [];
    for (let n = 1; n <= 10; n++) {
      expect(q.push(n)).toBe(true);
      if (n % 2 === 0) {
        seen.push((await q.next()).value as number, (await q.next()).value as number);
      }
    }
    expect(seen).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it("refuses a push when full and changes nothing", async () => {
    const { q, closes } = queue(2);
    expect(q.push(1)).toBe(true);
    expect(q.push(2)).toBe(true);
    expect(q.push(3)).toBe(false);
    expect(q.size).toBe(2);
    expect(q.isClosed).toBe(false);
    expect(closes.count).toBe(0);
    expect(await q.next()).toEqual(item(1));
    expect(q.push(4)).toBe(true);
    expect(await q.next()).toEqual(item(2));
    expect(await q.next()).toEqual(item(4));
  });

  it("lets the consumer drain what is pending after end(), then finishes", async () => {
    const { q, closes } = queue(5);
    q.push(1);
    q.push(2);
    q.end();
    expect(q.isClosed).toBe(true);
    expect(q.push(3)).toBe(false);
    expect(closes.count).toBe(0);
    expect(await q.next()).toEqual(item(1));
    expect(await q.next()).toEqual(item(2));
    expect(await q.next()).toEqual(done);
    expect(await q.next()).toEqual(done);
    expect(closes.count).toBe(1);
  });

  it("finishes a waiting consumer at once on end()", async () => {
    const { q, closes } = queue(5);
    const waiting = q.next();
    q.end();
    expect(await waiting).toEqual(done);
    expect(closes.count).toBe(1);
  });

  it("drops pending items on fail() and makes the consumer throw the error", async () => {
    const { q, closes } = queue(5);
    const err = new Error("boom");
    q.push(1);
    q.push(2);
    q.fail(err);
    expect(q.size).toBe(0);
    expect(q.push(3)).toBe(false);
    await expect(q.next()).rejects.toBe(err);
    await expect(q.next()).rejects.toBe(err);
    expect(closes.count).toBe(1);
  });

  it("rejects a waiting next() on fail()", async () => {
    const { q } = queue(5);
    const err = new Error("boom");
    const waiting = q.next();
    q.fail(err);
    await expect(waiting).rejects.toBe(err);
  });

  it("fails with the signal's reason when aborted, rejecting a waiting next()", async () => {
    const controller = new AbortController();
    const { q, closes } = queue(5, controller.signal);
    const waiting = q.next();
    const reason = new Error("client went away");
    controller.abort(reason);
    await expect(waiting).rejects.toBe(reason);
    expect(q.push(1)).toBe(false);
    expect(closes.count).toBe(1);
  });

  it("drops pending items when the signal aborts", async () => {
    const controller = new AbortController();
    const { q } = queue(5, controller.signal);
    q.push(1);
    controller.abort("bye");
    expect(q.size).toBe(0);
    await expect(q.next()).rejects.toBe("bye");
  });

  it("starts failed when the signal is already aborted", async () => {
    const reason = new Error("already gone");
    const { q, closes } = queue(5, AbortSignal.abort(reason));
    expect(q.isClosed).toBe(true);
    expect(q.push(1)).toBe(false);
    await expect(q.next()).rejects.toBe(reason);
    expect(closes.count).toBe(1);
  });

  it("closes on return(): pending items dropped, consumer done, pushes refused", async () => {
    const { q, closes } = queue(5);
    q.push(1);
    expect(await q.return()).toEqual(done);
    expect(q.size).toBe(0);
    expect(q.push(2)).toBe(false);
    expect(await q.next()).toEqual(done);
    expect(closes.count).toBe(1);
  });

  it("closes when a for-await loop breaks", async () => {
    const { q, closes } = queue(5);
    q.push(1);
    q.push(2);
    const seen: number[] = [];
    for await (const n of q) {
      seen.push(n);
      break;
    }
    expect(seen).toEqual([1]);
    expect(q.isClosed).toBe(true);
    expect(closes.count).toBe(1);
  });

  it("stops listening to the signal once closed", async () => {
    const controller = new AbortController();
    const { q, closes } = queue(5, controller.signal);
    await q.return();
    controller.abort(new Error("late"));
    expect(await q.next()).toEqual(done);
    expect(closes.count).toBe(1);
  });

  /** Every way a queue can end, and everything that may happen after it. */
  const paths: [
    string,
    (q: BoundedQueue<number>, abort: (reason: unknown) => void) => Promise<void>,
  ][] = [
    [
      "end() then drain",
      async (q) => {
        q.push(1);
        q.end();
        await q.next();
        await q.next();
      },
    ],
    [
      "end() with a waiting consumer",
      async (q) => {
        const waiting = q.next();
        q.end();
        await waiting;
      },
    ],
    ["fail()", async (q) => q.fail(new Error("x"))],
    [
      "fail() with a waiting consumer",
      async (q) => {
        const waiting = q.next().catch(() => undefined);
        q.fail(new Error("x"));
        await waiting;
      },
    ],
    ["abort", async (_, abort) => abort(new Error("x"))],
    [
      "return()",
      async (q) => {
        await q.return();
      },
    ],
    [
      "end() then fail() before draining",
      async (q) => {
        q.push(1);
        q.end();
        q.fail(new Error("x"));
      },
    ],
    [
      "end() then return() before draining",
      async (q) => {
        q.push(1);
        q.end();
        await q.return();
      },
    ],
    [
      "fail() then end(), return() and abort",
      async (q, abort) => {
        q.fail(new Error("x"));
        q.end();
        await q.return();
        abort(new Error("y"));
      },
    ],
    [
      "return() then fail(), end() and abort",
      async (q, abort) => {
        await q.return();
        q.fail(new Error("x"));
        q.end();
        abort(new Error("y"));
      },
    ],
    [
      "abort then fail() and return()",
      async (q, abort) => {
        abort(new Error("x"));
        q.fail(new Error("y"));
        await q.return();
      },
    ],
  ];

  it.each(paths)("runs onClose exactly once after %s", async (_, path) => {
    const controller = new AbortController();
    const { q, closes } = queue(5, controller.signal);
    await path(q, (reason) => controller.abort(reason));
    expect(q.isClosed).toBe(true);
    expect(closes.count).toBe(1);
  });
});

/** An event-like item: what it is about, and which pushes it stands for. */
describe("BoundedQueue runs (pushRun, pollRun)", () => {
  it("keeps a run whole: pollRun gives back the same array, counted as its items", () => {
    const { q } = queue(10);
    let wakes = 0;
    q.onReadable({ wake: () => wakes++ });
    const run = [1, 2, 3];
    expect(q.pushRun(run)).toBe(true);
    expect(wakes).toBe(1);
    expect(q.size).toBe(3);
    expect(q.push(4)).toBe(true);
    expect(q.pushRun([5, 6])).toBe(true);
    expect(wakes).toBe(1);
    expect(q.size).toBe(6);
    expect(q.pollRun()).toBe(run);
    expect(q.size).toBe(3);
    // The next item is not a run's first: nothing is taken.
    expect(q.pollRun()).toBeUndefined();
    expect(q.poll()).toBe(4);
    expect(q.pollRun()).toEqual([5, 6]);
    expect(q.size).toBe(0);
  });

  it("gives a run's items one by one to poll and next, and pollRun nothing once one is taken", async () => {
    const { q } = queue(10);
    q.pushRun([1, 2, 3]);
    expect(q.poll()).toBe(1);
    expect(q.pollRun()).toBeUndefined();
    expect(q.size).toBe(2);
    expect(await q.next()).toEqual(item(2));
    expect(q.poll()).toBe(3);
    expect(q.size).toBe(0);
    expect(q.poll()).toBeUndefined();
  });

  it("keeps a lone pending item ahead of a run and of items pushed after it", async () => {
    const q = new BoundedQueue<number>(10);
    const run = [2, 3];
    expect(q.push(1)).toBe(true);
    expect(q.pushRun(run)).toBe(true);
    expect(q.push(4)).toBe(true);
    expect(q.size).toBe(4);
    expect(q.pollRun()).toBeUndefined();
    expect(q.poll()).toBe(1);
    expect(q.pollRun()).toBe(run);
    expect(await q.next()).toEqual(item(4));
    expect(q.size).toBe(0);
    expect(q.push(5)).toBe(true);
    expect(q.poll()).toBe(5);
    expect(q.poll()).toBeUndefined();
  });

  it("takes a run of one as a plain item", () => {
    const { q } = queue(10);
    expect(q.pushRun([7])).toBe(true);
    expect(q.pollRun()).toBeUndefined();
    expect(q.poll()).toBe(7);
  });

  it("takes a run item by item when it does not fit, refusing from the first that does not", () => {
    const { q } = queue(4);
    q.push(0);
    expect(q.pushRun([1, 2, 3, 4, 5])).toBe(false);
    expect(q.size).toBe(4);
    expect([q.poll(), q.poll(), q.poll(), q.poll(), q.poll()]).toEqual([0, 1, 2, 3, undefined]);
  });

  it("hands a run's first item to a waiting consumer and keeps the rest", async () => {
    const { q } = queue(4);
    const waiting = q.next();
    expect(q.pushRun([1, 2, 3])).toBe(true);
    expect(await waiting).toEqual(item(1));
    expect(q.size).toBe(2);
    expect([q.poll(), q.poll()]).toEqual([2, 3]);
  });

  it("drops pending runs on fail() and refuses runs once closed", async () => {
    const { q, closes } = queue(10);
    q.pushRun([1, 2]);
    q.poll();
    const err = new Error("gone");
    q.fail(err);
    expect(q.size).toBe(0);
    expect(q.pollRun()).toBeUndefined();
    await expect(q.next()).rejects.toBe(err);
    expect(q.pushRun([3, 4])).toBe(false);
    expect(closes.count).toBe(1);
  });

  it("agrees with a plain array under random runs, pushes, polls and pollRuns", () => {
    let seed = 7;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    // Each pending item, and the run it came in when the run was kept whole (its place in it).
    interface Pending {
      readonly value: number;
      readonly run?: readonly number[];
      readonly at?: number;
    }
    for (let round = 0; round < 2000; round++) {
      const capacity = 1 + Math.floor(random() * 8);
      const q = new BoundedQueue<number>(capacity);
      let wakes = 0;
      q.onReadable({ wake: () => wakes++ });
      const model: Pending[] = [];
      let expectedWakes = 0;
      for (let step = 0, n = 0; step < 16; step++) {
        const r = random();
        if (r < 0.4) {
          const run = Array.from({ length: 1 + Math.floor(random() * 4) }, () => ++n);
          if (model.length === 0) expectedWakes++;
          const whole = run.length > 1 && model.length + run.length <= capacity;
          const room = capacity - model.length;
          run.slice(0, room).forEach((value, at) => {
            model.push(whole ? { value, run, at } : { value });
          });
          expect(q.pushRun(run)).toBe(run.length <= room);
        } else if (r < 0.6) {
          const accepted = model.length < capacity;
          if (accepted && model.length === 0) expectedWakes++;
          expect(q.push(++n)).toBe(accepted);
          if (accepted) model.push({ value: n });
        } else if (r < 0.8) {
          const head = model[0];
          const got = q.pollRun();
          if (head?.run !== undefined && head.at === 0) {
            expect(got).toBe(head.run);
            model.splice(0, head.run.length);
          } else expect(got).toBeUndefined();
        } else {
          expect(q.poll()).toBe(model.shift()?.value);
        }
        expect(q.size).toBe(model.length);
      }
      expect(wakes).toBe(expectedWakes);
    }
  });
});

interface Note {
  readonly key: string;
  readonly first: number;
  readonly last: number;
  /** Cancels a pending note of the same key (both are dropped). */
  readonly cancel?: boolean;
}

const note = (key: string, n: number, cancel = false): Note => ({
  key,
  first: n,
  last: n,
  ...(cancel && { cancel }),
});

function mergeNotes(pending: Note, next: Note): Note | undefined {
  return next.cancel ? undefined : { key: pending.key, first: pending.first, last: next.last };
}

/** A coalescing queue of notes whose policy calls are counted. */
function coalescing(capacity: number) {
  const key = vi.fn((n: Note) => n.key);
  const merge = vi.fn(mergeNotes);
  const stats: BoundedQueueStats[] = [];
  const q = new BoundedQueue<Note>(capacity, {
    coalesce: { key, merge },
    onClose: (s) => stats.push(s),
  });
  return { q, key, merge, stats };
}

/** Everything pending, in order (the queue is left open and empty). */
async function drain<T>(q: BoundedQueue<T>): Promise<T[]> {
  const out: T[] = [];
  while (q.size > 0) out.push((await q.next()).value as T);
  return out;
}

describe("BoundedQueue with a coalescing policy", () => {
  it("never builds an index nor calls the policy while it has room", async () => {
    const { q, key, merge } = coalescing(4);
    for (let round = 0; round < 100; round++) {
      for (let i = 0; i < 4; i++) expect(q.push(note("a", i))).toBe(true);
      expect(q.isCoalescing).toBe(false);
      expect(await drain(q)).toEqual([0, 1, 2, 3].map((i) => note("a", i)));
    }
    expect(key).not.toHaveBeenCalled();
    expect(merge).not.toHaveBeenCalled();
    expect(q.coalesced).toBe(0);
  });

  it("when full, merges pending items of one key into the place of the first, keeping order", async () => {
    const { q } = coalescing(4);
    for (const n of [note("a", 1), note("b", 2), note("a", 3), note("c", 4)]) q.push(n);
    expect(q.push(note("d", 5))).toBe(true);
    expect(q.isCoalescing).toBe(true);
    expect(q.size).toBe(4);
    expect(q.push(note("b", 6))).toBe(true);
    expect(q.push(note("a", 7))).toBe(true);
    expect(q.size).toBe(4);
    expect(await drain(q)).toEqual([
      { key: "a", first: 1, last: 7 },
      { key: "b", first: 2, last: 6 },
      note("c", 4),
      note("d", 5),
    ]);
  });

  it("drops both items of a pair that cancels out, before and after it starts coalescing", async () => {
    const { q } = coalescing(3);
    for (const n of [note("a", 1), note("b", 2), note("a", 3, true)]) q.push(n);
    expect(q.push(note("c", 4))).toBe(true);
    expect(q.size).toBe(2);
    expect(q.push(note("b", 5, true))).toBe(true);
    expect(q.size).toBe(1);
    expect(q.push(note("a", 6))).toBe(true);
    expect(await drain(q)).toEqual([note("c", 4), note("a", 6)]);
  });

  it("stops coalescing when a cancelling pair empties it", async () => {
    const { q, key } = coalescing(1);
    q.push(note("a", 1));
    expect(q.push(note("a", 2, true))).toBe(true);
    expect(q.size).toBe(0);
    expect(q.isCoalescing).toBe(false);
    key.mockClear();
    expect(q.push(note("b", 3))).toBe(true);
    expect(key).not.toHaveBeenCalled();
    expect(await drain(q)).toEqual([note("b", 3)]);
  });

  it("refuses an item of a new key when capacity distinct keys are pending, and changes nothing", async () => {
    const { q, stats } = coalescing(2);
    q.push(note("a", 1));
    q.push(note("b", 2));
    expect(q.push(note("c", 3))).toBe(false);
    expect(q.push(note("a", 4))).toBe(true);
    expect(q.push(note("d", 5))).toBe(false);
    expect(q.size).toBe(2);
    expect(q.isClosed).toBe(false);
    expect(stats).toEqual([]);
    expect(await drain(q)).toEqual([{ key: "a", first: 1, last: 4 }, note("b", 2)]);
  });

  it("accepts new keys again once merging made room", async () => {
    const { q } = coalescing(3);
    for (const n of [note("a", 1), note("a", 2), note("b", 3)]) q.push(n);
    expect(q.push(note("c", 4))).toBe(true);
    expect(q.push(note("d", 5))).toBe(false);
    expect(await drain(q)).toEqual([{ key: "a", first: 1, last: 2 }, note("b", 3), note("c", 4)]);
  });

  it("counts every accepted item that is not delivered on its own", async () => {
    const { q } = coalescing(2);
    const pushes = [
      note("a", 1),
      note("a", 2), // fills the queue with duplicates
      note("b", 3), // starts coalescing: a2 merged (1)
      note("a", 4), // merged (2)
      note("b", 5, true), // cancels b3 (4)
      note("c", 6),
      note("c", 7), // merged (5)
    ];
    for (const n of pushes) expect(q.push(n)).toBe(true);
    expect(q.coalesced).toBe(5);
    const delivered = await drain(q);
    expect(delivered).toEqual([
      { key: "a", first: 1, last: 4 },
      { key: "c", first: 6, last: 7 },
    ]);
    expect(pushes.length).toBe(delivered.length + q.size + q.coalesced);
  });

  it("stops coalescing once drained and then keeps duplicates again", async () => {
    const { q, key } = coalescing(2);
    for (const n of [note("a", 1), note("a", 2), note("a", 3)]) q.push(n);
    expect(q.isCoalescing).toBe(true);
    expect(await q.next()).toEqual(item({ key: "a", first: 1, last: 3 }));
    expect(q.isCoalescing).toBe(false);
    key.mockClear();
    q.push(note("a", 4));
    q.push(note("a", 5));
    expect(key).not.toHaveBeenCalled();
    expect(await drain(q)).toEqual([note("a", 4), note("a", 5)]);
  });

  it("keeps coalescing while the consumer pulls but never catches up", async () => {
    const { q } = coalescing(2);
    for (const n of [note("a", 1), note("b", 2), note("a", 3)]) q.push(n);
    expect(await q.next()).toEqual(item({ key: "a", first: 1, last: 3 }));
    expect(q.isCoalescing).toBe(true);
    // a is no longer pending: it comes after b, and b still merges in place.
    q.push(note("a", 4));
    q.push(note("b", 5));
    expect(q.push(note("c", 6))).toBe(false);
    expect(await drain(q)).toEqual([{ key: "b", first: 2, last: 5 }, note("a", 4)]);
  });

  it("delivers endWith's item last, merged with a pending one of its key, then finishes", async () => {
    const { q, stats } = coalescing(3);
    for (const n of [note("a", 1), note("b", 2), note("c", 3), note("b", 4)]) q.push(n);
    expect(q.endWith(note("a", 5))).toBe(true);
    expect(q.isClosed).toBe(true);
    expect(q.push(note("d", 6))).toBe(false);
    expect(await drain(q)).toEqual([
      { key: "b", first: 2, last: 4 },
      note("c", 3),
      { key: "a", first: 1, last: 5 },
    ]);
    expect(await q.next()).toEqual(done);
    expect(stats).toEqual([{ coalesced: 2 }]);
  });

  it("delivers endWith's item itself when it would cancel a pending one", async () => {
    const { q } = coalescing(2);
    for (const n of [note("a", 1), note("b", 2), note("c", 3)]) q.push(n);
    expect(q.endWith(note("a", 4, true))).toBe(true);
    expect(await drain(q)).toEqual([note("b", 2), note("a", 4, true)]);
    expect(await q.next()).toEqual(done);
  });

  it("refuses endWith's item of a new key when full, leaving the queue open", () => {
    const { q } = coalescing(2);
    for (const n of [note("a", 1), note("b", 2)]) q.push(n);
    expect(q.endWith(note("c", 3))).toBe(false);
    expect(q.isClosed).toBe(false);
    expect(q.size).toBe(2);
  });

  it("ends with endWith like push then end when it has room or a waiting consumer", async () => {
    const { q, key } = coalescing(2);
    const waiting = q.next();
    expect(q.endWith(note("a", 1))).toBe(true);
    expect(await waiting).toEqual(item(note("a", 1)));
    expect(await q.next()).toEqual(done);
    const other = coalescing(2);
    other.q.push(note("a", 2));
    expect(other.q.endWith(note("a", 3))).toBe(true);
    expect(await drain(other.q)).toEqual([note("a", 2), note("a", 3)]);
    expect(key).not.toHaveBeenCalled();
    expect(other.key).not.toHaveBeenCalled();
  });

  it("drops the coalescing backlog on fail() and return(), reporting the count once", async () => {
    const failing = coalescing(1);
    failing.q.push(note("a", 1));
    failing.q.push(note("a", 2));
    const err = new Error("boom");
    failing.q.fail(err);
    expect(failing.q.size).toBe(0);
    await expect(failing.q.next()).rejects.toBe(err);
    expect(failing.stats).toEqual([{ coalesced: 1 }]);
    const leaving = coalescing(1);
    leaving.q.push(note("a", 1));
    leaving.q.push(note("a", 2));
    await leaving.q.return();
    expect(leaving.q.size).toBe(0);
    expect(await leaving.q.next()).toEqual(done);
    expect(leaving.stats).toEqual([{ coalesced: 1 }]);
  });

  /** The rules, written plainly (O(n) per operation), to hold the queue's bookkeeping to. */
  class Model {
    items: Note[] = [];
    coalescing = false;
    coalesced = 0;
    constructor(readonly capacity: number) {}
    push(n: Note): boolean {
      if (!this.coalescing) {
        if (this.items.length < this.capacity) {
          this.items.push(n);
          return true;
        }
        if (this.items.length === 0) return false;
        this.coalescing = true;
        const pending = this.items;
        this.items = [];
        for (const p of pending) this.merge(p, Number.POSITIVE_INFINITY);
        if (this.items.length === 0) {
          this.coalescing = false;
          return this.push(n);
        }
      }
      const accepted = this.merge(n, this.capacity);
      if (this.items.length === 0) this.coalescing = false;
      return accepted;
    }
    private merge(n: Note, capacity: number): boolean {
      const at = this.items.findIndex((p) => p.key === n.key);
      if (at < 0) {
        if (this.items.length >= capacity) return false;
        this.items.push(n);
        return true;
      }
      const merged = mergeNotes(this.items[at] as Note, n);
      if (merged === undefined) {
        this.items.splice(at, 1);
        this.coalesced += 2;
      } else {
        this.items[at] = merged;
        this.coalesced++;
      }
      return true;
    }
    pop(): Note | undefined {
      const n = this.items.shift();
      if (this.items.length === 0) this.coalescing = false;
      return n;
    }
  }

  it("takes pending runs apart when it starts coalescing, and coalesces later runs item by item", () => {
    const { q } = coalescing(4);
    const run = [note("a", 1), note("b", 2), note("a", 3)];
    expect(q.pushRun(run)).toBe(true);
    expect(q.poll()).toEqual(note("a", 1));
    expect(q.pushRun([note("c", 4), note("d", 5)])).toBe(true);
    expect(q.isCoalescing).toBe(false);
    // Full (b, a3, c, d): b merges into its pending note.
    expect(q.pushRun([note("b", 6), note("e", 7)])).toBe(false);
    expect(q.isCoalescing).toBe(true);
    expect(q.pollRun()).toBeUndefined();
    expect([q.poll(), q.poll(), q.poll(), q.poll(), q.poll()]).toEqual([
      { key: "b", first: 2, last: 6 },
      note("a", 3),
      note("c", 4),
      note("d", 5),
      undefined,
    ]);
    expect(q.isCoalescing).toBe(false);
    expect(q.pushRun(run)).toBe(true);
    expect(q.pollRun()).toBe(run);
  });

  it("behaves like the plain rules, pushing each item of a run in turn, when items come in runs", () => {
    let seed = 11;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed / 2147483648;
    };
    for (const capacity of [1, 3, 8]) {
      const { q } = coalescing(capacity);
      const model = new Model(capacity);
      let n = 0;
      for (let step = 0; step < 20_000; step++) {
        const r = random();
        if (r < 0.3 && model.items.length > 0) {
          const run = q.pollRun();
          if (run !== undefined) for (const x of run) expect(x).toEqual(model.pop());
        } else if (r < 0.5 && model.items.length > 0) {
          expect(q.poll()).toEqual(model.pop());
        } else {
          const run = Array.from({ length: 1 + Math.floor(random() * 4) }, () =>
            note(`k${Math.floor(random() * capacity * 1.5)}`, ++n, random() < 0.05),
          );
          let accepted = true;
          for (const x of run) {
            if (!model.push(x)) {
              accepted = false;
              break;
            }
          }
          expect(q.pushRun(run)).toBe(accepted);
        }
        expect(q.size).toBe(model.items.length);
        expect(q.isCoalescing).toBe(model.coalescing);
        expect(q.coalesced).toBe(model.coalesced);
      }
    }
  });

  // [case, capacity, distinct keys, chance of a pull, items the consumer leaves, chance of a cancel]
  it.each([
    ["fewer keys than capacity and a consumer slightly too slow", 8, 6, 0.45, 0, 0.05],
    ["more keys than capacity, so refusals", 8, 12, 0.4, 0, 0.05],
    ["a consumer that mostly keeps up", 4, 10, 0.6, 0, 0.05],
    ["capacity 1", 1, 3, 0.5, 0, 0.05],
    ["a consumer that never catches up", 4, 6, 0.3, 1, 0],
    ["a consumer that never catches up, and cancels", 4, 6, 0.3, 1, 0.1],
  ])(
    "behaves like the plain rules with %s",
    async (_, capacity, keyCount, pullRate, left, cancelRate) => {
      let seed = 42;
      const random = () => {
        seed = (seed * 1103515245 + 12345) % 2147483648;
        return seed / 2147483648;
      };
      const { q } = coalescing(capacity);
      const model = new Model(capacity);
      for (let n = 0; n < 20_000; n++) {
        if (random() < pullRate && model.items.length > left) {
          expect((await q.next()).value).toEqual(model.pop());
        } else {
          const next = note(`k${Math.floor(random() * keyCount)}`, n, random() < cancelRate);
          expect(q.push(next)).toBe(model.push(next));
        }
        expect(q.size).toBe(model.items.length);
        expect(q.isCoalescing).toBe(model.coalescing);
        expect(q.coalesced).toBe(model.coalesced);
      }
      expect(await drain(q)).toEqual(model.items);
    },
  );
});
