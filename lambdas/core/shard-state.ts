/**
 * The pending state of one shard of users, in memory, and the steps that change it: the visits of one log entry,
 * a flush, an advance of the watermark. Pure: the pipeline loads it from the shard's parts, applies the log entries
 * it has not seen, and persists what the steps report. Closing goes through an expiry queue, so a step costs what
 * its own users and the sessions it closes cost, not what the whole shard holds (docs/design.md, "Shards").
 */
import { ExpiryQueue } from './expiry-queue.ts';
import { closeDue, closesAfter, sessionizeBatch } from './sessionize.ts';
import type { ClosedSession, LateVisit, PageVisit, PendingSession, SessionConfig, Visit } from './types.ts';

/**
 * A user's pending sessions. `expiry` is the earliest `end + gap` of `list` (`Infinity` when empty), kept with it so
 * that closing can tell whether the user has a session due without reading the sessions. `queued` is the key of the
 * user's live entry in the expiry queue (`Infinity`: none), never above `expiry`: the entry stays put while the
 * user's sessions grow and moves only when it comes due (or when a new session would expire earlier).
 */
interface UserState {
  readonly user: string;
  list: PendingSession[];
  expiry: number;
  queued: number;
}

/** What one step did to the shard. */
export interface StepOutcome {
  /** Sessions the step closed, sorted by user then start (the same order however the state was built). */
  readonly closed: ClosedSession[];
  /** Late visits, in input order. */
  readonly late: LateVisit[];
  readonly accepted: number;
  readonly duplicates: number;
  /** Per user, the visits the step added to the pending state, sorted (what a delta part records). */
  readonly added: ReadonlyMap<string, readonly PageVisit[]>;
}

/** One log entry's watermarks, as the shard applies it. */
export interface StepWatermarks {
  /** The watermark before the entry: visits before it are late. */
  readonly before: number;
  /** The watermark after the entry (the log's, from every shard's visits): sessions it passes close. */
  readonly after: number;
}

/** A user of a snapshot: pending sessions, and the end of the last session a flush closed (if it still matters). */
export interface UserSnapshot {
  readonly user: string;
  readonly sessions: readonly PendingSession[];
  readonly flushedThrough: number | undefined;
}

const NO_ADDED: ReadonlyMap<string, readonly PageVisit[]> = new Map();

function compareSessions(a: PendingSession, b: PendingSession): number {
  return a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : a.start - b.start;
}

export class ShardState {
  private readonly users = new Map<string, UserState>();
  private readonly queue = new ExpiryQueue<UserState>();
  /**
   * Per user, the end of the last session a flush closed. A visit within `gap` of it would belong to a session
   * already written, so it is late (reported with `watermark` = end + gap + 1 ms). Kept until the watermark covers
   * it; only a flush makes entries (a session the watermark closed is covered by the watermark already).
   */
  private readonly flushed = new Map<string, number>();
  /** The watermark after the last step applied. */
  watermark = Number.NEGATIVE_INFINITY;
  // the users the core looked up in the current step and what it found, so that the write-back finds each user's
  // state without a second look-up (the core looks each user up once, in the order of its outcomes; checked per user)
  private readonly lookedUp: string[] = [];
  private readonly found: (UserState | undefined)[] = [];
  private readonly lookup = {
    get: (user: string): PendingSession[] | undefined => {
      const known = this.users.get(user);
      this.lookedUp.push(user);
      this.found.push(known);
      return known?.list;
    },
  };

  constructor(readonly config: SessionConfig) {}

  /** Users with pending sessions. */
  get userCount(): number {
    return this.users.size;
  }

  /** Pending sessions, all users. */
  get sessionCount(): number {
    let n = 0;
    for (const u of this.users.values()) n += u.list.length;
    return n;
  }

  /** The earliest `end + gap` of any pending session (`Infinity` when none): nothing closes below it. */
  get nextExpiry(): number {
    let min = Number.POSITIVE_INFINITY;
    for (const u of this.users.values()) if (u.expiry < min) min = u.expiry;
    return min;
  }

  /** Applies the valid visits of one log entry (one batch of the semantics) and closes what its watermark passes. */
  apply(visits: readonly Visit[], marks: StepWatermarks, sourceObject: string): StepOutcome {
    const result = sessionizeBatch({
      pending: this.lookup,
      visits,
      watermark: marks.before,
      config: this.config,
      sourceObject,
      closeAt: marks.after,
      ...(this.flushed.size > 0 ? { closedThrough: this.flushed } : {}),
    });
    const { lookedUp, found } = this;
    let k = 0;
    for (const { userId: user, pending: open } of result.users.values()) {
      let known = lookedUp[k] === user ? found[k] : this.users.get(user);
      k++;
      if (known === undefined) {
        if (open.length === 0) continue;
        known = { user, list: open, expiry: Number.POSITIVE_INFINITY, queued: Number.POSITIVE_INFINITY };
        this.users.set(user, known);
      }
      this.setPending(known, open);
    }
    lookedUp.length = 0;
    found.length = 0;
    const closed = result.closed;
    this.closeThrough(marks.after, closed);
    if (closed.length > 1) closed.sort(compareSessions);
    return {
      closed,
      late: result.late,
      accepted: result.accepted,
      duplicates: result.duplicates,
      added: result.added,
    };
  }

  /** Moves the watermark (never back) and closes what it passes. */
  advance(watermark: number): StepOutcome {
    const closed: ClosedSession[] = [];
    this.closeThrough(watermark, closed);
    if (closed.length > 1) closed.sort(compareSessions);
    return { closed, late: [], accepted: 0, duplicates: 0, added: NO_ADDED };
  }

  /** Closes every pending session whatever the watermark, remembering each user's last end (see `flushed`). */
  flush(): StepOutcome {
    const closed: ClosedSession[] = [];
    for (const u of this.users.values()) {
      let through = this.flushed.get(u.user) ?? Number.NEGATIVE_INFINITY;
      for (const s of u.list) {
        closed.push(s);
        if (s.end > through) through = s.end;
      }
      this.flushed.set(u.user, through);
    }
    this.users.clear();
    this.queue.clear();
    closed.sort(compareSessions);
    return { closed, late: [], accepted: 0, duplicates: 0, added: NO_ADDED };
  }

  /** Every user with pending sessions or a flushed end that still matters, for a snapshot. */
  *snapshot(): IterableIterator<UserSnapshot> {
    for (const u of this.users.values()) {
      yield { user: u.user, sessions: u.list, flushedThrough: this.flushed.get(u.user) };
    }
    for (const [user, through] of this.flushed) {
      if (!this.users.has(user)) yield { user, sessions: [], flushedThrough: through };
    }
  }

  /** Restores a user from a snapshot (into an empty or growing state; each user once). */
  restore(user: UserSnapshot): void {
    if (user.flushedThrough !== undefined) this.flushed.set(user.user, user.flushedThrough);
    if (user.sessions.length === 0) return;
    const state: UserState = {
      user: user.user,
      list: [],
      expiry: Number.POSITIVE_INFINITY,
      queued: Number.POSITIVE_INFINITY,
    };
    this.users.set(user.user, state);
    this.setPending(state, [...user.sessions]);
  }

  /** Every pending session (any order). */
  *pending(): IterableIterator<PendingSession> {
    for (const u of this.users.values()) yield* u.list;
  }

  /** Gives `user` the pending sessions `open`; queued again when they expire before its entry, gone when none. */
  private setPending(user: UserState, open: PendingSession[]): void {
    user.list = open;
    if (open.length === 0) {
      user.expiry = Number.POSITIVE_INFINITY;
      this.users.delete(user.user);
      return;
    }
    let expiry = Number.POSITIVE_INFINITY;
    for (const s of open) expiry = Math.min(expiry, closesAfter(s.end, this.config));
    user.expiry = expiry;
    if (expiry < user.queued) {
      user.queued = expiry;
      this.queue.push(expiry, user);
    }
  }

  /** Raises the watermark to `watermark` and moves every session it closes to `closed`. */
  private closeThrough(watermark: number, closed: ClosedSession[]): void {
    if (watermark > this.watermark) this.watermark = watermark;
    const now = this.watermark;
    this.queue.takeDue(now, (user, key) => {
      if (user.queued !== key) return; // superseded by an earlier entry of the same user
      const expiry = user.expiry;
      if (!(expiry < now)) {
        // nothing due (the sessions grew since the entry was made, or all closed): queued again at the real expiry
        user.queued = expiry;
        if (expiry !== Number.POSITIVE_INFINITY) this.queue.push(expiry, user);
        return;
      }
      user.queued = Number.POSITIVE_INFINITY;
      const list = user.list;
      if (list.length === 1) {
        closed.push(list[0]!); // the usual case: the user's one session, due
        this.setPending(user, []);
        return;
      }
      const due = closeDue(list, now, this.config);
      for (const s of due.closed) closed.push(s);
      this.setPending(user, due.open);
    });
    if (this.flushed.size > 0) {
      // a flushed end the watermark has passed by more than the gap makes nothing late that the watermark does not
      for (const [user, through] of this.flushed)
        if (through + this.config.gapMs < now) this.flushed.delete(user);
    }
  }
}
