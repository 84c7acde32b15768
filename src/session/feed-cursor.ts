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
