import type { DescMessage } from "@bufbuild/protobuf";
import { grpcProtocol } from "../connect-protocol.js";
import { createEnvelopedWire } from "./enveloped-wire.js";
import { grpcStatus, trailersOnly } from "./grpc-status.js";
import type { MethodCodec } from "./method-codec.js";
import { grpcTimeoutMs } from "./timeouts.js";
import type { StreamWire } from "./wire.js";

/**
 * The gRPC wire of a method, in binary (`application/grpc`, `application/grpc+proto`) or JSON
 * (`application/grpc+json`): enveloped messages, the status in HTTP trailers.
 */
export function createGrpcWire<I extends DescMessage, O extends DescMessage, T extends object>(
  codec: MethodCodec<I, O, T>,
  json: boolean,
): StreamWire<I, T> {
  return createEnvelopedWire(codec, json, {
    name: "grpc",
    contentType: json ? grpcProtocol.contentTypeJson : grpcProtocol.contentTypeProto,
    parseContentType: grpcProtocol.parseContentType,
    encodingHeader: grpcProtocol.headerEncoding,
    acceptEncodingHeader: grpcProtocol.headerAcceptEncoding,
    timeoutMs: grpcTimeoutMs,
    trailers: true,
    end: (err) => ({ trailers: grpcStatus(err) }),
    refuse: trailersOnly,
  });
}
