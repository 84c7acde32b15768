// setTimeout's longest delay (2^31-1 ms, about 24.8 days); a longer one fires at once, with a
// TimeoutOverflowWarning.
export const MAX_TIMER_MS = 2_147_483_647;

/**
 * A client's deadline, of any length its header allows (Connect-Timeout-Ms: up to 10 digits of
 * ms, 115 days; grpc-timeout: up to 99,999,999 hours): a deadline longer than a timer can hold
 * re-arms the timer until it is due, so it never fires early. The timer does not keep the
 * process alive.
 */
export class Deadline {
  private timer: NodeJS.Timeout | undefined;
  private readonly dueAt: number;

  constructor(
    timeoutMs: number,
    private readonly onExpire: () => void,
  ) {
    this.dueAt = performance.now() + timeoutMs;
    this.arm();
  }

  clear(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(): void {
    const left = this.dueAt - performance.now();
    if (left <= 0) {
      this.timer = undefined;
      this.onExpire();
      return;
    }
    this.timer = setTimeout(() => this.arm(), Math.min(Math.ceil(left), MAX_TIMER_MS));
    this.timer.unref();
  }
}
