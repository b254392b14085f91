/** Core types. Times are epoch milliseconds everywhere in the core. */

/** One visit of a page, inside a session (the user is the session's). Sorted by `t`, then `page`. */
export interface PageVisit {
  readonly t: number;
  readonly page: string;
}

/** A valid visit record read from an input object. */
export interface Visit {
  readonly userId: string;
  readonly t: number;
  readonly page: string;
  /** 1-based line (record) number in the source object. */
  readonly line: number;
}

/** A pending (still open) session of one user. `visits` is sorted and holds no duplicates. */
export interface PendingSession {
  readonly userId: string;
  readonly start: number;
  readonly end: number;
  readonly visits: readonly PageVisit[];
}

/** A closed session: final, written exactly once. Same shape as a pending one. */
export type ClosedSession = PendingSession;

/** A visit that arrived with `t < watermark`: reported, never sessionized. */
export interface LateVisit {
  readonly userId: string;
  readonly t: number;
  readonly page: string;
  readonly sourceObject: string;
  readonly sourceLine: number;
  /** The watermark the visit was compared with. */
  readonly watermark: number;
}

/** A line (or a whole object, `line` null) that could not be read as a visit. */
export interface Rejected {
  readonly sourceObject: string;
  readonly line: number | null;
  readonly reason: string;
  readonly raw: string;
}

/** Sessionization settings, all in milliseconds. `null` means off. */
export interface SessionConfig {
  readonly gapMs: number;
  readonly allowedLatenessMs: number;
  readonly maxSessionDurationMs: number | null;
  /**
   * Most visits in one session: the next visit starts a new one (cut greedily, as the maximum duration). Keeps a
   * session's output line within Athena's 32 MB row limit and its pending state bounded. Absent or null: no limit.
   */
  readonly maxSessionVisits?: number | null;
}

/** The default cap of visits per session: a line of 50,000 visits of 300-byte pages is about 17 MB. */
export const DEFAULT_MAX_SESSION_VISITS = 50_000;
/** The largest cap of visits per session a deployment may set. */
export const MAX_SESSION_VISITS_LIMIT = 100_000_000;

export const DEFAULT_SESSION_CONFIG: SessionConfig = {
  gapMs: 40 * 60_000,
  allowedLatenessMs: 15 * 60_000,
  maxSessionDurationMs: null,
  maxSessionVisits: DEFAULT_MAX_SESSION_VISITS,
};

/** The watermark before any batch. */
export const INITIAL_WATERMARK = Number.NEGATIVE_INFINITY;
