import type { Logger } from "pino";
import type { Store } from "./store.js";

const DAY_MS = 24 * 3600_000;

/**
 * Prunes the event log and the audit log in the background, every `intervalMs`, in bounded
 * chunks (see the stores), so publishes never wait on it. Returns a function that stops it.
 */
export function startPruning(
  store: Store,
  options: {
    eventLogRetentionMs: number;
    auditLogRetentionDays: number;
    logger: Logger;
    intervalMs?: number;
    now?: () => number;
  },
): () => void {
  const now = options.now ?? Date.now;
  let running = false;
  const prune = async () => {
    if (running) return;
    running = true;
    try {
      const t = now();
      await store.prune({
        eventsBeforeMs: t - options.eventLogRetentionMs,
        auditBeforeMs: t - options.auditLogRetentionDays * DAY_MS,
      });
    } catch (err) {
      options.logger.warn({ err }, "pruning failed; will retry");
    } finally {
      running = false;
    }
  };
  const timer = setInterval(() => void prune(), options.intervalMs ?? 60_000);
  timer.unref();
  void prune();
  return () => clearInterval(timer);
}
