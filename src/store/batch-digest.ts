import { createHash } from "node:crypto";
import { ServiceError } from "../errors.js";
import type { ResourceEvent } from "../watch/model.js";
import type { AppendOnceResult } from "./store.js";

/**
 * The digest of a validated batch, recorded with its idempotency key: SHA-256 over one canonical
 * form of every field of every event, in batch order (absent optional fields as their defaults,
 * so that a retry that omits what the first call left at its default is the same batch).
 */
export function batchDigest(events: readonly ResourceEvent[]): Buffer {
  const canonical = events.map((e) => [
    e.resourceType,
    e.operation,
    e.resourceId,
    e.organizationId,
    e.environmentId,
    e.creatorId,
    e.actorId ?? "",
    e.actorId ? (e.actorPrincipal ?? 0) : 0,
    e.action ?? "",
    e.occurredAtMs ?? null,
  ]);
  return createHash("sha256").update(JSON.stringify(canonical)).digest();
}

/**
 * The answer to a batch whose key its publisher recorded before (CONTRACT §13): the same batch
 * (same digest) is replayed with the first append's sequences, another is `already_exists`.
 */
export function recordedKeyOutcome(
  key: { readonly key: string; readonly digest: Buffer },
  recorded: {
    readonly digest: Uint8Array;
    readonly firstSequence: number;
    readonly lastSequence: number;
  },
): AppendOnceResult | ServiceError {
  return key.digest.equals(recorded.digest)
    ? {
        replayed: true,
        firstSequence: recorded.firstSequence,
        lastSequence: recorded.lastSequence,
      }
    : keyConflict(key.key);
}

/** The answer to a known key with another batch (CONTRACT §13). */
function keyConflict(key: string): ServiceError {
  return new ServiceError(
    "already_exists",
    `idempotency_key ${JSON.stringify(key)} was used before by this publisher for a different batch`,
  );
}

/** The answer when a commit's connection died and whether it went through cannot be told in time. */
export function outcomeUnknown(cause?: unknown): ServiceError {
  return new ServiceError(
    "unavailable",
    "database connection lost while committing; the outcome is unknown: the batch may or may not be in the log. A retry with the same idempotency_key is safe",
    { cause },
  );
}
