// List the audit log with the official TypeScript SDK. Only admins and auditors may read it:
// a member's token gets permission_denied.
//
//   GITPOD_BASE_URL=http://127.0.0.1:8080/api GITPOD_API_KEY=dev-admin-token node examples/audit.mjs
import Gitpod from "@gitpod/sdk";

const client = new Gitpod();
let n = 0;
// The SDK follows pagination.nextToken itself; stop after 10 entries here.
for await (const entry of client.events.list({ pageSize: 10 })) {
  console.log(entry.action, entry.subjectType, entry.subjectId, "by", entry.actorId);
  if (++n === 10) break;
}
