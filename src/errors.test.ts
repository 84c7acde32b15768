import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { codeOf, type ErrorKind, ServiceError, toConnectError } from "./errors.js";

const KINDS: ErrorKind[] = [
  "invalid_argument",
  "unauthenticated",
  "permission_denied",
  "not_found",
  "already_exists",
  "resource_exhausted",
  "out_of_range",
  "unavailable",
  "deadline_exceeded",
  "canceled",
  "internal",
];

describe("codeOf", () => {
  it.each<[string, unknown]>([
    ...KINDS.map((kind): [string, unknown] => [kind, new ServiceError(kind, "m")]),
    ["a ConnectError", new ConnectError("m", Code.Aborted)],
    ["an Error", new Error("m")],
    ["a string", "m"],
    ["undefined", undefined],
  ])("gives the code toConnectError gives, for %s", (_name, err) => {
    expect(codeOf(err)).toBe(toConnectError(err).code);
  });
});
