import type { IncomingHttpHeaders } from "node:http";
import { fromBinary, fromJsonString, toBinary, toJsonString } from "@bufbuild/protobuf";
import type { ConnectError } from "@connectrpc/connect";
import {
  codeToHttpStatus,
  codeToString,
  errorToJsonBytes,
} from "@connectrpc/connect/protocol-connect";
import type { PublishedEvent } from "../bus/event-bus.js";
import { ServiceError } from "../errors.js";
import {
  type WatchEventsRequest,
  WatchEventsRequestSchema,
  WatchEventsResponseSchema,
} from "../gen/gitpod/v1/event_pb.js";
import { toWatchResponse } from "../rpc/convert.js";

/**
 * The wire forms of a WatchEvents stream that the streaming edge writes itself: JSONL (the
 * official SDKs), and the Connect, gRPC and gRPC-Web streaming protocols in binary and JSON.
 * Each event is encoded once per form and the bytes shared by every stream that writes it.
 *
 * A protocol says how to read the request, how to start the response, how to frame an event,
 * and how to end: cleanly, or with an error before or after the response started.
 */
export interface WatchProtocol {
  /** For logs and metrics: jsonl, connect, grpc, grpcweb. */
  readonly name: string;
  /** Parses the request body; throws ServiceError invalid_argument. */
  parse(body: Buffer): WatchEventsRequest;
  /** Status and headers of a response that streams. */
  readonly head: { readonly status: number; readonly headers: Record<string, string> };
  /** Whether the end (normal or failed) is carried in HTTP trailers. */
  readonly trailers: boolean;
  /** The bytes of one event on this wire. */
  frame(event: PublishedEvent): Buffer;
  /** How a normal end is written after the head: trailing bytes and HTTP trailers. */
  end(): { body?: Buffer; trailers?: Record<string, string> };
  /** An error before the head was written: the whole response. */
  refuse(err: ConnectError): { status: number; headers: Record<string, string>; body?: Buffer };
  /**
   * An error after the head was written: what to write then, or `abort` when the protocol has
   * no way to say it (JSONL): the stream must then be cut so it cannot look like a clean end.
   */
  fail(err: ConnectError): { body?: Buffer; trailers?: Record<string, string> } | "abort";
}

// ---- encodings, once per event -------------------------------------------------------------

/**
 * An event's bytes in one wire form, made once and shared. A publish's event is written by
 * every stream in turn, so the last event asked for answers almost every lookup; the WeakMap
 * keeps the rest (streams that are behind) until the event is gone.
 */
class FrameCache {
  private readonly frames = new WeakMap<PublishedEvent, Buffer>();
  private lastEvent: PublishedEvent | undefined;
  private lastFrame: Buffer | undefined;

  constructor(private readonly encode: (p: PublishedEvent) => Buffer) {}

  get(p: PublishedEvent): Buffer {
    if (p === this.lastEvent) return this.lastFrame as Buffer;
    let f = this.frames.get(p);
    if (f === undefined) {
      f = this.encode(p);
      this.frames.set(p, f);
    }
    this.lastEvent = p;
    this.lastFrame = f;
    return f;
  }
}

export function envelope(flags: number, payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + payload.length);
  out[0] = flags;
  out.writeUInt32BE(payload.length, 1);
  out.set(payload, 5);
  return out;
}

function jsonText(p: PublishedEvent): string {
  return toJsonString(WatchEventsResponseSchema, toWatchResponse(p));
}

const binaryFrames = new FrameCache((p) =>
  envelope(0, toBinary(WatchEventsResponseSchema, toWatchResponse(p))),
);
const jsonFrames = new FrameCache((p) => envelope(0, Buffer.from(jsonText(p), "utf8")));
const jsonLines = new FrameCache((p) => Buffer.from(`${jsonText(p)}\n`, "utf8"));

const binaryFrame = (p: PublishedEvent): Buffer => binaryFrames.get(p);
const jsonFrame = (p: PublishedEvent): Buffer => jsonFrames.get(p);

/** The event as one JSONL line: proto3 JSON (camelCase keys, enum names), ended by "\n". */
export function jsonLine(p: PublishedEvent): Buffer {
  return jsonLines.get(p);
}

// ---- request bodies ---------------------------------------------------------------------------

const utf8 = new TextDecoder("utf-8", { fatal: true });

function invalid(message: string): ServiceError {
  return new ServiceError("invalid_argument", message);
}

function parseJson(bytes: Uint8Array): WatchEventsRequest {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw invalid("request is not valid UTF-8");
  }
  if (text.trim() === "") text = "{}";
  try {
    return fromJsonString(WatchEventsRequestSchema, text, { ignoreUnknownFields: true });
  } catch (err) {
    throw invalid(`request is not a valid WatchEventsRequest in JSON: ${(err as Error).message}`);
  }
}

function parseBinary(bytes: Uint8Array): WatchEventsRequest {
  try {
    return fromBinary(WatchEventsRequestSchema, bytes);
  } catch (err) {
    throw invalid(`request is not a valid WatchEventsRequest: ${(err as Error).message}`);
  }
}

/** The single message of an enveloped request body (Connect, gRPC, gRPC-Web). */
export function unwrap(body: Buffer): Buffer {
  if (body.length < 5) throw invalid("protocol error: incomplete envelope");
  const flags = body[0] as number;
  const length = body.readUInt32BE(1);
  if (body.length !== 5 + length) {
    throw invalid(
      body.length < 5 + length
        ? "protocol error: incomplete envelope"
        : "protocol error: expected exactly one request message",
    );
  }
  if (flags & 0x01) throw invalid("protocol error: compressed message without an encoding");
  if (flags !== 0) throw invalid("protocol error: unexpected envelope flags");
  return body.subarray(5);
}

// ---- gRPC status in headers and trailers -----------------------------------------------------

/** grpc-message is percent-encoded (gRPC over HTTP/2: printable ASCII except %, as is). */
function grpcMessage(message: string): string {
  return message.replace(/[^\x20-\x24\x26-\x7e]+/gu, (s) => encodeURIComponent(s));
}

/** gRPC status codes are the Connect codes' numbers. */
export function grpcStatus(err: ConnectError): Record<string, string> {
  return { "grpc-status": String(err.code), "grpc-message": grpcMessage(err.rawMessage) };
}

// ---- the protocols ---------------------------------------------------------------------------

/** JSONL, the form of the official SDKs (see CONTRACT §4). */
export const jsonl: WatchProtocol = {
  name: "jsonl",
  parse: parseJson,
  head: {
    status: 200,
    headers: { "content-type": "application/jsonl", "cache-control": "no-store" },
  },
  trailers: false,
  frame: jsonLine,
  end: () => ({}),
  refuse(err) {
    const body = Buffer.from(errorToJsonBytes(err, {}));
    return {
      status: codeToHttpStatus(err.code),
      headers: { "content-type": "application/json", "content-length": String(body.length) },
      body,
    };
  },
  fail: () => "abort",
};

function connectEndStream(err: ConnectError | undefined): Buffer {
  const json =
    err === undefined
      ? "{}"
      : JSON.stringify({ error: { code: codeToString(err.code), message: err.rawMessage } });
  return envelope(0x02, Buffer.from(json, "utf8"));
}

function connect(json: boolean): WatchProtocol {
  const contentType = json ? "application/connect+json" : "application/connect+proto";
  const head = { status: 200, headers: { "content-type": contentType } };
  return {
    name: "connect",
    parse: (body) => (json ? parseJson : parseBinary)(unwrap(body)),
    head,
    trailers: false,
    frame: json ? jsonFrame : binaryFrame,
    end: () => ({ body: connectEndStream(undefined) }),
    // Connect streaming reports every error, even the first thing, in the end-stream message.
    refuse: (err) => ({ ...head, body: connectEndStream(err) }),
    fail: (err) => ({ body: connectEndStream(err) }),
  };
}

function grpc(json: boolean): WatchProtocol {
  const contentType = json ? "application/grpc+json" : "application/grpc+proto";
  const head = { status: 200, headers: { "content-type": contentType } };
  return {
    name: "grpc",
    parse: (body) => (json ? parseJson : parseBinary)(unwrap(body)),
    head,
    trailers: true,
    frame: json ? jsonFrame : binaryFrame,
    end: () => ({ trailers: { "grpc-status": "0" } }),
    // "Trailers-Only": the status travels in the only header block.
    refuse: (err) => ({ status: 200, headers: { ...head.headers, ...grpcStatus(err) } }),
    fail: (err) => ({ trailers: grpcStatus(err) }),
  };
}

function grpcWebTrailer(fields: Record<string, string>): Buffer {
  const text = Object.entries(fields)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join("");
  return envelope(0x80, Buffer.from(text, "latin1"));
}

function grpcWeb(json: boolean): WatchProtocol {
  const contentType = json ? "application/grpc-web+json" : "application/grpc-web+proto";
  const head = { status: 200, headers: { "content-type": contentType } };
  return {
    name: "grpcweb",
    parse: (body) => (json ? parseJson : parseBinary)(unwrap(body)),
    head,
    trailers: false,
    frame: json ? jsonFrame : binaryFrame,
    end: () => ({ body: grpcWebTrailer({ "grpc-status": "0" }) }),
    refuse: (err) => ({ status: 200, headers: { ...head.headers, ...grpcStatus(err) } }),
    fail: (err) => ({ body: grpcWebTrailer(grpcStatus(err)) }),
  };
}

const PROTOCOLS: ReadonlyMap<string, WatchProtocol> = new Map([
  ["application/connect+proto", connect(false)],
  ["application/connect+json", connect(true)],
  ["application/grpc", grpc(false)],
  ["application/grpc+proto", grpc(false)],
  ["application/grpc+json", grpc(true)],
  ["application/grpc-web", grpcWeb(false)],
  ["application/grpc-web+proto", grpcWeb(false)],
  ["application/grpc-web+json", grpcWeb(true)],
]);

function mediaType(value: string | undefined): string {
  return (value ?? "").split(";", 1)[0]?.trim().toLowerCase() ?? "";
}

/** Whether a content-encoding header says "not compressed". */
export function identity(value: string | string[] | undefined): boolean {
  return value === undefined || value === "identity";
}

/**
 * The protocol a WatchEvents request speaks, when this edge serves it; undefined hands the
 * request to the Connect runtime (compressed requests, gRPC over HTTP/1.1, unknown types), which
 * serves the rarer cases with the same service.
 *
 * JSONL: `Content-Type: application/jsonl` or `application/json`, and/or
 * `Accept: application/jsonl` (CONTRACT §4).
 */
export function watchProtocolOf(
  headers: IncomingHttpHeaders,
  httpVersionMajor: number,
): WatchProtocol | undefined {
  const ct = mediaType(headers["content-type"]);
  if (ct === "application/jsonl" || ct === "application/json") return jsonl;
  if (ct === "") {
    return (headers.accept ?? "").toLowerCase().includes("application/jsonl") ? jsonl : undefined;
  }
  const protocol = PROTOCOLS.get(ct);
  if (protocol === undefined) return undefined;
  if (protocol.name === "grpc" && httpVersionMajor !== 2) return undefined;
  if (!identity(headers["grpc-encoding"]) || !identity(headers["connect-content-encoding"])) {
    return undefined;
  }
  return protocol;
}

const GRPC_TIMEOUT_UNITS_MS: Record<string, number> = {
  H: 3_600_000,
  M: 60_000,
  S: 1000,
  m: 1,
  u: 0.001,
  n: 0.000_001,
};

/** The client's deadline in ms from `grpc-timeout` or `connect-timeout-ms`, if any. */
export function timeoutMsOf(headers: IncomingHttpHeaders): number | undefined {
  const grpcTimeout = headers["grpc-timeout"];
  if (typeof grpcTimeout === "string") {
    const m = /^(\d{1,8})([HMSmun])$/.exec(grpcTimeout);
    if (m === null) throw invalid(`protocol error: invalid grpc-timeout "${grpcTimeout}"`);
    return Number(m[1]) * (GRPC_TIMEOUT_UNITS_MS[m[2] as string] as number);
  }
  const connectTimeout = headers["connect-timeout-ms"];
  if (typeof connectTimeout === "string") {
    if (!/^\d{1,10}$/.test(connectTimeout)) {
      throw invalid(`protocol error: invalid connect-timeout-ms "${connectTimeout}"`);
    }
    return Number(connectTimeout);
  }
  return undefined;
}
