// Watch events with the official TypeScript SDK (@gitpod/sdk) pointed at this server.
//
//   GITPOD_BASE_URL=http://127.0.0.1:8080/api GITPOD_API_KEY=dev-member-token node examples/watch.mjs
//
// An ES module (.mjs), so it runs as it is on Node 20 and 24 alike. In a project of your own:
// `npm install @gitpod/sdk`, then save this as watch.mjs (or set "type": "module" in package.json).
import Gitpod from "@gitpod/sdk";

const client = new Gitpod(); // reads GITPOD_BASE_URL (note the /api) and GITPOD_API_KEY
const stream = await client.events.watch({}); // or { environmentId: "…" }
for await (const event of stream) {
  console.log(event.operation, event.resourceType, event.resourceId);
}
