import type { ResourceEvent } from "../watch/model.js";
import type { StoredEvent } from "./store.js";

/** Events appended in one transaction at most (a group of waiting batches; see `GroupCommit`). */
const MAX_GROUP_EVENTS = 5000;

interface WaitingAppend {
  readonly events: readonly ResourceEvent[];
  readonly nowMs: number;
  readonly resolve: (stored: StoredEvent[]) => void;
  readonly reject: (err: unknown) => void;
}

/**
 * Writes one group in one transaction: `events` numbered consecutively in the order given,
 * `nowsMs[i]` the `nowMs` of the batch `events[i]` came in. Resolves with one StoredEvent per
 * event, in that order; rejects when nothing was written.
 */
export type CommitGroup = (
  events: readonly ResourceEvent[],
  nowsMs: readonly number[],
) => Promise<StoredEvent[]>;

/**
 * Appends are committed in groups: while one transaction holds the counter's lock, the
 * batches that arrive wait here and then share the next transaction (up to
 * MAX_GROUP_EVENTS events), so one lock, four round trips and one commit serve them all.
 * Each caller still gets its own consecutive sequence numbers, in call order; a failed
 * transaction fails every batch of its group (nothing of them is written).
 *
 * One group is committed at a time, through `commit`.
 */
export class GroupCommit {
  /** Batches waiting for the transaction that will append them. */
  private waiting: WaitingAppend[] = [];
  private appending = false;

  constructor(private readonly commit: CommitGroup) {}

  /** Resolves with the batch's events as stored, once the transaction of its group commits. */
  append(events: readonly ResourceEvent[], nowMs: number): Promise<StoredEvent[]> {
    if (events.length === 0) return Promise.resolve([]);
    return new Promise((resolve, reject) => {
      this.waiting.push({ events, nowMs, resolve, reject });
      if (!this.appending) void this.appendWaiting();
    });
  }

  /** Commits the waiting batches, group after group, until none waits. */
  private async appendWaiting(): Promise<void> {
    this.appending = true;
    try {
      while (this.waiting.length > 0) {
        let count = 0;
        let take = 0;
        for (const w of this.waiting) {
          if (take > 0 && count + w.events.length > MAX_GROUP_EVENTS) break;
          count += w.events.length;
          take++;
        }
        const group = this.waiting.splice(0, take);
        try {
          const stored = await this.appendGroup(group);
          let at = 0;
          for (const w of group) {
            w.resolve(stored.slice(at, at + w.events.length));
            at += w.events.length;
          }
        } catch (err) {
          for (const w of group) w.reject(err);
        }
      }
    } finally {
      this.appending = false;
    }
  }

  /** One transaction for the batches of `group`, numbered consecutively in group order. */
  private appendGroup(group: readonly WaitingAppend[]): Promise<StoredEvent[]> {
    const events: ResourceEvent[] = [];
    const nows: number[] = [];
    for (const w of group) {
      for (const e of w.events) {
        events.push(e);
        nows.push(w.nowMs);
      }
    }
    return this.commit(events, nows);
  }
}
