/** Consumed slots at the front of an array-backed queue before dropping them is worth a copy. */
export const COMPACT_AFTER = 1024;

/**
 * Whether a queue read from `head` on (the slots before it consumed) should drop its consumed
 * prefix now: once it is large and at least half the array, so each copy costs at most twice
 * the slots it drops (O(1) amortized) and a queue that never empties holds at most twice what is
 * pending. The one rule of the bounded queue and the feed's out queue.
 */
export function shouldCompact(head: number, length: number): boolean {
  return head >= COMPACT_AFTER && head * 2 >= length;
}
