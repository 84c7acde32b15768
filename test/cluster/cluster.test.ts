import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import * as http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import Gitpod from "@gitpod/sdk";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from "vitest";
import { type Cluster, startCluster } from "../../scripts/cluster.js";
import { FeedService } from "../../src/gen/eventservice/feed/v1/feed_pb.js";
import { IngestService } from "../../src/gen/eventservice/ingest/v1/ingest_pb.js";
import { EventService } from "../../src/gen/gitpod/v1/event_pb.js";
import { Operation, ResourceType } from "../../src/watch/model.js";
import { bearer } from "../helpers/clients.js";
import { ORG_A, TOKEN_ENTRIES, TOKENS, uuid } from "../helpers/fixtures.js";

// Issue "Replicas you can deploy": three replicas on one PostgreSQL database behind HAProxy
// (deploy/haproxy.cfg), watchers of every kind and a publisher at 200 events/s through the
// proxy, through a rolling restart, a kill -9 and the database's connections killed for 5 s.

const dir = mkdtempSync(join(tmpdir(), "events-cluster-"));
const tokensFile = join(dir, "tokens.json");
writeFileSync(tokensFile, JSON.stringify({ tokens: TOKEN_ENTRIES }));

let cluster: Cluster;
beforeAll(async () => {
  cluster = await startCluster({
    env: {
      AUTH_TOKENS_FILE: tokensFile,
      PUBLISH_MAX_EVENTS_PER_SECOND: "0",
      FEED_CHECKPOINT_MS: "1000",
      JSONL_KEEPALIVE_MS: "1000",
      // Kept in memory by the cluster and printed when the test fails (echoed with CLUSTER_LOG=1).
      LOG_LEVEL: "info",
    },
    ...(process.env.CLUSTER_LOG === "1" && { log: (l: string) => process.stdout.write(`${l}\n`) }),
  });
}, 60_000);
afterAll(async () => {
  await cluster?.close();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

/** How one connection of a watcher ended. */
type End = "open" | "clean" | "error";

/**
 * A watcher that reconnects through the proxy whenever its stream ends, recording each
 * connection's resource ids and how it ended.
 */
interface Reconnecting {
  readonly name: string;
  readonly connections: { ids: string[]; end: End; detail?: string }[];
  stop(): Promise<void>;
}

function reconnecting(
  name: string,
  watchOnce: (signal: AbortSignal, onId: (id: string) => void) => Promise<void>,
): Reconnecting {
  const connections: Reconnecting["connections"] = [];
  const abort = new AbortController();
  const loop = (async () => {
    while (!abort.signal.aborted) {
      const c: Reconnecting["connections"][number] = { ids: [], end: "open" };
      connections.push(c);
      try {
        await watchOnce(abort.signal, (id) => c.ids.push(id));
        c.end = abort.signal.aborted ? "open" : "clean";
      } catch (err) {
        c.end = abort.signal.aborted ? "open" : "error";
        c.detail = String(err);
      }
      if (!abort.signal.aborted) await sleep(50);
    }
  })();
  return {
    name,
    connections,
    async stop() {
      abort.abort();
      await loop;
    },
  };
}

/** The official TypeScript SDK (JSONL over HTTP/1.1). */
const sdkWatcher = () =>
  reconnecting("official SDK (JSONL)", async (signal, onId) => {
    const client = new Gitpod({
      bearerToken: TOKENS.memberA,
      baseURL: `${cluster.url}/api`,
      maxRetries: 0,
    });
    const stream = await client.events.watch({}, { signal });
    for await (const e of stream) onId((e as { resourceId: string }).resourceId);
  });

/** A reader that behaves like the Python SDK: whole 64-byte chunks, then lines. */
const pythonWatcher = () =>
  reconnecting("Python-SDK-style JSONL reader", (signal, onId) => {
    return new Promise<void>((resolve, reject) => {
      const req = http.request(`${cluster.url}/api/gitpod.v1.EventService/WatchEvents`, {
        method: "POST",
        headers: {
          ...bearer(TOKENS.memberA),
          "content-type": "application/json",
          accept: "application/jsonl",
        },
        signal,
      });
      req.on("error", reject);
      req.on("response", (res) => {
        if (res.statusCode !== 200) {
          reject(new Error(`HTTP ${res.statusCode}`));
          res.resume();
          return;
        }
        let held = Buffer.alloc(0);
        let text = "";
        const lines = (bytes: Buffer) => {
          text += bytes.toString("utf8");
          for (let nl = text.indexOf("\n"); nl !== -1; nl = text.indexOf("\n")) {
            const line = text.slice(0, nl);
            text = text.slice(nl + 1);
            onId((JSON.parse(line) as { resourceId: string }).resourceId);
          }
        };
        res.on("data", (chunk: Buffer) => {
          held = Buffer.concat([held, chunk]);
          const whole = held.length - (held.length % 64);
          lines(held.subarray(0, whole));
          held = Buffer.from(held.subarray(whole));
        });
        res.on("aborted", () => reject(new Error("aborted")));
        res.on("error", reject);
        res.on("end", () => resolve());
      });
      req.end("{}");
    });
  });

/** gRPC over HTTP/2 (connect-node). */
const grpcWatcher = () =>
  reconnecting("gRPC (connect-node)", async (signal, onId) => {
    const client = createClient(EventService, createGrpcTransport({ baseUrl: cluster.url }));
    for await (const e of client.watchEvents({}, { headers: bearer(TOKENS.memberA), signal })) {
      onId(e.resourceId);
    }
  });

/** The resumable feed, resuming from its last cursor after every cut. */
function feedWatcher() {
  const ids: string[] = [];
  let cursor = "";
  let started = false;
  const w = reconnecting("feed (gRPC), resuming from its cursor", async (signal, onId) => {
    const client = createClient(FeedService, createGrpcTransport({ baseUrl: cluster.url }));
    for await (const m of client.watch(
      { after: cursor },
      { headers: bearer(TOKENS.memberA), signal },
    )) {
      if (m.kind.case === "event") {
        ids.push(m.kind.value.resourceId);
        onId(m.kind.value.resourceId);
        cursor = m.kind.value.cursor;
      } else if (m.kind.case === "checkpoint") {
        cursor = m.kind.value.cursor;
        started = true;
      }
    }
  });
  return {
    ...w,
    stop: w.stop,
    ids,
    get started() {
      return started;
    },
  };
}

/** Publishes 10 PROJECT events every 50 ms through the proxy, recording what was acknowledged. */
function publisher() {
  const client = createClient(IngestService, createGrpcTransport({ baseUrl: cluster.url }));
  const acked: { id: string; seq: number }[] = [];
  const failed: { ids: string[]; code: Code; phase: string }[] = [];
  let phase = "steady";
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const ids = Array.from({ length: 10 }, () => uuid());
      const at = phase;
      const tick = sleep(50);
      try {
        const res = await client.publish(
          {
            events: ids.map((id) => ({
              resourceType: ResourceType.PROJECT,
              operation: Operation.UPDATE,
              resourceId: id,
              organizationId: ORG_A,
            })),
          },
          { headers: bearer(TOKENS.publisher), timeoutMs: 10_000 },
        );
        for (const [i, id] of ids.entries()) acked.push({ id, seq: Number(res.firstSequence) + i });
      } catch (err) {
        failed.push({ ids, code: ConnectError.from(err).code, phase: at });
      }
      await tick;
    }
  })();
  return {
    acked,
    failed,
    set phase(p: string) {
      phase = p;
    },
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

/** Kills the cluster database's connections again and again for `ms`. */
async function killDatabaseConnections(ms: number): Promise<void> {
  const name = new URL(cluster.databaseUrl).pathname.slice(1);
  const admin = new pg.Client({
    connectionString: cluster.databaseUrl.replace(`/${name}`, "/postgres"),
  });
  await admin.connect();
  try {
    const until = Date.now() + ms;
    while (Date.now() < until) {
      await admin.query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        [name],
      );
      await sleep(100);
    }
  } finally {
    await admin.end();
  }
}

describe("a cluster of three replicas behind HAProxy", () => {
  it("loses nothing acknowledged through a rolling restart, a kill -9 and a database outage; cut streams end with errors", async () => {
    // The replicas' and HAProxy's own account of what happened, for whoever reads a failure.
    onTestFailed(async () => {
      process.stdout.write(`\n${await cluster.report()}\n`);
    });
    const feed = feedWatcher();
    const watchers = [sdkWatcher(), pythonWatcher(), grpcWatcher()];
    await expect
      .poll(() => feed.started, {
        timeout: 20_000,
        message: JSON.stringify(feed.connections.slice(-3)),
      })
      .toBe(true);
    const pub = publisher();
    const acked = () => pub.acked.length;
    const progress = async () => {
      const n = acked();
      await expect.poll(acked, { timeout: 30_000 }).toBeGreaterThan(n + 50);
    };
    await progress();

    pub.phase = "rolling restart";
    for (let i = 0; i < 3; i++) {
      await cluster.stop(i);
      await cluster.start(i);
      await cluster.balancerSees(i, true);
      await progress();
    }

    pub.phase = "kill -9";
    await cluster.kill(1);
    await progress();
    await cluster.start(1);
    await cluster.balancerSees(1, true);
    await progress();

    pub.phase = "database outage";
    await killDatabaseConnections(5000);
    pub.phase = "after";
    for (let i = 0; i < 3; i++) await cluster.balancerSees(i, true);
    await progress();
    await pub.stop();

    // The feed ends with exactly the acknowledged events, in sequence order, none twice; any
    // other event it has was written by a publish whose answer was lost (a replica killed
    // mid-call), never by one refused while the database was out.
    const ackedIds = [...pub.acked].sort((a, b) => a.seq - b.seq).map((a) => a.id);
    await expect
      .poll(() => ackedIds.every((id) => feed.ids.includes(id)), { timeout: 30_000 })
      .toBe(true);
    expect(new Set(feed.ids).size).toBe(feed.ids.length);
    const ackedSet = new Set(ackedIds);
    expect(feed.ids.filter((id) => ackedSet.has(id))).toEqual(ackedIds);
    const refusedInOutage = new Set(
      pub.failed
        .filter((f) => f.phase === "database outage" && f.code === Code.Unavailable)
        .flatMap((f) => f.ids),
    );
    expect(feed.ids.filter((id) => refusedInOutage.has(id))).toEqual([]);
    const attempted = new Set([...ackedIds, ...pub.failed.flatMap((f) => f.ids)]);
    expect(feed.ids.every((id) => attempted.has(id))).toBe(true);

    const order = new Map(ackedIds.map((id, i) => [id, i]));
    console.log(
      `cluster: ${ackedIds.length} events acknowledged, ${pub.failed.length} publishes refused ` +
        `(${[...new Set(pub.failed.map((f) => `${f.phase}: ${Code[f.code]}`))].join("; ")}); ` +
        `feed ${feed.ids.length} events over ${feed.connections.length} connections; ` +
        watchers.map((w) => `${w.name}: ${w.connections.length} connections`).join("; "),
    );
    for (const w of [...watchers, feed]) await w.stop();
    for (const w of watchers) {
      // Streams were cut (each replica went away once) and never ended cleanly.
      expect(w.connections.length, w.name).toBeGreaterThan(1);
      expect(
        w.connections.filter((c) => c.end === "clean"),
        w.name,
      ).toEqual([]);
      for (const c of w.connections) {
        // Within one connection: in order, none twice, and no acknowledged event skipped
        // between the first and the last it received.
        const ranks = c.ids.map((id) => order.get(id)).filter((r): r is number => r !== undefined);
        expect(new Set(c.ids).size, w.name).toBe(c.ids.length);
        expect(ranks, w.name).toEqual([...ranks].sort((a, b) => a - b));
        if (ranks.length > 0) {
          expect(ranks.length, w.name).toBe((ranks.at(-1) as number) - (ranks[0] as number) + 1);
        }
      }
      // Reconnecting worked: the last connection received the last events.
      expect(w.connections.at(-1)?.ids.length, w.name).toBeGreaterThan(0);
    }
  }, 240_000);
});
