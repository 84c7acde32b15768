import type { IncomingHttpHeaders } from "node:http";
import type { DescMessage } from "@bufbuild/protobuf";
import type { ConnectError } from "@connectrpc/connect";
import { connectProtocol } from "../connect-protocol.js";
import { envelope } from "./envelope.js";
import type { MethodCodec } from "./method-codec.js";
import { connectTimeoutMs } from "./timeouts.js";
import { lower, type StreamWire, streamHead } from "./wire.js";

const ENCODING = lower(connectProtocol.headerStreamEncoding);
const ACCEPT_ENCODING = lower(connectProtocol.headerStreamAcceptEncoding);

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
  const head = streamHead(
    json ? connectProtocol.contentTypeStreamJson : connectProtocol.contentTypeStreamProto,
    ACCEPT_ENCODING,
  );
  return {
    name: "connect",
    serves(headers: IncomingHttpHeaders) {
      const parsed = connectProtocol.parseContentType(headers["content-type"] ?? null);
      return parsed?.stream === true && parsed.binary !== json;
    },
    encodingHeader: ENCODING,
    acceptEncodingHeader: ACCEPT_ENCODING,
    ...codec.enveloped(json),
    timeoutMs: connectTimeoutMs,
    head,
    trailers: false,
    end: () => ({ body: endStream(undefined) }),
    // Connect streaming reports every error, even the first thing, in the end-stream message.
    refuse: (err) => ({ ...head, body: endStream(err) }),
    fail: (err) => ({ body: endStream(err) }),
  };
}
