import {
  MAX_OPERATION,
  MAX_PRINCIPAL,
  MAX_RESOURCE_TYPE,
  type ResourceEvent,
  ResourceType,
  type ResourceTypeFilter,
  type WatchRequest,
} from "./model.js";
import { isUuid } from "./uuid.js";
import { type Violation, violation } from "./violation.js";
import { isEnvironmentOwned } from "./visibility.js";

// Where the rules' callers have always found it; it lives with Violation (errors.ts needs it
// without the rest of this module).
export { isViolation } from "./violation.js";

/** Upstream limits of WatchEventsRequest (buf.validate rules of gitpod.v1). */
export const MAX_FILTERS = 50;
export const MAX_FILTER_IDS = 25;
/** Limits of PublishRequest. */
export const MAX_PUBLISH_BATCH = 1000;
/** Longest audit action accepted (`environment.start` and the like). */
export const MAX_ACTION_LENGTH = 128;

/**
 * Earliest `occurred_at` accepted: 2000-01-01T00:00:00Z. Nothing this server audits happened
 * before; older times are mistakes (a zero or a seconds-for-ms mix-up).
 */
export const MIN_OCCURRED_AT_MS = Date.UTC(2000, 0, 1);
/** The latest time google.protobuf.Timestamp's JSON form can spell: 9999-12-31T23:59:59.999Z. */
export const MAX_TIMESTAMP_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

/** When a publish is validated: `occurred_at` may be at most `maxSkewMs` after `nowMs`. */
export interface PublishClock {
  /** ms since the epoch. */
  readonly nowMs: number;
  /** How far ahead of `nowMs` a publisher's clock may be, in ms. */
  readonly maxSkewMs: number;
}

const invalid = (message: string): Violation => violation("invalid_argument", message);

export function isDefinedResourceType(value: number): boolean {
  return Number.isInteger(value) && value >= 1 && value <= MAX_RESOURCE_TYPE;
}

function isDefinedOperation(value: number): boolean {
  return Number.isInteger(value) && value >= 1 && value <= MAX_OPERATION;
}

function checkIds(ids: readonly string[], field: string): Violation | undefined {
  if (ids.length > MAX_FILTER_IDS) {
    return invalid(`${field}: at most ${MAX_FILTER_IDS} entries allowed, got ${ids.length}`);
  }
  for (let i = 0; i < ids.length; i++) {
    if (!isUuid(ids[i] as string)) return invalid(`${field}[${i}]: not a UUID`);
  }
  return undefined;
}

/**
 * Checks a watch request against the upstream limits and returns it with every UUID in
 * lower case (so that comparisons are exact), or the first violation, naming its field.
 */
export function validateWatchRequest(req: WatchRequest): WatchRequest | Violation {
  if (req.scope.kind === "environment") {
    if (!isUuid(req.scope.environmentId)) return invalid("environment_id: not a UUID");
    if (req.filters.length > 0) {
      return invalid("resource_type_filters: not allowed with environment scope");
    }
    return {
      scope: { kind: "environment", environmentId: req.scope.environmentId.toLowerCase() },
      filters: [],
    };
  }
  if (req.filters.length > MAX_FILTERS) {
    return invalid(
      `resource_type_filters: at most ${MAX_FILTERS} entries allowed, got ${req.filters.length}`,
    );
  }
  const filters: ResourceTypeFilter[] = [];
  for (let i = 0; i < req.filters.length; i++) {
    const f = req.filters[i] as ResourceTypeFilter;
    const field = `resource_type_filters[${i}]`;
    if (!isDefinedResourceType(f.resourceType)) {
      return invalid(
        `${field}.resource_type: must be a defined resource type other than RESOURCE_TYPE_UNSPECIFIED`,
      );
    }
    const bad =
      checkIds(f.resourceIds, `${field}.resource_ids`) ??
      checkIds(f.creatorIds, `${field}.creator_ids`);
    if (bad) return bad;
    filters.push({
      resourceType: f.resourceType,
      resourceIds: f.resourceIds.map(lower),
      creatorIds: f.creatorIds.map(lower),
    });
  }
  return { scope: { kind: "organization" }, filters };
}

function lower(s: string): string {
  return s.toLowerCase();
}

function checkEvent(
  ev: ResourceEvent,
  field: string,
  clock: PublishClock | undefined,
): Violation | undefined {
  if (!isDefinedResourceType(ev.resourceType)) {
    return invalid(
      `${field}.resource_type: must be a defined resource type other than RESOURCE_TYPE_UNSPECIFIED`,
    );
  }
  if (!isDefinedOperation(ev.operation)) {
    return invalid(
      `${field}.operation: must be a defined operation other than RESOURCE_OPERATION_UNSPECIFIED`,
    );
  }
  if (!isUuid(ev.resourceId)) return invalid(`${field}.resource_id: not a UUID`);
  if (!isUuid(ev.organizationId)) return invalid(`${field}.organization_id: not a UUID`);
  if (ev.creatorId !== "" && !isUuid(ev.creatorId)) {
    return invalid(`${field}.creator_id: not a UUID (leave it empty when unknown)`);
  }
  if (ev.actorId && !isUuid(ev.actorId)) {
    return invalid(`${field}.actor_id: not a UUID (leave it empty when no one acted)`);
  }
  const principal = ev.actorPrincipal ?? 0;
  if (!Number.isInteger(principal) || principal < 0 || principal > MAX_PRINCIPAL) {
    return invalid(`${field}.actor_principal: must be a defined principal`);
  }
  if (
    ev.action !== undefined &&
    (ev.action.length > MAX_ACTION_LENGTH || /[^\x21-\x7e]/.test(ev.action))
  ) {
    return invalid(
      `${field}.action: at most ${MAX_ACTION_LENGTH} printable ASCII characters without spaces`,
    );
  }
  if (ev.occurredAtMs !== undefined) {
    const latest =
      clock === undefined
        ? MAX_TIMESTAMP_MS
        : Math.min(MAX_TIMESTAMP_MS, clock.nowMs + clock.maxSkewMs);
    if (!Number.isFinite(ev.occurredAtMs)) return invalid(`${field}.occurred_at: not a valid time`);
    if (ev.occurredAtMs < MIN_OCCURRED_AT_MS) {
      return invalid(`${field}.occurred_at: before 2000-01-01T00:00:00Z`);
    }
    if (ev.occurredAtMs > latest) {
      return invalid(
        clock === undefined
          ? `${field}.occurred_at: after 9999-12-31T23:59:59.999Z`
          : `${field}.occurred_at: more than ${clock.maxSkewMs} ms ahead of the server's clock`,
      );
    }
  }
  const env = ev.environmentId;
  if (isEnvironmentOwned(ev.resourceType)) {
    if (env === "") return invalid(`${field}.environment_id: required for this resource type`);
    if (!isUuid(env)) return invalid(`${field}.environment_id: not a UUID`);
  } else if (ev.resourceType === ResourceType.ENVIRONMENT) {
    if (env !== "" && env.toLowerCase() !== ev.resourceId.toLowerCase()) {
      return invalid(`${field}.environment_id: must be empty or equal to resource_id`);
    }
  } else if (env !== "") {
    return invalid(`${field}.environment_id: must be empty for this resource type`);
  }
  return undefined;
}

/**
 * Checks a publish batch as a whole and returns it normalized (UUIDs in lower case, an
 * environment's own id as its environment_id), or the first violation, naming the index and
 * the field. Nothing of a batch with a violation may be published.
 */
export function validatePublishBatch(
  events: readonly ResourceEvent[],
  clock?: PublishClock,
): readonly ResourceEvent[] | Violation {
  if (events.length === 0) return invalid("events: at least 1 event required");
  if (events.length > MAX_PUBLISH_BATCH) {
    return invalid(`events: at most ${MAX_PUBLISH_BATCH} events allowed, got ${events.length}`);
  }
  const out: ResourceEvent[] = new Array(events.length);
  for (let i = 0; i < events.length; i++) {
    const ev = events[i] as ResourceEvent;
    const bad = checkEvent(ev, `events[${i}]`, clock);
    if (bad) return bad;
    const resourceId = ev.resourceId.toLowerCase();
    out[i] = {
      resourceType: ev.resourceType,
      operation: ev.operation,
      resourceId,
      organizationId: ev.organizationId.toLowerCase(),
      environmentId:
        ev.resourceType === ResourceType.ENVIRONMENT ? resourceId : ev.environmentId.toLowerCase(),
      creatorId: ev.creatorId.toLowerCase(),
      ...(ev.actorId && {
        actorId: ev.actorId.toLowerCase(),
        actorPrincipal: ev.actorPrincipal ?? 0,
      }),
      ...(ev.action && { action: ev.action }),
      ...(ev.occurredAtMs !== undefined && { occurredAtMs: ev.occurredAtMs }),
    };
  }
  return out;
}

/** The longest idempotency key, in characters (CONTRACT §13). */
export const MAX_IDEMPOTENCY_KEY_LENGTH = 128;
const IDEMPOTENCY_KEY_RE = /^[\x20-\x7e]+$/;

/**
 * A publish's idempotency key: empty (none) or 1 to MAX_IDEMPOTENCY_KEY_LENGTH printable ASCII
 * characters (space to tilde). Returns the violation, or undefined when the key is acceptable.
 */
export function checkIdempotencyKey(key: string): Violation | undefined {
  if (key === "") return undefined;
  if (key.length > MAX_IDEMPOTENCY_KEY_LENGTH || !IDEMPOTENCY_KEY_RE.test(key)) {
    return invalid(
      `idempotency_key: must be 1 to ${MAX_IDEMPOTENCY_KEY_LENGTH} printable ASCII characters`,
    );
  }
  return undefined;
}
