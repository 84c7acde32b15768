import type { IncomingHttpHeaders } from "node:http";
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import type { ConnectError } from "@connectrpc/connect";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";
import type { Compression } from "../connect-protocol.js";
import type { ResponseEnd } from "../exchange.js";

/** Request compressions the edge accepts (responses are never compressed: see each wire). */
export const ACCEPT_COMPRESSION: readonly Compression[] = [compressionGzip, compressionBrotli];
/** The same, as an accept-encoding header lists them. */
export const ACCEPTED_NAMES = ACCEPT_COMPRESSION.map((c) => c.name).join(",");

/**
 * Headers of every streaming response. `X-Accel-Buffering: no` asks nginx (and ingress-nginx)
 * not to buffer this response: with its default `proxy_buffering on`, nginx holds back the head
 * until the first body bytes (i.e. the first event) and then each write until a buffer fills
 * (CONTRACT §14). nginx does not pass the header on to the client.
 */
export const STREAM_HEADERS = { "x-accel-buffering": "no" } as const;

/** A whole response, for a call refused before its stream started. */
export interface Refusal {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body?: Buffer;
}

/** How a wire that cannot carry an error ends with one: `tail`, then the transport is cut. */
export interface Abort {
  readonly abort: true;
  readonly tail: Buffer | undefined;
}

/**
 * One wire form of one server-streaming method: which requests it serves, how to read the
 * request, start the response, frame an item and end, cleanly or with an error before or after
 * the response started. Each protocol's wires are made in a module of their own (wire/*-wire.ts).
 */
export interface StreamWire<I extends DescMessage, T extends object> {
  /** For logs and metrics: jsonl, connect, grpc, grpcweb. */
  readonly name: string;
  /** Whether this wire serves a request with these headers (its content type, its accept). */
  serves(headers: IncomingHttpHeaders): boolean;
  /** The request header that names the body's compression (lower case). */
  readonly encodingHeader: string;
  /** The header that lists the compressions this side accepts (lower case). */
  readonly acceptEncodingHeader: string;
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
  /**
   * The bytes of a run (PullSource.pollRun): as `batch`, made once per run however many
   * streams write it, while it is pending anywhere.
   */
  run(items: readonly T[]): Buffer;
  /**
   * The first `count` parts (bytes this wire gave for runs, batches or items) as one write; the
   * last join made is given again for the same parts.
   */
  join(parts: readonly (Buffer | undefined)[], count: number): Buffer;
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

/** The head of an enveloped stream's response: its content type, and the compressions accepted. */
export function streamHead(
  contentType: string,
  acceptEncodingHeader: string,
): { readonly status: number; readonly headers: Record<string, string> } {
  return {
    status: 200,
    headers: {
      "content-type": contentType,
      [acceptEncodingHeader]: ACCEPTED_NAMES,
      ...STREAM_HEADERS,
    },
  };
}

/** Header names as Node presents them (lower case); connect-es spells them capitalized. */
export function lower(name: string): string {
  return name.toLowerCase();
}
