import type { IncomingHttpHeaders } from "node:http";
import type { DescMessage, DescMethodServerStreaming, MessageShape } from "@bufbuild/protobuf";
import { type Compression, compressionNegotiate } from "./connect-protocol.js";
import type { ResponseEnd } from "./exchange.js";
import { createConnectWire } from "./wire/connect-wire.js";
import { createGrpcWebWire } from "./wire/grpc-web-wire.js";
import { createGrpcWire } from "./wire/grpc-wire.js";
import { createJsonlWire } from "./wire/jsonl-wire.js";
import { MethodCodec } from "./wire/method-codec.js";
import { type Abort, ACCEPT_COMPRESSION, type Refusal, type StreamWire } from "./wire/wire.js";

// The wire forms of the streaming edge, one module each under wire/ (JSONL, Connect, gRPC,
// gRPC-Web; each says which requests it serves), and the one loop that picks one for a request.
// The pieces they share live apart: what every enveloped wire does alike
// (wire/enveloped-wire.ts), envelopes (wire/envelope.ts), the frame cache and batches
// (wire/frames.ts), gRPC status (wire/grpc-status.ts), deadline headers (wire/timeouts.ts); what
// connect-es marks private comes through connect-protocol.ts only.

export type { Abort, Refusal, StreamWire } from "./wire/wire.js";

/** Whether a failure is an abort rather than an end to write. */
export function isAbort(end: ResponseEnd | Abort): end is Abort {
  return "abort" in end;
}

/** The wire a request speaks and the compression of its body. */
export interface Negotiated<I extends DescMessage, T extends object> {
  readonly wire: StreamWire<I, T>;
  readonly compression: Compression | null;
}

/**
 * The wire forms of one server-streaming method, and the negotiation that picks one for a
 * request. Made once per method per app: the frame caches live here.
 */
export class StreamWires<I extends DescMessage, O extends DescMessage, T extends object> {
  /** In the order they are asked: JSONL first (it also takes `application/json`). */
  private readonly wires: readonly StreamWire<I, T>[];

  /**
   * `toBinary`: the method's own binary encoder, if it has one; `shared`: which items other
   * streams may write too (see StreamMethod).
   */
  constructor(
    method: DescMethodServerStreaming<I, O>,
    toResponse: (item: T) => MessageShape<O>,
    toBinary?: (item: T, headroom: number) => Buffer | undefined,
    shared?: (item: T) => boolean,
  ) {
    const codec = new MethodCodec<I, O, T>(method, toResponse, toBinary, shared);
    this.wires = [
      createJsonlWire(codec),
      createConnectWire(codec, false),
      createConnectWire(codec, true),
      createGrpcWire(codec, false),
      createGrpcWire(codec, true),
      createGrpcWebWire(codec, false),
      createGrpcWebWire(codec, true),
    ];
  }

  /**
   * The wire a request speaks, from its content type (CONTRACT §4), and its body's compression.
   * Undefined: no wire of this method takes that content type (the edge answers 415). A
   * compression the edge does not know is the wire's own `unimplemented` refusal.
   */
  negotiate(headers: IncomingHttpHeaders): Negotiated<I, T> | Refusal | undefined {
    for (const wire of this.wires) {
      if (!wire.serves(headers)) continue;
      const encoding = headers[wire.encodingHeader];
      const { request, error } = compressionNegotiate(
        ACCEPT_COMPRESSION as Compression[],
        typeof encoding === "string" ? encoding : null,
        null,
        wire.acceptEncodingHeader,
      );
      if (error !== undefined) return wire.refuse(error);
      return { wire, compression: request };
    }
    return undefined;
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
