import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Operation, ResourceType } from "../src/watch/model.js";
import { collectUntil, type EventInit, publish, type SeenEvent } from "./helpers/clients.js";
import { ORG_A, TOKEN_ENTRIES, TOKENS, uuid } from "./helpers/fixtures.js";
import { scratchDatabase } from "./helpers/postgres.js";
import { connectClients, sdkClient, type Watch, type WatchClient } from "./helpers/watchers.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "events-replicas-"));
const tokensFile = join(dir, "tokens.json");
writeFileSync(tokensFile, JSON.stringify({ tokens: TOKEN_ENTRIES }));

let db: Awaited<ReturnType<typeof scratchDatabase>>;
const replicas: ChildProcess[] = [];

interface Replica {
  readonly url: string;
  readonly process: ChildProcess;
}

/** Starts `node dist/main.js` on the shared database; resolves with its URL once it listens. */
async function startReplica(): Promise<Replica> {
  const child = spawn(process.execPath, ["dist/main.js"], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? "",
      PORT: "0",
      HOST: "127.0.0.1",
      AUTH_TOKENS_FILE: tokensFile,
      DATABASE_URL: db.url,
      SHUTDOWN_TIMEOUT_MS: "2000",
      PUBLISH_MAX_EVENTS_PER_SECOND: "0",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  replicas.push(child);
  let output = "";
  child.stderr?.on("data", (d: Buffer) => {
    output += d.toString();
  });
  return new Promise((resolve, reject) => {
    child.stdout?.on("data", (d: Buffer) => {
      output += d.toString();
      const m = /"port":(\d+).*"msg":"listening"/.exec(output);
      if (m) resolve({ url: `http://127.0.0.1:${m[1]}`, process: child });
    });
    child.once("exit", (code) => reject(new Error(`replica exited ${code}: ${output}`)));
  });
}

beforeAll(async () => {
  db = await scratchDatabase();
});
afterAll(async () => {
  const running = replicas.filter((r) => r.exitCode === null && r.signalCode === null);
  const exited = running.map((r) => once(r, "exit"));
  for (const r of running) r.kill("SIGKILL");
  await Promise.all(exited);
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

const project = (id: string): EventInit => ({
  resourceType: ResourceType.PROJECT,
  operation: Operation.UPDATE,
  resourceId: id,
  organizationId: ORG_A,
});

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
    const a = await startReplica();
    const b = await startReplica();
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
      publishes.push(publish(i % 2 === 0 ? a.url : b.url, batch.map(project)));
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
    const a = await startReplica();
    const b = await startReplica();
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
