import { type ChildProcess, spawn } from "node:child_process";
import * as http from "node:http";
import * as http2 from "node:http2";
import { brotliDecompressSync, gunzipSync } from "node:zlib";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { EventService, type WatchEventsRequestSchema } from "../../src/gen/gitpod/v1/event_pb.js";
import { connectProtocol } from "../../src/http/connect-protocol.js";
import { bearer, rawGrpcRequest } from "./clients.js";
import { grpcJsEventService } from "./watchers.js";

// Probes of WatchEvents streams that record what a test needs to tell a clean end from an error
// (which the Watch helpers of watchers.ts hide behind an iterator): when the response headers
// arrived, the resource ids received, and exactly how the stream ended on the wire.

export const WATCH_PATH = "/gitpod.v1.EventService/WatchEvents";
export const PUBLISH_PATH = "/eventservice.ingest.v1.IngestService/Publish";

/** How a stream ended, as its client saw it. */
export type StreamEnd =
  /** The response ended normally: last chunk, END_STREAM, or an OK status. */
  | { readonly kind: "clean"; readonly rstCode?: number }
  /** HTTP/1.1 (or a child process): cut before the end of the body. */
  | { readonly kind: "aborted"; readonly detail: string; readonly exitCode?: number }
  /** HTTP/2: the stream was reset (RST_STREAM) without END_STREAM. */
  | { readonly kind: "reset"; readonly rstCode: number }
  /** An RPC error status (Connect end-stream, gRPC status, HTTP error body). */
  | { readonly kind: "error"; readonly code: Code; readonly message: string };

/** One line for assertions and their failure messages. */
export function summary(end: StreamEnd | undefined): string {
  if (end === undefined) return "still open";
  switch (end.kind) {
    case "clean":
      return end.rstCode ? `clean end (then RST_STREAM ${end.rstCode})` : "clean end";
    case "aborted":
      return `aborted (${end.detail})`;
    case "reset":
      return `reset (RST_STREAM ${end.rstCode})`;
    case "error":
      return `error ${connectProtocol.codeToString(end.code)}: ${end.message}`;
  }
}

/** An open WatchEvents stream under observation. */
export interface ProbedStream {
  readonly name: string;
  /** HTTP status of the response once its headers arrived (200 for RPC clients). */
  readonly status: number | undefined;
  readonly responseHeaders: Readonly<Record<string, string | string[] | undefined>>;
  /** Resource ids received, in order. */
  readonly ids: readonly string[];
  /** The raw body text of a response that was not a stream (an HTTP error). */
  readonly text: string;
  readonly end: StreamEnd | undefined;
  /** Resolves with the HTTP status once the headers arrive, or undefined if it ended first. */
  opened(): Promise<number | undefined>;
  /** Resolves true once `id` arrived, false if the stream ended first. */
  received(id: string): Promise<boolean>;
  /** Resolves with how the stream ended; never rejects. */
  finished(): Promise<StreamEnd>;
  /** Starts reading a stream opened with `paused`. */
  resume(): void;
  /** Hangs up from the client side. */
  close(): void;
}

/** Records what happens to one stream and wakes whoever waits on it. */
class Probe implements ProbedStream {
  status: number | undefined;
  responseHeaders: Record<string, string | string[] | undefined> = {};
  readonly ids: string[] = [];
  text = "";
  end: StreamEnd | undefined;
  private readonly waiters = new Set<() => void>();
  resume: () => void = () => {};
  close: () => void = () => {};

  constructor(readonly name: string) {}

  gotHeaders(status: number, headers: Record<string, string | string[] | undefined> = {}): void {
    if (this.status !== undefined) return;
    this.status = status;
    this.responseHeaders = headers;
    this.notify();
  }

  got(id: string): void {
    this.ids.push(id);
    this.notify();
  }

  finish(end: StreamEnd): void {
    if (this.end !== undefined) return;
    this.end = end;
    this.notify();
  }

  private notify(): void {
    for (const w of this.waiters) w();
  }

  private until(done: () => boolean): Promise<void> {
    if (done()) return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => {
        if (!done()) return;
        this.waiters.delete(check);
        resolve();
      };
      this.waiters.add(check);
    });
  }

  async opened(): Promise<number | undefined> {
    await this.until(() => this.status !== undefined || this.end !== undefined);
    return this.status;
  }

  async received(id: string): Promise<boolean> {
    await this.until(() => this.ids.includes(id) || this.end !== undefined);
    return this.ids.includes(id);
  }

  async finished(): Promise<StreamEnd> {
    await this.until(() => this.end !== undefined);
    return this.end as StreamEnd;
  }
}

export interface RawOptions {
  /** Request path (default WATCH_PATH); "/api" + WATCH_PATH for the official base URL. */
  readonly path?: string;
  readonly headers?: Record<string, string>;
  readonly body?: string | Buffer;
  /** Read nothing until `resume()`: the server's writes back up (a slow reader). */
  readonly paused?: boolean;
}

type Headers = Record<string, string | string[] | undefined>;

/** Resource ids from JSONL text: one proto3 JSON object per line, maybe padded with spaces. */
function jsonlReader(probe: Probe): (text: string) => void {
  let buffered = "";
  return (text) => {
    buffered += text;
    for (let i = buffered.indexOf("\n"); i !== -1; i = buffered.indexOf("\n")) {
      const line = buffered.slice(0, i).trim();
      buffered = buffered.slice(i + 1);
      if (line !== "") probe.got((JSON.parse(line) as { resourceId: string }).resourceId);
    }
  };
}

/** One raw POST as the probes below send it. */
interface RawRequest {
  /** What sent it, for messages. */
  readonly name: string;
  readonly url: string;
  readonly token: string;
  readonly contentType: string;
  readonly options: RawOptions;
  /** Whether a 200's body is read as JSONL (resource ids); otherwise it is kept as text. */
  readonly jsonl: boolean;
}

/** A JSONL watch (`Content-Type: application/jsonl`, body `{}`) sent by `send`. */
function jsonlOver(send: (request: RawRequest) => ProbedStream, name: string) {
  return (url: string, token: string, options: RawOptions = {}): ProbedStream =>
    send({ name, url, token, contentType: "application/jsonl", options, jsonl: true });
}

/** A POST with `contentType`, sent by `send`, whose response body is only recorded as text. */
function plainOver(send: (request: RawRequest) => ProbedStream, version: string) {
  return (url: string, token: string, contentType: string, options: RawOptions = {}) =>
    send({
      name: `${contentType} over ${version}`,
      url,
      token,
      contentType,
      options,
      jsonl: false,
    });
}

/**
 * JSONL over HTTP/1.1 with node:http, as the official SDKs send it: POST, `Content-Type:
 * application/jsonl`, body `{}`, on a connection of its own.
 */
export const jsonlOverHttp1 = jsonlOver(overHttp1, "JSONL over HTTP/1.1 (node:http)");

/**
 * A POST with `contentType` over HTTP/1.1 whose response body is only recorded as text (for
 * refusals): status, headers, text, and whether it ended cleanly.
 */
export const plainOverHttp1 = plainOver(overHttp1, "HTTP/1.1");

function overHttp1({ name, url, token, contentType, options, jsonl }: RawRequest): ProbedStream {
  const probe = new Probe(name);
  const req = http.request(`${url}${options.path ?? WATCH_PATH}`, {
    method: "POST",
    agent: false,
    headers: { ...bearer(token), "content-type": contentType, ...options.headers },
  });
  req.on("error", (err: NodeJS.ErrnoException) =>
    probe.finish({ kind: "aborted", detail: err.code ?? err.message }),
  );
  req.on("response", (res) => {
    probe.gotHeaders(res.statusCode ?? 0, res.headers);
    const lines = jsonl && res.statusCode === 200;
    const read = jsonlReader(probe);
    res.setEncoding(lines ? "utf8" : "latin1");
    const onData = (text: string) => {
      if (lines) read(text);
      else probe.text += text;
    };
    if (options.paused) probe.resume = () => res.on("data", onData);
    else res.on("data", onData);
    res.on("aborted", () => probe.finish({ kind: "aborted", detail: "'aborted' event" }));
    res.on("error", (err: NodeJS.ErrnoException) =>
      probe.finish({ kind: "aborted", detail: err.code ?? err.message }),
    );
    res.on("end", () => probe.finish({ kind: "clean" }));
    res.on("close", () => probe.finish({ kind: "aborted", detail: "closed before the end" }));
  });
  probe.close = () => req.destroy();
  req.end(options.body ?? "{}");
  return probe;
}

/** Watches one raw HTTP/2 client stream: 'end' (END_STREAM) versus a reset. */
function watchH2Stream(
  probe: Probe,
  session: http2.ClientHttp2Session,
  stream: http2.ClientHttp2Stream,
  onData: (chunk: Buffer) => void,
  paused: boolean,
): void {
  stream.on("error", () => {});
  let sawEnd = false;
  if (paused) probe.resume = () => stream.on("data", onData);
  else stream.on("data", onData);
  stream.on("end", () => {
    sawEnd = true;
  });
  stream.on("close", () => {
    const rstCode = stream.rstCode ?? 0;
    probe.finish(sawEnd ? { kind: "clean", rstCode } : { kind: "reset", rstCode });
    session.close();
  });
  probe.close = () => {
    if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
    session.destroy();
  };
}

/** JSONL over HTTP/2 cleartext (prior knowledge) with node:http2, on a session of its own. */
export const jsonlOverHttp2 = jsonlOver(overHttp2, "JSONL over HTTP/2 (node:http2)");

/** As plainOverHttp1, over HTTP/2 cleartext (prior knowledge). */
export const plainOverHttp2 = plainOver(overHttp2, "HTTP/2");

function overHttp2({ name, url, token, contentType, options, jsonl }: RawRequest): ProbedStream {
  const probe = new Probe(name);
  const session = http2.connect(url);
  session.on("error", () => {});
  const stream = session.request({
    ":method": "POST",
    ":path": options.path ?? WATCH_PATH,
    "content-type": contentType,
    ...bearer(token),
    ...options.headers,
  });
  const read = jsonlReader(probe);
  stream.on("response", (headers) => probe.gotHeaders(Number(headers[":status"]), headers));
  watchH2Stream(
    probe,
    session,
    stream,
    (chunk) => {
      if (jsonl && probe.status === 200) read(chunk.toString("utf8"));
      else probe.text += chunk.toString("latin1");
    },
    options.paused ?? false,
  );
  stream.end(options.body ?? "{}");
  return probe;
}

/** A 5-byte-prefixed message (Connect streaming, gRPC, gRPC-Web). */
export function envelope(flags: number, payload: Uint8Array): Buffer {
  const out = Buffer.alloc(5 + payload.length);
  out[0] = flags;
  out.writeUInt32BE(payload.length, 1);
  out.set(payload, 5);
  return out;
}

function decompress(encoding: string | string[] | undefined, bytes: Buffer): Buffer {
  if (encoding === "gzip") return gunzipSync(bytes);
  if (encoding === "br") return brotliDecompressSync(bytes);
  throw new Error(`compressed message with encoding ${String(encoding)}`);
}

/** Splits a byte stream into envelopes; `onMessage` gets each (decompressed) with its flags. */
function envelopeReader(
  encoding: () => string | string[] | undefined,
  onMessage: (flags: number, payload: Buffer) => void,
): (chunk: Buffer) => void {
  let buf: Buffer = Buffer.alloc(0);
  return (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= 5) {
      const flags = buf[0] as number;
      const len = buf.readUInt32BE(1);
      if (buf.length < 5 + len) break;
      let payload: Buffer = buf.subarray(5, 5 + len);
      buf = buf.subarray(5 + len);
      if (flags & 0x01) payload = decompress(encoding(), payload);
      onMessage(flags, payload);
    }
  };
}

/**
 * The Connect streaming protocol in JSON over HTTP/1.1 with node:http: `body` is the whole
 * request (envelopes included; default one empty JSON message). Ends as the end-stream message
 * says; an HTTP error status ends with the error of its JSON body.
 */
export function connectOverHttp1(
  url: string,
  token: string,
  options: RawOptions = {},
): ProbedStream {
  const probe = new Probe("Connect JSON over HTTP/1.1 (node:http)");
  const req = http.request(`${url}${options.path ?? WATCH_PATH}`, {
    method: "POST",
    agent: false,
    headers: { ...bearer(token), "content-type": "application/connect+json", ...options.headers },
  });
  req.on("error", (err: NodeJS.ErrnoException) =>
    probe.finish({ kind: "aborted", detail: err.code ?? err.message }),
  );
  req.on("response", (res) => {
    probe.gotHeaders(res.statusCode ?? 0, res.headers);
    const read = envelopeReader(
      () => res.headers["connect-content-encoding"],
      (flags, payload) => {
        const json = JSON.parse(payload.toString("utf8")) as {
          resourceId?: string;
          error?: { code: string; message?: string };
        };
        if ((flags & 0x02) === 0) probe.got(json.resourceId ?? "");
        else if (json.error === undefined) probe.finish({ kind: "clean" });
        else {
          probe.finish({
            kind: "error",
            code: connectProtocol.codeFromString(json.error.code) ?? Code.Unknown,
            message: json.error.message ?? "",
          });
        }
      },
    );
    res.on("data", (chunk: Buffer) => {
      if (res.statusCode === 200) read(chunk);
      else probe.text += chunk.toString("utf8");
    });
    res.on("error", (err: NodeJS.ErrnoException) =>
      probe.finish({ kind: "aborted", detail: err.code ?? err.message }),
    );
    res.on("end", () => {
      if (res.statusCode !== 200) {
        const err = parseErrorBody(probe.text);
        probe.finish({ kind: "error", code: err.code, message: err.message });
      }
      probe.finish({ kind: "aborted", detail: "body ended without an end-stream message" });
    });
    res.on("close", () => probe.finish({ kind: "aborted", detail: "closed before the end" }));
  });
  probe.close = () => req.destroy();
  req.end(options.body ?? envelope(0, Buffer.from("{}")));
  return probe;
}

function parseErrorBody(text: string): { code: Code; message: string } {
  try {
    const json = JSON.parse(text) as { code?: string; message?: string };
    return {
      code: connectProtocol.codeFromString(json.code ?? "") ?? Code.Unknown,
      message: json.message ?? "",
    };
  } catch {
    return { code: Code.Unknown, message: text };
  }
}

function grpcEnd(headers: Headers): StreamEnd | undefined {
  const status = headers["grpc-status"];
  if (status === undefined) return undefined;
  if (status === "0") return { kind: "clean" };
  const message = headers["grpc-message"];
  return {
    kind: "error",
    code: Number(status) as Code,
    message: typeof message === "string" ? decodeURIComponent(message) : "",
  };
}

/**
 * gRPC (binary) over HTTP/2 on a raw node:http2 stream of a session of its own. `body`: the
 * whole request (default one empty WatchEventsRequest). A received event's resource id is the
 * last 36 bytes of its WatchEventsResponse.
 */
export function grpcOverHttp2(url: string, token: string, options: RawOptions = {}): ProbedStream {
  const probe = new Probe("gRPC over HTTP/2 (node:http2)");
  const session = http2.connect(url);
  session.on("error", () => {});
  const stream = rawGrpcRequest(session, options.path ?? WATCH_PATH, token, options.headers);
  let headers: Headers = {};
  const read = envelopeReader(
    () => headers["grpc-encoding"],
    (_, payload) => probe.got(payload.subarray(payload.length - 36).toString("latin1")),
  );
  stream.on("response", (h) => {
    headers = h;
    probe.gotHeaders(Number(h[":status"]), h);
    // Trailers-Only: the status travels in the only header block.
    const end = grpcEnd(h);
    if (end !== undefined) probe.finish(end);
  });
  stream.on("trailers", (t) => {
    const end = grpcEnd(t);
    probe.finish(end ?? { kind: "error", code: Code.Internal, message: "trailers without status" });
  });
  watchH2Stream(probe, session, stream, read, options.paused ?? false);
  stream.end(options.body ?? envelope(0, new Uint8Array(0)));
  return probe;
}

/** A WatchEvents stream through a connect-es client on `transport` (Connect, gRPC, gRPC-Web). */
export function rpcStream(
  name: string,
  transport: Transport,
  token: string,
  request: MessageInitShape<typeof WatchEventsRequestSchema> = {},
  options: { timeoutMs?: number } = {},
): ProbedStream {
  const probe = new Probe(name);
  const abort = new AbortController();
  const client = createClient(EventService, transport);
  void (async () => {
    try {
      for await (const res of client.watchEvents(request, {
        headers: bearer(token),
        signal: abort.signal,
        ...options,
        onHeader: (h) => probe.gotHeaders(200, Object.fromEntries(h)),
      })) {
        probe.got(res.resourceId);
      }
      probe.finish({ kind: "clean" });
    } catch (e) {
      const err = ConnectError.from(e);
      probe.finish({ kind: "error", code: err.code, message: err.rawMessage });
    }
  })();
  probe.close = () => abort.abort();
  return probe;
}

type WatchCall = grpc.ClientReadableStream<{ resourceId?: string }>;

/** A WatchEvents stream through @grpc/grpc-js (gRPC over HTTP/2), metadata as its headers. */
export function grpcJsStream(url: string, token: string): ProbedStream {
  const probe = new Probe("gRPC over HTTP/2 (@grpc/grpc-js)");
  const client = grpcJsEventService(url);
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${token}`);
  const call = (client.WatchEvents as (...args: unknown[]) => WatchCall)({}, metadata);
  call.on("metadata", (m: grpc.Metadata) => probe.gotHeaders(200, m.toJSON() as Headers));
  call.on("data", (m: { resourceId?: string }) => probe.got(m.resourceId ?? ""));
  // The status says how it ended; 'error' repeats it (and would throw without a listener).
  call.on("error", () => {});
  call.on("status", (s: grpc.StatusObject) => {
    probe.finish(
      s.code === grpc.status.OK
        ? { kind: "clean" }
        : { kind: "error", code: s.code as number as Code, message: s.details },
    );
    client.close();
  });
  probe.close = () => {
    call.cancel();
    client.close();
  };
  return probe;
}

/**
 * JSONL with the curl command line (`-sN`, response headers dumped into stdout), over HTTP/1.1
 * or HTTP/2 with prior knowledge. A non-zero exit ends it as aborted, with the exit code.
 */
export function curlJsonl(url: string, token: string, version: "1.1" | "2"): ProbedStream {
  const probe = new Probe(`curl JSONL over HTTP/${version}`);
  const child: ChildProcess = spawn(
    "curl",
    [
      "-sN",
      "-D",
      "-",
      ...(version === "2" ? ["--http2-prior-knowledge"] : ["--http1.1"]),
      "-X",
      "POST",
      `${url}/api${WATCH_PATH}`,
      "-H",
      `Authorization: Bearer ${token}`,
      "-H",
      "Content-Type: application/jsonl",
      "-d",
      "{}",
    ],
    { stdio: ["ignore", "pipe", "ignore"], detached: true },
  );
  let out = "";
  let bodyAt = -1;
  const read = jsonlReader(probe);
  child.stdout?.setEncoding("utf8");
  child.stdout?.on("data", (text: string) => {
    if (bodyAt !== -1) return read(text);
    out += text;
    bodyAt = out.indexOf("\r\n\r\n");
    if (bodyAt === -1) return;
    probe.gotHeaders(Number(/^HTTP\/[\d.]+ (\d+)/.exec(out)?.[1] ?? 0));
    read(out.slice(bodyAt + 4));
  });
  child.on("exit", (code) => {
    const exitCode = code ?? -1;
    probe.finish(
      exitCode === 0
        ? { kind: "clean" }
        : { kind: "aborted", detail: `curl exited ${exitCode}`, exitCode },
    );
  });
  probe.close = () => {
    if (child.pid !== undefined && child.exitCode === null) process.kill(-child.pid, "SIGKILL");
  };
  return probe;
}
