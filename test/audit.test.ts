import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import Gitpod from "@gitpod/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IngestService } from "../src/gen/eventservice/ingest/v1/ingest_pb.js";
import { EventService } from "../src/gen/gitpod/v1/event_pb.js";
import { Operation, ResourceType } from "../src/watch/model.js";
import { bearer, type EventInit, publish } from "./helpers/clients.js";
import { ORG_A, ORG_B, TOKENS, USERS, uuid } from "./helpers/fixtures.js";
import { startServer, type TestServer } from "./helpers/server.js";

/** A project of ORG_B created by its admin, a user: an audited change. */
function projectCreatedByAdminB(): EventInit {
  return {
    resourceType: ResourceType.PROJECT,
    operation: Operation.CREATE,
    resourceId: uuid(),
    organizationId: ORG_B,
    actorId: USERS.adminB,
    actorPrincipal: 2,
  };
}

let server: TestServer;
const T0 = Date.parse("2026-01-01T00:00:00Z");
const subjects: string[] = [];

beforeAll(async () => {
  server = await startServer();
  // 120 audited changes in ORG_A one second apart, 5 in ORG_B, and some without an actor.
  const events: EventInit[] = [];
  for (let i = 0; i < 120; i++) {
    const id = uuid();
    subjects.push(id);
    events.push({
      resourceType: ResourceType.ENVIRONMENT,
      operation: Operation.UPDATE,
      resourceId: id,
      organizationId: ORG_A,
      actorId: i % 2 === 0 ? USERS.memberA : USERS.adminA,
      actorPrincipal: 2,
      action: i % 3 === 0 ? "environment.start" : "",
      occurredAt: { seconds: BigInt((T0 + i * 1000) / 1000), nanos: 0 },
    });
  }
  for (let i = 0; i < 5; i++) {
    events.push(projectCreatedByAdminB());
  }
  events.push({
    resourceType: ResourceType.RUNNER,
    operation: Operation.UPDATE_STATUS,
    resourceId: uuid(),
    organizationId: ORG_A,
  });
  await publish(server.url, events);
});
afterAll(async () => {
  await server?.close();
});

const sdk = (token: string) =>
  new Gitpod({ bearerToken: token, baseURL: `${server.url}/api`, maxRetries: 0 });

describe("ListAuditLogs through the official SDK", () => {
  it("auto-pages through 120 entries with pageSize 50, each exactly once, newest first", async () => {
    const seen: string[] = [];
    const times: number[] = [];
    for await (const entry of sdk(TOKENS.adminA).events.list({ pageSize: 50 })) {
      seen.push(entry.subjectId ?? "");
      times.push(Date.parse(entry.createdAt ?? ""));
    }
    expect(seen).toHaveLength(120);
    expect(new Set(seen)).toEqual(new Set(subjects));
    expect(times).toEqual([...times].sort((a, b) => b - a));
  });

  it("shows the fields of an entry: actor, principal, subject, derived or given action, kind", async () => {
    // `sort` is part of the API; this SDK version's types do not list it yet.
    const page = await sdk(TOKENS.auditorA).events.list({
      pageSize: 2,
      filter: { subjectIds: [subjects[0] as string, subjects[1] as string] },
      sort: { field: "createdAt", order: "SORT_ORDER_ASC" },
    } as Parameters<ReturnType<typeof sdk>["events"]["list"]>[0]);
    expect(
      page.entries.map((e) => [
        e.subjectId,
        e.actorId,
        e.actorPrincipal,
        e.action,
        (e as { kind?: string }).kind,
      ]),
    ).toEqual([
      [
        subjects[0],
        USERS.memberA,
        "PRINCIPAL_USER",
        "environment.start",
        "AUDIT_LOG_ENTRY_KIND_RESOURCE_CHANGE",
      ],
      [
        subjects[1],
        USERS.adminA,
        "PRINCIPAL_USER",
        "environment.update",
        "AUDIT_LOG_ENTRY_KIND_RESOURCE_CHANGE",
      ],
    ]);
    expect(page.entries[0]?.createdAt).toBe("2026-01-01T00:00:00Z");
  });

  it("filters by actor and by a time range, from inclusive and to exclusive", async () => {
    const count = async (filter: Record<string, unknown>) => {
      let n = 0;
      for await (const _ of sdk(TOKENS.adminA).events.list({ pageSize: 100, filter })) n++;
      return n;
    };
    expect(await count({ actorIds: [USERS.memberA] })).toBe(60);
    expect(await count({ from: "2026-01-01T00:00:10Z", to: "2026-01-01T00:00:20Z" })).toBe(10);
    expect(await count({ subjectTypes: ["RESOURCE_TYPE_PROJECT"] })).toBe(0);
  });

  it("refuses members with permission_denied and never shows another organization", async () => {
    await expect(sdk(TOKENS.memberA).events.list({})).rejects.toMatchObject({ status: 403 });
    let n = 0;
    for await (const e of sdk(TOKENS.adminB).events.list({ pageSize: 100 })) {
      expect(subjects).not.toContain(e.subjectId);
      n++;
    }
    expect(n).toBe(5);
  });
});

describe("GetAuditLog", () => {
  const client = () =>
    createClient(
      EventService,
      createConnectTransport({ baseUrl: server.url, httpVersion: "1.1", useHttpGet: true }),
    );

  it("returns one entry of the caller's organization, over Connect GET", async () => {
    const list = await client().listAuditLogs(
      { pagination: { pageSize: 1 } },
      { headers: bearer(TOKENS.adminA) },
    );
    const id = list.entries[0]?.id ?? "";
    const got = await client().getAuditLog(
      { auditLogEntryId: id },
      { headers: bearer(TOKENS.adminA) },
    );
    expect(got.entry?.id).toBe(id);
    expect(got.details).toBeUndefined();
    const err = await client()
      .getAuditLog({ auditLogEntryId: id }, { headers: bearer(TOKENS.adminB) })
      .then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
    expect(err?.code).toBe(Code.NotFound);
  });
});

describe("occurred_at out of range", () => {
  const YEAR_10000_MS = Date.UTC(10000, 0, 1);
  let own: TestServer;
  beforeAll(async () => {
    own = await startServer();
  });
  afterAll(() => own?.close());

  it("refuses a binary publish in the year 10000 (or before 2000) with invalid_argument naming the field", async () => {
    const client = createClient(IngestService, createGrpcTransport({ baseUrl: own.url }));
    for (const ms of [YEAR_10000_MS, Date.now() + 10 * 60_000, Date.UTC(1999, 11, 31)]) {
      const err = await client
        .publish(
          {
            events: [
              {
                resourceType: ResourceType.PROJECT,
                operation: Operation.UPDATE,
                resourceId: uuid(),
                organizationId: ORG_A,
                actorId: USERS.adminA,
                occurredAt: { seconds: BigInt(Math.floor(ms / 1000)), nanos: 0 },
              },
            ],
          },
          { headers: bearer(TOKENS.publisher) },
        )
        .then(
          () => undefined,
          (e: unknown) => ConnectError.from(e),
        );
      expect(err?.code).toBe(Code.InvalidArgument);
      expect(err?.rawMessage).toMatch(/^events\[0\]\.occurred_at: /);
    }
    expect(await own.store.lastSequence()).toBe(0);
  });

  it("serves JSON clients an entry stored in the year 10000 (before the bound), and pages past it", async () => {
    // Written as an older server would have, without the bound.
    const subject = uuid();
    await own.store.append(
      [
        {
          resourceType: ResourceType.PROJECT,
          operation: Operation.UPDATE,
          resourceId: subject,
          organizationId: ORG_B,
          environmentId: "",
          creatorId: "",
          actorId: USERS.adminB,
          actorPrincipal: 2,
          occurredAtMs: YEAR_10000_MS,
        },
      ],
      Date.now(),
    );
    await publish(own.url, [projectCreatedByAdminB()]);
    const seen: string[] = [];
    const ownSdk = new Gitpod({
      bearerToken: TOKENS.adminB,
      baseURL: `${own.url}/api`,
      maxRetries: 0,
    });
    for await (const entry of ownSdk.events.list({ pageSize: 1 })) {
      seen.push(entry.createdAt ?? "");
    }
    expect(seen).toHaveLength(2);
    expect(seen[0]).toBe("9999-12-31T23:59:59.999Z");
    const json = createClient(
      EventService,
      createConnectTransport({ baseUrl: own.url, httpVersion: "1.1" }),
    );
    const asc = await json.listAuditLogs(
      { pagination: { pageSize: 1 }, sort: { field: "createdAt", order: 1 } },
      { headers: bearer(TOKENS.adminB) },
    );
    const next = await json.listAuditLogs(
      {
        pagination: { pageSize: 1, token: asc.pagination?.nextToken ?? "" },
        sort: { field: "createdAt", order: 1 },
      },
      { headers: bearer(TOKENS.adminB) },
    );
    expect(next.entries.map((e) => e.subjectId)).toEqual([subject]);
    expect(next.pagination?.nextToken).toBe("");
    const got = await json.getAuditLog(
      { auditLogEntryId: next.entries[0]?.id ?? "" },
      { headers: bearer(TOKENS.adminB) },
    );
    expect(got.entry?.subjectId).toBe(subject);
  });
});
