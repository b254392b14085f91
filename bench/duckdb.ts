/**
 * DuckDB baseline: the same sessions computed with one SQL statement over the same JSON Lines files (bench/sessions.ts
 * compares them with the core's).
 *
 * The SQL follows the pipeline's semantics exactly: files are batches in the given order; the watermark before
 * file i is the max over files < i of (max visit_time of that file - allowed lateness) (NULL for the first); a
 * visit is late if visit_time < that watermark; distinct (user_id, visit_time, page) of the non-late visits; LAG
 * over visit_time (ordered by visit_time, page) per user; a new session where the difference is more than the gap
 * (exactly the gap stays); a windowed SUM numbers the sessions.
 */
import { DuckDBInstance } from '@duckdb/node-api';
import { DEFAULT_SESSION_CONFIG, type SessionConfig } from '../lambdas/core/types.ts';
import type { SessionRow, SessionsResult } from './sessions.ts';

export interface DuckDbRun extends SessionsResult {
  /** Seconds of the best run (the query until its result is read into DuckDB, file loading included). */
  readonly seconds: number;
  readonly threads: number;
  readonly version: string;
}

const sqlString = (s: string): string => `'${s.replaceAll("'", "''")}'`;

/** The sessionization SQL over `files` (absolute paths, in batch order). */
export function sessionizationSql(
  files: readonly string[],
  config: SessionConfig = DEFAULT_SESSION_CONFIG,
): string {
  if (config.maxSessionDurationMs !== null)
    throw new Error('the DuckDB baseline has no maximum session duration');
  const list = `[${files.map(sqlString).join(', ')}]::VARCHAR[]`;
  const latenessUs = config.allowedLatenessMs * 1000;
  const gapUs = config.gapMs * 1000;
  return `
WITH files AS (
  SELECT unnest(l) AS filename, generate_subscripts(l, 1) AS idx FROM (SELECT ${list} AS l)
),
raw AS MATERIALIZED (
  SELECT r.user_id, r.visit_time, r.page, f.idx
  FROM read_ndjson(${list},
                   columns = {user_id: 'VARCHAR', visit_time: 'TIMESTAMP', page: 'VARCHAR'},
                   filename = true) AS r
  JOIN files AS f USING (filename)
),
file_max AS (
  SELECT idx, max(visit_time) AS max_time FROM raw GROUP BY idx
),
watermarks AS (
  SELECT idx,
         max(max_time - to_microseconds(${latenessUs})) OVER (ORDER BY idx ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS wm
  FROM file_max
),
tagged AS MATERIALIZED (
  SELECT r.user_id, r.visit_time, r.page, coalesce(r.visit_time < w.wm, false) AS late
  FROM raw AS r JOIN watermarks AS w USING (idx)
),
accepted AS (
  SELECT DISTINCT user_id, visit_time, page FROM tagged WHERE NOT late
),
lagged AS (
  SELECT user_id, visit_time, page,
         CASE WHEN epoch_us(visit_time) - epoch_us(lag(visit_time) OVER (PARTITION BY user_id ORDER BY visit_time, page)) > ${gapUs}
              THEN 1 ELSE 0 END AS starts_session
  FROM accepted
),
numbered AS (
  SELECT user_id, visit_time,
         sum(starts_session) OVER (PARTITION BY user_id ORDER BY visit_time, page ROWS UNBOUNDED PRECEDING) AS session
  FROM lagged
),
sessions AS (
  SELECT user_id, min(visit_time) AS start_time, max(visit_time) AS end_time, count(*) AS visit_count
  FROM numbered GROUP BY user_id, session
)
SELECT 'session' AS kind, user_id, epoch_ms(start_time) AS start_ms, epoch_ms(end_time) AS end_ms, visit_count
FROM sessions
UNION ALL
SELECT 'late', NULL, NULL, NULL, count(*) FROM tagged WHERE late
`;
}

/** One timed run of the SQL: its result and wall-clock seconds. */
export interface DuckDbTiming extends SessionsResult {
  /**
   * The query, file loading included, until its whole result is read into DuckDB's own memory (`runAndReadAll`):
   * the computing. Not the conversion of the result rows into JavaScript values, see {@link toJsSeconds}.
   */
  readonly seconds: number;
  /**
   * Converting the ~260,000 result rows into JavaScript arrays (`getRowsJS`), which the benchmark needs only to
   * compare them with the core's: about 0.3 s, half as much as the query itself, so it is timed apart.
   */
  readonly toJsSeconds: number;
}

/**
 * An open DuckDB database (no extensions) that runs the sessionization SQL over `files`, with DuckDB's default
 * threads (one per core) or the number given.
 */
export interface DuckDbSession {
  readonly threads: number;
  readonly version: string;
  run(): Promise<DuckDbTiming>;
  close(): void;
}

export async function openDuckDb(files: readonly string[], threads?: number): Promise<DuckDbSession> {
  const instance = await DuckDBInstance.create(':memory:', {
    autoinstall_known_extensions: 'false',
    autoload_known_extensions: 'false',
    allow_community_extensions: 'false',
    ...(threads === undefined ? {} : { threads: String(threads) }),
  });
  const connection = await instance.connect();
  await connection.run("SET TimeZone = 'UTC'");
  const info = (
    await connection.runAndReadAll("SELECT current_setting('threads'), version()")
  ).getRowsJS()[0]!;
  const sql = sessionizationSql(files);
  return {
    threads: Number(info[0]),
    version: String(info[1]),
    async run() {
      const started = performance.now();
      const reader = await connection.runAndReadAll(sql);
      const read = performance.now();
      const rows = reader.getRowsJS();
      const seconds = (read - started) / 1000;
      const toJsSeconds = (performance.now() - read) / 1000;
      const sessions: SessionRow[] = [];
      let late = 0;
      for (const [kind, userId, start, end, count] of rows) {
        if (kind === 'late') late = Number(count);
        else
          sessions.push({
            userId: String(userId),
            start: Number(start),
            end: Number(end),
            visitCount: Number(count),
          });
      }
      return { sessions, late, seconds, toJsSeconds };
    },
    close() {
      connection.closeSync();
      instance.closeSync();
    },
  };
}

/** Runs the SQL `runs` times (default threads) and keeps the fastest run. */
export async function runDuckDb(files: readonly string[], runs = 2): Promise<DuckDbRun> {
  const db = await openDuckDb(files);
  try {
    let best: DuckDbTiming | undefined;
    for (let i = 0; i < runs; i++) {
      const r = await db.run();
      if (best === undefined || r.seconds < best.seconds) best = r;
    }
    return { ...best!, threads: db.threads, version: db.version };
  } finally {
    db.close();
  }
}
