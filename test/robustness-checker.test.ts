import { describe, expect, it } from "vitest";
import {
  check,
  type History,
  type LoggedEvent,
  type PublishRecord,
  type StreamRecord,
} from "./robustness/checker.js";

// The robustness suite's checker (test/robustness/checker.ts) on made-up histories: it must
// find each kind of violation, and nothing in a history that keeps the guarantees.

const ORG = "org-a";
const ADMIN = { subject: "admin", organization: ORG, role: "admin" as const };
const MEMBER = { subject: "member", organization: ORG, role: "member" as const };
const PROJECT = 3;
const ENVIRONMENT = 1;

function logged(...ids: string[]): LoggedEvent[] {
  return ids.map((id, i) => ({
    sequence: i + 1,
    id,
    organizationId: ORG,
    resourceType: id.startsWith("env") ? ENVIRONMENT : PROJECT,
    creatorId: "admin",
  }));
}

function publish(ids: string[], attempts: PublishRecord["attempts"], key?: string): PublishRecord {
  return {
    publisher: "p",
    key,
    events: ids.map((id) => ({
      id,
      organizationId: ORG,
      resourceType: PROJECT,
      creatorId: "admin",
    })),
    attempts,
  };
}

function stream(
  ids: string[],
  end: StreamRecord["end"] = "error",
  principal: StreamRecord["principal"] = ADMIN,
): StreamRecord {
  return { watcher: "w", principal, ids, end, detail: "" };
}

function history(more: Partial<History>): History {
  const log = more.log ?? logged("a", "b", "c");
  return { publishes: [], streams: [], feeds: [], log, lastSequence: log.length, ...more };
}

describe("the robustness checker", () => {
  it("finds nothing in a history that keeps the guarantees", () => {
    expect(
      check(
        history({
          publishes: [
            publish(
              ["a", "b"],
              [
                { kind: "unknown", code: "deadline_exceeded", message: "" },
                { kind: "acked", first: 1, last: 2, replayed: true },
              ],
              "k",
            ),
            publish(
              ["x"],
              [{ kind: "refused", code: "unavailable", message: "database unavailable" }],
            ),
            publish(["c"], [{ kind: "unknown", code: "unavailable", message: "" }]),
          ],
          streams: [
            stream(["a", "b", "c"]),
            stream(["b"], "closed"),
            stream(["a", "b", "c"], "error", MEMBER),
          ],
          feeds: [
            {
              consumer: "f",
              principal: ADMIN,
              ids: ["a", "b", "c"],
              connections: [stream(["a"]), stream(["b", "c"])],
            },
          ],
        }),
      ),
    ).toEqual([]);
  });

  it("finds an event logged twice, a gap, and a counter ahead of the log", () => {
    const log = logged("a", "b", "a");
    const gap = [...logged("a"), { ...(logged("a", "b")[1] as LoggedEvent), sequence: 3 }];
    expect(check(history({ log }))).toEqual([
      expect.stringMatching(/event a logged twice, at 1 and 3/),
    ]);
    expect(check(history({ log: gap, lastSequence: 3 }))).toEqual([
      expect.stringMatching(/sequence 3 follows 1/),
    ]);
    expect(check(history({ lastSequence: 4 }))).toEqual([expect.stringMatching(/counter says 4/)]);
  });

  it("finds an acknowledged batch not logged where it was acknowledged, and a refused one logged", () => {
    expect(
      check(
        history({
          publishes: [publish(["a"], [{ kind: "acked", first: 2, last: 2, replayed: false }])],
        }),
      ),
    ).toEqual([expect.stringMatching(/acknowledged as 2-2, logged at 1/)]);
    expect(
      check(
        history({
          publishes: [publish(["c"], [{ kind: "refused", code: "invalid_argument", message: "" }])],
        }),
      ),
    ).toEqual([expect.stringMatching(/refused .* yet logged/)]);
  });

  it("finds a retried batch refused as another, and a half-written one", () => {
    expect(
      check(
        history({
          publishes: [
            publish(
              ["a"],
              [
                { kind: "unknown", code: "unavailable", message: "" },
                { kind: "refused", code: "already_exists", message: "" },
              ],
              "k",
            ),
          ],
        }),
      ),
    ).toContainEqual(expect.stringMatching(/refused with already_exists/));
    expect(
      check(
        history({
          publishes: [
            publish(["a", "zz"], [{ kind: "unknown", code: "unavailable", message: "" }]),
          ],
        }),
      ),
    ).toEqual([expect.stringMatching(/half written/)]);
  });

  it("finds a stream out of order, a duplicate, a skip, a clean end and an event the watcher may not see", () => {
    const log = logged("a", "b", "env-1", "c");
    expect(check(history({ log, streams: [stream(["b", "a"])] }))).toEqual([
      expect.stringMatching(/sequence 1 after 2/),
    ]);
    expect(check(history({ log, streams: [stream(["a", "a"])] }))).toEqual([
      expect.stringMatching(/sequence 1 after 1/),
    ]);
    expect(check(history({ log, streams: [stream(["a", "c"])] }))).toEqual([
      expect.stringMatching(/skipped 2 event\(s\) while live, first at sequence 2/),
    ]);
    expect(check(history({ log, streams: [stream(["a"], "clean")] }))).toEqual([
      expect.stringMatching(/ended cleanly/),
    ]);
    expect(check(history({ log, streams: [stream(["b", "env-1"], "error", MEMBER)] }))).toEqual([
      expect.stringMatching(/member member may not see/),
    ]);
    // A member does not miss the environment it may not see.
    expect(check(history({ log, streams: [stream(["b", "c"], "error", MEMBER)] }))).toEqual([]);
  });

  it("excuses a clean end that was a dropped transport failure only while a replica was killed", () => {
    const dropped = { ...stream(["a"], "clean"), transportFailed: true, endedAtS: 10 };
    expect(check(history({ streams: [dropped], kills: [{ fromS: 9.5, toS: 9.8 }] }))).toEqual([]);
    expect(check(history({ streams: [dropped], kills: [{ fromS: 20, toS: 21 }] }))).toEqual([
      expect.stringMatching(/ended cleanly/),
    ]);
  });

  it("checks a feed across its connections", () => {
    expect(
      check(
        history({
          feeds: [
            {
              consumer: "f",
              principal: ADMIN,
              ids: ["a", "c"],
              connections: [stream(["a"]), stream(["c"])],
            },
          ],
        }),
      ),
    ).toEqual([expect.stringMatching(/feed of f: skipped 1/)]);
  });
});
