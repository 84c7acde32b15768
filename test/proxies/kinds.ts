import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import Gitpod from "@gitpod/sdk";
import { WatchEventsRequestSchema } from "../../src/gen/gitpod/v1/event_pb.js";
import {
  GoStyleReader,
  PythonStyleReader,
  type SdkEnd,
  type SdkReader,
  sdkStyleWatch,
} from "../helpers/sdk-readers.js";
import { rpcStream } from "../helpers/streams.js";
import type { ProxyProcess } from "./harness.js";

// Every client kind the proxy tests run: the official TypeScript SDK, readers that read JSONL
// exactly as the Python and Go SDKs do, and connect-node's Connect, gRPC-Web and gRPC. Each
// watch records when its response headers arrived, the resource ids it received, and how its
// caller saw it end: "clean" (the loop just ended) or "error".

export interface KindWatch {
  readonly kind: Kind;
  /** Milliseconds from the request to the response headers; undefined if it ended first. */
  headersAfterMs(): Promise<number | undefined>;
  readonly ids: readonly string[];
  /** Set once it ended. */
  readonly end: SdkEnd | undefined;
  /** Resolves with how it ended; never rejects. */
  readonly ended: Promise<SdkEnd>;
  /** Bytes of JSONL after the last newline, for the SDK-style readers (else 0). */
  unterminated(): number;
  close(): void;
}

export interface Kind {
  readonly name: string;
  /** Speaks JSONL (the official SDKs' path). */
  readonly jsonl: boolean;
  /** Needs HTTP/2 (gRPC): only where the proxy offers h2c. */
  readonly h2: boolean;
  open(proxy: ProxyProcess, token: string, body?: Record<string, unknown>): KindWatch;
}

/** A deferred value with its settle function. */
function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve: (v: T) => void = () => {};
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

function watchOf(
  kind: Kind,
  headers: Promise<number | undefined>,
  ids: string[],
  ended: Promise<SdkEnd>,
  close: () => void,
  unterminated: () => number = () => 0,
): KindWatch {
  const w = {
    kind,
    ids,
    end: undefined as SdkEnd | undefined,
    ended,
    headersAfterMs: () => headers,
    unterminated,
    close,
  };
  void ended.then((e) => {
    w.end = e;
  });
  return w;
}

const typescriptSdk: Kind = {
  name: "TypeScript SDK (@gitpod/sdk)",
  jsonl: true,
  h2: false,
  open(proxy, token, body = {}) {
    const started = performance.now();
    const headers = deferred<number | undefined>();
    const ids: string[] = [];
    const abort = new AbortController();
    const client = new Gitpod({ bearerToken: token, baseURL: `${proxy.url}/api`, maxRetries: 0 });
    const ended = (async (): Promise<SdkEnd> => {
      try {
        // The promise settles with the response head, before any event.
        const stream = await client.events.watch(body, { signal: abort.signal });
        headers.resolve(performance.now() - started);
        for await (const e of stream) ids.push((e as { resourceId: string }).resourceId);
        return { kind: "clean", detail: "the loop ended" };
      } catch (err) {
        headers.resolve(undefined);
        return { kind: "error", detail: String(err) };
      }
    })();
    return watchOf(this, headers.promise, ids, ended, () => abort.abort());
  },
};

function sdkStyle(name: string, make: () => SdkReader): Kind {
  return {
    name,
    jsonl: true,
    h2: false,
    open(proxy, token, body = {}) {
      const started = performance.now();
      const w = sdkStyleWatch(proxy.url, token, make(), body);
      const headers = w.status.then((s) => (s === 200 ? performance.now() - started : undefined));
      const ids: string[] = [];
      const reader = w.reader;
      // The readers keep parsed events; expose their ids as they come.
      const feed = reader.feed.bind(reader);
      reader.feed = (chunk: Buffer) => {
        const before = reader.events.length;
        feed(chunk);
        for (const e of reader.events.slice(before)) ids.push(e.resourceId);
      };
      return watchOf(this, headers, ids, w.ended, w.close, () => reader.unterminated);
    },
  };
}

function connectKind(
  name: string,
  h2: boolean,
  transport: (proxy: ProxyProcess) => Parameters<typeof rpcStream>[1],
): Kind {
  return {
    name,
    jsonl: false,
    h2,
    open(proxy, token, body = {}) {
      const started = performance.now();
      // The proto3 JSON of the request, as the JSONL kinds send it (a oneof needs the schema).
      const request = fromJson(WatchEventsRequestSchema, body as JsonValue);
      const probe = rpcStream(name, transport(proxy), token, request);
      const headers = probe.opened().then(() => performance.now() - started);
      const ended = probe
        .finished()
        .then(
          (end): SdkEnd =>
            end.kind === "clean"
              ? { kind: "clean", detail: "the loop ended" }
              : { kind: "error", detail: `${end.kind}: ${JSON.stringify(end)}` },
        );
      return watchOf(this, headers, probe.ids as string[], ended, () => probe.close());
    },
  };
}

export const KINDS: readonly Kind[] = [
  typescriptSdk,
  sdkStyle("Python-SDK-style reader", () => new PythonStyleReader()),
  sdkStyle("Go-SDK-style reader", () => new GoStyleReader()),
  connectKind("Connect JSON over HTTP/1.1 (connect-node)", false, (p) =>
    createConnectTransport({ baseUrl: p.url, httpVersion: "1.1" }),
  ),
  connectKind("gRPC-Web over HTTP/1.1 (connect-node)", false, (p) =>
    createGrpcWebTransport({ baseUrl: p.url, httpVersion: "1.1" }),
  ),
  connectKind("gRPC over h2c (connect-node)", true, (p) =>
    createGrpcTransport({ baseUrl: p.h2cUrl as string }),
  ),
];

/** The kinds `proxy` can carry (gRPC needs its h2c port). */
export function kindsFor(proxy: ProxyProcess): Kind[] {
  return KINDS.filter((k) => !k.h2 || proxy.h2cUrl !== undefined);
}
