// A page of another origin that uses the server as a browser app would: connect-web, in the
// Connect protocol or gRPC-Web, watches WatchEvents and publishes one event. What it sees goes to
// `window.result` for the test to read. Parameters come from the page's query string.
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { IngestService } from "../../src/gen/eventservice/ingest/v1/ingest_pb.js";
import { EventService } from "../../src/gen/gitpod/v1/event_pb.js";

interface Result {
  /** Ids of the events the watch received. */
  events: string[];
  published: boolean;
  /** What failed (a CORS refusal shows up here as a network error). */
  error?: string;
  /** The watch ended. */
  done: boolean;
}

const result: Result = { events: [], published: false, done: false };
(window as unknown as { result: Result }).result = result;

const q = new URLSearchParams(location.search);
const baseUrl = q.get("server") as string;
const transport =
  q.get("protocol") === "grpcweb"
    ? createGrpcWebTransport({ baseUrl })
    : createConnectTransport({ baseUrl });
const events = createClient(EventService, transport);
const ingest = createClient(IngestService, transport);

/** Watches until the page is closed, recording each event's id (or the error). */
async function watch(): Promise<void> {
  const stream = events.watchEvents({}, { headers: { authorization: `Bearer ${q.get("token")}` } });
  for await (const e of stream) result.events.push(e.resourceId);
}

/** Publishes one PROJECT event with this id (the test calls it once the watch is open). */
async function publish(id: string): Promise<void> {
  await ingest.publish(
    {
      events: [
        { resourceType: 3, operation: 1, resourceId: id, organizationId: q.get("org") as string },
      ],
    },
    { headers: { authorization: `Bearer ${q.get("publisher")}` } },
  );
  result.published = true;
}

(window as unknown as { publish: (id: string) => Promise<void> }).publish = (id) =>
  publish(id).catch((err: unknown) => {
    result.error = String(err);
  });

watch()
  .catch((err: unknown) => {
    result.error = String(err);
  })
  .finally(() => {
    result.done = true;
  });
