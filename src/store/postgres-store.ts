import pg from "pg";
import { ServiceError } from "../errors.js";
import { type EnvironmentRecord, type ResourceEvent, ResourceType } from "../watch/model.js";
import { isUuid } from "../watch/uuid.js";
import { batchDigest, outcomeUnknown } from "./batch-digest.js";
import { type BatchOutcome, type GroupBatch, GroupCommit } from "./group-commit.js";
import { appendGroup, type CommitToken, type GroupWrite, isKeyRace } from "./postgres-append.js";
import { isUnavailable, mapError } from "./postgres-errors.js";
import { AUDIT_COLUMNS, migrate } from "./postgres-migrations.js";
import { NotificationListener, type PostgresStoreLogger } from "./postgres-notifications.js";
import {
  type AuditRow,
  auditEntryOf,
  type EventRow,
  firstSequenceOf,
  scopedPageOf,
  storedEventOf,
} from "./records.js";
import type * as port from "./store.js";

// Still exported from here, as before the store was split into modules.
export { isUnavailable } from "./postgres-errors.js";
export { EVENTS_CHANNEL, type PostgresStoreLogger } from "./postgres-notifications.js";

export interface PostgresStoreOptions {
  /** `postgres://user:password@host:port/database?…` */
  readonly url: string;
  /**
   * How long an append whose connection died during COMMIT keeps trying (reconnecting) to find
   * out whether it was written, when its caller set no earlier limit. Default 10,000 ms.
   */
  readonly commitOutcomeTimeoutMs?: number;
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

/** Events appended in one transaction at most (a group of waiting batches; see `GroupCommit`). */
const MAX_GROUP_EVENTS = 5000;

/** See `pool.on("connect")` in `PostgresStore.open`. */
function ignoreClientError(): void {}

/**
 * The scoped read of the feed's replays (Store.readScoped): $1 organization, $2 after, $3
 * limit, $4 environment. One statement, so one snapshot: the head and the first sequence agree
 * with the rows (the head is written in the transaction that appends). The LEFT JOIN gives one
 * row even when no event is in scope. Reads the (organization, sequence) or the partial
 * (environment, sequence) index (exported for the plan's test).
 */
export function scopedReadSql(environment: boolean): string {
  const where = environment
    ? "environment_id = $4 AND environment_id <> '' AND organization_id = $1"
    : "organization_id = $1";
  return `SELECT h.head, h.first, e.* FROM
      (SELECT (SELECT last FROM event_sequence WHERE id = 1) AS head,
              (SELECT min(sequence) FROM events) AS first) AS h
    LEFT JOIN LATERAL
      (SELECT sequence, organization_id, resource_type, operation, resource_id, environment_id,
              creator_id, created_at_ms
       FROM events WHERE ${where} AND sequence > $2 ORDER BY sequence LIMIT $3) AS e ON true`;
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
export class PostgresStore implements port.Store {
  private closed = false;
  /**
   * While one transaction holds the counter's lock, the batches that arrive wait and then share
   * the next transaction, so one lock, four round trips and one commit serve them all.
   */
  private readonly appends = new GroupCommit({
    commit: (batches, uncertain) => this.commitGroup(batches, uncertain),
    start: "at-once",
    maxGroupEvents: MAX_GROUP_EVENTS,
    distinctKeys: true,
  });
  private cachedSecret: Uint8Array | undefined;
  private cachedLogId: string | undefined;
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
      // And on this side: a network that drops packets without a reset (a stalled proxy, say)
      // would leave a query waiting for ever, the server's timeouts never reaching us.
      query_timeout: (options.statementTimeoutMs ?? 30_000) + 2000,
      idle_in_transaction_session_timeout: options.idleInTransactionTimeoutMs ?? 10_000,
    };
    const pool = new pg.Pool({ ...clientConfig, max: options.maxConnections ?? 10 });
    // An idle client whose connection dies emits 'error' on the pool; unhandled, it would end
    // the process. The pool drops that client by itself; the next call gets a fresh one.
    pool.on("error", (err) => {
      options.logger?.warn({ err }, "idle PostgreSQL connection failed");
    });
    // pg-pool takes its own 'error' listener off a client as it hands the client out, and the
    // taker can add one only a microtask later. When the backend is terminated just as the
    // connection becomes ready, its ReadyForQuery and the FATAL ErrorResponse arrive in one
    // read and are parsed in one go: the error is emitted in between, with no listener, and
    // would end the process (seen under pg_terminate_backend). Every client keeps this
    // listener for life; the failure still reaches the query or transaction that uses it.
    pool.on("connect", (client) => {
      client.on("error", ignoreClientError);
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

  /** Committed in groups with the appends of other callers: see `GroupCommit`. */
  async append(
    events: readonly ResourceEvent[],
    nowMs: number,
    options?: port.AppendOptions,
  ): Promise<port.StoredEvent[]> {
    const result = await this.enqueue({ events, nowMs }, options?.signal);
    return result.replayed ? [] : result.events;
  }

  appendOnce(
    events: readonly ResourceEvent[],
    nowMs: number,
    key: port.BatchKey,
    options?: port.AppendOptions,
  ): Promise<port.AppendOnceResult> {
    const batch: GroupBatch = {
      events,
      nowMs,
      key: { publisher: key.publisher, key: key.key, digest: batchDigest(events) },
    };
    return this.enqueue(batch, options?.signal);
  }

  /** An empty batch is answered at once: a group's write needs events. */
  private enqueue(
    batch: GroupBatch,
    signal: AbortSignal | undefined,
  ): Promise<port.AppendOnceResult> {
    if (batch.events.length === 0) return Promise.resolve({ replayed: false, events: [] });
    return this.appends.append(batch, signal);
  }

  async readAfter(sequence: number, limit: number): Promise<port.StoredEvent[]> {
    const res = await this.query<EventRow>(
      `SELECT sequence, organization_id, resource_type, operation, resource_id, environment_id,
         creator_id, created_at_ms
       FROM events WHERE sequence > $1 ORDER BY sequence LIMIT $2`,
      [sequence, limit],
    );
    return res.rows.map(storedEventOf);
  }

  async readScoped(
    sequence: number,
    limit: number,
    scope: port.LogScope,
  ): Promise<port.ScopedPage> {
    const env = scope.environmentId !== undefined && scope.environmentId !== "";
    const res = await this.query<EventRow & { head: string; first: string | null }>(
      scopedReadSql(env),
      env
        ? [scope.organizationId, sequence, limit, scope.environmentId]
        : [scope.organizationId, sequence, limit],
    );
    const events = res.rows.filter((r) => r.sequence !== null).map(storedEventOf);
    const head = Number(res.rows[0]?.head ?? 0);
    return scopedPageOf(events, limit, sequence, head, res.rows[0]?.first);
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

  async listAudit(query: port.AuditPageQuery): Promise<port.AuditEntry[]> {
    const f = query.filter;
    if (!isUuid(f.organizationId)) return [];
    // Ids that are not UUIDs match nothing (and would not cast); duplicates would repeat rows.
    const uuids = (ids: readonly string[]) =>
      [...new Set(ids.map((id) => id.toLowerCase()))].filter((id) => isUuid(id));
    const actors = uuids(f.actorIds);
    const subjects = uuids(f.subjectIds);
    if (
      (f.actorIds.length > 0 && actors.length === 0) ||
      (f.subjectIds.length > 0 && subjects.length === 0)
    ) {
      return [];
    }
    if (query.after !== undefined && !isUuid(query.after.id)) return [];

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

  async getAudit(organizationId: string, id: string): Promise<port.AuditEntry | undefined> {
    if (!isUuid(organizationId) || !isUuid(id)) return undefined;
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
    const drain = async (sql: string, bound: number | string): Promise<void> => {
      for (;;) {
        const res = await this.query(sql, [bound, chunk]);
        if ((res.rowCount ?? 0) < chunk) return;
      }
    };
    if (options.eventsBeforeMs !== undefined) {
      // A prefix of the log: everything before its first event created at `eventsBeforeMs` or
      // later (or, when there is none, everything up to the newest event now). Replicas whose
      // clocks differ may date an event before one it follows; it stays until that one goes,
      // so the log never has a hole.
      const found = await this.query(
        `SELECT coalesce(
           (SELECT sequence FROM events WHERE created_at_ms >= $1 ORDER BY sequence LIMIT 1),
           (SELECT max(sequence) + 1 FROM events)) AS end`,
        [options.eventsBeforeMs],
      );
      const end = (found.rows[0] as { end: string | null } | undefined)?.end ?? null;
      if (end !== null) {
        await drain(
          `DELETE FROM events WHERE sequence IN
             (SELECT sequence FROM events WHERE sequence < $1 ORDER BY sequence LIMIT $2)`,
          end,
        );
      }
      await drain(
        `DELETE FROM publish_keys WHERE (publisher, key) IN
           (SELECT publisher, key FROM publish_keys WHERE created_at_ms < $1 LIMIT $2)`,
        options.eventsBeforeMs,
      );
      await drain(
        `DELETE FROM commit_tokens WHERE token IN
           (SELECT token FROM commit_tokens WHERE created_at_ms < $1 LIMIT $2)`,
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

  async log(): Promise<port.EventLog> {
    this.cachedLogId ??= (await this.meta("log_id", 3)).toString("utf8");
    // One snapshot for both ends: min() reads the primary key's first entry.
    const res = await this.query<{ first: string | null; last: string }>(
      "SELECT (SELECT min(sequence) FROM events) AS first, last FROM event_sequence WHERE id = 1",
      [],
    );
    const last = Number(res.rows[0]?.last ?? 0);
    return {
      id: this.cachedLogId,
      firstSequence: firstSequenceOf(res.rows[0]?.first, last),
      lastSequence: last,
    };
  }

  async secret(): Promise<Uint8Array> {
    this.cachedSecret ??= new Uint8Array(await this.meta("secret", 2));
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

  /** A value of the `meta` table, which migration `migration` wrote once per database. */
  private async meta(key: "log_id" | "secret", migration: number): Promise<Buffer> {
    const res = await this.query<{ value: Buffer }>("SELECT value FROM meta WHERE key = $1", [key]);
    const value = res.rows[0]?.value;
    if (value === undefined)
      throw new Error(`meta.${key} is missing: migration ${migration} did not run`);
    return value;
  }

  /**
   * One group's transaction (see `GroupCommit`), run again when another replica recorded one
   * of its keys meanwhile (the next lookup finds it; a race needs a replica per round, so a
   * few rounds suffice).
   */
  private async commitGroup(
    batches: readonly GroupBatch[],
    uncertain: () => void,
  ): Promise<readonly BatchOutcome[]> {
    for (let round = 1; ; round++) {
      try {
        return await this.appendTransaction(batches, uncertain);
      } catch (err) {
        if (round < 5 && isKeyRace(err)) continue;
        throw mapError(err);
      }
    }
  }

  /**
   * Appends a group in one transaction. A failure before COMMIT was sent leaves nothing
   * written (the server rolls back). A connection lost during COMMIT leaves the outcome open:
   * the transaction's id, read in it, is then looked up on a new connection (`commitOutcome`),
   * so that a committed group is acknowledged and never answered with an error.
   */
  private async appendTransaction(
    batches: readonly GroupBatch[],
    uncertain: () => void,
  ): Promise<readonly BatchOutcome[]> {
    const { client, release } = await this.checkout();
    let broken: Error | undefined;
    let write: GroupWrite | undefined;
    try {
      await client.query("BEGIN");
      write = await appendGroup(client, batches);
      await client.query("COMMIT");
      return write.outcomes;
    } catch (err) {
      if (write === undefined) {
        try {
          await client.query("ROLLBACK");
        } catch (rollbackErr) {
          broken = asError(rollbackErr);
        }
        throw err;
      }
      broken = asError(err);
      // Nothing written (every batch replayed or refused): nothing to find out.
      if (write.commit === undefined) return write.outcomes;
      // The server answered (a check at commit failed): it rolled back.
      if (!isUnavailable(err)) throw err;
      uncertain();
      // The backend's pid, from its BackendKeyData; pg keeps it, @types/pg does not declare it.
      const pid = (client as unknown as { processID?: number | null }).processID ?? undefined;
      const status = await this.commitOutcome(write.commit, pid);
      if (status === "committed") return write.outcomes;
      if (status === "aborted") {
        throw new ServiceError(
          "unavailable",
          "database unavailable: the connection was lost while committing, and nothing was written",
          { cause: err },
        );
      }
      throw outcomeUnknown(err);
    } finally {
      release(broken);
    }
  }

  /**
   * Whether the transaction of `commit` committed, asked on other connections until the answer
   * is definite or `commitOutcomeTimeoutMs` passed. While its backend (`pid`) still holds the
   * transaction (it has not noticed that its client is gone: a network that drops packets, say),
   * that backend is terminated, which ends the transaction one way or the other. Once no backend
   * holds it, a new statement sees its token if and only if it committed.
   */
  private async commitOutcome(
    commit: CommitToken,
    pid: number | undefined,
  ): Promise<"committed" | "aborted" | "unknown"> {
    const until = performance.now() + (this.options.commitOutcomeTimeoutMs ?? 10_000);
    // pg_stat_activity shows the 32-bit xid.
    const xid32 = String(BigInt(commit.xid) & 0xffff_ffffn);
    let backoffMs = 50;
    for (;;) {
      const left = until - performance.now();
      if (left <= 0 || this.closed) return "unknown";
      // `query_timeout` is honoured by pg's Client.query but missing from @types/pg's QueryConfig.
      const timed = (text: string, values: unknown[]) =>
        ({ text, values, query_timeout: Math.max(1, Math.ceil(left)) }) as pg.QueryConfig;
      try {
        const holding = await this.pool.query<{ terminated: boolean }>(
          timed(
            `SELECT pg_terminate_backend(pid) AS terminated FROM pg_stat_activity
             WHERE pid = $1 AND backend_xid::text = $2`,
            [pid ?? 0, xid32],
          ),
        );
        if (holding.rows.length === 0) {
          // A statement of its own: its snapshot is taken after the transaction ended.
          const found = await this.pool.query(
            timed("SELECT 1 FROM commit_tokens WHERE token = $1::uuid", [commit.token]),
          );
          return found.rows.length > 0 ? "committed" : "aborted";
        }
      } catch {
        // Still unreachable: try again shortly.
      }
      await new Promise((r) => setTimeout(r, Math.min(backoffMs, Math.max(0, left))));
      backoffMs = Math.min(backoffMs * 2, 1000);
    }
  }

  /** Runs `fn` in one transaction: committed when it resolves, rolled back when anything throws. */
  private async transaction<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const { client, release } = await this.checkout();
    let broken: Error | undefined;
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
        broken = asError(rollbackErr);
      }
      throw mapError(err);
    } finally {
      release(broken);
    }
  }

  /**
   * A pooled client for one transaction. `release` hands it back, or has the pool discard it
   * when its connection broke: `broken` (a failed ROLLBACK, say), or a connection loss the
   * client reported meanwhile (its 'error' event; the failing query rejects as well).
   */
  private async checkout(): Promise<{
    client: pg.PoolClient;
    release: (broken: Error | undefined) => void;
  }> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw mapError(err);
    }
    let lost: Error | undefined;
    const onError = (err: Error) => {
      lost = err;
    };
    client.on("error", onError);
    return {
      client,
      release(broken) {
        client.off("error", onError);
        client.release(broken ?? lost);
      },
    };
  }
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
