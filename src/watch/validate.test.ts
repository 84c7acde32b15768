import { describe, expect, it } from "vitest";
import {
  accepted,
  filter,
  ids,
  NOT_UUIDS,
  ORG,
  refusal,
  UPPER,
  uuid,
} from "../../test/helpers/rule-fixtures.js";
import {
  type ResourceEvent,
  ResourceType,
  type ResourceTypeFilter,
  type WatchRequest,
} from "./model.js";
import { isViolation, validatePublishBatch, validateWatchRequest } from "./validate.js";

const ENV = "0e0e0e0e-0000-4000-8000-000000000001";
const CREATOR = "0c0c0c0c-0000-4000-8000-000000000001";

/** Every defined resource type number, 1..50 (CONTRACT §2). */
const ALL_TYPES = Array.from({ length: 50 }, (_, i) => i + 1);
const ENVIRONMENT_OWNED = [ResourceType.TASK, ResourceType.TASK_EXECUTION, ResourceType.SERVICE];

function orgRequest(filters: ResourceTypeFilter[]): WatchRequest {
  return { scope: { kind: "organization" }, filters };
}

function envRequest(environmentId: string, filters: ResourceTypeFilter[] = []): WatchRequest {
  return { scope: { kind: "environment", environmentId }, filters };
}

/** Three valid filters, then `bad` at index 3. */
function withFourth(bad: ResourceTypeFilter): ResourceTypeFilter[] {
  return [filter(2), filter(3), filter(7), bad];
}

describe("validateWatchRequest", () => {
  it("accepts organization scope without filters", () => {
    expect(validateWatchRequest(orgRequest([]))).toEqual(orgRequest([]));
  });

  it.each([
    [1, "one filter"],
    [50, "exactly 50 filters"],
  ])("accepts %i filters (%s)", (count) => {
    const filters = Array.from({ length: count }, (_, i) => filter((i % 50) + 1));
    expect(accepted(validateWatchRequest(orgRequest(filters))).filters).toHaveLength(count);
  });

  it.each(ALL_TYPES)("accepts a filter for defined resource type %i", (type) => {
    expect(accepted(validateWatchRequest(orgRequest([filter(type)]))).filters).toEqual([
      filter(type),
    ]);
  });

  it("accepts exactly 25 resource_ids and 25 creator_ids in one filter", () => {
    const f = filter(2, { resourceIds: ids(25, 1), creatorIds: ids(25, 100) });
    expect(accepted(validateWatchRequest(orgRequest([f]))).filters).toEqual([f]);
  });

  it("accepts environment scope with a UUID and no filters", () => {
    expect(validateWatchRequest(envRequest(ENV))).toEqual(envRequest(ENV));
  });

  it("normalizes every UUID of the request to lower case", () => {
    const upperId = "ABCDEF01-ABCD-4ABC-8ABC-ABCDEF000001";
    const upperCreator = "ABCDEF01-ABCD-4ABC-8ABC-ABCDEF000002";
    const result = accepted(
      validateWatchRequest(
        orgRequest([filter(3, { resourceIds: [upperId], creatorIds: [upperCreator] })]),
      ),
    );
    expect(result.filters).toEqual([
      filter(3, {
        resourceIds: [upperId.toLowerCase()],
        creatorIds: [upperCreator.toLowerCase()],
      }),
    ]);
    expect(accepted(validateWatchRequest(envRequest(UPPER))).scope).toEqual({
      kind: "environment",
      environmentId: UPPER.toLowerCase(),
    });
  });

  const refusals: [string, WatchRequest, string | RegExp][] = [
    [
      "51 filters",
      orgRequest(Array.from({ length: 51 }, (_, i) => filter((i % 50) + 1))),
      /^resource_type_filters: .*\b50\b/,
    ],
    [
      "a filter of type 0 (UNSPECIFIED)",
      orgRequest(withFourth(filter(0))),
      /^resource_type_filters\[3\]\.resource_type: /,
    ],
    [
      "a filter of type 51 (not in the enum)",
      orgRequest(withFourth(filter(51))),
      /^resource_type_filters\[3\]\.resource_type: /,
    ],
    [
      "a filter of a negative type",
      orgRequest(withFourth(filter(-1))),
      /^resource_type_filters\[3\]\.resource_type: /,
    ],
    [
      "a filter of a fractional type",
      orgRequest(withFourth(filter(1.5))),
      /^resource_type_filters\[3\]\.resource_type: /,
    ],
    [
      "26 resource_ids",
      orgRequest(withFourth(filter(2, { resourceIds: ids(26) }))),
      /^resource_type_filters\[3\]\.resource_ids: .*\b25\b/,
    ],
    [
      "26 creator_ids",
      orgRequest(withFourth(filter(2, { creatorIds: ids(26) }))),
      /^resource_type_filters\[3\]\.creator_ids: .*\b25\b/,
    ],
    [
      "a resource id that is not a UUID",
      orgRequest(withFourth(filter(2, { resourceIds: [...ids(7), "nope", ...ids(3, 50)] }))),
      "resource_type_filters[3].resource_ids[7]: not a UUID",
    ],
    [
      "a creator id that is not a UUID",
      orgRequest(withFourth(filter(2, { creatorIds: [uuid(1), "nope"] }))),
      "resource_type_filters[3].creator_ids[1]: not a UUID",
    ],
    ["environment_id that is not a UUID", envRequest("nope"), "environment_id: not a UUID"],
    ["an empty environment_id", envRequest(""), "environment_id: not a UUID"],
    [
      "filters with environment scope",
      envRequest(ENV, [filter(ResourceType.TASK)]),
      /^resource_type_filters: /,
    ],
  ];

  it.each(refusals)("refuses %s with invalid_argument naming the field", (_, request, message) => {
    const v = refusal(validateWatchRequest(request));
    expect(v.kind).toBe("invalid_argument");
    if (typeof message === "string") expect(v.message).toBe(message);
    else expect(v.message).toMatch(message);
  });

  it.each(NOT_UUIDS)("refuses a resource id that is not a UUID (%s)", (_, bad) => {
    const v = refusal(validateWatchRequest(orgRequest([filter(2, { resourceIds: [bad] })])));
    expect(v).toEqual({
      kind: "invalid_argument",
      message: "resource_type_filters[0].resource_ids[0]: not a UUID",
    });
  });

  it.each(NOT_UUIDS)("refuses a creator id that is not a UUID (%s)", (_, bad) => {
    const v = refusal(validateWatchRequest(orgRequest([filter(2, { creatorIds: [bad] })])));
    expect(v).toEqual({
      kind: "invalid_argument",
      message: "resource_type_filters[0].creator_ids[0]: not a UUID",
    });
  });

  it.each(NOT_UUIDS)("refuses an environment_id that is not a UUID (%s)", (_, bad) => {
    expect(validateWatchRequest(envRequest(bad))).toEqual({
      kind: "invalid_argument",
      message: "environment_id: not a UUID",
    });
  });
});

/** A valid RUNNER CREATE, changed by `more`. */
function event(more: Partial<ResourceEvent> = {}, n = 1): ResourceEvent {
  return {
    resourceType: ResourceType.RUNNER,
    operation: 1,
    resourceId: uuid(n),
    organizationId: ORG,
    environmentId: "",
    creatorId: CREATOR,
    ...more,
  };
}

function batch(count: number): ResourceEvent[] {
  return Array.from({ length: count }, (_, i) => event({}, i + 1));
}

describe("validatePublishBatch", () => {
  it.each([1, 1000])("accepts a batch of %i events", (count) => {
    expect(accepted(validatePublishBatch(batch(count)))).toEqual(batch(count));
  });

  it("refuses an empty batch", () => {
    const v = refusal(validatePublishBatch([]));
    expect(v.kind).toBe("invalid_argument");
    expect(v.message).toMatch(/^events: /);
  });

  it("refuses a batch of 1001 events", () => {
    const v = refusal(validatePublishBatch(batch(1001)));
    expect(v.kind).toBe("invalid_argument");
    expect(v.message).toMatch(/^events: .*\b1000\b/);
  });

  it("names the index of the offending event", () => {
    const events = [event({}, 1), event({}, 2), event({ resourceId: "nope" }), event({}, 4)];
    expect(validatePublishBatch(events)).toEqual({
      kind: "invalid_argument",
      message: "events[2].resource_id: not a UUID",
    });
  });

  it("refuses the whole batch when only its last event is bad", () => {
    const events = [...batch(999), event({ operation: 0 })];
    expect(refusal(validatePublishBatch(events)).message).toMatch(/^events\[999\]\.operation: /);
  });

  const refusals: [string, Partial<ResourceEvent>, string | RegExp][] = [
    ["resource_type 0", { resourceType: 0 }, /^events\[0\]\.resource_type: /],
    ["resource_type 51", { resourceType: 51 }, /^events\[0\]\.resource_type: /],
    ["operation 0", { operation: 0 }, /^events\[0\]\.operation: /],
    ["operation 5", { operation: 5 }, /^events\[0\]\.operation: /],
    ["a resource_id that is not a UUID", { resourceId: "x" }, "events[0].resource_id: not a UUID"],
    ["an empty resource_id", { resourceId: "" }, "events[0].resource_id: not a UUID"],
    ["an empty organization_id", { organizationId: "" }, /^events\[0\]\.organization_id: /],
    [
      "an organization_id that is not a UUID",
      { organizationId: "org-1" },
      /^events\[0\]\.organization_id: /,
    ],
    ["a creator_id that is not a UUID", { creatorId: "alice" }, /^events\[0\]\.creator_id: /],
    ...ENVIRONMENT_OWNED.flatMap((type): [string, Partial<ResourceEvent>, RegExp][] => [
      [
        `type ${type} without environment_id`,
        { resourceType: type, environmentId: "" },
        /^events\[0\]\.environment_id: /,
      ],
      [
        `type ${type} with an environment_id that is not a UUID`,
        { resourceType: type, environmentId: "env-1" },
        /^events\[0\]\.environment_id: /,
      ],
    ]),
    [
      "an ENVIRONMENT whose environment_id is another environment",
      { resourceType: ResourceType.ENVIRONMENT, environmentId: ENV },
      /^events\[0\]\.environment_id: /,
    ],
    [
      "an ENVIRONMENT whose environment_id is not a UUID",
      { resourceType: ResourceType.ENVIRONMENT, environmentId: "env-1" },
      /^events\[0\]\.environment_id: /,
    ],
  ];

  it.each(refusals)("refuses %s with invalid_argument naming the field", (_, more, message) => {
    const v = refusal(validatePublishBatch([event(more)]));
    expect(v.kind).toBe("invalid_argument");
    if (typeof message === "string") expect(v.message).toBe(message);
    else expect(v.message).toMatch(message);
  });

  it("bounds occurred_at: from 2000-01-01 to the server's clock plus the allowed skew", () => {
    const nowMs = Date.UTC(2026, 5, 1);
    const clock = { nowMs, maxSkewMs: 300_000 };
    const at = (ms: number) => validatePublishBatch([event({ occurredAtMs: ms })], clock);
    expect(isViolation(at(nowMs + 300_000))).toBe(false);
    expect(isViolation(at(Date.UTC(2000, 0, 1)))).toBe(false);
    expect(refusal(at(nowMs + 300_001)).message).toBe(
      "events[0].occurred_at: more than 300000 ms ahead of the server's clock",
    );
    expect(refusal(at(Date.UTC(2000, 0, 1) - 1)).message).toBe(
      "events[0].occurred_at: before 2000-01-01T00:00:00Z",
    );
    // Without a clock, what Timestamp's JSON form can spell.
    expect(
      refusal(validatePublishBatch([event({ occurredAtMs: Date.UTC(10000, 0, 1) })])).message,
    ).toBe("events[0].occurred_at: after 9999-12-31T23:59:59.999Z");
  });

  it.each(NOT_UUIDS.filter(([, bad]) => bad !== ""))(
    "refuses a creator_id that is not a UUID (%s)",
    (_, bad) => {
      expect(refusal(validatePublishBatch([event({ creatorId: bad })])).message).toMatch(
        /^events\[0\]\.creator_id: /,
      );
    },
  );

  it.each(NOT_UUIDS)("refuses a resource_id that is not a UUID (%s)", (_, bad) => {
    expect(validatePublishBatch([event({ resourceId: bad })])).toEqual({
      kind: "invalid_argument",
      message: "events[0].resource_id: not a UUID",
    });
  });

  it.each([1, 2, 3, 4])("accepts operation %i", (operation) => {
    expect(accepted(validatePublishBatch([event({ operation })]))).toEqual([event({ operation })]);
  });

  it.each([
    ["empty", ""],
    ["a UUID", CREATOR],
  ])("accepts a creator_id that is %s", (_, creatorId) => {
    expect(accepted(validatePublishBatch([event({ creatorId })]))).toEqual([event({ creatorId })]);
  });

  it.each(ENVIRONMENT_OWNED)("accepts type %i with its owning environment_id", (resourceType) => {
    const ev = event({ resourceType, environmentId: ENV });
    expect(accepted(validatePublishBatch([ev]))).toEqual([ev]);
  });

  it.each([
    ["empty", ""],
    ["equal to resource_id", uuid(1)],
    ["equal to resource_id in another case", uuid(1).toUpperCase()],
  ])("accepts an ENVIRONMENT whose environment_id is %s, as its own id", (_, environmentId) => {
    const ev = event({ resourceType: ResourceType.ENVIRONMENT, environmentId });
    expect(accepted(validatePublishBatch([ev]))).toEqual([{ ...ev, environmentId: uuid(1) }]);
  });

  const OTHER_TYPES = ALL_TYPES.filter(
    (t) => t !== ResourceType.ENVIRONMENT && !ENVIRONMENT_OWNED.some((o) => o === t),
  );

  it.each(OTHER_TYPES)("refuses an environment_id on type %i", (resourceType) => {
    const v = refusal(validatePublishBatch([event({ resourceType, environmentId: ENV })]));
    expect(v.kind).toBe("invalid_argument");
    expect(v.message).toMatch(/^events\[0\]\.environment_id: /);
  });

  it.each(OTHER_TYPES)("accepts type %i with an empty environment_id", (resourceType) => {
    expect(accepted(validatePublishBatch([event({ resourceType })]))).toEqual([
      event({ resourceType }),
    ]);
  });

  it("normalizes every UUID to lower case", () => {
    const up = (s: string) => s.toUpperCase();
    const [task, env] = accepted(
      validatePublishBatch([
        event({
          resourceType: ResourceType.TASK,
          resourceId: up(uuid(1)),
          organizationId: up(ORG),
          environmentId: up(ENV),
          creatorId: up(CREATOR),
        }),
        event({ resourceType: ResourceType.ENVIRONMENT, resourceId: up(ENV), environmentId: "" }),
      ]),
    );
    expect(task).toEqual(
      event({ resourceType: ResourceType.TASK, resourceId: uuid(1), environmentId: ENV }),
    );
    expect(env).toEqual(
      event({ resourceType: ResourceType.ENVIRONMENT, resourceId: ENV, environmentId: ENV }),
    );
  });
});
