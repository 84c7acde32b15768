import { ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { afterEach, expect } from "vitest";
import { FeedService, type WatchResponse } from "../../src/gen/eventservice/feed/v1/feed_pb.js";
import { bearer } from "./clients.js";

/** A feed message as the tests compare it. */
export type Seen =
  | { kind: "checkpoint"; cursor: string }
  | { kind: "event"; id: string; cursor: string; op: number };
export type SeenFeedEvent = Extract<Seen, { kind: "event" }>;

export function seenOf(r: WatchResponse): Seen {
  if (r.kind.case === "event") {
    return {
      kind: "event",
      id: r.kind.value.resourceId,
      cursor: r.kind.value.cursor,
      op: r.kind.value.operation,
    };
  }
  if (r.kind.case === "checkpoint") return { kind: "checkpoint", cursor: r.kind.value.cursor };
  throw new Error("empty WatchResponse");
}

export interface FeedOptions {
  /** Resume after this cursor; absent or "": start at the head. */
  readonly after?: string;
  /** Watch one environment; absent: the caller's organization. */
  readonly environmentId?: string;
  /** Only these resource types; absent: every type. */
  readonly types?: readonly number[];
  /** How long each `until…` waits before it fails, in ms (10 s by default). */
  readonly timeoutMs?: number;
}

/**
 * A feed (FeedService.Watch through connect-node) with what it received so far and ways to wait
 * for more. Every wait fails at once with the stream's error if it ends with one first, rather
 * than at its timeout. `close()` disconnects; nothing else does.
 */
export function openFeed(transport: Transport, token: string, options: FeedOptions = {}) {
  const timeout = options.timeoutMs ?? 10_000;
  const abort = new AbortController();
  const client = createClient(FeedService, transport);
  const seen: Seen[] = [];
  let failure: ConnectError | undefined;
  let ended = false;
  const done = (async () => {
    try {
      for await (const r of client.watch(
        {
          after: options.after ?? "",
          ...(options.environmentId !== undefined && {
            scope: { case: "environmentId", value: options.environmentId },
          }),
          resourceTypeFilters: (options.types ?? []).map((resourceType) => ({ resourceType })),
        },
        { headers: bearer(token), signal: abort.signal },
      )) {
        seen.push(seenOf(r));
      }
      ended = true;
    } catch (err) {
      failure = ConnectError.from(err);
    }
  })();
  const events = () => seen.filter((s): s is SeenFeedEvent => s.kind === "event");
  /**
   * Settles as `waiting` does, or rejects with the stream's error as soon as it fails (a poll
   * would only report it at its timeout). Once the test has closed the feed its end is no failure.
   */
  const orFailure = (waiting: Promise<void>): Promise<void> =>
    Promise.race([
      waiting,
      done.then(() => {
        if (failure !== undefined && !abort.signal.aborted) throw failure;
        return waiting;
      }),
    ]);
  return {
    seen,
    events,
    get failure() {
      return failure;
    },
    /** Whether the server ended the stream without an error. */
    get ended() {
      return ended;
    },
    /** Resolves once the stream is over (never rejects; see `failure`). */
    done,
    /** Resolves once the first message (always a checkpoint) has arrived. */
    started: () => orFailure(expect.poll(() => seen.length, { timeout }).toBeGreaterThan(0)),
    /** Resolves once at least `n` events have arrived. */
    untilEvents: (n: number) =>
      orFailure(expect.poll(() => events().length, { timeout }).toBeGreaterThanOrEqual(n)),
    /** Resolves once exactly `n` events have arrived (one more and it never does). */
    untilExactly: (n: number) => orFailure(expect.poll(() => events().length, { timeout }).toBe(n)),
    /** Resolves once the event of resource `id` has arrived. */
    until: (id: string) =>
      orFailure(expect.poll(() => events().some((e) => e.id === id), { timeout }).toBe(true)),
    /** Disconnects, and resolves once the client has let go of the stream. */
    async close() {
      abort.abort();
      await done;
    },
  };
}
export type Feed = ReturnType<typeof openFeed>;

/**
 * Feeds that are closed after each test (this registers an `afterEach` in the calling file);
 * `defaults` apply to every feed it opens.
 */
export function trackFeeds(defaults: Pick<FeedOptions, "timeoutMs"> = {}) {
  const open: Feed[] = [];
  const closeAll = async () => {
    await Promise.all(open.splice(0).map((f) => f.close()));
  };
  afterEach(closeAll);
  return {
    open(transport: Transport, token: string, options: FeedOptions = {}): Feed {
      const feed = openFeed(transport, token, { ...defaults, ...options });
      open.push(feed);
      return feed;
    },
    /** Closes every feed still open now. */
    closeAll,
  };
}
