import * as http2 from "node:http2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bearer } from "./helpers/clients.js";
import { ORG_A, TOKENS, uuid } from "./helpers/fixtures.js";
import { startServer, type TestServer } from "./helpers/server.js";

// CONTRACT §11: CORS for browser clients of other origins (CORS_ORIGINS).

const APP = "http://app.example.test:3000";
const EVIL = "http://evil.example.test";
const WATCH = "/gitpod.v1.EventService/WatchEvents";
const PUBLISH = "/eventservice.ingest.v1.IngestService/Publish";

function preflight(
  url: string,
  path: string,
  origin: string,
  headers = "authorization,content-type,connect-protocol-version",
) {
  return fetch(`${url}${path}`, {
    method: "OPTIONS",
    headers: {
      origin,
      "access-control-request-method": "POST",
      "access-control-request-headers": headers,
    },
  });
}

/** A watch from a page of `origin`: only its response headers matter here. */
async function watchHeaders(
  url: string,
  origin: string,
  contentType: string,
  body: string | Buffer,
) {
  const abort = new AbortController();
  const res = await fetch(`${url}${WATCH}`, {
    method: "POST",
    headers: { ...bearer(TOKENS.memberA), origin, "content-type": contentType },
    body,
    signal: abort.signal,
  });
  abort.abort();
  return res;
}

const envelope = (json: string) =>
  Buffer.concat([Buffer.from([0, 0, 0, 0, json.length]), Buffer.from(json)]);

describe("with CORS_ORIGINS set to a list", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer({ CORS_ORIGINS: `${APP}, https://other.example.test` });
  });
  afterAll(() => server.close());

  it.each([WATCH, `/api${WATCH}`, PUBLISH, "/gitpod.v1.EventService/ListAuditLogs"])(
    "answers a preflight to %s from an allowed origin with what Connect and gRPC-Web need",
    async (path) => {
      const res = await preflight(
        server.url,
        path,
        APP,
        "authorization,content-type,x-grpc-web,x-user-agent,grpc-timeout,connect-timeout-ms",
      );
      expect(res.status).toBe(204);
      expect(res.headers.get("access-control-allow-origin")).toBe(APP);
      expect(res.headers.get("access-control-allow-methods")).toContain("POST");
      const allowed = (res.headers.get("access-control-allow-headers") ?? "").toLowerCase();
      for (const h of [
        "authorization",
        "content-type",
        "connect-protocol-version",
        "x-grpc-web",
        "grpc-timeout",
      ]) {
        expect(allowed).toContain(h);
      }
      expect(Number(res.headers.get("access-control-max-age"))).toBeGreaterThan(0);
    },
  );

  it("gives a disallowed origin no CORS headers", async () => {
    const res = await preflight(server.url, WATCH, EVIL);
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
    const watch = await watchHeaders(server.url, EVIL, "application/jsonl", "{}");
    expect(watch.headers.get("access-control-allow-origin")).toBeNull();
  });

  it.each([
    ["JSONL", "application/jsonl", "{}"],
    ["Connect streaming", "application/connect+json", envelope("{}")],
    ["gRPC-Web", "application/grpc-web+json", envelope("{}")],
  ])("adds the CORS headers to a %s watch from an allowed origin", async (_, contentType, body) => {
    const res = await watchHeaders(server.url, APP, contentType, body);
    expect(res.status).toBe(200);
    expect(res.headers.get("access-control-allow-origin")).toBe(APP);
    expect(res.headers.get("access-control-expose-headers")?.toLowerCase()).toContain(
      "grpc-status",
    );
    expect(res.headers.get("vary")).toContain("Origin");
  });

  it("adds them to refusals too, so that the page can read the error", async () => {
    const res = await fetch(`${server.url}${WATCH}`, {
      method: "POST",
      headers: { origin: APP, "content-type": "application/jsonl" },
      body: "{}",
    });
    expect(res.status).toBe(401);
    expect(res.headers.get("access-control-allow-origin")).toBe(APP);
  });

  it("adds them to a publish from an allowed origin", async () => {
    const res = await fetch(`${server.url}${PUBLISH}`, {
      method: "POST",
      headers: {
        ...bearer(TOKENS.publisher),
        origin: APP,
        "content-type": "application/json",
        "connect-protocol-version": "1",
      },
      body: JSON.stringify({
        events: [{ resourceType: 3, operation: 1, resourceId: uuid(), organizationId: ORG_A }],
      }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("access-control-allow-origin")).toBe(APP);
  });

  it("answers a preflight over HTTP/2 as well", async () => {
    const session = http2.connect(server.url);
    try {
      const req = session.request({
        ":method": "OPTIONS",
        ":path": WATCH,
        origin: APP,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization,content-type",
      });
      req.end();
      const headers = await new Promise<http2.IncomingHttpHeaders>((resolve) =>
        req.on("response", resolve),
      );
      req.resume();
      expect(headers[":status"]).toBe(204);
      expect(headers["access-control-allow-origin"]).toBe(APP);
    } finally {
      session.close();
    }
  });
});

describe("with CORS_ORIGINS=*", () => {
  it("allows any origin", async () => {
    const server = await startServer({ CORS_ORIGINS: "*" });
    try {
      expect(
        (await preflight(server.url, WATCH, EVIL)).headers.get("access-control-allow-origin"),
      ).toBe("*");
      const res = await watchHeaders(server.url, EVIL, "application/jsonl", "{}");
      expect(res.headers.get("access-control-allow-origin")).toBe("*");
    } finally {
      await server.close();
    }
  });
});

describe("without CORS_ORIGINS (the default)", () => {
  it("sends no CORS headers at all", async () => {
    const server = await startServer();
    try {
      const pre = await preflight(server.url, WATCH, APP);
      expect(pre.headers.get("access-control-allow-origin")).toBeNull();
      const res = await watchHeaders(server.url, APP, "application/jsonl", "{}");
      expect(res.status).toBe(200);
      expect([...res.headers.keys()].filter((k) => k.startsWith("access-control"))).toEqual([]);
    } finally {
      await server.close();
    }
  });
});
