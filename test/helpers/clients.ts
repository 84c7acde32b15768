import type * as http2 from "node:http2";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import {
  IngestService,
  type ResourceEventSchema,
} from "../../src/gen/eventservice/ingest/v1/ingest_pb.js";
import {
  ResourceOperation,
  ResourceOperationSchema,
  ResourceType,
  ResourceTypeSchema,
  WatchEventsRequestSchema,
} from "../../src/gen/gitpod/v1/event_pb.js";
import { ORG_A, TOKENS, uuid } from "./fixtures.js";

export type EventInit = MessageInitShape<typeof ResourceEventSchema>;

/** A PROJECT update of `org` (seen by every member of it). */
export function project(id = uuid(), org: string = ORG_A): EventInit {
  return {
    resourceType: ResourceType.PROJECT,
    operation: ResourceOperation.UPDATE,
    resourceId: id,
    organizationId: org,
  };
}

/** An event of ORG_A (unless `extra` names another organization). */
export function ev(
  resourceType: number,
  operation: number,
  resourceId: string,
  extra: { environmentId?: string; creatorId?: string; organizationId?: string } = {},
): EventInit {
  return { resourceType, operation, resourceId, organizationId: ORG_A, ...extra };
}

/** What every client test compares: enum names as in proto3 JSON. */
export interface SeenEvent {
  operation: string;
  resourceType: string;
  resourceId: string;
}

export function operationName(n: number): string {
  return ResourceOperationSchema.value[n as ResourceOperation]?.name ?? String(n);
}

export function typeName(n: number): string {
  return ResourceTypeSchema.value[n as ResourceType]?.name ?? String(n);
}

export function seen(e: {
  operation: number;
  resourceType: number;
  resourceId: string;
}): SeenEvent {
  return {
    operation: operationName(e.operation),
    resourceType: typeName(e.resourceType),
    resourceId: e.resourceId,
  };
}

export function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

/** Publishes through the real Connect client (JSON over HTTP/1.1) as a publisher. */
export async function publish(
  url: string,
  events: EventInit[],
  token: string = TOKENS.publisher,
): Promise<{ firstSequence: bigint; lastSequence: bigint }> {
  const client = createClient(
    IngestService,
    createConnectTransport({ baseUrl: url, httpVersion: "1.1" }),
  );
  return client.publish({ events }, { headers: bearer(token) });
}

export function watchRequest(init: MessageInitShape<typeof WatchEventsRequestSchema> = {}) {
  return create(WatchEventsRequestSchema, init);
}

/**
 * Collects items from an async iterator until `isLast` says so. Bounded by the test timeout,
 * never by a sleep.
 */
export async function collectUntil<T>(
  it: AsyncIterator<T>,
  isLast: (item: T) => boolean,
): Promise<T[]> {
  const out: T[] = [];
  for (;;) {
    const r = await it.next();
    if (r.done) return out;
    out.push(r.value);
    if (isLast(r.value)) return out;
  }
}

/**
 * A binary gRPC request on a raw HTTP/2 `session` (for tests that need what a client library
 * hides: resets at chosen moments, exact bytes, unread streams). Stream errors are ignored;
 * the test looks at what it received.
 */
export function rawGrpcRequest(
  session: http2.ClientHttp2Session,
  path: string,
  token: string,
  headers: Record<string, string> = {},
): http2.ClientHttp2Stream {
  const stream = session.request({
    ":method": "POST",
    ":path": path,
    "content-type": "application/grpc",
    te: "trailers",
    ...bearer(token),
    ...headers,
  });
  stream.on("error", () => {});
  return stream;
}
