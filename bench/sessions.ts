/**
 * Sessions as the benchmarks compare them: the rows every side produces (core, DuckDB, the pipeline's output), the
 * plain reference driver of the core, and the comparison. DESIGN section 2: once every file is processed and
 * flushed, the closed sessions equal the batch sessionization of the distinct non-late visits.
 */
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { parseVisits, RecentStrings } from '../lambdas/core/parse/index.ts';
import { closeDue, sessionizeBatch } from '../lambdas/core/sessionize.ts';
import {
  type ClosedSession,
  DEFAULT_SESSION_CONFIG,
  INITIAL_WATERMARK,
  type PendingSession,
  type SessionConfig,
  type Visit,
} from '../lambdas/core/types.ts';
import { chunked } from './workload.ts';

/** A session reduced to what both sides produce: user, start and end (epoch ms), visit count. */
export interface SessionRow {
  readonly userId: string;
  readonly start: number;
  readonly end: number;
  readonly visitCount: number;
}

export interface SessionsResult {
  readonly sessions: SessionRow[];
  readonly late: number;
}

/**
 * Called by a driver with every closed session and the index of the file after which it closed (`files.length`: the
 * final flush); the tests compare two drivers with it.
 */
export type OnClosed = (session: ClosedSession, batch: number) => void;

export interface CoreCounts {
  readonly lines: number;
  readonly valid: number;
  readonly rejected: number;
  readonly accepted: number;
  readonly duplicates: number;
  readonly late: number;
  readonly sessionVisits: number;
}

/**
 * The plain reference driver of the core: one file is one batch (parseVisits + sessionizeBatch over one map of all
 * users), every other user's due sessions closed with closeDue after each batch, then a flush. Simple and slow: the
 * core pass (bench/core.ts) and the pipeline are checked against it.
 */
export async function coreSessions(
  files: readonly string[],
  config: SessionConfig = DEFAULT_SESSION_CONFIG,
  onClosed?: OnClosed,
): Promise<SessionsResult & { counts: CoreCounts }> {
  const pending = new Map<string, PendingSession[]>();
  const sessions: SessionRow[] = [];
  const counts = { lines: 0, valid: 0, rejected: 0, accepted: 0, duplicates: 0, late: 0, sessionVisits: 0 };
  let batch = 0;
  const emit = (closed: readonly PendingSession[]): void => {
    for (const s of closed) {
      sessions.push({ userId: s.userId, start: s.start, end: s.end, visitCount: s.visits.length });
      counts.sessionVisits += s.visits.length;
      onClosed?.(s, batch);
    }
  };
  let watermark = INITIAL_WATERMARK;
  const strings = new RecentStrings();
  for (const file of files) {
    const name = basename(file);
    const visits: Visit[] = [];
    for await (const chunk of parseVisits(chunked(await readFile(file)), { sourceObject: name, strings })) {
      for (const v of chunk.visits) visits.push(v);
      counts.rejected += chunk.rejected.length;
    }
    counts.valid += visits.length;
    const result = sessionizeBatch({ pending, visits, watermark, config, sourceObject: name });
    watermark = result.watermark;
    counts.accepted += result.accepted;
    counts.duplicates += result.duplicates;
    counts.late += result.late.length;
    emit(result.closed);
    for (const [user, { pending: open }] of result.users) {
      if (open.length > 0) pending.set(user, open);
      else pending.delete(user);
    }
    for (const [user, open] of pending) {
      if (result.users.has(user)) continue;
      const due = closeDue(open, watermark, config);
      emit(due.closed);
      if (due.open.length > 0) pending.set(user, due.open);
      else pending.delete(user);
    }
    batch++;
  }
  for (const open of pending.values()) emit(open);
  pending.clear();
  counts.lines = counts.valid + counts.rejected;
  return { sessions, late: counts.late, counts };
}

const key = (s: SessionRow): string => `${s.userId}\u0000${s.start}\u0000${s.end}\u0000${s.visitCount}`;

export interface Comparison {
  readonly equal: boolean;
  readonly sessionsA: number;
  readonly sessionsB: number;
  readonly lateA: number;
  readonly lateB: number;
  /** First differing rows (at most 5 each way), for the report. */
  readonly onlyInA: string[];
  readonly onlyInB: string[];
}

/** Compares two results as sorted (user_id, start ms, end ms, visit_count) lists, and their late counts. */
export function compareSessions(a: SessionsResult, b: SessionsResult): Comparison {
  const ka = a.sessions.map(key).sort();
  const kb = b.sessions.map(key).sort();
  const onlyInA: string[] = [];
  const onlyInB: string[] = [];
  let i = 0;
  let j = 0;
  while (i < ka.length || j < kb.length) {
    const x = ka[i];
    const y = kb[j];
    if (x !== undefined && x === y) {
      i++;
      j++;
    } else if (y === undefined || (x !== undefined && x < y)) {
      if (onlyInA.length < 5) onlyInA.push(x!.replaceAll('\u0000', ' '));
      i++;
    } else {
      if (onlyInB.length < 5) onlyInB.push(y.replaceAll('\u0000', ' '));
      j++;
    }
  }
  const same = ka.length === kb.length && onlyInA.length === 0 && onlyInB.length === 0;
  return {
    equal: same && a.late === b.late,
    sessionsA: ka.length,
    sessionsB: kb.length,
    lateA: a.late,
    lateB: b.late,
    onlyInA,
    onlyInB,
  };
}
