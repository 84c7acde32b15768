// The one door to connect-es' private protocol modules (`@connectrpc/connect/protocol`,
// `/protocol-connect`, `/protocol-grpc`, `/protocol-grpc-web`): content types, envelopes,
// compression negotiation, timeout parsing, the Connect end-stream message, gRPC status trailers
// and the gRPC-Web trailer frame. connect-es marks these exports "@private, does not follow
// semantic versioning", which is why package.json pins @connectrpc/connect (and connect-node) to
// one exact version. Every module that needs one, in src/ and in test/, takes it from here, and
// connect-protocol.test.ts fails, naming the symbol, when an upgrade removes or changes any of
// them.

import * as protocol from "@connectrpc/connect/protocol";
import * as connect from "@connectrpc/connect/protocol-connect";
import * as grpc from "@connectrpc/connect/protocol-grpc";
import * as grpcWeb from "@connectrpc/connect/protocol-grpc-web";

export type {
  Compression,
  MethodSerializationLookup,
  Serialization,
} from "@connectrpc/connect/protocol";

// Shared by every enveloped protocol. Plain bindings, not properties: encodeEnvelope runs once
// per event per wire form.
export const {
  compressedFlag,
  compressionNegotiate,
  createMethodSerializationLookup,
  encodeEnvelope,
  getJsonOptions,
} = protocol;

/** The Connect protocol's pieces (streaming). */
export const connectProtocol = {
  headerStreamEncoding: connect.headerStreamEncoding,
  headerStreamAcceptEncoding: connect.headerStreamAcceptEncoding,
  contentTypeStreamJson: connect.contentTypeStreamJson,
  contentTypeStreamProto: connect.contentTypeStreamProto,
  parseContentType: connect.parseContentType,
  parseTimeout: connect.parseTimeout,
  errorToJsonBytes: connect.errorToJsonBytes,
  codeToHttpStatus: connect.codeToHttpStatus,
  endStreamToJson: connect.endStreamToJson,
  endStreamFlag: connect.endStreamFlag,
  /** A code's name on the wire (`invalid_argument`) and back; test clients read ends with them. */
  codeToString: connect.codeToString,
  codeFromString: connect.codeFromString,
} as const;

/** The gRPC protocol's pieces. */
export const grpcProtocol = {
  headerEncoding: grpc.headerEncoding,
  headerAcceptEncoding: grpc.headerAcceptEncoding,
  contentTypeJson: grpc.contentTypeJson,
  contentTypeProto: grpc.contentTypeProto,
  parseContentType: grpc.parseContentType,
  parseTimeout: grpc.parseTimeout,
  setTrailerStatus: grpc.setTrailerStatus,
} as const;

/** The gRPC-Web protocol's pieces. */
export const grpcWebProtocol = {
  headerEncoding: grpcWeb.headerEncoding,
  headerAcceptEncoding: grpcWeb.headerAcceptEncoding,
  contentTypeJson: grpcWeb.contentTypeJson,
  contentTypeProto: grpcWeb.contentTypeProto,
  parseContentType: grpcWeb.parseContentType,
  trailerFlag: grpcWeb.trailerFlag,
  trailerSerialize: grpcWeb.trailerSerialize,
} as const;
