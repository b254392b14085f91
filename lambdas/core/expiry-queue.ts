/**
 * The expiry queue of a shard: (expiry, user) entries in buckets of one minute of expiry time, a calendar queue.
 * The watermark only grows, so the due entries are those of the buckets below the watermark's and some of its own:
 * taking them costs O(1) per entry, where a binary heap of 50,000 users costs a sift through 16 levels. Inside a
 * bucket the order is that of insertion (closing order does not matter: the sessions due are the same). The queue
 * does not know about superseded entries: the caller keeps, per user, the key of its live entry and skips others.
 */

/** Width of a bucket: one minute of expiry times. */
const BUCKET_MS = 60_000;

/** The entries of one bucket: expiry keys and their users, side by side. */
interface Bucket<T> {
  keys: number[];
  users: T[];
}

export class ExpiryQueue<T> {
  private readonly buckets = new Map<number, Bucket<T>>();
  /** No bucket below this one holds entries (`Infinity`: none at all). */
  private lowest = Number.POSITIVE_INFINITY;

  /** Entries held, superseded ones included. */
  get size(): number {
    let n = 0;
    for (const b of this.buckets.values()) n += b.keys.length;
    return n;
  }

  push(key: number, user: T): void {
    const b = Math.floor(key / BUCKET_MS);
    const bucket = this.buckets.get(b);
    if (bucket === undefined) this.buckets.set(b, { keys: [key], users: [user] });
    else {
      bucket.keys.push(key);
      bucket.users.push(user);
    }
    if (b < this.lowest) this.lowest = b;
  }

  /**
   * Removes every entry with a key below `watermark` and gives it to `take`, which may push new entries (at or above
   * the watermark: a pending session not due expires at or after it).
   */
  takeDue(watermark: number, take: (user: T, key: number) => void): void {
    const limit = Math.floor(watermark / BUCKET_MS); // every key below the watermark is in a bucket <= limit
    if (!(this.lowest <= limit)) return;
    const { buckets } = this;
    // walk the buckets from the lowest up to the watermark's, or (after a jump far ahead) the ones that exist
    const ids: number[] = [];
    if (limit - this.lowest <= 4 * buckets.size) for (let b = this.lowest; b <= limit; b++) ids.push(b);
    else for (const b of buckets.keys()) if (b <= limit) ids.push(b);
    ids.sort((x, y) => x - y);
    for (const b of ids) {
      const bucket = buckets.get(b);
      if (bucket === undefined) continue;
      buckets.delete(b);
      const { keys, users } = bucket;
      let kept: Bucket<T> | undefined;
      for (let i = 0; i < keys.length; i++) {
        const key = keys[i]!;
        if (key < watermark) take(users[i]!, key);
        else if (kept === undefined) kept = { keys: [key], users: [users[i]!] };
        else {
          kept.keys.push(key);
          kept.users.push(users[i]!);
        }
      }
      if (kept !== undefined)
        for (let i = 0; i < kept.keys.length; i++) this.push(kept.keys[i]!, kept.users[i]!);
    }
    this.lowest = buckets.has(limit) ? limit : limit + 1;
    if (buckets.size === 0) this.lowest = Number.POSITIVE_INFINITY;
  }

  clear(): void {
    this.buckets.clear();
    this.lowest = Number.POSITIVE_INFINITY;
  }
}
