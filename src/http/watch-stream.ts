import * as http2 from "node:http2";
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

function waitDrain(res: Res, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done);
      signal.removeEventListener("abort", done);
      resolve();
    };
    res.on("drain", done);
    signal.addEventListener("abort", done, { once: true });
  });
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
 * Writes a stream's events as they come: one await per wake-up, then everything already
 * pending (up to MAX_BATCH) in one write; waits for `drain` when the socket is full, so a slow
 * client leaves its events in the (bounded, coalescing) backlog rather than in memory here.
 */
async function pump(stream: WatchStream, protocol: WatchProtocol, res: Res, signal: AbortSignal) {
  const w = writer(res);
  const events = stream.events;
  const frames: Buffer[] = [];
  for (;;) {
    const r = await events.next();
    if (r.done) return;
    let event = r.value;
    let more = events.poll();
    let ok: boolean;
    if (more === undefined) {
      ok = w.write(protocol.frame(event));
      stream.wrote(event);
    } else {
      for (;;) {
        frames.push(protocol.frame(event));
        stream.wrote(event);
        if (more === undefined || frames.length === MAX_BATCH) break;
        event = more;
        more = frames.length + 1 < MAX_BATCH ? events.poll() : undefined;
      }
      ok = w.write(Buffer.concat(frames));
      frames.length = 0;
    }
    if (!ok) await waitDrain(res, signal);
  }
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
