/**
 * The object log (docs/design.md, "Object log"): every accepted object, flush and watermark advance gets the next
 * sequence number, and the log order is the processing order. An entry's watermarks follow from the entry before
 * it, so every shard applies the same batches with the same watermarks, whoever applies them and when.
 */
import { advanceWatermark } from './sessionize.ts';
import type { SessionConfig } from './types.ts';

/** Running totals over the log up to an entry. */
export interface LogTotals {
  readonly objects: number;
  readonly lines: number;
  readonly visits: number;
  readonly rejected: number;
}

export type EntryKind = 'object' | 'flush' | 'advance';

/** What an appender knows of an entry before it has a place in the log. */
export interface EntryDraft {
  readonly kind: EntryKind;
  /** Identity for duplicate detection: the object id, `flush#<id>`, `advance#<id>`. */
  readonly id: string;
  /** `s3://bucket/key` of an object; the event for a flush or advance. */
  readonly source: string;
  /** The object version the entry was read from: its ETag, and its version id on a versioned bucket. */
  readonly etag?: string;
  readonly versionId?: string;
  /** Newest visit time among the object's valid records (`-Infinity` when none). */
  readonly maxVisitTime: number;
  /** For an advance: the watermark it asks for (the log keeps the larger of it and the current one). */
  readonly advanceTo?: number;
  /** Objects the entry stands for in the totals, when not one object (`sessionizer migrate` carries a count over). */
  readonly objects?: number;
  /** Processing clock of the object (its claim time): the date of its rejected records. */
  readonly clock: number;
  /** Staged segments holding the object's valid visits. */
  readonly segments: number;
  /** Valid visits per shard (empty for an entry without visits). */
  readonly shardVisits: readonly number[];
  readonly lines: number;
  readonly visits: number;
  readonly rejected: number;
}

/** One entry of the object log: the draft placed at `seq`, with the watermarks the log order gives it. */
export interface LogEntry extends EntryDraft {
  readonly seq: number;
  /** The watermark before the entry (the previous entry's `after`). */
  readonly before: number;
  /** `max(before, maxVisitTime - allowed lateness)`, or the advance's target. */
  readonly after: number;
  /** Wall-clock time of the append. */
  readonly appendedAt: number;
  /** Wall-clock time of the last entry that moved the watermark (idle advance waits from it). */
  readonly advancedAt: number;
  /** Newest visit time of all entries so far. */
  readonly newestVisit: number;
  readonly totals: LogTotals;
}

/** The entry `draft` becomes at position `seq`, after `prev` (undefined for the first entry). Pure. */
export function placeEntry(
  prev: LogEntry | undefined,
  draft: EntryDraft,
  seq: number,
  now: number,
  config: SessionConfig,
): LogEntry {
  const before = prev?.after ?? Number.NEGATIVE_INFINITY;
  const after =
    draft.kind === 'advance'
      ? Math.max(before, draft.advanceTo ?? before)
      : advanceWatermark(before, draft.maxVisitTime, config);
  const t = prev?.totals ?? { objects: 0, lines: 0, visits: 0, rejected: 0 };
  return {
    ...draft,
    seq,
    before,
    after,
    appendedAt: now,
    advancedAt: after > before ? now : (prev?.advancedAt ?? 0),
    newestVisit: Math.max(prev?.newestVisit ?? Number.NEGATIVE_INFINITY, draft.maxVisitTime),
    totals: {
      objects: t.objects + (draft.objects ?? (draft.kind === 'object' ? 1 : 0)),
      lines: t.lines + draft.lines,
      visits: t.visits + draft.visits,
      rejected: t.rejected + draft.rejected,
    },
  };
}
