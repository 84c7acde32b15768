import { MAX_PUBLISH_BATCH } from "./watch/validate.js";

/** Every setting of the server, parsed once from the environment and frozen. */
export interface Config {
  /** TCP port for every protocol; 0 picks a free one. */
  readonly port: number;
  /** Address to bind. */
  readonly host: string;
  readonly production: boolean;
  /** pino level. */
  readonly logLevel: string;
  /** Path of the JSON token file, watched and reloaded. */
  readonly authTokensFile: string | undefined;
  /** HS256 secret for JWTs. */
  readonly authJwtSecret: string | undefined;
  /** JWKS URL for RS256/ES256 JWTs. */
  readonly authJwksUrl: string | undefined;
  readonly authJwtIssuer: string | undefined;
  readonly authJwtAudience: string | undefined;
  /** JWTs without `exp` are refused (they would never expire); false is an explicit opt-out. */
  readonly authJwtRequireExp: boolean;
  /** No token source configured and not production: demo organization with fixed tokens. */
  readonly devMode: boolean;
  /** Time the process has to finish open work after SIGTERM/SIGINT before it exits anyway. */
  readonly shutdownTimeoutMs: number;
  /**
   * After SIGTERM, how long the server goes on accepting connections while it drains, in ms:
   * `/readyz` answers 503, new streams and publishes `unavailable`, so that load balancers see
   * it leave before its port closes. Within shutdownTimeoutMs.
   */
  readonly shutdownDrainMs: number;
  /** Events one stream may fall behind by before it is ended with resource_exhausted. */
  readonly watchMaxBacklog: number;
  /** Largest request message accepted, in bytes (after decompression). */
  readonly requestMaxBytes: number;
  /** Streams one subject may have open at once; more are refused with resource_exhausted. */
  readonly watchMaxStreamsPerSubject: number;
  /** Longest a stream lives before it ends with unavailable (0: no limit); jittered down by up to 10%. */
  readonly watchMaxLifetimeMs: number;
  /** A feed stream sends a checkpoint after this long without a message, in ms (0: never). */
  readonly feedCheckpointMs: number;
  /** Feed streams replaying from a cursor at once, per subject; more: resource_exhausted. */
  readonly feedMaxReplaysPerSubject: number;
  /** Feed streams replaying from a cursor at once, in this process; more: resource_exhausted. */
  readonly feedMaxReplays: number;
  /** grpc.health.v1.Health/Watch streams open at once (no credential needed); more: resource_exhausted. */
  readonly healthMaxWatches: number;
  /** An HTTP/2 connection with no open stream for this long is closed with GOAWAY, in ms (0: never). */
  readonly h2IdleTimeoutMs: number;
  /** gRPC reflection requests one ServerReflectionInfo stream may make; past it, resource_exhausted. */
  readonly reflectionMaxRequestsPerStream: number;
  /** Interval of the 64-space keep-alive on idle JSONL streams, in ms (0: off). */
  readonly jsonlKeepAliveMs: number;
  /** Events per second one publisher may publish, sustained (0: no limit); bursts: see below. */
  readonly publishMaxEventsPerSecond: number;
  /**
   * Events one publisher may publish at once before the rate applies (derived, not set): one
   * second's worth, and never fewer than a whole publish batch (MAX_PUBLISH_BATCH), so that
   * every valid batch can pass however low the rate.
   */
  readonly publishBurstEvents: number;
  /** How far a published event's `occurred_at` may be ahead of the server's clock, in ms. */
  readonly publishMaxClockSkewMs: number;
  /** Time a connection has to send its first request's headers (and each HTTP/1.1 request's). */
  readonly headersTimeoutMs: number;
  /**
   * Time a request may take to arrive whole, in ms: HTTP/1.1 answers 408, HTTP/2 resets the
   * stream (CANCEL). Responses (streams) are not limited.
   */
  readonly requestTimeoutMs: number;
  /** Idle time after which a keep-alive HTTP/1.1 connection is closed. */
  readonly keepAliveTimeoutMs: number;
  /** HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS per connection. */
  readonly h2MaxConcurrentStreams: number;
  /** Interval of HTTP/2 PINGs; a connection that has not answered the previous one is closed (0: off). */
  readonly h2PingIntervalMs: number;
  /** Folder of the embedded SQLite database (unused with a database URL). */
  readonly dataDir: string;
  /** PostgreSQL URL: the store shared by replicas; absent means the embedded SQLite store. */
  readonly databaseUrl: string | undefined;
  /** SQLite commit durability: full (power loss) or normal (process crash). */
  readonly sqliteSynchronous: "full" | "normal";
  /** Browser origins allowed by CORS (`*`: any); empty: no CORS headers at all. */
  readonly corsOrigins: readonly string[];
  /** Serve the live console at /console/. */
  readonly console: boolean;
  /** Serve gRPC server reflection (the schema is public; operators may hide it). */
  readonly grpcReflection: boolean;
  /** How long the event log keeps events. */
  readonly eventLogRetentionMs: number;
  /** How long the audit log keeps entries, in days. */
  readonly auditLogRetentionDays: number;
}

/** Loopback addresses and names: 127.0.0.0/8, ::1, localhost. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

function urlHost(url: string): string {
  try {
    return new URL(url).hostname;
  } catch {
    return "";
  }
}

/** Thrown by loadConfig with every problem found, one per line. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n  - ${problems.join("\n  - ")}`);
  }
}

type Env = Readonly<Record<string, string | undefined>>;

/**
 * Reads the configuration from environment variables (see the README for each one, with its
 * default and unit). Throws ConfigError listing every invalid value at once.
 */
export function loadConfig(env: Env): Config {
  const problems: string[] = [];
  const str = (name: string): string | undefined => {
    const v = env[name]?.trim();
    return v === undefined || v === "" ? undefined : v;
  };
  const int = (name: string, def: number, min: number, max: number): number => {
    const raw = str(name);
    if (raw === undefined) return def;
    const n = Number(raw);
    if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n) || n < min || n > max) {
      problems.push(`${name}: expected an integer from ${min} to ${max}, got "${raw}"`);
      return def;
    }
    return n;
  };

  const production = str("NODE_ENV") === "production";
  const authTokensFile = str("AUTH_TOKENS_FILE");
  const authJwtSecret = str("AUTH_JWT_SECRET");
  const authJwksUrl = str("AUTH_JWKS_URL");
  if (authJwtSecret !== undefined && authJwtSecret.length < 32) {
    problems.push("AUTH_JWT_SECRET: must be at least 32 characters (HS256 needs 256 bits)");
  }
  if (authJwksUrl !== undefined && !/^https?:\/\/\S+$/.test(authJwksUrl)) {
    problems.push(`AUTH_JWKS_URL: expected an http(s) URL, got "${authJwksUrl}"`);
  } else if (authJwksUrl?.startsWith("http://") && !isLoopback(urlHost(authJwksUrl))) {
    // Keys fetched in the clear can be swapped on the way: whoever does that mints tokens.
    problems.push(
      `AUTH_JWKS_URL: plain http:// is allowed for loopback hosts only (127.0.0.1, ::1, localhost); use https://, got "${authJwksUrl}"`,
    );
  }
  if (authJwtSecret !== undefined && authJwksUrl !== undefined) {
    problems.push("AUTH_JWT_SECRET and AUTH_JWKS_URL: set one of them, not both");
  }
  const hasTokenSource =
    authTokensFile !== undefined || authJwtSecret !== undefined || authJwksUrl !== undefined;
  if (production && !hasTokenSource) {
    problems.push(
      "NODE_ENV=production needs a token source: set AUTH_TOKENS_FILE, AUTH_JWT_SECRET or AUTH_JWKS_URL",
    );
  }
  const devMode = !production && !hasTokenSource;
  const nodeEnv = str("NODE_ENV");
  if (devMode && nodeEnv !== undefined && nodeEnv !== "development" && nodeEnv !== "test") {
    // A mistyped "production" must not fall into dev mode and its well-known tokens.
    problems.push(
      `NODE_ENV=${nodeEnv}: expected production, development or test; without a token source this would be dev mode, with well-known tokens. For production set NODE_ENV=production and AUTH_TOKENS_FILE, AUTH_JWT_SECRET or AUTH_JWKS_URL`,
    );
  }
  const host = str("HOST") ?? (devMode ? "127.0.0.1" : "0.0.0.0");
  if (devMode && !isLoopback(host)) {
    problems.push(
      `HOST=${host}: dev mode (no token source) serves well-known tokens, so it binds loopback only (127.0.0.1, ::1, localhost). To serve the network, configure tokens: AUTH_TOKENS_FILE, AUTH_JWT_SECRET or AUTH_JWKS_URL, and NODE_ENV=production`,
    );
  }
  const databaseUrl = str("DATABASE_URL");
  if (databaseUrl !== undefined && !/^postgres(ql)?:\/\/\S+$/.test(databaseUrl)) {
    problems.push("DATABASE_URL: expected postgres://user@host:port/database");
  }
  const sync = str("SQLITE_SYNCHRONOUS") ?? "full";
  if (sync !== "full" && sync !== "normal") {
    problems.push(`SQLITE_SYNCHRONOUS: expected full or normal, got "${sync}"`);
  }
  const sqliteSynchronous = sync === "normal" ? "normal" : "full";
  const corsOrigins = (str("CORS_ORIGINS") ?? "")
    .split(",")
    .map((o) => o.trim().replace(/\/$/, ""))
    .filter((o) => o !== "");
  for (const origin of corsOrigins) {
    if (origin !== "*" && !/^https?:\/\/[^/\s]+$/.test(origin)) {
      problems.push(
        `CORS_ORIGINS: expected * or origins like https://app.example.com, got "${origin}"`,
      );
    }
  }
  const consoleSetting = str("CONSOLE") ?? (production ? "off" : "on");
  if (consoleSetting !== "on" && consoleSetting !== "off") {
    problems.push(`CONSOLE: expected on or off, got "${consoleSetting}"`);
  }
  const reflection = str("GRPC_REFLECTION") ?? "on";
  if (reflection !== "on" && reflection !== "off") {
    problems.push(`GRPC_REFLECTION: expected on or off, got "${reflection}"`);
  }
  const jwtRequireExp = str("AUTH_JWT_REQUIRE_EXP") ?? "on";
  if (jwtRequireExp !== "on" && jwtRequireExp !== "off") {
    problems.push(`AUTH_JWT_REQUIRE_EXP: expected on or off, got "${jwtRequireExp}"`);
  }
  const logLevel = str("LOG_LEVEL") ?? "info";
  if (!["fatal", "error", "warn", "info", "debug", "trace", "silent"].includes(logLevel)) {
    problems.push(
      `LOG_LEVEL: expected fatal, error, warn, info, debug, trace or silent, got "${logLevel}"`,
    );
  }

  const publishMaxEventsPerSecond = int("PUBLISH_MAX_EVENTS_PER_SECOND", 100_000, 0, 100_000_000);
  const config: Config = {
    port: int("PORT", 8080, 0, 65535),
    host,
    production,
    logLevel,
    authTokensFile,
    authJwtSecret,
    authJwksUrl,
    authJwtIssuer: str("AUTH_JWT_ISSUER"),
    authJwtAudience: str("AUTH_JWT_AUDIENCE"),
    authJwtRequireExp: jwtRequireExp !== "off",
    devMode,
    shutdownTimeoutMs: int("SHUTDOWN_TIMEOUT_MS", 8_000, 0, 600_000),
    shutdownDrainMs: int("SHUTDOWN_DRAIN_MS", 2_000, 0, 600_000),
    watchMaxBacklog: int("WATCH_MAX_BACKLOG", 1024, 1, 1_000_000),
    requestMaxBytes: int("REQUEST_MAX_BYTES", 1024 * 1024, 1024, 64 * 1024 * 1024),
    watchMaxStreamsPerSubject: int("WATCH_MAX_STREAMS_PER_SUBJECT", 100, 1, 1_000_000),
    watchMaxLifetimeMs: int("WATCH_MAX_LIFETIME_MS", 0, 0, 7 * 24 * 3600_000),
    jsonlKeepAliveMs: int("JSONL_KEEPALIVE_MS", 15_000, 0, 3600_000),
    feedCheckpointMs: int("FEED_CHECKPOINT_MS", 15_000, 0, 3600_000),
    feedMaxReplaysPerSubject: int("FEED_MAX_REPLAYS_PER_SUBJECT", 4, 1, 10_000),
    feedMaxReplays: int("FEED_MAX_REPLAYS", 64, 1, 100_000),
    healthMaxWatches: int("HEALTH_MAX_WATCHES", 100, 1, 1_000_000),
    h2IdleTimeoutMs: int("H2_IDLE_TIMEOUT_MS", 300_000, 0, 24 * 3600_000),
    reflectionMaxRequestsPerStream: int("REFLECTION_MAX_REQUESTS", 100, 1, 1_000_000),
    publishMaxEventsPerSecond,
    publishBurstEvents: Math.max(publishMaxEventsPerSecond, MAX_PUBLISH_BATCH),
    publishMaxClockSkewMs: int("PUBLISH_MAX_CLOCK_SKEW_MS", 300_000, 0, 24 * 3600_000),
    headersTimeoutMs: int("HEADERS_TIMEOUT_MS", 10_000, 100, 600_000),
    requestTimeoutMs: int("REQUEST_TIMEOUT_MS", 30_000, 100, 600_000),
    keepAliveTimeoutMs: int("KEEP_ALIVE_TIMEOUT_MS", 5_000, 100, 600_000),
    h2MaxConcurrentStreams: int("H2_MAX_CONCURRENT_STREAMS", 256, 1, 100_000),
    h2PingIntervalMs: int("H2_PING_INTERVAL_MS", 30_000, 0, 3600_000),
    dataDir: str("DATA_DIR") ?? "./data",
    databaseUrl,
    sqliteSynchronous,
    grpcReflection: reflection !== "off",
    console: consoleSetting === "on",
    corsOrigins,
    eventLogRetentionMs: int(
      "EVENT_LOG_RETENTION_MS",
      7 * 24 * 3600_000,
      60_000,
      3650 * 24 * 3600_000,
    ),
    auditLogRetentionDays: int("AUDIT_LOG_RETENTION_DAYS", 365, 1, 36500),
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(config);
}
