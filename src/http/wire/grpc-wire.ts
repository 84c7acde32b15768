import type { IncomingHttpHeaders } from "node:http";
import type { DescMessage } from "@bufbuild/protobuf";
import { grpcProtocol } from "../connect-protocol.js";
import { grpcStatus } from "./grpc-status.js";
import type { MethodCodec } from "./method-codec.js";
import { grpcTimeoutMs } from "./timeouts.js";
import { ACCEPTED_NAMES, lower, STREAM_HEADERS, type StreamWire } from "./wire.js";

const ENCODING = lower(grpcProtocol.headerEncoding);
const ACCEPT_ENCODING = lower(grpcProtocol.headerAcceptEncoding);

/**
 * The gRPC wire of a method, in binary (`application/grpc`, `application/grpc+proto`) or JSON
 * (`application/grpc+json`): enveloped messages, the status in HTTP trailers.
 */
export function createGrpcWire<I extends DescMessage, O extends DescMessage, T extends object>(
  codec: MethodCodec<I, O, T>,
  json: boolean,
): StreamWire<I, T> {
  const head = {
    status: 200,
    headers: {
      "content-type": json ? grpcProtocol.contentTypeJson : grpcProtocol.contentTypeProto,
      [ACCEPT_ENCODING]: ACCEPTED_NAMES,
      ...STREAM_HEADERS,
    },
  };
  return {
    name: "grpc",
    serves(headers: IncomingHttpHeaders) {
      const parsed = grpcProtocol.parseContentType(headers["content-type"] ?? null);
      return parsed !== undefined && parsed.binary !== json;
    },
    encodingHeader: ENCODING,
    acceptEncodingHeader: ACCEPT_ENCODING,
    ...codec.enveloped(json),
    timeoutMs: grpcTimeoutMs,
    head,
    trailers: true,
    end: () => ({ trailers: grpcStatus(undefined) }),
    // Trailers-Only: the status travels in the only header block.
    refuse: (err) => ({ status: 200, headers: { ...head.headers, ...grpcStatus(err) } }),
    fail: (err) => ({ trailers: grpcStatus(err) }),
  };
}
