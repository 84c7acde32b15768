import { writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { writeHeapSnapshot } from "node:v8";

/**
 * Preloaded into every server under test (`node --expose-gc --import probe.js …`), ours included,
 * so that memory is measured the same way for all three: on the orchestrator's request over the
 * IPC channel, run a full GC and report process.memoryUsage(). Scenario 11 may also ask it to
 * start and stop a CPU profile (V8's sampling profiler through node:inspector, in this process),
 * written as a .cpuprofile file. Adds nothing else; the server's own code is untouched. Exits
 * with the orchestrator (IPC disconnect) so no server outlives it.
 */

interface ProbeRequest {
  readonly type: "probe";
  readonly id: number;
}

interface ProfileRequest {
  readonly type: "profile";
  readonly id: number;
  readonly action: "start" | "stop";
  /** Where "stop" writes the profile. */
  readonly file: string;
}

/** Sampling interval of the CPU profile, µs (V8's default is 1,000). */
const PROFILE_INTERVAL_US = 200;
let profiler: Session | undefined;

/** Starts a CPU profile, or stops it and writes it to `m.file`; returns the file written. */
async function profile(m: ProfileRequest): Promise<string | null> {
  if (m.action === "start") {
    if (profiler !== undefined) throw new Error("a profile is running already");
    const session = new Session();
    session.connect();
    await session.post("Profiler.enable");
    await session.post("Profiler.setSamplingInterval", { interval: PROFILE_INTERVAL_US });
    await session.post("Profiler.start");
    profiler = session;
    return null;
  }
  const session = profiler;
  if (session === undefined) throw new Error("no profile is running");
  profiler = undefined;
  const { profile } = await session.post("Profiler.stop");
  session.disconnect();
  writeFileSync(m.file, JSON.stringify(profile));
  return m.file;
}

const send = process.send?.bind(process);
if (send !== undefined) {
  process.on("message", (m: ProbeRequest | ProfileRequest) => {
    if (m?.type === "profile") {
      profile(m).then(
        (file) => send({ type: "profile-result", id: m.id, file }),
        (err: unknown) =>
          send({ type: "profile-result", id: m.id, file: null, error: (err as Error).message }),
      );
      return;
    }
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
