import type * as http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { ServiceError } from "../errors.js";
import {
  type PublishRequest,
  PublishRequestSchema,
  PublishResponseSchema,
} from "../gen/eventservice/ingest/v1/ingest_pb.js";
import type { CallAuthentication } from "../rpc/authenticate.js";
import type { ErrorFunnel } from "../rpc/error-funnel.js";
import type { PublishCall } from "../rpc/ingest-service.js";
import { readBody } from "./body.js";
import { type Caller, type Deadline, startCall } from "./call-start.js";
import { encodeEnvelope } from "./connect-protocol.js";
import { ignoreErrors, respondWhole } from "./exchange.js";
import { unwrap } from "./wire/envelope.js";
import { grpcStatus } from "./wire/grpc-status.js";
import { grpcTimeoutMs } from "./wire/timeouts.js";

export interface PublishEdgeDeps {
  readonly auth: CallAuthentication;
  readonly publish: PublishCall;
  readonly funnel: ErrorFunnel;
  /** Largest request message accepted, in bytes (as the Connect runtime's readMaxBytes). */
  readonly requestMaxBytes: number;
}

const CONTENT_TYPE = "application/grpc+proto";

/**
 * Whether this edge serves a request with these headers: gRPC in binary, uncompressed, POST.
 * Everything else (Connect, gRPC-Web, JSON, compressed messages) is served by the Connect
 * runtime with the same PublishCall.
 */
export function isFastPublish(headers: http2.IncomingHttpHeaders): boolean {
  const ct = headers["content-type"];
  return (
    headers[":method"] === "POST" &&
    (ct === "application/grpc" || ct === "application/grpc+proto") &&
    (headers["grpc-encoding"] === undefined || headers["grpc-encoding"] === "identity")
  );
}

/** Reads the one enveloped message of a gRPC request, refusing one over `maxBytes`. */
async function readMessage(stream: http2.ServerHttp2Stream, maxBytes: number): Promise<Buffer> {
  let size = -1; // the envelope's message length, once its 5-byte prefix has arrived
  const body = await readBody(stream, maxBytes + 5, (chunks, length) => {
    if (length < 5) return;
    if (size < 0) {
      const head = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, length);
      size = head.readUInt32BE(1);
    }
    if (size > maxBytes) {
      // The Connect runtime's words for the same case.
      throw new ConnectError(
        `message size ${size} is larger than configured readMaxBytes ${maxBytes}`,
        Code.ResourceExhausted,
      );
    }
    if (length > 5 + size) {
      throw new ServiceError(
        "invalid_argument",
        "protocol error: expected exactly one request message",
      );
    }
  });
  const { flags, payload } = unwrap(body);
  // Compressed messages are the Connect runtime's (isFastPublish checked the header).
  if (flags !== 0) {
    throw new ServiceError(
      "invalid_argument",
      "protocol error: compressed message without an encoding",
    );
  }
  return payload;
}

/**
 * IngestService.Publish over gRPC on the raw HTTP/2 stream: the hot path of every backend that
 * publishes. It does what the Connect runtime's gRPC handler does for a unary call (status in
 * trailers, or Trailers-Only for an error; the client's deadline), without its per-call
 * machinery, which cost about 0.4 ms of CPU per publish (a quarter of a single-event publish).
 */
export async function handleGrpcPublish(
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
  deps: PublishEdgeDeps,
): Promise<void> {
  stream.on("error", ignoreErrors);
  let answered = false;
  let deadline: Deadline | undefined;
  // Aborted when the caller stops waiting (deadline, reset): as the Connect runtime's ctx.signal.
  const gone = new AbortController();
  const leave = () => gone.abort(new ServiceError("canceled", "the client went away"));
  stream.once("close", leave);
  const fail = (err: unknown) => {
    if (answered || stream.destroyed || stream.closed) return;
    answered = true;
    const status = grpcStatus(deps.funnel(err, "Publish"));
    // Trailers-Only: the status travels in the only header block.
    respondWhole(stream, { ":status": 200, "content-type": CONTENT_TYPE, ...status });
  };
  try {
    const call = startCall(headers, {
      timeoutMs: grpcTimeoutMs,
      onDeadline: (timedOut) => {
        gone.abort(timedOut);
        fail(timedOut);
      },
      auth: deps.auth,
    });
    deadline = call.deadline;
    const principal = (await call.principal) as Caller;
    const message = await readMessage(stream, deps.requestMaxBytes);
    let request: PublishRequest;
    try {
      request = fromBinary(PublishRequestSchema, message);
    } catch (err) {
      throw new ServiceError(
        "invalid_argument",
        `request is not a valid PublishRequest: ${(err as Error).message}`,
      );
    }
    const response = await deps.publish(principal, request, gone.signal);
    if (answered || stream.destroyed || stream.closed) return;
    answered = true;
    stream.respond({ ":status": 200, "content-type": CONTENT_TYPE }, { waitForTrailers: true });
    stream.once("wantTrailers", () => stream.sendTrailers(grpcStatus(undefined)));
    stream.end(
      encodeEnvelope(0, toBinary(PublishResponseSchema, create(PublishResponseSchema, response))),
    );
  } catch (err) {
    fail(err);
  } finally {
    deadline?.clear();
    stream.off("close", leave);
  }
}
