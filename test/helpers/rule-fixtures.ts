import type {
  EnvironmentRecord,
  Principal,
  ResourceTypeFilter,
  Role,
  WatchRequest,
} from "../../src/watch/model.js";
import { planWatch, type WatchPlan } from "../../src/watch/plan.js";
import { isViolation, type Violation } from "../../src/watch/violation.js";

// What the unit tests of the rules (src/watch/) and of the bus over them share. As pure as the
// rules: it imports from src/watch only, nothing with I/O (src/watch/purity.test.ts checks).

export const ORG = "0a0a0a0a-0000-4000-8000-000000000001";
export const OTHER_ORG = "0b0b0b0b-0000-4000-8000-000000000002";
export const ADMIN = "0c0c0c0c-0000-4000-8000-0000000000a1";
export const MEMBER = "0c0c0c0c-0000-4000-8000-0000000000a2";
export const OTHER_MEMBER = "0c0c0c0c-0000-4000-8000-0000000000a3";

/** A valid UUID in upper case: accepted, and kept in lower case. */
export const UPPER = "ABCDEF01-ABCD-4ABC-8ABC-ABCDEF012345";

/** Strings that are not UUIDs, each with what is wrong with it. */
export const NOT_UUIDS = [
  ["empty", ""],
  ["plain text", "not-a-uuid"],
  ["no dashes", "abcdef01abcd4abc8abcabcdef012345"],
  ["braces", "{abcdef01-abcd-4abc-8abc-abcdef012345}"],
  ["urn prefix", "urn:uuid:abcdef01-abcd-4abc-8abc-abcdef012345"],
  ["one digit short", "abcdef01-abcd-4abc-8abc-abcdef01234"],
  ["trailing newline", "abcdef01-abcd-4abc-8abc-abcdef012345\n"],
  ["non-hex digit", "abcdef01-abcd-4abc-8abc-abcdef01234g"],
] as const;

/** A distinct, valid, lower-case UUID per number. */
export function uuid(n: number): string {
  return `00000000-0000-4000-8000-${n.toString(16).padStart(12, "0")}`;
}

/** `count` distinct UUIDs: uuid(from), uuid(from + 1), … */
export function ids(count: number, from = 1): string[] {
  return Array.from({ length: count }, (_, i) => uuid(from + i));
}

/** A principal as the authenticator makes one; `organization` undefined: a global one. */
export function principal(
  role: Role,
  subject: string,
  organization: string | undefined,
): Principal {
  return { subject, organization, role, expiresAtMs: undefined, credentialId: subject };
}

/** The rule's refusal; throws when the rule accepted. */
export function refusal(result: unknown): Violation {
  if (!isViolation(result)) throw new Error(`expected a violation, got ${JSON.stringify(result)}`);
  return result;
}

/** What the rule accepted; throws when it refused. */
export function accepted<T>(result: T | Violation): T {
  if (isViolation(result)) throw new Error(`expected acceptance, got ${result.message}`);
  return result;
}

/** The plan of a request the rules accept; throws when they refuse it. */
export function plan(p: Principal, request: WatchRequest, env?: EnvironmentRecord): WatchPlan {
  return accepted(planWatch(p, request, env));
}

/** The plan of an organization-scope request with `filters`. */
export function orgPlan(p: Principal, filters: ResourceTypeFilter[] = []): WatchPlan {
  return plan(p, { scope: { kind: "organization" }, filters });
}

/** A filter on one resource type; no ids, no creators unless given. */
export function filter(
  resourceType: number,
  more: Partial<ResourceTypeFilter> = {},
): ResourceTypeFilter {
  return { resourceType, resourceIds: [], creatorIds: [], ...more };
}
