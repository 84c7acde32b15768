import { describe, expect, it } from "vitest";
import { batchOf, FrameCache, joinOf, runOf } from "./frames.js";

interface Item {
  readonly n: number;
  readonly shared?: boolean;
}

/** A cache whose encodings are counted, keeping only shared items when `keepShared`. */
function cache(keepShared: boolean) {
  const made: number[] = [];
  const frames = new FrameCache<Item>(
    (item) => {
      made.push(item.n);
      return Buffer.from([item.n]);
    },
    keepShared ? (item) => item.shared === true : undefined,
  );
  return { frames, made };
}

describe("FrameCache", () => {
  it("encodes an item once and gives the same bytes to every stream that asks", () => {
    const { frames, made } = cache(false);
    const a = { n: 1 };
    const b = { n: 2 };
    const first = frames.get(a);
    frames.get(b);
    expect(frames.get(a)).toBe(first);
    expect(made).toEqual([1, 2]);
  });

  it("does not remember an item no other stream writes (keep says no), only a shared one", () => {
    const { frames, made } = cache(true);
    const live = { n: 1, shared: true };
    const replayed = { n: 2 };
    frames.get(live);
    frames.get(replayed);
    frames.get(replayed);
    frames.get(live);
    expect(made).toEqual([1, 2, 2]);
  });
});

describe("batchOf, runOf, joinOf", () => {
  const frame = (item: Item) => Buffer.from([item.n]);
  const join = (parts: readonly Buffer[], length: number) => Buffer.concat(parts, length);

  it("joins a batch once for every stream whose items are the same objects", () => {
    const batch = batchOf(frame, join);
    const items = [{ n: 1 }, { n: 2 }];
    const bytes = batch(items);
    expect([...bytes]).toEqual([1, 2]);
    expect(batch([...items])).toBe(bytes);
    expect(batch([items[0] as Item, { n: 2 }])).not.toBe(bytes);
  });

  it("makes a run's bytes once, however many streams write it and in whatever order", () => {
    let joins = 0;
    const run = runOf(
      batchOf(frame, (parts, length) => {
        joins++;
        return join(parts, length);
      }),
    );
    const r1 = [{ n: 1 }, { n: 2 }];
    const r2 = [{ n: 3 }, { n: 4 }];
    const b1 = run(r1);
    const b2 = run(r2);
    expect(run(r1)).toBe(b1);
    expect(run(r2)).toBe(b2);
    expect(joins).toBe(2);
  });

  it("joins the same parts once, and other parts anew", () => {
    const joinParts = joinOf();
    const a = Buffer.from([1]);
    const b = Buffer.from([2]);
    const scratch: (Buffer | undefined)[] = [a, b, undefined];
    const ab = joinParts(scratch, 2);
    expect([...ab]).toEqual([1, 2]);
    expect(joinParts([a, b], 2)).toBe(ab);
    expect([...joinParts([b, a], 2)]).toEqual([2, 1]);
  });
});
