import { defineConfig } from "vitest/config";

// The browser tests (`npm run test:browser`): Debian's Chromium, driven by playwright-core. Kept
// out of `npm test`, which needs nothing but `npm ci`; `.ci/run` installs Chromium and runs both.
export default defineConfig({
  test: {
    include: ["test/browser/**/*.test.ts"],
    pool: "forks",
    globalSetup: ["test/global-setup.ts"],
    setupFiles: ["test/setup/no-timeout-overflow.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
