import { createHmac, timingSafeEqual } from "node:crypto";
import { ServiceError } from "../errors.js";

/** Where a page ended: the last entry given, in (createdAtMs, id) order. */
export interface PageCursor {
  /** ms since the epoch: any integer an int64 holds (a stored row may hold any). */
  readonly createdAtMs: number;
  /** The entry's id (a UUID; at most 255 bytes of UTF-8 in any case). */
  readonly id: string;
  /** The order the page was read in; newest first when true. */
  readonly descending: boolean;
}

// Layout (all big-endian): version (1) | flags (1, bit 0: descending) | createdAtMs (int64, 8)
// | id length (1) | id (UTF-8) | HMAC-SHA256 (32). base64url without padding.
//
// The query digest is not carried: the MAC covers it, so a token made for another
// organization, filter or order fails verification exactly as a tampered one does, and the
// token stays short. The page size is not bound: a client may change it between pages.
const VERSION = 1;
const FLAG_DESCENDING = 1;
const HEADER_BYTES = 11;
const MAC_BYTES = 32;
const MAX_ID_BYTES = 255;
const MAX_TOKEN_CHARS = Math.ceil(((HEADER_BYTES + MAX_ID_BYTES + MAC_BYTES) * 4) / 3);
// Separates these MACs from anything else the store's secret may ever sign.
const LABEL = "gitpod.v1.EventService/ListAuditLogs page token\0";
const BASE64URL = /^[A-Za-z0-9_-]+$/;

/**
 * An integer within int64, not necessarily a safe one: a page ends at whatever time its last row
 * holds, and a row's time comes from the database (rows older than the bounds on occurred_at may
 * hold anything the column takes), so a token must carry it rather than fail the page.
 */
function isInt64(n: number): boolean {
  return Number.isInteger(n) && n >= -(2 ** 63) && n < 2 ** 63;
}

function mac(secret: Uint8Array, body: Uint8Array, digest: string): Buffer {
  return createHmac("sha256", secret).update(LABEL).update(body).update(digest, "utf8").digest();
}

/**
 * Makes an opaque, tamper-evident token for the page after `cursor`, valid only with the same
 * `secret` (the store's, shared by replicas) and the same `digest` (what identifies the query:
 * organization, filter, order). Throws on a cursor that cannot be a page boundary (a bug).
 */
export function encodePageToken(secret: Uint8Array, cursor: PageCursor, digest: string): string {
  const id = Buffer.from(cursor.id, "utf8");
  if (!isInt64(cursor.createdAtMs) || id.length === 0 || id.length > MAX_ID_BYTES) {
    throw new Error(`cannot make a page token for cursor ${JSON.stringify(cursor)}`);
  }
  const body = Buffer.alloc(HEADER_BYTES + id.length);
  body.writeUInt8(VERSION, 0);
  body.writeUInt8(cursor.descending ? FLAG_DESCENDING : 0, 1);
  body.writeBigInt64BE(BigInt(cursor.createdAtMs), 2);
  body.writeUInt8(id.length, 10);
  id.copy(body, HEADER_BYTES);
  return Buffer.concat([body, mac(secret, body, digest)]).toString("base64url");
}

const invalidToken = (): ServiceError =>
  new ServiceError("invalid_argument", "pagination.token: invalid page token");

/**
 * Reads a token made by `encodePageToken` with the same `secret` and `digest`. Anything else
 * (malformed, altered in any bit, signed with another secret, made for another query) throws
 * ServiceError `invalid_argument` "pagination.token: invalid page token", without saying which.
 */
export function decodePageToken(secret: Uint8Array, token: string, digest: string): PageCursor {
  if (token.length > MAX_TOKEN_CHARS || !BASE64URL.test(token)) throw invalidToken();
  const bytes = Buffer.from(token, "base64url");
  // base64url has spare bits in its last character; only the canonical spelling is valid, so
  // that every change to the text is a change to the bytes.
  if (bytes.toString("base64url") !== token) throw invalidToken();
  if (bytes.length < HEADER_BYTES + 1 + MAC_BYTES) throw invalidToken();
  const body = bytes.subarray(0, bytes.length - MAC_BYTES);
  const tag = bytes.subarray(bytes.length - MAC_BYTES);
  if (!timingSafeEqual(tag, mac(secret, body, digest))) throw invalidToken();
  // Authentic from here on; the checks below guard against our own older or broken tokens.
  const flags = body.readUInt8(1);
  const createdAtMs = Number(body.readBigInt64BE(2));
  const idLength = body.readUInt8(10);
  if (
    body.readUInt8(0) !== VERSION ||
    (flags & ~FLAG_DESCENDING) !== 0 ||
    !isInt64(createdAtMs) ||
    idLength === 0 ||
    body.length !== HEADER_BYTES + idLength
  ) {
    throw invalidToken();
  }
  return {
    createdAtMs,
    id: body.subarray(HEADER_BYTES).toString("utf8"),
    descending: (flags & FLAG_DESCENDING) !== 0,
  };
}
