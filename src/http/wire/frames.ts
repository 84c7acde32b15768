/**
 * An item's bytes in one wire form, made once and shared. A publish's event is written by every
 * stream in turn, so the last item asked for answers almost every lookup; the WeakMap keeps the
 * rest (for streams that are behind) until the item is gone.
 */
export class FrameCache<T extends object> {
  private readonly frames = new WeakMap<T, Buffer>();
  private lastItem: T | undefined;
  private lastFrame: Buffer | undefined;

  /** `keep`: whether an item's bytes are worth remembering (default: every item's). */
  constructor(
    private readonly encode: (item: T) => Buffer,
    private readonly keep?: (item: T) => boolean,
  ) {}

  get(item: T): Buffer {
    if (item === this.lastItem) return this.lastFrame as Buffer;
    if (this.keep !== undefined && !this.keep(item)) return this.encode(item);
    let frame = this.frames.get(item);
    if (frame === undefined) {
      frame = this.encode(item);
      this.frames.set(item, frame);
    }
    this.lastItem = item;
    this.lastFrame = frame;
    return frame;
  }
}

/**
 * `make` of the first `count` of a list of objects, remembering the last list it made something
 * of: asked again for the same objects in the same order, it gives the same result. (The lists
 * it is given may be scratch arrays: it keeps a copy.)
 */
function lastListOf<T, R>(
  make: (items: readonly T[]) => R,
): (items: readonly T[], count: number) => R {
  let lastItems: readonly T[] = [];
  let made: R | undefined;
  return (items, count) => {
    if (made !== undefined && count === lastItems.length) {
      let same = true;
      for (let i = 0; i < count && same; i++) same = items[i] === lastItems[i];
      if (same) return made;
    }
    lastItems = items.slice(0, count);
    made = make(lastItems);
    return made;
  };
}

/**
 * Joins the frames of several items with `join`, remembering the last batch: asked again for
 * the same items (the same objects, in the same order), it gives the same bytes.
 */
export function batchOf<T>(
  frame: (item: T) => Buffer,
  join: (parts: readonly Buffer[], length: number) => Buffer,
): (items: readonly T[]) => Buffer {
  const batch = lastListOf((items: readonly T[]) => {
    const parts: Buffer[] = new Array(items.length);
    let length = 0;
    for (let i = 0; i < items.length; i++) {
      const f = frame(items[i] as T);
      parts[i] = f;
      length += f.length;
    }
    return join(parts, length);
  });
  return (items) => batch(items, items.length);
}

/**
 * The bytes of runs (arrays of items handed whole to many streams, PullSource.pollRun, never
 * changed), joined with `batch` once per run and kept as long as the run is alive.
 */
export function runOf<T>(batch: (items: readonly T[]) => Buffer): (items: readonly T[]) => Buffer {
  const runs = new FrameCache<readonly T[]>(batch);
  return (items) => runs.get(items);
}

/**
 * Joins the first `count` of `parts` into one buffer, remembering the last join: streams of one
 * view write the same parts (the same Buffer objects: runs' and items' shared bytes) in one
 * turn, so each set is copied once, not once per stream.
 */
export function joinOf(): (parts: readonly (Buffer | undefined)[], count: number) => Buffer {
  return lastListOf((parts: readonly (Buffer | undefined)[]) => Buffer.concat(parts as Buffer[]));
}
