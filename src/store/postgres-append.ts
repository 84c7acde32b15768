import type pg from "pg";
import { AuditLogEntryKind, type ResourceEvent } from "../watch/model.js";
import { actionOf } from "./action.js";
import { AUDIT_COLUMNS } from "./postgres-migrations.js";
import { EVENTS_CHANNEL } from "./postgres-notifications.js";
import { type Known, learn, newEntryId } from "./records.js";
import type { StoredEvent } from "./store.js";

/**
 * Appends `events` inside the caller's transaction on `client`, numbered consecutively after
 * every earlier append, `nowsMs[i]` the `nowMs` of `events[i]`; resolves with one StoredEvent per
 * event, in order. Takes the row lock of the one-row `event_sequence` counter first, which the
 * caller's commit releases: that lock serializes the appends of every replica (see
 * `PostgresStore`). Learns creators, records audit entries and sends the NOTIFY on
 * `EVENTS_CHANNEL`, which is delivered at commit.
 */
export async function appendEvents(
  client: pg.ClientBase,
  events: readonly ResourceEvent[],
  nowsMs: readonly number[],
): Promise<StoredEvent[]> {
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
    ],
  );
  return stored;
}
