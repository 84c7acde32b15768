import { rmSync, writeFileSync } from "node:fs";
import * as http from "node:http";
import { Code, ConnectError } from "@connectrpc/connect";
import { SignJWT } from "jose";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Operation, ResourceType } from "../src/watch/model.js";
import { collectUntil, ev, publish, type SeenEvent } from "./helpers/clients.js";
import { ORG_A, ORG_B, TOKEN_ENTRIES, TOKENS, USERS, uuid } from "./helpers/fixtures.js";
import { startServer, type TestServer } from "./helpers/server.js";
import { connectClients, sdkClient, type Watch, type WatchClient } from "./helpers/watchers.js";

const JWT_SECRET = "a-test-secret-that-is-at-least-32-characters-long";
const connectJson = connectClients[0] as WatchClient;
const connectH2 = connectClients[1] as WatchClient;

let server: TestServer;
beforeAll(async () => {
  server = await startServer({ AUTH_JWT_SECRET: JWT_SECRET });
});
afterAll(async () => {
  await server?.close();
});

// Every test leaves no watcher behind, so the next one can count its own.
const opened: Watch[] = [];
afterEach(async () => {
  for (const w of opened.splice(0)) w.close();
  await expect.poll(() => server.bus.subscriberCount).toBe(0);
});

/** Opens a watch and waits until the server has subscribed it. */
async function open(
  client: WatchClient,
  token: string,
  body: Record<string, unknown> = {},
): Promise<Watch> {
  const before = server.bus.subscriberCount;
  const watch = await client.open(server.url, token, body);
  opened.push(watch);
  // A loaded machine (CI runs test files in parallel on two cores) may take over a second.
  await expect.poll(() => server.bus.subscriberCount, { timeout: 5000 }).toBe(before + 1);
  return watch;
}

/** Publishes a marker every watcher of ORG_A sees, then returns what arrived up to it. */
async function drainUntilMarker(watches: Watch[]): Promise<string[][]> {
  const marker = uuid();
  await publish(server.url, [ev(ResourceType.PROJECT, Operation.UPDATE, marker)]);
  const out: string[][] = [];
  for (const w of watches) {
    const got = await collectUntil<SeenEvent>(w.events, (e) => e.resourceId === marker);
    out.push(got.slice(0, -1).map((e) => e.resourceId));
  }
  return out;
}

async function failureOf(watch: Watch): Promise<unknown> {
  try {
    for (let r = await watch.events.next(); !r.done; r = await watch.events.next()) {}
  } catch (err) {
    return err;
  }
  return undefined;
}

async function openError(client: WatchClient, token: string, body: Record<string, unknown>) {
  try {
    const w = await client.open(server.url, token, body);
    await w.events.next();
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the watch to be refused");
}

describe("organization scope visibility", () => {
  it("shows members what every member may see and their own resources; admins see everything", async () => {
    const member = await open(connectJson, TOKENS.memberA);
    const admin = await open(sdkClient, TOKENS.adminA);
    const ownEnv = uuid();
    const othersEnv = uuid();
    const secret = uuid();
    const project = uuid();
    const task = uuid();
    await publish(server.url, [
      ev(ResourceType.ENVIRONMENT, Operation.CREATE, ownEnv, { creatorId: USERS.memberA }),
      ev(ResourceType.ENVIRONMENT, Operation.CREATE, othersEnv, { creatorId: USERS.otherMemberA }),
      ev(ResourceType.SECRET, Operation.CREATE, secret, { creatorId: USERS.memberA }),
      ev(ResourceType.PROJECT, Operation.CREATE, project),
      ev(ResourceType.TASK, Operation.CREATE, task, { environmentId: ownEnv }),
      ev(ResourceType.PROJECT, Operation.CREATE, uuid(), { organizationId: ORG_B }),
      // A DELETE without creator_id is still shown to the creator the server learned.
      ev(ResourceType.ENVIRONMENT, Operation.DELETE, ownEnv),
    ]);
    const [m, a] = await drainUntilMarker([member, admin]);
    expect(m).toEqual([ownEnv, project, ownEnv]);
    expect(a).toEqual([ownEnv, othersEnv, secret, project, ownEnv]);
    member.close();
    admin.close();
  });

  it("narrows with filters and never widens with them", async () => {
    const p1 = uuid();
    const p2 = uuid();
    const filtered = await open(connectH2, TOKENS.memberA, {
      resourceTypeFilters: [
        { resourceType: "RESOURCE_TYPE_PROJECT", resourceIds: [p1] },
        { resourceType: "RESOURCE_TYPE_SECRET" },
        { resourceType: "RESOURCE_TYPE_ENVIRONMENT", creatorIds: [USERS.memberA] },
      ],
    });
    const env = uuid();
    await publish(server.url, [
      ev(ResourceType.PROJECT, Operation.UPDATE, p1),
      ev(ResourceType.PROJECT, Operation.UPDATE, p2),
      ev(ResourceType.SECRET, Operation.CREATE, uuid(), { creatorId: USERS.memberA }),
      ev(ResourceType.ENVIRONMENT, Operation.CREATE, env, { creatorId: USERS.memberA }),
      ev(ResourceType.RUNNER, Operation.UPDATE, uuid()),
    ]);
    // The marker is a PROJECT update of another id: use a filter-visible marker instead.
    await publish(server.url, [ev(ResourceType.PROJECT, Operation.DELETE, p1)]);
    const got = await collectUntil<SeenEvent>(
      filtered.events,
      (e) => e.operation === "RESOURCE_OPERATION_DELETE",
    );
    expect(got.map((e) => e.resourceId)).toEqual([p1, env, p1]);
    filtered.close();
  });

  it.each([
    [
      { resourceTypeFilters: [{ resourceType: "RESOURCE_TYPE_UNSPECIFIED" }] },
      "resource_type_filters[0].resource_type",
    ],
    [
      { resourceTypeFilters: [{ resourceType: 3, resourceIds: ["x"] }] },
      "resource_type_filters[0].resource_ids[0]: not a UUID",
    ],
    [{ environmentId: "not-a-uuid" }, "environment_id: not a UUID"],
    [
      { resourceTypeFilters: Array.from({ length: 51 }, () => ({ resourceType: 3 })) },
      "resource_type_filters: at most 50",
    ],
  ])(
    "refuses an invalid request with invalid_argument naming the field (%j)",
    async (body, field) => {
      const err = await openError(connectJson, TOKENS.memberA, body);
      expect(err.code).toBe(Code.InvalidArgument);
      expect(err.rawMessage).toContain(field);
    },
  );
});

describe("environment scope", () => {
  it("streams the environment and its tasks and services, then ends normally after its DELETE", async () => {
    const env = uuid();
    const otherEnv = uuid();
    await publish(server.url, [
      ev(ResourceType.ENVIRONMENT, Operation.CREATE, env, { creatorId: USERS.memberA }),
      ev(ResourceType.ENVIRONMENT, Operation.CREATE, otherEnv, { creatorId: USERS.memberA }),
    ]);
    const watch = await open(sdkClient, TOKENS.memberA, { environmentId: env });
    const task = uuid();
    const exec = uuid();
    const svc = uuid();
    await publish(server.url, [
      ev(ResourceType.ENVIRONMENT, Operation.UPDATE_STATUS, env),
      ev(ResourceType.TASK, Operation.CREATE, task, { environmentId: env }),
      ev(ResourceType.TASK, Operation.CREATE, uuid(), { environmentId: otherEnv }),
      ev(ResourceType.TASK_EXECUTION, Operation.CREATE, exec, { environmentId: env }),
      ev(ResourceType.PROJECT, Operation.UPDATE, uuid()),
      ev(ResourceType.SERVICE, Operation.UPDATE_STATUS, svc, { environmentId: env }),
      ev(ResourceType.SERVICE, Operation.DELETE, svc, { environmentId: env }),
      ev(ResourceType.ENVIRONMENT, Operation.DELETE, env),
    ]);
    const got: SeenEvent[] = [];
    for (let r = await watch.events.next(); !r.done; r = await watch.events.next())
      got.push(r.value);
    expect(got.map((e) => [e.resourceType, e.operation, e.resourceId])).toEqual([
      ["RESOURCE_TYPE_ENVIRONMENT", "RESOURCE_OPERATION_UPDATE_STATUS", env],
      ["RESOURCE_TYPE_TASK", "RESOURCE_OPERATION_CREATE", task],
      ["RESOURCE_TYPE_TASK_EXECUTION", "RESOURCE_OPERATION_CREATE", exec],
      ["RESOURCE_TYPE_SERVICE", "RESOURCE_OPERATION_UPDATE_STATUS", svc],
      ["RESOURCE_TYPE_SERVICE", "RESOURCE_OPERATION_DELETE", svc],
      ["RESOURCE_TYPE_ENVIRONMENT", "RESOURCE_OPERATION_DELETE", env],
    ]);
  });

  it("lets an admin of the organization watch any environment of it", async () => {
    const env = uuid();
    await publish(server.url, [
      ev(ResourceType.ENVIRONMENT, Operation.CREATE, env, { creatorId: USERS.memberA }),
    ]);
    const watch = await open(connectH2, TOKENS.adminA, { environmentId: env });
    await publish(server.url, [ev(ResourceType.ENVIRONMENT, Operation.DELETE, env)]);
    const got = await collectUntil<SeenEvent>(watch.events, () => false);
    expect(got.map((e) => e.operation)).toEqual(["RESOURCE_OPERATION_DELETE"]);
  });

  it("answers unknown and invisible environments alike with not_found", async () => {
    const env = uuid();
    await publish(server.url, [
      ev(ResourceType.ENVIRONMENT, Operation.CREATE, env, { creatorId: USERS.memberA }),
    ]);
    const unknown = await openError(connectJson, TOKENS.memberA, { environmentId: uuid() });
    const notCreator = await openError(connectJson, TOKENS.otherMemberA, { environmentId: env });
    const otherOrg = await openError(connectJson, TOKENS.adminB, { environmentId: env });
    for (const err of [unknown, notCreator, otherOrg]) expect(err.code).toBe(Code.NotFound);
    expect(notCreator.rawMessage).toBe(
      unknown.rawMessage.replace(/environment [0-9a-f-]+ /, `environment ${env} `),
    );
  });

  it("refuses filters with environment scope", async () => {
    const err = await openError(connectJson, TOKENS.adminA, {
      environmentId: uuid(),
      resourceTypeFilters: [{ resourceType: "RESOURCE_TYPE_TASK" }],
    });
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toContain("resource_type_filters");
  });
});

describe("credentials over time", () => {
  it("ends a stream opened with a JWT with unauthenticated when the token expires", async () => {
    const jwt = await new SignJWT({ org: ORG_A, role: "member" })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject(USERS.memberA)
      .setExpirationTime(Math.floor(Date.now() / 1000) + 2)
      .sign(new TextEncoder().encode(JWT_SECRET));
    const watch = await open(connectH2, jwt);
    const err = ConnectError.from(await failureOf(watch));
    expect(err.code).toBe(Code.Unauthenticated);
    expect(err.rawMessage).toBe("token expired");
  });

  /** The HTTP status of a ListAuditLogs call with `token`: 401 once the server forgot it. */
  async function auditStatus(token: string): Promise<number> {
    const res = await fetch(`${server.url}/gitpod.v1.EventService/ListAuditLogs`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: "{}",
    });
    await res.arrayBuffer();
    return res.status;
  }

  /** Writes every fixture token back and waits until the server knows `token` again. */
  async function restoreTokens(token: string): Promise<void> {
    writeFileSync(server.tokensFile, JSON.stringify({ tokens: TOKEN_ENTRIES }));
    await expect.poll(() => auditStatus(token), { timeout: 5000 }).toBe(403);
  }

  /** A POST whose body is sent in two parts: `first`, then, once `between` resolves, `rest`. */
  function slowPost(path: string, token: string, contentType: string, first: string, rest: string) {
    let status = 0;
    let body = "";
    const req = http.request(`${server.url}${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": contentType },
    });
    const answered = new Promise<void>((resolve, reject) => {
      req.on("response", (res) => {
        status = res.statusCode ?? 0;
        res.setEncoding("utf8");
        res.on("data", (c: string) => {
          body += c;
        });
        res.on("end", resolve);
        res.on("error", resolve);
      });
      req.on("error", reject);
    });
    req.flushHeaders();
    req.write(first);
    return {
      finish: async () => {
        req.end(rest);
        await answered;
        return { status, body };
      },
    };
  }

  /** Rewrites the token file without `token` and waits until the server no longer knows it. */
  async function removeToken(token: string): Promise<void> {
    writeFileSync(
      server.tokensFile,
      JSON.stringify({ tokens: TOKEN_ENTRIES.filter((t) => t.token !== token) }),
    );
    await expect.poll(() => auditStatus(token), { timeout: 5000 }).toBe(401);
  }

  it("refuses a watch whose token was removed while its request body was on the way", async () => {
    const watch = slowPost(
      "/gitpod.v1.EventService/WatchEvents",
      TOKENS.otherMemberA,
      "application/jsonl",
      "{",
      "}",
    );
    try {
      await removeToken(TOKENS.otherMemberA);
      const answer = await watch.finish();
      expect(answer.status).toBe(401);
      expect(JSON.parse(answer.body)).toMatchObject({ code: "unauthenticated" });
      expect(server.bus.subscriberCount).toBe(0);
    } finally {
      await restoreTokens(TOKENS.otherMemberA);
    }
  });

  it("refuses a publish whose token was removed while its request body was on the way", async () => {
    const id = uuid();
    const body = JSON.stringify({ events: [ev(ResourceType.PROJECT, Operation.CREATE, id)] });
    const before = await server.store.lastSequence();
    const call = slowPost(
      "/eventservice.ingest.v1.IngestService/Publish",
      TOKENS.publisherA,
      "application/json",
      body.slice(0, 10),
      body.slice(10),
    );
    try {
      await removeToken(TOKENS.publisherA);
      const answer = await call.finish();
      expect(answer.status).toBe(401);
      expect(JSON.parse(answer.body)).toMatchObject({ code: "unauthenticated" });
      expect(await server.store.lastSequence()).toBe(before);
    } finally {
      await restoreTokens(TOKENS.publisherA);
    }
  });

  it("refuses a JWT without exp: it would never expire", async () => {
    const jwt = await new SignJWT({ org: ORG_A, role: "member" })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject(USERS.memberA)
      .sign(new TextEncoder().encode(JWT_SECRET));
    const err = await openError(connectJson, jwt, {});
    expect(err.code).toBe(Code.Unauthenticated);
    expect(err.rawMessage).toBe("token: exp is required (tokens must expire)");
  });

  it("revokes every token of a deleted token file, ending their streams", async () => {
    const watch = await open(connectJson, TOKENS.otherMemberA);
    rmSync(server.tokensFile);
    try {
      expect(ConnectError.from(await failureOf(watch)).code).toBe(Code.Unauthenticated);
      const err = await openError(connectJson, TOKENS.memberA, {});
      expect(err.code).toBe(Code.Unauthenticated);
    } finally {
      // Known again (a member may not read audit logs: 403, not 401).
      await restoreTokens(TOKENS.memberA);
    }
  });

  it("ends the streams of a token removed from the token file with unauthenticated", async () => {
    const jsonl = await open(sdkClient, TOKENS.otherMemberA);
    const connect = await open(connectJson, TOKENS.otherMemberA);
    const kept = await open(connectJson, TOKENS.memberA);
    writeFileSync(
      server.tokensFile,
      JSON.stringify({ tokens: TOKEN_ENTRIES.filter((t) => t.token !== TOKENS.otherMemberA) }),
    );
    const [e1, e2] = await Promise.all([failureOf(jsonl), failureOf(connect)]);
    expect(e1).toBeDefined(); // the JSONL stream is aborted, and the SDK raises
    expect(ConnectError.from(e2).code).toBe(Code.Unauthenticated);
    // Other credentials keep streaming.
    const [kept1] = await drainUntilMarker([kept]);
    expect(kept1).toEqual([]);
    kept.close();
    writeFileSync(server.tokensFile, JSON.stringify({ tokens: TOKEN_ENTRIES }));
  });
});
