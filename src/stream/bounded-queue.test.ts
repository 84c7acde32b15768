import { describe, expect, it } from "vitest";
import { BoundedQueue } from "./bounded-queue.js";

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
const item = (value: number) => ({ value, done: false });

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
