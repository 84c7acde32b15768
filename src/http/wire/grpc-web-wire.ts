import type { IncomingHttpHeaders } from "node:http";
import type { DescMessage } from "@bufbuild/protobuf";
import type { ConnectError } from "@connectrpc/connect";
import { grpcWebProtocol } from "../connect-protocol.js";
import { envelope } from "./envelope.js";
import { grpcStatus, trailersOnly } from "./grpc-status.js";
import type { MethodCodec } from "./method-codec.js";
import { grpcTimeoutMs } from "./timeouts.js";
import { lower, type StreamWire, streamHead } from "./wire.js";

const ENCODING = lower(grpcWebProtocol.headerEncoding);
const ACCEPT_ENCODING = lower(grpcWebProtocol.headerAcceptEncoding);

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
  const head = streamHead(
    json ? grpcWebProtocol.contentTypeJson : grpcWebProtocol.contentTypeProto,
    ACCEPT_ENCODING,
  );
  return {
    name: "grpcweb",
    serves(headers: IncomingHttpHeaders) {
      const parsed = grpcWebProtocol.parseContentType(headers["content-type"] ?? null);
      return parsed !== undefined && !parsed.text && parsed.binary !== json;
    },
    encodingHeader: ENCODING,
    acceptEncodingHeader: ACCEPT_ENCODING,
    ...codec.enveloped(json),
    timeoutMs: grpcTimeoutMs,
    head,
    trailers: false,
    end: () => ({ body: trailer(undefined) }),
    refuse: (err) => trailersOnly(head, err),
    fail: (err) => ({ body: trailer(err) }),
  };
}
