import type { Logger } from "pino";

/** Whether the server serves: `/readyz` (and, later, gRPC health) answer from it. */
export type ReadinessState =
  | { readonly ready: true }
  | { readonly ready: false; readonly reason: "starting" | "draining" | "database unavailable" };

export interface ReadinessOptions {
  /** Resolves when the store answers; rejects (or hangs) when it does not. */
  readonly ping: () => Promise<void>;
  readonly logger: Logger;
  /** How long a store check is trusted, and how long it may take, in ms. */
  readonly checkEveryMs?: number;
  /** Monotonic clock in ms (tests). */
  readonly now?: () => number;
}

/**
 * The server's readiness: starting until `started()`, draining from `drain()` on, and not ready
 * while the store does not answer. The store is asked at most once per `checkEveryMs`, and
 * waited for at most as long, however often readiness is checked.
 */
export class Readiness {
  private started = false;
  private draining = false;
  private storeOk = true;
  private checkedAt = Number.NEGATIVE_INFINITY;
  private inFlight: Promise<boolean> | undefined;
  private readonly everyMs: number;
  private readonly now: () => number;

  constructor(private readonly options: ReadinessOptions) {
    this.everyMs = options.checkEveryMs ?? 1000;
    this.now = options.now ?? (() => performance.now());
  }

  /** The server listens: ready from now on, unless draining or the store is down. */
  markStarted(): void {
    this.started = true;
  }

  /** Draining (shutdown): not ready from now on, for good. */
  markDraining(): void {
    this.draining = true;
  }

  get isDraining(): boolean {
    return this.draining;
  }

  async check(): Promise<ReadinessState> {
    if (this.draining) return { ready: false, reason: "draining" };
    if (!this.started) return { ready: false, reason: "starting" };
    return (await this.storeHealthy())
      ? { ready: true }
      : { ready: false, reason: "database unavailable" };
  }

  private storeHealthy(): Promise<boolean> {
    if (this.now() - this.checkedAt < this.everyMs) return Promise.resolve(this.storeOk);
    this.inFlight ??= this.ping().finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  private async ping(): Promise<boolean> {
    this.checkedAt = this.now();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("ping timed out")), this.everyMs);
    });
    try {
      await Promise.race([this.options.ping(), timeout]);
      this.storeOk = true;
    } catch (err) {
      if (this.storeOk) this.options.logger.warn({ err }, "database not ready");
      this.storeOk = false;
    } finally {
      clearTimeout(timer);
    }
    return this.storeOk;
  }
}
