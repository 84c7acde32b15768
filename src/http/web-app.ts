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
import { MAX_TIMER_MS } from "../long-timer.js";
import type { CorsPolicy } from "./cors.js";
import { connectTimeoutMs, grpcTimeoutMs } from "./wire/timeouts.js";

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

/**
 * connect-es arms one timer for a unary call's deadline, and one longer than a timer can hold
 * fires at once (TimeoutOverflowWarning): a deadline header beyond MAX_TIMER_MS (about 24.8 days,
 * longer than any unary call) is clamped to it, in a form the header allows. Headers are read
 * as the streaming edge reads them; malformed ones are left for connect-es to refuse.
 */
function clampDeadlines(headers: http.IncomingHttpHeaders): void {
  const ms = (read: (h: http.IncomingHttpHeaders) => number | undefined) => {
    try {
      return read(headers) ?? 0;
    } catch {
      return 0;
    }
  };
  if (ms(connectTimeoutMs) > MAX_TIMER_MS) headers["connect-timeout-ms"] = String(MAX_TIMER_MS);
  if (ms(grpcTimeoutMs) > MAX_TIMER_MS) {
    headers["grpc-timeout"] = `${Math.floor(MAX_TIMER_MS / 60_000)}M`;
  }
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
 * one-port listener: fastify's `serverFactory` hands us its request handler and a server
 * object that never listens, and fastify serves HTTP/1.1 and HTTP/2 requests alike (it checks
 * the HTTP version per request).
 */
export async function createWebApp(options: WebAppOptions): Promise<WebApp> {
  let handler: RequestHandler | undefined;
  const app = fastify({
    loggerInstance: options.logger,
    // One line per stream or per problem, never per request.
    logController: new LogController({ disableRequestLogging: true }),
    serverFactory: (h) => {
      handler = h as RequestHandler;
      // Never listens: fastify only needs an object to own.
      return { on() {}, close: (cb?: () => void) => cb?.() } as unknown as http.Server;
    },
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
        scope.addHook("onRequest", async (req) => clampDeadlines(req.raw.headers));
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
    handler: handler as RequestHandler,
    close: () => app.close(),
  };
}
