/**
 * The first layout's rules over a user's stored visits, ported from 53639eb:lambdas/core/state.ts: which visits are
 * pending, which belong to the closing in progress, and where the user's closed sessions end. Pure.
 */
import { cutSessions } from '../../lambdas/core/sessionize.ts';
import type { PageVisit, PendingSession, SessionConfig } from '../../lambdas/core/types.ts';
import { compareVisits } from '../../lambdas/core/visit-lists.ts';
import type { V1User } from './v1-items.ts';

/** All stored visits of a user (inline and committed chunks), sorted. */
export function storedVisits(user: V1User): PageVisit[] {
  const all: PageVisit[] = [...user.inline];
  for (const chunk of user.chunks) for (const v of chunk) all.push(v);
  all.sort(compareVisits);
  return all;
}

/** The boundary below which a user's visits are closed or closing. */
export function closedBoundary(user: V1User): number {
  return user.closing ? user.closing.through : user.closedThrough;
}

/** Pending sessions: the stored visits after the closed/closing boundary, cut with the session settings. */
export function pendingSessions(user: V1User, config: SessionConfig): PendingSession[] {
  const boundary = closedBoundary(user);
  return cutSessions(
    user.userId,
    storedVisits(user).filter((v) => v.t > boundary),
    config,
  );
}

/** Visits of the closing in progress: after the last finalized closing, up to the closing's `through`. */
export function closingVisits(user: V1User): PageVisit[] {
  if (!user.closing) return [];
  const { through } = user.closing;
  return storedVisits(user).filter((v) => v.t > user.closedThrough && v.t <= through);
}

/**
 * End of the user's last closed session once its closing in progress is finished (as v1's finalizeClosing moves
 * it), or of its last finalized one; `-Infinity` when none.
 */
export function lastClosed(user: V1User): number {
  return user.closing ? Math.max(user.closedThrough, user.closing.through) : user.closedThrough;
}
