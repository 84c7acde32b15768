import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { grpcProtocol } from "../connect-protocol.js";
import { grpcStatus } from "./grpc-status.js";

describe("grpcStatus", () => {
  it("says success with the one field connect-es writes for it", () => {
    const headers = grpcProtocol.setTrailerStatus(new Headers(), undefined);
    expect(grpcStatus(undefined)).toEqual(Object.fromEntries(headers.entries()));
    expect(grpcStatus(undefined)).toEqual({ "grpc-status": "0" });
  });

  it("gives each answer its own record (Node may keep what it is handed)", () => {
    expect(grpcStatus(undefined)).not.toBe(grpcStatus(undefined));
  });

  it("spells an error's code and message as the gRPC spec percent-encodes them", () => {
    const status = grpcStatus(
      new ConnectError("events[0].resource_id: ünknown 100%", Code.InvalidArgument),
    );
    expect(status).toEqual({
      "grpc-status": "3",
      "grpc-message": "events[0].resource_id: %C3%BCnknown 100%25",
    });
  });
});
