/**
 * Ticks a stream must have been idle for before it sends a keep-alive or a checkpoint: the
 * ticker ticks every half interval, so two ticks are at least one interval of silence.
 */
export const IDLE_TICKS = 2;

/** A stream that may send something (a keep-alive, a checkpoint) when it has been idle. */
export interface IdleTarget {
  /** Called on every tick; the target counts idle ticks itself (cheaper than timestamps). */
  tick(): void;
}

/**
 * One timer for every idle stream (thousands of streams, no timer each): ticks every
 * `intervalMs / 2`, so that a stream idle for two ticks sends one keep-alive or checkpoint, and
 * then one per interval while it stays idle. The timer runs only while a target is registered
 * and never keeps the process alive. Used by the streaming edge (JSONL keep-alives) and the
 * feed (checkpoints).
 */
export class IdleTicker {
  private readonly targets = new Set<IdleTarget>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly intervalMs: number) {}

  add(target: IdleTarget): void {
    this.targets.add(target);
    if (this.timer === undefined) {
      this.timer = setInterval(() => this.tickAll(), Math.max(1, Math.floor(this.intervalMs / 2)));
      this.timer.unref();
    }
  }

  delete(target: IdleTarget): void {
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
