import { readFileSync } from "node:fs";
import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import { create, fromBinary, toJsonString } from "@bufbuild/protobuf";
import { PublishRequestSchema } from "../../src/gen/eventservice/ingest/v1/ingest_pb.js";
import { WatchEventsResponseSchema } from "../../src/gen/gitpod/v1/event_pb.js";
import { EMPTY_PUBLISH_RESPONSE, organizationsByToken } from "../fixtures.js";

/**
 * "limit" for the official SDKs' path: what Node itself can do with JSONL over HTTP/1.1. A bare
 * `node:http` server that answers `POST …/gitpod.v1.EventService/WatchEvents` with `200
 * application/jsonl` (headers at once) and keeps the ServerResponse, chunked, in a Set per
 * organization (the organization from the bearer token by one Map lookup; no authentication,
 * rules, filters, backlog, keep-alives or metrics). Publishes arrive as in limit.ts, unary gRPC
 * over HTTP/2 cleartext on the same port (the first bytes of a connection tell which), decoded
 * with fromBinary once per batch. Each event's line is encoded once (`toJsonString`, the same
 * bytes ours sends) and that Buffer is written with `res.write` to every response of its
 * organization, one write per event per stream. Like ours (CONTRACT §10) every write ends on a
 * multiple of 64 bytes of the body: spaces before the last `\n`.
 *
 * With LIMIT_WRITES=batch ("limit-batched") each organization's lines of a publish are joined
 * once, aligned once, and written to each response with a single write: the least work per
 * delivery that `node:http` allows.
 *
 * Env: PORT, HOST (default 127.0.0.1), AUTH_TOKENS_FILE, LIMIT_WRITES (event | batch).
 */

const port = Number(process.env.PORT ?? "0");
const BATCHED = process.env.LIMIT_WRITES === "batch";
const host = process.env.HOST ?? "127.0.0.1";
const tokens = organizationsByToken(readFileSync(process.env.AUTH_TOKENS_FILE ?? "", "utf8"));
const responsesByOrg = new Map<string, Set<http.ServerResponse>>();
const WATCH = "/gitpod.v1.EventService/WatchEvents";
const PUBLISH = "/eventservice.ingest.v1.IngestService/Publish";
const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
const ALIGN = 64;

/** The JSON of one WatchEventsResponse, without a line end. */
function json(operation: number, resourceType: number, resourceId: string): string {
  return toJsonString(
    WatchEventsResponseSchema,
    create(WatchEventsResponseSchema, { operation, resourceType, resourceId }),
  );
}

/** Lines (JSON strings) as one write of the body: `\n` after each, spaces before the last `\n` so the write ends on a multiple of 64 bytes. */
function alignedWrite(lines: readonly string[]): Buffer {
  const text = lines.join("\n");
  const length = Buffer.byteLength(text) + 1;
  const pad = (ALIGN - (length % ALIGN)) % ALIGN;
  const out = Buffer.allocUnsafe(length + pad);
  const at = out.write(text, 0, "utf8");
  out.fill(0x20, at, at + pad);
  out[out.length - 1] = 0x0a;
  return out;
}

const watches = http.createServer({ noDelay: true }, (req, res) => {
  const path = (req.url ?? "").split("?", 1)[0] ?? "";
  if (req.method !== "POST" || !path.endsWith(WATCH)) {
    res.writeHead(404).end();
    return;
  }
  const auth = req.headers.authorization ?? "";
  const org = tokens.get(auth.startsWith("Bearer ") ? auth.slice(7) : auth) ?? "";
  let set = responsesByOrg.get(org);
  if (set === undefined) {
    set = new Set();
    responsesByOrg.set(org, set);
  }
  const responses = set;
  responses.add(res);
  res.on("close", () => responses.delete(res));
  res.writeHead(200, { "content-type": "application/jsonl", "cache-control": "no-store" });
  res.flushHeaders(); // the head now, before any event
  req.resume(); // the request body ({}) is not needed
});
watches.on("clientError", (_err, socket) => socket.destroy());

function publish(body: Buffer): void {
  const req = fromBinary(PublishRequestSchema, body.subarray(5));
  if (BATCHED) {
    // Each organization's lines of this batch, joined and aligned once, one write per response.
    const byOrg = new Map<string, string[]>();
    for (const e of req.events) {
      if ((responsesByOrg.get(e.organizationId)?.size ?? 0) === 0) continue;
      let list = byOrg.get(e.organizationId);
      if (list === undefined) {
        list = [];
        byOrg.set(e.organizationId, list);
      }
      list.push(json(e.operation, e.resourceType, e.resourceId));
    }
    for (const [org, lines] of byOrg) {
      const bytes = alignedWrite(lines);
      for (const res of responsesByOrg.get(org) as Set<http.ServerResponse>) res.write(bytes);
    }
    return;
  }
  for (const e of req.events) {
    const targets = responsesByOrg.get(e.organizationId);
    if (targets === undefined || targets.size === 0) continue;
    const line = alignedWrite([json(e.operation, e.resourceType, e.resourceId)]);
    for (const res of targets) res.write(line);
  }
}

const publishes = http2.createServer({ maxSessionMemory: 64 });
publishes.on("stream", (stream, headers) => {
  stream.on("error", () => {});
  if (!String(headers[":path"] ?? "").endsWith(PUBLISH)) {
    stream.respond({ ":status": 404 });
    stream.end();
    return;
  }
  const chunks: Buffer[] = [];
  stream.on("data", (c: Buffer) => chunks.push(c));
  stream.on("end", () => {
    publish(Buffer.concat(chunks));
    stream.respond(
      { ":status": 200, "content-type": "application/grpc" },
      { waitForTrailers: true },
    );
    stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
    stream.end(EMPTY_PUBLISH_RESPONSE);
  });
});

/**
 * One port for both: a connection that starts with the HTTP/2 preface goes to the Publish
 * server, any other to the HTTP/1.1 server, with the bytes read so far put back. Only the first
 * bytes of a connection are looked at; after that each server reads its sockets itself.
 */
const server = net.createServer({ noDelay: true }, (socket) => {
  let seen: Buffer | undefined;
  const onError = () => socket.destroy();
  const onData = (chunk: Buffer) => {
    seen = seen === undefined ? chunk : Buffer.concat([seen, chunk]);
    const n = Math.min(seen.length, H2_PREFACE.length);
    const h2 = seen.compare(H2_PREFACE, 0, n, 0, n) === 0;
    if (h2 && n < H2_PREFACE.length) return; // a prefix of the preface so far
    // Hand over, and keep nothing: these listeners (and the bytes) would otherwise live as long
    // as the connection, and count as memory per stream.
    socket.off("data", onData);
    socket.off("error", onError);
    socket.pause();
    socket.unshift(seen);
    seen = undefined;
    if (h2) publishes.emit("connection", socket);
    else {
      watches.emit("connection", socket);
      socket.resume();
    }
  };
  socket.on("data", onData);
  socket.on("error", onError);
});

server.listen(port, host, () => {
  const address = server.address();
  process.stdout.write(
    `${JSON.stringify({ listening: typeof address === "object" ? address?.port : address })}\n`,
  );
});

// Exit normally on SIGTERM, so that node options such as --cpu-prof write their output.
process.on("SIGTERM", () => process.exit(0));
