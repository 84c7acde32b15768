import { join } from "node:path";
import { createApp } from "./app.js";
import { createAuthenticator } from "./auth/create-authenticator.js";
import { DEV_ORGANIZATION, DEV_TOKENS } from "./auth/dev-tokens.js";
import { StoreBus } from "./bus/store-bus.js";
import { type Config, ConfigError, loadConfig } from "./config.js";
import { createLogger } from "./logger.js";
import { startPruning } from "./store/pruner.js";
import { SqliteStore } from "./store/sqlite-store.js";
import type { Store } from "./store/store.js";

// The only module that touches the process: environment, signals, exit.

function devBanner(host: string, port: number, withConsole: boolean): string {
  const base = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
  const token = (role: string) => DEV_TOKENS.find((t) => t.role === role)?.token ?? "";
  return [
    "",
    "Dev mode: no token source configured, so a demo organization with fixed tokens is in use.",
    `  organization  ${DEV_ORGANIZATION}`,
    ...DEV_TOKENS.map((t) => `  ${t.role.padEnd(12)}  ${t.token}  (subject ${t.subject})`),
    "",
    "Watch (JSONL, like the official SDKs):",
    `  curl -N -X POST ${base}/api/gitpod.v1.EventService/WatchEvents \\`,
    `    -H 'Authorization: Bearer ${token("admin")}' -H 'Content-Type: application/jsonl' -d '{}'`,
    ...(withConsole ? [`The live console: ${base}/console/`] : []),
    "",
    "Publish (in another terminal), or run `npm run demo` for a continuing stream:",
    `  curl -X POST ${base}/eventservice.ingest.v1.IngestService/Publish \\`,
    `    -H 'Authorization: Bearer ${token("publisher")}' -H 'Content-Type: application/json' -H 'Connect-Protocol-Version: 1' \\`,
    `    -d '{"events":[{"resourceType":"RESOURCE_TYPE_PROJECT","operation":"RESOURCE_OPERATION_CREATE","resourceId":"5b0e3a2c-7f41-4d6a-9c1e-2f8b6d4a1e01","organizationId":"${DEV_ORGANIZATION}"}]}'`,
    "",
  ].join("\n");
}

/** PostgreSQL when DATABASE_URL is set (replicas share it), else SQLite under DATA_DIR. */
async function openStore(config: Config): Promise<Store> {
  if (config.databaseUrl !== undefined) {
    const { PostgresStore } = await import("./store/postgres-store.js");
    return PostgresStore.open({ url: config.databaseUrl });
  }
  return SqliteStore.open({
    path: join(config.dataDir, "events.db"),
    synchronous: config.sqliteSynchronous,
  });
}

async function main(): Promise<void> {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(78); // EX_CONFIG
    }
    throw err;
  }
  const logger = createLogger(config.logLevel);
  let authenticator: ReturnType<typeof createAuthenticator>;
  try {
    authenticator = createAuthenticator(config, logger);
  } catch (err) {
    process.stderr.write(`invalid configuration:\n  - ${(err as Error).message}\n`);
    process.exit(78);
  }
  let store: Store;
  try {
    store = await openStore(config);
  } catch (err) {
    process.stderr.write(`cannot open the store: ${(err as Error).message}\n`);
    process.exit(69); // EX_UNAVAILABLE
  }
  const bus = await StoreBus.open({ store, logger, replicated: config.databaseUrl !== undefined });
  const stopPruning = startPruning(store, { ...config, logger });
  const app = await createApp({ config, logger, bus, authenticator, store });
  const address = await app.listen();
  logger.info({ host: address.address, port: address.port, devMode: config.devMode }, "listening");
  if (config.devMode)
    process.stdout.write(devBanner(address.address, address.port, config.console));

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    // SIGTERM comes from an orchestrator, whose load balancer needs a moment to see the server
    // leave (/readyz 503); SIGINT is a person at a terminal, who wants it gone now.
    const drainMs = signal === "SIGTERM" ? config.shutdownDrainMs : 0;
    logger.info({ signal, timeoutMs: config.shutdownTimeoutMs, drainMs }, "shutting down");
    // Exit by the deadline even if something refuses to close.
    setTimeout(() => {
      logger.warn("shutdown timeout reached; exiting");
      process.exit(0);
    }, config.shutdownTimeoutMs).unref();
    stopPruning();
    app
      .close(Math.max(0, config.shutdownTimeoutMs - 250), drainMs)
      .then(() => store.close())
      .then(
        () => {
          logger.info("stopped");
          process.exit(0);
        },
        (err: unknown) => {
          logger.error({ err }, "error during shutdown");
          process.exit(1);
        },
      );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}

main().catch((err: unknown) => {
  process.stderr.write(`fatal: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
