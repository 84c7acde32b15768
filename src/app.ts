import type { IncomingHttpHeaders, ServerHttp2Stream } from "node:http2";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import type { Logger } from "pino";
import type { Authenticator } from "./auth/authenticator.js";
import type { EventBus } from "./bus/event-bus.js";
import type { Config } from "./config.js";
import { IngestService } from "./gen/eventservice/ingest/v1/ingest_pb.js";
import { EventService } from "./gen/gitpod/v1/event_pb.js";
import { createConnectHandler } from "./http/connect-handler.js";
import { Http1Exchange, Http2Exchange } from "./http/exchange.js";
import { Listener } from "./http/listener.js";
import { handleGrpcPublish, isFastPublish } from "./http/publish-edge.js";
import { type Req, type Res, writer } from "./http/types.js";
import { watchProtocolOf } from "./http/watch-protocols.js";
import { handleWatch } from "./http/watch-stream.js";
import { Metrics } from "./metrics.js";
import { createAuditService } from "./rpc/audit-service.js";
import { createErrorFunnel } from "./rpc/error-funnel.js";
import { createEventService } from "./rpc/event-service.js";
import { createIngestService, createPublishCall } from "./rpc/ingest-service.js";
import { authenticationGate } from "./rpc/principal-context.js";
import { RateLimiter } from "./rpc/rate-limiter.js";
import { WatchSessions } from "./rpc/watch-sessions.js";
import type { Store } from "./store/store.js";

export interface AppDeps {
  readonly config: Config;
  readonly logger: Logger;
  readonly bus: EventBus;
  readonly authenticator: Authenticator;
  /** The store behind the bus: readiness and the audit log. */
  readonly store: Store;
  /** Wall clock in ms since the epoch (injectable for credential expiry tests). */
  readonly now?: () => number;
}

export interface App {
  /** Starts serving on `config.port` (or `port`); resolves with the bound address. */
  listen(port?: number): Promise<AddressInfo>;
  /** Starts draining: `/readyz` answers 503 and new streams and publishes are refused. */
  drain(): void;
  /**
   * Graceful shutdown: `/readyz` turns 503, new streams are refused, open streams end with
   * `unavailable` (JSONL streams are aborted), connections drain; whatever is left after
   * `timeoutMs` is destroyed. Closes the bus and the authenticator.
   */
  close(timeoutMs?: number): Promise<void>;
  readonly listener: Listener;
  readonly sessions: WatchSessions;
  readonly metrics: Metrics;
}

const WATCH_PATHS = new Set([
  "/gitpod.v1.EventService/WatchEvents",
  "/api/gitpod.v1.EventService/WatchEvents",
]);

const PUBLISH_PATHS = new Set([
  "/eventservice.ingest.v1.IngestService/Publish",
  "/api/eventservice.ingest.v1.IngestService/Publish",
]);

function sendText(res: Res, status: number, body: string): void {
  const w = writer(res);
  w.writeHead(status, {
    "content-type": "text/plain; charset=utf-8",
    "content-length": String(Buffer.byteLength(body)),
    "cache-control": "no-store",
  });
  w.end(body);
}

/** Builds the server: every protocol on one port, health endpoints. Never listens by itself. */
export function createApp(deps: AppDeps): App {
  const { config, logger, bus, authenticator, store } = deps;
  let ready = false;
  let draining = false;
  let closing = false;
  const shutdown = new AbortController();
  const funnel = createErrorFunnel(logger);
  // Readiness asks the database at most once a second, and waits at most a second for it.
  let storeOk = true;
  let storeCheckedAt = Number.NEGATIVE_INFINITY;
  const storeHealthy = async (): Promise<boolean> => {
    const at = performance.now();
    if (at - storeCheckedAt < 1000) return storeOk;
    storeCheckedAt = at;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("ping timed out")), 1000);
    });
    try {
      await Promise.race([store.ping(), timeout]);
      storeOk = true;
    } catch (err) {
      if (storeOk) logger.warn({ err }, "database not ready");
      storeOk = false;
    } finally {
      clearTimeout(timer);
    }
    return storeOk;
  };
  const metrics = new Metrics(() => bus.subscriberCount);
  const sessions = new WatchSessions({
    bus,
    authenticator,
    logger,
    metrics,
    maxBacklog: config.watchMaxBacklog,
    maxStreamsPerSubject: config.watchMaxStreamsPerSubject,
    maxLifetimeMs: config.watchMaxLifetimeMs,
    now: deps.now ?? Date.now,
    monotonicNow: () => performance.now(),
  });
  const limiter = new RateLimiter(
    config.publishMaxEventsPerSecond,
    Math.max(config.publishMaxEventsPerSecond, 1000),
    () => performance.now(),
  );

  const publish = createPublishCall({ bus, isDraining: () => draining, limiter, metrics });
  const routes = (router: ConnectRouter) => {
    router.service(EventService, {
      ...createEventService(sessions, funnel),
      ...createAuditService({ store, funnel }),
    });
    router.service(IngestService, createIngestService(publish, funnel));
  };
  const connect = createConnectHandler({
    routes,
    prefixes: ["", "/api"],
    requestGate: authenticationGate(authenticator),
    readMaxBytes: config.requestMaxBytes,
    shutdownSignal: shutdown.signal,
    logger,
  });
  const streamDeps = {
    authenticator,
    sessions,
    funnel,
    logger,
    requestMaxBytes: config.requestMaxBytes,
  };

  const handler = (req: Req, res: Res) => {
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const path = q === -1 ? url : url.slice(0, q);
    if (path === "/healthz") return sendText(res, 200, "ok\n");
    if (path === "/readyz") {
      if (!ready || draining) return sendText(res, 503, draining ? "draining\n" : "starting\n");
      void storeHealthy().then((ok) =>
        ok ? sendText(res, 200, "ready\n") : sendText(res, 503, "database unavailable\n"),
      );
      return;
    }
    if (path === "/metrics") {
      void metrics.registry.metrics().then(
        (text) => {
          const w = writer(res);
          w.writeHead(200, { "content-type": metrics.registry.contentType });
          w.end(text);
        },
        (err: unknown) => {
          logger.error({ err }, "metrics failed");
          sendText(res, 500, "metrics failed\n");
        },
      );
      return;
    }
    const protocol = WATCH_PATHS.has(path)
      ? watchProtocolOf(req.headers, req.httpVersionMajor)
      : undefined;
    if (protocol !== undefined) {
      void handleWatch(new Http1Exchange(res), req, req, protocol, streamDeps);
      return;
    }
    if (!connect(req, res, path)) sendText(res, 404, "not found\n");
  };

  const publishDeps = {
    authenticator,
    publish,
    funnel,
    requestMaxBytes: config.requestMaxBytes,
  };
  // HTTP/2 watch streams and gRPC publishes are served on the raw stream API; everything else
  // on HTTP/2 goes through `handler` (compatibility API).
  const streamHandler = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders): boolean => {
    const target = headers[":path"] ?? "";
    const q = target.indexOf("?");
    const path = q === -1 ? target : target.slice(0, q);
    if (PUBLISH_PATHS.has(path)) {
      if (!isFastPublish(headers)) return false;
      void handleGrpcPublish(stream, headers, publishDeps);
      return true;
    }
    if (!WATCH_PATHS.has(path)) return false;
    const protocol = watchProtocolOf(headers, 2);
    if (protocol === undefined) return false;
    const head = { method: headers[":method"], headers };
    void handleWatch(new Http2Exchange(stream), head, stream, protocol, streamDeps);
    return true;
  };

  const listener = new Listener(handler, streamHandler, {
    headersTimeoutMs: config.headersTimeoutMs,
    requestTimeoutMs: config.requestTimeoutMs,
    keepAliveTimeoutMs: config.keepAliveTimeoutMs,
    maxConcurrentStreams: config.h2MaxConcurrentStreams,
    h2PingIntervalMs: config.h2PingIntervalMs,
    maxHeaderBytes: 16 * 1024,
  });

  return {
    listener,
    sessions,
    metrics,
    async listen(port = config.port) {
      const address = await listener.listen(port, config.host);
      ready = true;
      return address;
    },
    drain() {
      draining = true;
      sessions.drain();
    },
    async close(timeoutMs = config.shutdownTimeoutMs) {
      if (closing) return;
      closing = true;
      this.drain();
      const reason = new ConnectError("the server is shutting down", Code.Unavailable);
      shutdown.abort(reason);
      await bus.close(reason);
      await listener.close(timeoutMs);
      authenticator.close();
    },
  };
}
