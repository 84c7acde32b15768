import { randomBytes } from "node:crypto";
import pg from "pg";
import { ServiceError } from "../errors.js";
import {
  AuditLogEntryKind,
  type EnvironmentRecord,
  type ResourceEvent,
  ResourceType,
} from "../watch/model.js";
import { actionOf } from "./action.js";
import {
  type AuditRow,
  auditEntryOf,
  type EventRow,
  type Known,
  learn,
  newEntryId,
  storedEventOf,
} from "./records.js";
import type { AuditEntry, AuditPageQuery, Store, StoredEvent } from "./store.js";

/** Where to log what happens in the background (a lost listener, an idle connection that failed). */
export interface PostgresStoreLogger {
  warn(obj: object, msg: string): void;
}

export interface PostgresStoreOptions {
  /** `postgres://user:password@host:port/database?…` */
  readonly url: string;
  /** Connections in the pool; the LISTEN connection comes on top. Default 10. */
  readonly maxConnections?: number;
  /** How long a call waits for a connection (to open, or to be free in the pool). Default 5000 ms. */
  readonly connectionTimeoutMs?: number;
  /** How long `ping()` waits for its answer. Default 2000 ms. */
  readonly pingTimeoutMs?: number;
  /**
   * Longest a statement may run or wait (for the append lock, say) before it fails with
   * `unavailable`. Default 30,000 ms. Migrations are exempt.
   */
  readonly statementTimeoutMs?: number;
  /** A transaction idle this long (its client hung) is ended by the server. Default 10,000 ms. */
  readonly idleInTransactionTimeoutMs?: number;
  /** Rows `prune()` deletes per statement, so that no statement holds locks for long. Default 10,000. */
  readonly pruneChunkRows?: number;
  /** Reconnect delays of the LISTEN connection: doubles from min to max. Defaults 100 ms, 5000 ms. */
  readonly listenBackoffMinMs?: number;
  readonly listenBackoffMaxMs?: number;
  readonly logger?: PostgresStoreLogger;
}

/**
 * The NOTIFY channel; the payload is the last sequence of the append, which lets a replica skip
 * reading the log for appends it has dispatched already (its own).
 */
export const EVENTS_CHANNEL = "eventserver_events";

/**
 * Key of the transaction-scoped advisory lock that serializes migrations: replicas starting at
 * once wait for each other, and each finds the schema the first one made. Advisory locks are
 * per database, so this only needs to differ from other applications sharing the database.
 */
const MIGRATION_LOCK_KEY = 0x65766e74_7376; // "evntsv"

interface Migration {
  readonly version: number;
  readonly name: string;
  /** SQL text, or a step that needs values made in JS. Runs inside the migration transaction. */
  readonly up: string | ((client: pg.ClientBase) => Promise<void>);
}

/**
 * The schema, in order; never edit a released step, add one. Applied versions are recorded in
 * `schema_migrations`; versions unknown to this code (a newer replica migrated first) are left
 * alone, so every step must keep older code working (add, do not rename or drop).
 *
 * Ids are `uuid` where they are always UUIDs (the audit log: the big table, paged through its
 * indexes, where 16-byte keys keep them small) and `text` in the event log and the directory,
 * where "" means unknown.
 */
const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "event log, directory, audit log, meta",
    up: `
      CREATE TABLE event_sequence (
        id smallint PRIMARY KEY CHECK (id = 1),
        last bigint NOT NULL
      );
      INSERT INTO event_sequence (id, last) VALUES (1, 0);

      CREATE TABLE events (
        sequence bigint PRIMARY KEY,
        organization_id text NOT NULL,
        resource_type integer NOT NULL,
        operation integer NOT NULL,
        resource_id text NOT NULL,
        environment_id text NOT NULL,
        creator_id text NOT NULL,
        created_at_ms bigint NOT NULL
      );
      CREATE INDEX events_created_at_ms ON events (created_at_ms);

      CREATE TABLE resources (
        resource_id text PRIMARY KEY,
        organization_id text NOT NULL,
        resource_type integer NOT NULL,
        creator_id text NOT NULL
      );

      CREATE TABLE audit_log (
        id uuid PRIMARY KEY,
        organization_id uuid NOT NULL,
        actor_id uuid NOT NULL,
        actor_principal integer NOT NULL,
        subject_id uuid NOT NULL,
        subject_type integer NOT NULL,
        action text NOT NULL,
        created_at_ms bigint NOT NULL,
        kind integer NOT NULL
      );
      CREATE INDEX audit_log_org_time ON audit_log (organization_id, created_at_ms, id);
      CREATE INDEX audit_log_org_actor_time ON audit_log (organization_id, actor_id, created_at_ms, id);
      CREATE INDEX audit_log_org_subject_time ON audit_log (organization_id, subject_id, created_at_ms, id);
      -- Pruning crosses organizations: without this it would scan the table for every chunk.
      CREATE INDEX audit_log_created_at_ms ON audit_log (created_at_ms);

      CREATE TABLE meta (
        key text PRIMARY KEY,
        value bytea NOT NULL
      );
    `,
  },
  {
    version: 2,
    name: "page token secret",
    // Made in JS: gen_random_bytes would need the pgcrypto extension.
    up: async (client) => {
      await client.query(
        "INSERT INTO meta (key, value) VALUES ('secret', $1) ON CONFLICT (key) DO NOTHING",
        [randomBytes(32)],
      );
    },
  },
];

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** SQLSTATEs and Node error codes that mean "the database cannot be reached", not "the call is wrong". */
// Admin/crash shutdown, cannot connect now, too many connections, I/O error, statement timeout
// or cancel (the database is too busy to answer in time), lock timeout.
const UNAVAILABLE_SQLSTATES = new Set([
  "57P01",
  "57P02",
  "57P03",
  "53300",
  "58030",
  "57014",
  "55P03",
]);
const UNAVAILABLE_NODE_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
]);
/** pg and pg-pool report these as plain Errors without a code. */
const UNAVAILABLE_MESSAGES = [
  "timeout exceeded when trying to connect",
  "Connection terminated",
  "connection timeout",
  "Query read timeout",
  "Client has encountered a connection error",
  "Cannot use a pool after calling end",
];

/** True when `err` says the database is unreachable (down, restarting, network, pool exhausted). */
export function isUnavailable(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") {
      if (code.startsWith("08") && code.length === 5) return true;
      if (UNAVAILABLE_SQLSTATES.has(code) || UNAVAILABLE_NODE_CODES.has(code)) return true;
    }
    if (e instanceof AggregateError && e.errors.some(isUnavailable)) return true;
    if (UNAVAILABLE_MESSAGES.some((m) => e.message.includes(m))) return true;
  }
  return false;
}

function mapError(err: unknown): unknown {
  if (err instanceof ServiceError) return err;
  if (isUnavailable(err))
    return new ServiceError("unavailable", "database unavailable", { cause: err });
  return err;
}

const AUDIT_COLUMNS =
  "id, organization_id, actor_id, actor_principal, subject_id, subject_type, action, created_at_ms, kind";

/** Events appended in one transaction at most (a group of waiting batches; see `append`). */
const MAX_GROUP_EVENTS = 5000;

interface WaitingAppend {
  readonly events: readonly ResourceEvent[];
  readonly nowMs: number;
  readonly resolve: (stored: StoredEvent[]) => void;
  readonly reject: (err: unknown) => void;
}

/**
 * The store on PostgreSQL, shared by every replica.
 *
 * One global order: `append` takes the row lock of the one-row `event_sequence` counter first
 * and holds it until commit, so batches of all replicas are serialized: sequence order is commit
 * order, and a reader that reads by sequence never sees a later number before an earlier one
 * (no gaps to wait out). The same lock makes learning creators race-free: each batch resolves
 * against everything committed before it. Each append ends with a NOTIFY on `EVENTS_CHANNEL`,
 * delivered to `listen()`ers of every replica at commit.
 *
 * `readAfter` returns the watch fields of each event, with `event.creatorId` the resolved
 * creator; who acted and when (the audit fields) live in the audit log only.
 *
 * Owns its pool and its listeners: `close()` ends both.
 */
export class PostgresStore implements Store {
  private closed = false;
  /** Batches waiting for the transaction that will append them (see `append`). */
  private waiting: WaitingAppend[] = [];
  private appending = false;
  private cachedSecret: Uint8Array | undefined;
  private readonly listeners = new Set<NotificationListener>();

  private constructor(
    private readonly pool: pg.Pool,
    private readonly clientConfig: pg.ClientConfig,
    private readonly options: PostgresStoreOptions,
  ) {}

  /**
   * Connects a pool, applies the migrations this database lacks (safe when several replicas
   * start at once), and returns the store. Throws ServiceError `unavailable` when the database
   * cannot be reached.
   */
  static async open(options: PostgresStoreOptions): Promise<PostgresStore> {
    const clientConfig: pg.ClientConfig = {
      connectionString: options.url,
      connectionTimeoutMillis: options.connectionTimeoutMs ?? 5000,
      keepAlive: true,
      application_name: "eventserver",
      // Appends of every replica queue on one row lock: a statement stuck behind it, or a
      // transaction whose client went silent while holding it, must not stall them for ever.
      statement_timeout: options.statementTimeoutMs ?? 30_000,
      idle_in_transaction_session_timeout: options.idleInTransactionTimeoutMs ?? 10_000,
    };
    const pool = new pg.Pool({ ...clientConfig, max: options.maxConnections ?? 10 });
    // An idle client whose connection dies emits 'error' on the pool; unhandled, it would end
    // the process. The pool drops that client by itself; the next call gets a fresh one.
    pool.on("error", (err) => {
      options.logger?.warn({ err }, "idle PostgreSQL connection failed");
    });
    const store = new PostgresStore(pool, clientConfig, options);
    try {
      await store.transaction(migrate);
    } catch (err) {
      await pool.end().catch(() => {});
      throw mapError(err);
    }
    return store;
  }

  /**
   * Appends are committed in groups: while one transaction holds the counter's lock, the
   * batches that arrive wait here and then share the next transaction (up to
   * MAX_GROUP_EVENTS events), so one lock, four round trips and one commit serve them all.
   * Each caller still gets its own consecutive sequence numbers, in call order; a failed
   * transaction fails every batch of its group (nothing of them is written).
   */
  append(events: readonly ResourceEvent[], nowMs: number): Promise<StoredEvent[]> {
    if (events.length === 0) return Promise.resolve([]);
    return new Promise((resolve, reject) => {
      this.waiting.push({ events, nowMs, resolve, reject });
      if (!this.appending) void this.appendWaiting();
    });
  }

  /** Commits the waiting batches, group after group, until none waits. */
  private async appendWaiting(): Promise<void> {
    this.appending = true;
    try {
      while (this.waiting.length > 0) {
        let count = 0;
        let take = 0;
        for (const w of this.waiting) {
          if (take > 0 && count + w.events.length > MAX_GROUP_EVENTS) break;
          count += w.events.length;
          take++;
        }
        const group = this.waiting.splice(0, take);
        try {
          const stored = await this.appendGroup(group);
          let at = 0;
          for (const w of group) {
            w.resolve(stored.slice(at, at + w.events.length));
            at += w.events.length;
          }
        } catch (err) {
          for (const w of group) w.reject(err);
        }
      }
    } finally {
      this.appending = false;
    }
  }

  /** One transaction for the batches of `group`, numbered consecutively in group order. */
  private appendGroup(group: readonly WaitingAppend[]): Promise<StoredEvent[]> {
    const events: ResourceEvent[] = [];
    const nows: number[] = [];
    for (const w of group) {
      for (const e of w.events) {
        events.push(e);
        nows.push(w.nowMs);
      }
    }
    return this.transaction(async (client) => {
      const counter = await client.query<{ last: string }>(
        "UPDATE event_sequence SET last = last + $1 WHERE id = 1 RETURNING last",
        [events.length],
      );
      const row = counter.rows[0];
      if (row === undefined) throw new Error("event_sequence has no row: the schema was altered");
      const last = Number(row.last);
      const first = last - events.length + 1;

      const ids = [...new Set(events.map((e) => e.resourceId))];
      const found = await client.query<{
        resource_id: string;
        organization_id: string;
        resource_type: number;
        creator_id: string;
      }>(
        "SELECT resource_id, organization_id, resource_type, creator_id FROM resources WHERE resource_id = ANY($1::text[])",
        [ids],
      );
      const initial = new Map<string, Known>();
      for (const r of found.rows) {
        initial.set(r.resource_id, {
          organizationId: r.organization_id,
          resourceType: r.resource_type,
          creatorId: r.creator_id,
        });
      }

      // The learning rule applied event by event, so that each resolves against the state as of
      // that event (a batch may create, update and delete one resource).
      const state = new Map<string, Known | undefined>(initial);
      const stored: StoredEvent[] = [];
      for (const [i, event] of events.entries()) {
        const { creatorId, next } = learn(event, state.get(event.resourceId));
        stored.push({ sequence: first + i, event, creatorId });
        state.set(event.resourceId, next);
      }

      const deleted: string[] = [];
      const upserted: [string, Known][] = [];
      for (const [id, now] of state) {
        const before = initial.get(id);
        if (now === undefined) {
          if (before !== undefined) deleted.push(id);
        } else if (
          before === undefined ||
          before.organizationId !== now.organizationId ||
          before.resourceType !== now.resourceType ||
          before.creatorId !== now.creatorId
        ) {
          upserted.push([id, now]);
        }
      }
      const audited: number[] = [];
      events.forEach((e, i) => {
        if (e.actorId !== undefined && e.actorId !== "") audited.push(i);
      });
      const auditedEvents = audited.map((i) => events[i] as ResourceEvent);

      // Every write in one statement: the counter's lock is held for as few round trips as can
      // be (counter, read, this, COMMIT). Deleted and upserted ids are disjoint. The NOTIFY is
      // delivered when (and only if) the transaction commits.
      await client.query(
        `WITH
         ev AS (
           INSERT INTO events (sequence, organization_id, resource_type, operation, resource_id,
             environment_id, creator_id, created_at_ms)
           SELECT * FROM unnest($1::bigint[], $2::text[], $3::int[], $4::int[], $5::text[],
             $6::text[], $7::text[], $8::bigint[])
         ),
         gone AS (DELETE FROM resources WHERE resource_id = ANY($9::text[])),
         known AS (
           INSERT INTO resources (resource_id, organization_id, resource_type, creator_id)
           SELECT * FROM unnest($10::text[], $11::text[], $12::int[], $13::text[])
           ON CONFLICT (resource_id) DO UPDATE SET organization_id = EXCLUDED.organization_id,
             resource_type = EXCLUDED.resource_type, creator_id = EXCLUDED.creator_id
         ),
         audit AS (
           INSERT INTO audit_log (${AUDIT_COLUMNS})
           SELECT *, ${AuditLogEntryKind.RESOURCE_CHANGE}
           FROM unnest($14::uuid[], $15::uuid[], $16::uuid[], $17::int[], $18::uuid[], $19::int[],
             $20::text[], $21::bigint[])
         )
         SELECT pg_notify($22, $23)`,
        [
          stored.map((s) => s.sequence),
          events.map((e) => e.organizationId),
          events.map((e) => e.resourceType),
          events.map((e) => e.operation),
          events.map((e) => e.resourceId),
          events.map((e) => e.environmentId),
          stored.map((s) => s.creatorId),
          nows,
          deleted,
          upserted.map(([id]) => id),
          upserted.map(([, k]) => k.organizationId),
          upserted.map(([, k]) => k.resourceType),
          upserted.map(([, k]) => k.creatorId),
          auditedEvents.map(() => newEntryId()),
          auditedEvents.map((e) => e.organizationId),
          auditedEvents.map((e) => e.actorId),
          auditedEvents.map((e) => e.actorPrincipal ?? 0),
          auditedEvents.map((e) => e.resourceId),
          auditedEvents.map((e) => e.resourceType),
          auditedEvents.map(actionOf),
          audited.map((i) => events[i]?.occurredAtMs ?? nows[i]),
          EVENTS_CHANNEL,
          String(last),
        ],
      );
      return stored;
    });
  }

  async readAfter(sequence: number, limit: number): Promise<StoredEvent[]> {
    const res = await this.query<EventRow>(
      `SELECT sequence, organization_id, resource_type, operation, resource_id, environment_id,
         creator_id
       FROM events WHERE sequence > $1 ORDER BY sequence LIMIT $2`,
      [sequence, limit],
    );
    return res.rows.map(storedEventOf);
  }

  async lastSequence(): Promise<number> {
    const res = await this.query<{ last: string }>(
      "SELECT last FROM event_sequence WHERE id = 1",
      [],
    );
    return Number(res.rows[0]?.last ?? 0);
  }

  async environment(environmentId: string): Promise<EnvironmentRecord | undefined> {
    const res = await this.query<{ organization_id: string; creator_id: string }>(
      "SELECT organization_id, creator_id FROM resources WHERE resource_id = $1 AND resource_type = $2",
      [environmentId, ResourceType.ENVIRONMENT],
    );
    const r = res.rows[0];
    return r === undefined
      ? undefined
      : { organizationId: r.organization_id, creatorId: r.creator_id };
  }

  async listAudit(query: AuditPageQuery): Promise<AuditEntry[]> {
    const f = query.filter;
    if (!UUID_RE.test(f.organizationId)) return [];
    // Ids that are not UUIDs match nothing (and would not cast); duplicates would repeat rows.
    const uuids = (ids: readonly string[]) =>
      [...new Set(ids.map((id) => id.toLowerCase()))].filter((id) => UUID_RE.test(id));
    const actors = uuids(f.actorIds);
    const subjects = uuids(f.subjectIds);
    if (
      (f.actorIds.length > 0 && actors.length === 0) ||
      (f.subjectIds.length > 0 && subjects.length === 0)
    ) {
      return [];
    }
    if (query.after !== undefined && !UUID_RE.test(query.after.id)) return [];

    const params: unknown[] = [f.organizationId];
    const param = (value: unknown): string => {
      params.push(value);
      return `$${params.length}`;
    };
    const where = ["organization_id = $1::uuid"];
    // Several actors (or subjects) are read one index range each, (organization, actor|subject,
    // time, id), and merged: an `= ANY` over several ids cannot walk that index in order, and the
    // planner's fallback, the organization's whole time index, is slow when few entries match.
    const split: [string, string[]] | undefined =
      subjects.length > 1
        ? ["subject_id", subjects]
        : actors.length > 1
          ? ["actor_id", actors]
          : undefined;
    // One id: plain equality, which (unlike `= ANY`) PostgreSQL 15 walks in index order.
    const idCondition = (column: string, ids: readonly string[]): void => {
      if (ids.length === 0 || split?.[0] === column) return;
      where.push(
        ids.length === 1
          ? `${column} = ${param(ids[0])}::uuid`
          : `${column} = ANY(${param(ids)}::uuid[])`,
      );
    };
    idCondition("actor_id", actors);
    idCondition("subject_id", subjects);
    if (f.actorPrincipals.length > 0) {
      where.push(`actor_principal = ANY(${param(f.actorPrincipals)}::int[])`);
    }
    if (f.subjectTypes.length > 0) {
      where.push(`subject_type = ANY(${param(f.subjectTypes)}::int[])`);
    }
    if (f.fromMs !== undefined) where.push(`created_at_ms >= ${param(f.fromMs)}::bigint`);
    if (f.toMs !== undefined) where.push(`created_at_ms < ${param(f.toMs)}::bigint`);
    if (query.after !== undefined) {
      // A row comparison on the indexes' trailing columns: the page starts with an index seek.
      const op = query.descending ? "<" : ">";
      where.push(
        `(created_at_ms, id) ${op} (${param(query.after.createdAtMs)}::bigint, ${param(query.after.id)}::uuid)`,
      );
    }
    const dir = query.descending ? "DESC" : "ASC";
    const order = `ORDER BY created_at_ms ${dir}, id ${dir} LIMIT ${param(Math.max(0, query.limit))}`;
    const conditions = where.join(" AND ");
    const sql =
      split === undefined
        ? `SELECT ${AUDIT_COLUMNS} FROM audit_log WHERE ${conditions} ${order}`
        : `SELECT * FROM (${split[1]
            .map(
              (id) =>
                `(SELECT ${AUDIT_COLUMNS} FROM audit_log
                  WHERE ${conditions} AND ${split[0]} = ${param(id)}::uuid ${order})`,
            )
            .join(" UNION ALL ")}) AS page ${order}`;
    const res = await this.query<AuditRow>(sql, params);
    return res.rows.map(auditEntryOf);
  }

  async getAudit(organizationId: string, id: string): Promise<AuditEntry | undefined> {
    if (!UUID_RE.test(organizationId) || !UUID_RE.test(id)) return undefined;
    const res = await this.query<AuditRow>(
      `SELECT ${AUDIT_COLUMNS} FROM audit_log WHERE id = $1::uuid AND organization_id = $2::uuid`,
      [id, organizationId],
    );
    const r = res.rows[0];
    return r === undefined ? undefined : auditEntryOf(r);
  }

  async prune(options: { eventsBeforeMs?: number; auditBeforeMs?: number }): Promise<void> {
    const chunk = this.options.pruneChunkRows ?? 10_000;
    // Bounded chunks, each its own short transaction: never one long lock over millions of rows.
    const drain = async (sql: string, beforeMs: number): Promise<void> => {
      for (;;) {
        const res = await this.query(sql, [beforeMs, chunk]);
        if ((res.rowCount ?? 0) < chunk) return;
      }
    };
    if (options.eventsBeforeMs !== undefined) {
      await drain(
        `DELETE FROM events WHERE sequence IN
           (SELECT sequence FROM events WHERE created_at_ms < $1 LIMIT $2)`,
        options.eventsBeforeMs,
      );
    }
    if (options.auditBeforeMs !== undefined) {
      await drain(
        `DELETE FROM audit_log WHERE id IN
           (SELECT id FROM audit_log WHERE created_at_ms < $1 LIMIT $2)`,
        options.auditBeforeMs,
      );
    }
  }

  async ping(): Promise<void> {
    const timeoutMs = this.options.pingTimeoutMs ?? 2000;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new ServiceError("unavailable", "database did not answer in time")),
        timeoutMs,
      );
    });
    // `query_timeout` is honoured by pg's Client.query but missing from @types/pg's QueryConfig.
    const config = { text: "SELECT 1", query_timeout: timeoutMs } as pg.QueryConfig;
    const answered = this.query(config);
    // The query keeps its connection until it settles; its late failure is of no interest.
    answered.catch(() => {});
    try {
      await Promise.race([answered, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async secret(): Promise<Uint8Array> {
    if (this.cachedSecret === undefined) {
      const res = await this.query<{ value: Buffer }>(
        "SELECT value FROM meta WHERE key = 'secret'",
        [],
      );
      const value = res.rows[0]?.value;
      if (value === undefined) throw new Error("meta.secret is missing: migration 2 did not run");
      this.cachedSecret = new Uint8Array(value);
    }
    return new Uint8Array(this.cachedSecret);
  }

  async listen(onAppend: (lastSequence?: number) => void): Promise<() => Promise<void>> {
    if (this.closed) throw new ServiceError("unavailable", "database unavailable");
    const listener = new NotificationListener(
      this.clientConfig,
      onAppend,
      this.options.listenBackoffMinMs ?? 100,
      this.options.listenBackoffMaxMs ?? 5000,
      this.options.logger,
    );
    try {
      await listener.start();
    } catch (err) {
      throw mapError(err);
    }
    this.listeners.add(listener);
    return async () => {
      this.listeners.delete(listener);
      await listener.stop();
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.listeners].map((l) => l.stop()));
    this.listeners.clear();
    await this.pool.end();
  }

  private async query<R extends pg.QueryResultRow>(
    text: string | pg.QueryConfig,
    values?: unknown[],
  ): Promise<pg.QueryResult<R>> {
    try {
      return typeof text === "string"
        ? await this.pool.query<R>(text, values)
        : await this.pool.query<R>(text);
    } catch (err) {
      throw mapError(err);
    }
  }

  /** Runs `fn` in one transaction: committed when it resolves, rolled back when anything throws. */
  private async transaction<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw mapError(err);
    }
    let broken: Error | undefined;
    // A checked-out client emits connection loss as an 'error' event (pg-pool listens only to
    // idle ones): without a listener that would crash the process. The failing query rejects.
    const onError = (err: Error) => {
      broken = err;
    };
    client.on("error", onError);
    try {
      await client.query("BEGIN");
      const result = await fn(client);
      await client.query("COMMIT");
      return result;
    } catch (err) {
      try {
        await client.query("ROLLBACK");
      } catch (rollbackErr) {
        // The connection is gone (the server rolls back by itself) or unusable: do not reuse it.
        broken = rollbackErr instanceof Error ? rollbackErr : new Error(String(rollbackErr));
      }
      throw mapError(err);
    } finally {
      client.off("error", onError);
      client.release(broken);
    }
  }
}

async function migrate(client: pg.ClientBase): Promise<void> {
  // A migration may build an index on a big table, and others wait here while it does.
  await client.query("SET LOCAL statement_timeout = 0");
  await client.query("SET LOCAL idle_in_transaction_session_timeout = 0");
  await client.query("SELECT pg_advisory_xact_lock($1::bigint)", [MIGRATION_LOCK_KEY]);
  await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
  )`);
  const res = await client.query<{ version: number }>("SELECT version FROM schema_migrations");
  const applied = new Set(res.rows.map((r) => r.version));
  for (const m of MIGRATIONS) {
    if (applied.has(m.version)) continue;
    if (typeof m.up === "string") await client.query(m.up);
    else await m.up(client);
    await client.query("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", [
      m.version,
      m.name,
    ]);
  }
}

/**
 * One dedicated connection doing LISTEN (a pooled one would lose its LISTEN when handed back).
 * Reconnects with doubling delays after the connection fails, and then calls `onAppend` once:
 * notifications sent while it was away are lost, so the reader must look for itself.
 */
class NotificationListener {
  private client: pg.Client | undefined;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private attempt = 0;

  constructor(
    private readonly config: pg.ClientConfig,
    private readonly onAppend: (lastSequence?: number) => void,
    private readonly backoffMinMs: number,
    private readonly backoffMaxMs: number,
    private readonly logger: PostgresStoreLogger | undefined,
  ) {}

  /** The first connection; throws when it cannot be made. */
  async start(): Promise<void> {
    await this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => {});
  }

  private async connect(): Promise<void> {
    const client = new pg.Client(this.config);
    let live = false;
    const onFailure = (err?: Error): void => {
      // Only a connection that was up reconnects; a failed attempt is retried by its caller.
      if (!live) return;
      live = false;
      if (this.client === client) this.client = undefined;
      client.end().catch(() => {});
      if (this.stopped) return;
      this.logger?.warn({ err }, "PostgreSQL LISTEN connection lost; reconnecting");
      this.scheduleReconnect();
    };
    // Attached before connecting: a failure must never be an unhandled 'error' event.
    client.on("error", onFailure);
    client.on("end", () => onFailure());
    client.on("notification", (msg) => {
      if (msg.channel !== EVENTS_CHANNEL) return;
      const last = Number(msg.payload);
      this.notify(Number.isSafeInteger(last) ? last : undefined);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${EVENTS_CHANNEL}`);
    } catch (err) {
      await client.end().catch(() => {});
      throw err;
    }
    if (this.stopped) {
      await client.end().catch(() => {});
      return;
    }
    live = true;
    this.client = client;
    this.attempt = 0;
  }

  private scheduleReconnect(): void {
    const delayMs = Math.min(this.backoffMaxMs, this.backoffMinMs * 2 ** this.attempt);
    this.attempt++;
    this.timer = setTimeout(() => {
      this.connect().then(
        () => {
          if (!this.stopped) this.notify();
        },
        (err: unknown) => {
          if (this.stopped) return;
          this.logger?.warn({ err }, "PostgreSQL LISTEN reconnect failed");
          this.scheduleReconnect();
        },
      );
    }, delayMs);
  }

  /** `lastSequence`: of the append notified; undefined after a reconnect (anything may be new). */
  private notify(lastSequence?: number): void {
    try {
      this.onAppend(lastSequence);
    } catch (err) {
      this.logger?.warn({ err }, "onAppend threw");
    }
  }
}
