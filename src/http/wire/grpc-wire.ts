import type { IncomingHttpHeaders } from "node:http";
import type { DescMessage } from "@bufbuild/protobuf";
import { grpcProtocol } from "../connect-protocol.js";
import { grpcStatus, trailersOnly } from "./grpc-status.js";
import type { MethodCodec } from "./method-codec.js";
import { grpcTimeoutMs } from "./timeouts.js";
import { lower, type StreamWire, streamHead } from "./wire.js";

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
  const head = streamHead(
    json ? grpcProtocol.contentTypeJson : grpcProtocol.contentTypeProto,
    ACCEPT_ENCODING,
  );
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
    refuse: (err) => trailersOnly(head, err),
    fail: (err) => ({ trailers: grpcStatus(err) }),
  };
}
