/**
 * Seeded, deterministic visit workload for the benchmarks: the same options always give the same bytes.
 *
 * Users have sessions of a few visits (gaps of seconds to minutes) separated by pauses longer than the 40-minute
 * session gap. Files follow arrival order: time mostly increases from file to file, with a few minutes of disorder,
 * a fraction of visits arriving hours late (so they are late for the watermark), and a few exact duplicates that
 * arrive shortly after their original (so they are counted as duplicates, not late).
 *
 * {@link generateVisits} builds the visit table once; {@link renderFiles} writes it as JSON Lines or CSV, optionally
 * gzip-compressed, so one table can be rendered in several formats with identical content.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { logUniform, mulberry32 } from './random.ts';

export type WorkloadFormat = 'jsonl' | 'csv';

export interface WorkloadOptions {
  /** Records written in total (duplicates and late visits included). @default 1_000_000 */
  readonly visits?: number;
  /** Distinct users. @default 50_000 */
  readonly users?: number;
  /** Files (batches) the records are cut into, in arrival order. @default 100 */
  readonly files?: number;
  /** PRNG seed. @default 42 */
  readonly seed?: number;
  /** Fraction of records that arrive hours after their time (late for any watermark). @default 0.01 */
  readonly lateFraction?: number;
  /** Fraction of records that are exact copies of another one, arriving shortly after it. @default 0.001 */
  readonly duplicateFraction?: number;
  /** Distinct pages. @default 1_000 */
  readonly pages?: number;
  /** Epoch ms of the earliest session start. @default 2026-02-15T00:00:00Z */
  readonly startTime?: number;
  /** Span over which users start their first session, ms. @default 24 h */
  readonly spanMs?: number;
  /** Largest arrival disorder of a non-late record, ms. @default 3 min */
  readonly disorderMs?: number;
}

export interface RenderOptions {
  /** @default 'jsonl' */
  readonly format?: WorkloadFormat;
  /** @default false */
  readonly gzip?: boolean;
  /** File name prefix. @default 'visits-' */
  readonly prefix?: string;
}

/** The visit records in arrival order, as parallel typed arrays (compact: a million records is ~20 MB). */
export interface VisitTable {
  readonly count: number;
  /** User index per record (0 ≤ u < users); see {@link userIdOf}. */
  readonly user: Int32Array;
  /** Visit time per record, epoch ms. */
  readonly time: Float64Array;
  /** Page number per record (`page_<n>.html`). */
  readonly page: Int32Array;
  /** Index of the first record of each file, plus `count` at the end (length `files + 1`). */
  readonly fileStarts: Int32Array;
  /** Records injected as far-too-late arrivals. */
  readonly lateInjected: number;
  /** Records injected as exact duplicates. */
  readonly duplicatesInjected: number;
  readonly minTime: number;
  readonly maxTime: number;
}

export interface WorkloadFile {
  readonly name: string;
  readonly bytes: Buffer;
  /** Data records in the file (CSV: without the header). */
  readonly records: number;
}

export interface Workload {
  readonly files: WorkloadFile[];
  readonly table: VisitTable;
}

export const WORKLOAD_DEFAULTS = {
  visits: 1_000_000,
  users: 50_000,
  files: 100,
  seed: 42,
  lateFraction: 0.01,
  duplicateFraction: 0.001,
  pages: 1_000,
  startTime: Date.UTC(2026, 1, 15),
  spanMs: 24 * 3_600_000,
  disorderMs: 3 * 60_000,
} as const;

/** A `--name` option of the bench commands: a non-negative safe integer, zero only when `allowZero`. */
export function positiveInt(
  name: string,
  text: string | undefined,
  fallback: number,
  allowZero = false,
): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 0 || (n === 0 && !allowZero)) {
    throw new Error(`--${name}: expected a positive integer, got ${JSON.stringify(text)}`);
  }
  return n;
}

/** The workload options every bench command takes, as `parseArgs` options: `--visits`, `--users`, `--files`, `--seed`. */
export const WORKLOAD_ARGS = {
  visits: { type: 'string' },
  users: { type: 'string' },
  files: { type: 'string' },
  seed: { type: 'string' },
} as const;

/** The workload options of `parseArgs` values ({@link WORKLOAD_ARGS}), checked, with their defaults. */
export function workloadArgs(values: {
  readonly visits?: string;
  readonly users?: string;
  readonly files?: string;
  readonly seed?: string;
}): { visits: number; users: number; files: number; seed: number } {
  return {
    visits: positiveInt('visits', values.visits, WORKLOAD_DEFAULTS.visits),
    users: positiveInt('users', values.users, WORKLOAD_DEFAULTS.users),
    files: positiveInt('files', values.files, WORKLOAD_DEFAULTS.files),
    seed: positiveInt('seed', values.seed, WORKLOAD_DEFAULTS.seed, true),
  };
}

/** A file's bytes as the parser reads an object: a stream of 64 KiB chunks. */
export async function* chunked(bytes: Buffer): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += 64 * 1024) yield bytes.subarray(i, i + 64 * 1024);
}

/** The `user_id` value of user `u` as written: two users in three are numbers, the third a string. */
export function userIdOf(u: number): number | string {
  return u % 3 === 2 ? `user-${u}` : 100_000 + u;
}

/** Builds the visit table: every record's user, time and page, in arrival order, cut into files. */
export function generateVisits(options: WorkloadOptions = {}): VisitTable {
  const o = { ...WORKLOAD_DEFAULTS, ...options };
  const total = Math.max(0, Math.floor(o.visits));
  const users = Math.max(1, Math.min(Math.floor(o.users), Math.max(1, total)));
  const files = Math.max(1, Math.floor(o.files));
  const rand = mulberry32(o.seed);

  const duplicates = Math.min(total, Math.round(total * o.duplicateFraction));
  const base = total - duplicates;

  // Visits per user: skewed weights (a few heavy users, many light ones), every user at least one visit.
  const weights = new Float64Array(users);
  let weightSum = 0;
  for (let u = 0; u < users; u++) {
    const weight = 1 / (0.2 + rand());
    weights[u] = weight;
    weightSum += weight;
  }
  const perUser = new Int32Array(users);
  let assigned = 0;
  for (let u = 0; u < users; u++) {
    const n = base >= users ? 1 + Math.floor(((base - users) * weights[u]!) / weightSum) : u < base ? 1 : 0;
    perUser[u] = n;
    assigned += n;
  }
  for (let u = 0; assigned < base; u = (u + 1) % users, assigned++) perUser[u]!++;

  const user = new Int32Array(total);
  const time = new Float64Array(total);
  const page = new Int32Array(total);
  const arrival = new Float64Array(total);
  let k = 0;
  let lateInjected = 0;
  let minTime = Number.POSITIVE_INFINITY;
  let maxTime = Number.NEGATIVE_INFINITY;
  for (let u = 0; u < users; u++) {
    let t = o.startTime + Math.floor(rand() * o.spanMs);
    let left = perUser[u]!;
    let currentPage = Math.floor(rand() ** 2 * o.pages);
    while (left > 0) {
      // one session: 1 to ~12 visits, seconds to minutes apart
      const size = Math.min(left, 1 + Math.floor(-Math.log(1 - rand()) * 4));
      for (let i = 0; i < size; i++) {
        if (i > 0) t += Math.floor(logUniform(rand, 1_000, 15 * 60_000));
        t += Math.floor(rand() * 1000); // ms part
        if (rand() < 0.7) currentPage = Math.floor(rand() ** 2 * o.pages);
        user[k] = u;
        time[k] = t;
        page[k] = currentPage;
        if (rand() < o.lateFraction) {
          arrival[k] = t + logUniform(rand, 1 * 3_600_000, 12 * 3_600_000);
          lateInjected++;
        } else {
          arrival[k] = t + rand() * o.disorderMs;
        }
        if (t < minTime) minTime = t;
        if (t > maxTime) maxTime = t;
        k++;
      }
      left -= size;
      // pause longer than the 40-minute gap: 41 minutes to 8 hours
      t += Math.floor(logUniform(rand, 41 * 60_000, 8 * 3_600_000));
    }
  }
  // exact duplicates of random earlier records, arriving within a minute of the original's arrival
  for (let d = 0; d < duplicates; d++) {
    const of = Math.floor(rand() * base);
    user[k] = user[of]!;
    time[k] = time[of]!;
    page[k] = page[of]!;
    arrival[k] = arrival[of]! + rand() * 60_000;
    k++;
  }

  // arrival order: sort by arrival time (ties by record index, so the order is total and deterministic)
  const order = Array.from({ length: total }, (_, i) => i);
  order.sort((a, b) => arrival[a]! - arrival[b]! || a - b);
  const sortedUser = new Int32Array(total);
  const sortedTime = new Float64Array(total);
  const sortedPage = new Int32Array(total);
  for (let i = 0; i < total; i++) {
    const j = order[i]!;
    sortedUser[i] = user[j]!;
    sortedTime[i] = time[j]!;
    sortedPage[i] = page[j]!;
  }

  const fileStarts = new Int32Array(files + 1);
  for (let f = 0; f <= files; f++) fileStarts[f] = Math.round((f * total) / files);
  return {
    count: total,
    user: sortedUser,
    time: sortedTime,
    page: sortedPage,
    fileStarts,
    lateInjected,
    duplicatesInjected: duplicates,
    minTime: total > 0 ? minTime : Number.NaN,
    maxTime: total > 0 ? maxTime : Number.NaN,
  };
}

/** Writes the table as files, one per `fileStarts` range: JSON Lines or CSV (header row), optionally gzip. */
export function renderFiles(table: VisitTable, options: RenderOptions = {}): WorkloadFile[] {
  const format = options.format ?? 'jsonl';
  const gzip = options.gzip ?? false;
  const prefix = options.prefix ?? 'visits-';
  const files = table.fileStarts.length - 1;
  const width = Math.max(4, String(files).length);
  const userText = new Map<number, string>();
  const textOfUser = (u: number): string => {
    let s = userText.get(u);
    if (s === undefined) {
      const id = userIdOf(u);
      s = format === 'csv' || typeof id === 'number' ? String(id) : JSON.stringify(id);
      userText.set(u, s);
    }
    return s;
  };
  const out: WorkloadFile[] = [];
  for (let f = 0; f < files; f++) {
    const from = table.fileStarts[f]!;
    const to = table.fileStarts[f + 1]!;
    const parts: string[] = format === 'csv' ? ['user_id,visit_time,page\n'] : [];
    for (let i = from; i < to; i++) {
      const iso = new Date(table.time[i]!).toISOString();
      const u = textOfUser(table.user[i]!);
      const p = table.page[i]!;
      parts.push(
        format === 'csv'
          ? `${u},${iso},page_${p}.html\n`
          : `{"user_id":${u},"visit_time":"${iso}","page":"page_${p}.html"}\n`,
      );
    }
    const raw = Buffer.from(parts.join(''), 'utf8');
    const name = `${prefix}${String(f + 1).padStart(width, '0')}.${format}${gzip ? '.gz' : ''}`;
    out.push({ name, bytes: gzip ? gzipSync(raw) : raw, records: to - from });
  }
  return out;
}

/** Generates a workload and renders it in one format. */
export function generateWorkload(options: WorkloadOptions & RenderOptions = {}): Workload {
  const table = generateVisits(options);
  return { table, files: renderFiles(table, options) };
}

export interface WrittenWorkload {
  readonly table: VisitTable;
  /** The files' paths, in arrival (upload) order. */
  readonly paths: string[];
  readonly bytes: number;
  readonly seconds: number;
}

/** Generates the workload and writes it as JSON Lines files to `dir`. */
export async function writeWorkload(
  dir: string,
  options: { visits: number; users: number; files: number; seed: number },
): Promise<WrittenWorkload> {
  const started = performance.now();
  const table = generateVisits(options);
  const paths: string[] = [];
  let bytes = 0;
  for (const f of renderFiles(table, { format: 'jsonl' })) {
    const path = join(dir, f.name);
    await writeFile(path, f.bytes);
    paths.push(path);
    bytes += f.bytes.length;
  }
  return { table, paths, bytes, seconds: (performance.now() - started) / 1000 };
}
