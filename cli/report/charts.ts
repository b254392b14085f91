/**
 * The report's five charts as inline SVG (sessions over time, session durations, pages per session, late-visit
 * ratio, top entry pages), each with a title and a description for screen readers.
 */

import { DAY, type ReportData } from './data.ts';
import { fmtInt, formatDurationShort, pct, utc } from './format.ts';
import { barChart, type Column, columnChart, lineChart, timeColumnTicks } from './svg.ts';

/** The five charts' SVG, by chart name. */
export function renderCharts(data: ReportData): Record<string, string> {
  return {
    'sessions-per-hour': sessionsChart(data.sessionsOverTime),
    'session-duration': durationChart(data.durations, data.totals.medianDurationMs),
    'pages-per-session': pagesChart(data.pagesPerSession),
    'late-visit-ratio': lateRatioChart(data.lateRatio),
    'top-entry-pages': entryPagesChart(data.topEntryPages),
  };
}

function sessionsChart({ step, buckets }: ReportData['sessionsOverTime']): string {
  const perUnit = step >= DAY ? 'day' : 'hour';
  const ticks = timeColumnTicks(
    buckets.map((b) => b.t),
    step,
  );
  return columnChart({
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
}

function durationChart(bins: ReportData['durations'], medianDurationMs: number | null): string {
  const every = Math.max(1, Math.ceil(bins.length / 8));
  return columnChart({
    name: 'session-duration',
    title: 'Session duration',
    desc:
      bins.length > 0
        ? `Histogram of session durations (last visit minus first) in ${bins.length} bins of ` +
          `${formatDurationShort(bins[0]!.to! - bins[0]!.from)}` +
          (bins[bins.length - 1]!.to === null ? ', the last one for longer sessions' : '') +
          (medianDurationMs !== null ? `; median ${formatDurationShort(Math.round(medianDurationMs))}.` : '.')
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
}

function pagesChart(pages: ReportData['pagesPerSession']): string {
  const pageEvery = Math.max(1, Math.ceil(pages.length / 15));
  return columnChart({
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
}

function lateRatioChart(ratio: ReportData['lateRatio']): string {
  const ratioUnit = ratio.step >= DAY ? 'day' : 'hour';
  const totalLate = ratio.points.reduce((a, p) => a + p.late, 0);
  const totalVisits = ratio.points.reduce((a, p) => a + p.visits, 0);
  return lineChart({
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
}

function entryPagesChart(top: ReportData['topEntryPages']): string {
  return barChart({
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
}
