import { describe, expect, it } from "vitest";
import {
  ResourceOperation as GenResourceOperation,
  ResourceType as GenResourceType,
} from "../gen/gitpod/v1/event_pb.js";
import { MAX_OPERATION, MAX_RESOURCE_TYPE, Operation, ResourceType } from "./model.js";

/** The [name, number] pairs of a generated numeric enum (without its reverse mapping). */
function numbersOf(e: object): [string, number][] {
  return Object.entries(e).filter(
    (entry): entry is [string, number] => typeof entry[1] === "number",
  );
}

const generatedTypes = new Map(numbersOf(GenResourceType));
const generatedOperations = new Map(numbersOf(GenResourceOperation));

describe("model.ts mirrors gitpod.v1 enums", () => {
  it.each(Object.entries(ResourceType))("ResourceType.%s is %i as in the proto", (name, value) => {
    expect(generatedTypes.get(name)).toBe(value);
  });

  it.each(Object.entries(Operation))("Operation.%s is %i as in the proto", (name, value) => {
    expect(generatedOperations.get(name)).toBe(value);
  });

  it("MAX_RESOURCE_TYPE is the highest ResourceType number", () => {
    expect(MAX_RESOURCE_TYPE).toBe(Math.max(...generatedTypes.values()));
  });

  it("defines every ResourceType number from 1 to MAX_RESOURCE_TYPE", () => {
    const defined = new Set(generatedTypes.values());
    const missing = Array.from({ length: MAX_RESOURCE_TYPE }, (_, i) => i + 1).filter(
      (n) => !defined.has(n),
    );
    expect(missing).toEqual([]);
  });

  it("MAX_OPERATION is the highest ResourceOperation number", () => {
    expect(MAX_OPERATION).toBe(Math.max(...generatedOperations.values()));
  });

  it("names every ResourceOperation except UNSPECIFIED", () => {
    const expected = [...generatedOperations].filter(([name]) => name !== "UNSPECIFIED");
    expect(Object.entries(Operation)).toEqual(expected);
  });
});
