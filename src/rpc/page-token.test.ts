import { describe, expect, it } from "vitest";
import { ServiceError } from "../errors.js";
import { decodePageToken, encodePageToken, type PageCursor } from "./page-token.js";

const SECRET = new Uint8Array(32).map((_, i) => i + 1);
const OTHER_SECRET = new Uint8Array(32).map((_, i) => 255 - i);
const DIGEST = '["audit/v1","org",[],[],[],[],null,null,true]';
const CURSOR: PageCursor = {
  createdAtMs: 1_767_225_600_123,
  id: "0a0a0a0a-0000-4000-8000-00000000002a",
  descending: true,
};

function refusal(fn: () => unknown): ServiceError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ServiceError) return err;
    throw err;
  }
  throw new Error("expected a refusal");
}

function expectInvalid(token: string, secret = SECRET, digest = DIGEST): void {
  const err = refusal(() => decodePageToken(secret, token, digest));
  expect(err.kind).toBe("invalid_argument");
  expect(err.message).toBe("pagination.token: invalid page token");
}

describe("page tokens", () => {
  it.each<[string, PageCursor]>([
    ["newest first", CURSOR],
    ["oldest first", { ...CURSOR, descending: false }],
    ["at the epoch", { ...CURSOR, createdAtMs: 0 }],
    ["before 1970", { ...CURSOR, createdAtMs: -62_135_596_800_000 }],
    ["at the largest safe ms", { ...CURSOR, createdAtMs: Number.MAX_SAFE_INTEGER }],
    ["with an upper-case id", { ...CURSOR, id: CURSOR.id.toUpperCase() }],
    ["with a non-UUID id", { ...CURSOR, id: "é-1" }],
  ])("round-trips a cursor %s", (_, cursor) => {
    const token = encodePageToken(SECRET, cursor, DIGEST);
    expect(decodePageToken(SECRET, token, DIGEST)).toEqual(cursor);
  });

  it("is URL-safe and compact", () => {
    const token = encodePageToken(SECRET, CURSOR, DIGEST);
    expect(token).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(token.length).toBeLessThanOrEqual(110);
  });

  it("does not change with the page size, only with the query digest", () => {
    const a = encodePageToken(SECRET, CURSOR, DIGEST);
    expect(encodePageToken(SECRET, CURSOR, DIGEST)).toBe(a);
    expect(encodePageToken(SECRET, CURSOR, `${DIGEST} `)).not.toBe(a);
  });

  it("refuses a token whose bytes were changed, at every byte and every bit", () => {
    const bytes = Buffer.from(encodePageToken(SECRET, CURSOR, DIGEST), "base64url");
    for (let i = 0; i < bytes.length; i++) {
      for (let bit = 0; bit < 8; bit++) {
        const copy = Buffer.from(bytes);
        copy[i] = (copy[i] as number) ^ (1 << bit);
        expectInvalid(copy.toString("base64url"));
      }
    }
  });

  it("refuses a token whose text was changed at any character, to any other character", () => {
    const token = encodePageToken(SECRET, CURSOR, DIGEST);
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (let i = 0; i < token.length; i++) {
      for (const c of alphabet) {
        if (c === token[i]) continue;
        expectInvalid(token.slice(0, i) + c + token.slice(i + 1));
      }
    }
  });

  it("refuses a token cut short or made longer", () => {
    const token = encodePageToken(SECRET, CURSOR, DIGEST);
    for (let n = 0; n < token.length; n++) expectInvalid(token.slice(0, n));
    expectInvalid(`${token}A`);
    expectInvalid(`${token}AAAA`);
    expectInvalid(`A${token}`);
  });

  it("refuses a token signed with another secret", () => {
    expectInvalid(encodePageToken(OTHER_SECRET, CURSOR, DIGEST));
  });

  it("refuses a token made for another query", () => {
    const token = encodePageToken(SECRET, CURSOR, DIGEST);
    expectInvalid(token, SECRET, DIGEST.replace("true", "false"));
    expectInvalid(token, SECRET, "");
  });

  it.each([
    ["empty", ""],
    ["padding", `${encodePageToken(SECRET, CURSOR, DIGEST)}=`],
    ["standard base64 characters", "ab+/cd"],
    ["whitespace", ` ${encodePageToken(SECRET, CURSOR, DIGEST)}`],
    ["a JSON cursor", '{"createdAtMs":1,"id":"x"}'],
    ["base64 of a JSON cursor", Buffer.from('{"createdAtMs":1,"id":"x"}').toString("base64url")],
    ["a UUID", CURSOR.id],
    ["one byte", "AA"],
    ["only a MAC's worth of zeros", Buffer.alloc(32).toString("base64url")],
    ["a huge string", "A".repeat(100_000)],
    ["non-ASCII", "tökén"],
  ])("refuses garbage: %s", (_, token) => {
    expectInvalid(token);
  });

  it.each<[string, PageCursor]>([
    ["a fractional time", { ...CURSOR, createdAtMs: 1.5 }],
    ["a time beyond int64", { ...CURSOR, createdAtMs: 2 ** 63 }],
    ["an empty id", { ...CURSOR, id: "" }],
    ["an id over 255 bytes", { ...CURSOR, id: "x".repeat(256) }],
  ])("will not encode a cursor with %s", (_, cursor) => {
    expect(() => encodePageToken(SECRET, cursor, DIGEST)).toThrow(/cannot make a page token/);
  });

  it("carries any time a stored row may hold, beyond safe integers and Timestamp's range", () => {
    for (const createdAtMs of [Date.UTC(10000, 0, 1), 2 ** 60, -(2 ** 62), 0]) {
      const cursor = { ...CURSOR, createdAtMs };
      expect(decodePageToken(SECRET, encodePageToken(SECRET, cursor, DIGEST), DIGEST)).toEqual(
        cursor,
      );
    }
  });
});
