import type { IncomingHttpHeaders } from "node:http";
import type { Readable, Writable } from "node:stream";
import type { Logger } from "pino";
import type { Authenticator } from "../auth/authenticator.js";
import { ServiceError } from "../errors.js";
import { fromWatchRequest } from "../rpc/convert.js";
import type { ErrorFunnel } from "../rpc/error-funnel.js";
import type { WatchSessions, WatchStream } from "../rpc/watch-sessions.js";
import { readBody } from "./body.js";
import type { Exchange } from "./exchange.js";
import { timeoutMsOf, type WatchProtocol } from "./watch-protocols.js";

// Events written with one write call when a stream has several pending (one syscall, one frame).
const MAX_BATCH = 256;

export interface WatchStreamDeps {
  readonly authenticator: Authenticator;
  readonly sessions: WatchSessions;
  readonly funnel: ErrorFunnel;
  readonly logger: Logger;
  readonly requestMaxBytes: number;
}

/** What the edge reads of a request: its method and headers (the body comes separately). */
export interface RequestHead {
  readonly method?: string | undefined;
  readonly headers: IncomingHttpHeaders;
}

// ---- flushing --------------------------------------------------------------------------------
//
// Calls with events to write wait in `ready` and are flushed together once per turn of the
// event loop (setImmediate: after the turn's I/O callbacks). Every publish handled in that turn
// has been dispatched by then, so a stream gets all of them in one write: when the server is
// busy, turns are long and carry several publishes, and writes get fewer and larger just when
// that helps; when it is idle, a turn holds one publish and nothing waits. (Flushing after
// each publish instead, in a microtask, cost 10-25% more CPU per delivery in the benchmarks.)

let ready: WatchCall[] = [];
let spare: WatchCall[] = [];
let flushQueued = false;
// Reused by every flush (flushes never nest): the frames of one batch.
const frames: Buffer[] = [];

function flushReady(): void {
  const calls = ready;
  ready = spare;
  flushQueued = false;
  for (let i = 0; i < calls.length; i++) {
    const call = calls[i] as WatchCall;
    try {
      call.flush();
    } catch (err) {
      // A bug, not the client: end this stream with it (logged once), keep flushing the others.
      call.fail(err);
    }
  }
  calls.length = 0;
  spare = calls;
}

function isClientGone(reason: unknown): boolean {
  return reason instanceof ServiceError && reason.kind === "canceled";
}

/**
 * One WatchEvents call on the streaming edge, for every protocol in watch-protocols.ts:
 * authenticates, reads and validates the request, applies the client's deadline, opens the
 * session, writes the head at once (before any event), then the events, then the protocol's
 * end; errors before the head are the protocol's refusal, errors after it its failure (or an
 * abort, for JSONL).
 *
 * Events are written in push mode: when events arrive the call is flushed once in that turn of
 * the event loop, everything pending (up to MAX_BATCH) in one write, with no
 * promise per event. When the socket is full it waits for `drain`, so a slow client leaves its
 * events in the (bounded, coalescing) backlog rather than in memory here. Thousands of calls
 * stay open for hours, so an open call is this one object, its subscription, and two functions:
 * `wake`, which the subscription and the transport call back, and `onClose`.
 */
class WatchCall {
  private stream: WatchStream | undefined;
  /** Why the call is being ended early (client gone, deadline), once it is. */
  private cancelled: unknown;
  private deadline: NodeJS.Timeout | undefined;
  private sink: Writable | undefined;
  /** Waiting in `ready`. */
  private scheduled = false;
  /** The last write filled the socket's buffer: wait for `drain`. */
  private blocked = false;
  /** The subscription is over and its end is being written. */
  private ending = false;
  private readonly wake = () => this.schedule();
  private readonly onClose = () => this.cancel(new ServiceError("canceled", "client went away"));

  constructor(
    private readonly exchange: Exchange,
    private readonly protocol: WatchProtocol,
    private readonly deps: WatchStreamDeps,
  ) {
    exchange.onClose(this.onClose);
  }

  /** Everything up to the first event; then the call runs on callbacks. */
  async start(head: RequestHead, body: Readable): Promise<void> {
    const { exchange, protocol, deps } = this;
    try {
      if (head.method !== "POST") {
        throw new ServiceError("invalid_argument", "WatchEvents accepts POST only");
      }
      const timeoutMs = timeoutMsOf(head.headers);
      if (timeoutMs !== undefined) {
        this.deadline = setTimeout(
          () => this.cancel(new ServiceError("deadline_exceeded", "the operation timed out")),
          timeoutMs,
        );
      }
      const principal = await deps.authenticator.authenticate(head.headers.authorization);
      if (Number(head.headers["content-length"]) > deps.requestMaxBytes) {
        throw new ServiceError(
          "invalid_argument",
          `request body larger than ${deps.requestMaxBytes} bytes`,
        );
      }
      const request = protocol.parse(await readBody(body, deps.requestMaxBytes));
      const stream = await deps.sessions.open(
        principal,
        fromWatchRequest(request),
        undefined,
        protocol.name,
      );
      this.stream = stream;
      // Cancelled meanwhile: the subscription ends at once, with that reason.
      if (this.cancelled !== undefined) stream.events.cancel(this.cancelled);
      exchange.start(protocol.head.status, protocol.head.headers, protocol.trailers);
      this.sink = exchange.sink;
      stream.events.onReadable(this.wake);
      this.schedule();
    } catch (err) {
      this.stop();
      // The session may be open already (the head could not be written: the client reset the
      // stream meanwhile); it ends here, with what ended the call.
      this.stream?.end(this.cancelled ?? err);
      if (isClientGone(this.cancelled) || exchange.gone) return; // nobody to tell
      const refusal = protocol.refuse(deps.funnel(err, "WatchEvents"));
      exchange.respond(refusal.status, refusal.headers, refusal.body);
    }
  }

  /** Ends the call with an error of the server's own (its flush threw). */
  fail(err: unknown): void {
    this.scheduled = false;
    this.cancel(err);
  }

  /** Ends the call early: the subscription fails with `reason`, which ends the stream. */
  private cancel(reason: unknown): void {
    if (this.cancelled !== undefined) return;
    this.cancelled = reason;
    this.stream?.events.cancel(reason);
    // A full socket waits for drain, unless the call is being torn down.
    if (this.sink !== undefined) this.schedule();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    ready.push(this);
    if (!flushQueued) {
      flushQueued = true;
      setImmediate(flushReady);
    }
  }

  /** Writes what is pending in one write, or the end once the subscription is over. */
  flush(): void {
    this.scheduled = false;
    if (this.ending) return;
    const sink = this.sink as Writable;
    // A full socket waits for drain, unless the call is being torn down.
    if (this.blocked) {
      if (sink.writableNeedDrain && this.cancelled === undefined) return;
      this.blocked = false;
    }
    const stream = this.stream as WatchStream;
    const events = stream.events;
    const first = events.poll();
    if (first === undefined) {
      // Nothing pending: if the subscription is over, next() says how.
      if (events.isClosed) {
        this.ending = true;
        sink.off("drain", this.wake);
        events.next().then(
          () => this.end(undefined),
          (err: unknown) => this.end(err),
        );
      }
      return;
    }
    const protocol = this.protocol;
    let batch = protocol.frame(first);
    let last = first;
    let count = 1;
    // Usually one event is pending; several go out concatenated, in one write.
    for (let event = events.poll(); event !== undefined; event = events.poll()) {
      if (count === 1) frames.push(batch);
      frames.push(protocol.frame(event));
      last = event;
      if (++count === MAX_BATCH) break;
    }
    if (count > 1) {
      batch = Buffer.concat(frames);
      frames.length = 0;
    }
    stream.wrote(last, count);
    if (!sink.write(batch)) {
      this.blocked = true;
      sink.once("drain", this.wake);
    } else if (count === MAX_BATCH || events.isClosed) {
      // More pending, or the end to report once the rest is written.
      this.schedule();
    }
  }

  /** The subscription is over (error: how it failed): writes the protocol's end. */
  private end(error: unknown): void {
    const { exchange, protocol } = this;
    this.stop();
    try {
      if (isClientGone(this.cancelled) || exchange.gone) {
        // nobody to tell
      } else if (error === undefined) exchange.finish(protocol.end());
      else {
        const failure = protocol.fail(this.deps.funnel(error, "WatchEvents"));
        if (failure === "abort") exchange.abort();
        else exchange.finish(failure);
      }
    } finally {
      this.stream?.end(error ?? this.cancelled);
    }
  }

  private stop(): void {
    clearTimeout(this.deadline);
    this.exchange.offClose(this.onClose);
  }
}

/** Serves WatchEvents on `exchange` (see WatchCall); resolves once the first event can flow. */
export function handleWatch(
  exchange: Exchange,
  head: RequestHead,
  body: Readable,
  protocol: WatchProtocol,
  deps: WatchStreamDeps,
): Promise<void> {
  return new WatchCall(exchange, protocol, deps).start(head, body);
}
