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
  /** No token source configured and not production: demo organization with fixed tokens. */
  readonly devMode: boolean;
  /** Time the process has to finish open work after SIGTERM/SIGINT before it exits anyway. */
  readonly shutdownTimeoutMs: number;
  /** Events one stream may fall behind by before it is ended with resource_exhausted. */
  readonly watchMaxBacklog: number;
  /** Largest request message accepted, in bytes (after decompression). */
  readonly requestMaxBytes: number;
  /** Resources whose creator and organization the server remembers. */
  readonly directoryMaxEntries: number;
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
  const logLevel = str("LOG_LEVEL") ?? "info";
  if (!["fatal", "error", "warn", "info", "debug", "trace", "silent"].includes(logLevel)) {
    problems.push(
      `LOG_LEVEL: expected fatal, error, warn, info, debug, trace or silent, got "${logLevel}"`,
    );
  }

  const config: Config = {
    port: int("PORT", 8080, 0, 65535),
    host: str("HOST") ?? (devMode ? "127.0.0.1" : "0.0.0.0"),
    production,
    logLevel,
    authTokensFile,
    authJwtSecret,
    authJwksUrl,
    authJwtIssuer: str("AUTH_JWT_ISSUER"),
    authJwtAudience: str("AUTH_JWT_AUDIENCE"),
    devMode,
    shutdownTimeoutMs: int("SHUTDOWN_TIMEOUT_MS", 8_000, 0, 600_000),
    watchMaxBacklog: int("WATCH_MAX_BACKLOG", 1024, 1, 1_000_000),
    requestMaxBytes: int("REQUEST_MAX_BYTES", 4 * 1024 * 1024, 1024, 64 * 1024 * 1024),
    directoryMaxEntries: int("DIRECTORY_MAX_ENTRIES", 500_000, 1000, 100_000_000),
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(config);
}
