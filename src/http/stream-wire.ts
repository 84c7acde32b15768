import type { IncomingHttpHeaders } from "node:http";
import type { Http2ServerResponse } from "node:http2";
import type { DescMessage, DescMethodServerStreaming, MessageShape } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import {
  type Compression,
  compressedFlag,
  compressionNegotiate,
  createMethodSerializationLookup,
  encodeEnvelope,
  getJsonOptions,
  type Serialization,
} from "@connectrpc/connect/protocol";
import * as connectProtocol from "@connectrpc/connect/protocol-connect";
import * as grpcProtocol from "@connectrpc/connect/protocol-grpc";
import * as grpcWebProtocol from "@connectrpc/connect/protocol-grpc-web";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";
import { ServiceError } from "../errors.js";
import type { ResponseEnd } from "./exchange.js";

// Built from connect-es' protocol modules (`@connectrpc/connect/protocol`, `/protocol-connect`,
// `/protocol-grpc`, `/protocol-grpc-web`): content types, envelopes, compression negotiation,
// timeout parsing, the Connect end-stream message, gRPC status trailers and the gRPC-Web trailer
// frame. connect-es marks these exports "@private, does not follow semantic versioning", which
// is why package.json pins @connectrpc/connect (and connect-node) to one exact version. What
// connect-es lacks, and this project keeps by hand: JSONL, the per-item frame cache, and the
// writes themselves (stream-edge.ts).

/** Request compressions the edge accepts (responses are never compressed: see `frame`). */
export const ACCEPT_COMPRESSION: readonly Compression[] = [compressionGzip, compressionBrotli];
const ACCEPTED_NAMES = ACCEPT_COMPRESSION.map((c) => c.name).join(",");

/** A whole response, for a call refused before its stream started. */
export interface Refusal {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body?: Buffer;
}

/**
 * One wire form of one server-streaming method: how to read the request, start the response,
 * frame an item and end, cleanly or with an error before or after the response started.
 */
export interface StreamWire<I extends DescMessage, T extends object> {
  /** For logs and metrics: jsonl, connect, grpc, grpcweb. */
  readonly name: string;
  /** The request message from the whole body (decompressed with `compression` when flagged). */
  decode(body: Buffer, compression: Compression | null, maxBytes: number): Promise<MessageShape<I>>;
  /** The client's deadline in ms, if it sent one; throws invalid_argument for a bad header. */
  timeoutMs(headers: IncomingHttpHeaders): number | undefined;
  /** Status and headers of a response that streams. */
  readonly head: { readonly status: number; readonly headers: Record<string, string> };
  /** Whether the end (clean or failed) is carried in HTTP trailers (HTTP/2 must know early). */
  readonly trailers: boolean;
  /** The bytes of one item written alone (JSONL: aligned); made once, shared. */
  single(item: T): Buffer;
  /**
   * One write of several items, as the wire wants it. The streams of one organization usually
   * write the same items in one turn: the last batch made is given again to every stream whose
   * items are the same objects, so each is joined once, not once per stream.
   */
  batch(items: readonly T[]): Buffer;
  /** What to write while the stream is idle, to keep it alive; undefined: nothing. */
  readonly keepAlive: Buffer | undefined;
  /**
   * Most keep-alives written in a row (with nothing else between them); the next idle tick ends
   * the stream with `unavailable` instead, so that the client reconnects (JSONL: CONTRACT §10).
   */
  readonly keepAliveRunMax: number;
  /** How a clean end is written after the head. */
  end(): ResponseEnd;
  /** An error before the head was written: the whole response. */
  refuse(err: ConnectError): Refusal;
  /**
   * An error after the head was written: what to write, or an abort when the wire has no way to
   * say it (JSONL): its tail is written, then the stream is cut, so that it cannot look like a
   * clean end.
   */
  fail(err: ConnectError): ResponseEnd | Abort;
}

/** How a wire that cannot carry an error ends with one: `tail`, then the transport is cut. */
export interface Abort {
  readonly abort: true;
  readonly tail: Buffer | undefined;
}

/** Whether a failure is an abort rather than an end to write. */
export function isAbort(end: ResponseEnd | Abort): end is Abort {
  return "abort" in end;
}

/**
 * Headers of every streaming response. `X-Accel-Buffering: no` asks nginx (and ingress-nginx)
 * not to buffer this response: with its default `proxy_buffering on`, nginx holds back the head
 * until the first body bytes (i.e. the first event) and then each write until a buffer fills
 * (CONTRACT §14). nginx does not pass the header on to the client.
 */
const STREAM_HEADERS = { "x-accel-buffering": "no" } as const;

/** The wire a request speaks and the compression of its body. */
export interface Negotiated<I extends DescMessage, T extends object> {
  readonly wire: StreamWire<I, T>;
  readonly compression: Compression | null;
}

/**
 * An item's bytes in one wire form, made once and shared. A publish's event is written by every
 * stream in turn, so the last item asked for answers almost every lookup; the WeakMap keeps the
 * rest (for streams that are behind) until the item is gone.
 */
class FrameCache<T extends object> {
  private readonly frames = new WeakMap<T, Buffer>();
  private lastItem: T | undefined;
  private lastFrame: Buffer | undefined;

  constructor(private readonly encode: (item: T) => Buffer) {}

  get(item: T): Buffer {
    if (item === this.lastItem) return this.lastFrame as Buffer;
    let frame = this.frames.get(item);
    if (frame === undefined) {
      frame = this.encode(item);
      this.frames.set(item, frame);
    }
    this.lastItem = item;
    this.lastFrame = frame;
    return frame;
  }
}

/** Header names as Node presents them (lower case); connect-es spells them capitalized. */
function lower(name: string): string {
  return name.toLowerCase();
}
const CONNECT_ENCODING = lower(connectProtocol.headerStreamEncoding);
const CONNECT_ACCEPT_ENCODING = lower(connectProtocol.headerStreamAcceptEncoding);
const GRPC_ENCODING = lower(grpcProtocol.headerEncoding);
const GRPC_ACCEPT_ENCODING = lower(grpcProtocol.headerAcceptEncoding);
const GRPC_WEB_ENCODING = lower(grpcWebProtocol.headerEncoding);
const GRPC_WEB_ACCEPT_ENCODING = lower(grpcWebProtocol.headerAcceptEncoding);

function invalid(message: string): ServiceError {
  return new ServiceError("invalid_argument", message);
}

function envelope(flags: number, payload: Uint8Array): Buffer {
  const bytes = encodeEnvelope(flags, payload);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The single message of an enveloped request body (Connect, gRPC, gRPC-Web). */
export function unwrap(body: Buffer): { flags: number; payload: Buffer } {
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
  if ((flags & ~compressedFlag) !== 0) throw invalid("protocol error: unexpected envelope flags");
  return { flags, payload: body.subarray(5) };
}

async function decompress(
  payload: Uint8Array,
  compression: Compression | null,
  maxBytes: number,
): Promise<Uint8Array> {
  if (compression === null) {
    throw invalid("protocol error: compressed message without an encoding");
  }
  return compression.decompress(payload, maxBytes);
}

/** Parses with connect-es' serialization, in our words when the bytes are not the message. */
function parseWith<I extends DescMessage>(
  serialization: Serialization<MessageShape<I>>,
  typeName: string,
  json: boolean,
  bytes: Uint8Array,
): MessageShape<I> {
  try {
    return serialization.parse(bytes);
  } catch (err) {
    const detail = err instanceof ConnectError ? err.rawMessage : String(err);
    throw invalid(`request is not a valid ${typeName}${json ? " in JSON" : ""}: ${detail}`);
  }
}

/**
 * grpc-message as the gRPC spec percent-encodes it: only bytes outside printable ASCII, and "%".
 * connect-es encodes with encodeURIComponent, which @grpc/grpc-js (it decodes with decodeURI)
 * shows as "%3A" for every ":" of our field-naming messages.
 */
function grpcMessage(message: string): string {
  return message.replace(/[^\x20-\x24\x26-\x7e]+/gu, (m) => encodeURIComponent(m));
}

/**
 * Makes the gRPC answers that connect-node writes through Node's compatibility API (the Connect
 * router: unary calls, health, reflection) spell grpc-message as the streaming edge does (see
 * `grpcMessage`), so that every path of the port says the same thing the same way. Re-encodes
 * the header (trailers-only answers) and the trailer.
 */
export function respellGrpcMessage(res: Http2ServerResponse): void {
  const fix = (headers: unknown) => {
    if (headers === null || typeof headers !== "object") return;
    const h = headers as Record<string, unknown>;
    const value = h["grpc-message"];
    if (typeof value !== "string") return;
    try {
      h["grpc-message"] = grpcMessage(decodeURIComponent(value));
    } catch {
      // Not percent-encoded as connect-es does it: leave it as it is.
    }
  };
  // Wrapped per response (not on the prototype): only this server's answers are touched.
  const target = res as unknown as {
    writeHead: (...args: unknown[]) => unknown;
    addTrailers: (headers: unknown) => void;
  };
  const writeHead = target.writeHead.bind(res);
  target.writeHead = (...args) => {
    for (const a of args) fix(a);
    return writeHead(...args);
  };
  const addTrailers = target.addTrailers.bind(res);
  target.addTrailers = (headers) => {
    fix(headers);
    addTrailers(headers);
  };
}

/** grpc-status, grpc-message and details (connect-es' setTrailerStatus) as a plain record. */
export function grpcStatus(err: ConnectError | undefined): Record<string, string> {
  const fields: Record<string, string> = {};
  grpcProtocol.setTrailerStatus(new Headers(), err).forEach((value, key) => {
    fields[key] = value;
  });
  if (err !== undefined) fields["grpc-message"] = grpcMessage(err.rawMessage);
  return fields;
}

/**
 * A deadline header parsed by connect-es, with no upper bound (the edge handles long ones);
 * a malformed one is invalid_argument naming the header.
 */
function timeoutFrom(
  parse: typeof connectProtocol.parseTimeout,
  name: string,
  value: string | string[] | undefined,
): number | undefined {
  if (typeof value !== "string") return undefined;
  const { timeoutMs, error } = parse(value, Number.POSITIVE_INFINITY);
  if (error !== undefined) throw invalid(`protocol error: invalid ${name} "${value}"`);
  return timeoutMs;
}

/** The deadline of a Connect (or JSONL) call, in ms, if it has one. */
export const connectTimeoutMs = (headers: IncomingHttpHeaders) =>
  timeoutFrom(connectProtocol.parseTimeout, "connect-timeout-ms", headers["connect-timeout-ms"]);
/** The deadline of a gRPC or gRPC-Web call, in ms, if it has one. */
export const grpcTimeoutMs = (headers: IncomingHttpHeaders) =>
  timeoutFrom(grpcProtocol.parseTimeout, "grpc-timeout", headers["grpc-timeout"]);

// ---- JSONL alignment (CONTRACT §10) --------------------------------------------------------
//
// The official Python SDK reads the body in whole 64-byte chunks (httpx `iter_bytes(64)` holds
// back a partial chunk until more bytes arrive), so a line that does not end on a multiple of 64
// bytes from the start of the body waits for the next write. Every write of a JSONL stream
// therefore ends on such a multiple: spaces go just before the `\n` of the write's last line
// (JSON allows whitespace after a value), and keep-alives are 64 spaces (whitespace before the
// next value). Never a blank line: every SDK parses every line.

/** Bytes in which every JSONL write is aligned. */
export const JSONL_ALIGN_BYTES = 64;
const JSONL_KEEPALIVE = Buffer.alloc(JSONL_ALIGN_BYTES, 0x20);

// ---- JSONL ends with an error (CONTRACT §10) ------------------------------------------------
//
// A JSONL stream has no way to carry an error; the transport is cut instead (HTTP/1.1: no last
// chunk; HTTP/2: RST_STREAM). Not every reader sees the cut: Go's bufio.Scanner, the Go SDK's
// reader, ends a read error like the end of the body (the SDK drops the scanner's error), and
// some proxies (Caddy 2.6) end the client's response cleanly when the server's is cut. Every
// SDK, though, parses the unterminated rest of the body at its end, and none accepts a rest made
// of whitespace only. So before the cut, an error end writes JSONL_TAIL: 64 spaces (the body
// stays aligned for the Python SDK), unterminated.
//
// Keep-alives are spaces without a newline too, so they pile up on one line until the next
// event: Go's scanner gives up on a line of 64 KiB (ErrTooLong, dropped by the SDK: a silent
// end). A run of keep-alives and the tail stays within JSONL_MAX_UNTERMINATED_BYTES, half that
// limit; the tick that would pass it ends the stream with `unavailable` (tail, then the cut)
// and the client reconnects: about 2 h 8 min of silence at the default 15 s.

/** What a JSONL stream writes before it is cut: whitespace that no JSON parser accepts alone. */
export const JSONL_TAIL: Buffer = Buffer.alloc(JSONL_ALIGN_BYTES, 0x20);

/** The longest unterminated run a JSONL stream writes (keep-alives and tail), in bytes. */
export const JSONL_MAX_UNTERMINATED_BYTES = 32 * 1024;

/** Keep-alives a JSONL stream writes in a row; with the tail, within the bound above. */
export const JSONL_KEEPALIVE_RUN_MAX = Math.floor(
  (JSONL_MAX_UNTERMINATED_BYTES - JSONL_TAIL.length) / JSONL_KEEPALIVE.length,
);

const JSONL_ABORT: Abort = { abort: true, tail: JSONL_TAIL };

/** Spaces that bring `length` to a multiple of JSONL_ALIGN_BYTES. */
function padding(length: number): number {
  return (JSONL_ALIGN_BYTES - (length % JSONL_ALIGN_BYTES)) % JSONL_ALIGN_BYTES;
}

/** `json` as one line: `pad` spaces, then `\n`. */
function line(json: Uint8Array, pad: number): Buffer {
  const out = Buffer.allocUnsafe(json.length + pad + 1);
  out.set(json, 0);
  out.fill(0x20, json.length, json.length + pad);
  out[out.length - 1] = 0x0a;
  return out;
}

/** Lines (each ending in `\n`) as one aligned write: the padding goes before the last `\n`. */
function alignLines(lines: readonly Buffer[], length: number): Buffer {
  const pad = padding(length);
  const out = Buffer.allocUnsafe(length + pad);
  let at = 0;
  for (const l of lines) {
    out.set(l, at);
    at += l.length;
  }
  // at === length; move the final \n to the end and fill the gap with spaces.
  out.fill(0x20, length - 1, length - 1 + pad);
  out[out.length - 1] = 0x0a;
  return out;
}

/**
 * Joins the frames of several items with `join`, remembering the last batch: asked again for
 * the same items (the same objects, in the same order), it gives the same bytes.
 */
function batchOf<T>(
  frame: (item: T) => Buffer,
  join: (parts: readonly Buffer[], length: number) => Buffer,
): (items: readonly T[]) => Buffer {
  let lastItems: readonly T[] = [];
  let lastBytes: Buffer | undefined;
  return (items) => {
    if (lastBytes !== undefined && items.length === lastItems.length) {
      let same = true;
      for (let i = 0; i < items.length && same; i++) same = items[i] === lastItems[i];
      if (same) return lastBytes;
    }
    const parts: Buffer[] = new Array(items.length);
    let length = 0;
    for (let i = 0; i < items.length; i++) {
      const f = frame(items[i] as T);
      parts[i] = f;
      length += f.length;
    }
    lastItems = items.slice();
    lastBytes = join(parts, length);
    return lastBytes;
  };
}

/**
 * The wire forms of one server-streaming method, and the negotiation that picks one for a
 * request. Made once per method per app: the frame caches live here.
 */
export class StreamWires<I extends DescMessage, O extends DescMessage, T extends object> {
  private readonly jsonl: StreamWire<I, T>;
  private readonly connect: readonly [StreamWire<I, T>, StreamWire<I, T>];
  private readonly grpc: readonly [StreamWire<I, T>, StreamWire<I, T>];
  private readonly grpcWeb: readonly [StreamWire<I, T>, StreamWire<I, T>];

  constructor(method: DescMethodServerStreaming<I, O>, toResponse: (item: T) => MessageShape<O>) {
    const limits = { readMaxBytes: 0xffffffff, writeMaxBytes: 0xffffffff };
    const serialization = createMethodSerializationLookup(
      method,
      undefined,
      getJsonOptions(undefined),
      limits,
    );
    const typeName = method.input.name;
    const parse = (json: boolean, bytes: Uint8Array) =>
      parseWith(serialization.getI(!json), typeName, json, bytes);
    const encode = (json: boolean) => (item: T) =>
      serialization.getO(!json).serialize(toResponse(item));
    const framed = (json: boolean) => {
      const bytesOf = encode(json);
      return new FrameCache<T>((item) => envelope(0, bytesOf(item)));
    };
    const binaryFrames = framed(false);
    const jsonFrames = framed(true);
    const enveloped = (json: boolean) => {
      const frames = json ? jsonFrames : binaryFrames;
      return {
        single: (item: T) => frames.get(item),
        batch: batchOf(
          (item: T) => frames.get(item),
          (parts, length) => Buffer.concat(parts, length),
        ),
        keepAlive: undefined,
        keepAliveRunMax: 0,
        async decode(body: Buffer, compression: Compression | null, maxBytes: number) {
          const { flags, payload } = unwrap(body);
          const bytes =
            flags & compressedFlag ? await decompress(payload, compression, maxBytes) : payload;
          return parse(json, bytes);
        },
      };
    };

    const jsonBytes = encode(true);
    const lines = new FrameCache<T>((item) => line(jsonBytes(item), 0));
    const alignedLines = new FrameCache<T>((item) => {
      const json = jsonBytes(item);
      return line(json, padding(json.length + 1));
    });
    const utf8 = new TextDecoder("utf-8", { fatal: true });
    this.jsonl = {
      name: "jsonl",
      async decode(body, compression, maxBytes) {
        const bytes = compression === null ? body : await compression.decompress(body, maxBytes);
        let text: string;
        try {
          text = utf8.decode(bytes);
        } catch {
          throw invalid("request is not valid UTF-8");
        }
        // An empty body is the default request (CONTRACT §4: organization scope).
        return parse(true, new TextEncoder().encode(text.trim() === "" ? "{}" : text));
      },
      timeoutMs: connectTimeoutMs,
      head: {
        status: 200,
        headers: {
          "content-type": "application/jsonl",
          "cache-control": "no-store",
          ...STREAM_HEADERS,
        },
      },
      trailers: false,
      single: (item) => alignedLines.get(item),
      batch: batchOf((item: T) => lines.get(item), alignLines),
      keepAlive: JSONL_KEEPALIVE,
      keepAliveRunMax: JSONL_KEEPALIVE_RUN_MAX,
      // Nothing after the last event of a clean end (CONTRACT §10).
      end: () => ({}),
      refuse(err) {
        const body = Buffer.from(connectProtocol.errorToJsonBytes(err, {}));
        return {
          status: connectProtocol.codeToHttpStatus(err.code),
          headers: { "content-type": "application/json", "content-length": String(body.length) },
          body,
        };
      },
      fail: () => JSONL_ABORT,
    };

    const connect = (json: boolean): StreamWire<I, T> => {
      const head = {
        status: 200,
        headers: {
          "content-type": json
            ? connectProtocol.contentTypeStreamJson
            : connectProtocol.contentTypeStreamProto,
          [CONNECT_ACCEPT_ENCODING]: ACCEPTED_NAMES,
          ...STREAM_HEADERS,
        },
      };
      const endStream = (err: ConnectError | undefined) => {
        const json = connectProtocol.endStreamToJson(new Headers(), err, {});
        return envelope(connectProtocol.endStreamFlag, Buffer.from(JSON.stringify(json), "utf8"));
      };
      return {
        name: "connect",
        ...enveloped(json),
        timeoutMs: connectTimeoutMs,
        head,
        trailers: false,
        end: () => ({ body: endStream(undefined) }),
        // Connect streaming reports every error, even the first thing, in the end-stream message.
        refuse: (err) => ({ ...head, body: endStream(err) }),
        fail: (err) => ({ body: endStream(err) }),
      };
    };

    const grpc = (json: boolean): StreamWire<I, T> => {
      const head = {
        status: 200,
        headers: {
          "content-type": json ? grpcProtocol.contentTypeJson : grpcProtocol.contentTypeProto,
          [GRPC_ACCEPT_ENCODING]: ACCEPTED_NAMES,
          ...STREAM_HEADERS,
        },
      };
      return {
        name: "grpc",
        ...enveloped(json),
        timeoutMs: grpcTimeoutMs,
        head,
        trailers: true,
        end: () => ({ trailers: grpcStatus(undefined) }),
        // Trailers-Only: the status travels in the only header block.
        refuse: (err) => ({ status: 200, headers: { ...head.headers, ...grpcStatus(err) } }),
        fail: (err) => ({ trailers: grpcStatus(err) }),
      };
    };

    const grpcWeb = (json: boolean): StreamWire<I, T> => {
      const head = {
        status: 200,
        headers: {
          "content-type": json ? grpcWebProtocol.contentTypeJson : grpcWebProtocol.contentTypeProto,
          [GRPC_WEB_ACCEPT_ENCODING]: ACCEPTED_NAMES,
          ...STREAM_HEADERS,
        },
      };
      const trailer = (err: ConnectError | undefined) =>
        envelope(
          grpcWebProtocol.trailerFlag,
          grpcWebProtocol.trailerSerialize(new Headers(grpcStatus(err))),
        );
      return {
        name: "grpcweb",
        ...enveloped(json),
        timeoutMs: grpcTimeoutMs,
        head,
        trailers: false,
        end: () => ({ body: trailer(undefined) }),
        refuse: (err) => ({ status: 200, headers: { ...head.headers, ...grpcStatus(err) } }),
        fail: (err) => ({ body: trailer(err) }),
      };
    };

    this.connect = [connect(false), connect(true)];
    this.grpc = [grpc(false), grpc(true)];
    this.grpcWeb = [grpcWeb(false), grpcWeb(true)];
  }

  /**
   * The wire a request speaks, from its content type (CONTRACT §4), and its body's compression.
   * Undefined: no wire of this method takes that content type (the edge answers 415). A
   * compression the edge does not know is the wire's own `unimplemented` refusal.
   *
   * JSONL: `Content-Type: application/jsonl` or `application/json`, and/or
   * `Accept: application/jsonl` without a content type.
   */
  negotiate(headers: IncomingHttpHeaders): Negotiated<I, T> | Refusal | undefined {
    const contentType = headers["content-type"];
    const mediaType = (contentType ?? "").split(";", 1)[0]?.trim().toLowerCase() ?? "";
    if (mediaType === "application/jsonl" || mediaType === "application/json") {
      return this.with(this.jsonl, headers["content-encoding"], "accept-encoding");
    }
    if (mediaType === "") {
      const accept = (headers.accept ?? "").toLowerCase();
      return accept.includes("application/jsonl")
        ? this.with(this.jsonl, headers["content-encoding"], "accept-encoding")
        : undefined;
    }
    const connect = connectProtocol.parseContentType(contentType ?? null);
    if (connect?.stream === true) {
      return this.with(
        this.connect[connect.binary ? 0 : 1],
        headers[CONNECT_ENCODING],
        CONNECT_ACCEPT_ENCODING,
      );
    }
    const grpc = grpcProtocol.parseContentType(contentType ?? null);
    if (grpc !== undefined) {
      return this.with(
        this.grpc[grpc.binary ? 0 : 1],
        headers[GRPC_ENCODING],
        GRPC_ACCEPT_ENCODING,
      );
    }
    const grpcWeb = grpcWebProtocol.parseContentType(contentType ?? null);
    if (grpcWeb !== undefined && !grpcWeb.text) {
      return this.with(
        this.grpcWeb[grpcWeb.binary ? 0 : 1],
        headers[GRPC_WEB_ENCODING],
        GRPC_WEB_ACCEPT_ENCODING,
      );
    }
    return undefined;
  }

  private with(
    wire: StreamWire<I, T>,
    encoding: string | string[] | undefined,
    acceptHeader: string,
  ): Negotiated<I, T> | Refusal {
    const requested = typeof encoding === "string" ? encoding : null;
    const { request, error } = compressionNegotiate(
      ACCEPT_COMPRESSION as Compression[],
      requested,
      null,
      acceptHeader,
    );
    if (error !== undefined) return wire.refuse(error);
    return { wire, compression: request };
  }
}

/** Whether a negotiation ended in a refusal rather than a wire. */
export function isRefusal<I extends DescMessage, T extends object>(
  n: Negotiated<I, T> | Refusal,
): n is Refusal {
  return "status" in n;
}

/** A request whose headers say nothing can be served (no wire for it): 415. */
export const UNSUPPORTED_MEDIA_TYPE: Refusal = {
  status: 415,
  headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" },
  body: Buffer.from("unsupported content type\n"),
};
