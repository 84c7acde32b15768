import type { IncomingHttpHeaders } from "node:http";
import { ServiceError } from "../../errors.js";
import { connectProtocol, grpcProtocol } from "../connect-protocol.js";

/**
 * A deadline header parsed by connect-es, with no upper bound (the edge handles long ones);
 * a malformed one is invalid_argument naming the header.
 */
function timeoutFrom(
  parse: typeof connectProtocol.parseTimeout,
  name: string,
  value: string | string[] | undefined,
): number | undefined {
  if (typeof value !== "string") return undefined;
  const { timeoutMs, error } = parse(value, Number.POSITIVE_INFINITY);
  if (error !== undefined) {
    throw new ServiceError("invalid_argument", `protocol error: invalid ${name} "${value}"`);
  }
  return timeoutMs;
}

/** The deadline of a Connect (or JSONL) call, in ms, if it has one. */
export const connectTimeoutMs = (headers: IncomingHttpHeaders) =>
  timeoutFrom(connectProtocol.parseTimeout, "connect-timeout-ms", headers["connect-timeout-ms"]);
/** The deadline of a gRPC or gRPC-Web call, in ms, if it has one. */
export const grpcTimeoutMs = (headers: IncomingHttpHeaders) =>
  timeoutFrom(grpcProtocol.parseTimeout, "grpc-timeout", headers["grpc-timeout"]);
