import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import Gitpod from "@gitpod/sdk";
import pg from "pg";
import { expect, it } from "vitest";
import { type Cluster, startCluster } from "../../scripts/cluster.js";
import { FeedService } from "../../src/gen/eventservice/feed/v1/feed_pb.js";
import { IngestService } from "../../src/gen/eventservice/ingest/v1/ingest_pb.js";
import { EventService } from "../../src/gen/gitpod/v1/event_pb.js";
import { Operation, ResourceType } from "../../src/watch/model.js";
import { bearer } from "../helpers/clients.js";
import { ORG_A, ORG_B, random, TOKEN_ENTRIES, TOKENS, USERS } from "../helpers/fixtures.js";
import { GoStyleReader, PythonStyleReader, sdkStyleWatch } from "../helpers/sdk-readers.js";
import {
  type AttemptOutcome,
  check,
  type FeedRecord,
  type History,
  type LoggedEvent,
  type PublishedEvent,
  type PublishRecord,
  type StreamRecord,
} from "./checker.js";
import { type OwnPostgres, StallProxy, startOwnPostgres } from "./infra.js";

// docs/guarantees.md under random faults, as etcd's robustness tests do: three replicas on a
// PostgreSQL of the suite's own behind deploy/haproxy.cfg; publishers with and without keys;
// watchers of every kind; feed consumers that resume; a seeded schedule of faults; a checker
// over the recorded history. `npm run robustness -- --seed N --duration 60s`.

const SEED = Number(process.env.ROBUSTNESS_SEED ?? Date.now() % 1_000_000_007);
const DURATION_MS = Number(process.env.ROBUSTNESS_DURATION_MS ?? 60_000);
const REPRODUCE = `npm run robustness -- --seed ${SEED} --duration ${Math.round(DURATION_MS / 1000)}s`;
const log = (line: string) => process.stdout.write(`[robustness] ${line}\n`);

// Two streams of choices: the schedule of faults follows from the seed alone, whatever order
// the clients' (timing-dependent) choices are made in.
const faultRandom = random(SEED % 2147483646 || 1);
const next = random((SEED * 7919) % 2147483646 || 1);
const between = (min: number, max: number) => min + next(max - min + 1);
const faultBetween = (min: number, max: number) => min + faultRandom(max - min + 1);
const startedAt = performance.now();
/** Seconds since the run started, for the report. */
const seconds = () => (performance.now() - startedAt) / 1000;
const at = () => `${seconds().toFixed(1)} s`;
/** When replicas were killed with -9 (see History.kills). */
const kills: { fromS: number; toS: number }[] = [];

type Principal = StreamRecord["principal"];
const ADMIN_A: Principal = { subject: USERS.adminA, organization: ORG_A, role: "admin" };
const MEMBER_A: Principal = { subject: USERS.memberA, organization: ORG_A, role: "member" };
const TOKEN_OF = new Map<string, string>([
  [USERS.adminA, TOKENS.adminA],
  [USERS.memberA, TOKENS.memberA],
]);

/** Until when the clients run; the faults stop earlier. */
let running = true;
const stopped = new AbortController();

// ---- publishers ----------------------------------------------------------------------------

/** Answers that say the batch was not written (the rest leave the outcome open). */
const NOT_WRITTEN = [
  /^database unavailable$/,
  /nothing was written/,
  /^the server is shutting down$/,
];
const DEFINITE_REFUSALS = new Set([
  Code.InvalidArgument,
  Code.PermissionDenied,
  Code.Unauthenticated,
  Code.AlreadyExists,
  Code.ResourceExhausted,
]);

function outcomeOf(err: unknown): AttemptOutcome {
  const e = ConnectError.from(err);
  const code = Code[e.code].replace(/[A-Z]/g, (c, i) =>
    i === 0 ? c.toLowerCase() : `_${c.toLowerCase()}`,
  );
  if (DEFINITE_REFUSALS.has(e.code)) return { kind: "refused", code, message: e.rawMessage };
  // `unavailable` from a replica before its commit; HAProxy's own 502/503 are not ours to trust.
  if (e.code === Code.Unavailable && NOT_WRITTEN.some((re) => re.test(e.rawMessage))) {
    return { kind: "refused", code, message: e.rawMessage };
  }
  return { kind: "unknown", code, message: e.rawMessage };
}

function newBatch(): PublishedEvent[] {
  return Array.from({ length: between(1, 5) }, () => {
    const r = next(10);
    const organizationId = r === 0 ? ORG_B : ORG_A;
    const resourceType = r < 6 ? ResourceType.PROJECT : ResourceType.ENVIRONMENT;
    const creatorId = next(2) === 0 ? USERS.adminA : USERS.memberA;
    return { id: randomUUID(), organizationId, resourceType, creatorId };
  });
}

function wire(e: PublishedEvent) {
  return {
    resourceType: e.resourceType,
    operation: Operation.CREATE,
    resourceId: e.id,
    organizationId: e.organizationId,
    environmentId: e.resourceType === ResourceType.ENVIRONMENT ? e.id : "",
    creatorId: e.creatorId,
  };
}

/**
 * A publisher through the balancer: with keys, it retries each batch with its key (backoff with
 * jitter) until it is acknowledged or refused; without, it sends each batch once.
 */
async function publisher(name: string, transport: Transport, keyed: boolean, out: PublishRecord[]) {
  const client = createClient(IngestService, transport);
  while (running) {
    const events = newBatch();
    const record: PublishRecord = {
      publisher: name,
      key: keyed ? randomUUID() : undefined,
      events,
      attempts: [],
    };
    out.push(record);
    for (let attempt = 1; ; attempt++) {
      let outcome: AttemptOutcome;
      try {
        const r = await client.publish(
          { events: events.map(wire), idempotencyKey: record.key ?? "" },
          { headers: bearer(TOKENS.publisher), timeoutMs: 3000 },
        );
        outcome = {
          kind: "acked",
          first: Number(r.firstSequence),
          last: Number(r.lastSequence),
          replayed: r.replayed,
        };
      } catch (err) {
        outcome = outcomeOf(err);
      }
      record.attempts.push(outcome);
      // With a key, retry what may not have been written (an open outcome, or unavailable
      // before the commit) with the same key; without one, never.
      const retry =
        keyed &&
        (outcome.kind === "unknown" ||
          (outcome.kind === "refused" && outcome.code === "unavailable"));
      if (!retry) break;
      await sleep(Math.min(2000, 50 * 2 ** Math.min(attempt, 6)) * Math.random());
    }
    await sleep(between(10, 60));
  }
}

// ---- watchers ------------------------------------------------------------------------------

/** Opens one connection for principal `p`, pushing ids into `record`; settles when it ends. */
type Opener = (
  p: Principal,
  record: StreamRecord,
  signal: AbortSignal,
  slowMs: number,
) => Promise<void>;

interface WatcherSpec {
  readonly name: string;
  readonly principal: Principal;
  readonly open: Opener;
}

/**
 * JSONL as the official Python and Go SDKs read it (test/helpers/sdk-readers.ts), over
 * node:http: every byte that arrived before a cut is read before the cut is seen, as a socket
 * reader sees it. (fetch's body stream drops the chunks still queued in it when the connection
 * fails, so a slow reader on fetch could lose the error tail that the server did send.) A slow
 * reader takes `slowMs` per chunk and still reads them all, in order.
 */
async function jsonlAsSdk(
  reader: GoStyleReader | PythonStyleReader,
  url: string,
  p: Principal,
  record: StreamRecord,
  signal: AbortSignal,
  slowMs: number,
) {
  const watch = sdkStyleWatch(url, TOKEN_OF.get(p.subject) ?? "", reader, {}, { delayMs: slowMs });
  const close = () => watch.close();
  signal.addEventListener("abort", close, { once: true });
  try {
    const status = await watch.status;
    const end = await watch.ended;
    for (const e of reader.events) record.ids.push(e.resourceId);
    if (status !== 200) throw new Error(`HTTP ${status}`);
    if (end.kind === "error") throw new Error(end.detail);
    if (end.dropped !== undefined) {
      // When the connection was cut, not when a slow reader got there: what the checker
      // compares with the faults' times.
      record.endedAtS = ((await watch.endedOnWireAt) - startedAt) / 1000;
      // Scanner.Err() is dropped by the Go SDK: the loop just ends. Noted for the report.
      record.detail = `the transport failed (${end.dropped.slice(0, 80)}), the SDK drops that`;
      record.transportFailed = true;
    }
  } finally {
    signal.removeEventListener("abort", close);
  }
}

const jsonlPython = (url: string, p: Principal, r: StreamRecord, s: AbortSignal, slow: number) =>
  jsonlAsSdk(new PythonStyleReader(), url, p, r, s, slow);

const jsonlGo = (url: string, p: Principal, r: StreamRecord, s: AbortSignal, slow: number) =>
  jsonlAsSdk(new GoStyleReader(), url, p, r, s, slow);

function connectWatcher(transport: Transport) {
  return async (p: Principal, record: StreamRecord, signal: AbortSignal, slowMs: number) => {
    const client = createClient(EventService, transport);
    for await (const e of client.watchEvents(
      {},
      { headers: bearer(TOKEN_OF.get(p.subject) ?? ""), signal },
    )) {
      record.ids.push(e.resourceId);
      if (slowMs > 0) await sleep(slowMs);
    }
  };
}

async function sdkWatcher(
  url: string,
  p: Principal,
  record: StreamRecord,
  signal: AbortSignal,
  slowMs: number,
) {
  const client = new Gitpod({
    bearerToken: TOKEN_OF.get(p.subject) ?? "",
    baseURL: `${url}/api`,
    maxRetries: 0,
  });
  const stream = await client.events.watch({}, { signal });
  for await (const e of stream) {
    record.ids.push(e.resourceId ?? "");
    if (slowMs > 0) await sleep(slowMs);
  }
}

/** A watcher that reconnects whenever its stream ends; some read slowly, some vanish mid-stream. */
async function watcher(spec: WatcherSpec, out: StreamRecord[]) {
  while (running) {
    const record: StreamRecord = {
      watcher: spec.name,
      principal: spec.principal,
      ids: [],
      end: "open",
      detail: "",
    };
    out.push(record);
    const abort = new AbortController();
    const onStop = () => abort.abort();
    stopped.signal.addEventListener("abort", onStop);
    // One connection in four vanishes after a while; one in four reads slowly.
    const vanish = next(4) === 0 ? setTimeout(() => abort.abort(), between(500, 8000)) : undefined;
    const slowMs = next(4) === 0 ? between(5, 40) : 0;
    try {
      await spec.open(spec.principal, record, abort.signal, slowMs);
      record.end = abort.signal.aborted ? "closed" : "clean";
      record.endedAtS ??= seconds();
      record.detail = `at ${at()}${slowMs > 0 ? ` (reading slowly, ${slowMs} ms a chunk)` : ""}${record.detail === "" ? "" : `: ${record.detail}`}`;
    } catch (err) {
      record.end = abort.signal.aborted ? "closed" : "error";
      record.detail = `at ${at()}: ${String(err).slice(0, 200)}`;
    } finally {
      clearTimeout(vanish);
      stopped.signal.removeEventListener("abort", onStop);
    }
    await sleep(between(50, 400));
  }
}

/** A feed consumer that resumes from its last cursor after every end. */
async function feedConsumer(name: string, transport: Transport, p: Principal, out: FeedRecord) {
  const client = createClient(FeedService, transport);
  let after = "";
  while (running) {
    const record: StreamRecord = { watcher: name, principal: p, ids: [], end: "open", detail: "" };
    out.connections.push(record);
    const abort = new AbortController();
    const onStop = () => abort.abort();
    stopped.signal.addEventListener("abort", onStop);
    const vanish = next(5) === 0 ? setTimeout(() => abort.abort(), between(500, 8000)) : undefined;
    try {
      for await (const r of client.watch(
        { after },
        { headers: bearer(TOKEN_OF.get(p.subject) ?? ""), signal: abort.signal },
      )) {
        if (r.kind.case === "event") {
          out.ids.push(r.kind.value.resourceId);
          record.ids.push(r.kind.value.resourceId);
          after = r.kind.value.cursor;
        } else if (r.kind.case === "checkpoint") after = r.kind.value.cursor;
      }
      record.end = abort.signal.aborted ? "closed" : "clean";
    } catch (err) {
      record.end = abort.signal.aborted ? "closed" : "error";
      record.detail = String(err).slice(0, 200);
      if (ConnectError.from(err).code === Code.OutOfRange)
        record.detail = `out_of_range: ${record.detail}`;
    } finally {
      clearTimeout(vanish);
      stopped.signal.removeEventListener("abort", onStop);
    }
    await sleep(between(50, 400));
  }
}

// ---- faults --------------------------------------------------------------------------------

type FaultKind =
  | "kill -9"
  | "SIGTERM and restart"
  | "terminate backends"
  | "PostgreSQL restart"
  | "PostgreSQL stalled";

async function fault(
  kind: FaultKind,
  cluster: Cluster,
  postgres: OwnPostgres,
  proxy: StallProxy,
  database: string,
) {
  const replica = faultRandom(3);
  switch (kind) {
    case "kill -9": {
      const fromS = seconds();
      await cluster.kill(replica);
      kills.push({ fromS, toS: seconds() });
      await sleep(faultBetween(200, 3000));
      await cluster.start(replica);
      return `replica ${replica + 1}`;
    }
    case "SIGTERM and restart":
      await cluster.stop(replica);
      await cluster.start(replica);
      return `replica ${replica + 1}`;
    case "terminate backends":
      return `${await postgres.terminateBackends(database)} backends`;
    case "PostgreSQL restart": {
      const mode = faultRandom(2) === 0 ? "fast" : "immediate";
      await postgres.restart(mode);
      return mode;
    }
    case "PostgreSQL stalled": {
      const ms = faultBetween(1000, 6000);
      proxy.stall();
      await sleep(ms);
      proxy.resume();
      return `${ms} ms`;
    }
  }
}

const FAULTS: FaultKind[] = [
  "kill -9",
  "SIGTERM and restart",
  "terminate backends",
  "PostgreSQL restart",
  "PostgreSQL stalled",
];

// ---- the run -------------------------------------------------------------------------------

it(`keeps the guarantees under random faults (seed ${SEED})`, async () => {
  log(`seed ${SEED}, duration ${DURATION_MS / 1000} s; reproduce: ${REPRODUCE}`);
  const dir = mkdtempSync(join(tmpdir(), "robustness-"));
  const tokensFile = join(dir, "tokens.json");
  writeFileSync(tokensFile, JSON.stringify({ tokens: TOKEN_ENTRIES }));
  const postgres = await startOwnPostgres();
  const proxy = new StallProxy(postgres.port);
  await proxy.start();
  let cluster: Cluster | undefined;
  const publishes: PublishRecord[] = [];
  const streams: StreamRecord[] = [];
  const feeds: FeedRecord[] = [];
  const faults = new Map<FaultKind, number>();
  try {
    cluster = await startCluster({
      adminDatabaseUrl: proxy.urlOf(postgres.url),
      env: {
        AUTH_TOKENS_FILE: tokensFile,
        PUBLISH_MAX_EVENTS_PER_SECOND: "0",
        FEED_CHECKPOINT_MS: "1000",
        JSONL_KEEPALIVE_MS: "1000",
        LOG_LEVEL: "warn",
      },
    });
    const database = new URL(cluster.databaseUrl).pathname.slice(1);
    const url = cluster.url;
    const h2 = () => createGrpcTransport({ baseUrl: url });
    const h1 = () => createConnectTransport({ baseUrl: url, httpVersion: "1.1" });

    const clients: Promise<void>[] = [];
    clients.push(publisher("keyed-grpc", h2(), true, publishes));
    clients.push(publisher("keyed-connect", h1(), true, publishes));
    clients.push(publisher("keyed-grpc-2", h2(), true, publishes));
    clients.push(publisher("keyless-grpc", h2(), false, publishes));
    clients.push(publisher("keyless-connect", h1(), false, publishes));
    const watchers = [
      {
        name: "sdk (admin)",
        principal: ADMIN_A,
        open: (p: Principal, r: StreamRecord, s: AbortSignal, slow: number) =>
          sdkWatcher(url, p, r, s, slow),
      },
      {
        name: "python-like (admin)",
        principal: ADMIN_A,
        open: (p: Principal, r: StreamRecord, s: AbortSignal, slow: number) =>
          jsonlPython(url, p, r, s, slow),
      },
      {
        name: "python-like (member)",
        principal: MEMBER_A,
        open: (p: Principal, r: StreamRecord, s: AbortSignal, slow: number) =>
          jsonlPython(url, p, r, s, slow),
      },
      {
        name: "go-like (admin)",
        principal: ADMIN_A,
        open: (p: Principal, r: StreamRecord, s: AbortSignal, slow: number) =>
          jsonlGo(url, p, r, s, slow),
      },
      { name: "connect (admin)", principal: ADMIN_A, open: connectWatcher(h1()) },
      { name: "grpc (member)", principal: MEMBER_A, open: connectWatcher(h2()) },
      {
        name: "grpc-web (admin)",
        principal: ADMIN_A,
        open: connectWatcher(createGrpcWebTransport({ baseUrl: url, httpVersion: "1.1" })),
      },
    ];
    for (const w of watchers) clients.push(watcher(w, streams));
    for (const [name, transport, principal] of [
      ["feed grpc (admin)", h2(), ADMIN_A],
      ["feed connect (member)", h1(), MEMBER_A],
    ] as const) {
      const record: FeedRecord = { consumer: name, principal, ids: [], connections: [] };
      feeds.push(record);
      clients.push(feedConsumer(name, transport, principal, record));
    }

    // The seeded schedule of faults, one at a time.
    const until = performance.now() + DURATION_MS;
    while (performance.now() < until) {
      await sleep(faultBetween(500, 3000));
      if (performance.now() >= until) break;
      const kind = FAULTS[faultRandom(FAULTS.length)] as FaultKind;
      try {
        const began = at();
        const what = await fault(kind, cluster, postgres, proxy, database);
        log(`fault at ${began}-${at()}: ${kind} (${what})`);
      } catch (err) {
        log(`fault: ${kind} did not complete: ${String(err).split("\n")[0]}`);
      }
      faults.set(kind, (faults.get(kind) ?? 0) + 1);
    }

    // Heal: the network back, every replica running and routed to.
    proxy.resume();
    for (let i = 0; i < 3; i++) {
      const p = cluster.replicas[i]?.process;
      if (p === undefined || p.exitCode !== null || p.signalCode !== null) await cluster.start(i);
    }
    for (let i = 0; i < 3; i++) await cluster.balancerSees(i, true);
    // Let the last publishes settle and the streams catch up, then stop the clients.
    await sleep(3000);
    running = false;
    await Promise.race([Promise.all(clients.slice(0, 5)), sleep(60_000)]);
    await sleep(3000);
    stopped.abort();
    await Promise.race([Promise.all(clients), sleep(30_000)]);

    const c = new pg.Client({
      connectionString: postgres.url.replace(/\/postgres$/, `/${database}`),
    });
    await c.connect();
    let logged: LoggedEvent[];
    let lastSequence: number;
    try {
      const rows = await c.query<{
        sequence: string;
        resource_id: string;
        organization_id: string;
        resource_type: number;
        creator_id: string;
      }>(
        "SELECT sequence, resource_id, organization_id, resource_type, creator_id FROM events ORDER BY sequence",
      );
      logged = rows.rows.map((r) => ({
        sequence: Number(r.sequence),
        id: r.resource_id,
        organizationId: r.organization_id,
        resourceType: r.resource_type,
        creatorId: r.creator_id,
      }));
      lastSequence = Number(
        (await c.query<{ last: string }>("SELECT last FROM event_sequence")).rows[0]?.last ?? 0,
      );
    } finally {
      await c.end();
    }

    const history: History = { publishes, streams, feeds, log: logged, lastSequence, kills };
    const violations = check(history);
    const attempts = publishes.flatMap((p) => p.attempts);
    const delivered =
      streams.reduce((n, s) => n + s.ids.length, 0) + feeds.reduce((n, f) => n + f.ids.length, 0);
    log(
      [
        `seed ${SEED}: ${[...faults.values()].reduce((a, b) => a + b, 0)} faults (${[...faults].map(([k, n]) => `${k} ${n}`).join(", ")})`,
        `${publishes.length} publishes (${attempts.length} attempts: ${attempts.filter((a) => a.kind === "acked").length} acknowledged, ${attempts.filter((a) => a.kind === "acked" && a.replayed).length} of them replayed, ${attempts.filter((a) => a.kind === "refused").length} refused, ${attempts.filter((a) => a.kind === "unknown").length} outcome unknown)`,
        `${logged.length} events logged, ${delivered} delivered`,
        `${streams.length + feeds.reduce((n, f) => n + f.connections.length, 0)} streams (${streams.filter((s) => s.end === "error").length + feeds.reduce((n, f) => n + f.connections.filter((x) => x.end === "error").length, 0)} ended by an error)`,
      ].join("; "),
    );
    for (const v of violations) log(`VIOLATION (seed ${SEED}; reproduce: ${REPRODUCE}): ${v}`);
    expect(violations, `violations with seed ${SEED}; reproduce: ${REPRODUCE}`).toEqual([]);
  } catch (err) {
    if (cluster !== undefined && !(err instanceof Error && err.message.startsWith("violations"))) {
      log(await cluster.report().catch(() => "(no report)"));
    }
    throw err;
  } finally {
    running = false;
    stopped.abort();
    proxy.resume();
    await cluster?.close().catch(() => {});
    proxy.close();
    await postgres.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
