import { ServiceError } from "../errors.js";

/** SQLSTATEs and Node error codes that mean "the database cannot be reached", not "the call is wrong". */
// Admin/crash shutdown, cannot connect now, too many connections, I/O error, statement timeout
// or cancel (the database is too busy to answer in time), lock timeout.
const UNAVAILABLE_SQLSTATES = new Set([
  "57P01",
  "57P02",
  "57P03",
  "53300",
  "58030",
  "57014",
  "55P03",
]);
const UNAVAILABLE_NODE_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
]);
/** pg and pg-pool report these as plain Errors without a code. */
const UNAVAILABLE_MESSAGES = [
  "timeout exceeded when trying to connect",
  "Connection terminated",
  "connection timeout",
  "Query read timeout",
  "Client has encountered a connection error",
  "Cannot use a pool after calling end",
];

/** True when `err` says the database is unreachable (down, restarting, network, pool exhausted). */
export function isUnavailable(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") {
      if (code.startsWith("08") && code.length === 5) return true;
      if (UNAVAILABLE_SQLSTATES.has(code) || UNAVAILABLE_NODE_CODES.has(code)) return true;
    }
    if (e instanceof AggregateError && e.errors.some(isUnavailable)) return true;
    if (UNAVAILABLE_MESSAGES.some((m) => e.message.includes(m))) return true;
  }
  return false;
}

/**
 * What the store throws for `err`, a failure of pg or of the store itself: ServiceError
 * `unavailable` (with `err` as its cause) when the database cannot be reached; `err` itself
 * otherwise (a ServiceError stays as it is).
 */
export function mapError(err: unknown): unknown {
  if (err instanceof ServiceError) return err;
  if (isUnavailable(err))
    return new ServiceError("unavailable", "database unavailable", { cause: err });
  return err;
}
