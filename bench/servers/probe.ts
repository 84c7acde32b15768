import { writeHeapSnapshot } from "node:v8";

/**
 * Preloaded into every server under test (`node --expose-gc --import probe.js …`), ours included,
 * so that memory is measured the same way for all three: on the orchestrator's request over the
 * IPC channel, run a full GC and report process.memoryUsage(). Adds nothing else; the server's
 * own code is untouched. Exits with the orchestrator (IPC disconnect) so no server outlives it.
 */

interface ProbeRequest {
  readonly type: "probe";
  readonly id: number;
}

const send = process.send?.bind(process);
if (send !== undefined) {
  process.on("message", (m: ProbeRequest) => {
    if (m?.type !== "probe") return;
    const gc = (globalThis as { gc?: () => void }).gc;
    gc?.();
    gc?.();
    const mu = process.memoryUsage();
    // BENCH_PROBE_SNAPSHOT=<dir>: also a heap snapshot at each probe, to see what a stream keeps.
    const dir = process.env.BENCH_PROBE_SNAPSHOT;
    if (dir) writeHeapSnapshot(`${dir}/${process.pid}-${m.id}.heapsnapshot`);
    send({
      type: "probe-result",
      id: m.id,
      rssBytes: mu.rss,
      heapUsedBytes: mu.heapUsed,
      externalBytes: mu.external,
      gc: gc !== undefined,
    });
  });
  process.on("disconnect", () => process.exit(0));
  process.channel?.unref();
}
