import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import { createClient, type Transport } from "@connectrpc/connect";
import {
  compressionGzip,
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import Gitpod from "@gitpod/sdk";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { EventService, WatchEventsRequestSchema } from "../../src/gen/gitpod/v1/event_pb.js";
import { bearer, type SeenEvent, seen } from "./clients.js";

export const PROTO_DIR = fileURLToPath(new URL("../../proto", import.meta.url));
export const BUF = fileURLToPath(new URL("../../node_modules/.bin/buf", import.meta.url));

/** An open watch as any client sees it: events in order, and a way to hang up. */
export interface Watch {
  readonly events: AsyncIterator<SeenEvent>;
  close(): void;
}

/** A client able to open a watch with a JSON request body (proto3 JSON of WatchEventsRequest). */
export interface WatchClient {
  readonly name: string;
  open(url: string, token: string, body?: Record<string, unknown>): Promise<Watch>;
}

/** Turns a byte stream of JSON lines into an async iterator of parsed objects. */
async function* jsonLines(body: AsyncIterable<Uint8Array>): AsyncGenerator<SeenEvent> {
  const decoder = new TextDecoder();
  let buffered = "";
  for await (const chunk of body) {
    buffered += decoder.decode(chunk, { stream: true });
    for (let i = buffered.indexOf("\n"); i !== -1; i = buffered.indexOf("\n")) {
      const line = buffered.slice(0, i);
      buffered = buffered.slice(i + 1);
      if (line === "") throw new Error("blank line in a JSONL stream");
      yield JSON.parse(line) as SeenEvent;
    }
  }
  if (buffered !== "") throw new Error(`unterminated JSONL line: ${buffered}`);
}

/** Splits a stream of concatenated (pretty-printed) JSON objects, as `buf curl` prints them. */
async function* concatenatedJson(body: AsyncIterable<Uint8Array>): AsyncGenerator<SeenEvent> {
  const decoder = new TextDecoder();
  let text = "";
  let depth = 0;
  let inString = false;
  let escaped = false;
  let start = -1;
  for await (const chunk of body) {
    const from = text.length;
    text += decoder.decode(chunk, { stream: true });
    for (let i = from; i < text.length; i++) {
      const c = text[i];
      if (inString) {
        if (escaped) escaped = false;
        else if (c === "\\") escaped = true;
        else if (c === '"') inString = false;
      } else if (c === '"') inString = true;
      else if (c === "{") {
        if (depth++ === 0) start = i;
      } else if (c === "}" && --depth === 0) {
        yield JSON.parse(text.slice(start, i + 1)) as SeenEvent;
      }
    }
  }
}

/** Parses Connect streaming envelopes (flags, 4-byte big-endian length, payload). */
async function* connectEnvelopes(body: AsyncIterable<Uint8Array>): AsyncGenerator<SeenEvent> {
  let buf = Buffer.alloc(0);
  for await (const chunk of body) {
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= 5) {
      const flags = buf[0] as number;
      const len = buf.readUInt32BE(1);
      if (buf.length < 5 + len) break;
      const payload = JSON.parse(buf.subarray(5, 5 + len).toString("utf8"));
      buf = buf.subarray(5 + len);
      if (flags & 0x02) {
        if (payload.error) throw new Error(`end of stream with error: ${JSON.stringify(payload)}`);
        return;
      }
      yield payload as SeenEvent;
    }
  }
}

function childWatch(child: ChildProcess, parse: typeof jsonLines): Watch {
  const stderr: Buffer[] = [];
  child.stderr?.on("data", (d: Buffer) => stderr.push(d));
  const events = parse(child.stdout as AsyncIterable<Uint8Array>);
  return {
    events: {
      async next() {
        const r = await events.next();
        if (r.done && child.exitCode !== 0 && child.exitCode !== null) {
          throw new Error(`${child.spawnfile} exited ${child.exitCode}: ${Buffer.concat(stderr)}`);
        }
        return r;
      },
    },
    // Kill the whole process group: `bash -c "printf | curl"` and the `buf` launcher both
    // leave the real client in a child process.
    close: () => {
      if (child.pid !== undefined && child.exitCode === null) process.kill(-child.pid, "SIGKILL");
    },
  };
}

function connectClient(name: string, transport: (url: string) => Transport): WatchClient {
  return {
    name,
    async open(url, token, body = {}) {
      const client = createClient(EventService, transport(url));
      const abort = new AbortController();
      const stream = client.watchEvents(fromJson(WatchEventsRequestSchema, body as JsonValue), {
        headers: bearer(token),
        signal: abort.signal,
      });
      const it = stream[Symbol.asyncIterator]();
      return {
        events: {
          async next() {
            const r = await it.next();
            return r.done ? r : { done: false, value: seen(r.value) };
          },
        },
        close: () => abort.abort(),
      };
    },
  };
}

export const sdkClient: WatchClient = {
  name: "official SDK @gitpod/sdk (JSONL, baseURL .../api)",
  async open(url, token, body = {}) {
    const client = new Gitpod({ bearerToken: token, baseURL: `${url}/api`, maxRetries: 0 });
    const stream = await client.events.watch(body);
    const it = stream[Symbol.asyncIterator]();
    return {
      events: {
        async next() {
          const r = await it.next();
          return r.done ? r : { done: false, value: r.value as SeenEvent };
        },
      },
      close: () => stream.controller.abort(),
    };
  },
};

export const rawJsonlClient: WatchClient = {
  name: "raw JSONL as the Python and Go SDKs send it (application/json + Accept: application/jsonl)",
  async open(url, token, body = {}) {
    const abort = new AbortController();
    const res = await fetch(`${url}/api/gitpod.v1.EventService/WatchEvents`, {
      method: "POST",
      headers: {
        ...bearer(token),
        "content-type": "application/json",
        accept: "application/jsonl",
      },
      body: JSON.stringify(body),
      signal: abort.signal,
    });
    if (res.status !== 200 || res.body === null) {
      throw new Error(`HTTP ${res.status}: ${await res.text()}`);
    }
    if (res.headers.get("content-type") !== "application/jsonl") {
      throw new Error(`unexpected content-type ${res.headers.get("content-type")}`);
    }
    return { events: jsonLines(res.body), close: () => abort.abort() };
  },
};

/** A @grpc/grpc-js client of gitpod.v1.EventService (schema from proto/, enums as names). */
export function grpcJsEventService(url: string): grpc.Client & Record<string, unknown> {
  const def = protoLoader.loadSync("gitpod/v1/event.proto", {
    includeDirs: [PROTO_DIR],
    enums: String,
    defaults: false,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    gitpod: { v1: { EventService: grpc.ServiceClientConstructor } };
  };
  return new pkg.gitpod.v1.EventService(new URL(url).host, grpc.credentials.createInsecure());
}

export const grpcJsClient: WatchClient = {
  name: "@grpc/grpc-js with @grpc/proto-loader",
  async open(url, token, body = {}) {
    const client = grpcJsEventService(url);
    const metadata = new grpc.Metadata();
    metadata.set("authorization", `Bearer ${token}`);
    const call = (client.WatchEvents as (...args: unknown[]) => grpc.ClientReadableStream<never>)(
      body,
      metadata,
    );
    const it = (call as AsyncIterable<Record<string, string>>)[Symbol.asyncIterator]();
    return {
      events: {
        async next() {
          const r = await it.next();
          if (r.done) return r;
          const m = r.value;
          return {
            done: false,
            value: {
              operation: m.operation ?? "",
              resourceType: m.resourceType ?? "",
              resourceId: m.resourceId ?? "",
            },
          };
        },
      },
      close: () => {
        call.cancel();
        client.close();
      },
    };
  },
};

export function bufCurlClient(protocol: "grpc" | "connect" | "grpcweb"): WatchClient {
  return {
    name: `buf curl --protocol ${protocol}`,
    async open(url, token, body = {}) {
      const args = ["curl", "--schema", PROTO_DIR, "--protocol", protocol];
      if (protocol === "grpc") args.push("--http2-prior-knowledge");
      args.push(
        "-H",
        `Authorization: Bearer ${token}`,
        "-d",
        JSON.stringify(body),
        `${url}/gitpod.v1.EventService/WatchEvents`,
      );
      return childWatch(
        spawn(BUF, args, { stdio: ["ignore", "pipe", "pipe"], detached: true }),
        concatenatedJson,
      );
    },
  };
}

export const curlJsonlClient: WatchClient = {
  name: "curl, JSONL (as in the README)",
  async open(url, token, body = {}) {
    const child = spawn(
      "curl",
      [
        "-sSN",
        "-X",
        "POST",
        `${url}/api/gitpod.v1.EventService/WatchEvents`,
        "-H",
        `Authorization: Bearer ${token}`,
        "-H",
        "Content-Type: application/jsonl",
        "-d",
        JSON.stringify(body),
      ],
      { stdio: ["ignore", "pipe", "pipe"], detached: true },
    );
    return childWatch(child, jsonLines);
  },
};

export const curlConnectClient: WatchClient = {
  name: "curl, Connect streaming envelope made with printf",
  async open(url, token, body = {}) {
    const json = JSON.stringify(body);
    const len = Buffer.byteLength(json);
    const hex = [0, 0, 0, 0, len].map((b) => `\\x${b.toString(16).padStart(2, "0")}`).join("");
    // Exactly the shape of the README's command: printf builds the 5-byte envelope.
    const script = `printf '${hex}%s' '${json}' | curl -sSN -X POST ${url}/gitpod.v1.EventService/WatchEvents -H 'Authorization: Bearer ${token}' -H 'Content-Type: application/connect+json' --data-binary @-`;
    const child = spawn("bash", ["-c", script], {
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    return childWatch(child, connectEnvelopes);
  },
};

export const connectClients: WatchClient[] = [
  connectClient("connect-node Connect JSON over HTTP/1.1", (baseUrl) =>
    createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: false }),
  ),
  connectClient("connect-node Connect binary over HTTP/2", (baseUrl) =>
    createConnectTransport({ baseUrl, httpVersion: "2", useBinaryFormat: true }),
  ),
  connectClient("connect-node Connect JSON over HTTP/2 under /api", (baseUrl) =>
    createConnectTransport({ baseUrl: `${baseUrl}/api`, httpVersion: "2" }),
  ),
  connectClient("connect-node gRPC over HTTP/2", (baseUrl) => createGrpcTransport({ baseUrl })),
  connectClient("connect-node gRPC-Web over HTTP/1.1", (baseUrl) =>
    createGrpcWebTransport({ baseUrl, httpVersion: "1.1" }),
  ),
  // Compressed requests are served by the Connect runtime rather than the streaming edge.
  connectClient(
    "connect-node Connect binary, gzip-compressed request (Connect runtime)",
    (baseUrl) =>
      createConnectTransport({
        baseUrl,
        httpVersion: "2",
        useBinaryFormat: true,
        sendCompression: compressionGzip,
        compressMinBytes: 0,
      }),
  ),
  connectClient("connect-node gRPC, gzip-compressed request (Connect runtime)", (baseUrl) =>
    createGrpcTransport({ baseUrl, sendCompression: compressionGzip, compressMinBytes: 0 }),
  ),
  connectClient("connect-node gRPC-Web over HTTP/2 under /api", (baseUrl) =>
    createGrpcWebTransport({ baseUrl: `${baseUrl}/api`, httpVersion: "2", useBinaryFormat: true }),
  ),
];

export const allClients: WatchClient[] = [
  sdkClient,
  rawJsonlClient,
  ...connectClients,
  grpcJsClient,
  bufCurlClient("grpc"),
  bufCurlClient("connect"),
  curlJsonlClient,
  curlConnectClient,
];
