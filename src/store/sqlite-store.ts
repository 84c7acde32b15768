import { randomBytes, randomUUID } from "node:crypto";
import fs, { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { DatabaseSync, type SQLInputValue, type StatementSync } from "node:sqlite";
import { ServiceError } from "../errors.js";
import {
  AuditLogEntryKind,
  type EnvironmentRecord,
  type ResourceEvent,
  ResourceType,
} from "../watch/model.js";
import { actionOf } from "./action.js";
import { batchDigest, recordedKeyOutcome } from "./batch-digest.js";
import { type BatchOutcome, type GroupBatch, GroupCommit } from "./group-commit.js";
import {
  type AuditRow,
  auditEntryOf,
  firstSequenceOf,
  type Known,
  learn,
  newEntryId,
  scopedPageOf,
} from "./records.js";
import type * as port from "./store.js";

/** Versioned schema steps; each runs once, in order, in one transaction with its version row. */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
   CREATE TABLE events (
     sequence INTEGER PRIMARY KEY,
     organization_id TEXT NOT NULL,
     resource_type INTEGER NOT NULL,
     operation INTEGER NOT NULL,
     resource_id TEXT NOT NULL,
     environment_id TEXT NOT NULL,
     creator_id TEXT NOT NULL,
     created_at_ms INTEGER NOT NULL
   );
   CREATE INDEX events_created_at ON events (created_at_ms);
   CREATE TABLE resources (
     resource_id TEXT PRIMARY KEY,
     organization_id TEXT NOT NULL,
     resource_type INTEGER NOT NULL,
     creator_id TEXT NOT NULL
   ) WITHOUT ROWID;
   CREATE TABLE audit_log (
     id TEXT PRIMARY KEY,
     organization_id TEXT NOT NULL,
     actor_id TEXT NOT NULL,
     actor_principal INTEGER NOT NULL,
     subject_id TEXT NOT NULL,
     subject_type INTEGER NOT NULL,
     action TEXT NOT NULL,
     created_at_ms INTEGER NOT NULL,
     kind INTEGER NOT NULL
   ) WITHOUT ROWID;
   CREATE INDEX audit_org_time ON audit_log (organization_id, created_at_ms, id);
   CREATE INDEX audit_org_actor_time ON audit_log (organization_id, actor_id, created_at_ms, id);
   CREATE INDEX audit_org_subject_time ON audit_log (organization_id, subject_id, created_at_ms, id);
   CREATE INDEX audit_time ON audit_log (created_at_ms);`,
  // Scoped replays of the feed (Store.readScoped): one organization's events, or one
  // environment's, in sequence order, without reading anyone else's. Most events carry no
  // environment, hence the partial index.
  `CREATE INDEX events_org_sequence ON events (organization_id, sequence);
   CREATE INDEX events_environment_sequence ON events (environment_id, sequence)
     WHERE environment_id <> '';`,
  // Idempotency keys (CONTRACT §13): one row per keyed batch, written in its append's
  // transaction, pruned with its events (same created_at_ms).
  `CREATE TABLE publish_keys (
     publisher TEXT NOT NULL,
     key TEXT NOT NULL,
     digest BLOB NOT NULL,
     first_sequence INTEGER NOT NULL,
     last_sequence INTEGER NOT NULL,
     created_at_ms INTEGER NOT NULL,
     PRIMARY KEY (publisher, key)
   ) WITHOUT ROWID;
   CREATE INDEX publish_keys_created_at ON publish_keys (created_at_ms);`,
  // Retention deletes a prefix of the log, in sequence order (see `prune`): the time index is
  // not read any more, and every append wrote a page of it.
  "DROP INDEX events_created_at;",
];

const EVENT_COLUMNS =
  "sequence, organization_id, resource_type, operation, resource_id, environment_id, creator_id, created_at_ms";

/** An `events` row read as an array (EVENT_COLUMNS, in that order). */
type EventColumns = readonly [number, string, number, number, string, string, string, number];

/**
 * The event of a row read as an array. Event reads return arrays (`setReturnArrays`): node:sqlite
 * makes each row object in dictionary mode, and reading its eight properties missed V8's
 * inline caches on every row; a replay spent 2 µs per row on the rows alone, 0.8 as arrays.
 */
function storedEventOfColumns(r: EventColumns): port.StoredEvent {
  return {
    sequence: r[0],
    creatorId: r[6],
    acceptedAtMs: r[7],
    event: {
      resourceType: r[2],
      operation: r[3],
      resourceId: r[4],
      organizationId: r[1],
      environmentId: r[5],
      creatorId: r[6],
    },
  };
}

/** Prepares a read whose rows come as arrays, in the order of its columns (see `storedEventOfColumns`). */
function prepareArrayRead(db: DatabaseSync, sql: string): StatementSync {
  const statement = db.prepare(sql);
  statement.setReturnArrays(true);
  return statement;
}

/**
 * The scoped reads of the feed's replays (Store.readScoped), each through its index, named so
 * that the statement fails rather than falls back to a scan (exported for the plan's test).
 * The environment's index is named because the organization's would read all of its events.
 */
export const SCOPED_READS = {
  organization: `SELECT ${EVENT_COLUMNS} FROM events INDEXED BY events_org_sequence
    WHERE organization_id = ? AND sequence > ? ORDER BY sequence LIMIT ?`,
  environment: `SELECT ${EVENT_COLUMNS} FROM events INDEXED BY events_environment_sequence
    WHERE environment_id = ? AND environment_id <> '' AND organization_id = ?
      AND sequence > ? ORDER BY sequence LIMIT ?`,
} as const;

/**
 * Retention's statements (exported for the plan's test): the log's first event created at a time
 * or later, found by walking the log in sequence order, and a chunk of the events before a
 * sequence, deleted as a range of the primary key.
 */
export const PRUNE_EVENTS = {
  firstYoung:
    "SELECT sequence FROM events NOT INDEXED WHERE created_at_ms >= ? ORDER BY sequence LIMIT 1",
  deleteBefore:
    "DELETE FROM events WHERE sequence IN (SELECT sequence FROM events WHERE sequence < ? ORDER BY sequence LIMIT ?)",
} as const;

// Rows deleted per statement when pruning, so a prune never holds the write lock for long.
const PRUNE_CHUNK = 10_000;

/** A `resources` row as the `known` statement reads it, an array (see `storedEventOfColumns`). */
type KnownColumns = readonly [organizationId: string, resourceType: number, creatorId: string];

function knownOf(r: KnownColumns | undefined): Known | undefined {
  return r === undefined
    ? undefined
    : { organizationId: r[0], resourceType: r[1], creatorId: r[2] };
}

/** SQLite errors that mean "cannot write now" rather than a bug. */
function storeError(err: unknown): unknown {
  const code = (err as { errcode?: number; code?: string }).errcode;
  // SQLITE_BUSY 5, SQLITE_LOCKED 6, SQLITE_IOERR 10, SQLITE_FULL 13, SQLITE_CANTOPEN 14.
  if (code !== undefined && [5, 6, 10, 13, 14].includes(code & 0xff)) {
    return new ServiceError("unavailable", "database unavailable", { cause: err });
  }
  return err;
}

export interface SqliteStoreOptions {
  /** Database file (created with its folder when missing). */
  readonly path: string;
  /**
   * `full`: every commit is on disk before a publish is acknowledged (survives power loss);
   * `normal`: on the OS before (survives a crash of the process, not of the machine).
   */
  readonly synchronous?: "full" | "normal";
}

/**
 * The embedded store: one SQLite file in WAL mode through Node's built-in `node:sqlite`. One
 * process at a time (it is the single-replica default). Calls run synchronously on the event
 * loop, each publish one short transaction of prepared statements.
 *
 * Durability (`synchronous: "full"`) without blocking the event loop on the disk: SQLite runs
 * with `synchronous=NORMAL`, so a COMMIT writes the transaction to the write-ahead log without
 * waiting for the disk, and the store then syncs the log file itself with an asynchronous
 * `fdatasync` (on libuv's thread pool) before it acknowledges the append. What is acknowledged
 * is on disk, as with SQLite's own FULL, but the streams keep being written while the disk
 * works, and the appends committed meanwhile share the next sync. (SQLite keeps the log file,
 * the same inode, for as long as the database is open; at checkpoints it syncs it itself.) A
 * failed sync means acknowledged-looking data may not be on disk: the store then refuses all
 * further work (`unavailable`, and `ping` fails) until the server is restarted, and SQLite
 * recovers the log at the next open.
 *
 * The last sequence is the largest in `events`; `meta.last_sequence` keeps it for when
 * retention may delete it (written by `prune` before it deletes anything), so that sequences are
 * never reused, and for releases that read it alone (written at `close`). An append then writes
 * just its rows and their indexes: every page a commit touches is one more write of 4 KiB to the
 * log and one more to sync. A single-event publish touches two pages (its row, and its entry in
 * `events_org_sequence`), down from four with the meta row and a time index in every commit.
 */
export class SqliteStore implements port.Store {
  private last: number;
  private walFd: number | undefined;
  /**
   * The batches of one turn of the event loop share one transaction, so one sync of the
   * write-ahead log (synchronous "full") acknowledges them all; the appends committed while a
   * sync runs share the next. A failed sync fails them, and every append after it.
   */
  private readonly appends: GroupCommit;
  private readonly secretBytes: Buffer;
  private readonly logId: string;
  private readonly firstSequenceStmt: StatementSync;
  private readonly stmt: {
    known: StatementSync;
    insertKnown: StatementSync;
    updateCreator: StatementSync;
    forget: StatementSync;
    insertEvent: StatementSync;
    insertAudit: StatementSync;
    setLast: StatementSync;
    findKey: StatementSync;
    insertKey: StatementSync;
    readAfter: StatementSync;
    readOrganization: StatementSync;
    readEnvironment: StatementSync;
    getAudit: StatementSync;
  };

  /** `walPath`: the write-ahead log's path when this store syncs it itself (synchronous "full"). */
  private constructor(
    private readonly db: DatabaseSync,
    walPath: string | undefined,
  ) {
    this.appends = new GroupCommit({
      commit: async (batches) => this.commitGroup(batches),
      start: "next-turn",
      sync: walPath === undefined ? undefined : () => this.syncLog(walPath),
    });
    migrate(db);
    const meta = db.prepare("SELECT value FROM meta WHERE key = ?");
    let secret = meta.get("secret")?.value as Uint8Array | undefined;
    if (secret === undefined) {
      secret = randomBytes(32);
      db.prepare("INSERT INTO meta (key, value) VALUES ('secret', ?)").run(secret);
    }
    this.secretBytes = Buffer.from(secret);
    let logId = meta.get("log_id")?.value as Uint8Array | undefined;
    if (logId === undefined) {
      logId = Buffer.from(randomUUID(), "utf8");
      db.prepare("INSERT INTO meta (key, value) VALUES ('log_id', ?)").run(logId);
    }
    this.logId = Buffer.from(logId).toString("utf8");
    this.firstSequenceStmt = db.prepare("SELECT min(sequence) AS first FROM events");
    const kept = meta.get("last_sequence")?.value as Uint8Array | undefined;
    const newest = db.prepare("SELECT max(sequence) AS last FROM events").get() as {
      last: number | null;
    };
    this.last = Math.max(
      kept === undefined ? 0 : Number(Buffer.from(kept).readBigUInt64BE()),
      newest.last ?? 0,
    );
    this.stmt = {
      // Asked for every event of every publish: rows as arrays.
      known: prepareArrayRead(
        db,
        "SELECT organization_id, resource_type, creator_id FROM resources WHERE resource_id = ?",
      ),
      insertKnown: db.prepare(
        "INSERT OR REPLACE INTO resources (resource_id, organization_id, resource_type, creator_id) VALUES (?, ?, ?, ?)",
      ),
      updateCreator: db.prepare("UPDATE resources SET creator_id = ? WHERE resource_id = ?"),
      forget: db.prepare("DELETE FROM resources WHERE resource_id = ?"),
      insertEvent: db.prepare(
        "INSERT INTO events (sequence, organization_id, resource_type, operation, resource_id, environment_id, creator_id, created_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
      ),
      insertAudit: db.prepare(
        "INSERT INTO audit_log (id, organization_id, actor_id, actor_principal, subject_id, subject_type, action, created_at_ms, kind) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
      ),
      setLast: db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES ('last_sequence', ?)"),
      findKey: db.prepare(
        "SELECT digest, first_sequence, last_sequence FROM publish_keys WHERE publisher = ? AND key = ?",
      ),
      insertKey: db.prepare(
        "INSERT INTO publish_keys (publisher, key, digest, first_sequence, last_sequence, created_at_ms) VALUES (?, ?, ?, ?, ?, ?)",
      ),
      readAfter: prepareArrayRead(
        db,
        `SELECT ${EVENT_COLUMNS} FROM events WHERE sequence > ? ORDER BY sequence LIMIT ?`,
      ),
      readOrganization: prepareArrayRead(db, SCOPED_READS.organization),
      readEnvironment: prepareArrayRead(db, SCOPED_READS.environment),
      getAudit: db.prepare("SELECT * FROM audit_log WHERE id = ? AND organization_id = ?"),
    };
  }

  /** Opens (creating and migrating when needed) the database at `options.path`. */
  static async open(options: SqliteStoreOptions): Promise<SqliteStore> {
    if (options.path !== ":memory:") mkdirSync(dirname(options.path), { recursive: true });
    const db = new DatabaseSync(options.path);
    try {
      db.exec("PRAGMA journal_mode = WAL");
      // "full" on a file: commits are synced by the store itself (see the class comment).
      const syncItself = options.synchronous !== "normal" && options.path !== ":memory:";
      db.exec(
        `PRAGMA synchronous = ${syncItself || options.synchronous === "normal" ? "NORMAL" : "FULL"}`,
      );
      db.exec("PRAGMA busy_timeout = 5000");
      return new SqliteStore(db, syncItself ? `${options.path}-wal` : undefined);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  /** Committed in groups with the appends of the same turn: see `appends`. */
  append(
    events: readonly ResourceEvent[],
    nowMs: number,
    _options?: port.AppendOptions,
  ): Promise<port.StoredEvent[]> {
    // A local commit has no lost-connection case: nothing for the signal to bound.
    return this.appends.append({ events, nowMs }).then((r) => (r.replayed ? [] : r.events));
  }

  appendOnce(
    events: readonly ResourceEvent[],
    nowMs: number,
    key: port.BatchKey,
    _options?: port.AppendOptions,
  ): Promise<port.AppendOnceResult> {
    return this.appends.append({ events, nowMs, key: { ...key, digest: batchDigest(events) } });
  }

  /** One group's transaction (see `GroupCommit`); runs synchronously, on the event loop. */
  private commitGroup(batches: readonly GroupBatch[]): readonly BatchOutcome[] {
    const { db } = this;
    // Per batch: what it did, or why it was refused (a known key with another batch).
    const outcomes: BatchOutcome[] = [];
    let sequence = this.last;
    try {
      db.exec("BEGIN IMMEDIATE");
      for (const { events, nowMs, key } of batches) {
        // Inside the transaction: a key written by an earlier batch of this group is seen.
        const recorded =
          key === undefined
            ? undefined
            : (this.stmt.findKey.get(key.publisher, key.key) as
                | { digest: Uint8Array; first_sequence: number; last_sequence: number }
                | undefined);
        if (key !== undefined && recorded !== undefined) {
          outcomes.push(
            recordedKeyOutcome(key, {
              digest: recorded.digest,
              firstSequence: Number(recorded.first_sequence),
              lastSequence: Number(recorded.last_sequence),
            }),
          );
          continue;
        }
        const out = this.write(events, nowMs, sequence);
        if (key !== undefined && out.length > 0) {
          this.stmt.insertKey.run(
            key.publisher,
            key.key,
            key.digest,
            sequence + 1,
            sequence + out.length,
            nowMs,
          );
        }
        sequence += out.length;
        outcomes.push({ replayed: false, events: out });
      }
      db.exec("COMMIT");
    } catch (err) {
      if (db.isOpen && db.isTransaction) db.exec("ROLLBACK");
      throw storeError(err);
    }
    this.last = sequence;
    return outcomes;
  }

  /**
   * Syncs the write-ahead log to the disk (see the class comment). A failure is final: the
   * error says to restart the server.
   */
  private async syncLog(walPath: string): Promise<void> {
    try {
      this.walFd ??= fs.openSync(walPath, "r");
      const fd = this.walFd;
      await new Promise<void>((resolve, reject) =>
        fs.fdatasync(fd, (err) => (err === null ? resolve() : reject(err))),
      );
    } catch (err) {
      throw new ServiceError(
        "unavailable",
        "database unavailable: the write-ahead log could not be synced to disk; restart the server",
        { cause: err },
      );
    }
  }

  /** Writes one batch inside the open transaction, numbering it after `after`. */
  private write(
    events: readonly ResourceEvent[],
    nowMs: number,
    after: number,
  ): port.StoredEvent[] {
    const { stmt } = this;
    const out: port.StoredEvent[] = new Array(events.length);
    let sequence = after;
    for (let i = 0; i < events.length; i++) {
      const event = events[i] as ResourceEvent;
      const id = event.resourceId;
      const known = knownOf(stmt.known.get(id) as KnownColumns | undefined);
      const { creatorId, next } = learn(event, known);
      if (next !== known) {
        if (next === undefined) stmt.forget.run(id);
        else if (known !== undefined) stmt.updateCreator.run(next.creatorId, id);
        else stmt.insertKnown.run(id, next.organizationId, next.resourceType, next.creatorId);
      }
      sequence++;
      const createdAtMs = event.occurredAtMs ?? nowMs;
      stmt.insertEvent.run(
        sequence,
        event.organizationId,
        event.resourceType,
        event.operation,
        id,
        event.environmentId,
        creatorId,
        nowMs,
      );
      if (event.actorId) {
        stmt.insertAudit.run(
          newEntryId(),
          event.organizationId,
          event.actorId,
          event.actorPrincipal ?? 0,
          id,
          event.resourceType,
          actionOf(event),
          createdAtMs,
          AuditLogEntryKind.RESOURCE_CHANGE,
        );
      }
      out[i] = { sequence, event, creatorId, acceptedAtMs: nowMs };
    }
    return out;
  }

  async readAfter(sequence: number, limit: number): Promise<port.StoredEvent[]> {
    const rows = this.stmt.readAfter.all(sequence, limit) as unknown as EventColumns[];
    return rows.map(storedEventOfColumns);
  }

  async readScoped(
    sequence: number,
    limit: number,
    scope: port.LogScope,
  ): Promise<port.ScopedPage> {
    // Synchronous: the rows, the head and the first sequence are one snapshot.
    const rows = (scope.environmentId !== undefined && scope.environmentId !== ""
      ? this.stmt.readEnvironment.all(scope.environmentId, scope.organizationId, sequence, limit)
      : this.stmt.readOrganization.all(
          scope.organizationId,
          sequence,
          limit,
        )) as unknown as EventColumns[];
    return scopedPageOf(
      rows.map(storedEventOfColumns),
      limit,
      sequence,
      this.last,
      this.firstSequence(),
    );
  }

  async lastSequence(): Promise<number> {
    return this.last;
  }

  async log(): Promise<port.EventLog> {
    const firstSequence = firstSequenceOf(this.firstSequence(), this.last);
    return { id: this.logId, firstSequence, lastSequence: this.last };
  }

  /** The log's `min(sequence)`: null when it holds no event. */
  private firstSequence(): number | null {
    return (this.firstSequenceStmt.get() as { first: number | null }).first;
  }

  async environment(environmentId: string): Promise<EnvironmentRecord | undefined> {
    const k = knownOf(this.stmt.known.get(environmentId) as KnownColumns | undefined);
    if (k === undefined || k.resourceType !== ResourceType.ENVIRONMENT) return undefined;
    return { organizationId: k.organizationId, creatorId: k.creatorId };
  }

  async listAudit(query: port.AuditPageQuery): Promise<port.AuditEntry[]> {
    const f = query.filter;
    const where = ["organization_id = ?"];
    const args: SQLInputValue[] = [f.organizationId];
    const anyOf = (column: string, values: readonly (string | number)[]) => {
      if (values.length === 0) return;
      where.push(`${column} IN (${values.map(() => "?").join(", ")})`);
      args.push(...values);
    };
    anyOf("actor_id", f.actorIds);
    anyOf("actor_principal", f.actorPrincipals);
    anyOf("subject_id", f.subjectIds);
    anyOf("subject_type", f.subjectTypes);
    if (f.fromMs !== undefined) {
      where.push("created_at_ms >= ?");
      args.push(f.fromMs);
    }
    if (f.toMs !== undefined) {
      where.push("created_at_ms < ?");
      args.push(f.toMs);
    }
    const dir = query.descending ? "DESC" : "ASC";
    if (query.after !== undefined) {
      where.push(`(created_at_ms, id) ${query.descending ? "<" : ">"} (?, ?)`);
      args.push(query.after.createdAtMs, query.after.id);
    }
    args.push(query.limit);
    const sql = `SELECT * FROM audit_log WHERE ${where.join(" AND ")} ORDER BY created_at_ms ${dir}, id ${dir} LIMIT ?`;
    return (this.db.prepare(sql).all(...args) as unknown as AuditRow[]).map(auditEntryOf);
  }

  async getAudit(organizationId: string, id: string): Promise<port.AuditEntry | undefined> {
    const row = this.stmt.getAudit.get(id, organizationId) as AuditRow | undefined;
    return row === undefined ? undefined : auditEntryOf(row);
  }

  async prune(options: { eventsBeforeMs?: number; auditBeforeMs?: number }): Promise<void> {
    const chunked = (sql: string, bound: number | undefined) => {
      if (bound === undefined) return;
      const stmt = this.db.prepare(sql);
      while (Number(stmt.run(bound, PRUNE_CHUNK).changes) === PRUNE_CHUNK) {}
    };
    try {
      const before = options.eventsBeforeMs;
      if (before !== undefined) {
        // Before the newest event can go: the next open must not number from an older one.
        // (Its own commit, ahead of the deletes in the log: a crash that keeps them keeps it.)
        this.keepLast();
        // A prefix of the log: everything before its first event created at `before` or later.
        // Appends from clocks out of step may date an event before one they follow; it stays
        // until that one goes, so the log never has a hole. The scan walks the old events in
        // sequence order, the ones about to be deleted.
        const young = this.db.prepare(PRUNE_EVENTS.firstYoung).get(before) as
          | { sequence: number }
          | undefined;
        chunked(PRUNE_EVENTS.deleteBefore, young === undefined ? this.last + 1 : young.sequence);
      }
      chunked(
        "DELETE FROM publish_keys WHERE (publisher, key) IN (SELECT publisher, key FROM publish_keys WHERE created_at_ms < ? LIMIT ?)",
        options.eventsBeforeMs,
      );
      chunked(
        "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE created_at_ms < ? LIMIT ?)",
        options.auditBeforeMs,
      );
    } catch (err) {
      throw storeError(err);
    }
  }

  async ping(): Promise<void> {
    if (this.appends.failure !== undefined) throw this.appends.failure;
    this.db.prepare("SELECT 1").get();
  }

  async secret(): Promise<Uint8Array> {
    return this.secretBytes;
  }

  /** Records the last sequence in `meta` (see the class comment). */
  private keepLast(): void {
    const last = Buffer.alloc(8);
    last.writeBigUInt64BE(BigInt(this.last));
    this.stmt.setLast.run(last);
  }

  async close(): Promise<void> {
    // Appends already committed are acknowledged (or refused) first.
    await this.appends.synced();
    if (this.db.isOpen) {
      // A release before this one read the last sequence from `meta` alone: one that opens
      // this file after a clean stop numbers on from the right place.
      if (this.appends.failure === undefined) {
        try {
          this.keepLast();
        } catch {
          // the database cannot be written now; the next open finds the sequence in `events`
        }
      }
      this.db.close();
    }
    if (this.walFd !== undefined) fs.closeSync(this.walFd);
    this.walFd = undefined;
  }
}

function migrate(db: DatabaseSync): void {
  db.exec("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)");
  const done = new Set(
    (db.prepare("SELECT version FROM schema_migrations").all() as { version: number }[]).map(
      (r) => r.version,
    ),
  );
  MIGRATIONS.forEach((sql, i) => {
    const version = i + 1;
    if (done.has(version)) return;
    db.exec("BEGIN IMMEDIATE");
    try {
      db.exec(sql);
      db.prepare("INSERT INTO schema_migrations (version) VALUES (?)").run(version);
      db.exec("COMMIT");
    } catch (err) {
      db.exec("ROLLBACK");
      throw err;
    }
  });
}
