import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const WATCH_DIR = dirname(fileURLToPath(import.meta.url));

/** Module specifiers of static imports, re-exports, dynamic imports and requires. */
function specifiersOf(source: string): string[] {
  const patterns = [
    /\b(?:import|export)\s[^;]*?\sfrom\s*["']([^"']+)["']/g,
    /\bimport\s*["']([^"']+)["']/g,
    /\bimport\s*\(\s*["']([^"']+)["']\s*\)/g,
    /\brequire\s*\(\s*["']([^"']+)["']\s*\)/g,
  ];
  return patterns.flatMap((p) => [...source.matchAll(p)].map((m) => m[1] as string));
}

const FORBIDDEN = ["node:", "@connectrpc", "@bufbuild", "pino", "../gen"];

/** Why `specifier`, imported by `file`, breaks the purity rule; undefined when it does not. */
function impurity(file: string, specifier: string): string | undefined {
  const banned = FORBIDDEN.find((f) => specifier.startsWith(f) || specifier.includes(`/${f}`));
  if (banned !== undefined) return `imports ${banned}`;
  if (!specifier.startsWith("./") && !specifier.startsWith("../")) return "imports a package";
  const target = resolve(dirname(file), specifier);
  const rel = relative(WATCH_DIR, target);
  if (rel.startsWith("..") || rel === "") return "imports from outside src/watch";
  return undefined;
}

const sources = readdirSync(WATCH_DIR, { recursive: true, encoding: "utf8" })
  .filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts"))
  .sort();

describe("src/watch imports nothing with I/O", () => {
  it("finds the rule modules to check", () => {
    expect(sources).toEqual(expect.arrayContaining(["model.ts", "plan.ts", "validate.ts"]));
  });

  it.each(sources)("%s imports only from src/watch", (name) => {
    const file = join(WATCH_DIR, name);
    const problems = specifiersOf(readFileSync(file, "utf8"))
      .map((s) => [s, impurity(file, s)])
      .filter(([, why]) => why !== undefined);
    expect(problems).toEqual([]);
  });

  it("holds the fixtures the rule tests share (test/helpers/rule-fixtures.ts) to the same rule", () => {
    const file = join(WATCH_DIR, "..", "..", "test", "helpers", "rule-fixtures.ts");
    const specifiers = specifiersOf(readFileSync(file, "utf8"));
    expect(specifiers.length).toBeGreaterThan(0);
    expect(specifiers.map((s) => [s, impurity(file, s)]).filter(([, why]) => why)).toEqual([]);
  });

  it("sees the imports it must check", () => {
    expect(specifiersOf(readFileSync(join(WATCH_DIR, "plan.ts"), "utf8"))).toEqual(
      expect.arrayContaining(["./model.js", "./violation.js", "./visibility.js"]),
    );
  });

  it.each([
    ['import { readFileSync } from "node:fs";', "imports node:"],
    ['import type { Code } from "@connectrpc/connect";', "imports @connectrpc"],
    ["import { create } from '@bufbuild/protobuf';", "imports @bufbuild"],
    ['import { pino } from "pino";', "imports pino"],
    ['import { ResourceType } from "../gen/gitpod/v1/event_pb.js";', "imports ../gen"],
    ['export { ServiceError } from "../errors.js";', "imports from outside src/watch"],
    ['const m = await import("fs");', "imports a package"],
    ['import "./sub/../../bus/memory-bus.js";', "imports from outside src/watch"],
    ['import {\n  a,\n  b,\n} from "jose";', "imports a package"],
  ])("flags %j", (source, why) => {
    const file = join(WATCH_DIR, "example.ts");
    expect(specifiersOf(source).map((s) => impurity(file, s))).toEqual([why]);
  });
});
