import type { AddressInfo } from "node:net";
import type { DescService } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import type { Logger } from "pino";
import type { Authenticator } from "./auth/authenticator.js";
import type { EventBus } from "./bus/event-bus.js";
import type { Config } from "./config.js";
import { shuttingDown, toConnectError } from "./errors.js";
import { FeedService } from "./gen/eventservice/feed/v1/feed_pb.js";
import { IngestService } from "./gen/eventservice/ingest/v1/ingest_pb.js";
import { EventService } from "./gen/gitpod/v1/event_pb.js";
import { Health } from "./gen/grpc/health/v1/health_pb.js";
import * as reflectionV1 from "./gen/grpc/reflection/v1/reflection_pb.js";
import * as reflectionV1alpha from "./gen/grpc/reflection/v1alpha/reflection_pb.js";
import { HealthMonitor } from "./health/health-monitor.js";
import { Readiness } from "./health/readiness.js";
import { CorsPolicy } from "./http/cors.js";
import { FlushScheduler } from "./http/flush-scheduler.js";
import { Listener } from "./http/listener.js";
import { createRouting } from "./http/routing.js";
import { StreamEdge } from "./http/stream-edge.js";
import { createWebApp } from "./http/web-app.js";
import { respellGrpcMessage } from "./http/wire/grpc-status.js";
import { Metrics } from "./metrics.js";
import { createAuditService } from "./rpc/audit-service.js";
import { createCallAuthentication } from "./rpc/authenticate.js";
import { createErrorFunnel, type ErrorFunnel } from "./rpc/error-funnel.js";
import { feedWatchMethod } from "./rpc/feed-service.js";
import { createHealthCheck, healthWatchMethod } from "./rpc/health-service.js";
import { createIngestService, createPublishCall, type PublishCall } from "./rpc/ingest-service.js";
import { RateLimiter } from "./rpc/rate-limiter.js";
import { createReflectionServices, DescriptorIndex } from "./rpc/reflection-service.js";
import { watchEventsMethod } from "./rpc/watch-events.js";
import { FeedSessions } from "./session/feed-sessions.js";
import { WatchSessions } from "./session/watch-sessions.js";
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
   * `unavailable` (JSONL streams are aborted). For `drainMs` (default 0) the port stays open,
   * answering `/readyz` 503 and refusing new streams and publishes, so that load balancers see
   * the server leave; then it stops listening and connections drain; whatever is left after
   * `timeoutMs` (counted from the call) is destroyed. Closes the bus and the authenticator.
   */
  close(timeoutMs?: number, drainMs?: number): Promise<void>;
  readonly listener: Listener;
  readonly sessions: WatchSessions;
  readonly health: HealthMonitor;
  readonly metrics: Metrics;
}

/** Each RPC is served at its path and under /api (the official SDKs' base URL). */
const PREFIXES = ["", "/api"] as const;

/** The services this server implements: health reports them, reflection describes them. */
const SERVICES = [EventService, IngestService, FeedService, Health] as const;

/** Reflection over the services and itself (v1 and v1alpha), when it is on. */
function addReflection(
  router: ConnectRouter,
  reflection: readonly DescService[],
  config: Config,
): void {
  const index = new DescriptorIndex([...SERVICES, ...reflection]);
  const impl = createReflectionServices(index, config.reflectionMaxRequestsPerStream);
  router.service(reflectionV1.ServerReflection, impl.v1);
  router.service(reflectionV1alpha.ServerReflection, impl.v1alpha);
}

/** Publish, as both the publish edge and the Connect runtime serve it. */
function publishCall(deps: AppDeps, readiness: Readiness, metrics: Metrics): PublishCall {
  const { config, bus, authenticator } = deps;
  return createPublishCall({
    bus,
    isDraining: () => readiness.isDraining,
    limiter: new RateLimiter(config.publishMaxEventsPerSecond, config.publishBurstEvents, () =>
      performance.now(),
    ),
    metrics,
    isValid: (principal) => authenticator.isValid(principal),
    now: deps.now ?? Date.now,
    maxClockSkewMs: config.publishMaxClockSkewMs,
  });
}

/** The unary RPCs, on fastify through the Connect runtime (the streaming ones are the edge's). */
function unaryRoutes(parts: {
  readonly store: AppDeps["store"];
  readonly funnel: ErrorFunnel;
  readonly publish: PublishCall;
  readonly health: HealthMonitor;
  readonly reflection: readonly DescService[];
  readonly config: Config;
}): (router: ConnectRouter) => void {
  const { store, funnel, publish, health, reflection, config } = parts;
  const audit = createAuditService({ store, funnel });
  return (router) => {
    router.rpc(EventService.method.listAuditLogs, audit.listAuditLogs);
    router.rpc(EventService.method.getAuditLog, audit.getAuditLog);
    router.service(IngestService, createIngestService(publish, funnel));
    router.rpc(Health.method.check, createHealthCheck(health, funnel).check);
    if (reflection.length > 0) addReflection(router, reflection, config);
  };
}

/** The connection limits of the one port, from the configuration. */
function listenerLimits(config: Config) {
  return {
    headersTimeoutMs: config.headersTimeoutMs,
    requestTimeoutMs: config.requestTimeoutMs,
    keepAliveTimeoutMs: config.keepAliveTimeoutMs,
    maxConcurrentStreams: config.h2MaxConcurrentStreams,
    h2PingIntervalMs: config.h2PingIntervalMs,
    h2IdleTimeoutMs: config.h2IdleTimeoutMs,
    maxHeaderBytes: 16 * 1024,
  } as const;
}

/**
 * The shutdown after `drain`: open calls are told why, health watchers see NOT_SERVING before
 * their stream ends, the bus ends every subscription, the port lingers `drainMs` (within
 * `timeoutMs`), then the listener gets what is left of `timeoutMs` (counted from `startedMs`,
 * performance.now() when the close began) to drain its connections.
 */
async function closeInOrder(
  parts: {
    readonly shutdown: AbortController;
    readonly health: HealthMonitor;
    readonly bus: EventBus;
    readonly listener: Listener;
    readonly web: { close(): Promise<void> };
    readonly authenticator: Authenticator;
  },
  startedMs: number,
  timeoutMs: number,
  drainMs: number,
): Promise<void> {
  const { shutdown, health, bus, listener, web, authenticator } = parts;
  const reason = toConnectError(shuttingDown());
  shutdown.abort(reason);
  // Health watchers see NOT_SERVING before their stream ends: the status is flushed in the
  // next turn of the event loop, before `close` cuts what is still pending.
  await health.refresh();
  await new Promise<void>((resolve) => setImmediate(resolve));
  health.close(reason);
  await bus.close(reason);
  const lingerMs = Math.min(drainMs, timeoutMs);
  if (lingerMs > 0) await new Promise<void>((resolve) => setTimeout(resolve, lingerMs));
  await listener.close(Math.max(0, timeoutMs - (performance.now() - startedMs)));
  await web.close();
  authenticator.close();
}

/**
 * Builds the server: every RPC on every protocol on one port (see README "Architecture"), and
 * the health endpoints. Never listens by itself.
 */
export async function createApp(deps: AppDeps): Promise<App> {
  const { config, logger, bus, authenticator, store } = deps;
  const shutdown = new AbortController();
  const funnel = createErrorFunnel(logger);
  const reflection = config.grpcReflection
    ? [reflectionV1.ServerReflection, reflectionV1alpha.ServerReflection]
    : [];
  // Health checks (Kubernetes probes, load balancers) and the public schema need no credential.
  const auth = createCallAuthentication(
    authenticator,
    new Set([Health.typeName, ...reflection.map((s) => s.typeName)]),
  );
  const readiness = new Readiness({ ping: () => store.ping(), logger });
  const health = new HealthMonitor({
    readiness,
    services: SERVICES.map((s) => s.typeName),
    maxWatches: config.healthMaxWatches,
  });
  const metrics = new Metrics(() => bus.subscriberCount, {
    healthWatches: () => health.watchCount,
    feedReplays: () => feed.replaysInProgress,
  });
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
  const publish = publishCall(deps, readiness, metrics);

  const feed = new FeedSessions({
    bus,
    sessions,
    maxBacklog: config.watchMaxBacklog,
    checkpointMs: config.feedCheckpointMs,
    maxReplaysPerSubject: config.feedMaxReplaysPerSubject,
    maxReplays: config.feedMaxReplays,
  });
  const cors = new CorsPolicy(config.corsOrigins);
  // The server-streaming methods, on the streaming edge; the unary ones, on fastify.
  const edge = new StreamEdge({
    auth,
    funnel,
    scheduler: new FlushScheduler(),
    requestMaxBytes: config.requestMaxBytes,
    prefixes: PREFIXES,
    keepAliveMs: config.jsonlKeepAliveMs,
    onKeepAlive: () => {
      metrics.keepAlives++;
    },
  });
  edge.add(watchEventsMethod(sessions));
  edge.add(feedWatchMethod(feed));
  edge.add(healthWatchMethod(health));
  const web = await createWebApp({
    logger,
    routes: unaryRoutes({ store, funnel, publish, health, reflection, config }),
    prefixes: PREFIXES,
    requestGate: auth.requestGate,
    readMaxBytes: config.requestMaxBytes,
    shutdownSignal: shutdown.signal,
    readiness,
    cors,
    console: config.console,
    metrics: async () => ({
      contentType: metrics.registry.contentType,
      text: await metrics.registry.metrics(),
    }),
  });

  const routing = createRouting({
    edge,
    publishPaths: new Set(PREFIXES.map((p) => `${p}/${IngestService.typeName}/Publish`)),
    publish: { auth, publish, funnel, requestMaxBytes: config.requestMaxBytes },
    web: web.handler,
    cors,
  });
  const listener = new Listener({
    onRequest: routing.onRequest,
    onStream: routing.onStream,
    onCompatRequest: (req, res) => {
      respellGrpcMessage(res);
      web.handler(req, res);
    },
    ...listenerLimits(config),
  });

  let closing = false;
  const drain = () => {
    readiness.markDraining();
    sessions.drain();
    void health.refresh();
  };
  return {
    listener,
    sessions,
    health,
    metrics,
    async listen(port = config.port) {
      const address = await listener.listen(port, config.host);
      readiness.markStarted();
      void health.refresh();
      return address;
    },
    drain,
    async close(timeoutMs = config.shutdownTimeoutMs, drainMs = 0) {
      if (closing) return;
      closing = true;
      const started = performance.now();
      drain();
      await closeInOrder(
        { shutdown, health, bus, listener, web, authenticator },
        started,
        timeoutMs,
        drainMs,
      );
    },
  };
}
