import type * as http from "node:http";
import * as http2 from "node:http2";
import type { Writable } from "node:stream";

/** What ends a response that has started: trailing bytes and HTTP trailers. */
export interface ResponseEnd {
  readonly body?: Buffer;
  readonly trailers?: Record<string, string>;
}

/**
 * One request and its response, as the streaming edge needs them, over HTTP/1.1
 * (`http.IncomingMessage`/`ServerResponse`) or a raw HTTP/2 stream. HTTP/2 calls use the stream
 * directly: the compatibility layer's request and response objects would be kept alive for as
 * long as each stream is open (several KiB per idle stream) and add a layer to every write.
 */
export interface Exchange {
  /**
   * Sends the head of a streaming response now; the items then go to `sink`. `trailers`: the
   * end will carry HTTP trailers (HTTP/2 has to know before the head).
   */
  start(status: number, headers: Record<string, string>, trailers: boolean): void;
  /** Where a started response's bytes go. */
  readonly sink: Writable;
  /** Ends a started response cleanly. */
  finish(end: ResponseEnd): void;
  /** A whole response at once (nothing started). */
  respond(status: number, headers: Record<string, string>, body?: Buffer): void;
  /**
   * Cuts a started response so that no client can take it for a clean end: HTTP/1.1 closes the
   * connection without the last chunk, HTTP/2 resets the stream with an error code. `tail`, if
   * given, is written first and reaches the peer before the cut (within ABORT_FLUSH_MS): a
   * proxy may turn the cut into a clean end, and some readers drop it (CONTRACT §10), so the
   * tail is what tells them.
   */
  abort(tail?: Buffer): void;
  /** Calls `listener` when the exchange closes, for whatever reason. */
  onClose(listener: () => void): void;
  offClose(listener: () => void): void;
  /** The peer is gone or the exchange is over: nothing more can be written. */
  readonly gone: boolean;
  /**
   * The connection whose writes leave together once the turn's JavaScript is done (an HTTP/2
   * session: Node sends its frames from an immediate); undefined when each write goes to the
   * socket at once (HTTP/1.1). See FlushScheduler.
   */
  readonly connection: object | undefined;
}

/**
 * An 'error' listener for raw HTTP/2 streams: their errors (a reset peer, a write after close)
 * end in 'close', which the edges watch; an 'error' without a listener would be thrown instead.
 * One function for every stream.
 */
export function ignoreErrors(): void {}

/**
 * A whole response on a raw HTTP/2 stream, whose request may not have been read to its end (a
 * refusal): the rest of the request is then declined with RST_STREAM NO_ERROR once the
 * response is out (RFC 9113 §8.1), so the client stops sending and the stream closes.
 */
export function respondWhole(
  stream: http2.ServerHttp2Stream,
  headers: http2.OutgoingHttpHeaders,
  body?: Buffer,
): void {
  if (stream.destroyed || stream.closed) return;
  const unread = !stream.readableEnded;
  stream.respond(headers, { endStream: body === undefined });
  if (body !== undefined) stream.end(body);
  if (unread) stream.close(http2.constants.NGHTTP2_NO_ERROR);
}

/** Why a started HTTP/2 response was cut (the stream's own 'error', which nobody reads). */
const ABORTED = new Error("stream aborted by the server");

/**
 * Longest an abort waits for its tail to be flushed, in ms: a peer that reads nothing must not
 * keep the connection. The tail is lost then, but such a peer sees the cut once it reads.
 */
export const ABORT_FLUSH_MS = 2000;

/**
 * Writes `tail` to `sink`, then calls `cut` once the bytes were handed to the socket (the write's
 * callback), or after ABORT_FLUSH_MS, whichever comes first; without a tail, cuts at once.
 * A plain `destroy` right after a write may drop the bytes still queued in Node.
 */
function cutAfter(sink: Writable, tail: Buffer | undefined, cut: () => void): void {
  if (tail === undefined || sink.destroyed || sink.writableEnded) {
    cut();
    return;
  }
  let done = false;
  const once = () => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    cut();
  };
  const timer = setTimeout(once, ABORT_FLUSH_MS);
  timer.unref();
  sink.write(tail, once);
}

/**
 * Headers every answer of one exchange carries, on top of its own (`extra`, the CORS headers
 * the policy chose for the request's origin, decided once when the exchange is built).
 */
function withExtra(
  headers: Record<string, string>,
  extra: Record<string, string> | undefined,
): Record<string, string> {
  return extra === undefined ? headers : { ...headers, ...extra };
}

/** An exchange on a raw HTTP/2 stream (the server's 'stream' event). */
export class Http2Exchange implements Exchange {
  private withTrailers = false;
  /** Kept from the start: a destroyed stream forgets its session. */
  readonly connection: object | undefined;

  /** `extra`: headers of every answer (CORS), decided when the exchange is built. */
  constructor(
    readonly stream: http2.ServerHttp2Stream,
    private readonly extra?: Record<string, string>,
  ) {
    stream.on("error", ignoreErrors);
    this.connection = stream.session;
  }

  get sink(): Writable {
    return this.stream;
  }

  get gone(): boolean {
    return this.stream.destroyed || this.stream.closed;
  }

  start(status: number, headers: Record<string, string>, trailers: boolean): void {
    this.withTrailers = trailers;
    this.stream.respond(
      { ...withExtra(headers, this.extra), ":status": status },
      { waitForTrailers: trailers },
    );
  }

  finish(end: ResponseEnd): void {
    if (this.withTrailers) {
      const stream = this.stream;
      stream.once("wantTrailers", () => stream.sendTrailers(end.trailers ?? {}));
    }
    this.stream.end(end.body);
  }

  respond(status: number, headers: Record<string, string>, body?: Buffer): void {
    respondWhole(this.stream, { ...withExtra(headers, this.extra), ":status": status }, body);
  }

  abort(tail?: Buffer): void {
    // Not `close(code)`: Node ends the writable side first, so the client sees END_STREAM (a
    // clean end) and the RST_STREAM that follows is dropped for a closed stream. `destroy` with
    // an error resets the open stream with INTERNAL_ERROR.
    const stream = this.stream;
    cutAfter(stream, tail, () => stream.destroy(ABORTED));
  }

  onClose(listener: () => void): void {
    this.stream.on("close", listener);
  }

  offClose(listener: () => void): void {
    this.stream.off("close", listener);
  }
}

/** An exchange on HTTP/1.1. */
export class Http1Exchange implements Exchange {
  readonly connection = undefined;
  /** `extra`: headers of every answer (CORS), decided when the exchange is built. */
  constructor(
    readonly res: http.ServerResponse,
    private readonly extra?: Record<string, string>,
  ) {}

  get sink(): Writable {
    return this.res;
  }

  get gone(): boolean {
    return this.res.destroyed;
  }

  start(status: number, headers: Record<string, string>): void {
    this.res.writeHead(status, withExtra(headers, this.extra));
    // Headers go out now, before any item: clients see the stream open at once.
    this.res.flushHeaders();
  }

  finish(end: ResponseEnd): void {
    if (end.trailers !== undefined) this.res.addTrailers(end.trailers);
    this.res.end(end.body);
  }

  respond(status: number, headers: Record<string, string>, body?: Buffer): void {
    this.res.writeHead(status, withExtra(headers, this.extra));
    this.res.end(body);
  }

  abort(tail?: Buffer): void {
    // `destroy` closes the connection without the last chunk of the chunked body.
    const res = this.res;
    cutAfter(res, tail, () => res.destroy());
  }

  onClose(listener: () => void): void {
    this.res.on("close", listener);
  }

  offClose(listener: () => void): void {
    this.res.off("close", listener);
  }
}
