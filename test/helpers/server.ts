import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { type App, createApp } from "../../src/app.js";
import { createAuthenticator } from "../../src/auth/create-authenticator.js";
import { StoreBus } from "../../src/bus/store-bus.js";
import { loadConfig } from "../../src/config.js";
import { SqliteStore } from "../../src/store/sqlite-store.js";
import type { Store } from "../../src/store/store.js";
import { TOKEN_ENTRIES } from "./fixtures.js";

export interface TestServer {
  readonly url: string;
  readonly port: number;
  readonly app: App;
  readonly bus: StoreBus;
  readonly store: Store;
  /** The token file the server watches (tests may rewrite it). */
  readonly tokensFile: string;
  close(): Promise<void>;
}

/**
 * Starts the real server in this process on 127.0.0.1, port 0, with the fixture tokens in a
 * watched token file and an in-memory SQLite store (or `options.store`). `env` overrides
 * configuration variables.
 */
export async function startServer(
  env: Record<string, string> = {},
  options: { now?: () => number; store?: Store; replicated?: boolean } = {},
): Promise<TestServer> {
  const dir = mkdtempSync(join(tmpdir(), "events-test-"));
  const tokensFile = join(dir, "tokens.json");
  writeFileSync(tokensFile, JSON.stringify({ tokens: TOKEN_ENTRIES }));
  const config = loadConfig({
    PORT: "0",
    HOST: "127.0.0.1",
    LOG_LEVEL: "silent",
    AUTH_TOKENS_FILE: tokensFile,
    SHUTDOWN_TIMEOUT_MS: "2000",
    ...env,
  });
  const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });
  const store = options.store ?? (await SqliteStore.open({ path: ":memory:" }));
  const bus = await StoreBus.open({ store, logger, replicated: options.replicated ?? false });
  const authenticator = createAuthenticator(config, logger);
  const app = await createApp({
    config,
    logger,
    bus,
    authenticator,
    store,
    ...(options.now !== undefined && { now: options.now }),
  });
  const address = await app.listen();
  return {
    url: `http://127.0.0.1:${address.port}`,
    port: address.port,
    app,
    bus,
    store,
    tokensFile,
    async close() {
      await app.close(1000);
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
