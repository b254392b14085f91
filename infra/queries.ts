/**
 * Saved queries over the output tables, deployed as Athena named queries and meant to be reused as they are by a
 * local DuckDB runner. The SQL sticks to what Trino (Athena engine 3) and DuckDB both accept, with one exception:
 * `approx_percentile`, which a DuckDB runner maps with `CREATE MACRO approx_percentile(x, p) AS
 * approx_quantile(x, p)`. Table names are unqualified: Athena runs them in the pipeline's Glue database, a local
 * runner over views of the same names. `dt` is the partition (a `YYYY-MM-DD` string).
 */
import { LATE_VISITS, SESSIONS } from '../lambdas/core/schema.ts';

const sessions = SESSIONS.name;
const lateVisits = LATE_VISITS.name;

/** Sessions, distinct users and visits per day (by the UTC date a session started). */
export const SESSIONS_PER_DAY_SQL = `SELECT dt,
       count(*) AS sessions,
       count(DISTINCT user_id) AS users,
       sum(visit_count) AS visits
FROM ${sessions}
GROUP BY dt
ORDER BY dt`;

/** Average and 95th percentile session duration per day, in seconds. */
export const SESSION_DURATION_SQL = `SELECT dt,
       count(*) AS sessions,
       round(avg(duration_ms) / 1000.0, 3) AS avg_duration_s,
       round(approx_percentile(duration_ms, 0.95) / 1000.0, 3) AS p95_duration_s
FROM ${sessions}
GROUP BY dt
ORDER BY dt`;

/** The pages sessions start on (`visited_pages` is sorted by time, and arrays are 1-based). */
export const TOP_ENTRY_PAGES_SQL = `SELECT visited_pages[1].page AS entry_page,
       count(*) AS sessions
FROM ${sessions}
GROUP BY visited_pages[1].page
ORDER BY sessions DESC, entry_page
LIMIT 20`;

/**
 * Late visits against all visits per day: late / (late + visits in sessions). Late visits are partitioned by
 * their own date, sessions by their start date, so a session that crosses midnight counts on its first day.
 */
export const LATE_VISIT_RATIO_SQL = `WITH on_time AS (
  SELECT dt, sum(visit_count) AS visits FROM ${sessions} GROUP BY dt
), late AS (
  SELECT dt, count(*) AS visits FROM ${lateVisits} GROUP BY dt
)
SELECT coalesce(on_time.dt, late.dt) AS dt,
       coalesce(on_time.visits, 0) AS session_visits,
       coalesce(late.visits, 0) AS late_visits,
       round(CAST(coalesce(late.visits, 0) AS double)
             / (coalesce(late.visits, 0) + coalesce(on_time.visits, 0)), 6) AS late_ratio
FROM on_time
FULL OUTER JOIN late ON on_time.dt = late.dt
ORDER BY dt`;

export interface SavedQuery {
  /** Athena named-query name, also a file-name-safe id for a local runner. */
  readonly name: string;
  readonly description: string;
  readonly sql: string;
}

export const SAVED_QUERIES: readonly SavedQuery[] = [
  { name: 'sessions-per-day', description: 'Sessions, users and visits per day', sql: SESSIONS_PER_DAY_SQL },
  {
    name: 'session-duration',
    description: 'Average and p95 session duration per day (seconds)',
    sql: SESSION_DURATION_SQL,
  },
  {
    name: 'top-entry-pages',
    description: 'The 20 most frequent first pages of a session',
    sql: TOP_ENTRY_PAGES_SQL,
  },
  {
    name: 'late-visit-ratio',
    description: 'Late visits as a share of all visits, per day',
    sql: LATE_VISIT_RATIO_SQL,
  },
];
