/**
 * setTimeout's longest delay (2^31-1 ms, about 24.8 days); a longer one fires at once, with a
 * TimeoutOverflowWarning.
 */
export const MAX_TIMER_MS = 2_147_483_647;

/**
 * A timer for a delay of any length: one longer than a timer can hold re-arms the timer until it
 * is due, so it never fires early. `leftMs` says how long is left, on whatever clock the owner
 * keeps (monotonic for deadlines, wall for credential expiry); when nothing is left, `onDue` runs
 * (at once, in the constructor, for a delay already past). The timer does not keep the process
 * alive; `clear` stops it.
 */
export class LongTimer {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly leftMs: () => number,
    private readonly onDue: () => void,
  ) {
    this.arm();
  }

  clear(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(): void {
    const left = this.leftMs();
    if (left <= 0) {
      this.timer = undefined;
      this.onDue();
      return;
    }
    this.timer = setTimeout(() => this.arm(), Math.min(Math.ceil(left), MAX_TIMER_MS));
    this.timer.unref();
  }
}
