import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Code, ConnectError } from "@connectrpc/connect";
import { compressionGzip } from "@connectrpc/connect-node";
import { describe, expect, it } from "vitest";
import { codeName } from "../errors.js";
import * as door from "./connect-protocol.js";

// connect-es marks the exports of its `/protocol*` modules private: they may change in any
// release. This test says which one changed, so that an upgrade of @connectrpc/connect (pinned
// exactly in package.json) fails here, by name, rather than in a wire at run time.

const SRC = dirname(dirname(fileURLToPath(import.meta.url)));
const ROOT = dirname(SRC);
const PACKAGE = JSON.parse(
  readFileSync(join(ROOT, "node_modules", "@connectrpc", "connect", "package.json"), "utf8"),
) as { version: string };

/** Every symbol the door passes on, and what it was when the wires were written against it. */
const EXPECTED: Record<string, "function" | "string" | "number"> = {
  compressedFlag: "number",
  compressionNegotiate: "function",
  createMethodSerializationLookup: "function",
  encodeEnvelope: "function",
  getJsonOptions: "function",
  "connectProtocol.headerStreamEncoding": "string",
  "connectProtocol.headerStreamAcceptEncoding": "string",
  "connectProtocol.contentTypeStreamJson": "string",
  "connectProtocol.contentTypeStreamProto": "string",
  "connectProtocol.parseContentType": "function",
  "connectProtocol.parseTimeout": "function",
  "connectProtocol.errorToJsonBytes": "function",
  "connectProtocol.codeToHttpStatus": "function",
  "connectProtocol.endStreamToJson": "function",
  "connectProtocol.endStreamFlag": "number",
  "connectProtocol.codeToString": "function",
  "connectProtocol.codeFromString": "function",
  "grpcProtocol.headerEncoding": "string",
  "grpcProtocol.headerAcceptEncoding": "string",
  "grpcProtocol.contentTypeJson": "string",
  "grpcProtocol.contentTypeProto": "string",
  "grpcProtocol.parseContentType": "function",
  "grpcProtocol.parseTimeout": "function",
  "grpcProtocol.setTrailerStatus": "function",
  "grpcWebProtocol.headerEncoding": "string",
  "grpcWebProtocol.headerAcceptEncoding": "string",
  "grpcWebProtocol.contentTypeJson": "string",
  "grpcWebProtocol.contentTypeProto": "string",
  "grpcWebProtocol.parseContentType": "function",
  "grpcWebProtocol.trailerFlag": "number",
  "grpcWebProtocol.trailerSerialize": "function",
};

/** Constants the wires rely on, as they were. */
const PINNED_VALUES: Record<string, unknown> = {
  compressedFlag: 0b1,
  "connectProtocol.endStreamFlag": 0b10,
  "grpcWebProtocol.trailerFlag": 0x80,
  "connectProtocol.headerStreamEncoding": "Connect-Content-Encoding",
  "connectProtocol.headerStreamAcceptEncoding": "Connect-Accept-Encoding",
  "grpcProtocol.headerEncoding": "Grpc-Encoding",
  "grpcProtocol.headerAcceptEncoding": "Grpc-Accept-Encoding",
  "grpcWebProtocol.headerEncoding": "Grpc-Encoding",
  "grpcWebProtocol.headerAcceptEncoding": "Grpc-Accept-Encoding",
  "connectProtocol.contentTypeStreamProto": "application/connect+proto",
  "connectProtocol.contentTypeStreamJson": "application/connect+json",
  "grpcProtocol.contentTypeProto": "application/grpc+proto",
  "grpcProtocol.contentTypeJson": "application/grpc+json",
  "grpcWebProtocol.contentTypeProto": "application/grpc-web+proto",
  "grpcWebProtocol.contentTypeJson": "application/grpc-web+json",
};

/** The door's exports, one entry per symbol (`grpcProtocol.parseTimeout`). */
function symbols(): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (const [name, value] of Object.entries(door)) {
    if (value !== null && typeof value === "object") {
      for (const [key, v] of Object.entries(value)) out.set(`${name}.${key}`, v);
    } else out.set(name, value);
  }
  return out;
}

function changed(name: string, what: string): string {
  return `@connectrpc/connect ${PACKAGE.version}: the private export behind ${name} ${what}; src/http/connect-protocol.ts and the wires that use it (src/http/wire/) must follow before this upgrade`;
}

/** The project's TypeScript modules, tests included (not generated code). */
const PROJECT_DIRS = ["src", "test", "bench", "scripts"];

/** Modules of the project that import a `/protocol*` path. */
function importersOfPrivatePaths(): string[] {
  return PROJECT_DIRS.flatMap((dir) =>
    readdirSync(join(ROOT, dir), { recursive: true, encoding: "utf8" }).map((f) => join(dir, f)),
  )
    .filter((f) => f.endsWith(".ts") && !f.startsWith("src/gen/"))
    .filter((f) =>
      /from\s*["']@connectrpc\/connect\/protocol[^"']*["']/.test(
        readFileSync(join(ROOT, f), "utf8"),
      ),
    )
    .sort();
}

describe("connect-es' private protocol API, behind one door", () => {
  it("lists every symbol the door passes on", () => {
    expect([...symbols().keys()].sort()).toEqual(Object.keys(EXPECTED).sort());
  });

  it.each(Object.entries(EXPECTED))("%s is still a %s", (name, kind) => {
    const actual = typeof symbols().get(name);
    expect(actual, changed(name, actual === "undefined" ? "is gone" : `is a ${actual} now`)).toBe(
      kind,
    );
  });

  it.each(Object.entries(PINNED_VALUES))("%s is still %j", (name, value) => {
    expect(symbols().get(name), changed(name, "has another value")).toEqual(value);
  });

  it("keeps the behaviour the wires were written against", () => {
    const { connectProtocol: c, grpcProtocol: g, grpcWebProtocol: w } = door;
    const pinned: [string, unknown, unknown][] = [
      [
        "connectProtocol.parseContentType",
        c.parseContentType("application/connect+json; charset=utf-8"),
        { stream: true, binary: false },
      ],
      ["grpcProtocol.parseContentType", g.parseContentType("application/grpc"), { binary: true }],
      [
        "grpcWebProtocol.parseContentType",
        w.parseContentType("application/grpc-web-text+proto"),
        { binary: true, text: true },
      ],
      ["connectProtocol.parseTimeout", c.parseTimeout("1500", Infinity), { timeoutMs: 1500 }],
      ["grpcProtocol.parseTimeout", g.parseTimeout("2S", Infinity), { timeoutMs: 2000 }],
      [
        "connectProtocol.errorToJsonBytes",
        JSON.parse(
          Buffer.from(
            c.errorToJsonBytes(new ConnectError("no", Code.InvalidArgument), {}),
          ).toString(),
        ),
        { code: "invalid_argument", message: "no" },
      ],
      ["connectProtocol.codeToHttpStatus", c.codeToHttpStatus(Code.Unavailable), 503],
      ["connectProtocol.codeToString", c.codeToString(Code.InvalidArgument), "invalid_argument"],
      ["connectProtocol.codeFromString", c.codeFromString("not_found"), Code.NotFound],
      [
        "connectProtocol.endStreamToJson",
        c.endStreamToJson(new Headers(), new ConnectError("gone", Code.Unavailable), {}),
        { error: { code: "unavailable", message: "gone" } },
      ],
      [
        "grpcProtocol.setTrailerStatus",
        Object.fromEntries(
          g.setTrailerStatus(new Headers(), new ConnectError("x", Code.NotFound)).entries(),
        ),
        { "grpc-message": "x", "grpc-status": "5" },
      ],
      [
        "grpcWebProtocol.trailerSerialize",
        Buffer.from(w.trailerSerialize(new Headers({ "grpc-status": "0" }))).toString(),
        "grpc-status: 0\r\n",
      ],
      ["encodeEnvelope", [...door.encodeEnvelope(2, new Uint8Array([7]))], [2, 0, 0, 0, 1, 7]],
      [
        "compressionNegotiate",
        door.compressionNegotiate([compressionGzip], "gzip", null, "Accept-Encoding").request?.name,
        "gzip",
      ],
    ];
    for (const [name, actual, expected] of pinned) {
      expect(actual, changed(name, "behaves differently")).toEqual(expected);
    }
  });

  it("is the only module, in src/, test/, bench/ and scripts/, that imports connect-es' /protocol* paths", () => {
    expect(importersOfPrivatePaths()).toEqual(["src/http/connect-protocol.ts"]);
  });

  it("names codes in errors.ts as connect-es does", () => {
    for (const code of Object.values(Code).filter((c): c is Code => typeof c === "number")) {
      expect(codeName(code)).toBe(door.connectProtocol.codeToString(code));
    }
    expect(codeName(undefined)).toBe("ok");
  });
});
