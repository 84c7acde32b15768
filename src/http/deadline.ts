import { LongTimer } from "../long-timer.js";

/**
 * A client's deadline, of any length its header allows (Connect-Timeout-Ms: up to 10 digits of
 * ms, 115 days; grpc-timeout: up to 99,999,999 hours), on the monotonic clock: a deadline longer
 * than a timer can hold re-arms the timer until it is due (`LongTimer`), so it never fires
 * early. The timer does not keep the process alive.
 */
export class Deadline {
  private readonly timer: LongTimer;

  constructor(timeoutMs: number, onExpire: () => void) {
    const dueAt = performance.now() + timeoutMs;
    this.timer = new LongTimer(() => dueAt - performance.now(), onExpire);
  }

  clear(): void {
    this.timer.clear();
  }
}
