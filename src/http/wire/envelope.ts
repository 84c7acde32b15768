import { ServiceError } from "../../errors.js";
import { type Compression, compressedFlag, encodeEnvelope } from "../connect-protocol.js";

// The five-byte envelope that Connect streaming, gRPC and gRPC-Web put around each message
// (flags, then the length, big-endian), built and read with connect-es' pieces.

function invalid(message: string): ServiceError {
  return new ServiceError("invalid_argument", message);
}

/** An envelope's prefix: the flags byte, then the payload's length (4 bytes, big-endian). */
export const ENVELOPE_BYTES = 5;

/** One envelope of `payload` with `flags`, as a Buffer over the same bytes. */
export function envelope(flags: number, payload: Uint8Array): Buffer {
  const bytes = encodeEnvelope(flags, payload);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The single message of an enveloped request body (Connect, gRPC, gRPC-Web). */
export function unwrap(body: Buffer): { flags: number; payload: Buffer } {
  if (body.length < 5) throw invalid("protocol error: incomplete envelope");
  const flags = body[0] as number;
  const length = body.readUInt32BE(1);
  if (body.length !== 5 + length) {
    throw invalid(
      body.length < 5 + length
        ? "protocol error: incomplete envelope"
        : "protocol error: expected exactly one request message",
    );
  }
  if ((flags & ~compressedFlag) !== 0) throw invalid("protocol error: unexpected envelope flags");
  return { flags, payload: body.subarray(5) };
}

/** The payload of an enveloped request body, decompressed when its flags say so. */
export async function unwrapPayload(
  body: Buffer,
  compression: Compression | null,
  maxBytes: number,
): Promise<Uint8Array> {
  const { flags, payload } = unwrap(body);
  if ((flags & compressedFlag) === 0) return payload;
  if (compression === null) {
    throw invalid("protocol error: compressed message without an encoding");
  }
  return compression.decompress(payload, maxBytes);
}
