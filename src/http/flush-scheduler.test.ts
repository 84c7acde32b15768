import { setImmediate as nextTurn } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { type Flushable, FlushScheduler, YIELD_AFTER_STREAMS } from "./flush-scheduler.js";

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
    const direct = scheduler.group(undefined);
    scheduler.schedule(target(log, "a"), direct);
    scheduler.schedule(target(log, "b"), direct);
    expect(log).toEqual([]);
    await nextTurn();
    expect(log).toEqual(["flush a", "flush b"]);
    await nextTurn();
    expect(log).toHaveLength(2);
  });

  it("flushes a target scheduled during a run in the next turn", async () => {
    const log: string[] = [];
    const scheduler = new FlushScheduler();
    const group = scheduler.group({});
    let rounds = 0;
    const again: Flushable = target(log, "again", () => {
      log.push(`flush again ${++rounds}`);
      if (rounds < 3) scheduler.schedule(again, group);
    });
    scheduler.schedule(again, group);
    await nextTurn();
    expect(log).toEqual(["flush again 1"]);
    await nextTurn();
    await nextTurn();
    expect(log).toEqual(["flush again 1", "flush again 2", "flush again 3"]);
  });

  it("fails only the target whose flush threw, and flushes the others", async () => {
    const log: string[] = [];
    const scheduler = new FlushScheduler();
    const group = scheduler.group({});
    scheduler.schedule(target(log, "a"), group);
    scheduler.schedule(
      target(log, "broken", () => {
        throw new Error("boom");
      }),
      group,
    );
    scheduler.schedule(target(log, "c"), group);
    await nextTurn();
    expect(log).toEqual(["flush a", "fail broken: boom", "flush c"]);
  });

  it("gives each connection one group, and every direct stream the same one", () => {
    const scheduler = new FlushScheduler();
    const session = {};
    expect(scheduler.group(session)).toBe(scheduler.group(session));
    expect(scheduler.group(session)).not.toBe(scheduler.group({}));
    expect(scheduler.group(undefined)).toBe(scheduler.group(undefined));
    expect(scheduler.group(session).sendsLater).toBe(true);
    expect(scheduler.group(undefined).sendsLater).toBe(false);
  });

  it("flushes connection by connection, yielding the turn between them once enough were flushed", async () => {
    const log: string[] = [];
    const scheduler = new FlushScheduler();
    const sessions = [{}, {}, {}];
    const groups = sessions.map((s) => scheduler.group(s));
    // Interleaved, as a view's watchers come: each connection's streams are flushed together.
    for (let i = 0; i < YIELD_AFTER_STREAMS; i++) {
      for (const [c, group] of groups.entries()) scheduler.schedule(target(log, `c${c}`), group);
    }
    const flushedBy = () => [0, 1, 2].map((c) => log.filter((l) => l === `flush c${c}`).length);
    await nextTurn();
    expect(flushedBy()).toEqual([YIELD_AFTER_STREAMS, 0, 0]);
    await nextTurn();
    expect(flushedBy()).toEqual([YIELD_AFTER_STREAMS, YIELD_AFTER_STREAMS, 0]);
    await nextTurn();
    expect(flushedBy()).toEqual([YIELD_AFTER_STREAMS, YIELD_AFTER_STREAMS, YIELD_AFTER_STREAMS]);
  });

  it("flushes small connections together, and direct streams without counting them", async () => {
    const log: string[] = [];
    const scheduler = new FlushScheduler();
    const direct = scheduler.group(undefined);
    for (let i = 0; i < 100; i++) scheduler.schedule(target(log, "direct"), direct);
    // Connections of two streams: YIELD_AFTER_STREAMS / 2 of them fit in one turn.
    const connections = YIELD_AFTER_STREAMS;
    for (let c = 0; c < connections; c++) {
      const group = scheduler.group({});
      scheduler.schedule(target(log, "h2"), group);
      scheduler.schedule(target(log, "h2"), group);
    }
    await nextTurn();
    expect(log.filter((l) => l === "flush direct")).toHaveLength(100);
    expect(log.filter((l) => l === "flush h2")).toHaveLength(YIELD_AFTER_STREAMS);
    await nextTurn();
    expect(log.filter((l) => l === "flush h2")).toHaveLength(2 * connections);
  });

  it("keeps connections that waited ahead of those queued during a run", async () => {
    const log: string[] = [];
    const scheduler = new FlushScheduler();
    const a = scheduler.group({});
    const b = scheduler.group({});
    const c = scheduler.group({});
    for (let i = 0; i < YIELD_AFTER_STREAMS; i++) scheduler.schedule(target(log, "a"), a);
    scheduler.schedule(
      target(log, "b", () => {
        log.push("flush b");
        // Queued during the run: after what was waiting before it, in the next turn.
        scheduler.schedule(target(log, "c"), c);
      }),
      b,
    );
    await nextTurn();
    expect(log).toHaveLength(YIELD_AFTER_STREAMS);
    scheduler.schedule(target(log, "a2"), a);
    await nextTurn();
    expect(log.slice(YIELD_AFTER_STREAMS)).toEqual(["flush b", "flush a2"]);
    await nextTurn();
    expect(log.at(-1)).toBe("flush c");
  });

  it("keeps no target once it was flushed, across turns of different sizes", async () => {
    const scheduler = new FlushScheduler();
    const direct = scheduler.group(undefined);
    const flushed: number[] = [];
    for (const size of [1000, 3, 0, 500]) {
      for (let i = 0; i < size; i++) {
        scheduler.schedule(
          target([], "t", () => flushed.push(i)),
          direct,
        );
      }
      await nextTurn();
      expect(flushed).toHaveLength(size);
      flushed.length = 0;
    }
    const slots = direct as unknown as { ready: unknown[]; spare: unknown[] };
    expect([...slots.ready, ...slots.spare].every((t) => t === undefined)).toBe(true);
    expect((scheduler as unknown as { queue: unknown[] }).queue).toHaveLength(0);
  });
});
