import { Code, ConnectError } from "@connectrpc/connect";

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

function codeOf(kind: ErrorKind): Code {
  switch (kind) {
    case "invalid_argument":
      return Code.InvalidArgument;
    case "unauthenticated":
      return Code.Unauthenticated;
    case "permission_denied":
      return Code.PermissionDenied;
    case "not_found":
      return Code.NotFound;
    case "already_exists":
      return Code.AlreadyExists;
    case "resource_exhausted":
      return Code.ResourceExhausted;
    case "out_of_range":
      return Code.OutOfRange;
    case "unavailable":
      return Code.Unavailable;
    case "deadline_exceeded":
      return Code.DeadlineExceeded;
    case "canceled":
      return Code.Canceled;
    case "internal":
      return Code.Internal;
    default: {
      const never: never = kind;
      return never;
    }
  }
}

/**
 * The single mapping from anything thrown to what the caller sees. ConnectErrors (raised by the
 * Connect runtime, for deadlines and shutdown for instance) pass through; unknown errors become
 * `internal` with a generic message and the original kept as `cause` for the log.
 */
export function toConnectError(err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  if (err instanceof ServiceError) return new ConnectError(err.message, codeOf(err.kind));
  return new ConnectError("internal error", Code.Internal, undefined, undefined, err);
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
