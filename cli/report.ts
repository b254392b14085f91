/**
 * `sessionizer report`: one self-contained static HTML page about the outputs: a few totals, five inline SVG
 * charts (sessions per hour, session durations, pages per session, late-visit ratio over time, top entry pages)
 * and per-day tables. The data comes from DuckDB queries over the same views as `sessionizer query` (the saved
 * Athena queries included); the page has no scripts and loads nothing (a Content-Security-Policy says so).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import {
  LATE_VISIT_RATIO_SQL,
  SESSION_DURATION_SQL,
  SESSIONS_PER_DAY_SQL,
  TOP_ENTRY_PAGES_SQL,
} from '../infra/queries.ts';
import type { LocalStackOptions } from '../infra/local/stack.ts';
import { type Column, barChart, columnChart, esc, lineChart, timeColumnTicks } from './charts.ts';
import { type OutputSource, type Outputs, type Plain, withOutputs } from './query.ts';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

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
export function durationBinWidth(upper: number, bins = 24): number {
  return DURATION_STEPS.find((w) => upper / w < bins) ?? Math.ceil(upper / bins / DAY) * DAY;
}

/** `0`, `45s`, `5m`, `1h30m`, `2d`. */
export function formatDurationShort(ms: number): string {
  if (ms === 0) return '0';
  if (ms < MINUTE) return `${num(ms / SECOND)}s`;
  if (ms < HOUR)
    return ms % MINUTE === 0
      ? `${ms / MINUTE}m`
      : `${Math.floor(ms / MINUTE)}m${num((ms % MINUTE) / SECOND)}s`;
  if (ms < DAY)
    return ms % HOUR === 0
      ? `${ms / HOUR}h`
      : `${Math.floor(ms / HOUR)}h${Math.round((ms % HOUR) / MINUTE)}m`;
  return ms % DAY === 0 ? `${ms / DAY}d` : `${Math.floor(ms / DAY)}d${Math.round((ms % DAY) / HOUR)}h`;
}

const num = (v: number): string => (Number.isInteger(v) ? String(v) : v.toFixed(1).replace(/\.0$/, ''));

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

  // sessions over time: per hour (per day over long spans), every bucket between the first and the last
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

  // durations: round bins up to the max, or up to the 99th percentile with an overflow bin when the tail is long
  const durations: { from: number; to: number | null; sessions: number }[] = [];
  if (n(s.sessions) > 0) {
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
  }

  // pages per session
  const pagesPerSession: { pages: number; orMore: boolean; sessions: number }[] = [];
  if (n(s.sessions) > 0) {
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
  }

  // late-visit ratio: every visit at its own time, per hour over short spans
  const times = [first, time(s.last_end), time(late.first), time(late.last)].filter(Number.isFinite);
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

  const topEntryPages = (await rows(TOP_ENTRY_PAGES_SQL)).map((r) => ({
    page: r.entry_page === null ? '(none)' : String(r.entry_page),
    sessions: n(r.sessions),
  }));

  // the saved queries' per-day numbers, joined by dt
  const perDay = new Map<string, Record<string, Plain>>();
  for (const sql of [SESSIONS_PER_DAY_SQL, SESSION_DURATION_SQL, LATE_VISIT_RATIO_SQL]) {
    for (const r of await rows(sql)) {
      const dt = String(r.dt);
      perDay.set(dt, { ...(perDay.get(dt) ?? {}), ...r });
    }
  }

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
    sessionsOverTime: { step, buckets },
    durations,
    pagesPerSession,
    lateRatio: { step: ratioUnit === 'hour' ? HOUR : DAY, points },
    topEntryPages,
    perDay: [...perDay.keys()].sort().map((dt) => perDay.get(dt)!),
    rejectedReasons,
  };
}

const fmtInt = (v: number): string => v.toLocaleString('en-US');
const pct = (v: number): string => `${(v * 100).toFixed(v > 0 && v < 0.001 ? 3 : 1)}%`;
const utc = (t: number, step: number): string =>
  step >= DAY
    ? new Date(t).toISOString().slice(0, 10)
    : `${new Date(t).toISOString().slice(0, 13).replace('T', ' ')}:00 UTC`;

/** The five charts' SVG, by chart name. */
export function renderCharts(data: ReportData): Record<string, string> {
  const { step, buckets } = data.sessionsOverTime;
  const perUnit = step >= DAY ? 'day' : 'hour';
  const ticks = timeColumnTicks(
    buckets.map((b) => b.t),
    step,
  );
  const sessionsPerHour = columnChart({
    name: 'sessions-per-hour',
    title: `Sessions per ${perUnit}`,
    desc:
      `Closed sessions by the UTC ${perUnit} they started, ${buckets.length} ${perUnit}s` +
      (buckets.length > 0
        ? ` from ${utc(buckets[0]!.t, step)} to ${utc(buckets[buckets.length - 1]!.t, step)}; ` +
          `at most ${fmtInt(Math.max(...buckets.map((b) => b.sessions)))} in one ${perUnit}.`
        : '.'),
    xLabel: `session start (${perUnit}, UTC)`,
    yLabel: 'sessions',
    integer: true,
    columns: buckets.map(
      (b, i): Column => ({
        value: b.sessions,
        tooltip: `${utc(b.t, step)}: ${fmtInt(b.sessions)} sessions`,
        ...(ticks[i] ? { tick: ticks[i] } : {}),
      }),
    ),
  });

  const bins = data.durations;
  const every = Math.max(1, Math.ceil(bins.length / 8));
  const durationHistogram = columnChart({
    name: 'session-duration',
    title: 'Session duration',
    desc:
      bins.length > 0
        ? `Histogram of session durations (last visit minus first) in ${bins.length} bins of ` +
          `${formatDurationShort(bins[0]!.to! - bins[0]!.from)}` +
          (bins[bins.length - 1]!.to === null ? ', the last one for longer sessions' : '') +
          (data.totals.medianDurationMs !== null
            ? `; median ${formatDurationShort(Math.round(data.totals.medianDurationMs))}.`
            : '.')
        : 'Histogram of session durations: no sessions.',
    xLabel: 'duration (first to last visit)',
    yLabel: 'sessions',
    integer: true,
    columns: bins.map(
      (b, i): Column => ({
        value: b.sessions,
        tooltip: `${b.to === null ? `≥ ${formatDurationShort(b.from)}` : `${formatDurationShort(b.from)} to ${formatDurationShort(b.to)}`}: ${fmtInt(b.sessions)} sessions`,
        ...(i % every === 0 || b.to === null
          ? { tick: [b.to === null ? `≥${formatDurationShort(b.from)}` : formatDurationShort(b.from)] }
          : {}),
      }),
    ),
  });

  const pages = data.pagesPerSession;
  const pageEvery = Math.max(1, Math.ceil(pages.length / 15));
  const pagesChart = columnChart({
    name: 'pages-per-session',
    title: 'Pages per session',
    desc:
      pages.length > 0
        ? `Sessions by number of visits (pages viewed), from 1 to ${pages[pages.length - 1]!.pages}${pages[pages.length - 1]!.orMore ? ' or more' : ''}.`
        : 'Sessions by number of visits: no sessions.',
    xLabel: 'visits in the session',
    yLabel: 'sessions',
    integer: true,
    columns: pages.map((p, i): Column => {
      const label = p.orMore ? `${p.pages}+` : String(p.pages);
      return {
        value: p.sessions,
        tooltip: `${label} visits: ${fmtInt(p.sessions)} sessions`,
        ...((i + 1) % pageEvery === 0 || i === 0 || p.orMore ? { tick: [label] } : {}),
      };
    }),
  });

  const ratio = data.lateRatio;
  const ratioUnit = ratio.step >= DAY ? 'day' : 'hour';
  const totalLate = ratio.points.reduce((a, p) => a + p.late, 0);
  const totalVisits = ratio.points.reduce((a, p) => a + p.visits, 0);
  const lateChart = lineChart({
    name: 'late-visit-ratio',
    title: `Late-visit ratio per ${ratioUnit}`,
    desc:
      `Late visits as a share of all visits (late plus in sessions) per UTC ${ratioUnit} of the visit time` +
      (totalVisits > 0
        ? `; ${fmtInt(totalLate)} of ${fmtInt(totalVisits)} overall (${pct(totalLate / totalVisits)}).`
        : '.'),
    xLabel: `visit time (${ratioUnit}, UTC)`,
    yLabel: 'late visits / all visits',
    step: ratio.step,
    format: (v) => pct(v),
    points: ratio.points.map((p) => ({
      t: p.t,
      value: p.visits > 0 ? p.late / p.visits : 0,
      tooltip: `${utc(p.t, ratio.step)}: ${fmtInt(p.late)} late of ${fmtInt(p.visits)} visits (${pct(p.visits > 0 ? p.late / p.visits : 0)})`,
    })),
  });

  const top = data.topEntryPages;
  const entryChart = barChart({
    name: 'top-entry-pages',
    title: 'Top entry pages',
    desc:
      top.length > 0
        ? `The ${top.length} most frequent first pages of a session; first ${top[0]!.page} with ${fmtInt(top[0]!.sessions)} sessions.`
        : 'The most frequent first pages of a session: no sessions.',
    xLabel: 'sessions starting on the page',
    yLabel: 'entry page',
    bars: top.map((p) => ({
      label: p.page,
      value: p.sessions,
      tooltip: `${p.page}: ${fmtInt(p.sessions)} sessions`,
    })),
  });

  return {
    'sessions-per-hour': sessionsPerHour,
    'session-duration': durationHistogram,
    'pages-per-session': pagesChart,
    'late-visit-ratio': lateChart,
    'top-entry-pages': entryChart,
  };
}

const CSS = `
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f5f7fa; color: #1f2933;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
header, main, footer { max-width: 1340px; margin: 0 auto; padding: 0 20px; }
header { padding-top: 22px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 28px 0 10px; }
.meta { color: #52606d; margin: 0; }
.totals { display: grid; grid-template-columns: repeat(auto-fill, minmax(140px, 1fr)); gap: 10px; margin: 18px 0 8px;
  padding: 0; }
.totals div { background: #fff; border: 1px solid #e4e7eb; border-radius: 6px; padding: 10px 12px; }
.totals dt { color: #52606d; font-size: 12px; }
.totals dd { margin: 2px 0 0; font-size: 17px; font-weight: 600; font-variant-numeric: tabular-nums; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(560px, 1fr)); gap: 16px; }
figure { margin: 0; background: #fff; border: 1px solid #e4e7eb; border-radius: 6px; padding: 8px; }
figure svg { display: block; width: 100%; height: auto; }
table { border-collapse: collapse; background: #fff; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #e4e7eb; padding: 4px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #eef2f7; font-weight: 600; }
td.text { text-align: left; max-width: 520px; overflow-wrap: anywhere; }
footer { color: #7b8794; font-size: 12px; padding: 28px 20px; }
`;

function table(
  columns: readonly { key: string; label: string; format?: (v: Plain) => string; text?: boolean }[],
  rows: readonly Record<string, Plain>[],
): string {
  if (rows.length === 0) return '<p class="meta">none</p>';
  const head = columns.map((c) => `<th scope="col">${esc(c.label)}</th>`).join('');
  const body = rows
    .map(
      (r) =>
        `<tr>${columns
          .map((c) => {
            const v = r[c.key] ?? null;
            const text = c.format
              ? c.format(v)
              : v === null
                ? ''
                : typeof v === 'number'
                  ? fmtInt(v)
                  : String(v);
            return `<td${c.text ? ' class="text"' : ''}>${esc(text)}</td>`;
          })
          .join('')}</tr>`,
    )
    .join('');
  return `<table><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`;
}

export interface ReportMeta {
  readonly title?: string;
  /** Where the outputs came from, shown under the title. */
  readonly source: string;
  /** @default now */
  readonly generatedAt?: Date;
}

/** The whole page. */
export function renderReport(data: ReportData, meta: ReportMeta): string {
  const title = meta.title ?? 'Sessionizer report';
  const charts = renderCharts(data);
  const t = data.totals;
  const totals: [string, string][] = [
    ['sessions', fmtInt(t.sessions)],
    ['users', fmtInt(t.users)],
    ['visits in sessions', fmtInt(t.visits)],
    ['late visits', fmtInt(t.lateVisits)],
    ['rejected records', fmtInt(t.rejected)],
    [
      'median duration',
      t.medianDurationMs === null ? '–' : formatDurationShort(Math.round(t.medianDurationMs / 1000) * 1000),
    ],
    ['first session start', t.firstStart ? t.firstStart.replace('T', ' ').slice(0, 16) : '–'],
    ['last session end', t.lastEnd ? t.lastEnd.replace('T', ' ').slice(0, 16) : '–'],
  ];
  const seconds = (v: Plain) => (v === null ? '' : `${Number(v).toFixed(1)} s`);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>${esc(title)}</title>
<style>${CSS}</style>
</head>
<body>
<header>
<h1>${esc(title)}</h1>
<p class="meta">Outputs from ${esc(meta.source)} · generated ${esc((meta.generatedAt ?? new Date()).toISOString().slice(0, 19).replace('T', ' '))} UTC · all times UTC</p>
<dl class="totals">${totals.map(([k, v]) => `<div><dt>${esc(k)}</dt><dd>${esc(v)}</dd></div>`).join('')}</dl>
</header>
<main>
<section class="charts" aria-label="charts">
${Object.entries(charts)
  .map(([name, svg]) => `<figure id="${esc(name)}">${svg}</figure>`)
  .join('\n')}
</section>
<h2>Per day</h2>
${table(
  [
    { key: 'dt', label: 'dt' },
    { key: 'sessions', label: 'sessions' },
    { key: 'users', label: 'users' },
    { key: 'visits', label: 'visits' },
    { key: 'avg_duration_s', label: 'avg duration', format: seconds },
    { key: 'p95_duration_s', label: 'p95 duration', format: seconds },
    { key: 'late_visits', label: 'late visits' },
    { key: 'late_ratio', label: 'late ratio', format: (v) => (v === null ? '' : pct(Number(v))) },
  ],
  data.perDay,
)}
<p class="meta">From the saved Athena queries sessions-per-day, session-duration and late-visit-ratio (sessions by the date they start, late visits by their own date).</p>
<h2>Rejected records by reason</h2>
${table(
  [
    { key: 'reason', label: 'reason', text: true },
    { key: 'records', label: 'records' },
  ],
  data.rejectedReasons,
)}
</main>
<footer>sessionizer report · self-contained: no scripts, no external resources</footer>
</body>
</html>
`;
}

export interface ReportOptions {
  readonly out: string;
  readonly dir?: string;
  readonly title?: string;
}

/** Writes the report of `source` to `out`; returns the file, its size and the totals. */
export async function writeReport(
  source: OutputSource,
  out: string,
  meta: ReportMeta,
): Promise<{ file: string; bytes: number } & ReportData['totals']> {
  const data = await withOutputs(source, reportData);
  const html = renderReport(data, meta);
  const file = resolve(out);
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, html);
  return { file, bytes: Buffer.byteLength(html), ...data.totals };
}

/** The `report` command. Without `--dir`, reads the local stack started with `stack`. */
export async function reportCommand(options: ReportOptions, stack: LocalStackOptions) {
  const source: OutputSource = options.dir !== undefined ? { dir: options.dir } : { stack };
  return writeReport(source, options.out, {
    ...(options.title !== undefined ? { title: options.title } : {}),
    source: options.dir !== undefined ? resolve(options.dir) : 'the local stack (output bucket)',
  });
}
