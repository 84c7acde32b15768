import { MAX_PRINCIPAL, MAX_RESOURCE_TYPE, type Principal } from "./model.js";
import { isUuid } from "./uuid.js";
import { type Violation, violation } from "./violation.js";

/** Upstream limits of ListAuditLogsRequest (CONTRACT §9). */
export const MAX_AUDIT_FILTER_VALUES = 25;
export const MAX_AUDIT_PAGE_SIZE = 100;
/** What a page size of 0 (absent) means. */
export const DEFAULT_AUDIT_PAGE_SIZE = 25;

/** `gitpod.v1.SortOrder` numbers. */
export const SortOrder = { UNSPECIFIED: 0, ASC: 1, DESC: 2 } as const;

/**
 * The earliest and latest instants a `google.protobuf.Timestamp` may hold
 * (0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999Z), in ms since the epoch.
 */
const MIN_TIMESTAMP_MS = -62_135_596_800_000;
const MAX_TIMESTAMP_MS = 253_402_300_799_999;

/**
 * The lists of an audit filter (CONTRACT §9), one shape from the request as it arrived, through
 * the valid query, to the store's filter: a list added here is added everywhere.
 */
export interface AuditFilterLists {
  readonly actorIds: readonly string[];
  /** `gitpod.v1.Principal` numbers. */
  readonly actorPrincipals: readonly number[];
  readonly subjectIds: readonly string[];
  /** `gitpod.v1.ResourceType` numbers. */
  readonly subjectTypes: readonly number[];
}

/** A ListAuditLogs request as it arrived, before validation; the edge fills it without judging. */
export interface AuditQueryInput extends AuditFilterLists {
  /**
   * Inclusive lower bound, whole ms since the epoch (a sub-ms bound rounded up, which selects
   * the same whole-ms entries); undefined when absent; NaN when the timestamp is malformed.
   */
  readonly fromMs: number | undefined;
  /** Exclusive upper bound, as `fromMs`. */
  readonly toMs: number | undefined;
  /** `sort.field` as sent ("" when absent). */
  readonly sortField: string;
  /** `gitpod.v1.SortOrder` number. */
  readonly sortOrder: number;
  /** `pagination.page_size` after the URL override; NaN when the URL held no integer. */
  readonly pageSize: number;
}

/**
 * A valid audit query: UUIDs in lower case, every list without duplicates and sorted (a filter
 * list is a set: its order means nothing, so two requests that differ only in order are one
 * query, see `auditQueryKey`), the order resolved and the page size in 1..100.
 */
export interface AuditQuery extends AuditFilterLists {
  readonly fromMs: number | undefined;
  readonly toMs: number | undefined;
  /** Newest first; the default. */
  readonly descending: boolean;
  readonly pageSize: number;
}

/** Who may read an organization's audit log, once allowed. */
export interface AuditReader {
  readonly organizationId: string;
}

const invalid = (message: string): Violation => violation("invalid_argument", message);

/**
 * Admins of an organization and auditors (of their organization) may read its audit log;
 * members and publishers may not, nor anyone whose credential names no organization.
 */
export function mayReadAudit(principal: Principal): AuditReader | Violation {
  const org = principal.organization;
  if ((principal.role !== "admin" && principal.role !== "auditor") || org === undefined) {
    return violation(
      "permission_denied",
      "only admins and auditors of an organization may read its audit log",
    );
  }
  return { organizationId: org };
}

function checkCount(values: readonly unknown[], field: string): Violation | undefined {
  if (values.length > MAX_AUDIT_FILTER_VALUES) {
    return invalid(
      `${field}: at most ${MAX_AUDIT_FILTER_VALUES} entries allowed, got ${values.length}`,
    );
  }
  return undefined;
}

function checkUuids(ids: readonly string[], field: string): Violation | undefined {
  const tooMany = checkCount(ids, field);
  if (tooMany) return tooMany;
  for (let i = 0; i < ids.length; i++) {
    if (!isUuid(ids[i] as string)) return invalid(`${field}[${i}]: not a UUID`);
  }
  return undefined;
}

function checkEnum(
  values: readonly number[],
  max: number,
  field: string,
  what: string,
): Violation | undefined {
  const tooMany = checkCount(values, field);
  if (tooMany) return tooMany;
  for (let i = 0; i < values.length; i++) {
    const v = values[i] as number;
    // 0 (UNSPECIFIED) is defined in the enum but selects nothing, so it is no filter value.
    if (!Number.isInteger(v) || v < 1 || v > max) {
      return invalid(`${field}[${i}]: must be a defined ${what}`);
    }
  }
  return undefined;
}

function checkTimestamp(ms: number | undefined, field: string): Violation | undefined {
  if (ms === undefined) return undefined;
  if (!Number.isSafeInteger(ms) || ms < MIN_TIMESTAMP_MS || ms > MAX_TIMESTAMP_MS) {
    return invalid(`${field}: not a valid timestamp`);
  }
  return undefined;
}

/** The sort fields that mean `created_at`: "" (the default) and its JSON and proto names. */
const SORT_FIELDS: ReadonlySet<string> = new Set(["", "createdAt", "created_at"]);

/**
 * Checks a ListAuditLogs request against the upstream limits and returns the query it asks
 * for, or the first violation, naming its field (`filter.actor_ids[3]: not a UUID`).
 *
 * `from` equal to `to` is accepted: it is the empty window [t, t), well-formed and empty, as a
 * client computing windows of zero length expects; only `from` after `to` is refused.
 */
export function validateAuditQuery(raw: AuditQueryInput): AuditQuery | Violation {
  const bad =
    checkUuids(raw.actorIds, "filter.actor_ids") ??
    checkEnum(raw.actorPrincipals, MAX_PRINCIPAL, "filter.actor_principals", "principal") ??
    checkUuids(raw.subjectIds, "filter.subject_ids") ??
    checkEnum(raw.subjectTypes, MAX_RESOURCE_TYPE, "filter.subject_types", "resource type") ??
    checkTimestamp(raw.fromMs, "filter.from") ??
    checkTimestamp(raw.toMs, "filter.to");
  if (bad) return bad;
  if (raw.fromMs !== undefined && raw.toMs !== undefined && raw.fromMs > raw.toMs) {
    return invalid("filter.to: must not be before filter.from");
  }
  if (!SORT_FIELDS.has(raw.sortField)) {
    return invalid(
      `sort.field: only "createdAt" is supported, got ${JSON.stringify(raw.sortField)}`,
    );
  }
  let descending: boolean;
  switch (raw.sortOrder) {
    case SortOrder.ASC:
      descending = false;
      break;
    case SortOrder.UNSPECIFIED:
    case SortOrder.DESC:
      descending = true;
      break;
    default:
      return invalid("sort.order: must be SORT_ORDER_ASC, SORT_ORDER_DESC or unspecified");
  }
  const size = raw.pageSize;
  if (!Number.isInteger(size) || size < 0 || size > MAX_AUDIT_PAGE_SIZE) {
    return invalid(`pagination.page_size: must be an integer from 0 to ${MAX_AUDIT_PAGE_SIZE}`);
  }
  return {
    actorIds: uniqueSorted(raw.actorIds.map(lower)),
    actorPrincipals: uniqueSorted(raw.actorPrincipals),
    subjectIds: uniqueSorted(raw.subjectIds.map(lower)),
    subjectTypes: uniqueSorted(raw.subjectTypes),
    fromMs: raw.fromMs,
    toMs: raw.toMs,
    descending,
    pageSize: size === 0 ? DEFAULT_AUDIT_PAGE_SIZE : size,
  };
}

/**
 * Identifies what a page token continues: the organization, the filter and the order, but not
 * the page size (a client may change it between pages). Equal for equal queries, different
 * otherwise; the edge binds page tokens to it.
 */
export function auditQueryKey(organizationId: string, query: AuditQuery): string {
  return JSON.stringify([
    "audit/v1",
    organizationId.toLowerCase(),
    query.actorIds,
    query.actorPrincipals,
    query.subjectIds,
    query.subjectTypes,
    query.fromMs ?? null,
    query.toMs ?? null,
    query.descending,
  ]);
}

/** Checks GetAuditLog's `audit_log_entry_id` and returns it in lower case. */
export function validateAuditEntryId(id: string): string | Violation {
  if (!isUuid(id)) return invalid("audit_log_entry_id: not a UUID");
  return id.toLowerCase();
}

function lower(s: string): string {
  return s.toLowerCase();
}

function uniqueSorted<T extends string | number>(values: readonly T[]): T[] {
  return [...new Set(values)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}
