import { describe, expect, it } from "vitest";
import type { PublishedEvent } from "../bus/event-bus.js";
import { EventService } from "../gen/gitpod/v1/event_pb.js";
import { toWatchResponse } from "../rpc/convert.js";
import { isRefusal, StreamWires } from "./stream-wire.js";

function event(n: number): PublishedEvent {
  return {
    sequence: n,
    creatorId: "",
    publishedAtMs: 0,
    acceptedAtMs: 0,
    event: {
      resourceType: 3,
      operation: 2,
      resourceId: `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`,
      organizationId: "a0000000-0000-4000-8000-00000000000a",
      environmentId: "",
      creatorId: "",
    },
  };
}

function wireFor(contentType: string) {
  const wires = new StreamWires(EventService.method.watchEvents, toWatchResponse);
  const n = wires.negotiate({ "content-type": contentType });
  if (n === undefined || isRefusal(n)) throw new Error(`no wire for ${contentType}`);
  return n.wire;
}

describe("StreamWires", () => {
  it.each([
    "application/jsonl",
    "application/connect+proto",
    "application/grpc",
    "application/grpc-web+json",
  ])("gives the streams of one turn the same batch, joined once (%s)", (contentType) => {
    const wire = wireFor(contentType);
    const [a, b, c] = [event(1), event(2), event(3)];
    const first = wire.batch([a, b, c]);
    expect(wire.batch([a, b, c])).toBe(first);
    // Other items (a filtered stream), or the same ones in another batch: bytes of their own.
    const other = wire.batch([a, c]);
    expect(other).not.toBe(first);
    expect(wire.batch([a, b, c])).not.toBe(other);
    expect(Buffer.compare(wire.batch([a, b, c]), first)).toBe(0);
  });

  it("aligns every JSONL write to 64 bytes, with the padding before the last newline only", () => {
    const wire = wireFor("application/jsonl");
    for (const items of [
      [event(1)],
      [event(1), event(2)],
      Array.from({ length: 7 }, (_, i) => event(i + 10)),
    ]) {
      const bytes =
        items.length === 1 ? wire.single(items[0] as PublishedEvent) : wire.batch(items);
      expect(bytes.length % 64).toBe(0);
      const lines = bytes.toString("utf8").split("\n");
      expect(lines.pop()).toBe("");
      expect(lines).toHaveLength(items.length);
      expect(lines.slice(0, -1).every((l) => l.endsWith("}"))).toBe(true);
      expect(lines.map((l) => (JSON.parse(l) as { resourceId: string }).resourceId)).toEqual(
        items.map((e) => e.event.resourceId),
      );
    }
  });
});
