import { setImmediate as nextTurn } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { type Flushable, FlushScheduler } from "./flush-scheduler.js";

function target(log: string[], name: string, flush?: () => void): Flushable {
  return {
    flush: flush ?? (() => log.push(`flush ${name}`)),
    fail: (err) => log.push(`fail ${name}: ${(err as Error).message}`),
  };
}

describe("FlushScheduler", () => {
  it("flushes what was scheduled in a turn once, after the turn, in order", async () => {
    const log: string[] = [];
    const scheduler = new FlushScheduler();
    scheduler.schedule(target(log, "a"));
    scheduler.schedule(target(log, "b"));
    expect(log).toEqual([]);
    await nextTurn();
    expect(log).toEqual(["flush a", "flush b"]);
    await nextTurn();
    expect(log).toHaveLength(2);
  });

  it("flushes a target scheduled during a run in the next turn", async () => {
    const log: string[] = [];
    const scheduler = new FlushScheduler();
    let rounds = 0;
    const again: Flushable = target(log, "again", () => {
      log.push(`flush again ${++rounds}`);
      if (rounds < 3) scheduler.schedule(again);
    });
    scheduler.schedule(again);
    await nextTurn();
    expect(log).toEqual(["flush again 1"]);
    await nextTurn();
    await nextTurn();
    expect(log).toEqual(["flush again 1", "flush again 2", "flush again 3"]);
  });

  it("fails only the target whose flush threw, and flushes the others", async () => {
    const log: string[] = [];
    const scheduler = new FlushScheduler();
    scheduler.schedule(target(log, "a"));
    scheduler.schedule(
      target(log, "broken", () => {
        throw new Error("boom");
      }),
    );
    scheduler.schedule(target(log, "c"));
    await nextTurn();
    expect(log).toEqual(["flush a", "fail broken: boom", "flush c"]);
  });

  it("keeps no target once it was flushed, across turns of different sizes", async () => {
    const scheduler = new FlushScheduler();
    const flushed: number[] = [];
    for (const size of [1000, 3, 0, 500]) {
      for (let i = 0; i < size; i++) scheduler.schedule(target([], "t", () => flushed.push(i)));
      await nextTurn();
      expect(flushed).toHaveLength(size);
      flushed.length = 0;
    }
    const slots = scheduler as unknown as { ready: unknown[]; spare: unknown[] };
    expect([...slots.ready, ...slots.spare].every((t) => t === undefined)).toBe(true);
  });
});
