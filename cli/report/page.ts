/**
 * The report page: totals, the charts, the per-day and rejected-records tables, in one static HTML document with
 * inline CSS, no scripts and nothing loaded (a Content-Security-Policy says so).
 */

import type { Plain } from '../query.ts';
import { renderCharts } from './charts.ts';
import type { ReportData } from './data.ts';
import { fmtInt, formatDurationShort, pct } from './format.ts';
import { esc } from './svg.ts';

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
