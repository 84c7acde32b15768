import {
  create,
  type DescEnum,
  type DescFile,
  type DescMessage,
  type DescService,
  type MessageInitShape,
  toBinary,
} from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, type ServiceImpl } from "@connectrpc/connect";
import { ServiceError, toConnectError } from "../errors.js";
import * as v1 from "../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../gen/grpc/reflection/v1alpha/reflection_pb.js";

/**
 * The descriptors of the services of the port, as the generated code holds them (protobuf-es
 * embeds each file's FileDescriptorProto), indexed for server reflection: files by name and by
 * the symbols they define, each serialized once.
 */
export class DescriptorIndex {
  private readonly files = new Map<string, DescFile>();
  private readonly symbols = new Map<string, DescFile>();
  private readonly encoded = new Map<DescFile, Uint8Array>();
  /** Fully-qualified names of the services, sorted. */
  readonly services: readonly string[];

  constructor(services: readonly DescService[]) {
    for (const service of services) this.addFile(service.file);
    this.services = services.map((s) => s.typeName).sort();
  }

  /**
   * The file named `name` and its dependencies, transitively, serialized; undefined: unknown.
   * Dependencies in `sent` (files this stream sent before) are left out, as grpc-go does:
   * clients keep what they received, and a stream never sends the schema twice.
   */
  fileByName(name: string, sent: Set<DescFile> = new Set()): Uint8Array[] | undefined {
    const file = this.files.get(name);
    return file === undefined ? undefined : this.withDependencies(file, sent);
  }

  /** The file that defines `symbol` and its dependencies not in `sent`; undefined: unknown. */
  fileContaining(symbol: string, sent: Set<DescFile> = new Set()): Uint8Array[] | undefined {
    const file = this.symbols.get(symbol.replace(/^\./, ""));
    return file === undefined ? undefined : this.withDependencies(file, sent);
  }

  /** Whether `typeName` is a message this index knows. */
  hasMessage(typeName: string): boolean {
    return this.symbols.has(typeName.replace(/^\./, ""));
  }

  /** The file asked for (always) and its dependencies not sent yet; marks them sent. */
  private withDependencies(file: DescFile, sent: Set<DescFile>): Uint8Array[] {
    const out: Uint8Array[] = [];
    const seen = new Set<DescFile>();
    const visit = (f: DescFile) => {
      if (seen.has(f) || (f !== file && sent.has(f))) return;
      seen.add(f);
      sent.add(f);
      let bytes = this.encoded.get(f);
      if (bytes === undefined) {
        bytes = toBinary(FileDescriptorProtoSchema, f.proto);
        this.encoded.set(f, bytes);
      }
      out.push(bytes);
      for (const dep of f.dependencies) visit(dep);
    };
    visit(file);
    return out;
  }

  private addFile(file: DescFile): void {
    if (this.files.has(file.proto.name)) return;
    this.files.set(file.proto.name, file);
    const addMessage = (m: DescMessage) => {
      this.symbols.set(m.typeName, file);
      m.nestedMessages.forEach(addMessage);
      m.nestedEnums.forEach(addEnum);
    };
    const addEnum = (e: DescEnum) => this.symbols.set(e.typeName, file);
    file.messages.forEach(addMessage);
    file.enums.forEach(addEnum);
    for (const ext of file.extensions) this.symbols.set(ext.typeName, file);
    for (const service of file.services) {
      this.symbols.set(service.typeName, file);
      for (const method of service.methods) {
        this.symbols.set(`${service.typeName}.${method.name}`, file);
      }
    }
    for (const dep of file.dependencies) this.addFile(dep);
  }
}

type Request = v1.ServerReflectionRequest | v1alpha.ServerReflectionRequest;
type ResponseInit = MessageInitShape<typeof v1.ServerReflectionResponseSchema>;

/** The answer to one reflection request; errors are answers too (the stream goes on). */
function answer(
  index: DescriptorIndex,
  req: Request,
  sent: Set<DescFile>,
): ResponseInit["messageResponse"] {
  const notFound = (what: string) => ({
    case: "errorResponse" as const,
    value: { errorCode: Code.NotFound, errorMessage: `${what} not found` },
  });
  const files = (bytes: Uint8Array[] | undefined, what: string) =>
    bytes === undefined
      ? notFound(what)
      : { case: "fileDescriptorResponse" as const, value: { fileDescriptorProto: bytes } };
  const r = req.messageRequest;
  switch (r.case) {
    case "listServices":
      return {
        case: "listServicesResponse",
        value: { service: index.services.map((name) => ({ name })) },
      };
    case "fileByFilename":
      return files(index.fileByName(r.value, sent), `file "${r.value}"`);
    case "fileContainingSymbol":
      return files(index.fileContaining(r.value, sent), `symbol "${r.value}"`);
    case "fileContainingExtension":
      // No service of this port uses extensions.
      return notFound(`extension ${r.value.extensionNumber} of "${r.value.containingType}"`);
    case "allExtensionNumbersOfType":
      return index.hasMessage(r.value)
        ? {
            case: "allExtensionNumbersResponse",
            value: { baseTypeName: r.value.replace(/^\./, ""), extensionNumber: [] },
          }
        : notFound(`type "${r.value}"`);
    default:
      return {
        case: "errorResponse",
        value: { errorCode: Code.InvalidArgument, errorMessage: "empty reflection request" },
      };
  }
}

/**
 * grpc.reflection.v1 (and v1alpha, the same messages under an older name) on the Connect
 * runtime: a bidirectional stream of one response per request, with the descriptors of `index`.
 * grpcurl and `buf curl` without a schema use it. It needs no credential, so what one stream
 * costs is bounded: each file is sent once per stream, and a stream makes at most
 * `maxRequestsPerStream` requests (then resource_exhausted); clients ask a handful.
 */
export function createReflectionServices(index: DescriptorIndex, maxRequestsPerStream = 100) {
  const counted = (n: number) => {
    if (n > maxRequestsPerStream) {
      throw toConnectError(
        new ServiceError(
          "resource_exhausted",
          `too many reflection requests on one stream (at most ${maxRequestsPerStream}); open a new stream`,
        ),
      );
    }
  };
  /**
   * One stream's responses (v1's answers): one per request, each file sent once per stream, at
   * most `maxRequestsPerStream` requests.
   */
  async function* respond<R extends Request>(requests: AsyncIterable<R>) {
    const sent = new Set<DescFile>();
    let n = 0;
    for await (const req of requests) {
      counted(++n);
      yield {
        validHost: req.host,
        originalRequest: req,
        messageResponse: answer(index, req, sent),
      };
    }
  }
  const v1Impl: ServiceImpl<typeof v1.ServerReflection> = {
    async *serverReflectionInfo(requests) {
      for await (const r of respond(requests)) yield create(v1.ServerReflectionResponseSchema, r);
    },
  };
  const v1alphaImpl: ServiceImpl<typeof v1alpha.ServerReflection> = {
    async *serverReflectionInfo(requests) {
      for await (const { messageResponse, ...r } of respond(requests)) {
        yield create(v1alpha.ServerReflectionResponseSchema, {
          ...r,
          // The same messages under the older package name.
          messageResponse: messageResponse as MessageInitShape<
            typeof v1alpha.ServerReflectionResponseSchema
          >["messageResponse"],
        });
      }
    },
  };
  return { v1: v1Impl, v1alpha: v1alphaImpl };
}
