import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collectUntil, project, publish, type SeenEvent } from "./helpers/clients.js";
import { TOKENS, uuid } from "./helpers/fixtures.js";
import { createReplicas, type Replicas } from "./helpers/replicas.js";
import { connectClients, sdkClient, type Watch, type WatchClient } from "./helpers/watchers.js";

let replicas: Replicas;
beforeAll(async () => {
  replicas = await createReplicas();
});
afterAll(() => replicas?.stopAll());

/** Publishes until `watch` has seen one of them: the watch is then subscribed. */
async function ready(url: string, watch: Watch): Promise<void> {
  const probe = uuid();
  const seen = collectUntil<SeenEvent>(watch.events, (e) => e.resourceId === probe);
  let done = false;
  void seen.then(() => {
    done = true;
  });
  while (!done) {
    await publish(url, [project(probe)]);
    await Promise.race([seen, new Promise((r) => setTimeout(r, 50))]);
  }
}

describe("replicas on one PostgreSQL", () => {
  it("deliver events published on either replica to watchers on both, in the same order, once", async () => {
    const a = await replicas.start();
    const b = await replicas.start();
    const onA = await (connectClients[1] as WatchClient).open(a.url, TOKENS.adminA);
    const onB = await sdkClient.open(b.url, TOKENS.adminA);
    await ready(a.url, onA);
    await ready(b.url, onB);
    const ids: string[] = [];
    const publishes: Promise<unknown>[] = [];
    for (let i = 0; i < 20; i++) {
      const batch = Array.from({ length: 10 }, () => uuid());
      ids.push(...batch);
      // Interleaved, concurrent: the global order is whatever the database decides.
      publishes.push(
        publish(
          i % 2 === 0 ? a.url : b.url,
          batch.map((id) => project(id)),
        ),
      );
    }
    await Promise.all(publishes);
    const marker = uuid();
    await publish(a.url, [project(marker)]);
    const seenA = (await collectUntil<SeenEvent>(onA.events, (e) => e.resourceId === marker)).map(
      (e) => e.resourceId,
    );
    const seenB = (await collectUntil<SeenEvent>(onB.events, (e) => e.resourceId === marker)).map(
      (e) => e.resourceId,
    );
    const wanted = new Set(ids);
    const orderA = seenA.filter((id) => wanted.has(id));
    const orderB = seenB.filter((id) => wanted.has(id));
    expect(orderA).toHaveLength(ids.length);
    expect(new Set(orderA).size).toBe(ids.length);
    expect(orderB).toEqual(orderA);
    onA.close();
    onB.close();
  });

  it("lose nothing on the surviving replica when another is killed mid-stream", async () => {
    const a = await replicas.start();
    const b = await replicas.start();
    const onB = await (connectClients[0] as WatchClient).open(b.url, TOKENS.adminA);
    await ready(b.url, onB);
    const acknowledged: string[] = [];
    for (let i = 0; i < 30; i++) {
      const id = uuid();
      const target = i % 2 === 0 ? a : b;
      if (i === 15) a.process.kill("SIGKILL");
      try {
        await publish(target.url, [project(id)]);
        acknowledged.push(id);
      } catch {
        // Publishes to the killed replica fail; they were never acknowledged.
      }
    }
    const marker = uuid();
    await publish(b.url, [project(marker)]);
    const seen = (await collectUntil<SeenEvent>(onB.events, (e) => e.resourceId === marker)).map(
      (e) => e.resourceId,
    );
    for (const id of acknowledged) expect(seen).toContain(id);
    expect(acknowledged.length).toBeGreaterThanOrEqual(22);
    onB.close();
  });
});
