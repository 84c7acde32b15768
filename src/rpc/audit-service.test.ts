import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import {
  type Client,
  Code,
  ConnectError,
  createClient,
  createRouterTransport,
  type Interceptor,
} from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import type { Authenticator } from "../auth/authenticator.js";
import { ServiceError, toConnectError } from "../errors.js";
import {
  EventService,
  type ListAuditLogsRequestSchema,
  type ListAuditLogsResponse,
  ListAuditLogsResponse_AuditLogEntrySchema,
  type ResourceType,
} from "../gen/gitpod/v1/event_pb.js";
import { PaginationRequestSchema } from "../gen/gitpod/v1/pagination_pb.js";
import type { AuditEntry, AuditPageQuery, Store } from "../store/store.js";
import type { Principal, Role } from "../watch/model.js";
import { type AuditServiceDeps, createAuditService, pagingOf } from "./audit-service.js";
import { createCallAuthentication } from "./authenticate.js";
import { encodePageToken } from "./page-token.js";

function uuid(n: number, prefix = "00000000"): string {
  return `${prefix}-0000-4000-8000-${n.toString(16).padStart(12, "0")}`;
}

const ORG_A = uuid(1, "0a0a0a0a");
const ORG_B = uuid(2, "0b0b0b0b");
const SECRET = new Uint8Array(32).fill(7);
const T0 = 1_767_225_600_000;

/** Entries of ORG_A: 120 of them, three per ms (so ties on time are broken by id). */
function orgAEntries(count = 120): AuditEntry[] {
  return Array.from({ length: count }, (_, i) => ({
    id: uuid(1000 + ((i * 37) % count), "aaaaaaaa"),
    organizationId: ORG_A,
    actorId: uuid(i % 4, "ac7000aa"),
    actorPrincipal: 2,
    subjectId: uuid(i % 10, "5b000000"),
    subjectType: (i % 3) + 1,
    action: "environment.update",
    createdAtMs: T0 + Math.floor(i / 3),
    kind: 3,
  }));
}

function orgBEntries(): AuditEntry[] {
  return Array.from({ length: 5 }, (_, i) => ({
    id: uuid(2000 + i, "bbbbbbbb"),
    organizationId: ORG_B,
    actorId: uuid(9, "ac7000bb"),
    actorPrincipal: 5,
    subjectId: uuid(i, "5b000000"),
    subjectType: 7,
    action: "organization.update",
    createdAtMs: T0 + 10_000 + i,
    kind: 3,
  }));
}

/** The reference semantics of Store.listAudit, over an array. */
function compare(a: AuditEntry, b: { createdAtMs: number; id: string }): number {
  if (a.createdAtMs !== b.createdAtMs) return a.createdAtMs - b.createdAtMs;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

interface FakeStore extends Pick<Store, "listAudit" | "getAudit" | "secret"> {
  readonly queries: AuditPageQuery[];
  failWith: unknown;
}

function fakeStore(entries: readonly AuditEntry[]): FakeStore {
  const store: FakeStore = {
    queries: [],
    failWith: undefined,
    async listAudit(q) {
      store.queries.push(q);
      if (store.failWith !== undefined) throw store.failWith;
      const f = q.filter;
      const within = <T>(list: readonly T[], v: T) => list.length === 0 || list.includes(v);
      const dir = q.descending ? -1 : 1;
      return entries
        .filter(
          (e) =>
            e.organizationId === f.organizationId &&
            within(f.actorIds, e.actorId) &&
            within(f.actorPrincipals, e.actorPrincipal) &&
            within(f.subjectIds, e.subjectId) &&
            within(f.subjectTypes, e.subjectType) &&
            (f.fromMs === undefined || e.createdAtMs >= f.fromMs) &&
            (f.toMs === undefined || e.createdAtMs < f.toMs) &&
            (q.after === undefined || compare(e, q.after) * dir > 0),
        )
        .sort((a, b) => compare(a, b) * dir)
        .slice(0, q.limit);
    },
    async getAudit(organizationId, id) {
      if (store.failWith !== undefined) throw store.failWith;
      return entries.find((e) => e.organizationId === organizationId && e.id === id);
    },
    async secret() {
      return SECRET;
    },
  };
  return store;
}

function principal(role: Role, organization: string | undefined): Principal {
  return { subject: uuid(77), organization, role, expiresAtMs: undefined, credentialId: role };
}

/** Bearer tokens of the tests, each standing for one principal. */
const PRINCIPALS: Record<string, Principal> = {
  admin: principal("admin", ORG_A),
  auditor: principal("auditor", ORG_A),
  member: principal("member", ORG_A),
  publisher: principal("publisher", ORG_A),
  "global-publisher": principal("publisher", undefined),
  "admin-b": principal("admin", ORG_B),
  "auditor-b": principal("auditor", ORG_B),
};

const authenticator: Authenticator = {
  async authenticate(authorization) {
    const p = PRINCIPALS[authorization?.replace(/^Bearer /, "") ?? ""];
    if (p === undefined) throw new ServiceError("unauthenticated", "unknown token");
    return p;
  },
  isValid: () => true,
  onRevoke: () => () => {},
  close: () => {},
};

interface Harness {
  readonly store: FakeStore;
  readonly funneled: string[];
  client(options?: {
    query?: () => string;
    useHttpGet?: boolean;
    binary?: boolean;
  }): Client<typeof EventService>;
}

function harness(entries: readonly AuditEntry[] = [...orgAEntries(), ...orgBEntries()]): Harness {
  const store = fakeStore(entries);
  const funneled: string[] = [];
  const deps: AuditServiceDeps = {
    store,
    funnel: (err, rpc) => {
      funneled.push(rpc);
      return toConnectError(err);
    },
  };
  return {
    store,
    funneled,
    client(options = {}) {
      // Appends a query string to the request URL, as the official SDKs do on a POST.
      const withQuery: Interceptor = (next) => async (req) => {
        const query = options.query?.() ?? "";
        return next({ ...req, url: query === "" ? req.url : `${req.url}?${query}` });
      };
      const transport = createRouterTransport(
        (router) => router.service(EventService, createAuditService(deps)),
        {
          router: { requestGate: createCallAuthentication(authenticator).requestGate },
          transport: {
            interceptors: [withQuery],
            useBinaryFormat: options.binary === true,
            ...(options.useHttpGet && { useHttpGet: true }),
          },
        },
      );
      return createClient(EventService, transport);
    },
  };
}

const as = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });

async function codeOf(call: Promise<unknown>): Promise<[Code, string]> {
  try {
    await call;
  } catch (err) {
    const e = ConnectError.from(err);
    return [e.code, e.rawMessage];
  }
  throw new Error("expected the call to fail");
}

/** A request as the tests write it (the init form, never an already built message). */
type ListInit = Exclude<MessageInitShape<typeof ListAuditLogsRequestSchema>, { $typeName: string }>;

/** Follows next_token through the body until it is empty; returns every page. */
async function allPages(
  client: Client<typeof EventService>,
  req: ListInit,
  token = "admin",
): Promise<ListAuditLogsResponse[]> {
  const pages: ListAuditLogsResponse[] = [];
  let next = "";
  do {
    const page = await client.listAuditLogs(
      { ...req, pagination: { ...req.pagination, token: next } },
      as(token),
    );
    pages.push(page);
    next = page.pagination?.nextToken ?? "";
  } while (next !== "" && pages.length < 100);
  return pages;
}

const ids = (pages: readonly ListAuditLogsResponse[]) =>
  pages.flatMap((p) => p.entries.map((e) => e.id));

function expected(entries: readonly AuditEntry[], descending: boolean): string[] {
  const dir = descending ? -1 : 1;
  return [...entries].sort((a, b) => compare(a, b) * dir).map((e) => e.id);
}

describe("ListAuditLogs", () => {
  it("pages through 120 entries 50 at a time, giving each exactly once, newest first", async () => {
    const h = harness();
    const pages = await allPages(h.client(), { pagination: { pageSize: 50 } });
    expect(pages.map((p) => p.entries.length)).toEqual([50, 50, 20]);
    expect(pages.at(-1)?.pagination?.nextToken).toBe("");
    expect(ids(pages)).toEqual(expected(orgAEntries(), true));
    expect(new Set(ids(pages)).size).toBe(120);
    // One more than a page is asked for, to know whether another follows.
    expect(h.store.queries.map((q) => q.limit)).toEqual([51, 51, 51]);
  });

  it("gives 25 entries, newest first, when nothing is asked for", async () => {
    const res = await harness().client().listAuditLogs({}, as("admin"));
    expect(res.entries.map((e) => e.id)).toEqual(expected(orgAEntries(), true).slice(0, 25));
    expect(res.pagination?.nextToken).not.toBe("");
  });

  it.each([
    ["SORT_ORDER_ASC, oldest first", 1, false],
    ["SORT_ORDER_DESC, newest first", 2, true],
    ["SORT_ORDER_UNSPECIFIED, newest first", 0, true],
  ])("sorts by createdAt with %s, across pages", async (_, order, descending) => {
    const pages = await allPages(harness().client(), {
      pagination: { pageSize: 50 },
      sort: { field: "createdAt", order },
    });
    expect(ids(pages)).toEqual(expected(orgAEntries(), descending));
  });

  it("gives an empty page with no next token when nothing matches", async () => {
    const res = await harness([]).client().listAuditLogs({}, as("admin"));
    expect(res.entries).toEqual([]);
    expect(res.pagination?.nextToken).toBe("");
  });

  it("ends without a next token when the last page is exactly full", async () => {
    const pages = await allPages(harness(orgAEntries(100)).client(), {
      pagination: { pageSize: 50 },
    });
    expect(pages.map((p) => p.entries.length)).toEqual([50, 50]);
  });

  it("lets the page size change between pages", async () => {
    const client = harness().client();
    const first = await client.listAuditLogs({ pagination: { pageSize: 50 } }, as("admin"));
    const second = await client.listAuditLogs(
      { pagination: { pageSize: 10, token: first.pagination?.nextToken ?? "" } },
      as("admin"),
    );
    expect(second.entries.map((e) => e.id)).toEqual(expected(orgAEntries(), true).slice(50, 60));
  });

  it("maps every field of an entry", async () => {
    const entry: AuditEntry = {
      id: uuid(5, "e0e0e0e0"),
      organizationId: ORG_A,
      actorId: uuid(6, "ac7000aa"),
      actorPrincipal: 5,
      subjectId: uuid(7, "5b000000"),
      subjectType: 42,
      action: "webhook.create",
      createdAtMs: T0 + 123,
      kind: 3,
    };
    const res = await harness([entry]).client().listAuditLogs({}, as("auditor"));
    const got = res.entries[0];
    expect(got?.createdAt && timestampMs(got.createdAt)).toBe(T0 + 123);
    expect(got && { ...got, createdAt: undefined }).toEqual(
      create(ListAuditLogsResponse_AuditLogEntrySchema, {
        id: entry.id,
        actorId: entry.actorId,
        actorPrincipal: 5,
        subjectId: entry.subjectId,
        subjectType: 42,
        action: "webhook.create",
        kind: 3,
      }),
    );
  });

  it("passes the filter to the store, UUIDs in lower case, bounds rounded up to whole ms", async () => {
    const h = harness();
    const actor = uuid(1, "ac7000aa");
    await h.client().listAuditLogs(
      {
        filter: {
          actorIds: [actor.toUpperCase()],
          actorPrincipals: [2],
          subjectIds: [uuid(3, "5b000000")],
          subjectTypes: [1, 2],
          from: { seconds: BigInt(Math.floor(T0 / 1000)), nanos: 1_500_000 },
          to: { seconds: BigInt(Math.floor(T0 / 1000) + 1), nanos: 0 },
        },
      },
      as("admin"),
    );
    expect(h.store.queries[0]).toEqual({
      filter: {
        organizationId: ORG_A,
        actorIds: [actor],
        actorPrincipals: [2],
        subjectIds: [uuid(3, "5b000000")],
        subjectTypes: [1, 2],
        fromMs: T0 + 2,
        toMs: T0 + 1000,
      },
      descending: true,
      limit: 26,
    });
  });

  it("selects what the filter says", async () => {
    const subject = uuid(3, "5b000000");
    const pages = await allPages(harness().client(), {
      filter: {
        subjectIds: [subject],
        from: timestampFromMs(T0 + 10),
        to: timestampFromMs(T0 + 30),
      },
      pagination: { pageSize: 2 },
    });
    const want = orgAEntries().filter(
      (e) => e.subjectId === subject && e.createdAtMs >= T0 + 10 && e.createdAtMs < T0 + 30,
    );
    expect(want.length).toBeGreaterThan(2);
    expect(ids(pages)).toEqual(expected(want, true));
  });

  it.each<[string, ListInit, string]>([
    ["a non-UUID actor id", { filter: { actorIds: ["x"] } }, "filter.actor_ids[0]: not a UUID"],
    [
      "an unspecified principal",
      { filter: { actorPrincipals: [2, 0] } },
      "filter.actor_principals[1]: must be a defined principal",
    ],
    [
      "an undefined subject type",
      { filter: { subjectTypes: [51 as ResourceType] } },
      "filter.subject_types[0]: must be a defined resource type",
    ],
    [
      "26 subject ids",
      { filter: { subjectIds: Array.from({ length: 26 }, (_, i) => uuid(i)) } },
      "filter.subject_ids: at most 25 entries allowed, got 26",
    ],
    [
      "from after to",
      { filter: { from: timestampFromMs(T0 + 1), to: timestampFromMs(T0) } },
      "filter.to: must not be before filter.from",
    ],
    ["another sort field", { sort: { field: "id" } }, 'sort.field: only "createdAt" is supported'],
    [
      "a page size over 100",
      { pagination: { pageSize: 101 } },
      "pagination.page_size: must be an integer from 0 to 100",
    ],
    [
      "a negative page size",
      { pagination: { pageSize: -1 } },
      "pagination.page_size: must be an integer from 0 to 100",
    ],
  ])("refuses %s with invalid_argument naming the field", async (_, req, message) => {
    const h = harness();
    const [code, msg] = await codeOf(h.client().listAuditLogs(req, as("admin")));
    expect(code).toBe(Code.InvalidArgument);
    expect(msg.startsWith(message)).toBe(true);
    expect(h.store.queries).toEqual([]);
    expect(h.funneled).toEqual(["ListAuditLogs"]);
  });

  it("refuses a timestamp with nanos out of range (binary: JSON cannot carry one)", async () => {
    const client = harness().client({ binary: true });
    const [code, msg] = await codeOf(
      client.listAuditLogs({ filter: { to: { seconds: 1n, nanos: 1_000_000_000 } } }, as("admin")),
    );
    expect([code, msg]).toEqual([Code.InvalidArgument, "filter.to: not a valid timestamp"]);
  });

  it("accepts the sort field in its proto spelling", async () => {
    const res = await harness()
      .client()
      .listAuditLogs({ sort: { field: "created_at", order: 1 } }, as("admin"));
    expect(res.entries[0]?.id).toBe(expected(orgAEntries(), false)[0]);
  });

  describe("page tokens", () => {
    async function firstToken(h: Harness, req: ListInit = {}): Promise<string> {
      const res = await h.client().listAuditLogs(req, as("admin"));
      return res.pagination?.nextToken ?? "";
    }

    it.each([
      ["garbage", () => "not a token"],
      ["base64 of a made-up cursor", () => Buffer.from("T0,some-id,desc").toString("base64url")],
    ])("refuses %s with invalid_argument", async (_, token) => {
      const [code, msg] = await codeOf(
        harness()
          .client()
          .listAuditLogs({ pagination: { token: token() } }, as("admin")),
      );
      expect([code, msg]).toEqual([Code.InvalidArgument, "pagination.token: invalid page token"]);
    });

    it("refuses a token with any one character changed", async () => {
      const h = harness();
      const token = await firstToken(h);
      const client = h.client();
      for (let i = 0; i < token.length; i++) {
        const changed = token.slice(0, i) + (token[i] === "A" ? "B" : "A") + token.slice(i + 1);
        const [code] = await codeOf(
          client.listAuditLogs({ pagination: { token: changed } }, as("admin")),
        );
        expect(code).toBe(Code.InvalidArgument);
      }
    });

    it("refuses a token made with another database's secret", async () => {
      const other = encodePageToken(
        new Uint8Array(32).fill(8),
        { createdAtMs: T0, id: uuid(1000, "aaaaaaaa"), descending: true },
        "anything",
      );
      const [code] = await codeOf(
        harness()
          .client()
          .listAuditLogs({ pagination: { token: other } }, as("admin")),
      );
      expect(code).toBe(Code.InvalidArgument);
    });

    it.each<[string, ListInit]>([
      ["another filter", { filter: { subjectTypes: [1] } }],
      ["another order", { sort: { order: 1 } }],
      ["another time window", { filter: { from: timestampFromMs(T0) } }],
    ])("refuses a token used with %s", async (_, changed) => {
      const h = harness();
      const token = await firstToken(h);
      const [code, msg] = await codeOf(
        h.client().listAuditLogs({ ...changed, pagination: { token } }, as("admin")),
      );
      expect([code, msg]).toEqual([Code.InvalidArgument, "pagination.token: invalid page token"]);
    });

    it("refuses a token of another organization", async () => {
      const h = harness();
      const token = await firstToken(h);
      const [code] = await codeOf(
        h.client().listAuditLogs({ pagination: { token } }, as("admin-b")),
      );
      expect(code).toBe(Code.InvalidArgument);
    });

    it("accepts the same filter written in another order or case", async () => {
      const h = harness();
      const a = uuid(1, "ac7000aa");
      const b = uuid(2, "ac7000aa");
      const token = await firstToken(h, {
        filter: { actorIds: [a, b] },
        pagination: { pageSize: 5 },
      });
      const res = await h
        .client()
        .listAuditLogs(
          { filter: { actorIds: [b.toUpperCase(), a] }, pagination: { pageSize: 5, token } },
          as("admin"),
        );
      expect(res.entries).toHaveLength(5);
    });
  });

  describe("query parameters of the URL (the official SDKs' paging)", () => {
    it("pages by ?token= while the body stays the first one, each entry exactly once", async () => {
      const h = harness();
      let query = "";
      const client = h.client({ query: () => query });
      const body: ListInit = { pagination: { pageSize: 50 } };
      const pages: ListAuditLogsResponse[] = [];
      for (;;) {
        const page = await client.listAuditLogs(body, as("admin"));
        pages.push(page);
        const next = page.pagination?.nextToken ?? "";
        if (next === "" || pages.length > 10) break;
        query = `token=${encodeURIComponent(next)}`;
      }
      expect(pages.map((p) => p.entries.length)).toEqual([50, 50, 20]);
      expect(ids(pages)).toEqual(expected(orgAEntries(), true));
    });

    it("lets ?pageSize= and ?token= override pagination of the body", async () => {
      const h = harness();
      const first = await h.client().listAuditLogs({ pagination: { pageSize: 50 } }, as("admin"));
      const token = first.pagination?.nextToken ?? "";
      const client = h.client({ query: () => `token=${token}&pageSize=7` });
      const res = await client.listAuditLogs(
        { pagination: { pageSize: 50, token: "stale-token-from-the-body" } },
        as("admin"),
      );
      expect(res.entries.map((e) => e.id)).toEqual(expected(orgAEntries(), true).slice(50, 57));
    });

    it("refuses a ?pageSize= that is no integer, naming pagination.page_size", async () => {
      const client = harness().client({ query: () => "pageSize=ten" });
      const [code, msg] = await codeOf(client.listAuditLogs({}, as("admin")));
      expect(code).toBe(Code.InvalidArgument);
      expect(msg).toMatch(/^pagination\.page_size: /);
    });

    it("serves Connect GET requests (side-effect free), paging through the body", async () => {
      const pages = await allPages(harness().client({ useHttpGet: true }), {
        pagination: { pageSize: 50 },
      });
      expect(ids(pages)).toEqual(expected(orgAEntries(), true));
    });
  });

  describe("pagingOf", () => {
    const body = create(PaginationRequestSchema, { pageSize: 50, token: "body" });

    it.each([
      ["no query", "https://h/gitpod.v1.EventService/ListAuditLogs", 50, "body"],
      ["a token", "https://h/x?token=abc", 50, "abc"],
      ["a page size", "https://h/x?pageSize=20", 20, "body"],
      ["both", "https://h/x?token=abc&pageSize=20", 20, "abc"],
      ["page_size", "https://h/x?page_size=20", 20, "body"],
      ["empty values (as absent)", "https://h/x?token=&pageSize=", 50, "body"],
      ["a relative URL", "/api/gitpod.v1.EventService/ListAuditLogs?token=t", 50, "t"],
      ["a Connect GET query", "https://h/x?connect=v1&encoding=json&message=%7B%7D", 50, "body"],
    ])("takes %s into account", (_, url, pageSize, token) => {
      expect(pagingOf(body, url)).toEqual({ pageSize, token });
    });

    it("reads an absent body as page size 0 and no token", () => {
      expect(pagingOf(undefined, "https://h/x")).toEqual({ pageSize: 0, token: "" });
    });

    it.each(["ten", "1.5", "1e2", "99999999999"])("makes %j NaN for the rules to refuse", (s) => {
      expect(pagingOf(body, `https://h/x?pageSize=${s}`).pageSize).toBeNaN();
    });
  });

  describe("who may read", () => {
    it.each(["admin", "auditor"])("lets the %s of the organization read", async (who) => {
      const res = await harness().client().listAuditLogs({}, as(who));
      expect(res.entries).toHaveLength(25);
    });

    it.each(["member", "publisher", "global-publisher"])(
      "refuses a %s with permission_denied, before looking at the request",
      async (who) => {
        const h = harness();
        const [code] = await codeOf(
          h.client().listAuditLogs({ pagination: { pageSize: -1 } }, as(who)),
        );
        expect(code).toBe(Code.PermissionDenied);
        expect(h.store.queries).toEqual([]);
      },
    );

    it("refuses a caller without a valid token with unauthenticated", async () => {
      const [code] = await codeOf(harness().client().listAuditLogs({}, as("nobody")));
      expect(code).toBe(Code.Unauthenticated);
    });

    it.each(["admin-b", "auditor-b"])(
      "shows the %s only its own organization's entries",
      async (who) => {
        const pages = await allPages(harness().client(), { pagination: { pageSize: 2 } }, who);
        expect(ids(pages)).toEqual(expected(orgBEntries(), true));
      },
    );
  });

  it("answers unavailable when the store is unreachable", async () => {
    const h = harness();
    h.store.failWith = new ServiceError("unavailable", "database unreachable");
    const [code] = await codeOf(h.client().listAuditLogs({}, as("admin")));
    expect(code).toBe(Code.Unavailable);
  });

  it("hides an unexpected failure behind internal", async () => {
    const h = harness();
    h.store.failWith = new Error("disk on fire");
    const [code, msg] = await codeOf(h.client().listAuditLogs({}, as("admin")));
    expect([code, msg]).toEqual([Code.Internal, "internal error"]);
    expect(h.funneled).toEqual(["ListAuditLogs"]);
  });
});

describe("GetAuditLog", () => {
  const entry = orgAEntries()[17] as AuditEntry;

  it.each(["admin", "auditor"])("gives the %s an entry of its organization", async (who) => {
    const res = await harness().client().getAuditLog({ auditLogEntryId: entry.id }, as(who));
    expect(res.entry?.id).toBe(entry.id);
    expect(res.entry?.action).toBe(entry.action);
    expect(res.entry?.createdAt && timestampMs(res.entry.createdAt)).toBe(entry.createdAtMs);
    expect(res.details).toBeUndefined();
  });

  it("finds an entry by its id in upper case", async () => {
    const res = await harness()
      .client()
      .getAuditLog({ auditLogEntryId: entry.id.toUpperCase() }, as("admin"));
    expect(res.entry?.id).toBe(entry.id);
  });

  it.each([
    ["another organization's entry", "admin-b", entry.id],
    ["an unknown entry", "admin", uuid(9999, "aaaaaaaa")],
  ])("answers not_found for %s", async (_, who, id) => {
    const h = harness();
    const [code] = await codeOf(h.client().getAuditLog({ auditLogEntryId: id }, as(who)));
    expect(code).toBe(Code.NotFound);
    expect(h.funneled).toEqual(["GetAuditLog"]);
  });

  it.each(["", "17", `${entry.id}x`])(
    "refuses audit_log_entry_id %j with invalid_argument",
    async (id) => {
      const [code, msg] = await codeOf(
        harness().client().getAuditLog({ auditLogEntryId: id }, as("admin")),
      );
      expect([code, msg]).toEqual([Code.InvalidArgument, "audit_log_entry_id: not a UUID"]);
    },
  );

  it.each(["member", "publisher"])("refuses a %s with permission_denied", async (who) => {
    const [code] = await codeOf(
      harness().client().getAuditLog({ auditLogEntryId: entry.id }, as(who)),
    );
    expect(code).toBe(Code.PermissionDenied);
  });

  it("serves Connect GET requests", async () => {
    const res = await harness()
      .client({ useHttpGet: true })
      .getAuditLog({ auditLogEntryId: entry.id }, as("auditor"));
    expect(res.entry?.id).toBe(entry.id);
  });
});
