import type { ConnectError } from "@connectrpc/connect";
import type { Logger } from "pino";
import { isExpected, toConnectError } from "../errors.js";

/** Maps anything a handler throws to what the caller sees, logging unexpected errors once. */
export type ErrorFunnel = (err: unknown, rpc: string) => ConnectError;

export function createErrorFunnel(logger: Logger): ErrorFunnel {
  return (err, rpc) => {
    if (!isExpected(err)) logger.error({ err, rpc }, "unexpected error");
    return toConnectError(err);
  };
}
