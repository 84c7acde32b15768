import { randomUUID } from "node:crypto";
import type pg from "pg";
import { AuditLogEntryKind, type ResourceEvent } from "../watch/model.js";
import { actionOf } from "./action.js";
import { recordedKeyOutcome } from "./batch-digest.js";
import type { BatchOutcome, GroupBatch } from "./group-commit.js";
import { AUDIT_COLUMNS } from "./postgres-migrations.js";
import { EVENTS_CHANNEL } from "./postgres-notifications.js";
import { type Known, learn, newEntryId } from "./records.js";
import type { BatchKey, StoredEvent } from "./store.js";

/** What a group's transaction did before its COMMIT. */
export interface GroupWrite {
  /** One per batch of the group, in order. */
  readonly outcomes: readonly BatchOutcome[];
  /**
   * Set when the transaction wrote anything: what tells, after a connection lost during
   * COMMIT, whether it committed (see `PostgresStore.commitOutcome`).
   */
  readonly commit: CommitToken | undefined;
}

/** How to find out later whether an append's transaction committed. */
export interface CommitToken {
  /** A UUID written in the transaction (table `commit_tokens`): visible once it committed. */
  readonly token: string;
  /**
   * The transaction's id (xid8, as text): while its backend still holds it, the transaction
   * has not ended. (Not a verdict by itself: after a crash, an id whose records never reached
   * the WAL can be given again to another transaction.)
   */
  readonly xid: string;
}

/**
 * Writes the batches of one group inside the caller's transaction on `client`. Keyed batches
 * whose key this publisher recorded before are not written: the same batch (same digest) is
 * `replayed` with the recorded sequences, another is refused with `already_exists` (that batch
 * alone). The keys are looked up before the counter's lock is taken, so the lock is held no
 * longer than without keys; a replica that records the same key meanwhile makes this
 * transaction's insert of it fail with a unique violation (see `isKeyRace`), and the caller
 * runs the group again, when the lookup sees it.
 */
export async function appendGroup(
  client: pg.ClientBase,
  batches: readonly GroupBatch[],
): Promise<GroupWrite> {
  const outcomes: (BatchOutcome | undefined)[] = new Array(batches.length);
  const keyed = batches.filter((b) => b.key !== undefined);
  if (keyed.length > 0) {
    const found = await client.query<{
      publisher: string;
      key: string;
      digest: Buffer;
      first_sequence: string;
      last_sequence: string;
    }>(
      `SELECT publisher, key, digest, first_sequence, last_sequence FROM publish_keys
       WHERE (publisher, key) IN (SELECT * FROM unnest($1::text[], $2::text[]))`,
      [keyed.map((b) => b.key?.publisher), keyed.map((b) => b.key?.key)],
    );
    const known = new Map(found.rows.map((r) => [`${r.publisher}\n${r.key}`, r]));
    batches.forEach((b, i) => {
      if (b.key === undefined) return;
      const r = known.get(`${b.key.publisher}\n${b.key.key}`);
      if (r === undefined) return;
      outcomes[i] = recordedKeyOutcome(b.key, {
        digest: r.digest,
        firstSequence: Number(r.first_sequence),
        lastSequence: Number(r.last_sequence),
      });
    });
  }
  const events: ResourceEvent[] = [];
  const nows: number[] = [];
  const keys: KeyRow[] = [];
  const written: number[] = [];
  batches.forEach((b, i) => {
    if (outcomes[i] !== undefined) return;
    if (b.key !== undefined) {
      keys.push({ ...b.key, offset: events.length, count: b.events.length, nowMs: b.nowMs });
    }
    written.push(i);
    for (const e of b.events) {
      events.push(e);
      nows.push(b.nowMs);
    }
  });
  if (events.length === 0) return { outcomes: outcomes as BatchOutcome[], commit: undefined };
  const token = randomUUID();
  const { stored, xid } = await appendEvents(client, events, nows, keys, token);
  let at = 0;
  for (const i of written) {
    const n = (batches[i] as GroupBatch).events.length;
    outcomes[i] = { replayed: false, events: stored.slice(at, at + n) };
    at += n;
  }
  return { outcomes: outcomes as BatchOutcome[], commit: { token, xid } };
}

/** True when `err` is the unique violation of a key that another transaction recorded first. */
export function isKeyRace(err: unknown): boolean {
  const e = err as { code?: unknown; constraint?: unknown };
  return e.code === "23505" && e.constraint === "publish_keys_pkey";
}

/** A key to record with the events at `offset`, `count` of them, of the append. */
interface KeyRow extends BatchKey {
  readonly digest: Buffer;
  readonly offset: number;
  readonly count: number;
  readonly nowMs: number;
}

/**
 * Appends `events` inside the caller's transaction on `client`, numbered consecutively after
 * every earlier append, `nowsMs[i]` the `nowMs` of `events[i]`; resolves with one StoredEvent per
 * event, in order. Takes the row lock of the one-row `event_sequence` counter first, which the
 * caller's commit releases: that lock serializes the appends of every replica (see
 * `PostgresStore`). Learns creators, records audit entries and idempotency keys, and sends the
 * NOTIFY on `EVENTS_CHANNEL`, which is delivered at commit. Resolves with the transaction's id too.
 */
async function appendEvents(
  client: pg.ClientBase,
  events: readonly ResourceEvent[],
  nowsMs: readonly number[],
  keys: readonly KeyRow[],
  token: string,
): Promise<{ stored: StoredEvent[]; xid: string }> {
  const counter = await client.query<{ last: string; xid: string }>(
    "UPDATE event_sequence SET last = last + $1 WHERE id = 1 RETURNING last, pg_current_xact_id()::text AS xid",
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
    stored.push({ sequence: first + i, event, creatorId, acceptedAtMs: nowsMs[i] as number });
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
     ),
     keys AS (
       INSERT INTO publish_keys (publisher, key, digest, first_sequence, last_sequence,
         created_at_ms)
       SELECT * FROM unnest($24::text[], $25::text[], $26::bytea[], $27::bigint[], $28::bigint[],
         $29::bigint[])
     ),
     token AS (INSERT INTO commit_tokens (token, created_at_ms) VALUES ($30::uuid, $31::bigint))
     SELECT pg_notify($22, $23)`,
    [
      stored.map((s) => s.sequence),
      events.map((e) => e.organizationId),
      events.map((e) => e.resourceType),
      events.map((e) => e.operation),
      events.map((e) => e.resourceId),
      events.map((e) => e.environmentId),
      stored.map((s) => s.creatorId),
      nowsMs,
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
      audited.map((i) => events[i]?.occurredAtMs ?? nowsMs[i]),
      EVENTS_CHANNEL,
      String(last),
      keys.map((k) => k.publisher),
      keys.map((k) => k.key),
      keys.map((k) => k.digest),
      keys.map((k) => first + k.offset),
      keys.map((k) => first + k.offset + k.count - 1),
      keys.map((k) => k.nowMs),
      token,
      nowsMs[nowsMs.length - 1],
    ],
  );
  return { stored, xid: row.xid };
}
