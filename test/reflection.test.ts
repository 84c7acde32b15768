import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { fromBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as v1 from "../src/gen/grpc/reflection/v1/reflection_pb.js";
import { ORG_A, TOKENS, uuid } from "./helpers/fixtures.js";
import { startServer, type TestServer } from "./helpers/server.js";
import { BUF, PROTO_DIR } from "./helpers/watchers.js";

// CONTRACT §11: server reflection (v1 and v1alpha) for tools without the schema.

const run = promisify(execFile);

const METHODS = [
  "eventservice.feed.v1.FeedService/Watch",
  "eventservice.ingest.v1.IngestService/Publish",
  "gitpod.v1.EventService/GetAuditLog",
  "gitpod.v1.EventService/ListAuditLogs",
  "gitpod.v1.EventService/WatchEvents",
  "grpc.health.v1.Health/Check",
  "grpc.health.v1.Health/Watch",
  "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
  "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

let server: TestServer;
beforeAll(async () => {
  server = await startServer();
});
afterAll(() => server.close());

/** One request and its response on a v1 reflection stream (connect-node, gRPC over HTTP/2). */
async function reflect(
  request: MessageInitShape<typeof v1.ServerReflectionRequestSchema>["messageRequest"],
): Promise<v1.ServerReflectionResponse["messageResponse"]> {
  const client = createClient(v1.ServerReflection, createGrpcTransport({ baseUrl: server.url }));
  async function* requests() {
    yield { host: "", messageRequest: request };
  }
  for await (const res of client.serverReflectionInfo(requests())) return res.messageResponse;
  throw new Error("no response");
}

describe("server reflection v1", () => {
  it("lists every service of the port, without a token", async () => {
    const r = await reflect({ case: "listServices", value: "" });
    expect(r.case).toBe("listServicesResponse");
    const names = r.case === "listServicesResponse" ? r.value.service.map((s) => s.name) : [];
    expect(names).toEqual([...new Set(METHODS.map((m) => m.split("/")[0]))].sort());
  });

  it("answers file_containing_symbol with the file and its dependencies", async () => {
    const r = await reflect({ case: "fileContainingSymbol", value: "gitpod.v1.EventService" });
    expect(r.case).toBe("fileDescriptorResponse");
    const files =
      r.case === "fileDescriptorResponse"
        ? r.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b).name)
        : [];
    expect(files[0]).toBe("gitpod/v1/event.proto");
    expect(files).toEqual(
      expect.arrayContaining([
        "gitpod/v1/pagination.proto",
        "gitpod/v1/identity.proto",
        "google/protobuf/timestamp.proto",
      ]),
    );
  });

  it.each([
    ["a method", "gitpod.v1.EventService.WatchEvents", "gitpod/v1/event.proto"],
    [
      "a nested message",
      "gitpod.v1.WatchEventsRequest.ResourceTypeFilter",
      "gitpod/v1/event.proto",
    ],
    ["an enum", "gitpod.v1.ResourceType", "gitpod/v1/event.proto"],
    ["a leading dot", ".grpc.health.v1.HealthCheckRequest", "grpc/health/v1/health.proto"],
  ])("finds the file of %s", async (_, symbol, file) => {
    const r = await reflect({ case: "fileContainingSymbol", value: symbol });
    expect(
      r.case === "fileDescriptorResponse" &&
        fromBinary(FileDescriptorProtoSchema, r.value.fileDescriptorProto[0] as Uint8Array).name,
    ).toBe(file);
  });

  it("answers file_by_filename", async () => {
    const r = await reflect({
      case: "fileByFilename",
      value: "eventservice/ingest/v1/ingest.proto",
    });
    expect(r.case).toBe("fileDescriptorResponse");
  });

  it.each([
    ["fileContainingSymbol", "no.such.Symbol"],
    ["fileByFilename", "no/such.proto"],
    ["allExtensionNumbersOfType", "no.such.Message"],
  ] as const)("answers an unknown %s with NOT_FOUND and keeps the stream", async (kind, value) => {
    const r = await reflect({ case: kind, value });
    expect(r.case).toBe("errorResponse");
    expect(r.case === "errorResponse" && r.value.errorCode).toBe(grpc.status.NOT_FOUND);
  });

  it("answers several requests on one stream, in order", async () => {
    const client = createClient(v1.ServerReflection, createGrpcTransport({ baseUrl: server.url }));
    async function* requests() {
      yield { messageRequest: { case: "listServices" as const, value: "*" } };
      yield { messageRequest: { case: "fileByFilename" as const, value: "gitpod/v1/event.proto" } };
      yield { messageRequest: { case: "fileContainingSymbol" as const, value: "nope" } };
    }
    const cases: string[] = [];
    for await (const res of client.serverReflectionInfo(requests())) {
      cases.push(String(res.messageResponse.case));
      expect(res.originalRequest).toBeDefined();
    }
    expect(cases).toEqual(["listServicesResponse", "fileDescriptorResponse", "errorResponse"]);
  });
});

describe("server reflection's cost, without a token", () => {
  it("sends each file once per stream and ends a stream past REFLECTION_MAX_REQUESTS", async () => {
    const own = await startServer({ REFLECTION_MAX_REQUESTS: "20" });
    try {
      const client = createClient(v1.ServerReflection, createGrpcTransport({ baseUrl: own.url }));
      const ask = { case: "fileContainingSymbol" as const, value: "gitpod.v1.EventService" };
      async function* requests() {
        for (let i = 0; i < 25; i++) yield { messageRequest: ask };
      }
      const files: number[] = [];
      let bytes = 0;
      let failure: unknown;
      try {
        for await (const res of client.serverReflectionInfo(requests())) {
          const r = res.messageResponse;
          const protos = r.case === "fileDescriptorResponse" ? r.value.fileDescriptorProto : [];
          files.push(protos.length);
          for (const p of protos) bytes += p.length;
        }
      } catch (err) {
        failure = err;
      }
      // The first answer has the file and its dependencies; later ones the file alone.
      expect(files[0]).toBeGreaterThan(1);
      expect(files.slice(1)).toEqual(Array(19).fill(1));
      expect(ConnectError.from(failure).code).toBe(Code.ResourceExhausted);
      // 20 requests of a few dozen bytes: far less than 20 times the schema.
      expect(bytes).toBeLessThan(3 * (files[0] as number) * 20_000);
    } finally {
      await own.close();
    }
  });
});

describe("server reflection v1alpha, through @grpc/grpc-js (as grpcurl asks first)", () => {
  it("lists the services", async () => {
    const def = protoLoader.loadSync("grpc/reflection/v1alpha/reflection.proto", {
      includeDirs: [PROTO_DIR],
    });
    const pkg = grpc.loadPackageDefinition(def) as unknown as {
      grpc: { reflection: { v1alpha: { ServerReflection: grpc.ServiceClientConstructor } } };
    };
    const client = new pkg.grpc.reflection.v1alpha.ServerReflection(
      new URL(server.url).host,
      grpc.credentials.createInsecure(),
    );
    try {
      const call = (
        client.ServerReflectionInfo as () => grpc.ClientDuplexStream<
          object,
          { listServicesResponse?: { service: { name: string }[] } }
        >
      )();
      const first = new Promise<{ listServicesResponse?: { service: { name: string }[] } }>(
        (resolve, reject) => {
          call.once("data", resolve);
          call.once("error", reject);
        },
      );
      call.write({ listServices: "" });
      const res = await first;
      call.end();
      expect(res.listServicesResponse?.service.map((s) => s.name)).toContain(
        "gitpod.v1.EventService",
      );
    } finally {
      client.close();
    }
  });
});

describe("buf curl without a schema", () => {
  it("lists every method", async () => {
    const { stdout } = await run(BUF, [
      "curl",
      "--protocol",
      "grpc",
      "--http2-prior-knowledge",
      "--list-methods",
      server.url,
    ]);
    expect(stdout.trim().split("\n")).toEqual(METHODS);
  });

  it("publishes with the schema it learned by reflection", async () => {
    const { stdout } = await run(BUF, [
      "curl",
      "--protocol",
      "grpc",
      "--http2-prior-knowledge",
      "-H",
      `Authorization: Bearer ${TOKENS.publisher}`,
      "-d",
      JSON.stringify({
        events: [
          {
            resourceType: "RESOURCE_TYPE_PROJECT",
            operation: "RESOURCE_OPERATION_CREATE",
            resourceId: uuid(),
            organizationId: ORG_A,
          },
        ],
      }),
      `${server.url}/eventservice.ingest.v1.IngestService/Publish`,
    ]);
    expect(JSON.parse(stdout)).toHaveProperty("firstSequence");
  });
});

describe("GRPC_REFLECTION=off", () => {
  it("hides the schema: reflection is unimplemented", async () => {
    const hidden = await startServer({ GRPC_REFLECTION: "off" });
    try {
      const result = await run(BUF, [
        "curl",
        "--protocol",
        "grpc",
        "--http2-prior-knowledge",
        "--list-methods",
        hidden.url,
      ]).catch((err: { stderr: string }) => err);
      expect("stderr" in result ? result.stderr : "").toMatch(
        /unimplemented|not implemented|reflection/i,
      );
    } finally {
      await hidden.close();
    }
  });
});
