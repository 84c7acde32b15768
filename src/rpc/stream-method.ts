import type { DescMessage, DescMethodServerStreaming, MessageShape } from "@bufbuild/protobuf";
import type { StreamSession } from "../session/stream-session.js";
import type { Principal } from "../watch/model.js";

/** What the edge knows of a call when it opens the stream. */
export interface StreamCall<I extends DescMessage> {
  /** The caller; undefined only for methods that are `public`. */
  readonly principal: Principal | undefined;
  readonly request: MessageShape<I>;
  /** The wire form, for logs and metrics: jsonl, connect, grpc, grpcweb. */
  readonly protocol: string;
}

/**
 * The caller of a method that is not `public`: the edge authenticates every such call before it
 * opens the stream, so the principal is there.
 */
export function callerOf<I extends DescMessage>(call: StreamCall<I>): Principal {
  return call.principal as Principal;
}

/**
 * A server-streaming RPC as the streaming edge serves it, on every protocol of the port: the
 * method's descriptor, how to open a stream for a call, and how an item becomes a response
 * message. Items are shared objects (one per event, say): the edge encodes each item once per
 * wire form and writes the same bytes to every stream, so `toResponse` must depend on the item
 * alone.
 */
export interface StreamMethod<I extends DescMessage, O extends DescMessage, T extends object> {
  readonly method: DescMethodServerStreaming<I, O>;
  /** Calls need no credential (health checks). Default: they need one. */
  readonly public?: boolean;
  /** Opens the stream, or throws (ServiceError) to refuse the call before it starts. */
  open(call: StreamCall<I>): Promise<StreamSession<T>>;
  toResponse(item: T): MessageShape<O>;
  /**
   * A faster way to the binary response: exactly the bytes of protobuf-es' `toBinary` of
   * `toResponse(item)`, written after `headroom` bytes that the caller fills (an envelope's
   * prefix), or undefined to leave this item to protobuf-es. For methods whose items are not
   * shared (each encoded for one stream), where the reflective encoder is the cost.
   */
  toBinary?(item: T, headroom: number): Buffer | undefined;
  /**
   * Whether other streams may write this very item, so that its bytes are worth keeping once
   * made. Default: every item. An item only one stream writes (a replayed event, a checkpoint)
   * is encoded without being remembered.
   */
  shared?(item: T): boolean;
}

/** A StreamMethod of any messages, as the edge holds them side by side. */
// biome-ignore lint/suspicious/noExplicitAny: the edge is generic over every method it serves.
export type AnyStreamMethod = StreamMethod<any, any, any>;
