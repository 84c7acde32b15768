/**
 * Token buckets per publisher: `ratePerSecond` sustained, bursts up to `burst`. Buckets of
 * publishers idle for a minute are dropped once there are many, so the map stays bounded by
 * the publishers active in the last minute.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; atMs: number }>();

  constructor(
    private readonly ratePerSecond: number,
    private readonly burst: number,
    private readonly now: () => number,
  ) {}

  /** Takes `n` tokens for `key`; false (nothing taken) when there are not enough. */
  take(key: string, n: number): boolean {
    if (this.ratePerSecond <= 0) return true;
    const now = this.now();
    let b = this.buckets.get(key);
    if (b === undefined) {
      if (this.buckets.size >= 10_000) this.prune(now);
      b = { tokens: this.burst, atMs: now };
      this.buckets.set(key, b);
    } else {
      b.tokens = Math.min(this.burst, b.tokens + ((now - b.atMs) * this.ratePerSecond) / 1000);
      b.atMs = now;
    }
    if (b.tokens < n) return false;
    b.tokens -= n;
    return true;
  }

  private prune(now: number): void {
    for (const [key, b] of this.buckets) if (now - b.atMs > 60_000) this.buckets.delete(key);
  }
}
