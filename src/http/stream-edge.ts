import type { IncomingHttpHeaders } from "node:http";
import type { Readable, Writable } from "node:stream";
import type { DescMessage } from "@bufbuild/protobuf";
import { ServiceError } from "../errors.js";
import type { CallAuthentication } from "../rpc/authenticate.js";
import type { ErrorFunnel } from "../rpc/error-funnel.js";
import type { AnyStreamMethod, StreamMethod } from "../rpc/stream-method.js";
import { IDLE_TICKS, type IdleTarget, IdleTicker } from "../session/idle-ticker.js";
import type { StreamSession, Waker } from "../session/stream-session.js";
import { readBody } from "./body.js";
import { type Deadline, startCall } from "./call-start.js";
import type { Exchange } from "./exchange.js";
import type { FlushGroup, FlushScheduler } from "./flush-scheduler.js";
import {
  isAbort,
  isRefusal,
  type Refusal,
  type StreamWire,
  StreamWires,
  UNSUPPORTED_MEDIA_TYPE,
} from "./stream-wire.js";

/**
 * Why a call whose client went away ends: one value for every such call (nobody reads its
 * stack, and thousands of clients may leave at once).
 */
const CLIENT_GONE = new ServiceError("canceled", "client went away");

// Items written with one write call when a stream has several pending (one syscall, one frame).
const MAX_BATCH = 256;

// Scratch arrays of `flush` (which never runs inside another): the parts of one write, and the
// items taken one by one since the last run. Slots are cleared after use, never the arrays
// (emptying an array frees its storage, and the next flush would allocate it again).
const PARTS: (Buffer | undefined)[] = [];
const SINGLES: (object | undefined)[] = [];

export interface StreamEdgeOptions {
  readonly auth: CallAuthentication;
  readonly funnel: ErrorFunnel;
  readonly scheduler: FlushScheduler;
  /** Largest request body accepted, in bytes, before and after decompression. */
  readonly requestMaxBytes: number;
  /** Each method is served at its path under each prefix ("" and "/api", say). */
  readonly prefixes: readonly string[];
  /**
   * Interval of keep-alives on idle streams of wires that have one (JSONL: 64 spaces), in ms;
   * 0: none.
   */
  readonly keepAliveMs: number;
  /** Counts each keep-alive written (metrics). */
  readonly onKeepAlive?: () => void;
}

/** What the edge reads of a request: its method and headers (the body comes separately). */
export interface RequestHead {
  readonly method?: string | undefined;
  readonly headers: IncomingHttpHeaders;
}

/** A method the edge serves, with its wire forms. */
interface Route {
  readonly impl: AnyStreamMethod;
  readonly wires: StreamWires<DescMessage, DescMessage, object>;
}

/**
 * THE streaming edge: every server-streaming RPC of the port, on every protocol (JSONL,
 * Connect, gRPC, gRPC-Web; binary and JSON; compressed requests), over HTTP/1.1 and raw HTTP/2
 * streams. Each method is added from its generated descriptor and one handler (StreamMethod).
 *
 * A call authenticates, reads and decodes the request, applies the client's deadline, opens the
 * handler's session, writes the head at once (before any item), then the items, then the
 * protocol's end; errors before the head are the protocol's refusal, errors after it its
 * failure, or an abort where the protocol cannot say it (JSONL).
 */
export class StreamEdge {
  private readonly routes = new Map<string, Route>();
  private readonly keepAlives: IdleTicker | undefined;

  constructor(private readonly options: StreamEdgeOptions) {
    if (options.keepAliveMs > 0) this.keepAlives = new IdleTicker(options.keepAliveMs);
  }

  add<I extends DescMessage, O extends DescMessage, T extends object>(
    impl: StreamMethod<I, O, T>,
  ): void {
    const route: Route = {
      impl,
      wires: new StreamWires(
        impl.method,
        (item: T) => impl.toResponse(item),
        impl.toBinary?.bind(impl),
        impl.shared?.bind(impl),
      ) as StreamWires<DescMessage, DescMessage, object>,
    };
    const path = `/${impl.method.parent.typeName}/${impl.method.name}`;
    for (const prefix of this.options.prefixes) this.routes.set(prefix + path, route);
  }

  /** Whether `path` (without the query) is a streaming method of this edge. */
  serves(path: string): boolean {
    return this.routes.has(path);
  }

  /**
   * Serves one call on `exchange` (its path must be one the edge `serves`); resolves once the
   * first item can flow, or the call was refused. Never rejects.
   */
  serve(path: string, exchange: Exchange, head: RequestHead, body: Readable): Promise<void> {
    const route = this.routes.get(path) as Route;
    if (head.method !== "POST") {
      return refuseWhole(exchange, {
        status: 405,
        headers: { allow: "POST", "content-type": "text/plain; charset=utf-8" },
        body: Buffer.from(`${route.impl.method.name} accepts POST only\n`),
      });
    }
    const negotiated = route.wires.negotiate(head.headers);
    if (negotiated === undefined) return refuseWhole(exchange, UNSUPPORTED_MEDIA_TYPE);
    if (isRefusal(negotiated)) return refuseWhole(exchange, negotiated);
    const keepAlives = negotiated.wire.keepAlive === undefined ? undefined : this.keepAlives;
    return new EdgeCall(exchange, route.impl, negotiated.wire, this.options, keepAlives).start(
      head,
      body,
      negotiated.compression,
    );
  }
}

async function refuseWhole(exchange: Exchange, refusal: Refusal): Promise<void> {
  if (!exchange.gone) exchange.respond(refusal.status, refusal.headers, refusal.body);
}

function isClientGone(reason: unknown): boolean {
  return reason instanceof ServiceError && reason.kind === "canceled";
}

/**
 * One call on the edge. Items are written in push mode: when items arrive the call is flushed
 * once in that turn of the event loop (FlushScheduler), everything pending (up to MAX_BATCH) in
 * one write, with no promise per item. When the socket is full it waits for `drain`, so a slow
 * client leaves its items in the session's (bounded) backlog rather than in memory here.
 * Thousands of calls stay open for hours, so an open call is this one object, its session, and
 * one function, `onClose`; `drained`, which the transport calls back, is made the first time a
 * write fills the socket. The session's items wake the call itself (`wake`), not a closure: one
 * object fewer to reach per delivery.
 */
class EdgeCall implements IdleTarget, Waker {
  private session: StreamSession<object> | undefined;
  /** Why the call is being ended early (client gone, deadline), once it is. */
  private cancelled: unknown;
  private deadline: Deadline | undefined;
  private sink: Writable | undefined;
  /** Waiting in the scheduler. */
  private scheduled = false;
  /** This stream's connection in the scheduler, once it was first scheduled. */
  private group: FlushGroup | undefined;
  /** The last write filled the socket's buffer: wait for `drain`. */
  private blocked = false;
  /** The session is over and its end is being written. */
  private ending = false;
  /** Keep-alive ticks since the last write. */
  private idleTicks = 0;
  /** Keep-alives written since the last item (they pile up on one unterminated JSONL line). */
  private keepAliveRun = 0;
  /** The 'drain' listener, made the first time a write fills the socket (see `waitForDrain`). */
  private drained: (() => void) | undefined;
  private readonly onClose = () => this.cancel(CLIENT_GONE);

  constructor(
    private readonly exchange: Exchange,
    private readonly impl: AnyStreamMethod,
    private readonly wire: StreamWire<DescMessage, object>,
    private readonly options: StreamEdgeOptions,
    private readonly keepAlives: IdleTicker | undefined,
  ) {
    exchange.onClose(this.onClose);
  }

  /** Everything up to the first item; then the call runs on callbacks. */
  async start(
    head: RequestHead,
    body: Readable,
    compression: Parameters<StreamWire<DescMessage, object>["decode"]>[1],
  ): Promise<void> {
    const { exchange, wire, options, impl } = this;
    try {
      const call = startCall(head.headers, {
        timeoutMs: (headers) => wire.timeoutMs(headers),
        onDeadline: (reason) => this.cancel(reason),
        auth: impl.public === true ? undefined : options.auth,
      });
      this.deadline = call.deadline;
      const principal = await call.principal;
      if (Number(head.headers["content-length"]) > options.requestMaxBytes) {
        throw new ServiceError(
          "invalid_argument",
          `request body larger than ${options.requestMaxBytes} bytes`,
        );
      }
      const bytes = await readBody(body, options.requestMaxBytes);
      const request = await wire.decode(bytes, compression, options.requestMaxBytes);
      if (this.cancelled !== undefined) throw this.cancelled;
      const session = (await impl.open({
        principal,
        request,
        protocol: wire.name,
      })) as StreamSession<object>;
      this.session = session;
      // Cancelled meanwhile: the session ends at once, with that reason.
      if (this.cancelled !== undefined) session.items.cancel(this.cancelled);
      exchange.start(wire.head.status, wire.head.headers, wire.trailers);
      this.sink = exchange.sink;
      this.keepAlives?.add(this);
      session.items.onReadable(this);
      this.schedule();
    } catch (err) {
      this.stop();
      // The session may be open already (the head could not be written: the client reset the
      // stream meanwhile); it ends here, with what ended the call.
      this.session?.end(this.cancelled ?? err);
      if (isClientGone(this.cancelled) || exchange.gone) return; // nobody to tell
      const refusal = wire.refuse(options.funnel(err, impl.method.name));
      exchange.respond(refusal.status, refusal.headers, refusal.body);
    }
  }

  /** Ends the call with an error of the server's own (its flush threw). */
  fail(err: unknown): void {
    this.scheduled = false;
    this.cancel(err);
  }

  /** Ends the call early: the session's items fail with `reason`, which ends the stream. */
  private cancel(reason: unknown): void {
    if (this.cancelled !== undefined) return;
    this.cancelled = reason;
    this.session?.items.cancel(reason);
    if (this.sink !== undefined) this.schedule();
  }

  /** The socket is full: write again once it drains. */
  private waitForDrain(sink: Writable): void {
    this.blocked = true;
    this.drained ??= () => this.schedule();
    sink.once("drain", this.drained);
  }

  /** Items arrived, or the session ended (Waker). */
  wake(): void {
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    const { scheduler } = this.options;
    this.group ??= scheduler.group(this.exchange.connection);
    scheduler.schedule(this, this.group);
  }

  /**
   * Writes what is pending (up to MAX_BATCH items) in one write, or the end once the session
   * is over. Runs (PullSource.pollRun: a publish's events, as every stream of the same view got
   * them) are written as the bytes made once for all those streams; other items are joined.
   * Several parts are joined once for every stream that writes the same ones (`wire.join`).
   */
  flush(): void {
    this.scheduled = false;
    if (this.ending) return;
    const sink = this.sink as Writable;
    // A full socket waits for drain, unless the call is being torn down.
    if (this.blocked) {
      if (sink.writableNeedDrain && this.cancelled === undefined) return;
      this.blocked = false;
    }
    const session = this.session as StreamSession<object>;
    const items = session.items;
    const wire = this.wire;
    // Parts of the write go into PARTS[0..parts); items taken one by one since the last run
    // into SINGLES[0..singles).
    let parts = 0;
    let singles = 0;
    let count = 0;
    let last: object | undefined;
    for (;;) {
      const run = count < MAX_BATCH ? items.pollRun?.() : undefined;
      const item = run === undefined && count < MAX_BATCH ? items.poll() : undefined;
      if (item !== undefined) {
        SINGLES[singles++] = item;
        last = item;
        count++;
        continue;
      }
      // A run, or the end of what is pending: the items taken one by one before it go first.
      if (singles === 1) {
        // Usually one item is pending: its bytes as they are cached, shared by every stream.
        PARTS[parts++] = wire.single(SINGLES[0] as object);
      } else if (singles > 1) {
        PARTS[parts++] = wire.batch(SINGLES.slice(0, singles) as object[]);
      }
      for (let i = 0; i < singles; i++) SINGLES[i] = undefined;
      singles = 0;
      if (run === undefined) break;
      PARTS[parts++] = wire.run(run);
      last = run[run.length - 1];
      count += run.length;
    }
    if (parts === 0) {
      // Nothing pending: if the session is over, next() says how.
      if (items.isClosed) {
        this.ending = true;
        if (this.drained !== undefined) sink.off("drain", this.drained);
        items.next().then(
          () => this.end(undefined),
          (err: unknown) => this.end(err),
        );
      }
      return;
    }
    this.idleTicks = 0;
    this.keepAliveRun = 0;
    session.wrote(last as object, count);
    const bytes = parts === 1 ? (PARTS[0] as Buffer) : wire.join(PARTS, parts);
    for (let i = 0; i < parts; i++) PARTS[i] = undefined;
    const room = sink.write(bytes);
    if (!room) {
      this.waitForDrain(sink);
    } else if (count >= MAX_BATCH || items.isClosed) {
      // More pending, or the end to report once the rest is written.
      this.schedule();
    }
  }

  /**
   * A keep-alive tick: an idle stream writes the wire's keep-alive every IDLE_TICKS ticks; once it has
   * written as many in a row as the wire allows, it ends with `unavailable` instead.
   */
  tick(): void {
    if (++this.idleTicks < IDLE_TICKS) return;
    this.idleTicks = 0;
    if (this.blocked || this.ending || this.cancelled !== undefined || this.exchange.gone) return;
    if (++this.keepAliveRun > this.wire.keepAliveRunMax) {
      this.cancel(
        new ServiceError("unavailable", "the stream was idle for too long; reconnect to go on"),
      );
      return;
    }
    const sink = this.sink as Writable;
    this.options.onKeepAlive?.();
    if (!sink.write(this.wire.keepAlive as Buffer)) {
      this.waitForDrain(sink);
    }
  }

  /** The session is over (error: how it failed): writes the protocol's end. */
  private end(error: unknown): void {
    const { exchange, wire } = this;
    this.stop();
    try {
      if (isClientGone(this.cancelled) || exchange.gone) {
        // nobody to tell
      } else if (error === undefined) exchange.finish(wire.end());
      else {
        const failure = wire.fail(this.options.funnel(error, this.impl.method.name));
        if (isAbort(failure)) exchange.abort(failure.tail);
        else exchange.finish(failure);
      }
    } finally {
      this.session?.end(error ?? this.cancelled);
    }
  }

  private stop(): void {
    this.keepAlives?.delete(this);
    this.deadline?.clear();
    this.exchange.offClose(this.onClose);
  }
}
