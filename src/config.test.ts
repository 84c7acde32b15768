import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "./config.js";

function problemsOf(env: Record<string, string>): readonly string[] {
  try {
    loadConfig(env);
    return [];
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
}

describe("loadConfig", () => {
  it("has a default for every setting, in dev mode without a token source", () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      port: 8080,
      host: "127.0.0.1",
      devMode: true,
      jsonlKeepAliveMs: 15_000,
      grpcReflection: true,
      requestMaxBytes: 1024 * 1024,
      shutdownTimeoutMs: 8_000,
    });
    expect(Object.isFrozen(config)).toBe(true);
  });

  it.each([
    [{ JSONL_KEEPALIVE_MS: "0" }, { jsonlKeepAliveMs: 0 }],
    [{ JSONL_KEEPALIVE_MS: "250" }, { jsonlKeepAliveMs: 250 }],
    [{ GRPC_REFLECTION: "off" }, { grpcReflection: false }],
    [{ GRPC_REFLECTION: "on" }, { grpcReflection: true }],
    [{ AUTH_TOKENS_FILE: "t.json" }, { devMode: false, host: "0.0.0.0" }],
    [{ HOST: "::1" }, { devMode: true, host: "::1" }],
    [{ HOST: "localhost", NODE_ENV: "development" }, { devMode: true }],
    [{ AUTH_JWKS_URL: "http://127.0.0.1:9000/jwks" }, { authJwtRequireExp: true }],
    [
      { AUTH_JWKS_URL: "https://idp.example.com/jwks", AUTH_JWT_REQUIRE_EXP: "off" },
      { authJwtRequireExp: false },
    ],
    [
      {},
      {
        feedMaxReplaysPerSubject: 4,
        feedMaxReplays: 64,
        publishMaxClockSkewMs: 300_000,
      },
    ],
  ])("reads %j", (env, expected) => {
    expect(loadConfig(env)).toMatchObject(expected);
  });

  it.each([
    [{ JSONL_KEEPALIVE_MS: "-1" }, "JSONL_KEEPALIVE_MS: expected an integer from 0 to 3600000"],
    [{ JSONL_KEEPALIVE_MS: "soon" }, "JSONL_KEEPALIVE_MS: expected an integer"],
    [{ GRPC_REFLECTION: "yes" }, 'GRPC_REFLECTION: expected on or off, got "yes"'],
    [{ PORT: "70000" }, "PORT: expected an integer from 0 to 65535"],
    [{ NODE_ENV: "production" }, "NODE_ENV=production needs a token source"],
    // Dev mode's well-known tokens never beyond loopback; a mistyped production is no dev mode.
    [{ HOST: "0.0.0.0" }, "HOST=0.0.0.0: dev mode (no token source) serves well-known tokens"],
    [
      { HOST: "192.168.1.4" },
      "configure tokens: AUTH_TOKENS_FILE, AUTH_JWT_SECRET or AUTH_JWKS_URL",
    ],
    [{ NODE_ENV: "prod" }, "NODE_ENV=prod: expected production, development or test"],
    [
      { AUTH_JWKS_URL: "http://idp.example.com/jwks.json" },
      "AUTH_JWKS_URL: plain http:// is allowed for loopback hosts only",
    ],
    [{ AUTH_JWT_REQUIRE_EXP: "no" }, 'AUTH_JWT_REQUIRE_EXP: expected on or off, got "no"'],
  ])("refuses %j", (env, problem) => {
    expect(problemsOf(env).join("\n")).toContain(problem);
  });

  it("lists every problem at once", () => {
    expect(
      problemsOf({ PORT: "x", GRPC_REFLECTION: "maybe", JSONL_KEEPALIVE_MS: "-5" }),
    ).toHaveLength(3);
  });
});
