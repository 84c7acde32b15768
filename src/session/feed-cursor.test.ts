import { describe, expect, it } from "vitest";
import { ServiceError } from "../errors.js";
import { decodeCursor, encodeCursor } from "./feed-cursor.js";

const LOG = "5b0e3a2c-7f41-4d6a-9c1e-2f8b6d4a1e01";

describe("feed cursors", () => {
  it.each([0, 1, 42, 2 ** 40, Number.MAX_SAFE_INTEGER])("round-trips sequence %d", (sequence) => {
    const cursor = encodeCursor({ logId: LOG, sequence });
    expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodeCursor(cursor)).toEqual({ logId: LOG, sequence });
  });

  it.each([
    ["empty", ""],
    ["not base64url", "a+b/c="],
    ["another format", Buffer.from(`c2:${LOG}:5`).toString("base64url")],
    ["no sequence", Buffer.from(`c1:${LOG}:`).toString("base64url")],
    ["a negative sequence", Buffer.from(`c1:${LOG}:-1`).toString("base64url")],
    ["a leading zero", Buffer.from(`c1:${LOG}:07`).toString("base64url")],
    ["too large", Buffer.from(`c1:${LOG}:99999999999999999`).toString("base64url")],
    ["garbage", "not-a-cursor"],
  ])("refuses %s with invalid_argument naming the field", (_, cursor) => {
    expect(() => decodeCursor(cursor)).toThrow(ServiceError);
    expect(() => decodeCursor(cursor)).toThrow("after: not a cursor");
  });
});
