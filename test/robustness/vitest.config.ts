import { defineConfig } from "vitest/config";

// The robustness suite (`npm run robustness -- --seed N --duration 60s`): docs/guarantees.md
// checked under a seeded schedule of random faults. Kept out of `npm test` (it needs haproxy,
// PostgreSQL's initdb, and minutes); scripts/robustness.ts passes the seed and duration.
export default defineConfig({
  test: {
    include: ["test/robustness/**/*.test.ts"],
    pool: "forks",
    globalSetup: ["test/global-setup.ts"],
    testTimeout: 24 * 3600_000,
    hookTimeout: 120_000,
  },
});
