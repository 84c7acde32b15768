import * as http from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import type { SeenEvent } from "./clients.js";
import { bearer } from "./clients.js";

// Readers that read a JSONL body exactly as the official Python and Go SDKs do, so that a test
// can tell what their callers would see at the end of a stream: an error raised, or a loop
// that simply ends ("clean"). A silent end of a stream the server ended with an error is the
// failure CONTRACT §10 forbids.

/** How a stream ended for the caller of an SDK. */
export type SdkEnd =
  | {
      readonly kind: "clean";
      readonly detail: string;
      /** The transport error the SDK dropped, when that is what ended its loop (Go). */
      readonly dropped?: string;
    }
  | { readonly kind: "error"; readonly detail: string };

/** A JSONL body reader with the end-of-stream rules of one SDK. */
export interface SdkReader {
  readonly events: SeenEvent[];
  /** Body bytes received. */
  readonly received: number;
  /** Bytes after the last `\n` (an unterminated rest). */
  readonly unterminated: number;
  feed(chunk: Buffer): void;
  /**
   * The body ended: `transportError` when it was cut (no last chunk, a reset), undefined when it
   * ended normally. Returns what the SDK's caller sees.
   */
  end(transportError: Error | undefined): SdkEnd;
}

/** Parses one token as the SDKs do (both accept whitespace around a value, nothing else). */
function parseToken(token: string): SeenEvent {
  return JSON.parse(token) as SeenEvent;
}

/**
 * What both readers share: the events, the stop, and waiting for events. A subclass feeds
 * tokens through `parsed` and says how the loop stopped through `stop`.
 */
abstract class LoopReader {
  readonly events: SeenEvent[] = [];
  received = 0;
  /** Set when the SDK's loop has stopped (a token failed, the body ended, the reader gave up). */
  protected stopped: SdkEnd | undefined;
  private readonly waiters = new Set<() => void>();

  /** Resolves once `n` events have arrived (or the loop stopped). */
  async until(n: number): Promise<boolean> {
    while (this.events.length < n && this.stopped === undefined) {
      await new Promise<void>((resolve) => this.waiters.add(resolve));
    }
    return this.events.length >= n;
  }

  get ended(): SdkEnd | undefined {
    return this.stopped;
  }

  /** One token parsed as the SDK does (`how`: its parser's name); false when it failed. */
  protected parsed(token: string, how: string): boolean {
    try {
      this.events.push(parseToken(token));
      this.notify();
      return true;
    } catch (err) {
      this.stop({ kind: "error", detail: `${how}: ${(err as Error).message}` });
      return false;
    }
  }

  protected stop(end: SdkEnd): void {
    this.stopped ??= end;
    this.notify();
  }

  private notify(): void {
    for (const w of this.waiters) w();
    this.waiters.clear();
  }
}

/**
 * The Go SDK (`packages/jsonl`): Go's `bufio.Scanner` with `ScanLines` over the body, every
 * token `json.Unmarshal`ed; `Next()` returns false at the first failed token (then `Err()` is
 * that error) or when `Scan()` does. `Scan()` returns false:
 * - at the end of the body, and after ANY read error (a cut connection): the unterminated rest
 *   of the buffer, if not empty, is handed over first as one last token. The read error itself
 *   is dropped by the SDK (it never looks at the scanner's `Err()`): `Err() == nil`;
 * - when a line reaches the scanner's 64 KiB buffer without its `\n` (`ErrTooLong`), also
 *   dropped: the caller sees a plain end.
 */
export class GoStyleReader extends LoopReader implements SdkReader {
  /** bufio.MaxScanTokenSize: the buffer may not grow past it. */
  static readonly MAX_TOKEN_BYTES = 64 * 1024;
  private pending: Buffer = Buffer.alloc(0);

  get unterminated(): number {
    return this.pending.length;
  }

  feed(chunk: Buffer): void {
    if (this.stopped !== undefined) return;
    this.received += chunk.length;
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    for (let nl = this.pending.indexOf(0x0a); nl !== -1; nl = this.pending.indexOf(0x0a)) {
      // A line longer than the buffer: the scanner fails before it ever sees the `\n`.
      if (nl >= GoStyleReader.MAX_TOKEN_BYTES) break;
      const token = this.pending.subarray(0, nl).toString("utf8").replace(/\r$/, "");
      this.pending = this.pending.subarray(nl + 1);
      if (!this.token(token)) return;
    }
    if (this.pending.length >= GoStyleReader.MAX_TOKEN_BYTES) {
      this.stop({
        kind: "clean",
        detail: `bufio.Scanner: token too long (${this.pending.length} bytes without a newline), dropped by the SDK`,
      });
    }
  }

  end(transportError: Error | undefined): SdkEnd {
    if (this.stopped !== undefined) return this.stopped;
    // Any end of the reader, EOF or error: the rest of the buffer is the last token.
    if (this.pending.length > 0) {
      const rest = this.pending.toString("utf8");
      this.pending = Buffer.alloc(0);
      if (!this.token(rest)) return this.stopped as unknown as SdkEnd;
    }
    this.stop(
      transportError === undefined
        ? { kind: "clean", detail: "end of body" }
        : {
            kind: "clean",
            detail: `read error dropped by the SDK (${transportError.message})`,
            dropped: transportError.message,
          },
    );
    return this.stopped as unknown as SdkEnd;
  }

  /** json.Unmarshal of one token; false when it failed (the loop stops with that error). */
  private token(token: string): boolean {
    return this.parsed(token, "json.Unmarshal");
  }
}

/**
 * The Python SDK (0.7.0): httpx's `iter_bytes(chunk_size=64)` hands on whole 64-byte chunks and
 * holds the rest until more arrives or the body ends; a cut body raises (httpx's
 * RemoteProtocolError). The JSONL decoder splits each chunk with `splitlines(keepends=True)`,
 * joins the pieces until one ends a line, `json.loads` it; at the end of the body, the
 * unterminated rest, if any, is `json.loads`ed too.
 */
export class PythonStyleReader extends LoopReader implements SdkReader {
  /** Bytes httpx holds back (less than a 64-byte chunk). */
  private held: Buffer = Buffer.alloc(0);
  /** The decoder's `buf`: a line not yet ended. */
  private line = "";

  get unterminated(): number {
    return this.held.length + Buffer.byteLength(this.line);
  }

  /** Bytes httpx holds back: received, but not yet a whole 64-byte chunk. */
  get heldBytes(): number {
    return this.held.length;
  }

  feed(chunk: Buffer): void {
    if (this.stopped !== undefined) return;
    this.received += chunk.length;
    this.held = Buffer.concat([this.held, chunk]);
    const whole = this.held.length - (this.held.length % 64);
    if (whole === 0) return;
    this.decode(this.held.subarray(0, whole));
    this.held = Buffer.from(this.held.subarray(whole));
  }

  end(transportError: Error | undefined): SdkEnd {
    if (this.stopped !== undefined) return this.stopped;
    if (transportError !== undefined) {
      this.stop({ kind: "error", detail: `httpx raises: ${transportError.message}` });
      return this.stopped as unknown as SdkEnd;
    }
    if (this.held.length > 0) this.decode(this.held);
    this.held = Buffer.alloc(0);
    if (this.stopped !== undefined) return this.stopped;
    if (this.line !== "" && !this.loads(this.line)) return this.stopped as unknown as SdkEnd;
    this.stop({ kind: "clean", detail: "end of body" });
    return this.stopped as unknown as SdkEnd;
  }

  private decode(bytes: Buffer): void {
    // bytes.splitlines(keepends=True): pieces ending in \n, \r or \r\n.
    const pieces = bytes.toString("utf8").match(/[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$/g) ?? [];
    for (const piece of pieces) {
      this.line += piece;
      if (/[\r\n]$/.test(this.line)) {
        const line = this.line;
        this.line = "";
        if (!this.loads(line)) return;
      }
    }
  }

  private loads(text: string): boolean {
    return this.parsed(text, "json.loads");
  }
}

/** A JSONL watch over HTTP/1.1 (node:http, a connection of its own), read by `reader`. */
export interface SdkStyleWatch<R extends SdkReader> {
  readonly reader: R;
  /** HTTP status, once the headers arrived. */
  readonly status: Promise<number>;
  /** What the SDK's caller sees at the end; never rejects. */
  readonly ended: Promise<SdkEnd>;
  /**
   * When the body ended or was cut (performance.now()), as the connection saw it: a slow caller
   * (`delayMs`) sees the end only later, once it has read what came before.
   */
  readonly endedOnWireAt: Promise<number>;
  close(): void;
}

/**
 * Opens a JSONL watch the way the Python and Go SDKs send it (`Content-Type: application/json`,
 * `Accept: application/jsonl`, POST under `/api`), read by `reader`.
 */
export function sdkStyleWatch<R extends SdkReader>(
  url: string,
  token: string,
  reader: R,
  body: object = {},
  options: { readonly delayMs?: number } = {},
): SdkStyleWatch<R> {
  // A slow caller: each chunk is handed on `delayMs` after the one before, all of them, in
  // order, and the end only after the last (a socket reader sees a cut only after the data).
  const delayMs = options.delayMs ?? 0;
  let handed: Promise<void> = Promise.resolve();
  const feed =
    delayMs > 0
      ? (chunk: Buffer) => {
          handed = handed.then(async () => {
            reader.feed(chunk);
            await sleep(delayMs);
          });
        }
      : (chunk: Buffer) => reader.feed(chunk);
  const req = http.request(`${url}/api/gitpod.v1.EventService/WatchEvents`, {
    method: "POST",
    agent: false,
    headers: { ...bearer(token), "content-type": "application/json", accept: "application/jsonl" },
  });
  let gotStatus: (status: number) => void = () => {};
  const status = new Promise<number>((resolve) => {
    gotStatus = resolve;
  });
  let onWire: (at: number) => void = () => {};
  const endedOnWireAt = new Promise<number>((resolve) => {
    onWire = resolve;
  });
  const ended = new Promise<SdkEnd>((resolve) => {
    let settled = false;
    const finish = (err: Error | undefined) => {
      if (settled) return;
      settled = true;
      onWire(performance.now());
      void handed.then(() => resolve(reader.end(err)));
    };
    req.on("error", (err) => {
      gotStatus(0);
      finish(err);
    });
    req.on("response", (res) => {
      gotStatus(res.statusCode ?? 0);
      if (res.statusCode !== 200) {
        res.resume();
        res.on("end", () => finish(new Error(`HTTP ${res.statusCode}`)));
        return;
      }
      res.on("data", feed);
      res.on("end", () => finish(undefined));
      res.on("aborted", () => finish(new Error("connection cut before the end of the body")));
      res.on("error", (err) => finish(err));
      res.on("close", () => finish(new Error("closed before the end of the body")));
    });
  });
  req.end(JSON.stringify(body));
  return { reader, status, ended, endedOnWireAt, close: () => req.destroy() };
}
