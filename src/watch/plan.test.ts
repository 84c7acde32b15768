import { describe, expect, it } from "vitest";
import {
  ADMIN,
  filter,
  MEMBER,
  ORG,
  OTHER_MEMBER,
  OTHER_ORG,
  orgPlan,
  plan,
  principal,
  refusal,
} from "../../test/helpers/rule-fixtures.js";
import {
  type EnvironmentRecord,
  Operation,
  type ResourceEvent,
  ResourceType,
  type WatchRequest,
} from "./model.js";
import { authorizePublish, endsStream, matches, planWatch } from "./plan.js";
import type { Violation } from "./violation.js";
import { type Visibility, visibilityOf } from "./visibility.js";

const ENV = "0e0e0e0e-0000-4000-8000-000000000001";
const OTHER_ENV = "0e0e0e0e-0000-4000-8000-000000000002";
const R1 = "0f0f0f0f-0000-4000-8000-000000000001";
const R2 = "0f0f0f0f-0000-4000-8000-000000000002";

const admin = principal("admin", ADMIN, ORG);
const member = principal("member", MEMBER, ORG);
const otherMember = principal("member", OTHER_MEMBER, ORG);
const orgPublisher = principal("publisher", "0d0d0d0d-0000-4000-8000-000000000001", ORG);
const globalPublisher = principal("publisher", "0d0d0d0d-0000-4000-8000-000000000002", undefined);
const auditor = principal("auditor", "0d0d0d0d-0000-4000-8000-000000000003", ORG);

/** The names of ResourceType 1..50, in number order (CONTRACT §2). */
const TYPE_NAMES = [
  "ENVIRONMENT",
  "RUNNER",
  "PROJECT",
  "TASK",
  "TASK_EXECUTION",
  "SERVICE",
  "ORGANIZATION",
  "USER",
  "ENVIRONMENT_CLASS",
  "RUNNER_SCM_INTEGRATION",
  "HOST_AUTHENTICATION_TOKEN",
  "GROUP",
  "PERSONAL_ACCESS_TOKEN",
  "USER_PREFERENCE",
  "SERVICE_ACCOUNT",
  "SECRET",
  "SSO_CONFIG",
  "DOMAIN_VERIFICATION",
  "AGENT_EXECUTION",
  "RUNNER_LLM_INTEGRATION",
  "AGENT",
  "ENVIRONMENT_SESSION",
  "USER_SECRET",
  "ORGANIZATION_POLICY",
  "ORGANIZATION_SECRET",
  "PROJECT_ENVIRONMENT_CLASS",
  "BILLING",
  "PROMPT",
  "COUPON",
  "COUPON_REDEMPTION",
  "ACCOUNT",
  "INTEGRATION",
  "WORKFLOW",
  "WORKFLOW_EXECUTION",
  "WORKFLOW_EXECUTION_ACTION",
  "SNAPSHOT",
  "PREBUILD",
  "ORGANIZATION_LLM_INTEGRATION",
  "CUSTOM_DOMAIN",
  "ROLE_ASSIGNMENT_CHANGED",
  "GROUP_MEMBERSHIP_CHANGED",
  "WEBHOOK",
  "SCIM_CONFIGURATION",
  "SERVICE_ACCOUNT_SECRET",
  "ANNOUNCEMENT_BANNER",
  "SERVICE_ACCOUNT_TOKEN",
  "ROLE_ASSIGNMENT",
  "WARM_POOL",
  "NOTIFICATION",
  "SECURITY_POLICY",
] as const;

/** The visibility table of CONTRACT §6, by name; every type not listed is admins only. */
const VISIBLE_TO_MEMBERS = new Set<string>([
  "RUNNER",
  "PROJECT",
  "ORGANIZATION",
  "ENVIRONMENT_CLASS",
  "RUNNER_SCM_INTEGRATION",
  "GROUP",
  "RUNNER_LLM_INTEGRATION",
  "AGENT",
  "PROJECT_ENVIRONMENT_CLASS",
  "PROMPT",
  "WORKFLOW",
  "WORKFLOW_EXECUTION",
  "WORKFLOW_EXECUTION_ACTION",
  "SNAPSHOT",
  "PREBUILD",
  "ANNOUNCEMENT_BANNER",
  "WARM_POOL",
]);
const VISIBLE_TO_CREATOR = new Set<string>([
  "ENVIRONMENT",
  "ENVIRONMENT_SESSION",
  "AGENT_EXECUTION",
  "PERSONAL_ACCESS_TOKEN",
  "USER_PREFERENCE",
  "USER_SECRET",
  "HOST_AUTHENTICATION_TOKEN",
  "NOTIFICATION",
]);
const ENVIRONMENT_SCOPE_ONLY = new Set<string>(["TASK", "TASK_EXECUTION", "SERVICE"]);

function expectedVisibility(name: string): Visibility {
  if (VISIBLE_TO_MEMBERS.has(name)) return "members";
  if (VISIBLE_TO_CREATOR.has(name)) return "creator";
  if (ENVIRONMENT_SCOPE_ONLY.has(name)) return "environment";
  return "admins";
}

const TYPES = TYPE_NAMES.map((name, i) => ({
  name,
  type: i + 1,
  visibility: expectedVisibility(name),
}));

function event(more: Partial<ResourceEvent> = {}): ResourceEvent {
  return {
    resourceType: ResourceType.RUNNER,
    operation: Operation.UPDATE,
    resourceId: R1,
    organizationId: ORG,
    environmentId: "",
    creatorId: "",
    ...more,
  };
}

function denied(result: Violation | undefined): Violation {
  if (result === undefined) throw new Error("expected a violation, got none");
  return result;
}

const envRequest: WatchRequest = {
  scope: { kind: "environment", environmentId: ENV },
  filters: [],
};
const envByMember: EnvironmentRecord = { organizationId: ORG, creatorId: MEMBER };

describe("visibilityOf", () => {
  it.each(TYPES)("puts $name ($type) in the $visibility row", ({ type, visibility }) => {
    expect(visibilityOf(type)).toBe(visibility);
  });

  it.each([0, 51, 99, -1, 1.5, Number.NaN])("treats %d, not in the enum, as admins only", (t) => {
    expect(visibilityOf(t)).toBe("admins");
  });
});

describe("matches in organization scope: the visibility table", () => {
  /** Who watches, and who created the event's resource ("" = unknown). */
  const viewers = [
    { who: "an admin", principal: admin, creator: MEMBER, sees: ["members", "creator", "admins"] },
    {
      who: "an admin, creator unknown",
      principal: admin,
      creator: "",
      sees: ["members", "creator", "admins"],
    },
    {
      who: "the member who created it",
      principal: member,
      creator: MEMBER,
      sees: ["members", "creator"],
    },
    {
      who: "a member who did not create it",
      principal: otherMember,
      creator: MEMBER,
      sees: ["members"],
    },
    { who: "a member, creator unknown", principal: member, creator: "", sees: ["members"] },
  ];
  const cases = TYPES.flatMap((t) =>
    viewers.map((v) => {
      const visible = v.sees.includes(t.visibility);
      return {
        title: `${visible ? "shows" : "hides"} ${t.name} (${t.type}) to ${v.who}`,
        type: t.type,
        principal: v.principal,
        creator: v.creator,
        visible,
      };
    }),
  );

  it.each(cases)("$title", ({ type, principal: p, creator, visible }) => {
    const ev = event({ resourceType: type, creatorId: creator });
    expect(matches(orgPlan(p), ev, creator)).toBe(visible);
  });

  it.each([
    ["the creator", member, true],
    ["another member", otherMember, false],
    ["an admin", admin, true],
  ] as const)("uses the creator the server knows, not the event's field, for %s", (_, p, seen) => {
    // A DELETE without creator_id whose creator the server recorded earlier.
    const ev = event({ resourceType: ResourceType.ENVIRONMENT, operation: Operation.DELETE });
    expect(matches(orgPlan(p), ev, MEMBER)).toBe(seen);
  });

  it.each([0, 51, 99])("shows type %i, not in the enum, to admins only", (type) => {
    const ev = event({ resourceType: type, creatorId: MEMBER });
    expect(matches(orgPlan(admin), ev, MEMBER)).toBe(true);
    expect(matches(orgPlan(member), ev, MEMBER)).toBe(false);
    expect(matches(orgPlan(otherMember), ev, MEMBER)).toBe(false);
  });

  it.each([ResourceType.TASK, ResourceType.TASK_EXECUTION, ResourceType.SERVICE])(
    "never shows type %i in organization scope, not even to an admin filtering for it",
    (type) => {
      const ev = event({ resourceType: type, environmentId: ENV, creatorId: ADMIN });
      expect(matches(orgPlan(admin), ev, ADMIN)).toBe(false);
      expect(matches(orgPlan(admin, [filter(type)]), ev, ADMIN)).toBe(false);
    },
  );

  it.each(TYPES)("never shows $name ($type) of another organization", ({ type }) => {
    const ev = event({ resourceType: type, organizationId: OTHER_ORG, creatorId: MEMBER });
    expect(matches(orgPlan(admin), ev, MEMBER)).toBe(false);
    expect(matches(orgPlan(member), ev, MEMBER)).toBe(false);
  });
});

describe("matches in environment scope", () => {
  const plans = [
    ["the admin", plan(admin, envRequest, envByMember)],
    ["the creator", plan(member, envRequest, envByMember)],
  ] as const;

  const rows: [string, ResourceEvent, boolean][] = [
    ...[Operation.CREATE, Operation.UPDATE, Operation.UPDATE_STATUS, Operation.DELETE].map(
      (operation): [string, ResourceEvent, boolean] => [
        `its own ENVIRONMENT event (operation ${operation})`,
        event({
          resourceType: ResourceType.ENVIRONMENT,
          operation,
          resourceId: ENV,
          environmentId: ENV,
        }),
        true,
      ],
    ),
    ...[ResourceType.TASK, ResourceType.TASK_EXECUTION, ResourceType.SERVICE].flatMap(
      (type): [string, ResourceEvent, boolean][] => [
        [
          `type ${type} of this environment`,
          event({ resourceType: type, environmentId: ENV }),
          true,
        ],
        [
          `type ${type} of another environment`,
          event({ resourceType: type, environmentId: OTHER_ENV }),
          false,
        ],
        [
          `type ${type} of this environment id in another organization`,
          event({ resourceType: type, environmentId: ENV, organizationId: OTHER_ORG }),
          false,
        ],
      ],
    ),
    [
      "another environment's ENVIRONMENT event",
      event({
        resourceType: ResourceType.ENVIRONMENT,
        resourceId: OTHER_ENV,
        environmentId: OTHER_ENV,
      }),
      false,
    ],
    [
      "its ENVIRONMENT event published in another organization",
      event({
        resourceType: ResourceType.ENVIRONMENT,
        resourceId: ENV,
        environmentId: ENV,
        organizationId: OTHER_ORG,
      }),
      false,
    ],
    ["an organization-wide RUNNER event", event({ creatorId: MEMBER }), false],
    [
      "an ENVIRONMENT_SESSION event carrying the environment id",
      event({
        resourceType: ResourceType.ENVIRONMENT_SESSION,
        environmentId: ENV,
        creatorId: MEMBER,
      }),
      false,
    ],
    [
      "a RUNNER event carrying the environment id",
      event({ resourceType: ResourceType.RUNNER, environmentId: ENV }),
      false,
    ],
  ];

  describe.each(plans)("for %s", (_, p) => {
    const cases = rows.map(([what, ev, expected]) => ({
      title: `${expected ? "matches" : "does not match"} ${what}`,
      ev,
      expected,
    }));
    it.each(cases)("$title", ({ ev, expected }) => {
      expect(matches(p, ev, MEMBER)).toBe(expected);
    });
  });
});

describe("endsStream", () => {
  const envPlan = plan(member, envRequest, envByMember);
  const envEvent = (operation: number, resourceId = ENV) =>
    event({
      resourceType: ResourceType.ENVIRONMENT,
      operation,
      resourceId,
      environmentId: resourceId,
    });

  it.each([
    ["ends on the DELETE of the watched environment", envPlan, envEvent(Operation.DELETE), true],
    [
      "does not end on an UPDATE of the watched environment",
      envPlan,
      envEvent(Operation.UPDATE),
      false,
    ],
    [
      "does not end on an UPDATE_STATUS of the watched environment",
      envPlan,
      envEvent(Operation.UPDATE_STATUS),
      false,
    ],
    [
      "does not end on the DELETE of another environment",
      envPlan,
      envEvent(Operation.DELETE, OTHER_ENV),
      false,
    ],
    [
      "does not end on the DELETE of a task of the watched environment",
      envPlan,
      event({ resourceType: ResourceType.TASK, operation: Operation.DELETE, environmentId: ENV }),
      false,
    ],
    [
      "does not end an organization-scope stream on an environment DELETE",
      orgPlan(member),
      envEvent(Operation.DELETE),
      false,
    ],
  ] as const)("%s", (_, p, ev, expected) => {
    expect(endsStream(p, ev)).toBe(expected);
  });
});

describe("planWatch", () => {
  describe("environment scope", () => {
    const unknownMessage = refusal(planWatch(member, envRequest, undefined));

    it("answers not_found naming environment_id for an unknown environment", () => {
      expect(unknownMessage.kind).toBe("not_found");
      expect(unknownMessage.message).toMatch(/^environment_id: /);
    });

    it.each([
      ["an unknown environment, asked by an admin", admin, undefined],
      [
        "another organization's environment, asked by an admin",
        admin,
        { organizationId: OTHER_ORG, creatorId: ADMIN },
      ],
      [
        "another organization's environment, asked by its creator",
        member,
        { organizationId: OTHER_ORG, creatorId: MEMBER },
      ],
      ["an environment created by someone else, asked by a member", otherMember, envByMember],
      [
        "an environment with unknown creator, asked by a member",
        member,
        { organizationId: ORG, creatorId: "" },
      ],
    ] as const)("gives the same not_found for %s", (_, p, env) => {
      expect(planWatch(p, envRequest, env)).toEqual(unknownMessage);
    });

    it.each([
      ["an admin of its organization", admin, envByMember],
      ["an admin, when its creator is unknown", admin, { organizationId: ORG, creatorId: "" }],
      ["its creator", member, envByMember],
    ] as const)("allows %s", (_, p, env) => {
      expect(plan(p, envRequest, env)).toMatchObject({
        organizationId: ORG,
        subject: p.subject,
        environmentId: ENV,
        filters: undefined,
      });
    });
  });

  it.each([
    ["an organization-bound publisher", orgPublisher],
    ["a global publisher", globalPublisher],
    ["an auditor", auditor],
    ["a member without an organization", principal("member", MEMBER, undefined)],
  ])("refuses %s with permission_denied in either scope", (_, p) => {
    expect(
      refusal(planWatch(p, { scope: { kind: "organization" }, filters: [] }, undefined)).kind,
    ).toBe("permission_denied");
    expect(refusal(planWatch(p, envRequest, envByMember)).kind).toBe("permission_denied");
  });

  it.each([
    ["an admin", admin, true],
    ["a member", member, false],
  ] as const)("plans organization scope for %s of its own organization", (_, p, isAdmin) => {
    expect(orgPlan(p)).toMatchObject({
      organizationId: ORG,
      subject: p.subject,
      admin: isAdmin,
      environmentId: undefined,
      filters: undefined,
    });
  });
});

describe("matches with filters", () => {
  it("shows everything in scope when there are no filters", () => {
    const p = orgPlan(member);
    expect(matches(p, event({ resourceType: ResourceType.RUNNER }), "")).toBe(true);
    expect(matches(p, event({ resourceType: ResourceType.PROJECT }), "")).toBe(true);
  });

  describe("OR across entries", () => {
    const p = orgPlan(member, [filter(ResourceType.RUNNER), filter(ResourceType.PROJECT)]);
    it.each([
      ["passes RUNNER (first entry)", ResourceType.RUNNER, true],
      ["passes PROJECT (second entry)", ResourceType.PROJECT, true],
      ["drops GROUP (no entry)", ResourceType.GROUP, false],
    ] as const)("%s", (_, type, expected) => {
      expect(matches(p, event({ resourceType: type, creatorId: MEMBER }), MEMBER)).toBe(expected);
    });
  });

  describe("AND within an entry", () => {
    const p = orgPlan(admin, [
      filter(ResourceType.RUNNER, { resourceIds: [R1], creatorIds: [MEMBER] }),
    ]);
    it.each([
      ["passes the listed id by the listed creator", R1, MEMBER, true],
      ["drops the listed id by another creator", R1, OTHER_MEMBER, false],
      ["drops another id by the listed creator", R2, MEMBER, false],
      ["drops another id by another creator", R2, OTHER_MEMBER, false],
    ] as const)("%s", (_, id, creator, expected) => {
      expect(matches(p, event({ resourceId: id, creatorId: creator }), creator)).toBe(expected);
    });
  });

  describe("two entries for the same type", () => {
    const p = orgPlan(admin, [
      filter(ResourceType.RUNNER, { resourceIds: [R1] }),
      filter(ResourceType.RUNNER, { creatorIds: [OTHER_MEMBER] }),
    ]);
    it.each([
      ["passes R1 by anyone (first entry)", R1, MEMBER, true],
      ["passes R2 by the listed creator (second entry)", R2, OTHER_MEMBER, true],
      ["drops R2 by someone else (neither entry)", R2, MEMBER, false],
    ] as const)("%s", (_, id, creator, expected) => {
      expect(matches(p, event({ resourceId: id, creatorId: creator }), creator)).toBe(expected);
    });
  });

  describe("creator_ids", () => {
    const p = orgPlan(admin, [filter(ResourceType.PROJECT, { creatorIds: [MEMBER] })]);
    it.each([
      ["an UPDATE by the listed creator passes", Operation.UPDATE, MEMBER, true],
      ["an UPDATE by another creator fails", Operation.UPDATE, OTHER_MEMBER, false],
      ["a CREATE with unknown creator fails (fail closed)", Operation.CREATE, "", false],
      ["an UPDATE with unknown creator fails (fail closed)", Operation.UPDATE, "", false],
      [
        "an UPDATE_STATUS with unknown creator fails (fail closed)",
        Operation.UPDATE_STATUS,
        "",
        false,
      ],
      [
        "a DELETE by another creator passes (creator test skipped)",
        Operation.DELETE,
        OTHER_MEMBER,
        true,
      ],
      ["a DELETE with unknown creator passes (creator test skipped)", Operation.DELETE, "", true],
    ] as const)("%s", (_, operation, creator, expected) => {
      const ev = event({ resourceType: ResourceType.PROJECT, operation, creatorId: creator });
      expect(matches(p, ev, creator)).toBe(expected);
    });

    it("still applies resource_ids to a DELETE", () => {
      const q = orgPlan(admin, [
        filter(ResourceType.PROJECT, { resourceIds: [R1], creatorIds: [MEMBER] }),
      ]);
      const del = (id: string) =>
        event({ resourceType: ResourceType.PROJECT, operation: Operation.DELETE, resourceId: id });
      expect(matches(q, del(R1), "")).toBe(true);
      expect(matches(q, del(R2), "")).toBe(false);
    });
  });

  describe("filters never widen visibility", () => {
    it.each([
      [
        "a member filtering for SECRET",
        member,
        [filter(ResourceType.SECRET)],
        ResourceType.SECRET,
        MEMBER,
        Operation.UPDATE,
      ],
      [
        "a member filtering for SECRET by creator",
        member,
        [filter(ResourceType.SECRET, { creatorIds: [MEMBER] })],
        ResourceType.SECRET,
        MEMBER,
        Operation.UPDATE,
      ],
      [
        "a member filtering for someone else's ENVIRONMENT",
        member,
        [filter(ResourceType.ENVIRONMENT, { creatorIds: [OTHER_MEMBER] })],
        ResourceType.ENVIRONMENT,
        OTHER_MEMBER,
        Operation.UPDATE,
      ],
      [
        "a member filtering for the DELETE of someone else's ENVIRONMENT",
        member,
        [filter(ResourceType.ENVIRONMENT, { creatorIds: [MEMBER] })],
        ResourceType.ENVIRONMENT,
        OTHER_MEMBER,
        Operation.DELETE,
      ],
      [
        "a member filtering for an ENVIRONMENT DELETE of unknown creator",
        member,
        [filter(ResourceType.ENVIRONMENT)],
        ResourceType.ENVIRONMENT,
        "",
        Operation.DELETE,
      ],
    ] as const)("gives nothing to %s", (_, p, filters, type, creator, operation) => {
      const ev = event({ resourceType: type, operation, creatorId: creator, resourceId: R1 });
      expect(matches(orgPlan(p, [...filters]), ev, creator)).toBe(false);
    });

    it("lets an admin filtering for SECRET see it", () => {
      const ev = event({ resourceType: ResourceType.SECRET, creatorId: MEMBER });
      expect(matches(orgPlan(admin, [filter(ResourceType.SECRET)]), ev, MEMBER)).toBe(true);
    });

    it("never shows another organization's event that passes the filter", () => {
      const ev = event({ organizationId: OTHER_ORG, resourceId: R1, creatorId: MEMBER });
      const p = orgPlan(admin, [filter(ResourceType.RUNNER, { resourceIds: [R1] })]);
      expect(matches(p, ev, MEMBER)).toBe(false);
    });
  });
});

describe("authorizePublish", () => {
  const ours = event({ organizationId: ORG });
  const theirs = event({ organizationId: OTHER_ORG });

  it.each([
    ["a member", member],
    ["an admin", admin],
    ["an auditor", auditor],
  ])("refuses %s with permission_denied", (_, p) => {
    expect(denied(authorizePublish(p, [ours])).kind).toBe("permission_denied");
  });

  it("allows an organization-bound publisher to publish for its organization", () => {
    expect(authorizePublish(orgPublisher, [ours, ours])).toBeUndefined();
  });

  it("allows an organization-bound publisher when the batch names its organization in upper case", () => {
    expect(
      authorizePublish(orgPublisher, [event({ organizationId: ORG.toUpperCase() })]),
    ).toBeUndefined();
  });

  it("refuses an organization-bound publisher for another organization, naming the index", () => {
    const v = denied(authorizePublish(orgPublisher, [ours, ours, theirs]));
    expect(v.kind).toBe("permission_denied");
    expect(v.message).toMatch(/^events\[2\]\.organization_id: /);
  });

  it("allows a global publisher to publish for any organization", () => {
    expect(authorizePublish(globalPublisher, [ours, theirs])).toBeUndefined();
  });
});
