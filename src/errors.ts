import { Code, ConnectError } from "@connectrpc/connect";
import { isViolation, type Violation } from "./watch/violation.js";

/** The kinds of failure the domain knows; each maps to exactly one Connect code. */
export type ErrorKind =
  | "invalid_argument"
  | "unauthenticated"
  | "permission_denied"
  | "not_found"
  | "already_exists"
  | "resource_exhausted"
  | "out_of_range"
  | "unavailable"
  | "deadline_exceeded"
  | "canceled"
  | "internal";

/**
 * The one error type that domain code throws. Its message is safe to show to the caller;
 * anything else thrown is an internal error whose message is not shown.
 */
export class ServiceError extends Error {
  override readonly name = "ServiceError";
  constructor(
    readonly kind: ErrorKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * What every call hears when it arrives, or is still open, while the server drains: one message
 * for every path (watch, feed, publish, the shutdown reason of open streams).
 */
export function shuttingDown(): ServiceError {
  return new ServiceError("unavailable", "the server is shutting down");
}

/** Each kind's Connect code: a Record, so that a kind without a code does not compile. */
const CODE_OF: Readonly<Record<ErrorKind, Code>> = {
  invalid_argument: Code.InvalidArgument,
  unauthenticated: Code.Unauthenticated,
  permission_denied: Code.PermissionDenied,
  not_found: Code.NotFound,
  already_exists: Code.AlreadyExists,
  resource_exhausted: Code.ResourceExhausted,
  out_of_range: Code.OutOfRange,
  unavailable: Code.Unavailable,
  deadline_exceeded: Code.DeadlineExceeded,
  canceled: Code.Canceled,
  internal: Code.Internal,
};

/** A refusal of the rules (`src/watch/`) as the one error type, with its kind and message. */
export function refused(violation: Violation): ServiceError {
  return new ServiceError(violation.kind, violation.message);
}

/** What the rules accepted; their refusal is thrown (see `refused`). */
export function accepted<T>(verdict: T | Violation): T {
  if (isViolation(verdict)) throw refused(verdict);
  return verdict;
}

/**
 * The single mapping from anything thrown to what the caller sees. ConnectErrors (raised by the
 * Connect runtime, for deadlines and shutdown for instance) pass through; unknown errors become
 * `internal` with a generic message and the original kept as `cause` for the log.
 */
export function toConnectError(err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  if (err instanceof ServiceError) return new ConnectError(err.message, CODE_OF[err.kind]);
  return new ConnectError("internal error", Code.Internal, undefined, undefined, err);
}

/**
 * The code `toConnectError(err)` has, without building the ConnectError (with its stack): for
 * the end of every stream, where thousands may end at once (clients gone).
 */
export function codeOf(err: unknown): Code {
  if (err instanceof ConnectError) return err.code;
  if (err instanceof ServiceError) return CODE_OF[err.kind];
  return Code.Internal;
}

/** True when the error is ours to explain, i.e. not a bug worth logging with a stack. */
export function isExpected(err: unknown): boolean {
  return err instanceof ServiceError || (err instanceof ConnectError && err.code !== Code.Internal);
}

/**
 * A code's name as the Connect protocol spells it (`invalid_argument`, `ok` for none): for logs
 * and metric labels, so that a session need not reach into connect-es' protocol modules (whose
 * `codeToString` does the same; a test holds the two together).
 */
export function codeName(code: Code | undefined): string {
  if (code === undefined) return "ok";
  const name = Code[code];
  if (name === undefined) return String(code);
  return name[0]?.toLowerCase() + name.slice(1).replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}
