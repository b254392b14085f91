/** Plain-text tables in the style of Spark's `show()`: `+---+` borders, left-aligned cells. */

export function formatTable(
  columns: readonly string[],
  rows: readonly (readonly unknown[])[],
  maxWidth = 60,
): string {
  const text = (v: unknown): string => {
    const s = v === null || v === undefined ? 'null' : typeof v === 'string' ? v : JSON.stringify(v);
    return s.length > maxWidth ? `${s.slice(0, maxWidth - 3)}...` : s;
  };
  const cells = rows.map((r) => columns.map((_, i) => text(r[i])));
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((r) => r[i]!.length)));
  const line = `+${widths.map((w) => '-'.repeat(w)).join('+')}+`;
  const fmt = (r: readonly string[]) => `|${r.map((c, i) => c.padEnd(widths[i]!)).join('|')}|`;
  const out = [line, fmt(columns), line, ...cells.map(fmt), line];
  if (rows.length === 0) out.push('(no rows)');
  return out.join('\n');
}
