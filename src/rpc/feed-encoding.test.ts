import { toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { random } from "../../test/helpers/fixtures.js";
import { WatchResponseSchema } from "../gen/eventservice/feed/v1/feed_pb.js";
import type { FeedItem } from "../session/feed-sessions.js";
import { encodeFeedResponse } from "./feed-encoding.js";
import { toFeedResponse } from "./feed-service.js";

const ID = "a1b2c3d4-0000-4000-8000-0000000000aa";
const CURSOR = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

function event(
  fields: Partial<{ operation: number; resourceType: number; resourceId: string }>,
  acceptedAtMs: number,
  cursor = CURSOR,
): FeedItem {
  return {
    kind: "event",
    cursor,
    event: {
      sequence: 1,
      creatorId: "",
      publishedAtMs: 0,
      acceptedAtMs,
      event: {
        operation: fields.operation ?? 1,
        resourceType: fields.resourceType ?? 2,
        resourceId: fields.resourceId ?? ID,
        organizationId: ID,
        environmentId: "",
        creatorId: "",
      },
    },
  };
}

/** What protobuf-es writes for the item: the bytes the hand-written encoder must match. */
function reflective(item: FeedItem): Uint8Array {
  return toBinary(WatchResponseSchema, toFeedResponse(item));
}

describe("encodeFeedResponse", () => {
  it.each<[string, FeedItem]>([
    ["a checkpoint", { kind: "checkpoint", cursor: CURSOR }],
    ["a checkpoint with an empty cursor", { kind: "checkpoint", cursor: "" }],
    ["an event", event({}, 1_780_000_000_123)],
    ["an event on a whole second", event({}, 1_780_000_000_000)],
    ["an event at the epoch", event({}, 0)],
    ["an event within the first second", event({}, 999)],
    ["an event far in the future", event({}, 2 ** 45 + 7)],
    ["zero operation and type", event({ operation: 0, resourceType: 0 }, 1_000)],
    ["large enum numbers", event({ operation: 300, resourceType: 2 ** 31 - 1 }, 1_001)],
    ["an empty resource id and cursor", event({ resourceId: "" }, 5, "")],
    ["a resource id outside ASCII", event({ resourceId: "ré-ß-水" }, 42)],
    ["a long cursor", event({}, 42, "c".repeat(300))],
  ])("writes the bytes protobuf-es writes for %s", (_name, item) => {
    const mine = encodeFeedResponse(item);
    expect(mine).toBeDefined();
    expect(Buffer.from(mine as Buffer).toString("hex")).toBe(
      Buffer.from(reflective(item)).toString("hex"),
    );
  });

  it.each<[string, FeedItem]>([
    ["a checkpoint", { kind: "checkpoint", cursor: CURSOR }],
    ["an event", event({}, 1_780_000_000_123)],
  ])("writes %s after the headroom it is asked to leave", (_name, item) => {
    const framed = encodeFeedResponse(item, 5) as Buffer;
    expect(framed.subarray(5).equals(reflective(item))).toBe(true);
  });

  it.each<[string, FeedItem]>([
    ["a time before the epoch", event({}, -1)],
    ["a fraction of a millisecond", event({}, 1.5)],
    ["a negative enum number", event({ operation: -1 }, 1)],
  ])("leaves %s to protobuf-es", (_name, item) => {
    expect(encodeFeedResponse(item)).toBeUndefined();
  });

  it("matches protobuf-es on 5,000 seeded random items", () => {
    const next = random(20261206);
    const text = (max: number) =>
      Array.from({ length: next(max) }, () => String.fromCharCode(32 + next(2000))).join("");
    for (let i = 0; i < 5000; i++) {
      const item: FeedItem =
        next(5) === 0
          ? { kind: "checkpoint", cursor: text(80) }
          : event(
              { operation: next(6), resourceType: next(20), resourceId: text(60) },
              next(2) === 0 ? next(2_000_000_000) : next(2_000_000_000) * 1000 + next(1000),
              text(80),
            );
      expect(Buffer.from(encodeFeedResponse(item) as Buffer).equals(reflective(item))).toBe(true);
    }
  });
});
