import { type Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { IngestService } from "../../src/gen/eventservice/ingest/v1/ingest_pb.js";
import { bearer, type EventInit } from "./clients.js";
import { PROTO_DIR } from "./watchers.js";

// Publishers that record what a Publish came to, whichever client sent it, so that a test can
// hold every edge (the Connect runtime, the gRPC fast path) to the same answers.

/** What one Publish came to, as its client saw it. */
export interface PublishOutcome {
  readonly code: Code | "ok";
  readonly message: string;
  readonly first?: bigint;
  readonly last?: bigint;
  readonly replayed?: boolean;
}

/** What a Publish sends: its events, and an idempotency key when given. */
export interface PublishInit {
  readonly events: EventInit[];
  readonly idempotencyKey?: string;
}

/** One client's Publish, as `token` (undefined: with no credential at all); never rejects. */
export type Publish = (request: PublishInit, token: string | undefined) => Promise<PublishOutcome>;

/** A connect-node client on `transport`; `timeoutMs`: each call's deadline, if any. */
export function connectPublisher(transport: Transport, timeoutMs?: number): Publish {
  const client = createClient(IngestService, transport);
  return async (request, token) => {
    try {
      const r = await client.publish(request, {
        ...(token && { headers: bearer(token) }),
        ...(timeoutMs !== undefined && { timeoutMs }),
      });
      return {
        code: "ok",
        message: "",
        first: r.firstSequence,
        last: r.lastSequence,
        replayed: r.replayed,
      };
    } catch (err) {
      const e = ConnectError.from(err);
      return { code: e.code, message: e.rawMessage };
    }
  };
}

/**
 * The gRPC reference client, @grpc/grpc-js with the .proto files, as a backend in another
 * language would publish (served on the raw HTTP/2 stream). `close()` closes its channel.
 */
export function grpcJsPublisher(url: string): Publish & { close(): void } {
  const def = protoLoader.loadSync("eventservice/ingest/v1/ingest.proto", {
    includeDirs: [PROTO_DIR],
    longs: String,
    enums: Number,
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    eventservice: { ingest: { v1: { IngestService: grpc.ServiceClientConstructor } } };
  };
  const client = new pkg.eventservice.ingest.v1.IngestService(
    new URL(url).host,
    grpc.credentials.createInsecure(),
  );
  const publish: Publish = (request, token) =>
    new Promise((resolve) => {
      const metadata = new grpc.Metadata();
      if (token) metadata.set("authorization", `Bearer ${token}`);
      (client.Publish as (...a: unknown[]) => void)(
        request,
        metadata,
        (
          err: grpc.ServiceError | null,
          r?: { firstSequence: string; lastSequence: string; replayed: boolean },
        ) => {
          if (err) resolve({ code: err.code as number as Code, message: err.details });
          else
            resolve({
              code: "ok",
              message: "",
              first: BigInt(r?.firstSequence ?? -1),
              last: BigInt(r?.lastSequence ?? -1),
              replayed: r?.replayed ?? false,
            });
        },
      );
    });
  return Object.assign(publish, { close: () => client.close() });
}
