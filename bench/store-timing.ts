import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync, StatementSync } from "node:sqlite";
import pg from "pg";
import { PostgresStore } from "../src/store/postgres-store.js";
import { SqliteStore } from "../src/store/sqlite-store.js";
import type { Store } from "../src/store/store.js";
import { Operation, type ResourceEvent, ResourceType } from "../src/watch/model.js";
import {
  actorId,
  creatorId,
  orgId,
  PERSIST_ACTORS,
  PERSIST_CREATORS,
  resourceId,
} from "./fixtures.js";

/**
 * Times the stores directly, without the server: `Store.append` of scenario 6's batches (100
 * PROJECT UPDATEs of 5,000 resources with their creator, optionally with an actor), `concurrent`
 * appends at a time (SQLite commits those of one turn of the event loop together; PostgreSQL runs
 * them on its pool). Splits where the time goes:
 *
 * - SQLite: the prepared statements (lookups and inserts) against BEGIN/COMMIT (the commit writes
 *   the dirty pages to the WAL, fsyncs with synchronous=full and, every 1,000 WAL pages,
 *   checkpoints), and the bytes the process wrote (/proc/self/io wchar) per event;
 * - PostgreSQL: the round trip of each statement of an append, and the WAL bytes per event.
 *
 *   npx tsc -p tsconfig.bench.json && npx node dist-bench/bench/store-timing.js
 *     [--stores=sqlite-full,sqlite-normal,postgres] [--events=creator,audited]
 *     [--concurrent=1,16] [--seconds=3]
 *
 * PostgreSQL runs on a scratch database of BENCH_DATABASE_URL's server, dropped afterwards.
 */

const arg = (name: string, def: string) =>
  (process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? def).split(",");
const STORES = arg("stores", "sqlite-full,sqlite-normal,postgres");
const MIXES = arg("events", "creator,audited");
const CONCURRENT = arg("concurrent", "1,16").map(Number);
const SECONDS = Number(arg("seconds", "3")[0]);
const ADMIN_URL = process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const RESOURCES = 5000;

function batches(audited: boolean): ResourceEvent[][] {
  const out: ResourceEvent[][] = [];
  for (let b = 0; b < RESOURCES / 100; b++) {
    const events: ResourceEvent[] = [];
    for (let k = 0; k < 100; k++) {
      const r = b * 100 + k;
      events.push({
        resourceType: ResourceType.PROJECT,
        operation: Operation.UPDATE,
        resourceId: resourceId(r),
        organizationId: orgId(0),
        environmentId: "",
        creatorId: creatorId(r % PERSIST_CREATORS),
        ...(audited && { actorId: actorId(r % PERSIST_ACTORS), actorPrincipal: 2 }),
      });
    }
    out.push(events);
  }
  return out;
}

/** Time spent in wrapped calls, by label, while `on`. */
const spent = new Map<string, { n: number; ms: number }>();
let on = false;
function account(label: string, ms: number): void {
  if (!on) return;
  const e = spent.get(label) ?? { n: 0, ms: 0 };
  e.n++;
  e.ms += ms;
  spent.set(label, e);
}

// SQLite: every statement call and every exec (BEGIN, COMMIT) of the store is timed.
for (const method of ["run", "get", "all"] as const) {
  const orig = StatementSync.prototype[method] as (...a: unknown[]) => unknown;
  (StatementSync.prototype as unknown as Record<string, unknown>)[method] = function (
    this: StatementSync,
    ...a: unknown[]
  ) {
    const t = performance.now();
    try {
      return orig.apply(this, a);
    } finally {
      account("statements", performance.now() - t);
    }
  };
}
const origExec = DatabaseSync.prototype.exec;
DatabaseSync.prototype.exec = function (this: DatabaseSync, sql: string) {
  const t = performance.now();
  try {
    return origExec.call(this, sql);
  } finally {
    account(
      sql.startsWith("BEGIN") || sql === "COMMIT" ? "BEGIN/COMMIT" : "exec",
      performance.now() - t,
    );
  }
};

// PostgreSQL: every query's round trip, by its first words (promise and callback forms).
const origQuery = pg.Client.prototype.query as (...a: unknown[]) => unknown;
(pg.Client.prototype as unknown as { query: unknown }).query = function (
  this: pg.Client,
  ...a: unknown[]
) {
  const first = a[0];
  const text = typeof first === "string" ? first : ((first as { text?: string })?.text ?? "?");
  const label = text.trim().replace(/\s+/g, " ").slice(0, 36);
  const t = performance.now();
  const done = () => account(label, performance.now() - t);
  const last = a[a.length - 1];
  if (typeof last === "function") {
    a[a.length - 1] = (...r: unknown[]) => {
      done();
      return (last as (...x: unknown[]) => unknown)(...r);
    };
  }
  const result = origQuery.apply(this, a);
  if (result instanceof Promise) result.then(done, done);
  return result;
};

function wcharBytes(): number {
  const m = /wchar: (\d+)/.exec(readFileSync("/proc/self/io", "utf8"));
  return Number(m?.[1] ?? 0);
}

async function walBytes(client: pg.Client): Promise<number> {
  const r = await client.query<{ b: string }>(
    "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::text AS b",
  );
  return Number(r.rows[0]?.b ?? 0);
}

async function measure(store: Store, audited: boolean, concurrent: number, pgClient?: pg.Client) {
  const bs = batches(audited);
  let n = 0;
  // Warm-up: every resource becomes known (one INSERT each), the JIT settles.
  for (let i = 0; i < bs.length + 10; i++)
    await store.append(bs[n++ % bs.length] ?? [], Date.now());
  spent.clear();
  const wal0 = pgClient === undefined ? 0 : await walBytes(pgClient);
  const w0 = wcharBytes();
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  on = true;
  let appends = 0;
  await Promise.all(
    Array.from({ length: concurrent }, async () => {
      while (performance.now() - t0 < SECONDS * 1000) {
        await store.append(bs[n++ % bs.length] ?? [], Date.now());
        appends++;
      }
    }),
  );
  on = false;
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(c0);
  const events = appends * 100;
  const perEvent = (ms: number) => ((ms * 1000) / events).toFixed(2);
  const parts = [...spent].map(([label, e]) =>
    pgClient === undefined
      ? `${label} ${perEvent(e.ms)} us/event`
      : `${label}: ${(e.ms / e.n).toFixed(2)} ms x ${(e.n / appends).toFixed(2)}/append`,
  );
  const written =
    pgClient === undefined
      ? `process wrote ${((wcharBytes() - w0) / events / 1024).toFixed(2)} KiB/event`
      : `WAL ${Math.round(((await walBytes(pgClient)) - wal0) / events)} B/event`;
  return {
    line: `${Math.round(events / seconds).toLocaleString("en-US")} events/s, node CPU ${((cpu.user + cpu.system) / events).toFixed(2)} us/event, ${written}`,
    parts,
  };
}

for (const storeName of STORES) {
  for (const mix of MIXES) {
    for (const concurrent of CONCURRENT) {
      const audited = mix === "audited";
      let store: Store;
      let cleanup: () => Promise<void>;
      let pgClient: pg.Client | undefined;
      if (storeName === "postgres") {
        const name = `eventserver_storetiming_${process.pid}`;
        const admin = new pg.Client({ connectionString: ADMIN_URL });
        await admin.connect();
        await admin.query(`CREATE DATABASE ${name}`);
        const url = new URL(ADMIN_URL);
        url.pathname = `/${name}`;
        store = await PostgresStore.open({ url: url.href });
        pgClient = new pg.Client({ connectionString: url.href });
        await pgClient.connect();
        cleanup = async () => {
          await pgClient?.end();
          await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
          await admin.end();
        };
      } else {
        const dir = mkdtempSync(join(tmpdir(), "eventserver-storetiming-"));
        store = await SqliteStore.open({
          path: join(dir, "events.db"),
          synchronous: storeName === "sqlite-normal" ? "normal" : "full",
        });
        cleanup = async () => rmSync(dir, { recursive: true, force: true });
      }
      try {
        const r = await measure(store, audited, concurrent, pgClient);
        console.log(`${storeName} ${mix}, ${concurrent} concurrent appends: ${r.line}`);
        for (const p of r.parts) console.log(`    ${p}`);
      } finally {
        await store.close();
        await cleanup();
      }
    }
  }
}
