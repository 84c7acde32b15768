import { describe, expect, it } from "vitest";
import { ServiceError } from "../errors.js";
import { cursorEncoder, decodeCursor, encodeCursor } from "./feed-cursor.js";

const LOG = "5b0e3a2c-7f41-4d6a-9c1e-2f8b6d4a1e01";

describe("feed cursors", () => {
  it.each([0, 1, 42, 2 ** 40, Number.MAX_SAFE_INTEGER])("round-trips sequence %d", (sequence) => {
    const cursor = encodeCursor({ logId: LOG, sequence });
    expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodeCursor(cursor)).toEqual({ logId: LOG, sequence });
  });

  it.each([LOG, "ffffffff-ffff-4fff-bfff-ffffffffffff", "00000000-0000-4000-8000-000000000000"])(
    "cursorEncoder(%s) writes what encodeCursor writes",
    (logId) => {
      const encode = cursorEncoder(logId);
      const sequences = [
        0,
        1,
        255,
        256,
        2 ** 32 - 1,
        2 ** 32,
        2 ** 40 + 3,
        Number.MAX_SAFE_INTEGER,
      ];
      for (let i = 0; i < 2000; i++) sequences.push(i * 7919 + (i % 3) * 2 ** 33);
      for (const sequence of sequences) {
        expect(encode(sequence)).toBe(encodeCursor({ logId, sequence }));
      }
    },
  );

  it("is short: 34 characters", () => {
    expect(encodeCursor({ logId: LOG, sequence: 123_456 })).toHaveLength(34);
  });

  const raw = (edit: (b: Buffer) => void) => {
    const b = Buffer.from(encodeCursor({ logId: LOG, sequence: 5 }), "base64url");
    edit(b);
    return b.toString("base64url");
  };

  it.each([
    ["empty", ""],
    ["not base64url", "a+b/c="],
    ["another version", raw((b) => b.writeUInt8(2, 0))],
    ["too short", encodeCursor({ logId: LOG, sequence: 5 }).slice(0, 30)],
    ["too long", `${encodeCursor({ logId: LOG, sequence: 5 })}AAAA`],
    ["a sequence past 2^53", raw((b) => b.writeBigUInt64BE(2n ** 60n, 17))],
    ["garbage", "not-a-cursor"],
  ])("refuses %s with invalid_argument naming the field", (_, cursor) => {
    expect(() => decodeCursor(cursor)).toThrow(ServiceError);
    expect(() => decodeCursor(cursor)).toThrow("after: not a cursor");
  });
});
