/**
 * DuckDB baseline: the same sessions computed with one SQL statement over the same JSON Lines files, and the
 * comparison with the core's own sessions for those files (DESIGN section 2: once every file is processed and
 * flushed, the closed sessions equal the batch sessionization of the distinct non-late visits).
 *
 * The SQL follows the pipeline's semantics exactly: files are batches in the given order; the watermark before
 * file i is the max over files < i of (max visit_time of that file - allowed lateness) (NULL for the first); a
 * visit is late if visit_time < that watermark; distinct (user_id, visit_time, page) of the non-late visits; LAG
 * over visit_time (ordered by visit_time, page) per user; a new session where the difference is more than the gap
 * (exactly the gap stays); a windowed SUM numbers the sessions.
 */
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { parseVisits } from '../lambdas/core/parse/index.ts';
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
 * The core's sessions for the files, the way the Lambda drives it: one file is one batch (parseVisits +
 * sessionizeBatch), every other user's due sessions closed with closeDue after each batch, then a flush.
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
  for (const file of files) {
    const name = basename(file);
    const visits: Visit[] = [];
    for await (const chunk of parseVisits(chunked(await readFile(file)), { sourceObject: name })) {
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
