/** A stream that may write a keep-alive when it has been idle. */
export interface KeepAliveTarget {
  /** Called on every tick; the target counts idle ticks itself (cheaper than timestamps). */
  tick(): void;
}

/**
 * One timer for the keep-alives of every idle stream (thousands of streams, no timer each):
 * ticks every `intervalMs / 2`, so that a stream idle for two ticks writes one keep-alive, and
 * then one per interval while it stays idle. The timer runs only while a target is registered
 * and never keeps the process alive.
 */
export class KeepAliveTicker {
  private readonly targets = new Set<KeepAliveTarget>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly intervalMs: number) {}

  add(target: KeepAliveTarget): void {
    this.targets.add(target);
    if (this.timer === undefined) {
      this.timer = setInterval(() => this.tickAll(), Math.max(1, Math.floor(this.intervalMs / 2)));
      this.timer.unref();
    }
  }

  delete(target: KeepAliveTarget): void {
    this.targets.delete(target);
    if (this.targets.size === 0 && this.timer !== undefined) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  private tickAll(): void {
    for (const target of this.targets) target.tick();
  }
}
