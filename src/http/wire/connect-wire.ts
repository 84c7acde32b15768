import type { DescMessage } from "@bufbuild/protobuf";
import type { ConnectError } from "@connectrpc/connect";
import { connectProtocol } from "../connect-protocol.js";
import { envelope } from "./envelope.js";
import { createEnvelopedWire } from "./enveloped-wire.js";
import type { MethodCodec } from "./method-codec.js";
import { connectTimeoutMs } from "./timeouts.js";
import type { StreamWire } from "./wire.js";

/** The Connect end-stream message: its JSON (an error or nothing) in an end-stream envelope. */
function endStream(err: ConnectError | undefined): Buffer {
  const json = connectProtocol.endStreamToJson(new Headers(), err, {});
  return envelope(connectProtocol.endStreamFlag, Buffer.from(JSON.stringify(json), "utf8"));
}

/**
 * The Connect streaming wire of a method, in binary (`application/connect+proto`) or JSON
 * (`application/connect+json`): enveloped messages, then the end-stream message.
 */
export function createConnectWire<I extends DescMessage, O extends DescMessage, T extends object>(
  codec: MethodCodec<I, O, T>,
  json: boolean,
): StreamWire<I, T> {
  return createEnvelopedWire(codec, json, {
    name: "connect",
    contentType: json
      ? connectProtocol.contentTypeStreamJson
      : connectProtocol.contentTypeStreamProto,
    parseContentType(contentType) {
      // Only the streaming content types: unary ones are not this wire's.
      const parsed = connectProtocol.parseContentType(contentType);
      return parsed?.stream ? parsed : undefined;
    },
    encodingHeader: connectProtocol.headerStreamEncoding,
    acceptEncodingHeader: connectProtocol.headerStreamAcceptEncoding,
    timeoutMs: connectTimeoutMs,
    trailers: false,
    end: (err) => ({ body: endStream(err) }),
    // Connect streaming reports every error, even the first thing, in the end-stream message.
    refuse: (head, err) => ({ ...head, body: endStream(err) }),
  });
}
