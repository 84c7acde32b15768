import * as http2 from "node:http2";
import { fromJsonString } from "@bufbuild/protobuf";
import { codeToHttpStatus, errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import type { Logger } from "pino";
import type { Authenticator } from "../auth/authenticator.js";
import { ServiceError, toConnectError } from "../errors.js";
import { WatchEventsRequestSchema } from "../gen/gitpod/v1/event_pb.js";
import { fromWatchRequest, toJsonLine } from "../rpc/convert.js";
import type { ErrorFunnel } from "../rpc/error-funnel.js";
import type { WatchSessions, WatchStream } from "../rpc/watch-sessions.js";
import { type Req, type Res, writer } from "./types.js";

function mediaType(value: string | undefined): string {
  return (value ?? "").split(";", 1)[0]?.trim().toLowerCase() ?? "";
}

/**
 * True when a WatchEvents request asks for the JSONL form of the official SDKs:
 * `Content-Type: application/jsonl` or `application/json`, and/or `Accept: application/jsonl`.
 * (Connect, gRPC and gRPC-Web requests carry their own content types and never match.)
 */
export function wantsJsonl(req: Req): boolean {
  const ct = mediaType(req.headers["content-type"]);
  if (ct === "application/jsonl" || ct === "application/json") return true;
  if (ct !== "") return false;
  const accept = req.headers.accept ?? "";
  return accept.toLowerCase().includes("application/jsonl");
}

export interface JsonlDeps {
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
  return Buffer.concat(chunks, length);
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

function parseRequest(body: Buffer) {
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    throw new ServiceError("invalid_argument", "request body is not valid UTF-8");
  }
  if (text.trim() === "") return fromWatchRequest(fromJsonString(WatchEventsRequestSchema, "{}"));
  try {
    return fromWatchRequest(
      fromJsonString(WatchEventsRequestSchema, text, { ignoreUnknownFields: true }),
    );
  } catch (err) {
    throw new ServiceError(
      "invalid_argument",
      `request body is not a valid WatchEventsRequest in JSON: ${(err as Error).message}`,
    );
  }
}

function sendError(res: Res, err: unknown): void {
  const ce = toConnectError(err);
  const body = errorToJsonBytes(ce, {});
  const w = writer(res);
  w.writeHead(codeToHttpStatus(ce.code), {
    "content-type": "application/json",
    "content-length": String(body.length),
  });
  w.end(body);
}

/**
 * Ends a started stream so that it cannot be mistaken for a clean end: HTTP/1.1 closes the
 * connection without the last chunk, HTTP/2 resets the stream.
 */
function abortStream(res: Res): void {
  if ("stream" in res) {
    res.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
  } else {
    res.destroy();
  }
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
 * WatchEvents in JSONL: `200`, `Content-Type: application/jsonl`, headers at once, then one
 * proto3 JSON WatchEventsResponse per line. Errors before the stream starts are an HTTP status
 * with a Connect error body; an error after it started aborts it.
 */
export async function handleJsonlWatch(req: Req, res: Res, deps: JsonlDeps): Promise<void> {
  const gone = new AbortController();
  const onClose = () => gone.abort(new ServiceError("canceled", "client went away"));
  res.once("close", onClose);
  let started = false;
  let stream: WatchStream | undefined;
  let error: unknown;
  try {
    if (req.method !== "POST") {
      throw new ServiceError("invalid_argument", "WatchEvents accepts POST only");
    }
    const principal = await deps.authenticator.authenticate(req.headers.authorization);
    const request = parseRequest(await readBody(req, deps.requestMaxBytes));
    stream = await deps.sessions.open(principal, request, gone.signal, "jsonl");
    const w = writer(res);
    w.writeHead(200, { "content-type": "application/jsonl", "cache-control": "no-store" });
    // Headers go out now, before any event: clients see the stream open at once.
    if ("flushHeaders" in res) res.flushHeaders();
    started = true;
    for await (const published of stream.events) {
      const more = w.write(toJsonLine(published));
      stream.wrote(published);
      if (!more) await waitDrain(res, gone.signal);
    }
    w.end();
  } catch (err) {
    error = err;
    if (gone.signal.aborted) return; // the client left; nothing to tell it
    const ce = deps.funnel(err, "WatchEvents");
    if (started) abortStream(res);
    else sendError(res, ce);
  } finally {
    res.off("close", onClose);
    stream?.end(error ?? (gone.signal.aborted ? gone.signal.reason : undefined));
  }
}
