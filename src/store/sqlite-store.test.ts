import fs, { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { describeStoreContract } from "../../test/store-contract.js";
import { Operation, type ResourceEvent, ResourceType } from "../watch/model.js";
import { PRUNE_EVENTS, SCOPED_READS, SqliteStore } from "./sqlite-store.js";
import type { Store } from "./store.js";

const dir = mkdtempSync(join(tmpdir(), "eventserver-sqlite-"));
const paths = new WeakMap<Store, string>();
let count = 0;

async function openAt(path: string): Promise<Store> {
  const store = await SqliteStore.open({ path });
  paths.set(store, path);
  return store;
}

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describeStoreContract("SqliteStore", () => openAt(join(dir, `store-${++count}.db`)), {
  reopen: (closed) => {
    const path = paths.get(closed);
    if (path === undefined) throw new Error("not a store of this suite");
    return openAt(path);
  },
});

/** An UPDATE of project n in one organization. */
const event = (n: number): ResourceEvent => ({
  organizationId: "0a0a0a0a-0000-4000-8000-00000000000a",
  resourceType: ResourceType.PROJECT,
  operation: Operation.UPDATE,
  resourceId: `00000000-0000-4000-8000-${n.toString(16).padStart(12, "0")}`,
  environmentId: "",
  creatorId: "",
});

describe("SqliteStore with synchronous full", () => {
  const stores: SqliteStore[] = [];
  afterEach(async () => {
    vi.restoreAllMocks();
    for (const s of stores.splice(0)) await s.close();
  });
  async function open(synchronous?: "full" | "normal"): Promise<SqliteStore> {
    const store = await SqliteStore.open({
      path: join(dir, `sync-${++count}.db`),
      ...(synchronous !== undefined && { synchronous }),
    });
    stores.push(store);
    return store;
  }
  /** fdatasync calls held until released, so a test sees what waits for the disk. */
  function holdSyncs() {
    const held: ((err: NodeJS.ErrnoException | null) => void)[] = [];
    const spy = vi.spyOn(fs, "fdatasync").mockImplementation(((
      _fd: number,
      cb: (err: NodeJS.ErrnoException | null) => void,
    ) => {
      held.push(cb);
    }) as typeof fs.fdatasync);
    return { spy, held };
  }

  it("acknowledges an append only once the write-ahead log is synced, and appends committed meanwhile share the next sync", async () => {
    const store = await open();
    const { spy, held } = holdSyncs();
    const acked: string[] = [];
    const a = store.append([event(1)], 1).then(() => acked.push("a"));
    await vi.waitFor(() => expect(held).toHaveLength(1));
    const b = store.append([event(2)], 1).then(() => acked.push("b"));
    const c = store.append([event(3)], 1).then(() => acked.push("c"));
    await new Promise((r) => setImmediate(r)); // b and c are committed now
    expect(acked).toEqual([]);
    held[0]?.(null);
    await a;
    expect(acked).toEqual(["a"]);
    await vi.waitFor(() => expect(held).toHaveLength(2));
    held[1]?.(null);
    await Promise.all([b, c]);
    expect(acked).toEqual(["a", "b", "c"]);
    expect(spy).toHaveBeenCalledTimes(2);
    expect(await store.lastSequence()).toBe(3);
  });

  it("refuses every append and fails ping after a failed sync, and keeps what was committed", async () => {
    const store = await open();
    vi.spyOn(fs, "fdatasync").mockImplementation(((
      _fd: number,
      cb: (err: NodeJS.ErrnoException | null) => void,
    ) => {
      cb(Object.assign(new Error("EIO: i/o error, fdatasync"), { code: "EIO" }));
    }) as typeof fs.fdatasync);
    const unavailable = { kind: "unavailable", message: expect.stringContaining("restart") };
    await expect(store.append([event(1)], 1)).rejects.toMatchObject(unavailable);
    await expect(store.append([event(2)], 1)).rejects.toMatchObject(unavailable);
    await expect(store.ping()).rejects.toMatchObject(unavailable);
    vi.restoreAllMocks();
    const path = join(dir, `sync-${count}.db`);
    await store.close();
    stores.splice(stores.indexOf(store), 1);
    const again = await SqliteStore.open({ path });
    stores.push(again);
    // The first batch was committed before its sync failed: SQLite keeps it.
    expect(await again.lastSequence()).toBe(1);
  });

  it("numbers on from the log's newest event after a crash (nothing written at close)", async () => {
    const store = await open();
    await store.append([event(1), event(2)], 1);
    await store.append([event(3)], 1);
    // The files as a crash leaves them: the store is still open, its last commit synced.
    const path = join(dir, `crash-${count}.db`);
    const source = join(dir, `sync-${count}.db`);
    fs.copyFileSync(source, path);
    fs.copyFileSync(`${source}-wal`, `${path}-wal`);
    const again = await SqliteStore.open({ path });
    stores.push(again);
    expect(await again.lastSequence()).toBe(3);
    const [next] = await again.append([event(4)], 2);
    expect(next?.sequence).toBe(4);
  });

  it("leaves syncing to SQLite's own settings with synchronous normal", async () => {
    const store = await open("normal");
    const spy = vi.spyOn(fs, "fdatasync");
    await store.append([event(1)], 1);
    expect(spy).not.toHaveBeenCalled();
  });
});

describe("SqliteStore's scoped reads", () => {
  it("walk the (organization, sequence) and (environment, sequence) indexes, in order, without a sort", async () => {
    const path = join(dir, "plan.db");
    await (await SqliteStore.open({ path })).close();
    const db = new DatabaseSync(path);
    try {
      const plan = (sql: string) =>
        (
          db
            .prepare(`EXPLAIN QUERY PLAN ${sql}`)
            .all(...["x", "x", 0, 10].slice(-(sql.split("?").length - 1))) as { detail: string }[]
        )
          .map((r) => r.detail)
          .join("; ");
      expect(plan(SCOPED_READS.organization)).toMatch(
        /^SEARCH events USING (COVERING )?INDEX events_org_sequence \(organization_id=\? AND sequence>\?\)$/,
      );
      expect(plan(SCOPED_READS.environment)).toMatch(
        /^SEARCH events USING INDEX events_environment_sequence \(environment_id=\? AND sequence>\?\)$/,
      );
    } finally {
      db.close();
    }
  });
});

describe("SqliteStore's retention", () => {
  it("drops the time index of a file from an earlier release, keeping its events", async () => {
    const path = join(dir, "before-prefix.db");
    const first = await SqliteStore.open({ path });
    await first.append([event(1), event(2)], 1);
    await first.close();
    // The file as the release before this one left it: the index, and three migrations.
    const db = new DatabaseSync(path);
    db.exec("CREATE INDEX events_created_at ON events (created_at_ms)");
    db.exec("DELETE FROM schema_migrations WHERE version > 3");
    db.close();
    const again = await SqliteStore.open({ path });
    expect((await again.readAfter(0, 10)).map((s) => s.sequence)).toEqual([1, 2]);
    await again.close();
    const check = new DatabaseSync(path);
    try {
      const indexes = check
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'events'")
        .all()
        .map((r) => (r as { name: string }).name);
      expect(indexes).not.toContain("events_created_at");
      // Pruning walks the log in sequence order and deletes a range of it.
      const plan = (sql: string, ...args: number[]) =>
        (check.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...args) as { detail: string }[])
          .map((r) => r.detail)
          .join("; ");
      expect(plan(PRUNE_EVENTS.firstYoung, 0)).toBe("SCAN events");
      expect(plan(PRUNE_EVENTS.deleteBefore, 1, 1)).toMatch(
        /SEARCH events USING INTEGER PRIMARY KEY \(rowid<\?\)/,
      );
    } finally {
      check.close();
    }
  });
});
