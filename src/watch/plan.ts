import {
  type EnvironmentRecord,
  Operation,
  type Principal,
  type ResourceEvent,
  ResourceType,
  type WatchRequest,
} from "./model.js";
import { type Violation, violation } from "./violation.js";
import { isEnvironmentOwned, visibilityOf } from "./visibility.js";

/** One filter entry, compiled for matching: `undefined` means "any". */
export interface CompiledFilter {
  readonly resourceIds: ReadonlySet<string> | undefined;
  readonly creatorIds: ReadonlySet<string> | undefined;
}

/**
 * The entries of one resource type, merged so that matching costs a few set lookups however
 * many entries there are (up to 50 of 25 ids): entries with ids only share one set, entries
 * with creators only share another, and only entries with both are checked one by one.
 */
export interface TypeFilter {
  /** An entry with neither ids nor creators: every event of the type passes. */
  readonly any: boolean;
  readonly resourceIds: ReadonlySet<string> | undefined;
  readonly creatorIds: ReadonlySet<string> | undefined;
  readonly both: readonly CompiledFilter[];
}

/**
 * What one stream may receive: decided once when the stream opens, then matched against each
 * candidate event. Immutable.
 */
export interface WatchPlan {
  readonly organizationId: string;
  readonly subject: string;
  readonly admin: boolean;
  /** Set for environment scope. */
  readonly environmentId: string | undefined;
  /** Filter entries by resource type, merged; `undefined` when the request has no filters. */
  readonly filters: ReadonlyMap<number, TypeFilter> | undefined;
}

const notFound = (id: string): Violation =>
  violation("not_found", `environment_id: environment ${id} not found`);

/**
 * Decides whether `principal` may open the (validated) watch `request`, and what it will see.
 * `environment` is what the server knows of the requested environment, for environment scope.
 * An environment that is unknown and one the caller may not see get the same answer.
 */
export function planWatch(
  principal: Principal,
  request: WatchRequest,
  environment: EnvironmentRecord | undefined,
): WatchPlan | Violation {
  const org = principal.organization;
  if ((principal.role !== "admin" && principal.role !== "member") || org === undefined) {
    return violation("permission_denied", "only members and admins of an organization may watch");
  }
  const admin = principal.role === "admin";
  if (request.scope.kind === "environment") {
    const id = request.scope.environmentId;
    if (environment === undefined || environment.organizationId !== org) return notFound(id);
    if (!admin && (environment.creatorId === "" || environment.creatorId !== principal.subject)) {
      return notFound(id);
    }
    return {
      organizationId: org,
      subject: principal.subject,
      admin,
      environmentId: id,
      filters: undefined,
    };
  }
  let filters: Map<number, TypeFilter> | undefined;
  if (request.filters.length > 0) {
    const building = new Map<
      number,
      { any: boolean; resourceIds?: Set<string>; creatorIds?: Set<string>; both: CompiledFilter[] }
    >();
    for (const f of request.filters) {
      let b = building.get(f.resourceType);
      if (b === undefined) {
        b = { any: false, both: [] };
        building.set(f.resourceType, b);
      }
      if (f.resourceIds.length === 0 && f.creatorIds.length === 0) {
        b.any = true;
      } else if (f.creatorIds.length === 0) {
        b.resourceIds = addAll(b.resourceIds, f.resourceIds);
      } else if (f.resourceIds.length === 0) {
        b.creatorIds = addAll(b.creatorIds, f.creatorIds);
      } else {
        b.both.push({ resourceIds: new Set(f.resourceIds), creatorIds: new Set(f.creatorIds) });
      }
    }
    filters = new Map();
    for (const [type, b] of building) {
      filters.set(type, {
        any: b.any,
        resourceIds: b.resourceIds,
        creatorIds: b.creatorIds,
        both: b.both,
      });
    }
  }
  return {
    organizationId: org,
    subject: principal.subject,
    admin,
    environmentId: undefined,
    filters,
  };
}

/** Adds `ids` to `set` (made when absent) and returns it. */
function addAll(set: Set<string> | undefined, ids: readonly string[]): Set<string> {
  const out = set ?? new Set<string>();
  for (const id of ids) out.add(id);
  return out;
}

/** True when the event belongs to the given environment's scope. */
export function inEnvironment(event: ResourceEvent, environmentId: string): boolean {
  if (event.resourceType === ResourceType.ENVIRONMENT) return event.resourceId === environmentId;
  return isEnvironmentOwned(event.resourceType) && event.environmentId === environmentId;
}

function filterPasses(f: CompiledFilter, event: ResourceEvent, creatorId: string): boolean {
  if (f.resourceIds !== undefined && !f.resourceIds.has(event.resourceId)) return false;
  // DELETE events skip the creator test; otherwise an unknown creator fails it (fail closed).
  if (f.creatorIds !== undefined && event.operation !== Operation.DELETE) {
    if (creatorId === "" || !f.creatorIds.has(creatorId)) return false;
  }
  return true;
}

/**
 * The whole decision for one stream and one event. `creatorId` is the event's creator as the
 * server knows it ("" when unknown). Filters only narrow what visibility allows.
 */
export function matches(plan: WatchPlan, event: ResourceEvent, creatorId: string): boolean {
  if (event.organizationId !== plan.organizationId) return false;
  if (plan.environmentId !== undefined) return inEnvironment(event, plan.environmentId);
  const visibility = visibilityOf(event.resourceType);
  if (visibility === "environment") return false;
  if (!plan.admin) {
    if (visibility === "admins") return false;
    if (visibility === "creator" && (creatorId === "" || creatorId !== plan.subject)) return false;
  }
  if (plan.filters === undefined) return true;
  const f = plan.filters.get(event.resourceType);
  if (f === undefined) return false;
  if (f.any) return true;
  if (f.resourceIds?.has(event.resourceId)) return true;
  // Entries with creators only: DELETE events skip the creator test, so they pass them all.
  if (
    f.creatorIds !== undefined &&
    (event.operation === Operation.DELETE || (creatorId !== "" && f.creatorIds.has(creatorId)))
  ) {
    return true;
  }
  for (const entry of f.both) if (filterPasses(entry, event, creatorId)) return true;
  return false;
}

/** True when delivering this event ends the stream normally: its environment was deleted. */
export function endsStream(plan: WatchPlan, event: ResourceEvent): boolean {
  return (
    plan.environmentId !== undefined &&
    event.resourceType === ResourceType.ENVIRONMENT &&
    event.operation === Operation.DELETE &&
    event.resourceId === plan.environmentId
  );
}

/**
 * Which publishers may publish this batch: publishers only, and a publisher whose credential
 * names an organization only for that organization.
 */
export function authorizePublish(
  principal: Principal,
  events: readonly ResourceEvent[],
): Violation | undefined {
  if (principal.role !== "publisher") {
    return violation("permission_denied", "only publishers may publish events");
  }
  const org = principal.organization;
  if (org === undefined) return undefined;
  for (let i = 0; i < events.length; i++) {
    if ((events[i] as ResourceEvent).organizationId.toLowerCase() !== org) {
      return violation(
        "permission_denied",
        `events[${i}].organization_id: this publisher may only publish for organization ${org}`,
      );
    }
  }
  return undefined;
}
