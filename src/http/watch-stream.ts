import * as http2 from "node:http2";
import type { Writable } from "node:stream";
import type { Logger } from "pino";
import type { Authenticator } from "../auth/authenticator.js";
import { ServiceError } from "../errors.js";
import { fromWatchRequest } from "../rpc/convert.js";
import type { ErrorFunnel } from "../rpc/error-funnel.js";
import type { WatchSessions, WatchStream } from "../rpc/watch-sessions.js";
import { type Req, type Res, writer } from "./types.js";
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

/** Reads the whole body, refusing more than `maxBytes`. */
async function readBody(req: Req, maxBytes: number): Promise<Buffer> {
  const declared = Number(req.headers["content-length"]);
  if (declared > maxBytes) {
    throw new ServiceError("invalid_argument", `request body larger than ${maxBytes} bytes`);
  }
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    length += chunk.length;
    if (length > maxBytes) {
      throw new ServiceError("invalid_argument", `request body larger than ${maxBytes} bytes`);
    }
    chunks.push(chunk);
  }
  return chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, length);
}

/**
 * Cuts a started stream so that it cannot be mistaken for a clean end: HTTP/1.1 closes the
 * connection without the last chunk, HTTP/2 resets the stream.
 */
function abortStream(res: Res): void {
  if ("stream" in res) res.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
  else res.destroy();
}

function finish(res: Res, end: { body?: Buffer; trailers?: Record<string, string> }): void {
  if (end.trailers !== undefined) res.addTrailers(end.trailers);
  writer(res).end(end.body);
}

/**
 * Writes a stream's events as they come, in push mode: when events arrive the stream is flushed
 * once per turn of the microtask queue (after the publish that brought them), everything pending
 * (up to MAX_BATCH) in one write, with no promise per event. When the socket is full it waits
 * for `drain`, so a slow client leaves its events in the (bounded, coalescing) backlog rather
 * than in memory here. Resolves when the subscription ends; rejects with its error.
 */
function pump(
  stream: WatchStream,
  protocol: WatchProtocol,
  res: Res,
  signal: AbortSignal,
): Promise<void> {
  // On HTTP/2 the events go straight to the Http2Stream: the compatibility response adds a
  // layer of checks to every write (its head was written through it, its end goes through it).
  const sink: Writable = "stream" in res ? res.stream : res;
  const events = stream.events;
  const frames: Buffer[] = [];
  return new Promise((resolve, reject) => {
    let scheduled = false;
    let blocked = false;
    const schedule = () => {
      if (scheduled) return;
      scheduled = true;
      queueMicrotask(flush);
    };
    const onDrain = () => {
      blocked = false;
      schedule();
    };
    const flush = () => {
      scheduled = false;
      // A full socket waits for drain, unless the stream is being torn down.
      if (blocked && !signal.aborted) return;
      for (let event = events.poll(); event !== undefined; event = events.poll()) {
        frames.push(protocol.frame(event));
        stream.wrote(event);
        if (frames.length === MAX_BATCH) break;
      }
      if (frames.length > 0) {
        const batch = frames.length === 1 ? (frames[0] as Buffer) : Buffer.concat(frames);
        const more = frames.length === MAX_BATCH;
        frames.length = 0;
        if (!sink.write(batch)) {
          blocked = true;
          sink.once("drain", onDrain);
        } else if (more || events.isClosed) {
          // More pending, or the end to report once the rest is written.
          schedule();
        }
        return;
      }
      // Nothing pending: if the subscription is over, next() says how.
      if (events.isClosed) {
        sink.off("drain", onDrain);
        events.next().then(() => resolve(), reject);
      }
    };
    events.onReadable(schedule);
    signal.addEventListener("abort", schedule, { once: true });
    schedule();
  });
}

function isClientGone(reason: unknown): boolean {
  return reason instanceof ServiceError && reason.kind === "canceled";
}

/**
 * WatchEvents on the streaming edge, for every protocol in watch-protocols.ts: authenticates,
 * reads and validates the request, applies the client's deadline, opens the session, writes the
 * head at once (before any event), then the events, then the protocol's end; errors before the
 * head are the protocol's refusal, errors after it its failure (or an abort, for JSONL).
 */
export async function handleWatch(
  req: Req,
  res: Res,
  protocol: WatchProtocol,
  deps: WatchStreamDeps,
): Promise<void> {
  const call = new AbortController();
  const onClose = () => call.abort(new ServiceError("canceled", "client went away"));
  res.once("close", onClose);
  let deadline: NodeJS.Timeout | undefined;
  let started = false;
  let stream: WatchStream | undefined;
  let error: unknown;
  try {
    if (req.method !== "POST") {
      throw new ServiceError("invalid_argument", "WatchEvents accepts POST only");
    }
    const timeoutMs = timeoutMsOf(req);
    if (timeoutMs !== undefined) {
      deadline = setTimeout(
        () => call.abort(new ServiceError("deadline_exceeded", "the operation timed out")),
        timeoutMs,
      );
    }
    const principal = await deps.authenticator.authenticate(req.headers.authorization);
    const request = protocol.parse(await readBody(req, deps.requestMaxBytes));
    stream = await deps.sessions.open(
      principal,
      fromWatchRequest(request),
      call.signal,
      protocol.name,
    );
    writer(res).writeHead(protocol.head.status, protocol.head.headers);
    // Headers go out now, before any event: clients see the stream open at once.
    if ("flushHeaders" in res) res.flushHeaders();
    started = true;
    await pump(stream, protocol, res, call.signal);
    finish(res, protocol.end());
  } catch (err) {
    error = err;
    if (isClientGone(call.signal.reason) || res.destroyed) return; // nobody to tell
    const ce = deps.funnel(err, "WatchEvents");
    if (!started) {
      const refusal = protocol.refuse(ce);
      writer(res).writeHead(refusal.status, refusal.headers);
      writer(res).end(refusal.body);
      return;
    }
    const failure = protocol.fail(ce);
    if (failure === "abort") abortStream(res);
    else finish(res, failure);
  } finally {
    if (deadline !== undefined) clearTimeout(deadline);
    res.off("close", onClose);
    stream?.end(error ?? (call.signal.aborted ? call.signal.reason : undefined));
  }
}
