import type { AuditFilterLists } from "../watch/audit-rules.js";
import type { EnvironmentRecord, ResourceEvent } from "../watch/model.js";

/** An event as the store recorded it: its place in the one global order, and what it resolved. */
export interface StoredEvent {
  /** Consecutive across every batch and every replica; only grows. */
  readonly sequence: number;
  readonly event: ResourceEvent;
  /** The event's creator, or the one recorded for the resource before it, or "". */
  readonly creatorId: string;
  /** When the store accepted it: the append's `nowMs` (ms since the epoch). */
  readonly acceptedAtMs: number;
}

/** A publisher's idempotency key for one batch (CONTRACT §13). */
export interface BatchKey {
  /** Whose key: the authenticated subject. Keys of different publishers never meet. */
  readonly publisher: string;
  /** 1 to 128 printable ASCII characters (validated by the caller). */
  readonly key: string;
}

export interface AppendOptions {
  /**
   * Aborted when the caller stops waiting (its deadline passed, it went away). The append is
   * never abandoned for it; it only bounds how long the caller waits for the store to find out
   * whether a commit whose connection died went through: once aborted during that search, the
   * append rejects with `unavailable` saying that the outcome is unknown.
   */
  readonly signal?: AbortSignal;
}

/** What a keyed append did: appended the batch, or found it appended before under its key. */
export type AppendOnceResult =
  | { readonly replayed: false; readonly events: StoredEvent[] }
  | {
      readonly replayed: true;
      /** The sequences the first append of the batch was given. */
      readonly firstSequence: number;
      readonly lastSequence: number;
    };

/** The event log's identity and extent. */
export interface EventLog {
  /**
   * Made once with the log and kept with it (every replica of a database sees the same one): a
   * position in one log means nothing in another.
   */
  readonly id: string;
  /** The oldest sequence the log still holds (retention prunes); `lastSequence + 1` when empty. */
  readonly firstSequence: number;
  /** The highest sequence given so far (0 when none). */
  readonly lastSequence: number;
}

/**
 * Which events a replay may need (CONTRACT §12): one organization's, or, for environment scope,
 * the events that carry one environment's id (its own ENVIRONMENT events and those of the
 * tasks, task executions and services it owns). Every store reads a scope through an index, so
 * a replay costs what the caller's scope holds, never what the whole log holds.
 */
export interface LogScope {
  readonly organizationId: string;
  readonly environmentId?: string;
}

/** One page of a scoped read of the log. */
export interface ScopedPage {
  /** The events in scope with a sequence above the one asked for, in order, at most `limit`. */
  readonly events: StoredEvent[];
  /**
   * Every event up to this sequence is in `events` or out of scope: the last event's sequence
   * when the page is full, else the log's head when it was read (one snapshot with `events`).
   * A reader that resumes after `through` misses nothing and reads nothing twice.
   */
  readonly through: number;
  /** The oldest sequence the log held when it was read (`head + 1` when it held none). */
  readonly firstSequence: number;
}

/** One audit log entry (CONTRACT §9). */
export interface AuditEntry {
  /** UUID. */
  readonly id: string;
  readonly organizationId: string;
  readonly actorId: string;
  /** `gitpod.v1.Principal` number. */
  readonly actorPrincipal: number;
  readonly subjectId: string;
  /** `gitpod.v1.ResourceType` number. */
  readonly subjectType: number;
  readonly action: string;
  /** ms since the epoch. */
  readonly createdAtMs: number;
  /** `gitpod.v1.AuditLogEntryKind` number. */
  readonly kind: number;
}

/**
 * Which entries of one organization's audit log; every set field must match (an empty list
 * matches anything).
 */
export interface AuditFilter extends AuditFilterLists {
  readonly organizationId: string;
  /** Inclusive, ms since the epoch. */
  readonly fromMs?: number;
  /** Exclusive, ms since the epoch. */
  readonly toMs?: number;
}

/** A keyset page: entries strictly after `after` in (createdAtMs, id) order, or before it when descending. */
export interface AuditPageQuery {
  readonly filter: AuditFilter;
  readonly descending: boolean;
  readonly limit: number;
  readonly after?: { readonly createdAtMs: number; readonly id: string };
}

/**
 * The store port: what the server learns (creators, environments), the event log and the
 * audit log, durably. Implementations: SQLite (embedded, one process) and PostgreSQL (shared by
 * replicas). Every implementation passes the contract suite in test/store-contract.ts.
 *
 * Errors: a store that cannot reach its database throws ServiceError `unavailable`, and then has
 * written nothing of the call.
 */
export interface Store {
  /**
   * Appends a validated batch in one transaction: gives its events consecutive sequence numbers
   * after every earlier batch (of any replica), resolves each event's creator (the event's own,
   * or the one recorded for the resource; a resource known in another organization is not
   * used or changed), learns creators and environments (a DELETE forgets the resource), and
   * records an audit entry of kind RESOURCE_CHANGE for each event with an actor
   * (created at `occurredAtMs`, or `nowMs`; action derived when empty). Durable when resolved.
   */
  append(
    events: readonly ResourceEvent[],
    nowMs: number,
    options?: AppendOptions,
  ): Promise<StoredEvent[]>;
  /**
   * `append` at most once per key: records `key` with the batch's digest (see `batchDigest`)
   * and its sequences in the transaction that appends it. When this publisher's key is
   * recorded already, writes nothing: the same batch resolves `replayed` with the first
   * append's sequences; another batch rejects with ServiceError `already_exists`. Safe across
   * replicas racing the same key (exactly one appends) and across restarts; a key is forgotten
   * when retention prunes the events appended with it.
   */
  appendOnce(
    events: readonly ResourceEvent[],
    nowMs: number,
    key: BatchKey,
    options?: AppendOptions,
  ): Promise<AppendOnceResult>;
  /** Events with a sequence above `sequence`, in order, at most `limit`. */
  readAfter(sequence: number, limit: number): Promise<StoredEvent[]>;
  /**
   * Events in `scope` with a sequence above `sequence`, in order, at most `limit`, read
   * through an index of the scope: the cost follows the events in scope, not the log's size.
   */
  readScoped(sequence: number, limit: number, scope: LogScope): Promise<ScopedPage>;
  /** The highest sequence given so far (0 when none). */
  lastSequence(): Promise<number>;
  /** The log's id and the sequences it holds. */
  log(): Promise<EventLog>;
  /** What is known of an environment (from its events). */
  environment(environmentId: string): Promise<EnvironmentRecord | undefined>;
  /** One page of an organization's audit log, sorted by (createdAtMs, id). */
  listAudit(query: AuditPageQuery): Promise<AuditEntry[]>;
  /** One entry, only if it belongs to `organizationId`. */
  getAudit(organizationId: string, id: string): Promise<AuditEntry | undefined>;
  /**
   * Deletes events created before `eventsBeforeMs`, with the idempotency keys of the batches
   * appended then, and audit entries created before `auditBeforeMs`.
   */
  prune(options: { eventsBeforeMs?: number; auditBeforeMs?: number }): Promise<void>;
  /** Resolves when the database answers; throws otherwise (readiness). */
  ping(): Promise<void>;
  /** 32 random bytes made once per database and shared by every replica (page tokens). */
  secret(): Promise<Uint8Array>;
  /**
   * Calls `onAppend` soon after any replica appends (PostgreSQL: LISTEN/NOTIFY), with the last
   * sequence of that append, and without one when the notification channel reconnects
   * (something may have been missed). Absent for single-process stores. Returns a function
   * that stops listening.
   */
  listen?(onAppend: (lastSequence?: number) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}
