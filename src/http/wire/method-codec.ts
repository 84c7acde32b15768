import type { DescMessage, DescMethodServerStreaming, MessageShape } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import { ServiceError } from "../../errors.js";
import {
  type Compression,
  createMethodSerializationLookup,
  getJsonOptions,
  type MethodSerializationLookup,
} from "../connect-protocol.js";
import { ENVELOPE_BYTES, envelope, unwrapPayload } from "./envelope.js";
import { batchOf, FrameCache, joinOf, runOf } from "./frames.js";
import type { StreamWire } from "./wire.js";

/**
 * One server-streaming method's messages in binary and JSON, with connect-es' serialization:
 * requests parsed, items encoded, and the enveloped frames of each item made once and shared by
 * every enveloped wire (Connect, gRPC and gRPC-Web frame an item alike). Made once per method
 * per app, with the frame caches.
 */
export class MethodCodec<I extends DescMessage, O extends DescMessage, T extends object> {
  private readonly serialization: MethodSerializationLookup<I, O>;
  private readonly typeName: string;
  private readonly binaryFrames: FrameCache<T>;
  private readonly jsonFrames: FrameCache<T>;

  /**
   * `toBinary`: the method's own binary encoder, tried before the reflective one; `keep`: which
   * items' bytes are worth remembering (StreamMethod.shared; default: all).
   */
  constructor(
    method: DescMethodServerStreaming<I, O>,
    private readonly toResponse: (item: T) => MessageShape<O>,
    toBinary?: (item: T, headroom: number) => Buffer | undefined,
    readonly keep?: (item: T) => boolean,
  ) {
    const limits = { readMaxBytes: 0xffffffff, writeMaxBytes: 0xffffffff };
    this.serialization = createMethodSerializationLookup(
      method,
      undefined,
      getJsonOptions(undefined),
      limits,
    );
    this.typeName = method.input.name;
    const framed = (json: boolean) => {
      const bytesOf = this.encoder(json);
      return new FrameCache<T>((item) => envelope(0, bytesOf(item)), keep);
    };
    const binary = framed(false);
    // The method's own encoder leaves room for the envelope: no copy of the message.
    this.binaryFrames =
      toBinary === undefined
        ? binary
        : new FrameCache<T>((item) => {
            const frame = toBinary(item, ENVELOPE_BYTES);
            if (frame === undefined) return binary.get(item);
            frame[0] = 0;
            frame.writeUInt32BE(frame.length - ENVELOPE_BYTES, 1);
            return frame;
          }, keep);
    this.jsonFrames = framed(true);
  }

  /** The request from its bytes, in our words when the bytes are not the message. */
  parse(json: boolean, bytes: Uint8Array): MessageShape<I> {
    try {
      return this.serialization.getI(!json).parse(bytes);
    } catch (err) {
      const detail = err instanceof ConnectError ? err.rawMessage : String(err);
      throw new ServiceError(
        "invalid_argument",
        `request is not a valid ${this.typeName}${json ? " in JSON" : ""}: ${detail}`,
      );
    }
  }

  /** An item's response message, serialized by protobuf-es (binary frames try `toBinary` first). */
  encoder(json: boolean): (item: T) => Uint8Array {
    const serializer = this.serialization.getO(!json);
    const toResponse = this.toResponse;
    return (item) => serializer.serialize(toResponse(item));
  }

  /**
   * What every enveloped wire of one serialization shares: one envelope per item (shared
   * frames), batches joined as they are, no keep-alive, and the request read from its one
   * envelope.
   */
  enveloped(
    json: boolean,
  ): Pick<
    StreamWire<I, T>,
    "single" | "batch" | "run" | "join" | "keepAlive" | "keepAliveRunMax" | "decode"
  > {
    const frames = json ? this.jsonFrames : this.binaryFrames;
    const batch = batchOf(
      (item: T) => frames.get(item),
      (parts, length) => Buffer.concat(parts, length),
    );
    return {
      single: (item: T) => frames.get(item),
      batch,
      run: runOf(batch),
      join: joinOf(),
      keepAlive: undefined,
      keepAliveRunMax: 0,
      decode: async (body: Buffer, compression: Compression | null, maxBytes: number) =>
        this.parse(json, await unwrapPayload(body, compression, maxBytes)),
    };
  }
}
