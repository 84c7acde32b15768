import type { DescMessage } from "@bufbuild/protobuf";
import type { ConnectError } from "@connectrpc/connect";
import { grpcWebProtocol } from "../connect-protocol.js";
import { envelope } from "./envelope.js";
import { createEnvelopedWire } from "./enveloped-wire.js";
import { grpcStatus, trailersOnly } from "./grpc-status.js";
import type { MethodCodec } from "./method-codec.js";
import { grpcTimeoutMs } from "./timeouts.js";
import type { StreamWire } from "./wire.js";

/** The gRPC-Web trailer frame: the status as a header block in a trailer envelope. */
function trailer(err: ConnectError | undefined): Buffer {
  return envelope(
    grpcWebProtocol.trailerFlag,
    grpcWebProtocol.trailerSerialize(new Headers(grpcStatus(err))),
  );
}

/**
 * The gRPC-Web wire of a method, in binary (`application/grpc-web`, `+proto`) or JSON
 * (`application/grpc-web+json`), not the base64 text form: enveloped messages, then the
 * trailer frame.
 */
export function createGrpcWebWire<I extends DescMessage, O extends DescMessage, T extends object>(
  codec: MethodCodec<I, O, T>,
  json: boolean,
): StreamWire<I, T> {
  return createEnvelopedWire(codec, json, {
    name: "grpcweb",
    contentType: json ? grpcWebProtocol.contentTypeJson : grpcWebProtocol.contentTypeProto,
    parseContentType(contentType) {
      const parsed = grpcWebProtocol.parseContentType(contentType);
      return parsed?.text ? undefined : parsed;
    },
    encodingHeader: grpcWebProtocol.headerEncoding,
    acceptEncodingHeader: grpcWebProtocol.headerAcceptEncoding,
    timeoutMs: grpcTimeoutMs,
    trailers: false,
    end: (err) => ({ body: trailer(err) }),
    refuse: trailersOnly,
  });
}
