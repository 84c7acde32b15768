import { randomBytes, randomUUID } from "node:crypto";
import type pg from "pg";

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
  {
    version: 3,
    name: "event log id",
    // Cursors of the resumable feed carry it: a position in one log means nothing in another.
    up: async (client) => {
      await client.query(
        "INSERT INTO meta (key, value) VALUES ('log_id', $1) ON CONFLICT (key) DO NOTHING",
        [Buffer.from(randomUUID(), "utf8")],
      );
    },
  },
  {
    version: 4,
    name: "scoped replay indexes",
    // The feed replays one organization's events, or one environment's, in sequence order
    // (Store.readScoped) without reading anyone else's. Most events carry no environment, hence
    // the partial index. (Built inside the migration transaction, so appends wait for it once.)
    up: `
      CREATE INDEX IF NOT EXISTS events_org_sequence ON events (organization_id, sequence);
      CREATE INDEX IF NOT EXISTS events_environment_sequence ON events (environment_id, sequence)
        WHERE environment_id <> '';
    `,
  },
  {
    version: 5,
    name: "idempotency keys, commit tokens",
    // One row per keyed batch (CONTRACT §13), written in its append's transaction and pruned
    // with its events (same created_at_ms). One row per append transaction, looked up when the
    // connection died during its COMMIT; pruned with the events too.
    up: `
      CREATE TABLE IF NOT EXISTS commit_tokens (
        token uuid PRIMARY KEY,
        created_at_ms bigint NOT NULL
      );
      CREATE INDEX IF NOT EXISTS commit_tokens_created_at_ms ON commit_tokens (created_at_ms);
      CREATE TABLE IF NOT EXISTS publish_keys (
        publisher text NOT NULL,
        key text NOT NULL,
        digest bytea NOT NULL,
        first_sequence bigint NOT NULL,
        last_sequence bigint NOT NULL,
        created_at_ms bigint NOT NULL,
        CONSTRAINT publish_keys_pkey PRIMARY KEY (publisher, key)
      );
      CREATE INDEX IF NOT EXISTS publish_keys_created_at_ms ON publish_keys (created_at_ms);
    `,
  },
];

/**
 * Every column of `audit_log`, in the order the store writes them and reads them back
 * (records.ts's `AuditRow`).
 */
export const AUDIT_COLUMNS =
  "id, organization_id, actor_id, actor_principal, subject_id, subject_type, action, created_at_ms, kind";

/**
 * Applies the migrations this database lacks, in order. Must run inside a transaction on
 * `client` (the caller commits it): it takes the advisory lock that serializes migrating
 * replicas, which the commit releases. Lifts the session's statement timeouts for its duration.
 */
export async function migrate(client: pg.ClientBase): Promise<void> {
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
