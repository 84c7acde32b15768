import { readFileSync } from "node:fs";
import { open } from "node:fs/promises";
import * as http2 from "node:http2";
import { fromBinary } from "@bufbuild/protobuf";
import {
  type PublishRequest,
  PublishRequestSchema,
} from "../../src/gen/eventservice/ingest/v1/ingest_pb.js";
import { EMPTY_PUBLISH_RESPONSE, organizationsByToken } from "../fixtures.js";

/**
 * "limit": what Node itself can do. A bare node:http2 server that keeps WatchEvents streams in a
 * Set per organization (the organization comes from the bearer token by one Map lookup; no
 * authentication, no rules, no filters, no backlog, no metrics) and, for each published event,
 * builds its WatchEventsResponse gRPC frame once (the same bytes ours sends) and writes that
 * Buffer to every stream of the event's organization, one write per event per stream. Publish is
 * decoded with fromBinary once per batch and answered with an empty PublishResponse.
 *
 * With LIMIT_WRITES=batch ("limit-batched" in the report) it concatenates each organization's
 * frames of a publish once and writes them to each stream with a single write: the least work
 * per delivery that Node's http2 allows, the ceiling for batched fan-out.
 *
 * With LIMIT_DURABLE_FILE ("limit-durable" in the report) it acknowledges only what is on disk:
 * each Publish's request message is appended to that file and fdatasync'ed (FileHandle.write,
 * then FileHandle.datasync, both off the event loop), one sync per Publish and none shared:
 * publishes are written and synced one after the other, in arrival order, and a publish's
 * events are fanned out and it is answered only once its own sync has completed. This is the
 * fair anchor for a server that persists every publish before it acknowledges it (ours).
 *
 * Env: PORT, HOST (default 127.0.0.1), AUTH_TOKENS_FILE, LIMIT_WRITES (event | batch),
 * LIMIT_DURABLE_FILE (a path; absent: nothing is written).
 */

const port = Number(process.env.PORT ?? "0");
const BATCHED = process.env.LIMIT_WRITES === "batch";
const host = process.env.HOST ?? "127.0.0.1";
const tokens = organizationsByToken(readFileSync(process.env.AUTH_TOKENS_FILE ?? "", "utf8"));
const streamsByOrg = new Map<string, Set<http2.ServerHttp2Stream>>();
const durableFile = process.env.LIMIT_DURABLE_FILE;
const log = durableFile ? await open(durableFile, "a") : undefined;
/** The previous publish's append and sync: the next one starts after it (no grouping). */
let synced: Promise<unknown> = Promise.resolve();

/** Appends `message` to the log and fdatasyncs it, after every earlier publish's sync. */
function persist(message: Buffer): Promise<void> {
  const file = log;
  if (file === undefined) return Promise.resolve();
  const done = synced.then(async () => {
    for (let at = 0; at < message.length; ) {
      at += (await file.write(message, at, message.length - at)).bytesWritten;
    }
    await file.datasync();
  });
  synced = done.catch(() => {});
  return done;
}

/** gRPC frame of WatchEventsResponse{operation, resource_type, resource_id} (fields 1, 2, 3). */
function responseFrame(operation: number, resourceType: number, resourceId: string): Buffer {
  const idLen = Buffer.byteLength(resourceId, "latin1");
  // Enum values and the id length are < 128 here (one-byte varints), as for every real event.
  const msgLen = 2 + 2 + 2 + idLen;
  const f = Buffer.allocUnsafe(5 + msgLen);
  f[0] = 0;
  f.writeUInt32BE(msgLen, 1);
  f[5] = 0x08;
  f[6] = operation;
  f[7] = 0x10;
  f[8] = resourceType;
  f[9] = 0x1a;
  f[10] = idLen;
  f.write(resourceId, 11, "latin1");
  return f;
}

/** Writes a publish's events to the streams of their organizations (see the module comment). */
function fanOut(events: PublishRequest["events"]): void {
  if (BATCHED) {
    // Each organization's frames of this batch, concatenated once, one write per stream.
    const byOrg = new Map<string, Buffer[]>();
    for (const e of events) {
      let list = byOrg.get(e.organizationId);
      if (list === undefined) {
        list = [];
        byOrg.set(e.organizationId, list);
      }
      list.push(responseFrame(e.operation, e.resourceType, e.resourceId));
    }
    for (const [org, frames] of byOrg) {
      const targets = streamsByOrg.get(org);
      if (targets === undefined || targets.size === 0) continue;
      const bytes = frames.length === 1 ? (frames[0] as Buffer) : Buffer.concat(frames);
      for (const s of targets) s.write(bytes);
    }
  } else {
    for (const e of events) {
      const targets = streamsByOrg.get(e.organizationId);
      if (targets === undefined || targets.size === 0) continue;
      const frame = responseFrame(e.operation, e.resourceType, e.resourceId);
      for (const s of targets) s.write(frame);
    }
  }
}

/** Answers a Publish: an empty PublishResponse and `grpc-status` (0, or 13 when the sync failed). */
function answer(stream: http2.ServerHttp2Stream, status: string): void {
  if (stream.destroyed) return; // the publisher went away meanwhile
  stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
  stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": status }));
  stream.end(status === "0" ? EMPTY_PUBLISH_RESPONSE : undefined);
}

const server = http2.createServer({
  settings: { maxConcurrentStreams: 100_000 },
  maxSessionMemory: 64,
});

server.on("stream", (stream, headers) => {
  stream.on("error", () => {});
  const path = headers[":path"] ?? "";
  if (path.endsWith("/gitpod.v1.EventService/WatchEvents")) {
    const auth = String(headers.authorization ?? "");
    const org = tokens.get(auth.startsWith("Bearer ") ? auth.slice(7) : auth) ?? "";
    let set = streamsByOrg.get(org);
    if (set === undefined) {
      set = new Set();
      streamsByOrg.set(org, set);
    }
    const streams = set;
    streams.add(stream);
    stream.on("close", () => streams.delete(stream));
    stream.respond({ ":status": 200, "content-type": "application/grpc" });
    stream.resume(); // the request message is not needed
    return;
  }
  if (path.endsWith("/eventservice.ingest.v1.IngestService/Publish")) {
    const chunks: Buffer[] = [];
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("end", () => {
      const body = Buffer.concat(chunks);
      const req = fromBinary(PublishRequestSchema, body.subarray(5));
      if (log === undefined) {
        fanOut(req.events);
        answer(stream, "0");
        return;
      }
      persist(body).then(
        () => {
          fanOut(req.events);
          answer(stream, "0");
        },
        () => answer(stream, "13"), // internal: not on disk, not delivered
      );
    });
    return;
  }
  stream.respond({ ":status": 404 });
  stream.end();
});

server.listen(port, host, () => {
  const address = server.address();
  process.stdout.write(
    `${JSON.stringify({ listening: typeof address === "object" ? address?.port : address })}\n`,
  );
});

// Exit normally on SIGTERM, so that node options such as --cpu-prof write their output.
process.on("SIGTERM", () => process.exit(0));
