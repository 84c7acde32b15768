import { MAX_RESOURCE_TYPE, ResourceType as T } from "./model.js";

/**
 * Who may see events of a resource type in organization scope (CONTRACT §6):
 * - `members`: every member of the organization;
 * - `creator`: the resource's creator and admins;
 * - `admins`: admins only (every type not listed, and any number not in the enum);
 * - `environment`: never in organization scope; only through environment scope.
 */
export type Visibility = "members" | "creator" | "admins" | "environment";

const MEMBERS = [
  T.RUNNER,
  T.PROJECT,
  T.ORGANIZATION,
  T.ENVIRONMENT_CLASS,
  T.RUNNER_SCM_INTEGRATION,
  T.GROUP,
  T.RUNNER_LLM_INTEGRATION,
  T.AGENT,
  T.PROJECT_ENVIRONMENT_CLASS,
  T.PROMPT,
  T.WORKFLOW,
  T.WORKFLOW_EXECUTION,
  T.WORKFLOW_EXECUTION_ACTION,
  T.SNAPSHOT,
  T.PREBUILD,
  T.ANNOUNCEMENT_BANNER,
  T.WARM_POOL,
];
const CREATOR = [
  T.ENVIRONMENT,
  T.ENVIRONMENT_SESSION,
  T.AGENT_EXECUTION,
  T.PERSONAL_ACCESS_TOKEN,
  T.USER_PREFERENCE,
  T.USER_SECRET,
  T.HOST_AUTHENTICATION_TOKEN,
  T.NOTIFICATION,
];
const ENVIRONMENT = [T.TASK, T.TASK_EXECUTION, T.SERVICE];

// Indexed by type number; anything not set (or out of range) is admins-only.
const table: Visibility[] = new Array<Visibility>(MAX_RESOURCE_TYPE + 1).fill("admins");
for (const t of MEMBERS) table[t] = "members";
for (const t of CREATOR) table[t] = "creator";
for (const t of ENVIRONMENT) table[t] = "environment";

export function visibilityOf(resourceType: number): Visibility {
  return table[resourceType] ?? "admins";
}

/**
 * Types whose events belong to an environment and carry its id: the `environment` row of the
 * table above, the one list that validation, dispatch and matching all read.
 */
export function isEnvironmentOwned(resourceType: number): boolean {
  return table[resourceType] === "environment";
}
