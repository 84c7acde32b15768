import { defineConfig } from "vitest/config";

// The proxy tests (`npm run test:proxies`): the server behind Debian's nginx (nginx-light),
// Caddy and HAProxy, each with the configuration of deploy/ and with its documented default,
// driven by every client kind. Kept out of `npm test` (they need the three proxies, and the
// idle test waits longer than nginx's 60 s timeout); `.ci/run` installs them and runs these.
export default defineConfig({
  test: {
    include: ["test/proxies/**/*.test.ts"],
    pool: "forks",
    globalSetup: ["test/global-setup.ts"],
    setupFiles: ["test/setup/no-timeout-overflow.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
