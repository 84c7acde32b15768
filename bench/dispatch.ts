import { Dispatcher } from "../src/bus/dispatcher.js";
import type { ResourceEvent } from "../src/watch/model.js";
import { Operation, ResourceType } from "../src/watch/model.js";
import { planWatch, type WatchPlan } from "../src/watch/plan.js";

/**
 * Dispatch scaling, in process: the cost of publishing one event that 10 watchers receive,
 * as watchers of other organizations are added. With indexed dispatch it stays flat.
 */

const TARGET_ORG = "00000000-0000-4000-8000-000000000001";
const orgId = (i: number) => `00000000-0000-4000-8000-${(i + 2).toString(16).padStart(12, "0")}`;
const userId = (i: number) => `10000000-0000-4000-8000-${i.toString(16).padStart(12, "0")}`;

function plan(org: string, i: number): WatchPlan {
  const p = planWatch(
    {
      subject: userId(i),
      organization: org,
      role: "member",
      expiresAtMs: undefined,
      credentialId: `c${i}`,
    },
    { scope: { kind: "organization" }, filters: [] },
    undefined,
  );
  if ("kind" in p) throw new Error(p.message);
  return p;
}

export interface DispatchResult {
  readonly idleWatchers: number;
  readonly nsPerEvent: number;
}

/** Publishes `events` events (batches of 100) to 10 target watchers beside `idle` others. */
async function measure(idle: number, events: number): Promise<number> {
  const bus = new Dispatcher();
  const abort = new AbortController();
  const targets = [];
  for (let i = 0; i < 10; i++) {
    targets.push(
      bus.subscribe(plan(TARGET_ORG, i), { signal: abort.signal, maxBacklog: events + 1 }),
    );
  }
  for (let i = 0; i < idle; i++) {
    bus.subscribe(plan(orgId(i % 1000), 1000 + i), { signal: abort.signal, maxBacklog: 16 });
  }
  const batch: ResourceEvent[] = [];
  for (let i = 0; i < 100; i++) {
    batch.push({
      resourceType: ResourceType.PROJECT,
      operation: Operation.UPDATE,
      resourceId: `20000000-0000-4000-8000-${i.toString(16).padStart(12, "0")}`,
      organizationId: TARGET_ORG,
      environmentId: "",
      creatorId: "",
    });
  }
  // What a publish does after the store has numbered the batch: one shared object per event,
  // dispatched through the indexes.
  let sequence = 0;
  const start = process.hrtime.bigint();
  for (let n = 0; n < events; n += batch.length) {
    const publishedAtMs = performance.now();
    for (const event of batch) {
      bus.dispatch({ sequence: ++sequence, event, creatorId: "", publishedAtMs, acceptedAtMs: 0 });
    }
  }
  const ns = Number(process.hrtime.bigint() - start);
  for (const t of targets) {
    let got = 0;
    for (;;) {
      const r = await t.next();
      if (r.done || ++got === events) break;
    }
    if (got !== events) throw new Error(`a target watcher got ${got} of ${events} events`);
  }
  abort.abort(new Error("done"));
  bus.close(new Error("done"));
  return ns / events;
}

export async function runDispatch(options: { quick: boolean }): Promise<DispatchResult[]> {
  const events = options.quick ? 50_000 : 200_000;
  const rounds = options.quick ? 3 : 5;
  const results: DispatchResult[] = [];
  await measure(0, events); // warm-up
  for (const idle of [0, 1_000, 10_000]) {
    const samples: number[] = [];
    for (let r = 0; r < rounds; r++) samples.push(await measure(idle, events));
    samples.sort((a, b) => a - b);
    results.push({ idleWatchers: idle, nsPerEvent: samples[Math.floor(samples.length / 2)] ?? 0 });
  }
  return results;
}
