import type * as http from "node:http";
import type * as http2 from "node:http2";
import type { CorsPolicy } from "./cors.js";
import { Http1Exchange, Http2Exchange } from "./exchange.js";
import { handleGrpcPublish, isFastPublish, type PublishEdgeDeps } from "./publish-edge.js";
import type { StreamEdge } from "./stream-edge.js";
import type { RequestHandler } from "./web-app.js";

export interface RoutingOptions {
  /** Every server-streaming RPC. */
  readonly edge: StreamEdge;
  /** Paths of the unary Publish RPC, served on the raw HTTP/2 stream for binary gRPC. */
  readonly publishPaths: ReadonlySet<string>;
  readonly publish: PublishEdgeDeps;
  /** Everything else: fastify. */
  readonly web: RequestHandler;
  /** The CORS headers of the streaming edge's answers (fastify adds its own); none: no CORS. */
  readonly cors?: CorsPolicy;
}

function pathOf(target: string): string {
  const q = target.indexOf("?");
  return q === -1 ? target : target.slice(0, q);
}

/**
 * Where each request goes: streaming RPCs to the streaming edge (HTTP/1.1 and raw HTTP/2
 * streams), binary gRPC publishes on HTTP/2 to the publish edge, the rest to fastify.
 */
export function createRouting(options: RoutingOptions) {
  const { edge, publishPaths, publish, web, cors } = options;
  return {
    /** An HTTP/1.1 request. */
    onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
      const path = pathOf(req.url ?? "/");
      // CORS preflights of every path are fastify's (see CorsPolicy).
      if (edge.serves(path) && req.method !== "OPTIONS")
        void edge.serve(
          path,
          new Http1Exchange(res, cors?.responseHeaders(req.headers.origin)),
          req,
          req,
        );
      else web(req, res);
    },
    /** An HTTP/2 stream: true when taken on the raw API; false hands it to `web` (compat). */
    onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): boolean {
      const path = pathOf(headers[":path"] ?? "");
      if (edge.serves(path) && headers[":method"] !== "OPTIONS") {
        const head = { method: headers[":method"], headers };
        const exchange = new Http2Exchange(stream, cors?.responseHeaders(headers.origin));
        void edge.serve(path, exchange, head, stream);
        return true;
      }
      if (publishPaths.has(path) && isFastPublish(headers)) {
        void handleGrpcPublish(stream, headers, publish);
        return true;
      }
      return false;
    },
  };
}
