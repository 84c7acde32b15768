// A consumer of the resumable feed (eventservice.feed.v1.FeedService/Watch) with connect-es that
// never misses an event: it keeps the last cursor and resumes after any error, with backoff.
//
//   npm run build        # once: compiles src/gen (the code generated from proto/) into dist/gen
//   EVENTS_URL=http://127.0.0.1:8080 EVENTS_TOKEN=dev-admin-token node examples/feed.mjs
//
// In a project of your own, generate the code from this repository's proto/ folder with
// `npx buf generate` and protoc-gen-es (see buf.gen.yaml; `target=js` writes .js files), and
// import FeedService from there.
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { FeedService } from "../dist/gen/eventservice/feed/v1/feed_pb.js";
import { ResourceOperationSchema, ResourceTypeSchema } from "../dist/gen/gitpod/v1/event_pb.js";

const baseUrl = process.env.EVENTS_URL ?? "http://127.0.0.1:8080";
const headers = { authorization: `Bearer ${process.env.EVENTS_TOKEN ?? "dev-admin-token"}` };
const client = createClient(FeedService, createGrpcTransport({ baseUrl }));

// Enum values arrive as numbers; the generated descriptors hold their names.
const operation = (n) => ResourceOperationSchema.value[n]?.name ?? String(n);
const resourceType = (n) => ResourceTypeSchema.value[n]?.name ?? String(n);

let cursor = process.env.EVENTS_CURSOR ?? ""; // load the last processed cursor here; "" = from now

for (let attempt = 0; ; attempt++) {
  try {
    for await (const msg of client.watch({ after: cursor }, { headers })) {
      if (msg.kind.case === "event") {
        const e = msg.kind.value;
        // Process the event, then keep its cursor (store it in the same transaction as what you
        // derived from the event, to be exact).
        console.log(operation(e.operation), resourceType(e.resourceType), e.resourceId);
        cursor = e.cursor;
      } else if (msg.kind.case === "checkpoint") {
        cursor = msg.kind.value.cursor;
      }
      attempt = 0;
    }
    break; // environment scope: the environment was deleted
  } catch (err) {
    const error = ConnectError.from(err);
    console.error(`feed: ${error.message}; resuming`);
    if (error.code === Code.OutOfRange) cursor = ""; // too old: refetch, then from now
    await new Promise((r) => setTimeout(r, Math.min(30_000, 250 * 2 ** attempt)));
  }
}
