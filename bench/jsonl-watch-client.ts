import * as net from "node:net";
import { TIME_HEX_DIGITS } from "./fixtures.js";
import type { CountedStream, StreamState, Tally } from "./h2-watch-client.js";

/** Where every connection's socket reads land (see JsonlConnection); nothing keeps a view of it. */
const READ_BUFFER = Buffer.allocUnsafe(256 * 1024);

/**
 * A JSONL watcher as the official SDKs watch: one HTTP/1.1 connection per stream, `POST` with
 * `Content-Type: application/jsonl` and the body `{}`, the answer a chunked `application/jsonl`
 * body of one JSON object per line. Written for the benchmark so that the load generator can
 * hold 10,000 of them and is never the bottleneck: no `http` client objects, the request is a
 * prepared Buffer written to a raw `net` socket, and events are counted as the `\n` bytes inside
 * the chunks' data (`Buffer.indexOf`, native), without parsing a line. Keep-alives (64 spaces,
 * CONTRACT §10) and the padding before each `\n` contain no `\n`, so they are not counted.
 *
 * The chunked transfer coding (RFC 9112 §7.1) is walked byte-exactly: chunk-size lines (hex
 * digits, optional extensions, CRLF) and the CRLF after each chunk's data are skipped, and only
 * data bytes are searched, so a chunk size such as `a\r\n` never counts as a line. The last
 * chunk (size 0) is a clean end; a connection that closes before it was cut (CONTRACT §4: how a
 * JSONL stream ends with an error).
 */

/** The request bytes of one JSONL watch (organization scope). */
export function jsonlWatchRequest(authority: string, path: string, token: string): Buffer {
  const body = "{}";
  return Buffer.from(
    `POST ${path} HTTP/1.1\r\nhost: ${authority}\r\nauthorization: Bearer ${token}\r\n` +
      `content-type: application/jsonl\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
    "latin1",
  );
}

// Where the parser is in the response.
const HEAD = 0;
const SIZE = 1;
const EXTENSION = 2;
const SIZE_LF = 3;
const DATA = 4;
const DATA_CR = 5;
const DATA_LF = 6;
/** The last chunk was read, or the stream ended otherwise: nothing more is counted. */
const DONE = 7;

/** Largest response head accepted, in bytes. */
const MAX_HEAD = 8192;
/** Bytes of a stream's data kept for the latency mode (a line's time may span two chunks). */
const TAIL = 128;

export interface JsonlConnectOptions {
  readonly host: string;
  readonly port: number;
  /** Source address (127.0.0.x spreads 10,000 connections over several ephemeral-port ranges). */
  readonly localAddress?: string;
  /** The request bytes (jsonlWatchRequest). */
  readonly request: Buffer;
  readonly tally: Tally;
  /** Time to connect and receive the response head, ms. */
  readonly timeoutMs?: number;
}

/** One JSONL watch stream on its own HTTP/1.1 connection. */
export class JsonlConnection implements CountedStream {
  state: StreamState = "opening";
  received = 0;
  /** Why it ended: "ended by server (last chunk)", "http <status>", "socket closed", "error: …". */
  endReason = "";
  /** HTTP status of the response, 0 until its head arrived. */
  status = 0;
  /** Resolves once the response head arrived or the stream ended (never rejects). */
  readonly ready: Promise<void>;
  private readonly socket: net.Socket;
  private readonly tally: Tally;
  private parse = HEAD;
  private head = "";
  private chunked = true;
  private size = 0;
  /** Hex digits of the chunk-size line read so far. */
  private digits = 0;
  private left = 0;
  private tail: Buffer | undefined;
  private tailLen = 0;
  private settle: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(options: JsonlConnectOptions) {
    this.tally = options.tally;
    options.tally.streams.push(this);
    this.ready = new Promise<void>((resolve) => {
      this.settle = resolve;
    });
    this.timer = setTimeout(() => this.fail("no response head"), options.timeoutMs ?? 30_000);
    this.socket = net.connect({
      host: options.host,
      port: options.port,
      noDelay: true,
      ...(options.localAddress !== undefined && { localAddress: options.localAddress }),
      // Reads land in one buffer shared by every connection, each chunk parsed before the next
      // read (as the HTTP/2 client does): no Buffer per chunk, no GC pressure from them.
      onread: {
        buffer: READ_BUFFER,
        callback: (n: number, buf: Uint8Array) => {
          this.onData((buf as Buffer).subarray(0, n));
          return true; // keep reading
        },
      },
    });
    this.socket.on("error", (err: NodeJS.ErrnoException) =>
      this.fail(`error: ${err.code ?? err.message}`),
    );
    this.socket.on("close", () => this.fail("socket closed"));
    this.socket.write(options.request);
  }

  /** Closes the connection (the stream ends). */
  close(): void {
    this.socket.destroy();
  }

  private opened(): void {
    clearTimeout(this.timer);
    this.settle?.();
    this.settle = undefined;
  }

  private end(reason: string): void {
    if (this.state === "ended") return;
    this.state = "ended";
    this.endReason = reason;
    this.parse = DONE;
    this.opened();
    if (this.received < this.tally.wanted) this.tally.reached(); // no longer waited for
  }

  /** Ends the stream with `reason` and closes the socket. */
  private fail(reason: string): void {
    this.end(reason);
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    this.tally.onChunk?.();
    let pos = 0;
    const end = chunk.length;
    if (this.parse === HEAD) {
      pos = this.readHead(chunk);
      if (pos < 0) return;
    }
    while (pos < end) {
      switch (this.parse) {
        case DATA: {
          const n = Math.min(this.left, end - pos);
          this.lines(chunk, pos, pos + n);
          pos += n;
          this.left -= n;
          if (this.left === 0) this.parse = DATA_CR;
          break;
        }
        case SIZE: {
          const c = chunk[pos++] as number;
          const digit = hexValue(c);
          if (digit >= 0) {
            this.size = this.size * 16 + digit;
            this.digits++;
            if (this.size > 2 ** 40) {
              this.fail("protocol error: chunk size too large");
              return;
            }
          } else if (c === 0x3b || c === 0x20 || c === 0x09)
            this.parse = EXTENSION; // ; or BWS
          else if (c === 0x0d) this.parse = SIZE_LF;
          else {
            this.fail("protocol error: bad chunk size");
            return;
          }
          break;
        }
        case EXTENSION:
          if (chunk[pos++] === 0x0d) this.parse = SIZE_LF;
          break;
        case SIZE_LF: {
          if (chunk[pos++] !== 0x0a || this.digits === 0) {
            this.fail("protocol error: chunk size line");
            return;
          }
          this.digits = 0;
          if (this.size === 0) {
            // The last chunk: a clean end (trailers, if any, are not read).
            this.end("ended by server (last chunk)");
            this.socket.destroy();
            return;
          }
          this.left = this.size;
          this.size = 0;
          this.parse = DATA;
          break;
        }
        case DATA_CR:
          if (chunk[pos++] !== 0x0d) {
            this.fail("protocol error: chunk data not ended by CRLF");
            return;
          }
          this.parse = DATA_LF;
          break;
        case DATA_LF:
          if (chunk[pos++] !== 0x0a) {
            this.fail("protocol error: chunk data not ended by CRLF");
            return;
          }
          this.parse = SIZE;
          break;
        default:
          return; // DONE
      }
    }
  }

  /** Reads the response head; returns where the body starts in `chunk`, or -1. */
  private readHead(chunk: Buffer): number {
    const before = this.head.length;
    this.head += chunk.toString("latin1");
    const at = this.head.indexOf("\r\n\r\n");
    if (at < 0) {
      if (this.head.length > MAX_HEAD) this.fail("protocol error: response head too large");
      return -1;
    }
    const head = this.head.slice(0, at);
    this.head = "";
    const status = /^HTTP\/1\.[01] (\d{3})/.exec(head);
    this.status = status === null ? 0 : Number(status[1]);
    if (this.status !== 200) {
      this.fail(status === null ? "protocol error: status line" : `http ${this.status}`);
      return -1;
    }
    this.chunked = /\r\ntransfer-encoding:[ \t]*chunked/i.test(head);
    // Without chunked coding the body runs to the end of the connection: all of it is data.
    this.parse = this.chunked ? SIZE : DATA;
    if (!this.chunked) this.left = Number.POSITIVE_INFINITY;
    this.state = "open";
    this.opened();
    return at + 4 - before;
  }

  /** Counts the lines ended in data bytes chunk[start, end). */
  private lines(buf: Buffer, start: number, end: number): void {
    const tally = this.tally;
    const onSent = tally.onSentMicros;
    let n = 0;
    // The search may run past `end`, but no further than the CRLF that follows a chunk's data.
    let i = buf.indexOf(10, start);
    while (i !== -1 && i < end) {
      n++;
      if (onSent !== undefined) {
        const sent = this.sentMicros(buf, start, i);
        if (sent >= 0) onSent(sent);
      }
      i = buf.indexOf(10, i + 1);
    }
    if (onSent !== undefined) this.keepTail(buf, start, end);
    if (n > 0) {
      const before = this.received;
      this.received = before + n;
      tally.received += n;
      if (before < tally.wanted && this.received >= tally.wanted) tally.reached();
    }
  }

  /**
   * Latency mode: the send time (µs) in the last 12 hex digits of the resource id of the line
   * ended at `nl` (`…"}` + padding spaces + `\n`), or -1. Bytes before `start` come from the tail
   * of the stream's earlier data.
   */
  private sentMicros(buf: Buffer, start: number, nl: number): number {
    let k = nl - 1;
    let b = this.byteAt(buf, start, k);
    while (b === 0x20) b = this.byteAt(buf, start, --k);
    if (b !== 0x7d || this.byteAt(buf, start, --k) !== 0x22) return -1; // }"
    let v = 0;
    for (let j = k - TIME_HEX_DIGITS; j < k; j++) {
      const d = hexValue(this.byteAt(buf, start, j));
      if (d < 0) return -1;
      v = v * 16 + d;
    }
    return v;
  }

  private byteAt(buf: Buffer, start: number, k: number): number {
    if (k >= start) return buf[k] as number;
    const t = this.tailLen - (start - k);
    return t >= 0 && this.tail !== undefined ? (this.tail[t] as number) : -1;
  }

  /** Keeps the last TAIL bytes of the stream's data (latency mode). */
  private keepTail(buf: Buffer, start: number, end: number): void {
    this.tail ??= Buffer.alloc(TAIL);
    const tail = this.tail;
    const n = end - start;
    if (n >= TAIL) {
      buf.copy(tail, 0, end - TAIL, end);
      this.tailLen = TAIL;
      return;
    }
    const keep = Math.min(this.tailLen, TAIL - n);
    tail.copyWithin(0, this.tailLen - keep, this.tailLen);
    buf.copy(tail, keep, start, end);
    this.tailLen = keep + n;
  }
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  if (l >= 0x61 && l <= 0x66) return l - 0x57;
  return -1;
}
