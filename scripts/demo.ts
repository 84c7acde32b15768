/**
 * Demo publisher: simulates a small control plane and publishes a realistic, continuing stream of
 * resource changes to a running event server, so that a watcher sees live events at once.
 *
 * At start it creates a runner and two projects. Then, every ~0.5–1.5 s, it publishes one batch:
 * environments are created (mostly by the dev member), start, get tasks, task executions and a
 * service, run, are stopped and finally deleted (their services, executions and tasks first);
 * projects are updated now and then. At most 5 environments are alive at a time. What a user does
 * (creating, starting, stopping, changing and deleting, as the dev admin or member) carries an
 * `actorId`, so it lands in the audit log too; status changes reported by machines do not.
 *
 * Usage (server running in dev mode, e.g. `npm start` in another terminal):
 *   npm run demo
 *   curl -sN -X POST http://127.0.0.1:8080/api/gitpod.v1.EventService/WatchEvents \
 *     -H 'Authorization: Bearer dev-member-token' -H 'Content-Type: application/jsonl' -d '{}'
 *
 * Environment variables (all optional):
 *   EVENTS_URL         server base URL            (default http://127.0.0.1:${PORT ?? 8080})
 *   DEMO_TOKEN         publisher token            (default dev-publisher-token)
 *   DEMO_ORGANIZATION  organization UUID          (default the dev organization)
 *   DEMO_INTERVAL_MS   mean pause between batches (default 1000; randomized ±50%)
 *   DEMO_COUNT         stop after that many batches (default: run until Ctrl-C)
 *
 * It speaks Connect-protocol JSON to eventservice.ingest.v1.IngestService/Publish via `fetch`,
 * the official way: every batch carries an idempotency key of its own, and a batch that got no
 * answer, or `unavailable`, is sent again with the same key after a growing, jittered pause, so
 * that a retry never writes it twice (see docs/guarantees.md and examples/publish.ts).
 */
import { setTimeout as sleep } from "node:timers/promises";

const env = process.env;
const BASE = (env.EVENTS_URL || `http://127.0.0.1:${env.PORT || 8080}`).replace(/\/+$/, "");
const TOKEN = env.DEMO_TOKEN || "dev-publisher-token";
const ORG = env.DEMO_ORGANIZATION || "0d000000-0000-4000-8000-000000000001";
const ADMIN = "0d000000-0000-4000-8000-00000000a001";
const MEMBER = "0d000000-0000-4000-8000-00000000a002";
const MAX_LIVE_ENVIRONMENTS = 5;
/** Backoff between attempts of one batch: full jitter, doubling from the first to the last, ms. */
const RETRY_FIRST_MS = 200;
const RETRY_MAX_MS = 5000;
/** How long one attempt may take (its deadline), ms. */
const ATTEMPT_TIMEOUT_MS = 5000;

function intOption(name: string, def: number | undefined, min: number): number | undefined {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === "") return def;
  if (!/^\d+$/.test(raw) || Number(raw) < min) {
    console.error(`${name}: expected an integer of at least ${min}, got "${raw}"`);
    process.exit(2);
  }
  return Number(raw);
}
const INTERVAL_MS = intOption("DEMO_INTERVAL_MS", 1000, 0) ?? 1000;
const COUNT = intOption("DEMO_COUNT", undefined, 1);

type Kind = "ENVIRONMENT" | "RUNNER" | "PROJECT" | "TASK" | "TASK_EXECUTION" | "SERVICE";
type Op = "CREATE" | "UPDATE" | "DELETE" | "UPDATE_STATUS";
/**
 * One resource change; `env` is the owning environment, `creator` only set on creates. `actor` is
 * the user who did it (a user's action is audited; status changes reported by machines have none),
 * `action` the audit log's name for it when type and operation do not say it (`environment.start`).
 */
type Change = {
  kind: Kind;
  op: Op;
  id: string;
  env?: string;
  creator?: string;
  actor?: string;
  action?: string;
};
/** One Publish call and the line printed for it. */
type Batch = { text: string; changes: Change[] };

const uuid = (): string => crypto.randomUUID();
const short = (id: string): string => `${id.slice(0, 4)}…`;
const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)] as T;
const plural = (n: number, word: string): string =>
  `${n} ${word}${n === 1 ? "" : word.endsWith("h") ? "es" : "s"}`;

const runner = uuid();
const projects = [uuid(), uuid()];
/** The remaining steps of each live environment. */
const live: Batch[][] = [];

/** Plans the whole life of a new environment as a list of batches, published one per tick. */
function newEnvironment(): Batch[] {
  const id = uuid();
  const creator = Math.random() < 0.75 ? MEMBER : ADMIN;
  const tasks = Array.from({ length: 1 + Math.floor(Math.random() * 2) }, uuid);
  const executions = tasks.map(uuid);
  const service = uuid();
  const name = `environment ${short(id)}`;
  const c = (kind: Kind, op: Op, rid: string, creator?: string): Change => {
    return { kind, op, id: rid, env: id, creator };
  };
  const status = (s: string): Batch => ({
    text: `${name} ${s}`,
    changes: [c("ENVIRONMENT", "UPDATE_STATUS", id)],
  });
  /** The creator asks for it (audited); the runner then reports the status change. */
  const userStatus = (s: string, action: string): Batch => ({
    text: `${name} ${s}`,
    changes: [{ ...c("ENVIRONMENT", "UPDATE_STATUS", id), actor: creator, action }],
  });
  const steps: Batch[] = [
    {
      text: `${name} created by ${creator === MEMBER ? "member" : "admin"} from project ${short(pick(projects))}`,
      changes: [{ ...c("ENVIRONMENT", "CREATE", id, creator), actor: creator }],
    },
    userStatus("starting", "environment.start"),
    status("running"),
    {
      text: `${name}: ${plural(tasks.length, "task")} and a service defined`,
      changes: [
        ...tasks.map((t) => c("TASK", "CREATE", t, creator)),
        c("SERVICE", "CREATE", service, creator),
      ],
    },
    {
      text: `service ${short(service)} running`,
      changes: [c("SERVICE", "UPDATE_STATUS", service)],
    },
  ];
  for (const [i, x] of executions.entries()) {
    const task = `task ${short(tasks[i] ?? "")}`;
    steps.push(
      { text: `${task} started`, changes: [c("TASK_EXECUTION", "CREATE", x, creator)] },
      { text: `${task} execution running`, changes: [c("TASK_EXECUTION", "UPDATE_STATUS", x)] },
      { text: `${task} execution succeeded`, changes: [c("TASK_EXECUTION", "UPDATE_STATUS", x)] },
    );
  }
  if (Math.random() < 0.5) {
    steps.push({
      text: `${name} settings changed`,
      changes: [{ ...c("ENVIRONMENT", "UPDATE", id), actor: creator }],
    });
  }
  steps.push(userStatus("stopping", "environment.stop"), status("stopped"), {
    text: `${name} deleted with its service and ${plural(tasks.length, "task")}`,
    changes: [
      c("SERVICE", "DELETE", service),
      ...executions.map((x) => c("TASK_EXECUTION", "DELETE", x)),
      ...tasks.map((t) => c("TASK", "DELETE", t)),
      { ...c("ENVIRONMENT", "DELETE", id), actor: creator },
    ],
  });
  return steps;
}

/** Decides what happens next in the simulated control plane. */
function nextBatch(n: number): Batch {
  if (n === 1) {
    return {
      text: `runner ${short(runner)} and ${plural(projects.length, "project")} created`,
      changes: [
        { kind: "RUNNER", op: "CREATE", id: runner, creator: ADMIN, actor: ADMIN },
        ...projects.map(
          (id): Change => ({ kind: "PROJECT", op: "CREATE", id, creator: ADMIN, actor: ADMIN }),
        ),
      ],
    };
  }
  const r = Math.random();
  let chosen: Batch[];
  if (live.length < MAX_LIVE_ENVIRONMENTS && (live.length === 0 || r < 0.2)) {
    chosen = newEnvironment();
    live.push(chosen);
  } else if (r > 0.93) {
    const project = pick(projects);
    return {
      text: `project ${short(project)} updated`,
      changes: [{ kind: "PROJECT", op: "UPDATE", id: project, actor: ADMIN }],
    };
  } else {
    chosen = pick(live);
  }
  const step = chosen.shift() as Batch;
  if (chosen.length === 0) live.splice(live.indexOf(chosen), 1);
  return step;
}

function toWire(ch: Change): Record<string, string> {
  const ev: Record<string, string> = {
    resourceType: `RESOURCE_TYPE_${ch.kind}`,
    operation: `RESOURCE_OPERATION_${ch.op}`,
    resourceId: ch.id,
    organizationId: ORG,
  };
  if (ch.env !== undefined) ev.environmentId = ch.env;
  if (ch.creator !== undefined) ev.creatorId = ch.creator;
  if (ch.actor !== undefined) {
    ev.actorId = ch.actor;
    ev.actorPrincipal = "PRINCIPAL_USER";
  }
  if (ch.action !== undefined) ev.action = ch.action;
  return ev;
}

const stop = new AbortController();
let waiting = false;
/**
 * Says once why publishing has to wait, then sleeps a random time up to the attempt's ceiling
 * (rejects when stopped).
 */
function retryLater(why: string, attempt: number): Promise<void> {
  if (!waiting) console.error(`${why}; retrying with the same idempotency key…`);
  waiting = true;
  const ceiling = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** Math.min(attempt - 1, 10));
  return sleep(Math.round(Math.random() * ceiling), undefined, { signal: stop.signal });
}

/**
 * Publishes one batch under a key of its own, retrying with that key while the server is
 * unreachable or cannot answer; exits on a refusal.
 */
async function publish(
  changes: Change[],
): Promise<{ firstSequence: string; lastSequence: string; replayed?: boolean }> {
  const body = JSON.stringify({ events: changes.map(toWire), idempotencyKey: uuid() });
  for (let attempt = 1; ; attempt++) {
    let res: Response;
    let text: string;
    try {
      res = await fetch(`${BASE}/eventservice.ingest.v1.IngestService/Publish`, {
        method: "POST",
        headers: {
          Authorization: `Bearer ${TOKEN}`,
          "Content-Type": "application/json",
          "Connect-Protocol-Version": "1",
          "Connect-Timeout-Ms": String(ATTEMPT_TIMEOUT_MS),
        },
        body,
        signal: AbortSignal.any([stop.signal, AbortSignal.timeout(ATTEMPT_TIMEOUT_MS + 1000)]),
      });
      text = await res.text();
    } catch (err) {
      if (stop.signal.aborted) throw err;
      const cause = (err as { cause?: { code?: string } }).cause?.code ?? String(err);
      const hint = "start it first with `npm start` (or set EVENTS_URL / PORT)";
      await retryLater(`cannot reach the event server at ${BASE} (${cause}): ${hint}`, attempt);
      continue;
    }
    if (res.ok) {
      if (waiting) console.error(`connected to ${BASE}`);
      waiting = false;
      return JSON.parse(text);
    }
    let error = { code: "unknown", message: text.trim() };
    try {
      error = { ...error, ...JSON.parse(text) };
    } catch {}
    const detail = `HTTP ${res.status} ${error.code}: ${error.message}`;
    if (res.status === 401 || res.status === 403) {
      console.error(`the server refused the publisher token (${detail})`);
      console.error("Set DEMO_TOKEN to a publisher token (dev mode: dev-publisher-token).");
      process.exit(1);
    }
    if (
      [502, 503, 504, 429].includes(res.status) ||
      ["unavailable", "deadline_exceeded", "resource_exhausted"].includes(error.code)
    ) {
      await retryLater(`the server is not available (${detail})`, attempt);
      continue;
    }
    console.error(`publish failed: ${detail}`);
    process.exit(1);
  }
}

async function main(): Promise<void> {
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => stop.abort());
  console.log(`demo: publishing to ${BASE} for organization ${ORG} (Ctrl-C to stop)`);
  let batches = 0;
  let events = 0;
  try {
    while (COUNT === undefined || batches < COUNT) {
      if (batches > 0) {
        const pause = INTERVAL_MS * (0.5 + Math.random());
        await sleep(Math.round(pause), undefined, { signal: stop.signal });
      }
      const batch = nextBatch(batches + 1);
      const { firstSequence: first, lastSequence: last, replayed } = await publish(batch.changes);
      const ops = [...new Set(batch.changes.map((ch) => ch.op))].join(", ");
      // Replayed: an attempt whose answer was lost had written it; the retry wrote nothing.
      const again = replayed ? ", written by an earlier attempt" : "";
      console.log(`#${first === last ? first : `${first}–${last}`} ${batch.text} (${ops}${again})`);
      batches++;
      events += batch.changes.length;
    }
  } catch (err) {
    if (!stop.signal.aborted) throw err;
  }
  console.log(`demo: published ${plural(batches, "batch")}, ${plural(events, "event")}`);
}

await main();
