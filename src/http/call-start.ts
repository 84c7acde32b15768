import type { IncomingHttpHeaders } from "node:http";
import { ServiceError } from "../errors.js";
import { LongTimer, MAX_TIMER_MS } from "../long-timer.js";
import type { CallAuthentication } from "../rpc/authenticate.js";
import { connectTimeoutMs, grpcTimeoutMs } from "./wire/timeouts.js";

// How every call starts, on every edge: the client's deadline is armed first (so that a slow
// authentication counts against it), then the caller is authenticated. The raw edges (every
// streaming RPC, the binary gRPC Publish) call `startCall`; the Connect runtime behind fastify
// reads the deadline itself and authenticates in its request gate, and gets its deadline
// headers through `clampDeadlineHeaders`.

/** An authenticated caller, as the one authentication step gives it. */
export type Caller = Awaited<ReturnType<CallAuthentication["principal"]>>;

/**
 * A client's deadline, of any length its header allows (Connect-Timeout-Ms: up to 10 digits of
 * ms, 115 days; grpc-timeout: up to 99,999,999 hours), on the monotonic clock: a deadline longer
 * than a timer can hold re-arms the timer until it is due (`LongTimer`), so it never fires
 * early. The timer does not keep the process alive.
 */
export class Deadline {
  private readonly timer: LongTimer;

  constructor(timeoutMs: number, onExpire: () => void) {
    const dueAt = performance.now() + timeoutMs;
    this.timer = new LongTimer(() => dueAt - performance.now(), onExpire);
  }

  clear(): void {
    this.timer.clear();
  }
}

/** What a call's deadline passing is, on every edge (the words connect-es uses). */
export function deadlineExceeded(): ServiceError {
  return new ServiceError("deadline_exceeded", "the operation timed out");
}

export interface CallStartOptions {
  /** The call's deadline header in ms, as its protocol spells it; throws for a malformed one. */
  readonly timeoutMs: (headers: IncomingHttpHeaders) => number | undefined;
  /** Runs once, when the deadline passes, with `deadline_exceeded`. */
  readonly onDeadline: (reason: ServiceError) => void;
  /** How the caller is authenticated; undefined: a public method (health), nobody is. */
  readonly auth: CallAuthentication | undefined;
}

/** A started call: its deadline (to clear when the call ends) and its caller. */
export interface StartedCall {
  readonly deadline: Deadline | undefined;
  /** Rejects with `unauthenticated` when the caller cannot be authenticated. */
  readonly principal: Promise<Caller | undefined>;
}

/**
 * Starts a call on a raw edge: arms the client's deadline, then authenticates the caller.
 * Throws `invalid_argument` (nothing armed) for a malformed deadline header.
 */
export function startCall(headers: IncomingHttpHeaders, options: CallStartOptions): StartedCall {
  const timeoutMs = options.timeoutMs(headers);
  const deadline =
    timeoutMs === undefined
      ? undefined
      : new Deadline(timeoutMs, () => options.onDeadline(deadlineExceeded()));
  let principal: Promise<Caller | undefined>;
  try {
    principal =
      options.auth === undefined
        ? Promise.resolve(undefined)
        : options.auth.principal(headers.authorization);
  } catch (err) {
    principal = Promise.reject(err);
  }
  return { deadline, principal };
}

/**
 * The deadline headers of a call the Connect runtime serves, made safe for it: connect-es arms
 * one timer for a unary call's deadline, and one longer than a timer can hold fires at once
 * (TimeoutOverflowWarning). A deadline beyond MAX_TIMER_MS (about 24.8 days, longer than any
 * unary call) is clamped to it, in a form the header allows. Headers are read as the raw edges
 * read them; malformed ones are left for connect-es to refuse.
 */
export function clampDeadlineHeaders(headers: IncomingHttpHeaders): void {
  const ms = (read: (h: IncomingHttpHeaders) => number | undefined) => {
    try {
      return read(headers) ?? 0;
    } catch {
      return 0;
    }
  };
  if (ms(connectTimeoutMs) > MAX_TIMER_MS) headers["connect-timeout-ms"] = String(MAX_TIMER_MS);
  if (ms(grpcTimeoutMs) > MAX_TIMER_MS) {
    headers["grpc-timeout"] = `${Math.floor(MAX_TIMER_MS / 60_000)}M`;
  }
}
