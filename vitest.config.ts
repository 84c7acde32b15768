import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["src/**/*.test.ts", "test/**/*.test.ts"],
    // Real-browser tests need Chromium (`npm run test:browser`), the cluster tests HAProxy
    // (`npm run test:cluster`): each has its own config.
    exclude: [
      "test/browser/**",
      "test/cluster/**",
      "test/proxies/**",
      "test/robustness/**",
      "**/node_modules/**",
    ],
    // Integration tests start real servers on port 0; keep them apart from each other's CPU.
    pool: "forks",
    globalSetup: ["test/global-setup.ts"],
    // Fails a test file during which some timer overflowed (see the module).
    setupFiles: ["test/setup/no-timeout-overflow.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
