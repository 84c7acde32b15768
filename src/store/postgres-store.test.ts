import { randomBytes } from "node:crypto";
import { createServer, type Socket } from "node:net";
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type ProxiedConnection, TcpProxy, targetOf } from "../../test/helpers/tcp-proxy.js";
import { describeStoreContract } from "../../test/store-contract.js";
import { ServiceError } from "../errors.js";
import { Operation, type ResourceEvent, ResourceType } from "../watch/model.js";
import { PostgresStore, type PostgresStoreOptions, scopedReadSql } from "./postgres-store.js";
import type { Store } from "./store.js";

/**
 * Runs against a real PostgreSQL (CI starts one): every store gets a scratch database of this
 * run, dropped at the end. Unreachable PostgreSQL fails the tests; it does not skip them.
 */
const SERVER_URL = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const PREFIX = "eventserver_test_";
/** Names carry their run's start (s since the epoch), so a later run can sweep what a killed one left. */
const RUN = `${PREFIX}${Math.floor(Date.now() / 1000)}_${randomBytes(4).toString("hex")}`;
const STALE_AFTER_S = 3600;

let admin: pg.Pool | undefined;
const databases: string[] = [];
const urls = new WeakMap<Store, string>();

function redacted(url: string): string {
  const u = new URL(url);
  if (u.password !== "") u.password = "***";
  return u.toString();
}

beforeAll(async () => {
  // A few connections: dropping the scratch databases one after another would take seconds.
  // No wait limit for a pooled connection: each DROP DATABASE checkpoints, which takes a while
  // on a busy machine; the hooks' own timeouts bound the whole.
  const pool = new pg.Pool({ connectionString: SERVER_URL, max: 4 });
  pool.on("error", () => {});
  try {
    await pool.query("SELECT 1");
  } catch (err) {
    await pool.end().catch(() => {});
    throw new Error(
      `PostgreSQL is not reachable at ${redacted(SERVER_URL)} (${String(err)}). These tests need ` +
        "it: start it (locally: pg_ctlcluster --skip-systemctl-redirect <version> main start) " +
        "or point TEST_DATABASE_URL at a server whose user may CREATE DATABASE.",
      { cause: err },
    );
  }
  admin = pool;
  const nowS = Math.floor(Date.now() / 1000);
  const res = await pool.query<{ datname: string }>(
    "SELECT datname FROM pg_database WHERE starts_with(datname, $1)",
    [PREFIX],
  );
  const stale = res.rows
    .map((r) => r.datname)
    .filter((name) => nowS - Number(name.slice(PREFIX.length).split("_")[0]) > STALE_AFTER_S);
  await Promise.all(
    stale.map((name) =>
      pool.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`),
    ),
  );
});

afterAll(async () => {
  if (admin === undefined) return;
  const pool = admin;
  await Promise.all(
    databases.map((name) =>
      pool.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`),
    ),
  );
  await pool.end();
}, 180_000);

/** A new, empty database of this run; returns its URL. */
async function scratchDatabase(): Promise<string> {
  if (admin === undefined) throw new Error("PostgreSQL is not reachable (see the first failure)");
  const name = `${RUN}_${databases.length + 1}`;
  await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
  databases.push(name);
  const u = new URL(SERVER_URL);
  u.pathname = `/${name}`;
  return u.toString();
}

async function openAt(
  url: string,
  more: Partial<PostgresStoreOptions> = {},
): Promise<PostgresStore> {
  const store = await PostgresStore.open({ url, ...more });
  urls.set(store, url);
  return store;
}

describeStoreContract("PostgresStore", async () => openAt(await scratchDatabase()), {
  reopen: (closed) => {
    const url = urls.get(closed);
    if (url === undefined) throw new Error("not a store of this suite");
    return openAt(url);
  },
});

const ORG = "0a0a0a0a-0000-4000-8000-00000000000a";
const ALICE = "0c0c0c0c-0000-4000-8000-0000000000a1";
const NOW = 1_700_000_000_000;

function id(n: number): string {
  return `0f0f0f0f-0000-4000-8000-${n.toString(16).padStart(12, "0")}`;
}

function ev(more: Partial<ResourceEvent> = {}): ResourceEvent {
  return {
    resourceType: ResourceType.PROJECT,
    operation: Operation.CREATE,
    resourceId: id(1),
    organizationId: ORG,
    environmentId: "",
    creatorId: "",
    ...more,
  };
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = () => {};
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/**
 * A TCP proxy in front of PostgreSQL that breaks the connection of the next COMMIT: `after`
 * forwards the COMMIT and resets the client before the answer reaches it (the transaction
 * committed, the client cannot know); `before` resets the client instead of forwarding it.
 */
class CommitBreaker extends TcpProxy {
  private armed: "before" | "after" | undefined;
  /** Clients whose COMMIT went through: their next answer is never delivered. */
  private readonly committing = new WeakSet<Socket>();

  arm(mode: "before" | "after"): void {
    this.armed = mode;
  }

  protected override relay(chunk: Buffer, to: Socket, connection: ProxiedConnection): void {
    const { client, upstream } = connection;
    const mode = this.armed;
    if (to === upstream && mode !== undefined && chunk.includes("COMMIT\0")) {
      this.armed = undefined;
      if (mode === "before") {
        client.resetAndDestroy();
        upstream.destroy();
        return;
      }
      this.committing.add(client);
    } else if (to === client && this.committing.has(client)) {
      client.resetAndDestroy();
      return;
    }
    super.relay(chunk, to, connection);
  }
}

describe("PostgresStore on a shared database", () => {
  const opened: Store[] = [];
  const breakers: CommitBreaker[] = [];
  const open = async (url: string, more: Partial<PostgresStoreOptions> = {}) => {
    const store = await openAt(url, more);
    opened.push(store);
    return store;
  };
  /** A store of a new database (at `url`) that reaches it through `breaker`. */
  const behindBreaker = async (more: Partial<PostgresStoreOptions> = {}) => {
    const url = await scratchDatabase();
    const breaker = new CommitBreaker(targetOf(SERVER_URL));
    await breaker.start();
    breakers.push(breaker);
    const store = await open(breaker.urlOf(url), { commitOutcomeTimeoutMs: 5000, ...more });
    return { url, breaker, store };
  };

  afterEach(async () => {
    for (const breaker of breakers.splice(0)) breaker.close();
    await Promise.all(opened.splice(0).map((s) => s.close()));
  });

  it("gives two replicas appending at once one gap-free order, each event once", async () => {
    const url = await scratchDatabase();
    const [one, two] = await Promise.all([open(url), open(url)]);
    const batch = (replica: number, n: number) =>
      Array.from({ length: 5 }, (_, i) =>
        ev({ resourceId: id(replica * 10_000 + n * 10 + i), creatorId: ALICE }),
      );
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, n) => [
        one.append(batch(1, n), NOW),
        two.append(batch(2, n), NOW),
      ]).flat(),
    );
    for (const stored of results) {
      const first = stored[0]?.sequence ?? 0;
      expect(stored.map((s) => s.sequence)).toEqual([0, 1, 2, 3, 4].map((i) => first + i));
    }
    const given = results.flat().sort((a, b) => a.sequence - b.sequence);
    expect(given.map((s) => s.sequence)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));

    for (const replica of [one, two]) {
      const read = await replica.readAfter(0, 1000);
      expect(read.map((s) => s.sequence)).toEqual(given.map((s) => s.sequence));
      expect(read.map((s) => s.event.resourceId)).toEqual(given.map((s) => s.event.resourceId));
      expect(new Set(read.map((s) => s.event.resourceId)).size).toBe(200);
      expect(await replica.lastSequence()).toBe(200);
    }
    // What one replica learned, the other uses.
    const [recalled] = await two.append(
      [ev({ resourceId: id(10_000), operation: Operation.UPDATE })],
      NOW,
    );
    expect(recalled).toMatchObject({ sequence: 201, creatorId: ALICE });
  });

  it("appends a key once when two replicas race it: the other answers replayed", async () => {
    const url = await scratchDatabase();
    const [one, two] = await Promise.all([open(url), open(url)]);
    // Both look the key up while a third transaction holds the append lock, so both miss it;
    // the second to take the lock then meets the first's row and runs its group again.
    const holder = new pg.Client({ connectionString: url });
    await holder.connect();
    try {
      await holder.query("BEGIN");
      await holder.query("SELECT last FROM event_sequence WHERE id = 1 FOR UPDATE");
      const batch = [ev({ resourceId: id(1) }), ev({ resourceId: id(2) })];
      const key = { publisher: ALICE, key: "race" };
      const racing = [one.appendOnce(batch, NOW, key), two.appendOnce(batch, NOW, key)];
      const keyless = one.append([ev({ resourceId: id(3) })], NOW);
      await expect
        .poll(async () => {
          const res = await holder.query(
            "SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock'",
          );
          return res.rows[0]?.n;
        })
        .toBeGreaterThanOrEqual(2);
      await holder.query("COMMIT");
      const results = await Promise.all(racing);
      expect(results.map((r) => r.replayed).sort()).toEqual([false, true]);
      const [written, replayed] = results[0]?.replayed ? [results[1], results[0]] : results;
      const sequences = written?.replayed === false ? written.events.map((s) => s.sequence) : [];
      expect(replayed).toEqual({
        replayed: true,
        firstSequence: sequences[0],
        lastSequence: sequences[1],
      });
      await keyless;
      expect((await one.readAfter(0, 100)).map((s) => s.event.resourceId).sort()).toEqual(
        [id(1), id(2), id(3)].sort(),
      );
    } finally {
      await holder.end();
    }
  });

  it("acknowledges a batch whose COMMIT reached the database though the connection died before the answer", async () => {
    const { url, breaker, store } = await behindBreaker();
    const direct = await open(url);
    await store.append([ev({ resourceId: id(1) })], NOW);
    breaker.arm("after");
    const stored = await store.append([ev({ resourceId: id(2) }), ev({ resourceId: id(3) })], NOW);
    expect(stored.map((s) => s.sequence)).toEqual([2, 3]);
    breaker.arm("after");
    const keyed = await store.appendOnce([ev({ resourceId: id(4) })], NOW, {
      publisher: ALICE,
      key: "k",
    });
    expect(keyed).toMatchObject({ replayed: false });
    expect((await direct.readAfter(0, 100)).map((s) => s.sequence)).toEqual([1, 2, 3, 4]);
  });

  it("answers unavailable, nothing written, when the COMMIT never reached the database", async () => {
    const { url, breaker, store } = await behindBreaker();
    const direct = await open(url);
    breaker.arm("before");
    const lost = store.append([ev({ resourceId: id(1) })], NOW);
    await expect(lost).rejects.toMatchObject({ kind: "unavailable" });
    await expect(lost).rejects.toThrow(/nothing was written/);
    expect(await direct.lastSequence()).toBe(0);
    // The sequence the lost transaction took was rolled back with it: no gap.
    expect((await store.append([ev({ resourceId: id(2) })], NOW)).map((s) => s.sequence)).toEqual([
      1,
    ]);
  });

  it("answers unavailable with the outcome unknown when the caller's signal ends the search", async () => {
    const { breaker, store } = await behindBreaker({ connectionTimeoutMs: 500 });
    await store.append([ev({ resourceId: id(9) })], NOW); // an open connection, in the pool
    breaker.arm("after");
    // New connections are refused from now on: the search cannot tell.
    breaker.refuse();
    const caller = new AbortController();
    const lost = store.append([ev({ resourceId: id(1) })], NOW, { signal: caller.signal });
    lost.catch(() => {});
    setTimeout(() => caller.abort(), 300);
    await expect(lost).rejects.toMatchObject({ kind: "unavailable" });
    await expect(lost).rejects.toThrow(/outcome is unknown.*same idempotency_key is safe/);
  });

  it("wakes the listeners of another replica when it appends, until they stop", async () => {
    const url = await scratchDatabase();
    const [one, two] = await Promise.all([open(url), open(url)]);
    let wakeups = 0;
    let woken = deferred();
    const stop = await one.listen(() => {
      wakeups++;
      woken.resolve();
    });
    await two.append([ev()], NOW);
    await woken.promise;
    expect(wakeups).toBe(1);

    woken = deferred();
    await one.append([ev({ operation: Operation.UPDATE })], NOW);
    await woken.promise;
    expect(wakeups).toBe(2);

    await stop();
    // A listener that is still there proves the NOTIFY went out; the stopped one stays silent.
    const control = deferred();
    const stopControl = await two.listen(() => control.resolve());
    await two.append([ev({ operation: Operation.UPDATE })], NOW);
    await control.promise;
    await stopControl();
    expect(wakeups).toBe(2);
  });

  it("migrates once when three replicas open a new database at the same time", async () => {
    const url = await scratchDatabase();
    const stores = await Promise.all([open(url), open(url), open(url)]);
    const secrets = await Promise.all(stores.map((s) => s.secret()));
    expect(secrets[1]).toEqual(secrets[0]);
    expect(secrets[2]).toEqual(secrets[0]);
    const logs = await Promise.all(stores.map((s) => s.log()));
    expect(new Set(logs.map((l) => l.id)).size).toBe(1);
    const check = new pg.Client({ connectionString: url });
    await check.connect();
    try {
      const res = await check.query("SELECT version FROM schema_migrations ORDER BY version");
      expect(res.rows.map((r) => r.version)).toEqual([1, 2, 3, 4, 5]);
    } finally {
      await check.end();
    }
    const [first] = await Promise.all(
      stores.map((s, i) => s.append([ev({ resourceId: id(i) })], NOW)),
    );
    expect(first?.[0]?.sequence).toBeGreaterThan(0);
    expect(await stores[2]?.lastSequence()).toBe(3);
  });

  it("rolls a failing append back whole and stays usable", async () => {
    const store = await open(await scratchDatabase());
    const env = id(0xe1);
    const failing = store.append(
      [
        ev({
          resourceType: ResourceType.ENVIRONMENT,
          resourceId: env,
          environmentId: env,
          creatorId: ALICE,
        }),
        // Not a UUID: the audit part of the batch's one write fails, after the counter moved.
        ev({ resourceId: id(2), actorId: "not-a-uuid" }),
      ],
      NOW,
    );
    await expect(failing).rejects.toThrow();
    expect(await store.lastSequence()).toBe(0);
    expect(await store.readAfter(0, 10)).toEqual([]);
    expect(await store.environment(env)).toBeUndefined();
    const stored = await store.append([ev()], NOW);
    expect(stored.map((s) => s.sequence)).toEqual([1]);
  });

  it("gives up with unavailable when the append lock is held too long, and writes nothing", async () => {
    const url = await scratchDatabase();
    const store = await open(url, { statementTimeoutMs: 300 });
    const holder = new pg.Client({ connectionString: url });
    await holder.connect();
    try {
      await holder.query("BEGIN");
      await holder.query("SELECT last FROM event_sequence FOR UPDATE");
      await expect(store.append([ev()], NOW)).rejects.toMatchObject({ kind: "unavailable" });
      await holder.query("ROLLBACK");
    } finally {
      await holder.end();
    }
    expect((await store.append([ev()], NOW)).map((s) => s.sequence)).toEqual([1]);
  });

  it("deletes in chunks until nothing older is left", async () => {
    const store = await open(await scratchDatabase(), { pruneChunkRows: 7 });
    await store.append(
      Array.from({ length: 30 }, (_, i) => ev({ resourceId: id(i), actorId: ALICE })),
      NOW - 1000,
    );
    await store.append([ev({ resourceId: id(99), actorId: ALICE })], NOW);
    await store.prune({ eventsBeforeMs: NOW, auditBeforeMs: NOW });
    expect((await store.readAfter(0, 100)).map((s) => s.sequence)).toEqual([31]);
    const left = await store.listAudit({
      filter: {
        organizationId: ORG,
        actorIds: [],
        actorPrincipals: [],
        subjectIds: [],
        subjectTypes: [],
      },
      descending: false,
      limit: 100,
    });
    expect(left.map((e) => e.subjectId)).toEqual([id(99)]);
  });

  it("fails to open with unavailable when nothing listens", async () => {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
    const address = probe.address();
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    if (address === null || typeof address === "string") throw new Error("no port");
    const u = new URL(SERVER_URL);
    u.hostname = "127.0.0.1";
    u.port = String(address.port);
    const opening = PostgresStore.open({ url: u.toString() });
    await expect(opening).rejects.toBeInstanceOf(ServiceError);
    await expect(opening).rejects.toMatchObject({
      kind: "unavailable",
      message: "database unavailable",
    });
  });

  it("survives a backend terminated in the same read as its ReadyForQuery", async () => {
    // A stand-in PostgreSQL that accepts any login, says ReadyForQuery and, in the same write,
    // FATAL 57P01 (what pg_terminate_backend sends), as a real one does when it terminates a
    // backend that has just started. pg parses both in one go, while the pool hands the client
    // over: an 'error' emitted then, with no listener, would end the process.
    const message = (type: string, body: Buffer) => {
      const head = Buffer.alloc(5);
      head.write(type, 0, "latin1");
      head.writeInt32BE(body.length + 4, 1);
      return Buffer.concat([head, body]);
    };
    const fields = (f: Record<string, string>) =>
      Buffer.concat([
        ...Object.entries(f).map(([k, v]) => Buffer.from(`${k}${v}\0`, "utf8")),
        Buffer.from([0]),
      ]);
    const greeting = Buffer.concat([
      message("R", Buffer.from([0, 0, 0, 0])), // AuthenticationOk
      message("Z", Buffer.from("I")), // ReadyForQuery, idle
      message(
        "E",
        fields({
          S: "FATAL",
          V: "FATAL",
          C: "57P01",
          M: "terminating connection due to administrator command",
        }),
      ),
    ]);
    const accepted: Socket[] = [];
    const fake = createServer((socket) => {
      accepted.push(socket);
      socket.on("error", () => {});
      // The startup message (no SSL request: sslmode is off) is all a login sends.
      socket.once("data", () => socket.end(greeting));
    });
    await new Promise<void>((resolve) => fake.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = fake.address() as { port: number };
      const opening = PostgresStore.open({
        url: `postgres://postgres@127.0.0.1:${port}/postgres`,
        connectionTimeoutMs: 1000,
      });
      await expect(opening).rejects.toMatchObject({ kind: "unavailable" });
      expect(accepted.length).toBeGreaterThan(0);
    } finally {
      for (const s of accepted) s.destroy();
      await new Promise<void>((resolve) => fake.close(() => resolve()));
    }
  });

  it("answers unavailable while the database is cut off, writes nothing, and recovers", async () => {
    const url = await scratchDatabase();
    const direct = await open(url);
    const proxy = new TcpProxy(targetOf(SERVER_URL));
    await proxy.start();
    try {
      const store = await open(proxy.urlOf(url), {
        connectionTimeoutMs: 1000,
        pingTimeoutMs: 1000,
        listenBackoffMinMs: 10,
        listenBackoffMaxMs: 50,
      });
      let wakeups = 0;
      const stop = await store.listen(() => {
        wakeups++;
      });
      await store.append([ev()], NOW);
      await expect.poll(() => wakeups).toBe(1);

      await proxy.cut();
      await expect(store.ping()).rejects.toMatchObject({ kind: "unavailable" });
      await expect(store.append([ev({ resourceId: id(2) })], NOW)).rejects.toMatchObject({
        kind: "unavailable",
      });
      await expect(store.readAfter(0, 10)).rejects.toMatchObject({ kind: "unavailable" });
      expect(await direct.lastSequence()).toBe(1);

      await proxy.start();
      // Reconnected: the listener says so once (something may have been missed).
      await expect.poll(() => wakeups, { timeout: 5000 }).toBe(2);
      await store.ping();
      const stored = await store.append([ev({ resourceId: id(3) })], NOW);
      expect(stored.map((s) => s.sequence)).toEqual([2]);
      await expect.poll(() => wakeups).toBe(3);
      await stop();
    } finally {
      await proxy.cut();
    }
  });
});

describe("PostgresStore's scoped reads", () => {
  it("walk the (organization, sequence) and (environment, sequence) indexes, in order", async () => {
    const url = await scratchDatabase();
    const store = await openAt(url);
    // 4 organizations of 5,000 events each; a quarter of them tasks of one of 500 environments
    // (of organization 0); and one small organization of 20 events.
    const org = (n: number) => `0a0a0a0a-0000-4000-8000-${n.toString(16).padStart(12, "0")}`;
    const env = (n: number) => id(0xe0000 + n);
    for (let b = 0; b < 20; b++) {
      await store.append(
        Array.from({ length: 1000 }, (_, i) => {
          const n = b * 1000 + i;
          if (n % 1000 === 1) return ev({ organizationId: org(99), resourceId: id(n + 1) });
          return n % 4 === 0
            ? ev({
                organizationId: org(0),
                resourceType: ResourceType.TASK,
                resourceId: id(n + 1),
                environmentId: env(n % 500),
              })
            : ev({ organizationId: org(n % 4), resourceId: id(n + 1) });
        }),
        NOW,
      );
    }
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await client.query("ANALYZE events");
      const plan = async (sql: string, params: unknown[]) =>
        (await client.query<{ "QUERY PLAN": string }>(`EXPLAIN ${sql}`, params)).rows
          .map((r) => r["QUERY PLAN"])
          .join("\n");
      const byOrg = await plan(scopedReadSql(false), [org(99), 0, 500]);
      // Few rows of the organization: a bitmap scan and a sort of those rows is fine; never a scan
      // of the table.
      expect(byOrg).toMatch(/Index Scan (using|on) events_org_sequence/);
      expect(byOrg).not.toMatch(/Seq Scan on events/);
      const byEnv = await plan(scopedReadSql(true), [org(0), 0, 500, env(0)]);
      expect(byEnv).toMatch(/Index Scan (using|on) events_environment_sequence/);
      expect(byEnv).not.toMatch(/Seq Scan on events/);
      // A big organization, a small page: PostgreSQL may walk the primary key in order and stop
      // early (cheaper on a table this small); never the whole table.
      const page = await plan(scopedReadSql(false), [org(1), 0, 20]);
      expect(page).not.toMatch(/Seq Scan on events/);
    } finally {
      await client.end();
      await store.close();
    }
  }, 60_000);
});
