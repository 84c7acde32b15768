import { ServiceError } from "../errors.js";
import { isUuid } from "../watch/uuid.js";

/** A position in one event log: everything up to `sequence` is behind the reader. */
export interface FeedPosition {
  /** The log's id, a UUID. */
  readonly logId: string;
  readonly sequence: number;
}

const VERSION = 1;
/** Version byte, the log id's 16 bytes, the sequence as 8 bytes big-endian. */
const BYTES = 1 + 16 + 8;

/**
 * A cursor as clients see it: an opaque, 34-character base64url string of the log's id and a
 * sequence, valid on every replica of that log and across restarts. Compact on purpose: every
 * feed event carries one.
 */
export function encodeCursor(position: FeedPosition): string {
  const bytes = Buffer.alloc(BYTES);
  bytes[0] = VERSION;
  bytes.write(position.logId.replaceAll("-", ""), 1, 16, "hex");
  bytes.writeBigUInt64BE(BigInt(position.sequence), 17);
  return bytes.toString("base64url");
}

/**
 * `encodeCursor` for one log, made for the hot path (every event of a feed carries a cursor,
 * and a replay makes one per event for each stream): the first 15 bytes (the version and most of
 * the log's id) are the same in every cursor of the log, so their 20 base64url characters are
 * made once; each cursor encodes only the last 10 bytes. The same strings as `encodeCursor`.
 */
export function cursorEncoder(logId: string): (sequence: number) => string {
  const whole = Buffer.from(encodeCursor({ logId, sequence: 0 }), "base64url");
  const prefix = whole.subarray(0, 15).toString("base64url");
  const tail = Buffer.alloc(BYTES - 15);
  whole.copy(tail, 0, 15, 17);
  return (sequence) => {
    if (!Number.isSafeInteger(sequence) || sequence < 0) return encodeCursor({ logId, sequence });
    tail.writeUInt32BE(Math.floor(sequence / 0x1_0000_0000), 2);
    tail.writeUInt32BE(sequence % 0x1_0000_0000, 6);
    return prefix + tail.toString("base64url");
  };
}

function notACursor(): ServiceError {
  return new ServiceError("invalid_argument", "after: not a cursor");
}

/** The position a cursor names; throws `invalid_argument` (`after: not a cursor`) otherwise. */
export function decodeCursor(cursor: string): FeedPosition {
  if (!/^[A-Za-z0-9_-]{34}$/.test(cursor)) throw notACursor();
  const bytes = Buffer.from(cursor, "base64url");
  if (bytes.length !== BYTES || bytes[0] !== VERSION) throw notACursor();
  const hex = bytes.toString("hex", 1, 17);
  const logId = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  const sequence = bytes.readBigUInt64BE(17);
  if (!isUuid(logId) || sequence > BigInt(Number.MAX_SAFE_INTEGER)) throw notACursor();
  return { logId, sequence: Number(sequence) };
}
