/** Reading the pipeline's state for `status`, `read pending` and `replay`: the log's tail and the shards' heads. */

import type { Config } from '../lambdas/config.ts';
import type { PendingSession } from '../lambdas/core/types.ts';
import { loadShard } from '../lambdas/pipeline/apply.ts';
import type { Runtime } from '../lambdas/runtime.ts';

export interface StateSummary {
  readonly watermark: number;
  readonly newestVisit: number;
  /** Wall-clock time of the last log entry (0: none). */
  readonly lastEntryAt: number;
  /** Sequence number of the log's last entry. */
  readonly logTail: number;
  /** Entries the furthest-behind shard has still to apply. */
  readonly logLag: number;
  readonly objects: number;
  readonly lines: number;
  readonly visits: number;
  readonly rejected: number;
  readonly accepted: number;
  readonly duplicates: number;
  readonly late: number;
  readonly sessionsClosed: number;
  readonly pendingSessions: number;
  readonly pendingUsers: number;
  /** Earliest time at which the watermark closes a pending session (`Infinity` when none). */
  readonly nextExpiry: number;
}

/** Totals and positions, from the log's last entry and every shard head (no part is read). */
export async function readSummary(runtime: Runtime, config: Config): Promise<StateSummary> {
  const { store } = runtime;
  const tail = await store.lastEntry();
  const heads = await store.getHeads(Array.from({ length: config.shards }, (_, i) => i));
  const sum = (f: (h: (typeof heads)[number]) => number) => heads.reduce((a, h) => a + f(h), 0);
  const logTail = tail?.seq ?? 0;
  return {
    watermark: tail?.after ?? Number.NEGATIVE_INFINITY,
    newestVisit: tail?.newestVisit ?? Number.NEGATIVE_INFINITY,
    lastEntryAt: tail?.appendedAt ?? 0,
    logTail,
    logLag: logTail - Math.min(...heads.map((h) => h.applied)),
    objects: tail?.totals.objects ?? 0,
    lines: tail?.totals.lines ?? 0,
    visits: tail?.totals.visits ?? 0,
    rejected: tail?.totals.rejected ?? 0,
    accepted: sum((h) => h.totals.accepted),
    duplicates: sum((h) => h.totals.duplicates),
    late: sum((h) => h.totals.late),
    sessionsClosed: sum((h) => h.totals.sessionsClosed),
    pendingSessions: sum((h) => h.pendingSessions),
    pendingUsers: sum((h) => h.pendingUsers),
    nextExpiry: Math.min(...heads.map((h) => h.nextExpiry)),
  };
}

/** Every pending session of every shard, read from the parts. */
export async function listPending(runtime: Runtime, config: Config): Promise<PendingSession[]> {
  const heads = await runtime.store.getHeads(Array.from({ length: config.shards }, (_, i) => i));
  const all: PendingSession[] = [];
  for (const head of heads) {
    const state = await loadShard(runtime.store, config.session, head);
    for (const s of state.pending()) all.push(s);
  }
  return all.sort((a, b) => (a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : a.start - b.start));
}
