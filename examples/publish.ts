/**
 * Publishing exactly once: a key per batch, and every retry of that batch with the same key.
 *
 * A publisher that gets no answer (its deadline passed, the connection broke, a replica went
 * away, the database lost its connection while committing) cannot know whether its batch was
 * written. Sending it again without a key may write it twice; with the key of the first
 * attempt, the server writes it at most once and answers a repeat with the first call's
 * sequences and `replayed: true`, on any replica, across restarts (docs/guarantees.md).
 *
 * Dependency-free (Node's `fetch`, the Connect protocol's JSON), so it reads the same in any
 * language. Run it against a server in dev mode (`npm start`):
 *
 *   node examples/publish.ts
 *
 * Environment: EVENTS_URL (default http://127.0.0.1:8080), EVENTS_TOKEN (default the dev
 * publisher token), EVENTS_ORGANIZATION (default the dev organization).
 */
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";

/** One event as proto3 JSON (`eventservice.ingest.v1.ResourceEvent`). */
export interface EventJson {
  readonly resourceType: string;
  readonly operation: string;
  readonly resourceId: string;
  readonly organizationId: string;
  readonly environmentId?: string;
  readonly creatorId?: string;
}

export interface PublishOptions {
  /** The server, e.g. http://127.0.0.1:8080. */
  readonly baseUrl: string;
  /** A publisher's bearer token. */
  readonly token: string;
  readonly events: readonly EventJson[];
  /** The batch's key; default a new UUID. Keep it for every retry of this batch. */
  readonly key?: string;
  /** How long one attempt may take (sent as its deadline), ms. Default 5000. */
  readonly attemptTimeoutMs?: number;
  /** Attempts in all, the first included. Default 8. */
  readonly maxAttempts?: number;
  /** Backoff: the first retry waits up to this long, doubling up to `maxDelayMs`. Default 100. */
  readonly baseDelayMs?: number;
  readonly maxDelayMs?: number;
  /** Stops retrying (and the attempt under way). */
  readonly signal?: AbortSignal;
}

export interface Published {
  readonly firstSequence: string;
  readonly lastSequence: string;
  /** True when an earlier attempt had written the batch and this one found it. */
  readonly replayed: boolean;
  readonly attempts: number;
  readonly key: string;
}

/** A refusal that a retry cannot change (a bad batch, a bad token, a key used for another batch). */
export class PublishRefused extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(`${code}: ${message}`);
    this.code = code;
  }
}

/**
 * Connect codes worth retrying with the same key: the server was unreachable or busy, or the
 * attempt ended before its answer. `unavailable` also covers "the outcome is unknown".
 */
const RETRYABLE = new Set([
  "unavailable",
  "deadline_exceeded",
  "resource_exhausted",
  "aborted",
  "internal",
  "unknown",
  "canceled",
]);

/** Publishes one batch, retrying with its key and full-jitter exponential backoff. */
export async function publishWithRetry(options: PublishOptions): Promise<Published> {
  const key = options.key ?? randomUUID();
  const attemptTimeoutMs = options.attemptTimeoutMs ?? 5000;
  const maxAttempts = options.maxAttempts ?? 8;
  const baseDelayMs = options.baseDelayMs ?? 100;
  const maxDelayMs = options.maxDelayMs ?? 5000;
  const body = JSON.stringify({ events: options.events, idempotencyKey: key });
  let lastError = "";
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    if (attempt > 1) {
      const ceiling = Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 2));
      await sleep(Math.random() * ceiling, undefined, { signal: options.signal });
    }
    const signals = [AbortSignal.timeout(attemptTimeoutMs + 1000)];
    if (options.signal !== undefined) signals.push(options.signal);
    let res: Response;
    let text: string;
    try {
      res = await fetch(
        `${options.baseUrl.replace(/\/+$/, "")}/eventservice.ingest.v1.IngestService/Publish`,
        {
          method: "POST",
          headers: {
            Authorization: `Bearer ${options.token}`,
            "Content-Type": "application/json",
            "Connect-Protocol-Version": "1",
            "Connect-Timeout-Ms": String(attemptTimeoutMs),
          },
          body,
          signal: AbortSignal.any(signals),
        },
      );
      text = await res.text();
    } catch (err) {
      if (options.signal?.aborted) throw err;
      // No answer: the batch may or may not be written. The same key makes the retry safe.
      lastError = `no answer (${(err as Error).message})`;
      continue;
    }
    if (res.ok) {
      const r = JSON.parse(text) as {
        firstSequence: string;
        lastSequence: string;
        replayed?: boolean;
      };
      return {
        firstSequence: r.firstSequence,
        lastSequence: r.lastSequence,
        replayed: r.replayed ?? false,
        attempts: attempt,
        key,
      };
    }
    let error = { code: "unknown", message: text.trim() };
    try {
      error = { ...error, ...(JSON.parse(text) as object) };
    } catch {}
    if (!RETRYABLE.has(error.code)) throw new PublishRefused(error.code, error.message);
    lastError = `${error.code}: ${error.message}`;
  }
  throw new Error(`gave up after ${maxAttempts} attempts (key ${key}); last: ${lastError}`);
}

if (import.meta.main) {
  const env = process.env;
  const organizationId = env.EVENTS_ORGANIZATION ?? "0d000000-0000-4000-8000-000000000001";
  const result = await publishWithRetry({
    baseUrl: env.EVENTS_URL ?? "http://127.0.0.1:8080",
    token: env.EVENTS_TOKEN ?? "dev-publisher-token",
    events: [
      {
        resourceType: "RESOURCE_TYPE_PROJECT",
        operation: "RESOURCE_OPERATION_CREATE",
        resourceId: randomUUID(),
        organizationId,
      },
    ],
  });
  console.log(JSON.stringify(result));
}
