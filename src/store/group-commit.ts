import type { ResourceEvent } from "../watch/model.js";
import { outcomeUnknown } from "./batch-digest.js";
import type { AppendOnceResult, BatchKey } from "./store.js";

/** One batch of a group commit, with its key and the key's digest (see `batchDigest`). */
export interface GroupBatch {
  readonly events: readonly ResourceEvent[];
  readonly nowMs: number;
  readonly key?: BatchKey & { readonly digest: Buffer };
}

/** What became of one batch of a group: appended, replayed, or refused (a key conflict). */
export type BatchOutcome = AppendOnceResult | Error;

/**
 * Writes one group in one transaction and resolves with one outcome per batch, in order; rejects
 * when nothing of the group was written, or with `unavailable` saying the outcome is unknown
 * when that cannot be told. Calls `uncertain` when the connection died during COMMIT and it
 * starts finding out whether the group is in the log.
 */
export type CommitGroup = (
  batches: readonly GroupBatch[],
  uncertain: () => void,
) => Promise<readonly BatchOutcome[]>;

export interface GroupCommitOptions {
  readonly commit: CommitGroup;
  /**
   * When a batch that finds no group being committed starts one. `at-once`: alone, and the
   * batches that arrive while its transaction runs share the next (PostgreSQL, whose
   * transaction waits on the network). `next-turn`: after the current turn of the event loop,
   * with every batch of that turn (SQLite, whose transaction runs synchronously: no batch could
   * arrive while it runs); the batches of a later turn are a group of their own.
   */
  readonly start: "at-once" | "next-turn";
  /** Events of one group at most; a larger batch is a group of its own. Default: no limit. */
  readonly maxGroupEvents?: number;
  /**
   * Two batches with one key never share a group: the later one waits for the next, whose
   * lookup then finds the key the earlier one recorded (or did not, if it failed). For a
   * `commit` that looks the group's keys up before it writes (PostgreSQL); one that looks each
   * batch's key up in turn inside the transaction (SQLite) sees what the batches before it
   * recorded, and needs no such care.
   */
  readonly distinctKeys?: boolean;
  /**
   * Makes what was committed durable (SQLite with synchronous=full: an fdatasync of its
   * write-ahead log). A group is acknowledged once a sync that began after its COMMIT
   * succeeded; the groups committed while one sync runs share the next, acknowledged in commit
   * order. A failed sync is final: the groups that waited for it or for a later one are refused
   * with its error, and so is every later append (`failure`).
   */
  readonly sync?: () => Promise<void>;
}

interface WaitingAppend {
  readonly batch: GroupBatch;
  readonly signal: AbortSignal | undefined;
  readonly resolve: (result: AppendOnceResult) => void;
  readonly reject: (err: unknown) => void;
}

/** A group whose transaction committed, with what became of each of its batches. */
interface CommittedGroup {
  readonly group: readonly WaitingAppend[];
  readonly outcomes: readonly BatchOutcome[];
}

/**
 * Appends are committed in groups: the batches that wait share the next transaction (see
 * `GroupCommitOptions.start`), so one lock, one commit (and one sync) serve them all. Each
 * caller still gets its own consecutive sequence numbers, in call order. A failed transaction
 * fails every batch of its group (nothing of them is written); a batch refused alone (its key
 * was used for another batch) fails alone, and a replayed batch writes nothing.
 *
 * One group is committed at a time, through `commit`.
 */
export class GroupCommit {
  /** Batches waiting for the transaction that will append them. */
  private waiting: WaitingAppend[] = [];
  /** `scheduled`: a group starts at the next turn; `committing`: a group's transaction runs. */
  private phase: "idle" | "scheduled" | "committing" = "idle";
  /** Groups committed but not yet synced, in commit order; `syncing` while a sync runs. */
  private unsynced: CommittedGroup[] = [];
  private syncing: Promise<void> | undefined;
  private syncFailure: unknown;

  constructor(private readonly options: GroupCommitOptions) {}

  /** The error of a failed sync, once one failed: nothing is accepted any more. */
  get failure(): unknown {
    return this.syncFailure;
  }

  /**
   * Resolves with what became of the batch once the transaction of its group commits (and is
   * synced). While the outcome of a commit whose connection died is being found out, an abort
   * of `signal` rejects at once with `unavailable` (outcome unknown).
   */
  append(batch: GroupBatch, signal?: AbortSignal): Promise<AppendOnceResult> {
    if (this.syncFailure !== undefined) return Promise.reject(this.syncFailure);
    return new Promise((resolve, reject) => {
      this.waiting.push({ batch, signal, resolve, reject });
      this.startGroup();
    });
  }

  /** Resolves once no committed group waits for its sync (each acknowledged or refused). */
  async synced(): Promise<void> {
    while (this.syncing !== undefined) await this.syncing;
  }

  private startGroup(): void {
    if (this.phase !== "idle") return;
    if (this.options.start === "next-turn") {
      this.phase = "scheduled";
      setImmediate(() => void this.commitWaiting());
    } else {
      void this.commitWaiting();
    }
  }

  /**
   * Commits the waiting batches, group after group until none waits (`next-turn`: one group;
   * the batches that arrived meanwhile wait for the next turn).
   */
  private async commitWaiting(): Promise<void> {
    this.phase = "committing";
    try {
      do await this.commitGroup(this.takeGroup());
      while (this.options.start === "at-once" && this.waiting.length > 0);
    } finally {
      this.phase = "idle";
    }
    if (this.waiting.length > 0) this.startGroup();
  }

  private async commitGroup(group: readonly WaitingAppend[]): Promise<void> {
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
      const outcomes = await this.options.commit(
        group.map((w) => w.batch),
        uncertain,
      );
      this.committed({ group, outcomes });
    } catch (err) {
      for (const w of group) w.reject(err);
    } finally {
      for (const stop of stopWaiting) stop();
    }
  }

  /** Acknowledges a committed group, or hands it to the sync that will. */
  private committed(committed: CommittedGroup): void {
    const { sync } = this.options;
    if (sync === undefined) {
      acknowledge(committed);
      return;
    }
    this.unsynced.push(committed);
    this.syncing ??= this.syncCommitted(sync);
  }

  /** Syncs until no committed group waits for it; the groups committed during one share the next. */
  private async syncCommitted(sync: () => Promise<void>): Promise<void> {
    while (this.unsynced.length > 0) {
      const groups = this.unsynced;
      this.unsynced = [];
      try {
        await sync();
      } catch (err) {
        this.syncFailure = err;
        for (const { group } of [...groups, ...this.unsynced]) for (const w of group) w.reject(err);
        this.unsynced = [];
        break;
      }
      for (const committed of groups) acknowledge(committed);
    }
    this.syncing = undefined;
  }

  /**
   * The next group, in arrival order, up to `maxGroupEvents` events (at least one batch); with
   * `distinctKeys`, a batch whose key is already in the group stays waiting, in its place, for
   * a later group.
   */
  private takeGroup(): WaitingAppend[] {
    const max = this.options.maxGroupEvents ?? Number.POSITIVE_INFINITY;
    const distinctKeys = this.options.distinctKeys === true;
    const group: WaitingAppend[] = [];
    const rest: WaitingAppend[] = [];
    const keys = new Set<string>();
    let count = 0;
    let full = false;
    for (const w of this.waiting) {
      const { key, events } = w.batch;
      if (full || (group.length > 0 && count + events.length > max)) {
        full = true;
        rest.push(w);
        continue;
      }
      if (distinctKeys && key !== undefined) {
        const id = `${key.publisher}\n${key.key}`;
        if (keys.has(id)) {
          rest.push(w);
          continue;
        }
        keys.add(id);
      }
      count += events.length;
      group.push(w);
    }
    this.waiting = rest;
    return group;
  }
}

/** Settles each batch of a committed group with its own outcome. */
function acknowledge({ group, outcomes }: CommittedGroup): void {
  group.forEach((w, i) => {
    const outcome = outcomes[i] as BatchOutcome;
    if (outcome instanceof Error) w.reject(outcome);
    else w.resolve(outcome);
  });
}
