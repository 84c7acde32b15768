import { randomBytes } from "node:crypto";
import { Operation, type ResourceEvent, ResourceType } from "../watch/model.js";
import type { AuditEntry, ScopedPage, StoredEvent } from "./store.js";

/** What a store keeps of a resource: enough to resolve creators and authorize environments. */
export interface Known {
  readonly organizationId: string;
  readonly resourceType: number;
  readonly creatorId: string;
}

/**
 * The one learning rule of every store (see Store.append), for one event given what is known of
 * its resource: the event's creator as resolved, and what is known after it (`undefined`:
 * nothing, or forgotten; the same object: unchanged). A record of another organization is
 * neither used nor changed; a DELETE forgets; an environment is recorded even without creator,
 * any other resource only with one.
 */
export function learn(
  event: ResourceEvent,
  known: Known | undefined,
): { creatorId: string; next: Known | undefined } {
  const sameOrg = known !== undefined && known.organizationId === event.organizationId;
  const creatorId = event.creatorId || (sameOrg ? known.creatorId : "");
  if (known !== undefined && !sameOrg) return { creatorId, next: known };
  if (event.operation === Operation.DELETE) return { creatorId, next: undefined };
  if (known !== undefined) {
    const next =
      creatorId !== "" && creatorId !== known.creatorId ? { ...known, creatorId } : known;
    return { creatorId, next };
  }
  if (creatorId === "" && event.resourceType !== ResourceType.ENVIRONMENT) {
    return { creatorId, next: undefined };
  }
  return {
    creatorId,
    next: { organizationId: event.organizationId, resourceType: event.resourceType, creatorId },
  };
}

/** An `events` row as either database returns it (PostgreSQL gives bigints as strings). */
export interface EventRow {
  sequence: number | string;
  organization_id: string;
  resource_type: number;
  operation: number;
  resource_id: string;
  environment_id: string;
  creator_id: string;
  created_at_ms: number | string;
}

export function storedEventOf(r: EventRow): StoredEvent {
  return {
    sequence: Number(r.sequence),
    creatorId: r.creator_id,
    acceptedAtMs: Number(r.created_at_ms),
    event: {
      resourceType: r.resource_type,
      operation: r.operation,
      resourceId: r.resource_id,
      organizationId: r.organization_id,
      environmentId: r.environment_id,
      creatorId: r.creator_id,
    },
  };
}

/**
 * The oldest sequence a log holds, from its `min(sequence)` (null when it holds none: then the
 * one after its head).
 */
export function firstSequenceOf(first: number | string | null | undefined, head: number): number {
  return first === null || first === undefined ? head + 1 : Number(first);
}

/**
 * A page of Store.readScoped from one snapshot of the log: `events`, those in scope after
 * `after` (at most `limit`), read with the log's `head` and its `min(sequence)`. Up to `through`
 * the caller has seen everything in scope: the last event when the page is full, else the head.
 */
export function scopedPageOf(
  events: StoredEvent[],
  limit: number,
  after: number,
  head: number,
  first: number | string | null | undefined,
): ScopedPage {
  const last = events[events.length - 1];
  return {
    events,
    through: events.length === limit && last !== undefined ? last.sequence : Math.max(after, head),
    firstSequence: firstSequenceOf(first, head),
  };
}

/** An `audit_log` row as either database returns it. */
export interface AuditRow {
  id: string;
  organization_id: string;
  actor_id: string;
  actor_principal: number;
  subject_id: string;
  subject_type: number;
  action: string;
  created_at_ms: number | string;
  kind: number;
}

export function auditEntryOf(r: AuditRow): AuditEntry {
  return {
    id: r.id,
    organizationId: r.organization_id,
    actorId: r.actor_id,
    actorPrincipal: r.actor_principal,
    subjectId: r.subject_id,
    subjectType: r.subject_type,
    action: r.action,
    createdAtMs: Number(r.created_at_ms),
    kind: r.kind,
  };
}

/**
 * A new audit entry id: a UUIDv7 (RFC 9562), whose first 48 bits are the time in ms, so that
 * entries land at the end of the audit log's indexes instead of at random places (random v4 ids
 * made each append touch pages all over the B-trees), and sort by time.
 */
export function newEntryId(nowMs: number = Date.now()): string {
  const b = randomBytes(16);
  b.writeUIntBE(Math.max(0, Math.min(nowMs, 2 ** 48 - 1)), 0, 6);
  b[6] = ((b[6] as number) & 0x0f) | 0x70; // version 7
  b[8] = ((b[8] as number) & 0x3f) | 0x80; // variant 10
  const h = b.toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
