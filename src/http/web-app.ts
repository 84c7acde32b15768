import { existsSync } from "node:fs";
import type * as http from "node:http";
import type * as http2 from "node:http2";
import { fileURLToPath } from "node:url";
import type { ConnectRouter, ConnectRouterOptions } from "@connectrpc/connect";
import { fastifyConnectPlugin } from "@connectrpc/connect-fastify";
import fastifyCors from "@fastify/cors";
import fastifyStatic from "@fastify/static";
import { type FastifyReply, fastify, LogController } from "fastify";
import type { Logger } from "pino";
import type { Readiness } from "../health/readiness.js";
import { clampDeadlineHeaders } from "./call-start.js";
import type { CorsPolicy } from "./cors.js";

/** What serves the requests the streaming edges decline, HTTP/1.1 or HTTP/2 compatibility. */
export type RequestHandler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

export interface WebAppOptions {
  /** The one structured logger; fastify logs through it. */
  readonly logger: Logger;
  /** The unary RPCs (Connect, gRPC, gRPC-Web; JSON and binary; compressed). */
  readonly routes: (router: ConnectRouter) => void;
  /** Each RPC is served at its path under each prefix ("" and "/api", say). */
  readonly prefixes: readonly string[];
  readonly requestGate: NonNullable<ConnectRouterOptions["requestGate"]>;
  /** Largest request message, in bytes, after decompression. */
  readonly readMaxBytes: number;
  /** Aborts running calls on shutdown. */
  readonly shutdownSignal: AbortSignal;
  readonly readiness: Readiness;
  /** Serve the live console (dist/console, built by `npm run build`) at /console/. */
  readonly console: boolean;
  /** Browser origins: preflights for every path, headers on fastify's responses. */
  readonly cors: CorsPolicy;
  /** The Prometheus exposition for GET /metrics. */
  readonly metrics: () => Promise<{ contentType: string; text: string }>;
}

export interface WebApp {
  /** Serves one request (the listener hands it over; fastify never listens itself). */
  readonly handler: RequestHandler;
  close(): Promise<void>;
}

function text(reply: FastifyReply, status: number, body: string): FastifyReply {
  return reply
    .code(status)
    .header("content-type", "text/plain; charset=utf-8")
    .header("cache-control", "no-store")
    .send(body);
}

/**
 * fastify, the application framework for everything that is not a hot streaming path: the
 * unary RPCs through connect-fastify, `/healthz`, `/readyz`, `/metrics`. It runs behind the
 * one-port listener, which hands each request to `fastify.routing` (fastify's own entry for a
 * request); fastify serves HTTP/1.1 and HTTP/2 requests alike (it checks the HTTP version per
 * request).
 */
export async function createWebApp(options: WebAppOptions): Promise<WebApp> {
  const app = fastify({
    loggerInstance: options.logger,
    // One line per stream or per problem, never per request.
    logController: new LogController({ disableRequestLogging: true }),
  });

  if (!options.cors.disabled) await app.register(fastifyCors, options.cors.fastifyOptions);
  if (options.console) {
    // dist/console from src/http (tests) and dist/http (the build) alike.
    const root = fileURLToPath(new URL("../../dist/console/", import.meta.url));
    if (existsSync(root)) {
      await app.register(fastifyStatic, { root, prefix: "/console/", index: "index.html" });
      app.get("/console", async (_req, reply) => reply.redirect("/console/", 301));
    } else {
      options.logger.warn({ root }, "console not built (npm run build); /console/ is off");
    }
  }
  app.get("/healthz", async (_req, reply) => text(reply, 200, "ok\n"));
  app.get("/readyz", async (_req, reply) => {
    const state = await options.readiness.check();
    if (state.ready) return text(reply, 200, "ready\n");
    // Probes and load balancers may ask again soon: a store outage may be over by then, and a
    // draining server is still here to say no until it stops listening.
    return text(reply.header("retry-after", "1"), 503, `${state.reason}\n`);
  });
  app.get("/metrics", async (_req, reply) => {
    try {
      const { contentType, text: body } = await options.metrics();
      return reply.code(200).header("content-type", contentType).send(body);
    } catch (err) {
      options.logger.error({ err }, "metrics failed");
      return text(reply, 500, "metrics failed\n");
    }
  });

  for (const prefix of options.prefixes) {
    await app.register(
      async (scope) => {
        scope.addHook("onRequest", async (req) => clampDeadlineHeaders(req.raw.headers));
        await scope.register(fastifyConnectPlugin, {
          routes: options.routes,
          requestGate: options.requestGate,
          readMaxBytes: options.readMaxBytes,
          shutdownSignal: options.shutdownSignal,
        });
      },
      { prefix },
    );
  }
  app.setNotFoundHandler(async (_req, reply) => text(reply, 404, "not found\n"));
  await app.ready();
  return {
    // fastify's own entry for a request (what its server would call): the listener hands
    // requests over, so fastify's server is made but never listens.
    handler: (req, res) => app.routing(req as http.IncomingMessage, res as http.ServerResponse),
    close: () => app.close(),
  };
}
