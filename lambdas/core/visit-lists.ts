/**
 * Sorted visit lists of one user: their order, merging (dropping copies) and the in-place sort of a
 * batch's incoming visits. Pure helpers of sessionize.ts.
 */
import type { PageVisit, PendingSession } from './types.ts';

/** Order of visits inside a session: by time, then page. */
export function compareVisits(a: PageVisit, b: PageVisit): number {
  return a.t - b.t || (a.page < b.page ? -1 : a.page > b.page ? 1 : 0);
}

/** Merges sorted `existing` (duplicate-free) with sorted `incoming`, dropping incoming duplicates. */
export function mergeVisits(
  existing: readonly PageVisit[],
  incoming: readonly PageVisit[],
): { merged: PageVisit[]; added: PageVisit[]; duplicates: number } {
  const merged: PageVisit[] = [];
  const added: PageVisit[] = [];
  let duplicates = 0;
  let i = 0;
  let j = 0;
  let last: PageVisit | undefined;
  while (i < existing.length || j < incoming.length) {
    const a = existing[i];
    const b = incoming[j];
    let next: PageVisit;
    let fromIncoming: boolean;
    if (b === undefined || (a !== undefined && compareVisits(a, b) <= 0)) {
      next = a!;
      fromIncoming = false;
      i++;
    } else {
      next = b;
      fromIncoming = true;
      j++;
    }
    if (last !== undefined && last.t === next.t && last.page === next.page) {
      // ties take the pending visit first, so the one dropped here is always an incoming copy
      if (fromIncoming) duplicates++;
      continue;
    }
    merged.push(next);
    if (fromIncoming) added.push(next);
    last = next;
  }
  return { merged, added, duplicates };
}

/** All visits of a user's pending sessions, in order. Pending sessions of one user never overlap. */
export function visitsOf(sessions: readonly PendingSession[]): readonly PageVisit[] {
  if (sessions.length === 1) return sessions[0]!.visits;
  const sorted = [...sessions].sort((a, b) => a.start - b.start);
  return sorted.flatMap((s) => s.visits);
}

/** Up to this many visits, {@link sortDistinct} sorts by insertion. */
const INSERTION_SORT_MAX = 16;

/**
 * Sorts one user's incoming visits and drops the copies inside them (equal time and page), in place. Returns the
 * number dropped.
 */
export function sortDistinct(visits: PageVisit[]): number {
  const n = visits.length;
  if (n < 2) return 0;
  if (n <= INSERTION_SORT_MAX) {
    // a user has a few visits in a batch: insertion sort, no work at all when they come in order (the common case
    // for a file written in time order), and none of Array#sort's set-up
    for (let i = 1; i < n; i++) {
      const v = visits[i]!;
      let j = i - 1;
      if (compareVisits(visits[j]!, v) <= 0) continue;
      do {
        visits[j + 1] = visits[j]!;
        j--;
      } while (j >= 0 && compareVisits(visits[j]!, v) > 0);
      visits[j + 1] = v;
    }
  } else {
    let ordered = true;
    for (let i = 1; i < n; i++) {
      if (compareVisits(visits[i - 1]!, visits[i]!) > 0) {
        ordered = false;
        break;
      }
    }
    if (!ordered) visits.sort(compareVisits);
  }
  let kept = 1;
  for (let i = 1; i < n; i++) {
    const v = visits[i]!;
    const last = visits[kept - 1]!;
    if (v.t === last.t && v.page === last.page) continue;
    visits[kept++] = v;
  }
  if (kept < n) visits.length = kept;
  return n - kept;
}
