/**
 * The robustness suite's history and its checker: what every client did and saw, and the final
 * log, checked against docs/guarantees.md. Every event the suite publishes has a resource id of
 * its own, so an id names one event of the log.
 */

/** One published event as the suite made it (what visibility depends on). */
export interface PublishedEvent {
  readonly id: string;
  readonly organizationId: string;
  readonly resourceType: number;
  readonly creatorId: string;
}

/** How one attempt of a publish ended. */
export type AttemptOutcome =
  | {
      readonly kind: "acked";
      readonly first: number;
      readonly last: number;
      readonly replayed: boolean;
    }
  /** An answer that says the batch was not written. */
  | { readonly kind: "refused"; readonly code: string; readonly message: string }
  /** No answer, or one that leaves the outcome open. */
  | { readonly kind: "unknown"; readonly code: string; readonly message: string };

export interface PublishRecord {
  readonly publisher: string;
  readonly key: string | undefined;
  readonly events: readonly PublishedEvent[];
  readonly attempts: AttemptOutcome[];
}

/** How a stream ended: with an error, cleanly (only right after an environment's deletion), or closed by the suite. */
export type StreamEnd = "error" | "clean" | "closed" | "open";

export interface StreamRecord {
  readonly watcher: string;
  /** What it may see: an admin sees its organization, a member less (CONTRACT §6). */
  readonly principal: {
    readonly subject: string;
    readonly organization: string;
    readonly role: "admin" | "member";
  };
  readonly ids: string[];
  end: StreamEnd;
  detail: string;
  /** When it ended, s since the run started. */
  endedAtS?: number;
  /**
   * Set by readers that drop transport errors (as the Go SDK does): the "clean" end was a
   * transport failure without the error tail the server writes before it ends a stream.
   */
  transportFailed?: boolean;
}

export interface FeedRecord {
  readonly consumer: string;
  readonly principal: StreamRecord["principal"];
  /** Every event received, across all its connections (each resumed from the last cursor). */
  readonly ids: string[];
  readonly connections: StreamRecord[];
}

export interface LoggedEvent {
  readonly sequence: number;
  readonly id: string;
  readonly organizationId: string;
  readonly resourceType: number;
  readonly creatorId: string;
}

export interface History {
  readonly publishes: readonly PublishRecord[];
  readonly streams: readonly StreamRecord[];
  readonly feeds: readonly FeedRecord[];
  /** The final log, in sequence order. */
  readonly log: readonly LoggedEvent[];
  /** `event_sequence.last` at the end. */
  readonly lastSequence: number;
  /**
   * When replicas were killed with -9 (s since the run started): a killed process writes no
   * error tail, so a reader that drops transport errors sees a clean end then, unavoidably.
   */
  readonly kills?: readonly { readonly fromS: number; readonly toS: number }[];
}

/** Which of the suite's event types a member sees whoever created it (the rest: creator and admins). */
const EVERY_MEMBER_TYPES = new Set([3 /* PROJECT */]);

export function visibleTo(p: StreamRecord["principal"], e: LoggedEvent): boolean {
  if (e.organizationId !== p.organization) return false;
  if (p.role === "admin") return true;
  if (EVERY_MEMBER_TYPES.has(e.resourceType)) return true;
  return e.creatorId === p.subject;
}

/** Checks `history` against the guarantees; one line per violation. */
export function check(history: History): string[] {
  const violations: string[] = [];
  const { log } = history;
  const byId = new Map<string, LoggedEvent>();
  log.forEach((e, i) => {
    if (e.sequence !== i + 1) {
      if (i === 0 || e.sequence !== (log[i - 1] as LoggedEvent).sequence + 1) {
        violations.push(
          `log: sequence ${e.sequence} follows ${i === 0 ? "nothing" : (log[i - 1] as LoggedEvent).sequence} (a gap)`,
        );
      }
    }
    const twice = byId.get(e.id);
    if (twice !== undefined) {
      violations.push(`log: event ${e.id} logged twice, at ${twice.sequence} and ${e.sequence}`);
    } else byId.set(e.id, e);
  });
  if (history.lastSequence !== (log.at(-1)?.sequence ?? 0)) {
    violations.push(
      `log: the counter says ${history.lastSequence}, the log ends at ${log.at(-1)?.sequence ?? 0}`,
    );
  }

  // Publish: acknowledged means logged once, in order; refused means not logged; an open
  // outcome is all or nothing; a keyed retry never conflicts with itself.
  const lastAcked = new Map<string, number>();
  for (const p of history.publishes) {
    const name = `publish by ${p.publisher}${p.key === undefined ? "" : ` (key ${p.key})`}`;
    const logged = p.events.map((e) => byId.get(e.id));
    const inLog = logged.filter((e) => e !== undefined).length;
    const acked = p.attempts.find((a) => a.kind === "acked");
    const refused = p.attempts.find((a) => a.kind === "refused");
    if (inLog !== 0 && inLog !== p.events.length) {
      violations.push(`${name}: half written (${inLog} of ${p.events.length} events in the log)`);
    }
    for (const a of p.attempts) {
      if (a.kind === "refused" && a.code === "already_exists") {
        violations.push(`${name}: a retry of the same batch was refused with already_exists`);
      }
    }
    if (acked !== undefined && acked.kind === "acked") {
      const sequences = logged.map((e) => e?.sequence);
      const expected = p.events.map((_, i) => acked.first + i);
      if (
        sequences.some((s, i) => s !== expected[i]) ||
        acked.last !== acked.first + p.events.length - 1
      ) {
        violations.push(
          `${name}: acknowledged as ${acked.first}-${acked.last}${acked.replayed ? " (replayed)" : ""}, logged at ${sequences.join(",")}`,
        );
      }
      const before = lastAcked.get(p.publisher) ?? 0;
      if (acked.first <= before) {
        violations.push(
          `${name}: acknowledged at ${acked.first}, not after the publisher's previous batch (${before})`,
        );
      }
      lastAcked.set(p.publisher, acked.last);
    } else if (
      refused !== undefined &&
      refused.kind === "refused" &&
      p.key === undefined &&
      inLog > 0
    ) {
      violations.push(`${name}: refused (${refused.code}: ${refused.message}) yet logged`);
    }
    if (
      p.key !== undefined &&
      refused !== undefined &&
      refused.kind === "refused" &&
      acked === undefined &&
      inLog > 0
    ) {
      violations.push(`${name}: refused (${refused.code}: ${refused.message}) yet logged`);
    }
  }

  // WatchEvents, per connection.
  for (const s of history.streams) {
    const name = `stream of ${s.watcher}`;
    const killed =
      s.transportFailed === true &&
      s.endedAtS !== undefined &&
      (history.kills ?? []).some(
        (k) => k.fromS - 1 <= (s.endedAtS as number) && (s.endedAtS as number) <= k.toS + 1,
      );
    if (s.end === "clean" && !killed) {
      violations.push(
        `${name}: ended cleanly though no watched environment was deleted (${s.detail})`,
      );
    }
    checkDelivery(name, s.principal, s.ids, byId, log, violations);
  }
  // The feed, per consumer across its connections (each resumed from its last cursor).
  for (const f of history.feeds) {
    const name = `feed of ${f.consumer}`;
    for (const c of f.connections) {
      if (c.end === "clean") violations.push(`${name}: a connection ended cleanly (${c.detail})`);
    }
    checkDelivery(name, f.principal, f.ids, byId, log, violations);
  }
  return violations;
}

/** Log order, no duplicates, nothing it may not see, nothing skipped between its first and last event. */
function checkDelivery(
  name: string,
  principal: StreamRecord["principal"],
  ids: readonly string[],
  byId: ReadonlyMap<string, LoggedEvent>,
  log: readonly LoggedEvent[],
  violations: string[],
): void {
  let previous = 0;
  let first: number | undefined;
  const seen = new Set<number>();
  for (const id of ids) {
    const e = byId.get(id);
    if (e === undefined) {
      violations.push(`${name}: received ${id}, which is not in the log`);
      continue;
    }
    if (!visibleTo(principal, e)) {
      violations.push(
        `${name}: received ${id} (sequence ${e.sequence}), which ${principal.role} ${principal.subject} may not see`,
      );
    }
    if (e.sequence <= previous) {
      violations.push(
        `${name}: received sequence ${e.sequence} after ${previous} (out of order or twice)`,
      );
    }
    previous = Math.max(previous, e.sequence);
    first ??= e.sequence;
    seen.add(e.sequence);
  }
  if (first === undefined) return;
  // Nothing skipped while live: between its first and last event, every event it may see.
  const missing: number[] = [];
  for (let seq = first; seq <= previous; seq++) {
    const e = log[seq - 1];
    if (e !== undefined && e.sequence === seq && visibleTo(principal, e) && !seen.has(seq))
      missing.push(seq);
  }
  if (missing.length > 0) {
    violations.push(
      `${name}: skipped ${missing.length} event(s) while live, first at sequence ${missing[0]}`,
    );
  }
}
