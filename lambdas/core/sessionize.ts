/**
 * The pure sessionizer (docs/design.md, section 2). No I/O: the caller loads the pending sessions of the users in a batch,
 * calls {@link sessionizeBatch}, and persists what it returns.
 */
import type { ClosedSession, LateVisit, PageVisit, PendingSession, SessionConfig, Visit } from './types.ts';
import { compareVisits, mergeVisits, sortDistinct, visitsOf } from './visit-lists.ts';

/** Pending sessions by user: a `Map` will do. */
export interface PendingLookup {
  get(userId: string): readonly PendingSession[] | undefined;
}

export interface BatchInput {
  /** Pending sessions of (at least) every user in the batch. Users absent here have none. */
  readonly pending: PendingLookup;
  /** The batch's valid visits, in any order. */
  readonly visits: readonly Visit[];
  /** The watermark before the batch (`-Infinity` at the start). */
  readonly watermark: number;
  readonly config: SessionConfig;
  /** Name of the source object, for the late-visit records. */
  readonly sourceObject: string;
  /**
   * Per user, the end of the user's last closed session. A visit at or before `closedThrough + gap` would belong to
   * (or precede) a session already written, so it is late whatever the watermark says. Only matters after a flush
   * or under concurrent invocations; sequentially the watermark already covers it.
   */
  readonly closedThrough?: ReadonlyMap<string, number>;
  /** Close the sessions the new watermark closes (default). The pipeline closes through its expiry index instead. */
  readonly close?: boolean;
  /**
   * The watermark the batch's sessions are closed by, when it is not the batch's own: a shard sees only its users'
   * visits, while the watermark after an object is the log's, computed from all of them.
   */
  readonly closeAt?: number;
}

/** What a batch did to one of its users. */
export interface UserOutcome {
  readonly userId: string;
  /** The user's new pending sessions (empty when all of them closed). */
  readonly pending: PendingSession[];
  /** The visits this batch added (accepted ones), sorted. */
  readonly added: readonly PageVisit[];
}

export interface BatchResult {
  /** The watermark after the batch: `max(W, max visit time - allowed lateness)`. */
  readonly watermark: number;
  /** Largest visit time among the batch's valid visits (`-Infinity` when there were none). */
  readonly maxVisitTime: number;
  /**
   * Every user that had at least one non-late visit in the batch, in order of first appearance. Users not in this
   * map are unchanged.
   */
  readonly users: Map<string, UserOutcome>;
  /** The users' new pending sessions: {@link users} as a map of their `pending` (built when first read). */
  readonly pending: Map<string, PendingSession[]>;
  /** Sessions of the batch's users that the new watermark closes, sorted by user then start. */
  readonly closed: ClosedSession[];
  /** Late visits, in input order. */
  readonly late: LateVisit[];
  /** Visits that joined a session (non-late, non-duplicate). */
  readonly accepted: number;
  /** Non-late visits equal in (user, time, page) to one already pending or earlier in the batch. */
  readonly duplicates: number;
  /** Per user, the visits this batch added: {@link users} as a map of their `added` (built when first read). */
  readonly added: Map<string, readonly PageVisit[]>;
}

/** One user's group while a batch runs: `added` first collects the incoming visits, then holds the added ones. */
interface UserGroup {
  readonly userId: string;
  pending: PendingSession[];
  added: PageVisit[];
}

const NO_SESSIONS: PendingSession[] = [];

/** A batch result whose `pending` and `added` maps are views of `users`, built only when read. */
class Outcome implements BatchResult {
  private pendingMap: Map<string, PendingSession[]> | undefined;
  private addedMap: Map<string, readonly PageVisit[]> | undefined;

  constructor(
    readonly watermark: number,
    readonly maxVisitTime: number,
    readonly users: Map<string, UserOutcome>,
    readonly closed: ClosedSession[],
    readonly late: LateVisit[],
    readonly accepted: number,
    readonly duplicates: number,
  ) {}

  get pending(): Map<string, PendingSession[]> {
    if (this.pendingMap === undefined) {
      this.pendingMap = new Map();
      for (const [user, o] of this.users) this.pendingMap.set(user, o.pending);
    }
    return this.pendingMap;
  }

  get added(): Map<string, readonly PageVisit[]> {
    if (this.addedMap === undefined) {
      this.addedMap = new Map();
      for (const [user, o] of this.users) this.addedMap.set(user, o.added);
    }
    return this.addedMap;
  }
}

/** The watermark after a batch whose largest valid visit time is `maxVisitTime`. Never moves back. */
export function advanceWatermark(watermark: number, maxVisitTime: number, config: SessionConfig): number {
  return Math.max(watermark, maxVisitTime - config.allowedLatenessMs);
}

/** A pending session closes once the watermark is strictly past its end plus the gap. */
export function isClosedBy(
  session: Pick<PendingSession, 'end'>,
  watermark: number,
  config: SessionConfig,
): boolean {
  return watermark > session.end + config.gapMs;
}

/** The watermark at which a session with this end closes is anything above this value. */
export function closesAfter(end: number, config: SessionConfig): number {
  return end + config.gapMs;
}

/**
 * Cuts one user's sorted, duplicate-free visits into sessions: a new session starts when a visit is more than
 * `gap` after the previous one, or more than `maxSessionDuration` after the session's first visit.
 */
export function cutSessions(
  userId: string,
  visits: readonly PageVisit[],
  config: SessionConfig,
): PendingSession[] {
  // nothing closes at a watermark of minus infinity
  return visits.length === 0
    ? []
    : cutOnto(userId, undefined, visits, config, Number.NEGATIVE_INFINITY, undefined, []);
}

/**
 * Cuts one user's sorted, duplicate-free `visits` into sessions (a new one starts when a visit is more than `gap`
 * after the previous one, more than `maxSessionDuration` after the session's first visit, or would be one visit more
 * than `maxSessionVisits`), carrying on from the
 * pending session `from` when given (all of `visits` come after its last visit): the cut of a sorted list only
 * depends on what came before, so `from` keeps its cut and only its fields are read. Sessions that `closing` closes
 * go to `closed`; the others are added to `open` and returned, in a new array when `open` is undefined. (An array
 * grown from empty by `push` reserves room for 17 elements; a user has one or two open sessions.)
 */
function cutOnto(
  userId: string,
  from: PendingSession | undefined,
  visits: readonly PageVisit[],
  config: SessionConfig,
  closing: number,
  open: PendingSession[] | undefined,
  closed: ClosedSession[],
): PendingSession[] {
  const gap = config.gapMs;
  const maxDuration = config.maxSessionDurationMs ?? Number.POSITIVE_INFINITY;
  const maxVisits = config.maxSessionVisits ?? Number.POSITIVE_INFINITY;
  const n = visits.length;
  let head = from;
  let segment = 0;
  let first = from === undefined ? visits[0]!.t : from.start;
  let prev = from === undefined ? first : from.end;
  for (let i = from === undefined ? 1 : 0; i <= n; i++) {
    const v = visits[i];
    if (
      v !== undefined &&
      v.t - prev <= gap &&
      v.t - first <= maxDuration &&
      (head === undefined ? 0 : head.visits.length) + (i - segment) < maxVisits
    ) {
      prev = v.t;
      continue;
    }
    // the session ends before visit i
    let s: PendingSession;
    if (head !== undefined && i === segment) {
      s = head; // no new visit joined it
    } else {
      const part = i - segment === n ? visits : visits.slice(segment, i);
      s =
        head === undefined
          ? { userId, start: first, end: prev, visits: part }
          : { userId, start: head.start, end: prev, visits: head.visits.concat(part) };
    }
    head = undefined;
    if (isClosedBy(s, closing, config)) closed.push(s);
    else if (open === undefined) open = [s];
    else open.push(s);
    if (v === undefined) break;
    segment = i;
    first = v.t;
    prev = v.t;
  }
  return open ?? [];
}

/** Whether session `a`'s last visit comes after session `b`'s, in the order of visits. */
function endsAfter(a: PendingSession, b: PendingSession): boolean {
  if (a.end !== b.end) return a.end > b.end;
  return compareVisits(a.visits[a.visits.length - 1]!, b.visits[b.visits.length - 1]!) > 0;
}

/** Order of closed sessions: by user, then start. */
function compareSessions(a: PendingSession, b: PendingSession): number {
  return a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : a.start - b.start;
}

/** Sessionizes one batch against the pending state of its users. Pure. */
export function sessionizeBatch(input: BatchInput): BatchResult {
  const { config, watermark, sourceObject, closedThrough } = input;
  const gap = config.gapMs;
  let maxVisitTime = Number.NEGATIVE_INFINITY;
  const late: LateVisit[] = [];
  const byUser = new Map<string, UserGroup>();
  const visits = input.visits;
  for (let k = 0; k < visits.length; k++) {
    const v = visits[k]!;
    const t = v.t;
    if (t > maxVisitTime) maxVisitTime = t;
    if (t < watermark) {
      late.push({ userId: v.userId, t, page: v.page, sourceObject, sourceLine: v.line, watermark });
      continue;
    }
    if (closedThrough !== undefined) {
      const through = closedThrough.get(v.userId);
      if (through !== undefined && t <= through + gap) {
        const bound = through + gap + 1;
        late.push({ userId: v.userId, t, page: v.page, sourceObject, sourceLine: v.line, watermark: bound });
        continue;
      }
    }
    const group = byUser.get(v.userId);
    if (group === undefined) byUser.set(v.userId, { userId: v.userId, pending: NO_SESSIONS, added: [v] });
    else group.added.push(v);
  }
  const newWatermark = advanceWatermark(watermark, maxVisitTime, config);
  const close = input.close ?? true;

  const closed: ClosedSession[] = [];
  let accepted = 0;
  let duplicates = 0;
  // the watermark sessions are closed by (none when the caller closes through its own index)
  const closing = !close ? Number.NEGATIVE_INFINITY : (input.closeAt ?? newWatermark);
  for (const group of byUser.values()) {
    const userId = group.userId;
    const incoming = group.added;
    const received = incoming.length;
    let dropped = sortDistinct(incoming);
    const before = input.pending.get(userId);
    if (before === undefined || before.length === 0) {
      group.pending = cutOnto(userId, undefined, incoming, config, closing, undefined, closed);
    } else {
      // the session holding the user's last visit: with the cap of visits per session, two sessions may end at the
      // same time (visits of one millisecond split between them), so the tie goes to the later last visit
      let last = before[0]!;
      for (let i = 1; i < before.length; i++) if (endsAfter(before[i]!, last)) last = before[i]!;
      if (incoming[0]!.t > last.end) {
        // every new visit after every pending one (the common case): the other pending sessions stay as they are,
        // and the cut carries on from the last one, without reading its visits again
        let open: PendingSession[] | undefined;
        for (const p of before) {
          if (p === last) continue;
          if (isClosedBy(p, closing, config)) closed.push(p);
          else (open ??= []).push(p);
        }
        group.pending = cutOnto(userId, last, incoming, config, closing, open, closed);
      } else {
        const merge = mergeVisits(visitsOf(before), incoming);
        group.added = merge.added;
        dropped += merge.duplicates;
        group.pending = cutOnto(userId, undefined, merge.merged, config, closing, undefined, closed);
      }
    }
    duplicates += dropped;
    accepted += received - dropped;
  }
  if (closed.length > 1) closed.sort(compareSessions);
  return new Outcome(newWatermark, maxVisitTime, byUser, closed, late, accepted, duplicates);
}

/** Splits pending sessions into those the watermark closes and those still open. Pure. */
export function closeDue(
  sessions: readonly PendingSession[],
  watermark: number,
  config: SessionConfig,
): { closed: ClosedSession[]; open: PendingSession[] } {
  let due = 0;
  for (const s of sessions) if (isClosedBy(s, watermark, config)) due++;
  if (due === 0) return { closed: [], open: sessions.slice() };
  if (due === sessions.length) return { closed: sessions.slice(), open: [] };
  const closed: ClosedSession[] = [];
  const open: PendingSession[] = [];
  for (const s of sessions) (isClosedBy(s, watermark, config) ? closed : open).push(s);
  return { closed, open };
}

/** Flush: closes every pending session regardless of the watermark. Pure. */
export function flushAll(sessions: readonly PendingSession[]): ClosedSession[] {
  return [...sessions];
}
