import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";

/**
 * Builds dist/ once: for the tests that run the real process (`node dist/main.js`), and the
 * console (dist/console) that servers in tests serve.
 */
export default function setup(): void {
  const root = fileURLToPath(new URL("..", import.meta.url));
  execFileSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "tsconfig.json"], {
    cwd: root,
    stdio: "inherit",
  });
  execFileSync(process.execPath, ["scripts/build-console.ts"], { cwd: root, stdio: "inherit" });
}
