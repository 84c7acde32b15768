import { outcomeUnknown } from "./batch-digest.js";
import type { BatchOutcome, GroupBatch } from "./postgres-append.js";
import type { AppendOnceResult } from "./store.js";

/** Events appended in one transaction at most (a group of waiting batches; see `GroupCommit`). */
const MAX_GROUP_EVENTS = 5000;

interface WaitingAppend {
  readonly batch: GroupBatch;
  readonly signal: AbortSignal | undefined;
  readonly resolve: (result: AppendOnceResult) => void;
  readonly reject: (err: unknown) => void;
}

/**
 * Writes one group in one transaction (see `appendGroup`) and resolves with one outcome per
 * batch, in order; rejects when nothing of the group was written, or with `unavailable` saying
 * the outcome is unknown when that cannot be told. Calls `uncertain` when the connection died
 * during COMMIT and it starts finding out whether the group is in the log.
 */
export type CommitGroup = (
  batches: readonly GroupBatch[],
  uncertain: () => void,
) => Promise<readonly BatchOutcome[]>;

/**
 * Appends are committed in groups: while one transaction holds the counter's lock, the
 * batches that arrive wait here and then share the next transaction (up to
 * MAX_GROUP_EVENTS events), so one lock, four round trips and one commit serve them all.
 * Each caller still gets its own consecutive sequence numbers, in call order. A failed
 * transaction fails every batch of its group (nothing of them is written); a batch refused
 * alone (its key was used for another batch) fails alone, and a replayed batch writes nothing.
 *
 * Two batches with one key never share a group: the later one waits for the next, whose
 * lookup then finds the key the earlier one recorded (or did not, if it failed).
 *
 * One group is committed at a time, through `commit`.
 */
export class GroupCommit {
  /** Batches waiting for the transaction that will append them. */
  private waiting: WaitingAppend[] = [];
  private appending = false;

  constructor(private readonly commit: CommitGroup) {}

  /**
   * Resolves with what became of the batch once the transaction of its group commits. While
   * the outcome of a commit whose connection died is being found out, an abort of `signal`
   * rejects at once with `unavailable` (outcome unknown).
   */
  append(batch: GroupBatch, signal?: AbortSignal): Promise<AppendOnceResult> {
    if (batch.events.length === 0) return Promise.resolve({ replayed: false, events: [] });
    return new Promise((resolve, reject) => {
      this.waiting.push({ batch, signal, resolve, reject });
      if (!this.appending) void this.appendWaiting();
    });
  }

  /** Commits the waiting batches, group after group, until none waits. */
  private async appendWaiting(): Promise<void> {
    this.appending = true;
    try {
      while (this.waiting.length > 0) {
        const group = this.takeGroup();
        const stopWaiting: (() => void)[] = [];
        const uncertain = () => {
          for (const w of group) {
            const { signal } = w;
            if (signal === undefined) continue;
            const giveUp = () => w.reject(outcomeUnknown(signal.reason));
            if (signal.aborted) giveUp();
            else {
              signal.addEventListener("abort", giveUp, { once: true });
              stopWaiting.push(() => signal.removeEventListener("abort", giveUp));
            }
          }
        };
        try {
          const outcomes = await this.commit(
            group.map((w) => w.batch),
            uncertain,
          );
          group.forEach((w, i) => {
            const outcome = outcomes[i] as BatchOutcome;
            if (outcome instanceof Error) w.reject(outcome);
            else w.resolve(outcome);
          });
        } catch (err) {
          for (const w of group) w.reject(err);
        } finally {
          for (const stop of stopWaiting) stop();
        }
      }
    } finally {
      this.appending = false;
    }
  }

  /**
   * The next group, in arrival order, up to MAX_GROUP_EVENTS events (at least one batch); a
   * batch whose key is already in the group stays waiting, in its place, for a later group.
   */
  private takeGroup(): WaitingAppend[] {
    const group: WaitingAppend[] = [];
    const rest: WaitingAppend[] = [];
    const keys = new Set<string>();
    let count = 0;
    let full = false;
    for (const w of this.waiting) {
      const { key, events } = w.batch;
      const id = key === undefined ? undefined : `${key.publisher}\n${key.key}`;
      if (full || (group.length > 0 && count + events.length > MAX_GROUP_EVENTS)) {
        full = true;
        rest.push(w);
        continue;
      }
      if (id !== undefined && keys.has(id)) {
        rest.push(w);
        continue;
      }
      if (id !== undefined) keys.add(id);
      count += events.length;
      group.push(w);
    }
    this.waiting = rest;
    return group;
  }
}
