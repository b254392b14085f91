/** A byte-bounded cache of immutable buffers, least recently used first out. Lives as long as the container. */
export class ByteCache {
  private readonly entries = new Map<string, Buffer>();
  private total = 0;

  constructor(readonly budget: number) {}

  get bytes(): number {
    return this.total;
  }

  get(key: string): Buffer | undefined {
    const value = this.entries.get(key);
    if (value !== undefined) {
      // a Map iterates in insertion order: re-inserting marks the entry most recently used
      this.entries.delete(key);
      this.entries.set(key, value);
    }
    return value;
  }

  set(key: string, value: Buffer): void {
    this.delete(key);
    if (value.length > this.budget) return;
    this.entries.set(key, value);
    this.total += value.length;
    for (const [k, v] of this.entries) {
      if (this.total <= this.budget) break;
      this.entries.delete(k);
      this.total -= v.length;
    }
  }

  delete(key: string): void {
    const old = this.entries.get(key);
    if (old === undefined) return;
    this.entries.delete(key);
    this.total -= old.length;
  }
}
