import type { FeedItem } from "../session/feed-sessions.js";

// FeedService.Watch's response (eventservice.feed.v1.WatchResponse) in the protobuf binary
// format, written by hand. A replay encodes one message per event for each stream (replayed
// items are the stream's own, so nothing is shared), and protobuf-es' reflective `toBinary`,
// with the message it needs built first, was half of a replay's CPU. The bytes are exactly those
// of `toBinary(WatchResponseSchema, toFeedResponse(item))` (a test compares them); anything this
// encoder does not cover (a negative number, a fraction of a millisecond) returns undefined and
// is encoded the reflective way.
//
//   WatchResponse { oneof kind { FeedEvent event = 1; Checkpoint checkpoint = 2; } }
//   FeedEvent { operation = 1; resource_type = 2; string resource_id = 3; string cursor = 4;
//               google.protobuf.Timestamp published_at = 5 }
//   Checkpoint { string cursor = 1 }
//   Timestamp { int64 seconds = 1; int32 nanos = 2 }

/** Field keys: field number << 3 | wire type (0 varint, 2 length-delimited). */
const KEY = {
  event: (1 << 3) | 2,
  checkpoint: (2 << 3) | 2,
  operation: (1 << 3) | 0,
  resourceType: (2 << 3) | 0,
  resourceId: (3 << 3) | 2,
  cursor: (4 << 3) | 2,
  publishedAt: (5 << 3) | 2,
  checkpointCursor: (1 << 3) | 2,
  seconds: (1 << 3) | 0,
  nanos: (2 << 3) | 0,
} as const;

/** Bytes of a varint of `n`, a non-negative safe integer. */
function varintSize(n: number): number {
  let size = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

function writeVarint(buf: Buffer, at: number, n: number): number {
  while (n >= 128) {
    buf[at++] = (n % 128) | 128;
    n = Math.floor(n / 128);
  }
  buf[at++] = n;
  return at;
}

/** Writes a varint field (key, value), unless `n` is 0 (proto3 leaves it out); returns where it ends. */
function writeNumber(buf: Buffer, at: number, key: number, n: number): number {
  if (n === 0) return at;
  buf[at++] = key;
  return writeVarint(buf, at, n);
}

/** Writes a string field (key, length, UTF-8 bytes) of `bytes` bytes; returns where it ends. */
function writeString(buf: Buffer, at: number, key: number, text: string, bytes: number): number {
  buf[at++] = key;
  at = writeVarint(buf, at, bytes);
  return at + buf.write(text, at, "utf8");
}

/** A length-delimited field's size: key, length, content. */
function delimitedSize(length: number): number {
  return 1 + varintSize(length) + length;
}

function isVarint(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}

/**
 * The binary WatchResponse of `item`, after `headroom` bytes left for the caller (an envelope's
 * prefix); undefined when only the reflective encoder can write it.
 */
export function encodeFeedResponse(item: FeedItem, headroom = 0): Buffer | undefined {
  const cursorBytes = Buffer.byteLength(item.cursor);
  if (item.kind === "checkpoint") {
    const inner = cursorBytes === 0 ? 0 : delimitedSize(cursorBytes);
    const buf = Buffer.allocUnsafe(headroom + delimitedSize(inner));
    let at = writeVarint(buf, headroom, KEY.checkpoint);
    at = writeVarint(buf, at, inner);
    if (cursorBytes > 0) writeString(buf, at, KEY.checkpointCursor, item.cursor, cursorBytes);
    return buf;
  }
  const { event, acceptedAtMs } = item.event;
  const { operation, resourceType, resourceId } = event;
  if (!isVarint(operation) || !isVarint(resourceType) || !isVarint(acceptedAtMs)) return undefined;
  const seconds = Math.floor(acceptedAtMs / 1000);
  const nanos = (acceptedAtMs - seconds * 1000) * 1_000_000;
  const timestamp =
    (seconds === 0 ? 0 : 1 + varintSize(seconds)) + (nanos === 0 ? 0 : 1 + varintSize(nanos));
  const idBytes = Buffer.byteLength(resourceId);
  const inner =
    (operation === 0 ? 0 : 1 + varintSize(operation)) +
    (resourceType === 0 ? 0 : 1 + varintSize(resourceType)) +
    (idBytes === 0 ? 0 : delimitedSize(idBytes)) +
    (cursorBytes === 0 ? 0 : delimitedSize(cursorBytes)) +
    delimitedSize(timestamp);
  const buf = Buffer.allocUnsafe(headroom + delimitedSize(inner));
  let at = writeVarint(buf, headroom, KEY.event);
  at = writeVarint(buf, at, inner);
  at = writeNumber(buf, at, KEY.operation, operation);
  at = writeNumber(buf, at, KEY.resourceType, resourceType);
  if (idBytes > 0) at = writeString(buf, at, KEY.resourceId, resourceId, idBytes);
  if (cursorBytes > 0) at = writeString(buf, at, KEY.cursor, item.cursor, cursorBytes);
  buf[at++] = KEY.publishedAt;
  at = writeVarint(buf, at, timestamp);
  at = writeNumber(buf, at, KEY.seconds, seconds);
  writeNumber(buf, at, KEY.nanos, nanos);
  return buf;
}
