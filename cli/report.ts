/**
 * `sessionizer report`: one self-contained static HTML page about the outputs: a few totals, five inline SVG
 * charts (sessions per hour, session durations, pages per session, late-visit ratio over time, top entry pages)
 * and per-day tables. The data comes from DuckDB queries over the same views as `sessionizer query` (the saved
 * Athena queries included); the page has no scripts and loads nothing (a Content-Security-Policy says so).
 * The queries are in report/data.ts, the charts in report/charts.ts, the page in report/page.ts.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { LocalStackOptions } from '../infra/local/stack.ts';
import { type OutputSource, withOutputs } from './query.ts';
import { type ReportData, reportData } from './report/data.ts';
import { type ReportMeta, renderReport } from './report/page.ts';

export type { ReportData } from './report/data.ts';
export { renderReport } from './report/page.ts';

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
