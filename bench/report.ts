import type { DispatchResult } from "./dispatch.js";

/** One server's outcome of one scenario part: the load generator's figures, or why there are none. */
export interface Outcome {
  readonly result?: Record<string, unknown>;
  readonly error?: string;
  /** When the part was repeated: each round's figure that chose the median round. */
  readonly rounds?: (number | null)[];
  /** When the part was repeated: each round's whole result, in round order (null: it failed). */
  readonly roundResults?: (Record<string, unknown> | null)[];
}
/** kind -> part name -> outcome. */
export type ScenarioResults = Partial<Record<string, Record<string, Outcome>>>;

type Value = number | string | null;

/** One figure of one scenario for the three servers, with ratios and the target if there is one. */
export interface Row {
  readonly scenario: string;
  readonly metric: string;
  readonly ours: Value;
  readonly limit: Value;
  readonly peer: Value;
  /** limit writing each stream's events of a publish with one write (scenario 1 only). */
  readonly limitBatched?: Value;
  /** limit appending and fdatasyncing each publish before it delivers it (scenarios 1 and 2). */
  readonly limitDurable?: Value;
  readonly oursToLimit: number | null;
  readonly oursToPeer: number | null;
  readonly oursToLimitBatched?: number | null;
  readonly oursToLimitDurable?: number | null;
  readonly target?: string;
  /** Against the target; null when there is no figure to judge. */
  readonly pass?: boolean | null;
}

/** Scenario 6: what one part measures (ours only), for its row. */
export interface PersistPartInfo {
  /** The row this part belongs to: its parts differ only in `inflight`. */
  readonly row: string;
  /** Publishes in flight at most. */
  readonly inflight: number;
  /** "SQLite synchronous=full", "PostgreSQL". */
  readonly store: string;
  /** "creator", "creator + actor (audited)". */
  readonly events: string;
  /** Streams receiving every event meanwhile (0: none). */
  readonly watchers: number;
  /** Target in events/s accepted, where the issue sets one. */
  readonly target?: number;
}

/** Scenario 6: one row per store and event mix (ours only, so no ratios): its best part. */
export interface PersistRow extends Omit<PersistPartInfo, "inflight"> {
  /** The best part's figures, and its in-flight count. */
  readonly eventsPerSec: number | null;
  readonly inflight: number | null;
  /** events/s of each window, by publishes in flight. */
  readonly eventsPerSecByInflight: Record<string, number | null>;
  readonly serverCores: number | null;
  readonly serverCpuUsPerEvent: number | null;
  readonly postgresCores: number | null;
  /** The machine's CPU used by neither ours, the load generator nor PostgreSQL: disturbance. */
  readonly otherCores: number | null;
  readonly publishP50Ms: number | null;
  readonly publishP99Ms: number | null;
  readonly pass?: boolean | null;
}

/**
 * Scenario 8: one figure of ours serving WatchEvents and FeedService.Watch (replay rows have the
 * feed only), the feed's ratio to WatchEvents, and the target where there is one.
 */
export interface FeedRow {
  readonly metric: string;
  readonly watch: Value;
  readonly feed: Value;
  readonly feedToWatch: number | null;
  readonly target?: string;
  readonly pass?: boolean | null;
}

/** The targets against the durable limit (scenario 2) and the batched limit (scenario 1). */
const DURABLE_TARGETS = {
  /** latency p50 at most this times limit-durable's */
  p50: 1.3,
  /** latency p99 at most this times limit-durable's */
  p99: 1.5,
  /** fan-out server CPU per delivery at most this times limit-batched's */
  fanoutCpuToBatched: 2,
};

/** Load generator CPU (cores) from which a part measured the client's ceiling, not the server. */
const CLIENT_BOUND_CORES = 0.85;

/** Scenario 8's targets. */
const FEED_TARGETS = {
  /** events/s replayed to one stream from SQLite, request to last event */
  replaySqlite: 200_000,
  /** feed fan-out deliveries/s at least this times WatchEvents' */
  fanout: 0.8,
  /** memory per idle feed stream at most this times WatchEvents' */
  memory: 1.2,
};

export interface Report {
  readonly rows: Row[];
  readonly persistRows: PersistRow[];
  readonly feedRows: FeedRow[];
  /** Failures and anomalies, per scenario, printed under its table. */
  readonly notes: Record<string, string[]>;
}

const KINDS = ["ours", "limit", "peer", "limit-batched", "limit-durable"] as const;
/** Kinds that only some scenarios run: a column only where they ran. */
const OPTIONAL_KINDS: readonly string[] = ["limit-batched", "limit-durable"];
type Values = Record<"ours" | "limit" | "peer", Value> & {
  "limit-batched"?: Value;
  "limit-durable"?: Value;
};

function get(o: unknown, path: string): unknown {
  let v: unknown = o;
  for (const k of path.split(".")) v = (v as Record<string, unknown> | null | undefined)?.[k];
  return v;
}

function num(v: unknown): number | null {
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

/** a/b; null for a missing value or a b of zero (or the rounding error of a difference, 1e-13). */
function ratio(a: Value, b: Value): number | null {
  return typeof a === "number" && typeof b === "number" && Math.abs(b) >= 1e-9 ? a / b : null;
}

function row(
  scenario: string,
  metric: string,
  values: Values,
  target?: { text: string; pass: (r: Row) => boolean | null },
): Row {
  const batched = values["limit-batched"];
  const durable = values["limit-durable"];
  const r: Row = {
    scenario,
    metric,
    ours: values.ours,
    limit: values.limit,
    peer: values.peer,
    oursToLimit: ratio(values.ours, values.limit),
    oursToPeer: ratio(values.ours, values.peer),
    ...(batched !== undefined && {
      limitBatched: batched,
      oursToLimitBatched: ratio(values.ours, batched),
    }),
    ...(durable !== undefined && {
      limitDurable: durable,
      oursToLimitDurable: ratio(values.ours, durable),
    }),
  };
  return target === undefined ? r : { ...r, target: target.text, pass: target.pass(r) };
}

export function buildReport(
  results: Record<string, ScenarioResults>,
  dispatchInProcess: readonly DispatchResult[] | undefined,
  persistParts: ReadonlyMap<string, PersistPartInfo> = new Map(),
): Report {
  const rows: Row[] = [];
  const persistRows: PersistRow[] = [];
  const notes: Record<string, string[]> = {};
  const note = (s: string, text: string) => {
    notes[s] ??= [];
    notes[s].push(text);
  };
  const pick = (s: string, part: string, path: string, scale = 1): Values => {
    const out: Values = { ours: null, limit: null, peer: null };
    for (const k of KINDS) {
      if (OPTIONAL_KINDS.includes(k) && results[s]?.[k] === undefined) continue;
      const n = num(get(results[s]?.[k]?.[part]?.result, path));
      out[k] = n === null ? (results[s]?.[k]?.[part] === undefined ? "n/a" : null) : n * scale;
    }
    return out;
  };
  const yesNo = (s: string, part: string, path: string): Values => {
    const out: Values = { ours: null, limit: null, peer: null };
    for (const k of KINDS) {
      if (OPTIONAL_KINDS.includes(k) && results[s]?.[k] === undefined) continue;
      const v = get(results[s]?.[k]?.[part]?.result, path);
      out[k] = typeof v === "boolean" ? (v ? "yes" : "NO") : null;
    }
    return out;
  };

  /** ours ran the scenario whole: no error, every stream opened and delivering. */
  const oursWhole = (s: string): boolean => {
    for (const o of Object.values(results[s]?.ours ?? {})) {
      const r = o.result;
      if (o.error !== undefined || r === undefined) return false;
      for (const [got, want] of [
        ["streamsConfirmed", "streams"],
        ["targetStreamsConfirmed", "targetStreams"],
        ["idleStreamsConfirmed", "idleStreams"],
      ] as const) {
        const g = num(r[got]);
        const w = num(r[want]);
        if (g !== null && w !== null && g < w) return false;
      }
    }
    return results[s]?.ours !== undefined;
  };
  // A target is met only by a whole run of ours.
  const judged = (s: string, pass: (r: Row) => boolean | null) => (r: Row) =>
    results[s]?.ours === undefined ? null : oursWhole(s) ? pass(r) : false;

  // Errors, refused or broken streams, publish failures: one note each.
  for (const [s, byKind] of Object.entries(results)) {
    for (const k of KINDS) {
      for (const [part, o] of Object.entries(byKind[k] ?? {})) {
        const where = `${k} (${part})`;
        if (o.error !== undefined) note(s, `${where}: FAILED: ${o.error}`);
        const r = o.result;
        if (r === undefined) continue;
        for (const [field, total] of [
          ["streamsConfirmed", "streams"],
          ["targetStreamsConfirmed", "targetStreams"],
          ["idleStreamsConfirmed", "idleStreams"],
        ] as const) {
          const got = num(r[field]);
          const want = num(r[total]);
          if (got !== null && want !== null && got < want) {
            note(s, `${where}: only ${got} of ${want} ${total} open and delivering`);
          }
        }
        for (const field of ["streamsEnded", "idleStreamsEnded"]) {
          const ended = r[field] as Record<string, number> | undefined;
          if (ended !== undefined && Object.keys(ended).length > 0) {
            note(s, `${where}: streams ended early: ${JSON.stringify(ended)}`);
          }
        }
        const other = Math.max(
          num(r.otherCores) ?? 0,
          num(get(r, "withoutIdle.otherCores")) ?? 0,
          num(get(r, "withIdle.otherCores")) ?? 0,
        );
        if (other > 0.25) {
          note(
            s,
            `${where}: WARNING: other processes used ${other.toFixed(2)} cores meanwhile; figures disturbed`,
          );
        }
        const counted = num(r.serverCountedDeliveries);
        const received = num(r.received);
        if (counted !== null && received !== null) {
          const same = Math.abs(counted - received) <= counted * 0.001;
          note(
            s,
            `${where}: client counted ${received} messages ${same ? "=" : "but"} ours' eventserver_deliveries_total ${counted}`,
          );
        }
        const failures = r.publishFailureReasons as Record<string, number> | undefined;
        if (failures !== undefined && Object.keys(failures).length > 0) {
          note(s, `${where}: publishes failed: ${JSON.stringify(failures)}`);
        }
      }
    }
  }

  for (const s of ["fanout", "filters"]) {
    if (results[s] === undefined) continue;
    rows.push(
      row(
        s,
        "deliveries/s",
        pick(s, "fanout", "deliveriesPerSec"),
        s === "fanout"
          ? {
              text: ">= 0.7x limit, >= 2x peer",
              pass: judged(s, (r) =>
                r.oursToLimit === null || r.oursToPeer === null
                  ? null
                  : r.oursToLimit >= 0.7 && r.oursToPeer >= 2,
              ),
            }
          : undefined,
      ),
      row(s, "events/s", pick(s, "fanout", "eventsPerSec")),
      row(
        s,
        "server CPU s per 1M deliveries",
        pick(s, "fanout", "serverCpuSecPerMillion"),
        s === "fanout"
          ? {
              text: `<= ${DURABLE_TARGETS.fanoutCpuToBatched}x limit-batched`,
              pass: judged(s, (r) =>
                typeof r.oursToLimitBatched === "number"
                  ? r.oursToLimitBatched <= DURABLE_TARGETS.fanoutCpuToBatched
                  : null,
              ),
            }
          : undefined,
      ),
      row(s, "server CPU (cores)", pick(s, "fanout", "serverCores")),
      row(s, "load generator CPU (cores)", pick(s, "fanout", "loadgenCores")),
      row(s, "other load on the machine (cores)", pick(s, "fanout", "otherCores")),
      row(s, "streams delivering (of 1000)", pick(s, "fanout", "streamsConfirmed")),
      row(s, "seconds to open them all", pick(s, "fanout", "setupSeconds")),
      row(s, "every event reached every stream", yesNo(s, "fanout", "everyEventDelivered")),
    );
  }

  if (results.latency !== undefined) {
    const s = "latency";
    // Against limit-durable where it ran (--kinds may leave it out): p50 and p99 ratios.
    const durable = results[s]?.["limit-durable"] !== undefined;
    // With several rounds (ours and limit-durable back to back in each), a ratio is the median
    // of the rounds' own ratios (see roundRatios).
    const paired = (path: string): number[] | undefined =>
      roundRatios(
        results[s]?.ours?.latency?.roundResults,
        results[s]?.["limit-durable"]?.latency?.roundResults,
        path,
      );
    const pairedP50 = paired("p50Ms");
    const pairedP99 = paired("p99Ms");
    const withPaired = (r: Row, rounds: number[] | undefined): Row =>
      rounds === undefined ? r : { ...r, oursToLimitDurable: middle(rounds) };
    const toDurable = (r: Row, most: number) =>
      typeof r.oursToLimitDurable === "number" ? r.oursToLimitDurable <= most : null;
    const p50 = row(
      s,
      "p50 ms",
      pick(s, "latency", "p50Ms"),
      durable
        ? {
            text: `<= ${DURABLE_TARGETS.p50}x durable`,
            pass: judged(s, (r) => toDurable(withPaired(r, pairedP50), DURABLE_TARGETS.p50)),
          }
        : undefined,
    );
    const p99 = row(s, "p99 ms", pick(s, "latency", "p99Ms"), {
      text: durable ? `<= 25 ms, <= ${DURABLE_TARGETS.p99}x durable` : "<= 25 ms",
      pass: judged(s, (r) => {
        if (typeof r.ours !== "number") return null;
        if (!durable) return r.ours <= 25;
        const d = toDurable(withPaired(r, pairedP99), DURABLE_TARGETS.p99);
        return d === null ? null : r.ours <= 25 && d;
      }),
    });
    const p50Row = withPaired(p50, pairedP50);
    const p99Row = withPaired(p99, pairedP99);
    if (durable) {
      const f = (v: number | null | undefined) => (typeof v === "number" ? fmtRatio(v) : "-");
      const met = (ok: boolean | null) => (ok === null ? "not judged" : ok ? "met" : "missed");
      const p99Ms = typeof p99.ours === "number" ? p99.ours : null;
      note(
        s,
        `targets against limit-durable: p50 ${f(p50Row.oursToLimitDurable)} (<= ${DURABLE_TARGETS.p50}x: ${met(toDurable(p50Row, DURABLE_TARGETS.p50))}), p99 ${f(p99Row.oursToLimitDurable)} (<= ${DURABLE_TARGETS.p99}x: ${met(toDurable(p99Row, DURABLE_TARGETS.p99))}); p99 <= 25 ms: ${met(p99Ms === null ? null : p99Ms <= 25)}`,
      );
      if (pairedP50 !== undefined && pairedP99 !== undefined) {
        note(
          s,
          `ours/durable is the median of the ${pairedP50.length} rounds' own ratios (each round ran both, ours first in odd-numbered rounds and last in even-numbered ones): p50 ${fmtRatios(pairedP50)}; p99 ${fmtRatios(pairedP99)}`,
        );
      }
    }
    rows.push(
      p50Row,
      p99Row,
      row(s, "p999 ms", pick(s, "latency", "p999Ms")),
      row(s, "max ms", pick(s, "latency", "maxMs")),
      row(s, "Publish round trip p50 ms", pick(s, "latency", "publishP50Ms")),
      row(s, "Publish round trip p99 ms", pick(s, "latency", "publishP99Ms")),
      row(s, "deliveries measured", pick(s, "latency", "deliveriesMeasured")),
      row(s, "deliveries expected", pick(s, "latency", "deliveriesExpected")),
      row(s, "server CPU (cores)", pick(s, "latency", "serverCores")),
      row(s, "load generator CPU (cores)", pick(s, "latency", "loadgenCores")),
      row(s, "other load on the machine (cores)", pick(s, "latency", "otherCores")),
    );
  }

  if (results.dispatch !== undefined) {
    const s = "dispatch";
    for (const [kind, parts] of Object.entries(results.dispatch)) {
      const rounds = parts?.dispatch?.rounds;
      if (rounds === undefined || rounds.length < 2) continue;
      note(
        s,
        `${kind}: cost with idle / without in each of the ${rounds.length} rounds (the table shows the round with the median): ${fmtRatios(rounds)}`,
      );
    }
    rows.push(
      row(
        s,
        "server CPU us/event, 10 streams (before)",
        pick(s, "dispatch", "withoutIdle.serverCpuUsPerEventBefore"),
      ),
      row(
        s,
        "server CPU us/event, 10 streams (after)",
        pick(s, "dispatch", "withoutIdle.serverCpuUsPerEventAfter"),
      ),
      row(
        s,
        "server CPU us/event, 10 streams (mean)",
        pick(s, "dispatch", "withoutIdle.serverCpuUsPerEvent"),
      ),
      row(
        s,
        "server CPU us/event, + 10,000 idle",
        pick(s, "dispatch", "withIdle.serverCpuUsPerEvent"),
      ),
      row(s, "cost with idle / without", pick(s, "dispatch", "costRatio"), {
        text: "<= 1.2",
        pass: judged(s, (r) => (typeof r.ours === "number" ? r.ours <= 1.2 : null)),
      }),
      row(s, "events/s, 10 streams", pick(s, "dispatch", "withoutIdle.eventsPerSec")),
      row(s, "events/s, + 10,000 idle", pick(s, "dispatch", "withIdle.eventsPerSec")),
      row(s, "load generator CPU (cores), + idle", pick(s, "dispatch", "withIdle.loadgenCores")),
      row(
        s,
        "other load on the machine (cores), + idle",
        pick(s, "dispatch", "withIdle.otherCores"),
      ),
    );
    if (dispatchInProcess !== undefined) {
      const base = dispatchInProcess[0]?.nsPerEvent ?? 0;
      for (const d of dispatchInProcess) {
        rows.push(
          row(s, `in-process bus: ns/event, ${d.idleWatchers} idle`, {
            ours: d.nsPerEvent,
            limit: "n/a",
            peer: "n/a",
          }),
        );
      }
      const last = dispatchInProcess[dispatchInProcess.length - 1];
      if (last !== undefined && base > 0) {
        rows.push(
          row(s, "in-process bus: cost ratio, 10,000 idle", {
            ours: last.nsPerEvent / base,
            limit: "n/a",
            peer: "n/a",
          }),
        );
      }
    }
  }

  if (results.memory !== undefined) {
    const s = "memory";
    rows.push(
      row(
        s,
        "HTTP/2: RSS KiB per idle stream",
        pick(s, "h2", "memory.rssBytesPerStream", 1 / 1024),
        {
          text: "<= 10 KiB",
          pass: judged(s, (r) => (typeof r.ours === "number" ? r.ours <= 10 : null)),
        },
      ),
      row(
        s,
        "HTTP/2: heap KiB per idle stream",
        pick(s, "h2", "memory.heapBytesPerStream", 1 / 1024),
      ),
      row(s, "HTTP/2: streams delivering (of 10,000)", pick(s, "h2", "streamsConfirmed")),
      row(s, "HTTP/2: RSS MiB with streams", pick(s, "h2", "memory.after.rssBytes", 1 / 2 ** 20)),
      row(s, "HTTP/2: seconds to open them all", pick(s, "h2", "setupSeconds")),
      row(
        s,
        "JSONL/1.1: RSS KiB per idle stream",
        pick(s, "jsonl", "memory.rssBytesPerStream", 1 / 1024),
      ),
      row(
        s,
        "JSONL/1.1: heap KiB per idle stream",
        pick(s, "jsonl", "memory.heapBytesPerStream", 1 / 1024),
      ),
      row(s, "JSONL/1.1: streams delivering (of 1,000)", pick(s, "jsonl", "streamsConfirmed")),
    );
    const open = num(get(results.memory?.ours?.h2?.result, "memory.after.streamsOpen"));
    if (open !== null)
      note(s, `ours (h2): /metrics eventserver_streams_open = ${open} (incl. 10 warm-up)`);
  }

  if (results.jsonl !== undefined) jsonlRows(results, rows, note);
  if (results.scale !== undefined) scaleRows(results, rows, note);
  const feedRows = results.feed === undefined ? [] : feedRowsOf(results, note);

  // Scenario 6: the parts of a row differ in publishes in flight; the row shows the best.
  const byRow = new Map<string, { info: PersistPartInfo; part: string; o: Outcome }[]>();
  for (const [part, o] of Object.entries(results.persist?.ours ?? {})) {
    const info = persistParts.get(part);
    if (info === undefined) continue;
    byRow.set(info.row, [...(byRow.get(info.row) ?? []), { info, part, o }]);
  }
  for (const [rowName, parts] of byRow) {
    const byInflight: Record<string, number | null> = {};
    let best: (typeof parts)[number] | undefined;
    for (const x of parts) {
      const v = num(x.o.result?.eventsPerSec);
      byInflight[String(x.info.inflight)] = v;
      if (v !== null && (best === undefined || v > (num(best.o.result?.eventsPerSec) ?? 0))) {
        best = x;
      }
    }
    const info = (best ?? parts[0])?.info as PersistPartInfo;
    const r = best?.o.result;
    const eventsPerSec = num(r?.eventsPerSec);
    // Met only by a whole run: no error, no failed publish, every stream delivering.
    const whole = parts.every(
      ({ o }) =>
        o.error === undefined &&
        o.result !== undefined &&
        num(o.result.publishFailures) === 0 &&
        (info.watchers === 0 || num(o.result.streamsConfirmed) === info.watchers),
    );
    const { inflight: _, ...labels } = info;
    persistRows.push({
      ...labels,
      row: rowName,
      eventsPerSec,
      inflight: best === undefined ? null : best.info.inflight,
      eventsPerSecByInflight: byInflight,
      serverCores: num(r?.serverCores),
      serverCpuUsPerEvent: num(r?.serverCpuUsPerEvent),
      postgresCores: num(r?.postgresCores),
      otherCores: num(r?.otherCores),
      publishP50Ms: num(r?.publishP50Ms),
      publishP99Ms: num(r?.publishP99Ms),
      ...(info.target !== undefined && {
        pass: eventsPerSec === null ? null : whole && eventsPerSec >= info.target,
      }),
    });
    for (const { part, o } of parts) {
      const pr = o.result;
      if (pr === undefined) continue;
      const where = `ours (${part})`;
      const stored = pr.stored as Record<string, unknown> | null | undefined;
      const accepted = num(pr.eventsAcceptedTotal);
      if (stored !== null && stored !== undefined) {
        if (typeof stored.error === "string") {
          note("persist", `${where}: store not counted: ${stored.error}`);
        } else {
          const ev = num(stored.events);
          const au = num(stored.auditEntries);
          const wantAudit = num(pr.auditEntriesExpected);
          if (ev !== accepted || au !== wantAudit) {
            note(
              "persist",
              `${where}: MISMATCH: the store holds ${ev} events and ${au} audit entries, ${accepted} events were accepted${wantAudit ? ` (${wantAudit} audited)` : ""}`,
            );
          }
        }
      }
      if (info.watchers > 0) {
        note(
          "persist",
          `${where}: ${num(pr.streamsConfirmed)} of ${info.watchers} streams delivering; every event reached every stream: ${pr.everyEventDelivered === true ? "yes" : "NO"}; load generator ${fmt(num(pr.loadgenCores))} cores`,
        );
      }
    }
  }
  // One line for all parts whose store held exactly what was accepted.
  const checked = [...byRow.values()].flat().filter(({ o }) => {
    const st = o.result?.stored as Record<string, unknown> | null | undefined;
    return (
      st !== null &&
      st !== undefined &&
      num(st.events) === num(o.result?.eventsAcceptedTotal) &&
      num(st.auditEntries) === num(o.result?.auditEntriesExpected)
    );
  });
  if (checked.length > 0) {
    const events = checked.reduce((a, { o }) => a + (num(o.result?.eventsAcceptedTotal) ?? 0), 0);
    const audit = checked.reduce((a, { o }) => a + (num(o.result?.auditEntriesExpected) ?? 0), 0);
    note(
      "persist",
      `${checked.length} of ${[...byRow.values()].flat().length} runs: the store holds exactly the accepted events (${events.toLocaleString("en-US")} in all) and one audit entry per audited event (${audit.toLocaleString("en-US")})`,
    );
  }
  return { rows, persistRows, feedRows, notes };
}

/** The median of `values` (at least one). */
function middle(values: readonly number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  const m = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[m] as number)
    : ((sorted[m - 1] as number) + (sorted[m] as number)) / 2;
}

/**
 * The rounds' own ratios a/b of `path`, round by round, when both sides ran the same rounds
 * (two or more, every one measured); undefined otherwise. Both sides of a round ran back to back,
 * so a host whose speed drifts between rounds moves both alike, where the ratio of each side's
 * median round would compare two moments.
 */
function roundRatios(
  a: Outcome["roundResults"],
  b: Outcome["roundResults"],
  path: string,
): number[] | undefined {
  if (a === undefined || b === undefined || a.length < 2 || a.length !== b.length) return;
  const out: number[] = [];
  a.forEach((ra, i) => {
    const x = num(get(ra ?? undefined, path));
    const y = num(get(b[i] ?? undefined, path));
    if (x !== null && y !== null && y > 0) out.push(x / y);
  });
  return out.length === a.length ? out : undefined;
}

/**
 * Scenario 8: ours only, WatchEvents against FeedService.Watch on fresh servers alike (parts
 * `fanout-watch` and `fanout-feed`, `memory-watch` and `memory-feed`), and the feed's replay
 * (`replay-sqlite`, `replay-postgres`). A target counts only when the parts it compares ran
 * whole: no error, every stream delivering, none ended early, every event delivered.
 */
function feedRowsOf(
  results: Record<string, ScenarioResults>,
  note: (s: string, text: string) => void,
): FeedRow[] {
  const s = "feed";
  const parts = results[s]?.ours ?? {};
  const rows: FeedRow[] = [];
  const value = (part: string, path: string, scale = 1): Value => {
    const o = parts[part];
    if (o === undefined) return "n/a";
    const n = num(get(o.result, path));
    return n === null ? null : n * scale;
  };
  const whole = (part: string): boolean => {
    const o = parts[part];
    const r = o?.result;
    if (o?.error !== undefined || r === undefined) return false;
    const confirmed = num(r.streamsConfirmed);
    const streams = num(r.streams);
    const ended = r.streamsEnded as Record<string, number> | undefined;
    return (
      (confirmed === null || streams === null || confirmed >= streams) &&
      (ended === undefined || Object.keys(ended).length === 0) &&
      r.everyEventDelivered !== false
    );
  };
  const add = (
    metric: string,
    watch: Value,
    feed: Value,
    target?: { text: string; pass?: (ratio: number | null, feed: Value) => boolean | null },
    /** The ratio to show and judge, when it is not feed/watch of the two values (paired rounds). */
    feedToWatch: number | null = ratio(feed, watch),
  ) => {
    rows.push({
      metric,
      watch,
      feed,
      feedToWatch,
      ...(target !== undefined && { target: target.text }),
      ...(target?.pass !== undefined && { pass: target.pass(feedToWatch, feed) }),
    });
  };
  /** Both parts of a comparison, watch and feed; judged only when both ran whole. */
  const both = (
    prefix: string,
    metric: string,
    path: string,
    scale = 1,
    target?: { text: string; pass: (ratio: number) => boolean | null },
    feedToWatch?: number,
  ) =>
    add(
      metric,
      value(`${prefix}-watch`, path, scale),
      value(`${prefix}-feed`, path, scale),
      target && judgedWhole(prefix, target),
      feedToWatch,
    );
  /** A target judged only when both parts ran whole (null from `pass`: not judged). */
  const judgedWhole = (
    prefix: string,
    target: { text: string; pass: (ratio: number) => boolean | null },
  ) => ({
    text: target.text,
    pass: (r: number | null) => {
      if (parts[`${prefix}-feed`] === undefined || parts[`${prefix}-watch`] === undefined) {
        return null;
      }
      const met = r === null ? false : target.pass(r);
      return met === null ? null : whole(`${prefix}-watch`) && whole(`${prefix}-feed`) && met;
    },
  });
  const yesNo = (part: string, path: string): Value => {
    const o = parts[part];
    if (o === undefined) return "n/a";
    const v = get(o.result, path);
    return typeof v === "boolean" ? (v ? "yes" : "NO") : null;
  };

  for (const [store, label] of [
    ["sqlite", "SQLite"],
    ["postgres", "PostgreSQL"],
  ] as const) {
    const part = `replay-${store}`;
    const o = parts[part];
    if (o === undefined) continue;
    const r = o.result;
    const n = num(r?.events);
    const m = `replay ${n === null ? "" : `${n.toLocaleString("en-US")} `}from ${label}:`;
    const replayWhole =
      o.error === undefined &&
      r !== undefined &&
      r.complete === true &&
      r.streamEnded === null &&
      num(r.publishFailures) === 0 &&
      num(r.eventsPublished) === n &&
      num(r.eventsReceivedAfterWait) === n;
    const feedOnly = (metric: string, path: string, scale = 1) =>
      add(`${m} ${metric}`, "n/a", value(part, path, scale));
    feedOnly("events received", "eventsReceivedAfterWait");
    add(
      `${m} events/s, request to last event`,
      "n/a",
      value(part, "eventsPerSec"),
      store === "sqlite"
        ? {
            text: `>= ${FEED_TARGETS.replaySqlite.toLocaleString("en-US")}/s`,
            pass: (_, feed) =>
              !replayWhole
                ? false
                : typeof feed === "number"
                  ? feed >= FEED_TARGETS.replaySqlite
                  : null,
          }
        : { text: "(reported)" },
    );
    feedOnly("events/s after the first event", "eventsPerSecAfterFirst");
    feedOnly("ms to the first event", "msToFirstEvent");
    feedOnly("server CPU (cores)", "serverCores");
    feedOnly("server CPU us per event", "serverCpuUsPerEvent");
    if (store === "postgres") feedOnly("PostgreSQL CPU (cores)", "postgresCores");
    feedOnly("load generator CPU (cores)", "loadgenCores");
    feedOnly("other load (cores)", "otherCores");
    feedOnly("server heap MiB after GC, before", "memoryBefore.heapUsedBytes", 1 / 2 ** 20);
    feedOnly("server heap MiB after GC, after", "memoryAfter.heapUsedBytes", 1 / 2 ** 20);
    feedOnly("server RSS MiB after GC, before", "memoryBefore.rssBytes", 1 / 2 ** 20);
    feedOnly("server RSS MiB after GC, after", "memoryAfter.rssBytes", 1 / 2 ** 20);
    feedOnly("server peak RSS MiB (publishing included)", "peakRssBytes", 1 / 2 ** 20);
    feedOnly("publishing them first: events/s", "publishEventsPerSec");
    if (r !== undefined && !replayWhole) {
      note(
        s,
        `ours (${part}): replay not whole: ${JSON.stringify({
          published: r.eventsPublished,
          receivedAtTheEnd: r.eventsReceivedAfterWait,
          complete: r.complete,
          streamEnded: r.streamEnded,
          publishFailures: r.publishFailures,
        })}`,
      );
    }
    if (r !== undefined) {
      note(
        s,
        `ours (${part}): checkpoints received by the replaying stream: ${num(r.checkpointsReceived)}`,
      );
    }
  }

  if (parts["fanout-watch"] !== undefined || parts["fanout-feed"] !== undefined) {
    const f = "fan-out 1,000 streams:";
    // A part whose load generator is near a core measured the client, not the server: then the
    // target is judged on what a CPU second of the server delivers instead.
    const clientBound = (part: string) => {
      const lg = num(get(parts[part]?.result, "loadgenCores"));
      return lg !== null && lg >= CLIENT_BOUND_CORES;
    };
    const bound = clientBound("fanout-watch") || clientBound("fanout-feed");
    // With rounds (full runs: watch and feed back to back in each, in turn first), the ratios
    // judged are the medians of the rounds' own ratios, as scenario 2's.
    const watchRounds = parts["fanout-watch"]?.roundResults;
    const feedRounds = parts["fanout-feed"]?.roundResults;
    const pairedRate = roundRatios(feedRounds, watchRounds, "deliveriesPerSec");
    const pairedPerCpu = roundRatios(watchRounds, feedRounds, "serverCpuSecPerMillion");
    both(
      "fanout",
      `${f} deliveries/s`,
      "deliveriesPerSec",
      1,
      {
        text: `feed >= ${FEED_TARGETS.fanout}x${bound ? " (client-bound: below)" : ""}`,
        pass: (r) => (bound ? null : r >= FEED_TARGETS.fanout),
      },
      pairedRate && middle(pairedRate),
    );
    if (pairedRate !== undefined && pairedPerCpu !== undefined) {
      note(
        s,
        `fan-out feed/WatchEvents is the median of the ${pairedRate.length} rounds' own ratios (each round ran both, WatchEvents first in odd-numbered rounds and last in even-numbered ones): deliveries/s ${fmtRatios(pairedRate)}; deliveries per server CPU second ${fmtRatios(pairedPerCpu)}`,
      );
    }
    both("fanout", `${f} events/s`, "eventsPerSec");
    both("fanout", `${f} server CPU s per 1M deliveries`, "serverCpuSecPerMillion");
    const perCpuSecond = (part: string): Value => {
      if (parts[part] === undefined) return "n/a";
      const v = num(get(parts[part]?.result, "serverCpuSecPerMillion"));
      return v === null || v <= 0 ? null : 1 / v;
    };
    add(
      `${f} M deliveries per server CPU second`,
      perCpuSecond("fanout-watch"),
      perCpuSecond("fanout-feed"),
      bound
        ? judgedWhole("fanout", {
            text: `feed >= ${FEED_TARGETS.fanout}x (client-bound)`,
            pass: (r) => r >= FEED_TARGETS.fanout,
          })
        : undefined,
      pairedPerCpu === undefined
        ? ratio(perCpuSecond("fanout-feed"), perCpuSecond("fanout-watch"))
        : middle(pairedPerCpu),
    );
    both("fanout", `${f} server CPU (cores)`, "serverCores");
    both("fanout", `${f} load generator CPU (cores)`, "loadgenCores");
    both("fanout", `${f} other load (cores)`, "otherCores");
    both("fanout", `${f} streams delivering (of 1,000)`, "streamsConfirmed");
    both("fanout", `${f} seconds to open them all`, "setupSeconds");
    add(
      `${f} every event reached every stream`,
      yesNo("fanout-watch", "everyEventDelivered"),
      yesNo("fanout-feed", "everyEventDelivered"),
    );
    for (const part of ["fanout-watch", "fanout-feed"]) {
      const lg = num(get(parts[part]?.result, "loadgenCores"));
      if (lg !== null && lg >= CLIENT_BOUND_CORES) {
        note(
          s,
          `ours (${part}): the load generator used ${lg.toFixed(2)} cores: its deliveries/s is near the client's ceiling (a lower bound of the server's); its CPU per delivery stands, and the target is judged on it`,
        );
      }
    }
  }
  if (parts["memory-watch"] !== undefined || parts["memory-feed"] !== undefined) {
    const f = "10,000 idle streams:";
    const target = {
      text: `feed <= ${FEED_TARGETS.memory}x`,
      pass: (r: number) => r <= FEED_TARGETS.memory,
    };
    both("memory", `${f} RSS KiB per stream`, "memory.rssBytesPerStream", 1 / 1024, target);
    both("memory", `${f} heap KiB per stream`, "memory.heapBytesPerStream", 1 / 1024, target);
    both("memory", `${f} streams delivering`, "streamsConfirmed");
    both("memory", `${f} RSS MiB with streams`, "memory.after.rssBytes", 1 / 2 ** 20);
    both("memory", `${f} seconds to open them all`, "setupSeconds");
    for (const api of ["watch", "feed"]) {
      const open = num(get(parts[`memory-${api}`]?.result, "memory.after.streamsOpen"));
      if (open !== null) {
        note(
          s,
          `ours (memory-${api}): /metrics eventserver_streams_open = ${open} (incl. 10 warm-up)`,
        );
      }
    }
  }
  return rows;
}

/**
 * Table values of one part of a scenario that peer does not run, for `kinds`: `pick` a number
 * (times `scale`), `yesNo` a boolean; "n/a" for a kind that did not run the part. An optional
 * kind (limit-batched, limit-durable) that did not run the scenario at all gets no value.
 */
function partReaders(
  byKind: ScenarioResults,
  kinds: readonly (typeof KINDS)[number][],
): {
  pick(part: string, path: string, scale?: number): Values;
  yesNo(part: string, path: string): Values;
} {
  const read = (part: string, value: (o: Outcome) => Value): Values => {
    const out: Values = { ours: null, limit: null, peer: "n/a" };
    for (const k of kinds) {
      if (OPTIONAL_KINDS.includes(k) && byKind[k] === undefined) continue;
      const o = byKind[k]?.[part];
      out[k] = o === undefined ? "n/a" : value(o);
    }
    return out;
  };
  return {
    pick: (part, path, scale = 1) =>
      read(part, (o) => {
        const n = num(get(o.result, path));
        return n === null ? null : n * scale;
      }),
    yesNo: (part, path) =>
      read(part, (o) => {
        const v = get(o.result, path);
        return typeof v === "boolean" ? (v ? "yes" : "NO") : null;
      }),
  };
}

/**
 * Scenario 7 (JSONL over HTTP/1.1): ours against the bare node:http server (limit, one write
 * per event per stream) and, for fan-out, limit-batched (one write per publish per stream). Each
 * part is judged on its own: a target counts only if ours ran that part whole.
 */
function jsonlRows(
  results: Record<string, ScenarioResults>,
  rows: Row[],
  note: (s: string, text: string) => void,
): void {
  const s = "jsonl";
  const byKind = results[s] ?? {};
  const { pick, yesNo } = partReaders(byKind, ["ours", "limit", "limit-batched"]);
  /** ours ran `part` whole: no error, every stream delivering, none ended early. */
  const whole = (part: string): boolean => {
    const o = byKind.ours?.[part];
    const r = o?.result;
    if (o?.error !== undefined || r === undefined) return false;
    const confirmed = num(r.streamsConfirmed);
    const streams = num(r.streams);
    const ended = r.streamsEnded as Record<string, number> | undefined;
    return (
      confirmed !== null &&
      streams !== null &&
      confirmed >= streams &&
      (ended === undefined || Object.keys(ended).length === 0)
    );
  };
  const judged = (part: string, pass: (r: Row) => boolean | null) => (r: Row) =>
    byKind.ours?.[part] === undefined ? null : whole(part) ? pass(r) : false;
  /** Ours no worse than limit (lower is better). */
  const noWorse = (part: string) => ({
    text: "<= limit",
    pass: judged(part, (r) => (r.oursToLimit === null ? null : r.oursToLimit <= 1)),
  });
  const has = (part: string) => Object.values(byKind).some((p) => p?.[part] !== undefined);

  if (has("fanout")) {
    const f = "fanout";
    rows.push(
      row(s, "fan-out 1,000 streams: deliveries/s", pick(f, "deliveriesPerSec")),
      row(s, "fan-out: events/s", pick(f, "eventsPerSec")),
      row(s, "fan-out: server CPU s per 1M deliveries", pick(f, "serverCpuSecPerMillion"), {
        text: "<= 1.5x limit-batched",
        pass: judged(f, (r) =>
          typeof r.oursToLimitBatched === "number" ? r.oursToLimitBatched <= 1.5 : null,
        ),
      }),
      row(s, "fan-out: server CPU (cores)", pick(f, "serverCores")),
      row(s, "fan-out: load generator CPU (cores)", pick(f, "loadgenCores")),
      row(s, "fan-out: other load on the machine (cores)", pick(f, "otherCores")),
      row(s, "fan-out: streams delivering (of 1,000)", pick(f, "streamsConfirmed")),
      row(s, "fan-out: seconds to open them all", pick(f, "setupSeconds")),
      row(s, "fan-out: every event reached every stream", yesNo(f, "everyEventDelivered")),
    );
    for (const k of ["ours", "limit", "limit-batched"] as const) {
      const lg = num(byKind[k]?.[f]?.result?.loadgenCores);
      if (lg !== null && lg >= 0.9) {
        note(
          s,
          `${k} (${f}): the load generator used ${lg.toFixed(2)} cores: ${k}'s deliveries/s is the client's ceiling (a lower bound of the server's); its CPU per delivery stands`,
        );
      }
    }
  }
  for (const rate of [20, 200]) {
    const l = `latency${rate}`;
    if (!has(l)) continue;
    const m = `latency ${rate}/s, 1,000 streams:`;
    rows.push(
      row(s, `${m} p50 ms`, pick(l, "p50Ms")),
      row(s, `${m} p99 ms`, pick(l, "p99Ms"), noWorse(l)),
      row(s, `${m} p999 ms`, pick(l, "p999Ms")),
      row(s, `${m} max ms`, pick(l, "maxMs")),
      row(s, `${m} Publish round trip p99 ms`, pick(l, "publishP99Ms")),
      row(s, `${m} deliveries measured`, pick(l, "deliveriesMeasured")),
      row(s, `${m} deliveries expected`, pick(l, "deliveriesExpected")),
      row(s, `${m} server CPU (cores)`, pick(l, "serverCores")),
      row(s, `${m} other load (cores)`, pick(l, "otherCores")),
    );
  }
  for (const part of Object.keys(byKind.ours ?? byKind.limit ?? {})) {
    const match = /^memory(\d+)$/.exec(part);
    if (match === null) continue;
    const n = Number(match[1]).toLocaleString("en-US");
    rows.push(
      row(
        s,
        `memory ${n} idle: RSS KiB per stream`,
        pick(part, "memory.rssBytesPerStream", 1 / 1024),
        noWorse(part),
      ),
      row(
        s,
        `memory ${n} idle: heap KiB per stream`,
        pick(part, "memory.heapBytesPerStream", 1 / 1024),
        noWorse(part),
      ),
      row(s, `memory ${n} idle: streams delivering`, pick(part, "streamsConfirmed")),
      row(
        s,
        `memory ${n} idle: RSS MiB with streams`,
        pick(part, "memory.after.rssBytes", 1 / 2 ** 20),
      ),
      row(s, `memory ${n} idle: seconds to open them all`, pick(part, "setupSeconds")),
    );
  }
  const w = "watchers10k";
  if (has(w)) {
    const m = "10,000 watchers, 1 event/s each:";
    rows.push(
      row(s, `${m} streams delivering`, pick(w, "streamsConfirmed")),
      row(s, `${m} seconds to open them all`, pick(w, "setupSeconds")),
      row(s, `${m} p50 ms`, pick(w, "p50Ms")),
      row(s, `${m} p99 ms`, pick(w, "p99Ms")),
      row(s, `${m} p999 ms`, pick(w, "p999Ms")),
      row(s, `${m} max ms`, pick(w, "maxMs")),
      row(s, `${m} deliveries measured`, pick(w, "deliveriesMeasured")),
      row(s, `${m} deliveries expected`, pick(w, "deliveriesExpected")),
      row(s, `${m} RSS MiB at the end`, pick(w, "rssAtEndBytes", 1 / 2 ** 20)),
      row(s, `${m} peak RSS MiB`, pick(w, "peakRssBytes", 1 / 2 ** 20)),
      row(s, `${m} RSS KiB per stream (after GC)`, pick(w, "memory.rssBytesPerStream", 1 / 1024)),
      row(s, `${m} server CPU (cores)`, pick(w, "serverCores")),
      row(s, `${m} load generator CPU (cores)`, pick(w, "loadgenCores")),
      row(s, `${m} errors`, pick(w, "errorCount"), {
        text: "none",
        pass: (r) =>
          byKind.ours?.[w] === undefined
            ? null
            : byKind.ours[w]?.error === undefined && r.ours === 0,
      }),
    );
    for (const k of ["ours", "limit"] as const) {
      const r = byKind[k]?.[w]?.result;
      if (r !== undefined && num(r.errorCount) !== 0) {
        note(s, `${k} (${w}): errors: ${JSON.stringify(r.errors)}`);
      }
    }
  }
}

/**
 * Scenario 11: ours and limit with many idle streams on one process, over HTTP/2 (gRPC) and
 * JSONL over HTTP/1.1. No targets: the figures say where the time and the memory go.
 */
function scaleRows(
  results: Record<string, ScenarioResults>,
  rows: Row[],
  note: (s: string, text: string) => void,
): void {
  const s = "scale";
  const byKind = results[s] ?? {};
  const kinds = ["ours", "limit"] as const;
  const { pick, yesNo } = partReaders(byKind, kinds);
  for (const [part, label] of [
    ["h2", "HTTP/2"],
    ["jsonl", "JSONL/1.1"],
  ] as const) {
    const any = kinds.map((k) => byKind[k]?.[part]?.result).find((r) => r !== undefined);
    // Nothing measured (the failures are in the notes already).
    if (any === undefined) continue;
    const streams = num(any?.streams);
    const n = streams === null ? "?" : streams.toLocaleString("en-US");
    const rounds = num(get(any, "fanout.rounds")) ?? 0;
    const one = `${label}: one event to all (median of ${rounds}):`;
    rows.push(
      row(s, `${label}: streams delivering (of ${n})`, pick(part, "streamsConfirmed")),
      row(s, `${label}: connections`, pick(part, "connections")),
      row(
        s,
        `${label}: RSS KiB per stream (after GC)`,
        pick(part, "memory.rssBytesPerStream", 1 / 1024),
      ),
      row(
        s,
        `${label}: heap KiB per stream (after GC)`,
        pick(part, "memory.heapBytesPerStream", 1 / 1024),
      ),
      row(
        s,
        `${label}: RSS MiB with the streams (after GC)`,
        pick(part, "memory.after.rssBytes", 1 / 2 ** 20),
      ),
      row(s, `${label}: peak RSS MiB`, pick(part, "peakRssBytes", 1 / 2 ** 20)),
      row(s, `${label}: seconds until every response head`, pick(part, "openSeconds")),
      row(s, `${label}: seconds until an event on every stream`, pick(part, "setupSeconds")),
      row(s, `${label}: server CPU s for that`, pick(part, "setupCpu.totalMs", 1 / 1000)),
      row(s, `${label}: server CPU (cores) idle, streams open`, pick(part, "idle.serverCores")),
      row(s, `${one} ms until the first stream has it`, pick(part, "fanout.firstMs")),
      row(s, `${one} ms until the last stream has it`, pick(part, "fanout.lastMs")),
      row(
        s,
        `${label}: the slowest round: ms until the last stream has it`,
        pick(part, "fanout.lastMsMax"),
      ),
      row(s, `${one} ms until Publish is answered`, pick(part, "fanout.publishMs")),
      row(s, `${one} server CPU ms`, pick(part, "fanout.cpuMs")),
      row(s, `${one} server CPU ms, user`, pick(part, "fanout.userMs")),
      row(s, `${one} server CPU ms, system`, pick(part, "fanout.systemMs")),
      row(s, `${one} server CPU ms, main thread`, pick(part, "fanout.mainThreadMs")),
      row(s, `${one} server CPU ms, other threads`, pick(part, "fanout.otherThreadsMs")),
      row(s, `${one} server CPU us per delivery`, pick(part, "fanout.cpuUsPerDelivery")),
      row(s, `${one} load generator CPU ms`, pick(part, "fanout.loadgenCpuMs")),
      row(s, `${one} its busiest process, CPU ms`, pick(part, "fanout.loadgenBusiestCpuMs")),
      row(s, `${one} other load on the machine (cores)`, pick(part, "fanout.otherCores")),
      row(
        s,
        `${label}: every round reached every stream`,
        yesNo(part, "fanout.everyRoundComplete"),
      ),
    );
    for (const k of kinds) {
      const r = byKind[k]?.[part]?.result;
      if (r === undefined) continue;
      const where = `${k} (${part})`;
      const asked = num(r.streamsRequested);
      const files = r.serverOpenFiles as { limit?: number; open?: number } | null | undefined;
      if (asked !== null && streams !== null && num(r.streams) !== asked) {
        note(
          s,
          `${where}: ${num(r.streams)?.toLocaleString("en-US")} streams instead of ${asked.toLocaleString("en-US")}: the server may open ${files?.limit?.toLocaleString("en-US") ?? "?"} files (ulimit -n), one per JSONL connection; raise the hard limit (the harness tries prlimit, which needs root with CAP_SYS_RESOURCE) for all of them`,
        );
      }
      const list = (r.rounds as { lastMs: number; totalMs: number }[] | undefined) ?? [];
      if (list.length > 0) {
        note(
          s,
          `${where}: rounds, ms until the last stream / server CPU ms: ${list.map((x) => `${fmt(x.lastMs)}/${fmt(x.totalMs)}`).join(", ")}${num(r.helperProcesses) ? `; JSONL watchers in ${num(r.helperProcesses)} helper processes` : ""}`,
        );
      }
      // The client reads one socket chunk per JSONL stream (one JS callback each): when its
      // busiest process was busy for most of the time to the last stream, that time is the
      // client's as much as the server's.
      const busiest = num(get(r, "fanout.loadgenBusiestCpuMs"));
      const last = num(get(r, "fanout.lastMs"));
      if (busiest !== null && last !== null && last > 0 && busiest >= 0.7 * last) {
        note(
          s,
          `${where}: the load generator's busiest process used ${fmt(busiest)} ms of CPU in the ${fmt(last)} ms until the last stream had the event: that time is bound by the client as much as by the server`,
        );
      }
      const other = num(get(r, "fanout.otherCores"));
      if (other !== null && other > 0.25) {
        note(
          s,
          `${where}: WARNING: other processes used ${other.toFixed(2)} cores during the rounds; figures disturbed`,
        );
      }
      const profile = r.profile as { file?: string | null; error?: string } | undefined;
      if (profile !== undefined) {
        note(
          s,
          `${where}: CPU profile over the rounds: ${profile.file ?? `none (${profile.error ?? "?"})`}; its rounds' CPU includes the profiler's`,
        );
      }
    }
  }
  note(
    s,
    "server CPU from /proc/<pid>/stat, counted in clock ticks (1 / CLK_TCK s, 10 ms on most Linux): a figure below about 50 ms is coarse",
  );
}

function fmt(v: Value | undefined): string {
  if (v === null || v === undefined) return "-";
  if (typeof v === "string") return v;
  const a = Math.abs(v);
  if (a >= 1000) return Math.round(v).toLocaleString("en-US");
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  if (a >= 1) return v.toFixed(2);
  return v.toFixed(3);
}

function fmtRatio(v: number | null): string {
  return v === null ? "-" : v >= 100 ? `${v.toFixed(0)}x` : `${v.toFixed(2)}x`;
}

/** Each round's ratio, in order, for a note ("failed" for a round that measured nothing). */
function fmtRatios(rounds: readonly (number | null)[]): string {
  return rounds.map((r) => (r === null ? "failed" : fmtRatio(r))).join(", ");
}

function printGrid(header: string[], cells: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] ?? "").length)));
  const line = (c: string[]) =>
    c.map((x, i) => (i === 0 ? x.padEnd(widths[i] ?? 0) : x.padStart(widths[i] ?? 0))).join(" | ");
  console.log(line(header));
  console.log(widths.map((w) => "-".repeat(w)).join("-|-"));
  for (const c of cells) console.log(line(c));
}

/** Scenario 6's table: one row per store and event mix. */
function printPersist(title: string, report: Report): void {
  const inflights = [
    ...new Set(report.persistRows.flatMap((r) => Object.keys(r.eventsPerSecByInflight))),
  ].sort((a, b) => Number(a) - Number(b));
  const header = [
    "store",
    "events",
    "watchers",
    "events/s",
    "in flight",
    ...inflights.map((n) => `@${n}`),
    "server CPU (cores)",
    "server CPU us/event",
    "PostgreSQL CPU (cores)",
    "other load (cores)",
    "publish p50 ms",
    "publish p99 ms",
    "target",
    "result",
  ];
  const cells = report.persistRows.map((r) => [
    r.store,
    r.events,
    r.watchers.toLocaleString("en-US"),
    fmt(r.eventsPerSec),
    r.inflight === null ? "-" : String(r.inflight),
    ...inflights.map((n) => fmt(r.eventsPerSecByInflight[n])),
    fmt(r.serverCores),
    fmt(r.serverCpuUsPerEvent),
    r.postgresCores === null ? "n/a" : fmt(r.postgresCores),
    fmt(r.otherCores),
    fmt(r.publishP50Ms),
    fmt(r.publishP99Ms),
    r.target === undefined ? "" : `>= ${fmt(r.target)}/s`,
    r.pass === undefined ? "" : r.pass === null ? "n/a" : r.pass ? "PASS" : "FAIL",
  ]);
  console.log(`\n${title}`);
  printGrid(header, cells);
  for (const n of report.notes.persist ?? []) console.log(`  note: ${n}`);
}

/** Scenario 8's table: WatchEvents and FeedService.Watch side by side. */
function printFeed(title: string, report: Report): void {
  const header = [
    "metric",
    "WatchEvents",
    "FeedService.Watch",
    "feed/WatchEvents",
    "target",
    "result",
  ];
  const cells = report.feedRows.map((r) => [
    r.metric,
    fmt(r.watch),
    fmt(r.feed),
    fmtRatio(r.feedToWatch),
    r.target ?? "",
    r.pass === undefined ? "" : r.pass === null ? "n/a" : r.pass ? "PASS" : "FAIL",
  ]);
  console.log(`\n${title}`);
  printGrid(header, cells);
  for (const n of report.notes.feed ?? []) console.log(`  note: ${n}`);
}

/** Prints one table per scenario, then its notes. */
export function printTables(
  scenarios: readonly { key: string; title: string }[],
  report: Report,
): void {
  for (const sc of scenarios) {
    if (sc.key === "persist") {
      if (report.persistRows.length > 0 || report.notes.persist !== undefined) {
        printPersist(sc.title, report);
      }
      continue;
    }
    if (sc.key === "feed") {
      if (report.feedRows.length > 0 || report.notes.feed !== undefined) {
        printFeed(sc.title, report);
      }
      continue;
    }
    const rows = report.rows.filter((r) => r.scenario === sc.key);
    if (rows.length === 0 && report.notes[sc.key] === undefined) continue;
    const batched = rows.some((r) => r.limitBatched !== undefined);
    const durable = rows.some((r) => r.limitDurable !== undefined);
    // A scenario that peer did not run (scenario 7, or --kinds without it) has no peer columns.
    const peer = rows.some((r) => r.peer !== "n/a");
    const header = ["metric", "ours", "limit", ...(peer ? ["peer"] : []), "ours/limit"];
    if (peer) header.push("ours/peer");
    if (batched) header.push("limit-batched", "ours/batched");
    if (durable) header.push("limit-durable", "ours/durable");
    header.push("target", "result");
    const cells = rows.map((r) => {
      const c = [r.metric, fmt(r.ours), fmt(r.limit)];
      if (peer) c.push(fmt(r.peer));
      c.push(fmtRatio(r.oursToLimit));
      if (peer) c.push(fmtRatio(r.oursToPeer));
      if (batched) c.push(fmt(r.limitBatched), fmtRatio(r.oursToLimitBatched ?? null));
      if (durable) c.push(fmt(r.limitDurable), fmtRatio(r.oursToLimitDurable ?? null));
      c.push(
        r.target ?? "",
        r.pass === undefined ? "" : r.pass === null ? "n/a" : r.pass ? "PASS" : "FAIL",
      );
      return c;
    });
    console.log(`\n${sc.title}`);
    printGrid(header, cells);
    for (const n of report.notes[sc.key] ?? []) console.log(`  note: ${n}`);
  }
}
