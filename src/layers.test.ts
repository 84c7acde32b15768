import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

// The arrows of the architecture (README "Architecture"): main -> app -> http -> rpc ->
// session -> bus/stream -> watch, and bus -> store. A folder may import only the folders
// listed for it (and shared leaves: errors, metrics, the long timer, gen, auth's types).

const SRC = dirname(fileURLToPath(import.meta.url));

const LEAVES = ["errors.ts", "metrics.ts", "long-timer.ts", "gen", "auth", "config.ts"];
const ALLOWED: Record<string, readonly string[]> = {
  http: ["http", "rpc", "session", "health"],
  rpc: ["rpc", "session", "health", "bus", "watch", "store"],
  session: ["session", "bus", "stream", "watch"],
  health: ["health", "session", "stream"],
  bus: ["bus", "stream", "watch", "store"],
  stream: ["stream", "watch"],
  store: ["store", "watch"],
  watch: ["watch"],
};

/** Relative module specifiers of static imports and re-exports. */
function specifiersOf(source: string): string[] {
  return [...source.matchAll(/\b(?:import|export)\s[^;]*?\sfrom\s*["'](\.[^"']+)["']/g)].map(
    (m) => m[1] as string,
  );
}

/** The top-level folder (or file) of src that `path` lies in. */
function areaOf(path: string): string {
  return (relative(SRC, path).split("/")[0] as string).replace(/\.js$/, ".ts");
}

const files = Object.keys(ALLOWED).flatMap((area) =>
  readdirSync(join(SRC, area), { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts"))
    .map((f) => join(area, f)),
);

describe("dependencies point one way", () => {
  it("finds the modules to check", () => {
    expect(files.length).toBeGreaterThan(30);
  });

  it.each(files)("%s imports only what its layer may", (file) => {
    const area = areaOf(join(SRC, file));
    const wrong = specifiersOf(readFileSync(join(SRC, file), "utf8"))
      .map((s) => areaOf(resolve(dirname(join(SRC, file)), s)))
      .filter((target) => !LEAVES.includes(target) && !ALLOWED[area]?.includes(target));
    expect(wrong).toEqual([]);
  });
});
