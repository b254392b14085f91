/**
 * The report's data: DuckDB queries over the outputs' views (sessions, late_visits, rejected) and the saved Athena
 * queries, shaped for the charts and tables (every time bucket present, histogram bins of round widths).
 */
import {
  LATE_VISIT_RATIO_SQL,
  SESSION_DURATION_SQL,
  SESSIONS_PER_DAY_SQL,
  TOP_ENTRY_PAGES_SQL,
} from '../../infra/queries.ts';
import type { Outputs, Plain } from '../query.ts';

export const SECOND = 1000;
export const MINUTE = 60 * SECOND;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;

/** Sessions per hour are drawn per hour up to this many hours, per day beyond. */
const MAX_HOURLY_BUCKETS = 24 * 62;
/** Pages per session: one column each up to this, the rest in a last `N+` column. */
const MAX_PAGES_COLUMN = 30;
/** Late-visit ratio per hour while the data spans at most this, per day beyond. */
const HOURLY_RATIO_SPAN = 4 * DAY;

export interface ReportData {
  readonly totals: {
    readonly sessions: number;
    readonly users: number;
    readonly visits: number;
    readonly lateVisits: number;
    readonly rejected: number;
    readonly firstStart: string | null;
    readonly lastEnd: string | null;
    readonly medianDurationMs: number | null;
  };
  /** Sessions by start bucket (every bucket from the first to the last, empty ones as 0). */
  readonly sessionsOverTime: {
    readonly step: number;
    readonly buckets: readonly { t: number; sessions: number }[];
  };
  /** Duration histogram: `[from, to)` in ms; the last bin may be an overflow bin (`to` null). */
  readonly durations: readonly { from: number; to: number | null; sessions: number }[];
  /** Sessions by pages visited; the last entry may stand for `pages` or more. */
  readonly pagesPerSession: readonly { pages: number; orMore: boolean; sessions: number }[];
  /** Late visits / (late visits + visits in sessions), each visit counted at its own time. */
  readonly lateRatio: {
    readonly step: number;
    readonly points: readonly { t: number; visits: number; late: number }[];
  };
  readonly topEntryPages: readonly { page: string; sessions: number }[];
  /** One row per `dt`: the saved queries' per-day numbers side by side. */
  readonly perDay: readonly Record<string, Plain>[];
  readonly rejectedReasons: readonly { reason: string; records: number }[];
}

const n = (v: Plain | undefined): number =>
  typeof v === 'number' ? v : v === null || v === undefined ? 0 : Number(v);
const time = (v: Plain | undefined): number => (typeof v === 'string' ? Date.parse(v) : Number.NaN);

/** Round bin widths for the duration histogram. */
const DURATION_STEPS = [
  SECOND,
  2 * SECOND,
  5 * SECOND,
  10 * SECOND,
  15 * SECOND,
  30 * SECOND,
  MINUTE,
  2 * MINUTE,
  5 * MINUTE,
  10 * MINUTE,
  15 * MINUTE,
  30 * MINUTE,
  HOUR,
  2 * HOUR,
  3 * HOUR,
  6 * HOUR,
  12 * HOUR,
  DAY,
];

/** The smallest round width giving at most `bins` bins up to `upper` ms. */
function durationBinWidth(upper: number, bins = 24): number {
  return DURATION_STEPS.find((w) => upper / w < bins) ?? Math.ceil(upper / bins / DAY) * DAY;
}

type Row = Record<string, Plain>;
type Rows = (sql: string) => Promise<readonly Row[]>;

/** Runs the report's queries. */
export async function reportData(outputs: Outputs): Promise<ReportData> {
  const one = async (sql: string) => (await outputs.runQuery(sql)).rows[0] ?? {};
  const rows = async (sql: string) => (await outputs.runQuery(sql)).rows;

  const s = await one(`SELECT count(*) AS sessions, count(DISTINCT user_id) AS users,
      coalesce(sum(visit_count), 0) AS visits, min(start_time) AS first_start, max(start_time) AS last_start,
      max(end_time) AS last_end,
      quantile_cont(duration_ms, 0.5) AS median_ms, max(duration_ms) AS max_ms,
      quantile_cont(duration_ms, 0.99) AS p99_ms, max(visit_count) AS max_pages
    FROM sessions`);
  const late = await one(
    'SELECT count(*) AS n, min(visit_time) AS first, max(visit_time) AS last FROM late_visits',
  );
  const rejected = await one('SELECT count(*) AS n FROM rejected');

  const sessionsOverTime = await sessionsOverTimeOf(rows, s);
  const durations = await durationHistogram(rows, s);
  const pagesPerSession = await pagesPerSessionOf(rows, s);
  const lateRatio = await lateRatioOf(rows, s, late);
  const topEntryPages = (await rows(TOP_ENTRY_PAGES_SQL)).map((r) => ({
    page: r.entry_page === null ? '(none)' : String(r.entry_page),
    sessions: n(r.sessions),
  }));
  const perDay = await perDayOf(rows);
  const rejectedReasons = (
    await rows(
      'SELECT reason, count(*) AS records FROM rejected GROUP BY reason ORDER BY records DESC, reason LIMIT 10',
    )
  ).map((r) => ({ reason: String(r.reason), records: n(r.records) }));

  return {
    totals: {
      sessions: n(s.sessions),
      users: n(s.users),
      visits: n(s.visits),
      lateVisits: n(late.n),
      rejected: n(rejected.n),
      firstStart: typeof s.first_start === 'string' ? s.first_start : null,
      lastEnd: typeof s.last_end === 'string' ? s.last_end : null,
      medianDurationMs: s.median_ms === null || s.median_ms === undefined ? null : n(s.median_ms),
    },
    sessionsOverTime,
    durations,
    pagesPerSession,
    lateRatio,
    topEntryPages,
    perDay,
    rejectedReasons,
  };
}

/** Sessions per hour (per day over long spans), every bucket between the first and the last. */
async function sessionsOverTimeOf(rows: Rows, s: Row): Promise<ReportData['sessionsOverTime']> {
  const first = time(s.first_start);
  const lastStart = time(s.last_start);
  const hourly = Number.isFinite(first) && (lastStart - first) / HOUR <= MAX_HOURLY_BUCKETS;
  const step = hourly ? HOUR : DAY;
  const counts = new Map<number, number>();
  for (const r of await rows(
    `SELECT date_trunc('${hourly ? 'hour' : 'day'}', start_time) AS t, count(*) AS sessions FROM sessions GROUP BY 1 ORDER BY 1`,
  )) {
    counts.set(time(r.t), n(r.sessions));
  }
  const buckets: { t: number; sessions: number }[] = [];
  if (counts.size > 0) {
    const keys = [...counts.keys()];
    for (let t = Math.min(...keys); t <= Math.max(...keys); t += step)
      buckets.push({ t, sessions: counts.get(t) ?? 0 });
  }
  return { step, buckets };
}

/** Round bins up to the max, or up to the 99th percentile with an overflow bin when the tail is long. */
async function durationHistogram(rows: Rows, s: Row): Promise<ReportData['durations']> {
  const durations: { from: number; to: number | null; sessions: number }[] = [];
  if (n(s.sessions) === 0) return durations;
  const max = n(s.max_ms);
  const p99 = n(s.p99_ms);
  const capped = p99 > 0 && max > 2 * p99;
  const upper = capped ? p99 : max;
  const width = durationBinWidth(Math.max(upper, 1));
  const bins = Math.floor(upper / width) + 1;
  const byBin = new Map<number, number>();
  for (const r of await rows(
    `SELECT least(duration_ms // ${width}, ${bins}) AS bin, count(*) AS sessions FROM sessions GROUP BY 1`,
  )) {
    byBin.set(n(r.bin), n(r.sessions));
  }
  for (let b = 0; b < bins; b++)
    durations.push({ from: b * width, to: (b + 1) * width, sessions: byBin.get(b) ?? 0 });
  if (byBin.has(bins)) durations.push({ from: bins * width, to: null, sessions: byBin.get(bins)! });
  return durations;
}

/** Sessions by visits, one column each up to MAX_PAGES_COLUMN. */
async function pagesPerSessionOf(rows: Rows, s: Row): Promise<ReportData['pagesPerSession']> {
  const pagesPerSession: { pages: number; orMore: boolean; sessions: number }[] = [];
  if (n(s.sessions) === 0) return pagesPerSession;
  const maxPages = n(s.max_pages);
  const shown = Math.min(maxPages, MAX_PAGES_COLUMN);
  const byPages = new Map<number, number>();
  for (const r of await rows(
    `SELECT least(visit_count, ${shown}) AS pages, count(*) AS sessions FROM sessions GROUP BY 1`,
  )) {
    byPages.set(n(r.pages), n(r.sessions));
  }
  for (let p = 1; p <= shown; p++) {
    pagesPerSession.push({
      pages: p,
      orMore: p === shown && maxPages > shown,
      sessions: byPages.get(p) ?? 0,
    });
  }
  return pagesPerSession;
}

/** Every visit at its own time (in a session or late), per hour over short spans, per day beyond. */
async function lateRatioOf(rows: Rows, s: Row, late: Row): Promise<ReportData['lateRatio']> {
  const times = [time(s.first_start), time(s.last_end), time(late.first), time(late.last)].filter(
    Number.isFinite,
  );
  const span = times.length > 0 ? Math.max(...times) - Math.min(...times) : 0;
  const ratioUnit = span <= HOURLY_RATIO_SPAN ? 'hour' : 'day';
  const points = (
    await rows(`WITH v AS (
        SELECT date_trunc('${ratioUnit}', p.visit_time) AS t, 0 AS late FROM (SELECT unnest(visited_pages) AS p FROM sessions)
        UNION ALL
        SELECT date_trunc('${ratioUnit}', visit_time) AS t, 1 AS late FROM late_visits
      )
      SELECT t, count(*) AS visits, sum(late) AS late FROM v WHERE t IS NOT NULL GROUP BY t ORDER BY t`)
  ).map((r) => ({ t: time(r.t), visits: n(r.visits), late: n(r.late) }));
  return { step: ratioUnit === 'hour' ? HOUR : DAY, points };
}

/** The saved queries' per-day numbers, joined by dt, in dt order. */
async function perDayOf(rows: Rows): Promise<ReportData['perDay']> {
  const perDay = new Map<string, Record<string, Plain>>();
  for (const sql of [SESSIONS_PER_DAY_SQL, SESSION_DURATION_SQL, LATE_VISIT_RATIO_SQL]) {
    for (const r of await rows(sql)) {
      const dt = String(r.dt);
      perDay.set(dt, { ...(perDay.get(dt) ?? {}), ...r });
    }
  }
  return [...perDay.keys()].sort().map((dt) => perDay.get(dt)!);
}
