import { ServiceError } from "../errors.js";

/** A position in one event log: everything up to `sequence` is behind the reader. */
export interface FeedPosition {
  readonly logId: string;
  readonly sequence: number;
}

const PREFIX = "c1";

/**
 * A cursor as clients see it: an opaque base64url string of the log's id and a sequence, valid
 * on every replica of that log and across restarts.
 */
export function encodeCursor(position: FeedPosition): string {
  return Buffer.from(`${PREFIX}:${position.logId}:${position.sequence}`, "utf8").toString(
    "base64url",
  );
}

/** The position a cursor names; throws `invalid_argument` (`after: not a cursor`) otherwise. */
export function decodeCursor(cursor: string): FeedPosition {
  const text = /^[A-Za-z0-9_-]{1,200}$/.test(cursor)
    ? Buffer.from(cursor, "base64url").toString("utf8")
    : "";
  const m = /^c1:([^:]{1,100}):(0|[1-9]\d{0,15})$/.exec(text);
  const sequence = Number(m?.[2]);
  if (m === null || !Number.isSafeInteger(sequence)) {
    throw new ServiceError("invalid_argument", "after: not a cursor");
  }
  return { logId: m[1] as string, sequence };
}
