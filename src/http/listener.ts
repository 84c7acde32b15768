import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";

/** The first bytes every HTTP/2 cleartext connection with prior knowledge sends (RFC 9113 §3.4). */
const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

export interface ListenerOptions {
  /** Serves an HTTP/1.1 request. */
  readonly onRequest: (req: http.IncomingMessage, res: http.ServerResponse) => void;
  /**
   * Takes an HTTP/2 stream on the raw API when it wants it (returns true); otherwise the stream
   * is served through Node's compatibility API by `onCompatRequest`.
   */
  readonly onStream: (
    stream: http2.ServerHttp2Stream,
    headers: http2.IncomingHttpHeaders,
  ) => boolean;
  /** Serves an HTTP/2 request that `onStream` declined, as compatibility request/response. */
  readonly onCompatRequest: (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void;
  /** Time a new connection has to send its first request line or preface, and HTTP/1.1 headers. */
  readonly headersTimeoutMs: number;
  /**
   * Time a request may take to arrive whole (0: no limit): HTTP/1.1 answers 408 and closes the
   * connection, HTTP/2 resets the stream (CANCEL). Responses (streams) are not limited.
   */
  readonly requestTimeoutMs: number;
  /** Idle time after which a keep-alive HTTP/1.1 connection is closed. */
  readonly keepAliveTimeoutMs: number;
  /** HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS per connection. */
  readonly maxConcurrentStreams: number;
  /** Interval of HTTP/2 PINGs; a session that has not acknowledged the previous one is destroyed (0: off). */
  readonly h2PingIntervalMs: number;
  /** Largest header section accepted, in bytes. */
  readonly maxHeaderBytes: number;
  /**
   * An HTTP/2 session with no open stream for this long is closed (GOAWAY), in ms; 0: never.
   * Sessions with streams (watchers, idle or not) are never idle. Default 0.
   */
  readonly h2IdleTimeoutMs?: number;
}

/**
 * One TCP port for HTTP/1.1 and HTTP/2 cleartext (prior knowledge). Node's HTTP/2 server only
 * accepts HTTP/1.1 through TLS ALPN, so each new connection is sniffed: if it starts with the
 * HTTP/2 preface it goes to an `http2` server, otherwise to an `http` server; the sniffed bytes
 * are put back first. Neither inner server listens itself.
 */
export class Listener {
  readonly server: net.Server;
  readonly http1: http.Server;
  readonly http2: http2.Http2Server;
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private readonly sniffing = new Set<net.Socket>();

  constructor(options: ListenerOptions) {
    this.http1 = http.createServer(
      {
        headersTimeout: options.headersTimeoutMs,
        requestTimeout: options.requestTimeoutMs,
        keepAliveTimeout: options.keepAliveTimeoutMs,
        maxHeaderSize: options.maxHeaderBytes,
        // Watch streams are long-lived; Nagle would only delay small event writes.
        noDelay: true,
        // How often header and request timeouts are checked (Node's default is 30 s).
        connectionsCheckingInterval: Math.min(1000, options.headersTimeoutMs),
      },
      options.onRequest,
    );
    this.http2 = http2.createServer({
      // Advertised to clients; Node does not enforce it on what it receives (checked below).
      settings: {
        maxConcurrentStreams: options.maxConcurrentStreams,
        maxHeaderListSize: options.maxHeaderBytes,
      },
      maxSessionMemory: 32,
      maxHeaderListPairs: 128,
    });
    // Node builds the compatibility request and response for every stream of a server that has
    // a 'request' listener. So the real server has none: its streams go to `onStream` first,
    // and only those it declines are handed to a second server object that never listens,
    // whose compatibility layer (Node's own, with its CONNECT and Expect handling) turns them
    // into `onCompatRequest(req, res)` calls.
    const compat = http2.createServer(options.onCompatRequest);
    this.http2.on("stream", (stream, headers, flags, rawHeaders) => {
      // The same header limit as HTTP/1.1 (431), counted as RFC 9113 counts a header list.
      if (headerListSize(rawHeaders) > options.maxHeaderBytes) {
        if (!stream.destroyed) stream.respond({ ":status": 431 }, { endStream: true });
        return;
      }
      // A request whose body does not end (END_STREAM) in time is reset, as HTTP/1.1's
      // requestTimeout does; a request without a body ended with its headers.
      if (options.requestTimeoutMs > 0 && (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) === 0) {
        limitRequestTime(stream, options.requestTimeoutMs);
      }
      if (!options.onStream(stream, headers))
        compat.emit("stream", stream, headers, flags, rawHeaders);
    });
    this.http2.on("session", (session: http2.ServerHttp2Session) => {
      this.sessions.add(session);
      const stopPings = keepAlive(session, options.h2PingIntervalMs);
      const stopIdle = closeWhenIdle(session, options.h2IdleTimeoutMs ?? 0);
      session.once("close", () => {
        stopPings();
        stopIdle();
        this.sessions.delete(session);
      });
    });
    this.server = net.createServer({ noDelay: true }, (socket) =>
      this.sniff(socket, options.headersTimeoutMs),
    );
    // http.Server starts its header/request timeout checks when it starts listening; this one
    // never listens itself, so start them along with the outer server.
    this.server.on("listening", () => this.http1.emit("listening"));
  }

  listen(port: number, host: string): Promise<net.AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, host, () => {
        this.server.off("error", reject);
        resolve(this.server.address() as net.AddressInfo);
      });
    });
  }

  /** Open HTTP/2 sessions (connections). */
  get http2SessionCount(): number {
    return this.sessions.size;
  }

  private sniff(socket: net.Socket, timeoutMs: number): void {
    this.sniffing.add(socket);
    // Lets the OS notice peers that vanished without a FIN (HTTP/1.1 has no ping of its own).
    socket.setKeepAlive(true, 60_000);
    const chunks: Buffer[] = [];
    let length = 0;
    const done = (target: http.Server | http2.Http2Server | undefined) => {
      socket.off("data", onData);
      socket.off("error", onError);
      socket.off("close", onClose);
      // A timer of our own rather than socket.setTimeout: clearing that keeps its Timeout object
      // (and, unless its listener is removed too, this closure and the sniffed bytes) on the
      // socket for as long as the connection lives.
      clearTimeout(timer);
      this.sniffing.delete(socket);
      if (target === undefined) return;
      socket.pause();
      socket.unshift(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, length));
      target.emit("connection", socket);
      // The HTTP/1.1 parser reads through the stream and needs it flowing again; the HTTP/2
      // session takes the unshifted bytes itself and reads the handle natively, so resuming
      // there would make the stream compete with it for the socket's data.
      if (target === this.http1) socket.resume();
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      length += chunk.length;
      const head = chunks.length === 1 ? chunk : Buffer.concat(chunks, length);
      const n = Math.min(head.length, H2_PREFACE.length);
      if (head.compare(H2_PREFACE, 0, n, 0, n) !== 0) done(this.http1);
      else if (n === H2_PREFACE.length) done(this.http2);
      // else: a prefix of the preface so far; wait for more.
    };
    const onError = () => {
      done(undefined);
      socket.destroy();
    };
    const onClose = () => done(undefined);
    socket.on("data", onData);
    socket.on("error", onError);
    socket.on("close", onClose);
    const timer = setTimeout(() => {
      done(undefined);
      socket.destroy();
    }, timeoutMs);
  }

  /**
   * Stops accepting connections and closes the open ones gracefully: HTTP/2 sessions get GOAWAY
   * and finish their streams, idle HTTP/1.1 connections close and busy ones close after their
   * response. After `timeoutMs` everything still open is destroyed. Resolves when all are gone.
   */
  async close(timeoutMs: number): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of this.sniffing) s.destroy();
    for (const session of this.sessions) session.close();
    this.http1.closeIdleConnections();
    // Busy HTTP/1.1 connections close after their current response (keep-alive is off now).
    const stopH1 = new Promise<void>((resolve) => this.http1.close(() => resolve()));
    const timer = setTimeout(() => {
      for (const session of this.sessions) session.destroy();
      this.http1.closeAllConnections();
    }, timeoutMs);
    timer.unref();
    await Promise.all([closed, stopH1]);
    clearTimeout(timer);
  }
}

/**
 * The size of a header list as SETTINGS_MAX_HEADER_LIST_SIZE counts it (RFC 9113 §6.5.2): each
 * field's name and value in octets, plus 32. `raw` alternates names and values.
 */
export function headerListSize(raw: readonly string[]): number {
  let size = 0;
  for (const field of raw) size += Buffer.byteLength(field);
  return size + (raw.length / 2) * 32;
}

/** Resets `stream` unless its request body has ended within `ms` (see requestTimeoutMs). */
function limitRequestTime(stream: http2.ServerHttp2Stream, ms: number): void {
  const timer = setTimeout(() => {
    clear();
    if (!stream.destroyed && !stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
  }, ms);
  timer.unref();
  function clear(): void {
    clearTimeout(timer);
    stream.off("end", clear);
    stream.off("close", clear);
  }
  stream.on("end", clear);
  stream.on("close", clear);
}

/**
 * Closes `session` (GOAWAY, then the socket once nothing is open) after `ms` without an open
 * stream: PINGs keep a connection alive, not a reason to hold it. Returns the cleanup.
 */
function closeWhenIdle(session: http2.ServerHttp2Session, ms: number): () => void {
  if (ms <= 0) return () => {};
  let open = 0;
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    timer = setTimeout(() => {
      if (open === 0 && !session.closed && !session.destroyed) session.close();
    }, ms);
    timer.unref();
  };
  session.on("stream", (stream: http2.ServerHttp2Stream) => {
    open++;
    clearTimeout(timer);
    timer = undefined;
    stream.once("close", () => {
      if (--open === 0) arm();
    });
  });
  arm();
  return () => clearTimeout(timer);
}

/**
 * Sends a PING every `intervalMs`; a session that has not acknowledged the previous one by then
 * is dead (peer gone, or stalled) and is destroyed, which ends its streams.
 */
function keepAlive(session: http2.ServerHttp2Session, intervalMs: number): () => void {
  if (intervalMs <= 0) return () => {};
  let outstanding = false;
  const timer = setInterval(() => {
    if (outstanding) {
      session.destroy();
      return;
    }
    outstanding = true;
    try {
      session.ping(() => {
        outstanding = false;
      });
    } catch {
      session.destroy(); // the session is already closing
    }
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
