/**
 * Drives the pure sessionizer the way the Lambda does: a pending map kept across batches (only the batch's users
 * are handed to the core), the watermark carried over, and closing of every other user's pending sessions with
 * closeDue after each batch. Also visit factories.
 */
import { type BatchResult, closeDue, flushAll, sessionizeBatch } from '../../lambdas/core/sessionize.ts';
import {
  type ClosedSession,
  INITIAL_WATERMARK,
  type LateVisit,
  type PendingSession,
  type SessionConfig,
  type Visit,
} from '../../lambdas/core/types.ts';

export const MINUTE = 60_000;

/** A visit record as the parser would produce it. */
export function visit(userId: string, t: number, page: string, line = 1): Visit {
  return { userId, t, page, line };
}

/** What one batch did, as seen from outside the core. */
export interface BatchStep {
  readonly result: BatchResult;
  /** Watermark before the batch. */
  readonly watermarkBefore: number;
  /** Every session closed by this batch: the batch's users' and those closeDue closed for the others. */
  readonly closed: ClosedSession[];
}

export class PipelineDriver {
  watermark = INITIAL_WATERMARK;
  readonly pending = new Map<string, PendingSession[]>();
  readonly closed: ClosedSession[] = [];
  readonly late: LateVisit[] = [];
  accepted = 0;
  duplicates = 0;

  constructor(readonly config: SessionConfig) {}

  /** Processes one batch (one input object) and closes what the new watermark allows, for every user. */
  batch(visits: readonly Visit[], sourceObject = 'batch'): BatchStep {
    const users = new Set(visits.map((v) => v.userId));
    const given = new Map<string, readonly PendingSession[]>();
    for (const u of users) {
      const s = this.pending.get(u);
      if (s !== undefined) given.set(u, s);
    }
    const watermarkBefore = this.watermark;
    const result = sessionizeBatch({
      pending: given,
      visits,
      watermark: this.watermark,
      config: this.config,
      sourceObject,
    });
    const closed: ClosedSession[] = [...result.closed];
    for (const [u, sessions] of result.pending) {
      if (sessions.length > 0) this.pending.set(u, sessions);
      else this.pending.delete(u);
    }
    for (const [u, sessions] of [...this.pending]) {
      if (result.pending.has(u)) continue;
      const due = closeDue(sessions, result.watermark, this.config);
      closed.push(...due.closed);
      if (due.open.length > 0) this.pending.set(u, due.open);
      else this.pending.delete(u);
    }
    this.watermark = result.watermark;
    this.closed.push(...closed);
    this.late.push(...result.late);
    this.accepted += result.accepted;
    this.duplicates += result.duplicates;
    return { result, watermarkBefore, closed };
  }

  /** Closes every pending session regardless of the watermark. */
  flush(): ClosedSession[] {
    const closed: ClosedSession[] = [];
    for (const sessions of this.pending.values()) closed.push(...flushAll(sessions));
    this.pending.clear();
    this.closed.push(...closed);
    return closed;
  }
}
