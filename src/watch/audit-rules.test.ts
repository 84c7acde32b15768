import { describe, expect, it } from "vitest";
import {
  accepted,
  ids,
  NOT_UUIDS,
  ORG,
  refusal,
  UPPER,
  uuid,
} from "../../test/helpers/rule-fixtures.js";
import {
  type AuditQuery,
  type AuditQueryInput,
  auditQueryKey,
  DEFAULT_AUDIT_PAGE_SIZE,
  mayReadAudit,
  SortOrder,
  validateAuditEntryId,
  validateAuditQuery,
} from "./audit-rules.js";
import type { Principal, Role } from "./model.js";

/** No filter at all, as the request says it and as the validated query keeps it. */
const NO_FILTER = {
  actorIds: [],
  actorPrincipals: [],
  subjectIds: [],
  subjectTypes: [],
  fromMs: undefined,
  toMs: undefined,
} as const;

const INPUT: AuditQueryInput = {
  ...NO_FILTER,
  sortField: "",
  sortOrder: SortOrder.UNSPECIFIED,
  pageSize: 0,
};

function input(more: Partial<AuditQueryInput>): AuditQueryInput {
  return { ...INPUT, ...more };
}

function principal(role: Role, organization: string | null = ORG): Principal {
  return {
    subject: uuid(99),
    organization: organization ?? undefined,
    role,
    expiresAtMs: undefined,
    credentialId: "c1",
  };
}

describe("mayReadAudit", () => {
  it.each<Role>(["admin", "auditor"])("lets a(n) %s read its organization's log", (role) => {
    expect(mayReadAudit(principal(role))).toEqual({ organizationId: ORG });
  });

  it.each<Role>(["member", "publisher"])("refuses a %s with permission_denied", (role) => {
    expect(refusal(mayReadAudit(principal(role))).kind).toBe("permission_denied");
  });

  it.each<Role>(["admin", "auditor", "publisher"])(
    "refuses a(n) %s whose credential names no organization",
    (role) => {
      expect(refusal(mayReadAudit(principal(role, null))).kind).toBe("permission_denied");
    },
  );
});

describe("validateAuditQuery", () => {
  it("accepts an empty request as newest first, 25 per page, no filter", () => {
    expect(validateAuditQuery(INPUT)).toEqual<AuditQuery>({
      ...NO_FILTER,
      descending: true,
      pageSize: DEFAULT_AUDIT_PAGE_SIZE,
    });
  });

  it.each([
    [0, 25],
    [1, 1],
    [50, 50],
    [100, 100],
  ])("takes page size %i as %i", (pageSize, expected) => {
    expect(accepted(validateAuditQuery(input({ pageSize }))).pageSize).toBe(expected);
  });

  it.each([
    ["negative", -1],
    ["above 100", 101],
    ["far above", 2 ** 31 - 1],
    ["fractional", 1.5],
    ["not a number (bad URL parameter)", Number.NaN],
  ])("refuses a %s page size naming pagination.page_size", (_, pageSize) => {
    const v = refusal(validateAuditQuery(input({ pageSize })));
    expect(v.kind).toBe("invalid_argument");
    expect(v.message).toMatch(/^pagination\.page_size: /);
  });

  it.each([
    ["", SortOrder.UNSPECIFIED, true],
    ["", SortOrder.DESC, true],
    ["", SortOrder.ASC, false],
    ["createdAt", SortOrder.UNSPECIFIED, true],
    ["createdAt", SortOrder.ASC, false],
    ["created_at", SortOrder.DESC, true],
    ["created_at", SortOrder.ASC, false],
  ])("accepts sort field %j with order %i (descending: %s)", (sortField, sortOrder, desc) => {
    expect(accepted(validateAuditQuery(input({ sortField, sortOrder }))).descending).toBe(desc);
  });

  it.each(["id", "CreatedAt", "created_at ", "action", "createdAt,id"])(
    "refuses sort field %j naming sort.field",
    (sortField) => {
      const v = refusal(validateAuditQuery(input({ sortField })));
      expect(v.kind).toBe("invalid_argument");
      expect(v.message).toMatch(/^sort\.field: /);
    },
  );

  it.each([3, -1, 99])("refuses sort order %i naming sort.order", (sortOrder) => {
    expect(refusal(validateAuditQuery(input({ sortOrder }))).message).toMatch(/^sort\.order: /);
  });

  describe.each([
    ["actor_ids", "actorIds"],
    ["subject_ids", "subjectIds"],
  ] as const)("filter.%s", (field, key) => {
    it("accepts 25 UUIDs, in lower case, sorted and without duplicates", () => {
      const q = accepted(validateAuditQuery(input({ [key]: [...ids(24).reverse(), UPPER] })));
      expect(q[key]).toEqual([...ids(24), UPPER.toLowerCase()].sort());
      const dup = accepted(validateAuditQuery(input({ [key]: [uuid(2), uuid(1), uuid(2)] })));
      expect(dup[key]).toEqual([uuid(1), uuid(2)]);
    });

    it("refuses 26 naming the field", () => {
      expect(refusal(validateAuditQuery(input({ [key]: ids(26) }))).message).toBe(
        `filter.${field}: at most 25 entries allowed, got 26`,
      );
    });

    it.each(NOT_UUIDS)("refuses %s at index 3, naming the index", (_, bad) => {
      const v = refusal(validateAuditQuery(input({ [key]: [...ids(3), bad] })));
      expect(v).toEqual({ kind: "invalid_argument", message: `filter.${field}[3]: not a UUID` });
    });
  });

  describe.each([
    ["actor_principals", "actorPrincipals", 6],
    ["subject_types", "subjectTypes", 50],
  ] as const)("filter.%s", (field, key, max) => {
    it(`accepts every defined value 1..${max}`, () => {
      const all = Array.from({ length: max }, (_, i) => i + 1);
      for (let i = 0; i < all.length; i += 25) {
        const chunk = all.slice(i, i + 25);
        expect(accepted(validateAuditQuery(input({ [key]: chunk })))[key]).toEqual(chunk);
      }
    });

    it("accepts 25 values (repeats allowed, kept once)", () => {
      const values = Array.from({ length: 25 }, (_, i) => (i % max) + 1);
      expect(accepted(validateAuditQuery(input({ [key]: values })))[key]).toEqual(
        [...new Set(values)].sort((a, b) => a - b),
      );
    });

    it("refuses 26 naming the field", () => {
      const values = Array.from({ length: 26 }, () => 1);
      expect(refusal(validateAuditQuery(input({ [key]: values }))).message).toBe(
        `filter.${field}: at most 25 entries allowed, got 26`,
      );
    });

    it.each([
      ["UNSPECIFIED (0)", 0],
      ["one past the last", max + 1],
      ["negative", -1],
      ["fractional", 1.5],
    ])("refuses %s at index 2, naming the index", (_, bad) => {
      const v = refusal(validateAuditQuery(input({ [key]: [1, 2, bad] })));
      expect(v.kind).toBe("invalid_argument");
      expect(v.message).toMatch(new RegExp(`^filter\\.${field}\\[2\\]: must be a defined `));
    });
  });

  it.each([
    ["from only", 1_000, undefined],
    ["to only", undefined, 1_000],
    ["from before to", 1_000, 2_000],
    ["from equal to to (the empty window)", 1_000, 1_000],
    ["before 1970", -1_000, 0],
    ["the earliest timestamp", -62_135_596_800_000, undefined],
    ["the latest timestamp", undefined, 253_402_300_799_999],
  ])("accepts a time window with %s", (_, fromMs, toMs) => {
    const q = accepted(validateAuditQuery(input({ fromMs, toMs })));
    expect([q.fromMs, q.toMs]).toEqual([fromMs, toMs]);
  });

  it("refuses from after to, naming filter.to", () => {
    expect(refusal(validateAuditQuery(input({ fromMs: 2_000, toMs: 1_999 }))).message).toBe(
      "filter.to: must not be before filter.from",
    );
  });

  it.each([
    ["filter.from", "fromMs", Number.NaN],
    ["filter.from", "fromMs", -62_135_596_800_001],
    ["filter.to", "toMs", 253_402_300_800_000],
    ["filter.to", "toMs", 2 ** 60],
    ["filter.to", "toMs", 0.5],
  ] as const)("refuses a malformed %s (%s = %d)", (field, key, value) => {
    expect(refusal(validateAuditQuery(input({ [key]: value }))).message).toBe(
      `${field}: not a valid timestamp`,
    );
  });

  it("reports the first problem in field order", () => {
    const v = refusal(
      validateAuditQuery(
        input({ actorIds: ["x"], subjectTypes: [0], sortField: "id", pageSize: -1 }),
      ),
    );
    expect(v.message).toBe("filter.actor_ids[0]: not a UUID");
  });
});

describe("auditQueryKey", () => {
  const base = accepted(validateAuditQuery(INPUT));

  it("is the same for requests that differ only in list order, case or page size", () => {
    const a = accepted(
      validateAuditQuery(input({ actorIds: [uuid(2), UPPER], subjectTypes: [3, 1], pageSize: 5 })),
    );
    const b = accepted(
      validateAuditQuery(
        input({ actorIds: [UPPER.toLowerCase(), uuid(2)], subjectTypes: [1, 3], pageSize: 50 }),
      ),
    );
    expect(auditQueryKey(ORG, a)).toBe(auditQueryKey(ORG.toUpperCase(), b));
  });

  it.each<[string, Partial<AuditQuery>]>([
    ["actor ids", { actorIds: [uuid(1)] }],
    ["actor principals", { actorPrincipals: [2] }],
    ["subject ids", { subjectIds: [uuid(1)] }],
    ["subject types", { subjectTypes: [2] }],
    ["from", { fromMs: 0 }],
    ["to", { toMs: 0 }],
    ["order", { descending: false }],
  ])("changes with the %s", (_, change) => {
    expect(auditQueryKey(ORG, { ...base, ...change })).not.toBe(auditQueryKey(ORG, base));
  });

  it("keeps an id filter apart from a subject filter with the same value", () => {
    const actor = { ...base, actorIds: [uuid(1)] };
    const subject = { ...base, subjectIds: [uuid(1)] };
    expect(auditQueryKey(ORG, actor)).not.toBe(auditQueryKey(ORG, subject));
  });

  it("changes with the organization", () => {
    expect(auditQueryKey(uuid(7), base)).not.toBe(auditQueryKey(ORG, base));
  });
});

describe("validateAuditEntryId", () => {
  it("accepts a UUID and returns it in lower case", () => {
    expect(validateAuditEntryId(UPPER)).toBe(UPPER.toLowerCase());
  });

  it.each(NOT_UUIDS)("refuses %s naming audit_log_entry_id", (_, bad) => {
    expect(validateAuditEntryId(bad)).toEqual({
      kind: "invalid_argument",
      message: "audit_log_entry_id: not a UUID",
    });
  });
});
