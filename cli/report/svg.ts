/**
 * Small inline-SVG charts for the static report: column charts (time buckets, histograms, counts), a horizontal
 * bar chart and a line chart over time. No scripts: tooltips are SVG `<title>` elements. Every chart's `<svg>` has
 * `role="img"`, a `<title>` and a `<desc>`, and `data-chart` / `data-points` attributes (its name, how many data
 * points it plots). Text is escaped: page names and reasons come from the input files.
 */

const WIDTH = 640;
const FONT = 11;
const MAX_COLUMN_WIDTH = 48;

/** Escapes text for HTML and SVG, content and attributes. */
export function esc(value: unknown): string {
  return String(value)
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;');
}

const num = (n: number): string => (Number.isInteger(n) ? String(n) : n.toFixed(2).replace(/\.?0+$/, ''));

/** 1, 2 or 5 times a power of ten, at least `raw`. */
export function niceStep(raw: number): number {
  if (!(raw > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(raw));
  const f = raw / p;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}

/** Ticks from 0 to a round top at least `max`, about `count` of them (whole numbers when `integer`). */
export function valueTicks(max: number, options: { count?: number; integer?: boolean } = {}): number[] {
  const count = options.count ?? 5;
  let step = niceStep(max > 0 ? max / count : 1);
  if (options.integer) step = Math.max(1, Math.round(step));
  const top = Math.max(step, Math.ceil(max / step - 1e-9) * step);
  const ticks: number[] = [];
  for (let v = 0; v <= top + step / 2; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** UTC tick times between `t0` and `t1` at a round step (1 h to 1 week), at most about `max` of them. */
export function timeTicks(t0: number, t1: number, max = 8): { step: number; ticks: number[] } {
  const steps = [HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY, 14 * DAY, 28 * DAY];
  const span = Math.max(0, t1 - t0);
  const step = steps.find((s) => span / s <= max) ?? Math.ceil(span / max / DAY) * DAY;
  const ticks: number[] = [];
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) ticks.push(t);
  return { step, ticks };
}

/** Label lines of a UTC tick: `HH:00` and, where the day changes (or first), `MM-DD`; only `MM-DD` for day steps. */
function timeLabel(t: number, previous: number | undefined, step: number): string[] {
  const iso = new Date(t).toISOString();
  const day = iso.slice(5, 10);
  if (step >= DAY) return [day];
  const newDay = previous === undefined || new Date(previous).toISOString().slice(0, 10) !== iso.slice(0, 10);
  return newDay ? [iso.slice(11, 16), day] : [iso.slice(11, 16)];
}

interface Frame {
  readonly name: string;
  readonly title: string;
  readonly desc: string;
  readonly xLabel: string;
  readonly yLabel: string;
}

interface Box {
  readonly left: number;
  readonly top: number;
  readonly width: number;
  readonly height: number;
}

function open(frame: Frame, points: number, height: number): string {
  const id = `chart-${frame.name}`;
  return [
    `<svg viewBox="0 0 ${WIDTH} ${height}" width="${WIDTH}" height="${height}"`,
    ` role="img" aria-labelledby="${id}-title ${id}-desc" data-chart="${esc(frame.name)}" data-points="${points}"`,
    ` font-family="system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif" font-size="${FONT}">`,
    `<title id="${id}-title">${esc(frame.title)}</title>`,
    `<desc id="${id}-desc">${esc(frame.desc)}</desc>`,
    `<text class="chart-title" x="12" y="22" font-size="15" font-weight="600" fill="#1f2933">${esc(frame.title)}</text>`,
  ].join('');
}

/** Axis labels, centred under the x axis and along the y axis. */
function axisLabels(frame: Frame, box: Box, height: number): string {
  const cy = box.top + box.height / 2;
  return (
    `<text class="axis-label" x="${box.left + box.width / 2}" y="${height - 8}" text-anchor="middle" fill="#52606d">${esc(frame.xLabel)}</text>` +
    `<text class="axis-label" x="14" y="${cy}" text-anchor="middle" fill="#52606d" transform="rotate(-90 14 ${cy})">${esc(frame.yLabel)}</text>`
  );
}

/** Horizontal grid lines and value ticks of a y axis from 0 to the last tick. */
function yAxis(box: Box, ticks: readonly number[], format: (v: number) => string): string {
  const top = ticks[ticks.length - 1]!;
  const parts: string[] = [];
  for (const v of ticks) {
    const y = box.top + box.height - (v / top) * box.height;
    parts.push(
      `<line x1="${box.left}" x2="${box.left + box.width}" y1="${y}" y2="${y}" stroke="${v === 0 ? '#7b8794' : '#e4e7eb'}"/>`,
      `<text x="${box.left - 6}" y="${y + 4}" text-anchor="end" fill="#52606d">${esc(format(v))}</text>`,
    );
  }
  return `<g class="y-axis">${parts.join('')}</g>`;
}

function xTick(x: number, box: Box, lines: readonly string[]): string {
  const y = box.top + box.height;
  const text = lines.map((l, i) => `<tspan x="${x}" dy="${i === 0 ? 14 : 12}">${esc(l)}</tspan>`).join('');
  return `<line x1="${x}" x2="${x}" y1="${y}" y2="${y + 4}" stroke="#7b8794"/><text x="${x}" y="${y}" text-anchor="middle" fill="#52606d">${text}</text>`;
}

function noData(box: Box): string {
  return `<text class="no-data" x="${box.left + box.width / 2}" y="${box.top + box.height / 2}" text-anchor="middle" fill="#9aa5b1" font-size="14">no data</text>`;
}

export interface Column {
  readonly value: number;
  /** Tooltip text. */
  readonly tooltip: string;
  /** Label lines under the column, if it gets a tick. */
  readonly tick?: readonly string[];
}

/** Vertical bars side by side (a time series in buckets, a histogram, counts by category). */
export function columnChart(
  frame: Frame & { readonly columns: readonly Column[]; readonly integer?: boolean },
): string {
  const height = 300;
  const box: Box = { left: 64, top: 40, width: WIDTH - 64 - 16, height: height - 40 - 62 };
  const n = frame.columns.length;
  const max = Math.max(0, ...frame.columns.map((c) => c.value));
  const ticks = valueTicks(max, { integer: frame.integer ?? false });
  const top = ticks[ticks.length - 1]!;
  const slot = n > 0 ? box.width / n : box.width;
  const gap = slot > 6 ? Math.min(slot * 0.15, 6) : 0;
  const parts = [open(frame, n, height), yAxis(box, ticks, num)];
  const bars: string[] = [];
  const labels: string[] = [];
  frame.columns.forEach((c, i) => {
    const x = box.left + i * slot;
    if (c.value > 0) {
      const h = (c.value / top) * box.height;
      const w = Math.min(MAX_COLUMN_WIDTH, Math.max(0.5, slot - gap));
      bars.push(
        `<rect class="mark" x="${(x + (slot - w) / 2).toFixed(2)}" y="${(box.top + box.height - h).toFixed(2)}" width="${w.toFixed(2)}" height="${h.toFixed(2)}" fill="#3b6ea5"><title>${esc(c.tooltip)}</title></rect>`,
      );
    }
    if (c.tick) labels.push(xTick(x + slot / 2, box, c.tick));
  });
  parts.push(`<g class="marks">${bars.join('')}</g>`, `<g class="x-axis">${labels.join('')}</g>`);
  if (n === 0) parts.push(noData(box));
  parts.push(axisLabels(frame, box, height), '</svg>');
  return parts.join('');
}

export interface HBar {
  readonly label: string;
  readonly value: number;
  readonly tooltip: string;
}

/** Horizontal bars, one row each, labelled on the left (a top-N list). */
export function barChart(frame: Frame & { readonly bars: readonly HBar[] }): string {
  const rowHeight = 20;
  const n = frame.bars.length;
  const labelChars = 30;
  const cut = (s: string) => (s.length > labelChars ? `${s.slice(0, labelChars - 1)}…` : s);
  const longest = Math.max(4, ...frame.bars.map((b) => cut(b.label).length));
  // room for the rotated axis label, then the row labels
  const left = Math.min(280, 36 + longest * FONT * 0.6);
  const box: Box = { left, top: 40, width: WIDTH - left - 56, height: Math.max(1, n) * rowHeight };
  const height = box.top + box.height + 48;
  const max = Math.max(0, ...frame.bars.map((b) => b.value));
  const ticks = valueTicks(max, { integer: true });
  const top = ticks[ticks.length - 1]!;
  const parts = [open(frame, n, height)];
  const grid: string[] = [];
  for (const v of ticks) {
    const x = box.left + (v / top) * box.width;
    grid.push(
      `<line x1="${x}" x2="${x}" y1="${box.top}" y2="${box.top + box.height}" stroke="${v === 0 ? '#7b8794' : '#e4e7eb'}"/>`,
      `<text x="${x}" y="${box.top + box.height + 14}" text-anchor="middle" fill="#52606d">${esc(num(v))}</text>`,
    );
  }
  parts.push(`<g class="x-axis">${grid.join('')}</g>`);
  const rows = frame.bars.map((b, i) => {
    const y = box.top + i * rowHeight;
    const w = (b.value / top) * box.width;
    return (
      `<text x="${box.left - 6}" y="${y + rowHeight / 2 + 4}" text-anchor="end" fill="#1f2933">${esc(cut(b.label))}</text>` +
      (b.value > 0
        ? `<rect class="mark" x="${box.left}" y="${y + 3}" width="${w.toFixed(2)}" height="${rowHeight - 6}" fill="#3b6ea5"><title>${esc(b.tooltip)}</title></rect>`
        : '') +
      `<text x="${(box.left + w + 4).toFixed(2)}" y="${y + rowHeight / 2 + 4}" fill="#52606d">${esc(num(b.value))}</text>`
    );
  });
  parts.push(`<g class="marks">${rows.join('')}</g>`);
  if (n === 0) parts.push(noData(box));
  parts.push(axisLabels({ ...frame }, box, height), '</svg>');
  return parts.join('');
}

export interface TimePoint {
  /** Start of the bucket, epoch ms. */
  readonly t: number;
  readonly value: number;
  readonly tooltip: string;
}

/**
 * A line over time with a marker per point; the line breaks where buckets (of `step` ms) are missing. The y axis
 * goes from 0 to a round value at least the largest point.
 */
export function lineChart(
  frame: Frame & {
    readonly points: readonly TimePoint[];
    readonly step: number;
    readonly format: (v: number) => string;
  },
): string {
  const height = 300;
  const box: Box = { left: 64, top: 40, width: WIDTH - 64 - 24, height: height - 40 - 62 };
  const points = [...frame.points].sort((a, b) => a.t - b.t);
  const n = points.length;
  const max = Math.max(0, ...points.map((p) => p.value));
  const ticks = valueTicks(max > 0 ? max : 0.01);
  const top = ticks[ticks.length - 1]!;
  const t0 = n > 0 ? points[0]!.t : 0;
  const t1 = n > 0 ? points[n - 1]!.t : 1;
  const xOf = (t: number) =>
    t1 > t0 ? box.left + ((t - t0) / (t1 - t0)) * box.width : box.left + box.width / 2;
  const yOf = (v: number) => box.top + box.height - (v / top) * box.height;
  const parts = [open(frame, n, height), yAxis(box, ticks, frame.format)];
  const { step, ticks: times } = timeTicks(t0, t1);
  const labels = times.map((t, i) => xTick(xOf(t), box, timeLabel(t, times[i - 1], step)));
  if (n > 0 && t1 === t0) labels.push(xTick(xOf(t0), box, timeLabel(t0, undefined, frame.step)));
  parts.push(`<g class="x-axis">${labels.join('')}</g>`);
  let d = '';
  points.forEach((p, i) => {
    const jump = i === 0 || p.t - points[i - 1]!.t > frame.step;
    d += `${jump ? 'M' : 'L'}${xOf(p.t).toFixed(2)},${yOf(p.value).toFixed(2)}`;
  });
  if (d)
    parts.push(
      `<path class="line" d="${d}" fill="none" stroke="#d9822b" stroke-width="2" stroke-linejoin="round"/>`,
    );
  const r = n > 60 ? 2 : 3.5;
  parts.push(
    `<g class="marks">${points
      .map(
        (p) =>
          `<circle class="mark" cx="${xOf(p.t).toFixed(2)}" cy="${yOf(p.value).toFixed(2)}" r="${r}" fill="#d9822b"><title>${esc(p.tooltip)}</title></circle>`,
      )
      .join('')}</g>`,
  );
  if (n === 0) parts.push(noData(box));
  parts.push(axisLabels(frame, box, height), '</svg>');
  return parts.join('');
}

/** Tick labels for columns that are consecutive time buckets of `step` ms starting at `t0`. */
export function timeColumnTicks(times: readonly number[], step: number): (string[] | undefined)[] {
  if (times.length === 0) return [];
  const { step: tickStep, ticks } = timeTicks(times[0]!, times[times.length - 1]!, 8);
  const every = Math.max(tickStep, step);
  const wanted = new Set(ticks.filter((t) => t % every === 0));
  let previous: number | undefined;
  return times.map((t) => {
    if (!wanted.has(t)) return undefined;
    const label = timeLabel(t, previous, every);
    previous = t;
    return label;
  });
}
