/** The refusals the rules can decide; the edge maps each to one Connect code. */
export type ViolationKind = "invalid_argument" | "permission_denied" | "not_found";

/** Why a request was refused, with a message that names the offending field. */
export interface Violation {
  readonly kind: ViolationKind;
  readonly message: string;
}

export function violation(kind: ViolationKind, message: string): Violation {
  return { kind, message };
}

export function isViolation(value: unknown): value is Violation {
  return typeof value === "object" && value !== null && "kind" in value && "message" in value;
}
