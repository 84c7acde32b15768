import type { IncomingHttpHeaders } from "node:http";
import type { DescMessage } from "@bufbuild/protobuf";
import { ServiceError } from "../../errors.js";
import { connectProtocol } from "../connect-protocol.js";
import { batchOf, FrameCache, joinOf, runOf } from "./frames.js";
import type { MethodCodec } from "./method-codec.js";
import { connectTimeoutMs } from "./timeouts.js";
import { type Abort, STREAM_HEADERS, type StreamWire } from "./wire.js";

// JSONL (CONTRACT §4, §10): one JSON response message per line, as the Python and Go SDKs read
// it. connect-es has no such protocol; everything but the JSON encoding is kept here.

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

/** The media type of a content-type header, lower case; "" when there is none. */
function mediaTypeOf(contentType: string | undefined): string {
  return (contentType ?? "").split(";", 1)[0]?.trim().toLowerCase() ?? "";
}

/**
 * The JSONL wire of a method: `Content-Type: application/jsonl` or `application/json`, and/or
 * `Accept: application/jsonl` without a content type.
 */
export function createJsonlWire<I extends DescMessage, O extends DescMessage, T extends object>(
  codec: MethodCodec<I, O, T>,
): StreamWire<I, T> {
  const jsonBytes = codec.encoder(true);
  const lines = new FrameCache<T>((item) => line(jsonBytes(item), 0), codec.keep);
  const alignedLines = new FrameCache<T>((item) => {
    const json = jsonBytes(item);
    return line(json, padding(json.length + 1));
  }, codec.keep);
  const batch = batchOf((item: T) => lines.get(item), alignLines);
  const utf8 = new TextDecoder("utf-8", { fatal: true });
  return {
    name: "jsonl",
    serves(headers: IncomingHttpHeaders) {
      const mediaType = mediaTypeOf(headers["content-type"]);
      if (mediaType === "application/jsonl" || mediaType === "application/json") return true;
      return mediaType === "" && (headers.accept ?? "").toLowerCase().includes("application/jsonl");
    },
    encodingHeader: "content-encoding",
    acceptEncodingHeader: "accept-encoding",
    async decode(body, compression, maxBytes) {
      const bytes = compression === null ? body : await compression.decompress(body, maxBytes);
      let text: string;
      try {
        text = utf8.decode(bytes);
      } catch {
        throw new ServiceError("invalid_argument", "request is not valid UTF-8");
      }
      // An empty body is the default request (CONTRACT §4: organization scope).
      return codec.parse(true, new TextEncoder().encode(text.trim() === "" ? "{}" : text));
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
    batch,
    run: runOf(batch),
    // Every part ends on 64 bytes (a batch's or a run's last line is padded), so joined they do.
    join: joinOf(),
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
}
