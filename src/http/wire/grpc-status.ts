import type { Http2ServerResponse } from "node:http2";
import type { ConnectError } from "@connectrpc/connect";
import { grpcProtocol } from "../connect-protocol.js";

/**
 * grpc-message as the gRPC spec percent-encodes it: only bytes outside printable ASCII, and "%".
 * connect-es encodes with encodeURIComponent, which @grpc/grpc-js (it decodes with decodeURI)
 * shows as "%3A" for every ":" of our field-naming messages.
 */
function grpcMessage(message: string): string {
  return message.replace(/[^\x20-\x24\x26-\x7e]+/gu, (m) => encodeURIComponent(m));
}

/**
 * Makes the gRPC answers that connect-node writes through Node's compatibility API (the Connect
 * router: unary calls, health, reflection) spell grpc-message as the streaming edge does (see
 * `grpcMessage`), so that every path of the port says the same thing the same way. Re-encodes
 * the header (trailers-only answers) and the trailer.
 */
export function respellGrpcMessage(res: Http2ServerResponse): void {
  const fix = (headers: unknown) => {
    if (headers === null || typeof headers !== "object") return;
    const h = headers as Record<string, unknown>;
    const value = h["grpc-message"];
    if (typeof value !== "string") return;
    try {
      h["grpc-message"] = grpcMessage(decodeURIComponent(value));
    } catch {
      // Not percent-encoded as connect-es does it: leave it as it is.
    }
  };
  // Wrapped per response (not on the prototype): only this server's answers are touched.
  const target = res as unknown as {
    writeHead: (...args: unknown[]) => unknown;
    addTrailers: (headers: unknown) => void;
  };
  const writeHead = target.writeHead.bind(res);
  target.writeHead = (...args) => {
    for (const a of args) fix(a);
    return writeHead(...args);
  };
  const addTrailers = target.addTrailers.bind(res);
  target.addTrailers = (headers) => {
    fix(headers);
    addTrailers(headers);
  };
}

/** grpc-status, grpc-message and details (connect-es' setTrailerStatus) as a plain record. */
export function grpcStatus(err: ConnectError | undefined): Record<string, string> {
  // Success is one field (as setTrailerStatus writes it): no Headers object per answer.
  if (err === undefined) return { "grpc-status": "0" };
  const fields: Record<string, string> = {};
  grpcProtocol.setTrailerStatus(new Headers(), err).forEach((value, key) => {
    fields[key] = value;
  });
  fields["grpc-message"] = grpcMessage(err.rawMessage);
  return fields;
}

/**
 * A gRPC (or gRPC-Web) refusal before the stream started, Trailers-Only: the status travels in
 * the only header block, with the stream's head.
 */
export function trailersOnly(
  head: { readonly headers: Record<string, string> },
  err: ConnectError,
): { status: number; headers: Record<string, string> } {
  return { status: 200, headers: { ...head.headers, ...grpcStatus(err) } };
}
