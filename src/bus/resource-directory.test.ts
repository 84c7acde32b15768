import { describe, expect, it } from "vitest";
import { Operation, type ResourceEvent, ResourceType } from "../watch/model.js";
import { ResourceDirectory } from "./resource-directory.js";

const ORG_A = "0a0a0a0a-0000-4000-8000-000000000001";
const ORG_B = "0b0b0b0b-0000-4000-8000-000000000002";
const ALICE = "0c0c0c0c-0000-4000-8000-0000000000a1";
const BOB = "0c0c0c0c-0000-4000-8000-0000000000a2";

function id(n: number): string {
  return `0f0f0f0f-0000-4000-8000-${n.toString(16).padStart(12, "0")}`;
}

function ev(more: Partial<ResourceEvent> = {}): ResourceEvent {
  const resourceId = more.resourceId ?? id(1);
  const resourceType = more.resourceType ?? ResourceType.PROJECT;
  return {
    resourceType,
    operation: Operation.CREATE,
    resourceId,
    organizationId: ORG_A,
    environmentId: resourceType === ResourceType.ENVIRONMENT ? resourceId : "",
    creatorId: "",
    ...more,
  };
}

/** Learns `event` the way the bus does: with the creator it resolved for it. */
function learn(dir: ResourceDirectory, event: ResourceEvent): void {
  dir.learn(event, dir.creatorOf(event));
}

/** What the directory answers for a later event of resource `n` without creator_id. */
function recalled(dir: ResourceDirectory, n: number, organizationId = ORG_A): string {
  return dir.creatorOf(ev({ resourceId: id(n), operation: Operation.DELETE, organizationId }));
}

describe("ResourceDirectory", () => {
  it("answers the event's own creator when it has one", () => {
    const dir = new ResourceDirectory(10);
    learn(dir, ev({ creatorId: ALICE }));
    expect(dir.creatorOf(ev({ creatorId: BOB }))).toBe(BOB);
  });

  it("recalls the creator recorded for the same resource", () => {
    const dir = new ResourceDirectory(10);
    learn(dir, ev({ creatorId: ALICE }));
    learn(dir, ev({ operation: Operation.UPDATE }));
    expect(recalled(dir, 1)).toBe(ALICE);
  });

  it("answers unknown ('') for a resource it never saw", () => {
    expect(recalled(new ResourceDirectory(10), 1)).toBe("");
  });

  it("keeps the latest creator it was told", () => {
    const dir = new ResourceDirectory(10);
    learn(dir, ev({ creatorId: ALICE }));
    learn(dir, ev({ operation: Operation.UPDATE, creatorId: BOB }));
    expect(recalled(dir, 1)).toBe(BOB);
  });

  it.each([
    ["a PROJECT", ResourceType.PROJECT],
    ["an ENVIRONMENT", ResourceType.ENVIRONMENT],
  ])("forgets %s once its DELETE is learned", (_, resourceType) => {
    const dir = new ResourceDirectory(10);
    learn(dir, ev({ resourceType, creatorId: ALICE }));
    learn(dir, ev({ resourceType, operation: Operation.DELETE }));
    expect(recalled(dir, 1)).toBe("");
    expect(dir.environment(id(1))).toBeUndefined();
    expect(dir.size).toBe(0);
  });

  it("holds at most maxEntries resources, forgetting the oldest first", () => {
    const dir = new ResourceDirectory(3);
    for (let n = 1; n <= 5; n++) learn(dir, ev({ resourceId: id(n), creatorId: ALICE }));
    expect(dir.size).toBe(3);
    expect([1, 2, 3, 4, 5].map((n) => recalled(dir, n))).toEqual(["", "", ALICE, ALICE, ALICE]);
  });

  it("forgets the least recently touched resource, not the first learned", () => {
    const dir = new ResourceDirectory(2);
    learn(dir, ev({ resourceId: id(1), creatorId: ALICE }));
    learn(dir, ev({ resourceId: id(2), creatorId: BOB }));
    learn(dir, ev({ resourceId: id(1), operation: Operation.UPDATE }));
    learn(dir, ev({ resourceId: id(3), creatorId: BOB }));
    expect([1, 2, 3].map((n) => recalled(dir, n))).toEqual([ALICE, "", BOB]);
  });

  it("does not spend entries on resources with nothing to remember", () => {
    const dir = new ResourceDirectory(10);
    learn(dir, ev({ resourceId: id(1) }));
    learn(dir, ev({ resourceId: id(2), operation: Operation.UPDATE }));
    expect(dir.size).toBe(0);
  });

  it("does not use a record of another organization", () => {
    const dir = new ResourceDirectory(10);
    learn(dir, ev({ organizationId: ORG_A, creatorId: ALICE }));
    expect(recalled(dir, 1, ORG_B)).toBe("");
    expect(recalled(dir, 1, ORG_A)).toBe(ALICE);
  });

  it("does not let another organization's event without creator change the record", () => {
    const dir = new ResourceDirectory(10);
    learn(dir, ev({ organizationId: ORG_A, creatorId: ALICE }));
    learn(dir, ev({ organizationId: ORG_B, operation: Operation.UPDATE }));
    expect(recalled(dir, 1, ORG_A)).toBe(ALICE);
    expect(recalled(dir, 1, ORG_B)).toBe("");
  });

  describe("environment", () => {
    it("knows an environment with its organization and creator", () => {
      const dir = new ResourceDirectory(10);
      learn(dir, ev({ resourceType: ResourceType.ENVIRONMENT, creatorId: ALICE }));
      expect(dir.environment(id(1))).toEqual({ organizationId: ORG_A, creatorId: ALICE });
    });

    it("knows an environment whose creator is unknown", () => {
      const dir = new ResourceDirectory(10);
      learn(dir, ev({ resourceType: ResourceType.ENVIRONMENT }));
      expect(dir.environment(id(1))).toEqual({ organizationId: ORG_A, creatorId: "" });
    });

    it("learns an environment's creator from a later event", () => {
      const dir = new ResourceDirectory(10);
      learn(dir, ev({ resourceType: ResourceType.ENVIRONMENT }));
      learn(
        dir,
        ev({ resourceType: ResourceType.ENVIRONMENT, operation: Operation.UPDATE, creatorId: BOB }),
      );
      expect(dir.environment(id(1))).toEqual({ organizationId: ORG_A, creatorId: BOB });
    });

    it.each([
      ["a PROJECT", ResourceType.PROJECT],
      ["a TASK", ResourceType.TASK],
    ])("does not take %s for an environment", (_, resourceType) => {
      const dir = new ResourceDirectory(10);
      learn(dir, ev({ resourceType, creatorId: ALICE }));
      expect(dir.environment(id(1))).toBeUndefined();
    });

    it("forgets an environment pushed out by newer resources", () => {
      const dir = new ResourceDirectory(1);
      learn(dir, ev({ resourceType: ResourceType.ENVIRONMENT, creatorId: ALICE }));
      learn(dir, ev({ resourceId: id(2), creatorId: ALICE }));
      expect(dir.environment(id(1))).toBeUndefined();
    });
  });
});
