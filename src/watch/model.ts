/**
 * The domain model of the watch rules. Plain data only: this folder imports nothing with I/O
 * and no generated code, so the numbers below mirror `proto/gitpod/v1/event.proto`
 * (a unit test holds the two together).
 */

/** `gitpod.v1.ResourceOperation` numbers. */
export const Operation = {
  CREATE: 1,
  UPDATE: 2,
  DELETE: 3,
  UPDATE_STATUS: 4,
} as const;

/** The highest defined `gitpod.v1.ResourceOperation` number. */
export const MAX_OPERATION = 4;

/** `gitpod.v1.ResourceType` numbers that the rules name. Every number 1..MAX_RESOURCE_TYPE is defined. */
export const ResourceType = {
  ENVIRONMENT: 1,
  RUNNER: 2,
  PROJECT: 3,
  TASK: 4,
  TASK_EXECUTION: 5,
  SERVICE: 6,
  ORGANIZATION: 7,
  USER: 8,
  ENVIRONMENT_CLASS: 9,
  RUNNER_SCM_INTEGRATION: 10,
  HOST_AUTHENTICATION_TOKEN: 11,
  GROUP: 12,
  PERSONAL_ACCESS_TOKEN: 13,
  USER_PREFERENCE: 14,
  SERVICE_ACCOUNT: 15,
  SECRET: 16,
  AGENT_EXECUTION: 19,
  RUNNER_LLM_INTEGRATION: 20,
  AGENT: 21,
  ENVIRONMENT_SESSION: 22,
  USER_SECRET: 23,
  PROJECT_ENVIRONMENT_CLASS: 26,
  PROMPT: 28,
  WORKFLOW: 33,
  WORKFLOW_EXECUTION: 34,
  WORKFLOW_EXECUTION_ACTION: 35,
  SNAPSHOT: 36,
  PREBUILD: 37,
  ANNOUNCEMENT_BANNER: 45,
  WARM_POOL: 48,
  NOTIFICATION: 49,
  SECURITY_POLICY: 50,
} as const;

/** The highest defined `gitpod.v1.ResourceType` number. */
export const MAX_RESOURCE_TYPE = 50;

export type Role = "admin" | "member" | "publisher" | "auditor";

/** Who is calling, as proven by a credential. */
export interface Principal {
  /** UUID of the user or service. */
  readonly subject: string;
  /** UUID of the organization; absent only for publishers allowed to publish for any organization. */
  readonly organization: string | undefined;
  readonly role: Role;
  /** When the credential stops being valid (ms since the epoch); absent when it never expires. */
  readonly expiresAtMs: number | undefined;
  /** Identifies the credential (not the token itself), so that revoking it can end its streams. */
  readonly credentialId: string;
}

/** One change of one resource, as published by a backend and validated. */
export interface ResourceEvent {
  readonly resourceType: number;
  readonly operation: number;
  readonly resourceId: string;
  readonly organizationId: string;
  /** Owning environment for TASK, TASK_EXECUTION, SERVICE; the environment itself or "" for ENVIRONMENT; "" otherwise. */
  readonly environmentId: string;
  /** "" when the publisher did not say. */
  readonly creatorId: string;
  /** Who made the change ("" or absent: nobody to audit, e.g. a status change a machine reported). */
  readonly actorId?: string;
  /** `gitpod.v1.Principal` number of the actor. */
  readonly actorPrincipal?: number;
  /** What was done (`environment.start`); derived from type and operation when empty. */
  readonly action?: string;
  /** When it happened, ms since the epoch; absent: when the server accepted it. */
  readonly occurredAtMs?: number;
}

/** `gitpod.v1.Principal` numbers: 0 (unspecified) .. MAX_PRINCIPAL are defined. */
export const MAX_PRINCIPAL = 6;

/** `gitpod.v1.AuditLogEntryKind` numbers this server records. */
export const AuditLogEntryKind = { RESOURCE_CHANGE: 3 } as const;

export interface ResourceTypeFilter {
  readonly resourceType: number;
  readonly resourceIds: readonly string[];
  readonly creatorIds: readonly string[];
}

export type WatchScope =
  | { readonly kind: "organization" }
  | { readonly kind: "environment"; readonly environmentId: string };

/** What a watcher asks for, before validation. */
export interface WatchRequest {
  readonly scope: WatchScope;
  readonly filters: readonly ResourceTypeFilter[];
}

/** What the server knows of an environment: enough to authorize environment scope. */
export interface EnvironmentRecord {
  readonly organizationId: string;
  /** "" when unknown. */
  readonly creatorId: string;
}
