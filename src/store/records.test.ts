import { describe, expect, it } from "vitest";
import { isUuid } from "../watch/uuid.js";
import { newEntryId } from "./records.js";

describe("newEntryId", () => {
  it("makes UUIDv7s: canonical form, version 7, RFC 9562 variant", () => {
    for (let i = 0; i < 100; i++) {
      const id = newEntryId();
      expect(isUuid(id)).toBe(true);
      expect(id[14]).toBe("7");
      expect("89ab").toContain(id[19]);
    }
  });

  it("puts the time first, so ids of later entries sort after earlier ones", () => {
    const t = Date.parse("2026-11-26T12:00:00Z");
    const ids = [t, t + 1, t + 1000, t + 86_400_000].map((ms) => newEntryId(ms));
    expect([...ids].sort()).toEqual(ids);
    expect(ids[0]?.replaceAll("-", "").slice(0, 12)).toBe(t.toString(16).padStart(12, "0"));
  });
});
