import * as net from "node:net";

/**
 * A minimal HTTP/2 cleartext client for server-streaming gRPC calls that counts the response
 * messages without decoding them. It exists so that the load generator is never the bottleneck:
 * node:http2's client emits a JS event per DATA frame per stream and copies every chunk, which
 * costs about as much as the server's write; this client reads the socket in large chunks and
 * walks frame headers and gRPC length prefixes in place (no HPACK decoding, no per-frame
 * allocation).
 *
 * Scope: enough HTTP/2 (RFC 9113) for this benchmark and nothing more. It sends HEADERS encoded
 * as HPACK literals without indexing (so it needs no encoder state), honours the server's
 * SETTINGS, flow-control windows and frame size when sending request bodies, grants generous
 * receive windows and tops them up as it consumes, answers PING and SETTINGS, and treats GOAWAY
 * or a closed socket as the end of its streams. Response header blocks are not decoded: a
 * HEADERS frame without END_STREAM means the response started, one with END_STREAM (trailers,
 * or a trailers-only error) or RST_STREAM means the stream ended.
 */

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

const DATA = 0x0;
const HEADERS = 0x1;
const RST_STREAM = 0x3;
const SETTINGS = 0x4;
const PING = 0x6;
const GOAWAY = 0x7;
const WINDOW_UPDATE = 0x8;

const END_STREAM = 0x1;
const ACK = 0x1;
const END_HEADERS = 0x4;
const PADDED = 0x8;

const SETTINGS_MAX_CONCURRENT_STREAMS = 0x3;
const SETTINGS_INITIAL_WINDOW_SIZE = 0x4;
const SETTINGS_MAX_FRAME_SIZE = 0x5;
const SETTINGS_ENABLE_PUSH = 0x2;

/** Receive window granted to each stream; topped up once half of it is consumed. */
const STREAM_WINDOW = 16 * 1024 * 1024;
/** Where every connection's socket reads land (see H2Connection); nothing keeps a view of it. */
const READ_BUFFER = Buffer.allocUnsafe(256 * 1024);
/** Receive window of the connection (the maximum); topped up once a quarter is consumed. */
const CONN_WINDOW = 2 ** 31 - 1;

/** HPACK integer with an N-bit prefix (RFC 7541 §5.1), first byte OR-ed with `mask`. */
function hpackInt(value: number, prefixBits: number, mask: number): number[] {
  const max = (1 << prefixBits) - 1;
  if (value < max) return [mask | value];
  const out = [mask | max];
  let v = value - max;
  while (v >= 128) {
    out.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  out.push(v);
  return out;
}

function hpackString(s: string): number[] {
  const bytes = Buffer.from(s, "latin1");
  return [...hpackInt(bytes.length, 7, 0), ...bytes];
}

/**
 * An HPACK header block for a gRPC POST: `:method POST` and `:scheme http` from the static
 * table, everything else as literals without indexing (static name index where there is one).
 */
export function grpcHeaderBlock(authority: string, path: string, token: string): Buffer {
  const bytes: number[] = [0x83, 0x86]; // :method POST, :scheme http
  bytes.push(...hpackInt(4, 4, 0), ...hpackString(path)); // :path
  bytes.push(...hpackInt(1, 4, 0), ...hpackString(authority)); // :authority
  bytes.push(...hpackInt(31, 4, 0), ...hpackString("application/grpc")); // content-type
  bytes.push(0, ...hpackString("te"), ...hpackString("trailers"));
  bytes.push(...hpackInt(23, 4, 0), ...hpackString(`Bearer ${token}`)); // authorization
  return Buffer.from(bytes);
}

function frameHeader(length: number, type: number, flags: number, streamId: number): Buffer {
  const h = Buffer.allocUnsafe(9);
  h.writeUIntBE(length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(streamId, 5);
  return h;
}

function windowUpdate(streamId: number, increment: number): Buffer {
  const f = frameHeader(4, WINDOW_UPDATE, 0, streamId);
  const p = Buffer.allocUnsafe(4);
  p.writeUInt32BE(increment, 0);
  return Buffer.concat([f, p]);
}

/** What a Tally reads of a stream: an HTTP/2 WatchStream, or a JSONL connection (jsonl-watch-client.ts). */
export interface CountedStream {
  readonly state: StreamState;
  /** Messages received (since it opened, or since Tally.restart). */
  received: number;
  readonly endReason: string;
}

/**
 * Counts what a group of streams received. `onMessage`, when set, sees each complete message
 * body (latency mode, HTTP/2); `onSentMicros` the send time read back from each line (latency
 * mode, JSONL); `onChunk` runs before each socket chunk is parsed (to read a clock once per
 * chunk rather than once per message).
 */
export class Tally {
  /** Messages received by every stream of the group together. */
  received = 0;
  onMessage: ((buf: Buffer, start: number, length: number) => void) | undefined;
  onSentMicros: ((sentMicros: number) => void) | undefined;
  onChunk: (() => void) | undefined;
  /**
   * Messages whose body starts with this byte are not counted in `received` but in `skipped`
   * (-1: every message counts). Feed streams (eventservice.feed.v1.WatchResponse) set 0x12, the
   * tag of `checkpoint` (field 2, length-delimited), so that only `event`s (0x0a) count.
   */
  skipFirstByte = -1;
  /** Messages not counted because of `skipFirstByte`. */
  skipped = 0;
  readonly streams: CountedStream[] = [];
  /** The count the waiter waits for (+Infinity: no waiter); compared on every message. */
  wanted = Number.POSITIVE_INFINITY;
  /** Live streams that have not reached `wanted` yet. */
  private lagging = 0;
  private resolve: ((ok: boolean) => void) | undefined;
  private timer: NodeJS.Timeout | undefined;

  /** Streams of the group that have not ended. */
  get live(): number {
    let n = 0;
    for (const s of this.streams) if (s.state !== "ended") n++;
    return n;
  }

  /**
   * The fewest messages any live stream of the group has received (streams that ended are left
   * out, so that one failed stream does not stall a run; they are reported separately).
   */
  min(): number {
    let m = Number.POSITIVE_INFINITY;
    for (const s of this.streams) if (s.state !== "ended" && s.received < m) m = s.received;
    return m;
  }

  /**
   * Resolves true once every live stream has received at least `min` messages, false after
   * `timeoutMs`. One waiter at a time. Costs one pass over the streams per call and one
   * comparison per message.
   */
  waitForMin(min: number, timeoutMs: number): Promise<boolean> {
    if (this.resolve !== undefined) throw new Error("one waiter at a time");
    let lagging = 0;
    for (const s of this.streams) if (s.state !== "ended" && s.received < min) lagging++;
    if (lagging === 0) return Promise.resolve(true);
    this.lagging = lagging;
    this.wanted = min;
    return new Promise<boolean>((resolve) => {
      this.resolve = resolve;
      this.timer = setTimeout(() => this.settle(false), Math.max(1, timeoutMs));
    });
  }

  /**
   * Counts each stream's messages from zero again (the group's `received` goes on), so that a
   * wait for `min` means `min` more for every stream, whatever each had before (scenario 11:
   * confirmation events reach the streams opened early more often). Not while a wait is armed.
   */
  restart(): void {
    if (this.resolve !== undefined) throw new Error("restart while a wait is armed");
    for (const s of this.streams) s.received = 0;
  }

  /** A stream has just reached `wanted` messages, or ended below it. */
  reached(): void {
    if (--this.lagging <= 0) this.settle(true);
  }

  private settle(ok: boolean): void {
    const r = this.resolve;
    this.resolve = undefined;
    this.wanted = Number.POSITIVE_INFINITY;
    clearTimeout(this.timer);
    r?.(ok);
  }
}

export type StreamState = "opening" | "open" | "ended";

export class WatchStream implements CountedStream {
  state: StreamState = "opening";
  /** Messages received. */
  received = 0;
  /** Why it ended: "ended by server (trailers|DATA)", "rst:<code>", "goaway", "socket closed". */
  endReason = "";
  // gRPC message parser: bytes of the 5-byte prefix still to read, or of the body.
  hdrLeft = 5;
  lenAcc = 0;
  bodyLeft = 0;
  cap: Buffer | undefined;
  capLen = 0;
  /** The next body byte is the message's first (for Tally.skipFirstByte). */
  atBodyStart = false;
  /** The message being read is not counted (Tally.skipFirstByte). */
  skipping = false;
  // Flow control.
  sendWindow = 0;
  pendingBody: Buffer | undefined;
  recvUnacked = 0;

  constructor(
    readonly id: number,
    readonly tally: Tally,
  ) {}
}

export interface ConnectOptions {
  readonly host: string;
  readonly port: number;
  /** Connection timeout, ms. */
  readonly timeoutMs?: number;
}

/** One HTTP/2 connection carrying many watch streams. */
export class H2Connection {
  private readonly socket: net.Socket;
  private readonly streams = new Map<number, WatchStream>();
  private nextId = 1;
  private peerInitialWindow = 65_535;
  private peerMaxFrame = 16_384;
  /** SETTINGS_MAX_CONCURRENT_STREAMS of the server (unlimited until it says otherwise). */
  peerMaxConcurrent = Number.POSITIVE_INFINITY;
  private connSendWindow = 65_535;
  private connRecvUnacked = 0;
  private blocked: WatchStream[] = [];
  private carry: Buffer | undefined;
  // The DATA frame being read across chunks.
  private dataLeft = 0;
  private dataStream: WatchStream | undefined;
  private dataEnd = false;
  private padLeft = 0;
  private out: Buffer[] = [];
  private closed = false;
  private readonly tallies = new Set<Tally>();
  private settingsSeen: (() => void) | undefined;
  readonly ready: Promise<void>;

  constructor(options: ConnectOptions) {
    this.socket = net.connect({
      host: options.host,
      port: options.port,
      noDelay: true,
      // Reads land in one buffer shared by every connection (each is parsed before the next
      // read), not in a new Buffer per chunk: at hundreds of MB/s those chunks were external
      // memory that made V8 run major GCs, a fifth of this client's CPU.
      onread: {
        buffer: READ_BUFFER,
        callback: (n: number, buf: Uint8Array) => {
          this.onData((buf as Buffer).subarray(0, n));
          return true; // keep reading
        },
      },
    });
    this.ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error("no SETTINGS from the server")),
        options.timeoutMs ?? 10_000,
      );
      this.settingsSeen = () => {
        clearTimeout(timer);
        resolve();
      };
      this.socket.once("error", (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    this.ready.catch(() => {}); // reported to whoever awaits it
    this.socket.on("error", () => this.onClose());
    this.socket.on("close", () => this.onClose());
    const settings = Buffer.allocUnsafe(12);
    settings.writeUInt16BE(SETTINGS_ENABLE_PUSH, 0);
    settings.writeUInt32BE(0, 2);
    settings.writeUInt16BE(SETTINGS_INITIAL_WINDOW_SIZE, 6);
    settings.writeUInt32BE(STREAM_WINDOW, 8);
    this.socket.write(
      Buffer.concat([
        PREFACE,
        frameHeader(settings.length, SETTINGS, 0, 0),
        settings,
        windowUpdate(0, CONN_WINDOW - 65_535),
      ]),
    );
  }

  get openStreams(): number {
    return this.streams.size;
  }

  /**
   * Starts one stream per header block, all with the same request body, in one socket write;
   * their messages are counted in `tally`.
   */
  open(headerBlocks: readonly Buffer[], body: Buffer, tally: Tally): WatchStream[] {
    this.tallies.add(tally);
    const opened: WatchStream[] = [];
    for (const headerBlock of headerBlocks) {
      const s = new WatchStream(this.nextId, tally);
      this.nextId += 2;
      s.sendWindow = this.peerInitialWindow;
      s.pendingBody = body;
      this.streams.set(s.id, s);
      tally.streams.push(s);
      opened.push(s);
      if (this.closed) {
        s.state = "ended";
        s.endReason = "socket closed";
        continue;
      }
      this.out.push(frameHeader(headerBlock.length, HEADERS, END_HEADERS, s.id), headerBlock);
      this.sendBody(s);
    }
    this.flush();
    return opened;
  }

  /** Closes the connection (its streams end). */
  close(): void {
    this.socket.destroy();
  }

  private sendBody(s: WatchStream): void {
    let body = s.pendingBody;
    while (body !== undefined) {
      const n = Math.min(body.length, this.peerMaxFrame, s.sendWindow, this.connSendWindow);
      if (n <= 0 && body.length > 0) {
        if (!this.blocked.includes(s)) this.blocked.push(s);
        break;
      }
      const last = n === body.length;
      this.out.push(frameHeader(n, DATA, last ? END_STREAM : 0, s.id), body.subarray(0, n));
      s.sendWindow -= n;
      this.connSendWindow -= n;
      body = last ? undefined : body.subarray(n);
    }
    s.pendingBody = body;
  }

  private flushBlocked(): void {
    const blocked = this.blocked;
    this.blocked = [];
    for (const s of blocked) if (s.pendingBody !== undefined) this.sendBody(s);
  }

  private flush(): void {
    if (this.out.length === 0 || this.closed) return;
    const out = this.out;
    this.out = [];
    this.socket.write(out.length === 1 ? (out[0] as Buffer) : Buffer.concat(out));
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.streams.values()) this.end(s, "socket closed");
    this.streams.clear();
  }

  private end(s: WatchStream, reason: string): void {
    if (s.state === "ended") return;
    s.state = "ended";
    s.endReason = reason;
    this.streams.delete(s.id);
    if (s.received < s.tally.wanted) s.tally.reached(); // no longer waited for
  }

  private onData(chunk: Buffer): void {
    for (const t of this.tallies) t.onChunk?.();
    let buf = chunk;
    if (this.carry !== undefined) {
      buf = Buffer.concat([this.carry, chunk]);
      this.carry = undefined;
    }
    let pos = 0;
    const end = buf.length;
    while (pos < end) {
      if (this.dataLeft > 0) {
        const n = Math.min(this.dataLeft, end - pos);
        const s = this.dataStream;
        if (s !== undefined && s.state !== "ended") this.messages(s, buf, pos, pos + n);
        pos += n;
        this.dataLeft -= n;
        if (this.dataLeft === 0 && this.padLeft === 0) this.dataDone();
        continue;
      }
      if (this.padLeft > 0) {
        const n = Math.min(this.padLeft, end - pos);
        pos += n;
        this.padLeft -= n;
        if (this.padLeft === 0) this.dataDone();
        continue;
      }
      if (end - pos < 9) break;
      const length = buf.readUIntBE(pos, 3);
      const type = buf[pos + 3] as number;
      const flags = buf[pos + 4] as number;
      const sid = buf.readUInt32BE(pos + 5) & 0x7fffffff;
      if (type === DATA) {
        let pad = 0;
        if (flags & PADDED) {
          if (end - pos < 10) break;
          pad = buf[pos + 9] as number;
        }
        pos += (flags & PADDED) !== 0 ? 10 : 9;
        this.receiveWindow(sid, length);
        this.dataStream = this.streams.get(sid);
        this.dataEnd = (flags & END_STREAM) !== 0;
        this.dataLeft = length - pad - ((flags & PADDED) !== 0 ? 1 : 0);
        this.padLeft = pad;
        if (this.dataLeft === 0 && this.padLeft === 0) this.dataDone();
        continue;
      }
      if (end - pos < 9 + length) break;
      this.control(type, flags, sid, buf, pos + 9, length);
      pos += 9 + length;
    }
    if (pos < end) this.carry = Buffer.from(buf.subarray(pos));
    this.flush();
  }

  private dataDone(): void {
    const s = this.dataStream;
    this.dataStream = undefined;
    if (s !== undefined && this.dataEnd) this.end(s, "ended by server (DATA)");
  }

  private receiveWindow(sid: number, length: number): void {
    this.connRecvUnacked += length;
    if (this.connRecvUnacked >= CONN_WINDOW / 4) {
      this.out.push(windowUpdate(0, this.connRecvUnacked));
      this.connRecvUnacked = 0;
    }
    const s = this.streams.get(sid);
    if (s === undefined) return;
    s.recvUnacked += length;
    if (s.recvUnacked >= STREAM_WINDOW / 2) {
      this.out.push(windowUpdate(sid, s.recvUnacked));
      s.recvUnacked = 0;
    }
  }

  /** Walks the gRPC messages of one stream in buf[start, end). */
  private messages(s: WatchStream, buf: Buffer, start: number, end: number): void {
    const tally = s.tally;
    const onMessage = tally.onMessage;
    let i = start;
    while (i < end) {
      if (s.hdrLeft === 5 && end - i >= 5) {
        // Fast path: a whole prefix, and often the whole message, in this chunk.
        const len = buf.readUInt32BE(i + 1);
        if (end - i - 5 >= len) {
          if (len > 0 && buf[i + 5] === tally.skipFirstByte) {
            i += 5 + len;
            tally.skipped++;
            continue;
          }
          if (onMessage !== undefined) onMessage(buf, i + 5, len);
          i += 5 + len;
          tally.received++;
          if (++s.received === tally.wanted) tally.reached();
          continue;
        }
        s.bodyLeft = len;
        s.hdrLeft = 0;
        s.capLen = 0;
        s.atBodyStart = true;
        i += 5;
        continue;
      }
      if (s.hdrLeft > 0) {
        const byte = buf[i++] as number;
        if (s.hdrLeft <= 4) s.lenAcc = s.lenAcc * 256 + byte;
        if (--s.hdrLeft === 0) {
          s.bodyLeft = s.lenAcc;
          s.lenAcc = 0;
          s.capLen = 0;
          s.atBodyStart = true;
          if (s.bodyLeft === 0) this.messageDone(s);
        }
        continue;
      }
      const n = Math.min(s.bodyLeft, end - i);
      if (s.atBodyStart && n > 0) {
        s.atBodyStart = false;
        s.skipping = buf[i] === tally.skipFirstByte;
      }
      if (onMessage !== undefined) {
        if (s.cap === undefined) s.cap = Buffer.alloc(256);
        const room = Math.min(n, s.cap.length - s.capLen);
        if (room > 0) buf.copy(s.cap, s.capLen, i, i + room);
        s.capLen += room;
      }
      i += n;
      s.bodyLeft -= n;
      if (s.bodyLeft === 0) this.messageDone(s);
    }
  }

  private messageDone(s: WatchStream): void {
    s.hdrLeft = 5;
    s.atBodyStart = false;
    if (s.skipping) {
      s.skipping = false;
      s.tally.skipped++;
      return;
    }
    if (s.tally.onMessage !== undefined && s.cap !== undefined) {
      s.tally.onMessage(s.cap, 0, s.capLen);
    }
    s.tally.received++;
    if (++s.received === s.tally.wanted) s.tally.reached();
  }

  private control(
    type: number,
    flags: number,
    sid: number,
    buf: Buffer,
    at: number,
    length: number,
  ): void {
    switch (type) {
      case HEADERS: {
        const s = this.streams.get(sid);
        if (s === undefined) return;
        if (flags & END_STREAM) this.end(s, "ended by server (trailers)");
        else if (s.state === "opening") s.state = "open";
        return;
      }
      case RST_STREAM: {
        const s = this.streams.get(sid);
        if (s !== undefined) this.end(s, `rst:${length >= 4 ? buf.readUInt32BE(at) : "?"}`);
        return;
      }
      case SETTINGS: {
        if (flags & ACK) return;
        for (let p = at; p + 6 <= at + length; p += 6) {
          const id = buf.readUInt16BE(p);
          const value = buf.readUInt32BE(p + 2);
          if (id === SETTINGS_INITIAL_WINDOW_SIZE) {
            const delta = value - this.peerInitialWindow;
            this.peerInitialWindow = value;
            for (const s of this.streams.values()) s.sendWindow += delta;
          } else if (id === SETTINGS_MAX_FRAME_SIZE) {
            this.peerMaxFrame = value;
          } else if (id === SETTINGS_MAX_CONCURRENT_STREAMS) {
            this.peerMaxConcurrent = value;
          }
        }
        this.out.push(frameHeader(0, SETTINGS, ACK, 0));
        this.flushBlocked();
        this.settingsSeen?.();
        this.settingsSeen = undefined;
        return;
      }
      case PING: {
        if (flags & ACK) return;
        this.out.push(frameHeader(8, PING, ACK, 0), Buffer.from(buf.subarray(at, at + 8)));
        return;
      }
      case GOAWAY: {
        const last = buf.readUInt32BE(at) & 0x7fffffff;
        for (const s of [...this.streams.values()]) if (s.id > last) this.end(s, "goaway");
        return;
      }
      case WINDOW_UPDATE: {
        const inc = buf.readUInt32BE(at) & 0x7fffffff;
        if (sid === 0) this.connSendWindow += inc;
        else {
          const s = this.streams.get(sid);
          if (s !== undefined) s.sendWindow += inc;
        }
        this.flushBlocked();
        return;
      }
      // PRIORITY, PUSH_PROMISE (disabled), CONTINUATION (header blocks are not decoded): ignored.
    }
  }
}
