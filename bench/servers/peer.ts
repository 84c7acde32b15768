import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { organizationsByToken } from "../fixtures.js";

/**
 * "peer": WatchEvents as a user would write it with @grpc/grpc-js and @grpc/proto-loader, which
 * is what users would pick instead of ours. One Set of all open calls; every published event is
 * checked against every call (its organization from the bearer token, its filters with
 * Array.includes) and written with call.write(), which serializes it per call. No index, no
 * backlog policy, no visibility rules beyond the organization (every benchmark event is a
 * PROJECT, which every member may see), publishers not authenticated.
 *
 * Env: PORT, HOST (default 127.0.0.1), AUTH_TOKENS_FILE.
 */

interface Filter {
  resourceType: number;
  resourceIds: string[];
  creatorIds: string[];
}
interface WatchRequest {
  resourceTypeFilters: Filter[];
}
interface ResourceEvent {
  resourceType: number;
  operation: number;
  resourceId: string;
  organizationId: string;
  creatorId: string;
}
interface Watcher {
  call: grpc.ServerWritableStream<WatchRequest, unknown>;
  org: string;
  filters: Filter[];
}

const DELETE = 3;
const port = Number(process.env.PORT ?? "0");
const host = process.env.HOST ?? "127.0.0.1";
const tokens = organizationsByToken(readFileSync(process.env.AUTH_TOKENS_FILE ?? "", "utf8"));
const protoDir = fileURLToPath(new URL("../../../proto/", import.meta.url));

const def = protoLoader.loadSync(["gitpod/v1/event.proto", "eventservice/ingest/v1/ingest.proto"], {
  includeDirs: [protoDir],
  enums: Number,
  longs: String,
  defaults: true,
  oneofs: true,
});
const pkg = grpc.loadPackageDefinition(def) as unknown as {
  gitpod: { v1: { EventService: grpc.ServiceClientConstructor } };
  eventservice: { ingest: { v1: { IngestService: grpc.ServiceClientConstructor } } };
};

const watchers = new Set<Watcher>();
let sequence = 0;

function matches(w: Watcher, e: ResourceEvent): boolean {
  if (w.filters.length === 0) return true;
  return w.filters.some(
    (f) =>
      f.resourceType === e.resourceType &&
      (f.resourceIds.length === 0 || f.resourceIds.includes(e.resourceId)) &&
      (f.creatorIds.length === 0 || e.operation === DELETE || f.creatorIds.includes(e.creatorId)),
  );
}

const server = new grpc.Server({ "grpc.max_concurrent_streams": 100_000 });
server.addService(pkg.gitpod.v1.EventService.service, {
  WatchEvents(call: grpc.ServerWritableStream<WatchRequest, unknown>) {
    const auth = String(call.metadata.get("authorization")[0] ?? "");
    const org = tokens.get(auth.replace(/^Bearer /, ""));
    if (org === undefined) {
      call.destroy(
        Object.assign(new Error("unknown token"), { code: grpc.status.UNAUTHENTICATED }),
      );
      return;
    }
    const w: Watcher = { call, org, filters: call.request.resourceTypeFilters ?? [] };
    watchers.add(w);
    call.on("cancelled", () => watchers.delete(w));
    call.on("error", () => watchers.delete(w));
    call.on("close", () => watchers.delete(w));
  },
});
server.addService(pkg.eventservice.ingest.v1.IngestService.service, {
  Publish(
    call: grpc.ServerUnaryCall<{ events: ResourceEvent[] }, unknown>,
    callback: grpc.sendUnaryData<unknown>,
  ) {
    const first = sequence + 1;
    for (const e of call.request.events) {
      sequence++;
      const msg = {
        operation: e.operation,
        resourceType: e.resourceType,
        resourceId: e.resourceId,
      };
      for (const w of watchers) {
        if (w.org === e.organizationId && matches(w, e)) w.call.write(msg);
      }
    }
    callback(null, { firstSequence: String(first), lastSequence: String(sequence) });
  },
});

server.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (err, bound) => {
  if (err) {
    process.stderr.write(`${err.message}\n`);
    process.exit(1);
  }
  process.stdout.write(`${JSON.stringify({ listening: bound })}\n`);
});
