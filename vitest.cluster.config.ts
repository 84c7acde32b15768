import { defineConfig } from "vitest/config";

// The cluster tests (`npm run test:cluster`): three replicas on PostgreSQL behind Debian's
// HAProxy, with faults. Kept out of `npm test` (they need haproxy and take a minute or two);
// `.ci/run` installs haproxy and runs them.
export default defineConfig({
  test: {
    include: ["test/cluster/**/*.test.ts"],
    pool: "forks",
    globalSetup: ["test/global-setup.ts"],
    setupFiles: ["test/setup/no-timeout-overflow.ts"],
    testTimeout: 240_000,
    hookTimeout: 60_000,
  },
});
