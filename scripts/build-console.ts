/**
 * Builds the live console (console/) into dist/console/: main.ts bundled with connect-web by
 * esbuild, index.html copied. Part of `npm run build`; the server serves it at /console/.
 */
import { copyFileSync, mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = fileURLToPath(new URL("..", import.meta.url));
const out = `${root}dist/console`;
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [`${root}console/main.ts`],
  outfile: `${out}/main.js`,
  bundle: true,
  format: "esm",
  minify: true,
  target: "es2022",
  logLevel: "warning",
});
copyFileSync(`${root}console/index.html`, `${out}/index.html`);
