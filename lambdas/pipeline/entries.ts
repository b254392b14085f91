/** Log entries read once per container: entries never change, and every shard reads the same range. */
import type { LogEntry } from '../core/log.ts';
import type { StateStore } from './state-store.ts';

/** Entries kept in memory (the newest ones: shards catch up from near the tail). */
const KEEP = 20_000;

export class EntryReader {
  private readonly bySeq = new Map<number, LogEntry>();

  constructor(private readonly store: StateStore) {}

  /** Remembers entries this container wrote or read. */
  remember(entry: LogEntry): void {
    this.bySeq.set(entry.seq, entry);
    if (this.bySeq.size > KEEP) {
      const first = this.bySeq.keys().next().value; // the first remembered, about the oldest
      if (first !== undefined) this.bySeq.delete(first);
    }
  }

  /** Entries `from` to `to` inclusive, in order; fewer when the log ends before `to`. */
  async range(from: number, to: number): Promise<LogEntry[]> {
    const out: LogEntry[] = [];
    let missingFrom: number | undefined;
    for (let seq = from; seq <= to; seq++) {
      if (!this.bySeq.has(seq)) {
        missingFrom = seq;
        break;
      }
    }
    if (missingFrom !== undefined)
      for (const e of await this.store.readEntries(missingFrom, to)) this.remember(e);
    for (let seq = from; seq <= to; seq++) {
      const e = this.bySeq.get(seq);
      if (e === undefined) break;
      out.push(e);
    }
    return out;
  }
}
