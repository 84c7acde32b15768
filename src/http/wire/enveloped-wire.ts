import type { IncomingHttpHeaders } from "node:http";
import type { DescMessage } from "@bufbuild/protobuf";
import type { ConnectError } from "@connectrpc/connect";
import type { ResponseEnd } from "../exchange.js";
import type { MethodCodec } from "./method-codec.js";
import { lower, type Refusal, type StreamWire, streamHead } from "./wire.js";

/** What one enveloped protocol (Connect, gRPC, gRPC-Web) says of itself, for one serialization. */
export interface EnvelopedProtocol {
  /** For logs and metrics: connect, grpc, grpcweb. */
  readonly name: string;
  /** The response's content type (the serialization's, binary or JSON). */
  readonly contentType: string;
  /** The protocol's reading of a content type; `binary` tells the serialization. */
  parseContentType(contentType: string | null): { readonly binary: boolean } | undefined;
  /** Header names as connect-es spells them (capitalized). */
  readonly encodingHeader: string;
  readonly acceptEncodingHeader: string;
  /** The client's deadline in ms, if it sent one (see StreamWire). */
  timeoutMs(headers: IncomingHttpHeaders): number | undefined;
  /** Whether the end travels in HTTP trailers. */
  readonly trailers: boolean;
  /** The end after the head: clean (no error) or failed. */
  end(err: ConnectError | undefined): ResponseEnd;
  /** An error before the head: the whole response, with the stream's head. */
  refuse(head: StreamWire<DescMessage, object>["head"], err: ConnectError): Refusal;
}

/**
 * An enveloped wire of a method: what every enveloped protocol does alike (the codec's shared
 * frames and request reading, the head, header names as Node presents them, and the choice by
 * content type and serialization) around what `protocol` says of itself.
 */
export function createEnvelopedWire<I extends DescMessage, O extends DescMessage, T extends object>(
  codec: MethodCodec<I, O, T>,
  json: boolean,
  protocol: EnvelopedProtocol,
): StreamWire<I, T> {
  const acceptEncodingHeader = lower(protocol.acceptEncodingHeader);
  const head = streamHead(protocol.contentType, acceptEncodingHeader);
  return {
    name: protocol.name,
    serves(headers) {
      const parsed = protocol.parseContentType(headers["content-type"] ?? null);
      return parsed !== undefined && parsed.binary !== json;
    },
    encodingHeader: lower(protocol.encodingHeader),
    acceptEncodingHeader,
    ...codec.enveloped(json),
    timeoutMs: protocol.timeoutMs,
    head,
    trailers: protocol.trailers,
    end: () => protocol.end(undefined),
    refuse: (err) => protocol.refuse(head, err),
    fail: (err) => protocol.end(err),
  };
}
