import { Code, ConnectError, type ConnectRouter, createConnectRouter } from "@connectrpc/connect";
import {
  compressionBrotli,
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from "@connectrpc/connect-node";
import type { Logger } from "pino";
import type { Req, Res } from "./types.js";

export interface ConnectHandlerOptions {
  readonly routes: (router: ConnectRouter) => void;
  /** Each procedure is served at its path under each prefix ("" and "/api", say). */
  readonly prefixes: readonly string[];
  readonly requestGate: NonNullable<Parameters<typeof createConnectRouter>[0]>["requestGate"];
  readonly readMaxBytes: number;
  readonly shutdownSignal: AbortSignal;
  readonly logger: Logger;
}

/**
 * Connect, gRPC and gRPC-Web for every route, as connect-node's `connectNodeAdapter` does it,
 * with two differences: one lookup serves every path prefix, and a failure to write a response
 * (almost always a client that went away) goes to our structured log at debug level instead of
 * the adapter's own console logging. Returns false when no route matches the path.
 */
export function createConnectHandler(
  options: ConnectHandlerOptions,
): (req: Req, res: Res, path: string) => boolean {
  const router = createConnectRouter({
    acceptCompression: [compressionGzip, compressionBrotli],
    readMaxBytes: options.readMaxBytes,
    shutdownSignal: options.shutdownSignal,
    ...(options.requestGate !== undefined && { requestGate: options.requestGate }),
  });
  options.routes(router);
  const paths = new Map<string, (typeof router.handlers)[number]>();
  for (const handler of router.handlers) {
    for (const prefix of options.prefixes) paths.set(prefix + handler.requestPath, handler);
  }
  const logger = options.logger;
  return (req, res, path) => {
    const handler = paths.get(path);
    if (handler === undefined) return false;
    const uReq = universalRequestFromNodeRequest(req, res, undefined, undefined);
    handler(uReq)
      .then((uRes) => universalResponseToNodeResponse(uRes, res))
      .catch((reason: unknown) => {
        const err = ConnectError.from(reason);
        if (err.code === Code.Aborted) return;
        logger.debug({ err, rpc: handler.method.name }, "response not written (client gone?)");
      });
    return true;
  };
}
