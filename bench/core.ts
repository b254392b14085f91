/**
 * Core benchmark: parse + sessionize on one core with the handler's own functions, no AWS, no I/O; the JSON Lines
 * output is timed apart.
 *
 *   npm run bench:core -- [--visits N] [--users N] [--files N] [--seed N] [--runs N] [--json]
 *
 * Each format is timed `--runs` times (default 3) and the fastest run is reported: on a shared machine the slower
 * runs measure the neighbours. `--json` prints one JSON summary line last on stdout.
 *
 * The workload (bench/workload.ts) is generated in memory first (not timed), rendered as JSON Lines, gzip JSON
 * Lines and CSV. Each format is then processed the way the Lambda processes objects: one file is one batch, its
 * bytes streamed through parseVisits in 64 KiB chunks, split by shard and applied to each shard's ShardState (what
 * the handler does with a log entry once its I/O is done), and everything flushed at the end. That is the core
 * figure: "parse + sessionize", what DuckDB's query does. At the end of each batch its closed sessions, late visits
 * and rejected records are serialised to JSON Lines, as the Lambda writes them; that stage is timed apart
 * (`+output s`) and also reported as a rate including it.
 * Conservation (valid = accepted + duplicates + late, lines = valid + rejected) is checked; a failure exits 1.
 */
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { parseVisits, RecentStrings } from '../lambdas/core/parse/index.ts';
import { LATE_VISITS, REJECTED, SESSIONS, toJsonLine } from '../lambdas/core/schema.ts';
import { advanceWatermark } from '../lambdas/core/sessionize.ts';
import { ShardState, type StepOutcome } from '../lambdas/core/shard-state.ts';
import { splitByShard } from '../lambdas/core/shards.ts';
import {
  type ClosedSession,
  DEFAULT_SESSION_CONFIG,
  INITIAL_WATERMARK,
  type LateVisit,
  type Rejected,
  type SessionConfig,
  type Visit,
} from '../lambdas/core/types.ts';
import type { CoreCounts, OnClosed } from './sessions.ts';
import {
  chunked,
  generateVisits,
  positiveInt,
  renderFiles,
  WORKLOAD_ARGS,
  type WorkloadFile,
  workloadArgs,
} from './workload.ts';

export interface PassResult extends CoreCounts {
  readonly sessions: number;
  /** UTF-8 bytes of all output lines (sessions, late visits, rejected records). */
  readonly outputBytes: number;
  /** Order-independent checksum of the closed sessions (user, start, end, count), to compare formats. */
  readonly checksum: number;
  /** Wall-clock seconds of parse + sessionize + closing (the pass without {@link outputSeconds}). */
  readonly seconds: number;
  /** Wall-clock seconds spent serialising the output to JSON Lines (sessions, late visits, rejected records). */
  readonly outputSeconds: number;
  /** Wall-clock seconds of the whole pass. */
  readonly totalSeconds: number;
  /** CPU seconds of the process during the pass (all threads: includes GC helpers; less noisy on a busy host). */
  readonly cpuSeconds: number;
  readonly peakHeapBytes: number;
  readonly peakRssBytes: number;
}

/** Shards of the pass: the deployment default, so the pass splits users as the handler does. */
export const PASS_SHARDS = 16;

/**
 * Processes the files in order as batches, then flushes. Everything inside is timed. Each file is what the handler
 * does with one log entry, without the I/O: parse, split by shard, apply to each shard's state with the watermarks
 * the log records (ShardState: sessionizing, and closing through its expiry queue).
 */
export async function runPass(
  files: readonly WorkloadFile[],
  config: SessionConfig = DEFAULT_SESSION_CONFIG,
  onClosed?: OnClosed,
  shards = PASS_SHARDS,
): Promise<PassResult> {
  const states = Array.from({ length: shards }, () => new ShardState(config));
  let watermark = INITIAL_WATERMARK;
  let lines = 0;
  let valid = 0;
  let rejected = 0;
  let accepted = 0;
  let duplicates = 0;
  let late = 0;
  let sessions = 0;
  let sessionVisits = 0;
  let outputBytes = 0;
  let outputMs = 0;
  let checksum = 0;
  let peakHeap = 0;
  let peakRss = 0;
  // what a batch produced, serialised at its end (timed apart: the output stage, not parse + sessionize)
  let closedOut: ClosedSession[] = [];
  let lateOut: LateVisit[] = [];
  let rejectedOut: Rejected[] = [];
  /** Serialises the batch's output to JSON Lines and encodes it to UTF-8, as a writer would. */
  const write = (): void => {
    const t = performance.now();
    const out: string[] = [];
    for (const r of rejectedOut) out.push(toJsonLine(REJECTED, r));
    for (const v of lateOut) out.push(toJsonLine(LATE_VISITS, v));
    for (const s of closedOut) {
      out.push(toJsonLine(SESSIONS, s));
      sessionVisits += s.visits.length;
      checksum =
        (checksum +
          ((s.start % 1_000_003) * 31 + (s.end % 999_983) + s.visits.length * 7 + s.userId.length)) %
        2_147_483_647;
    }
    outputBytes += Buffer.byteLength(out.join(''));
    closedOut = [];
    lateOut = [];
    rejectedOut = [];
    outputMs += performance.now() - t;
  };
  const take = (outcome: StepOutcome): void => {
    accepted += outcome.accepted;
    duplicates += outcome.duplicates;
    late += outcome.late.length;
    for (const v of outcome.late) lateOut.push(v);
    for (const s of outcome.closed) {
      closedOut.push(s);
      sessions++;
      onClosed?.(s, batch);
    }
  };
  const sample = (): void => {
    const m = process.memoryUsage();
    if (m.heapUsed > peakHeap) peakHeap = m.heapUsed;
    if (m.rss > peakRss) peakRss = m.rss;
  };

  const started = performance.now();
  const cpuStarted = process.cpuUsage();
  let batch = 0;
  // one string table for the run, as the handler's staging keeps one per container
  const strings = new RecentStrings();
  for (const file of files) {
    lines += file.records;
    const visits: Visit[] = [];
    let maxT = Number.NEGATIVE_INFINITY;
    for await (const chunk of parseVisits(chunked(file.bytes), { sourceObject: file.name, strings })) {
      for (const v of chunk.visits) {
        if (v.t > maxT) maxT = v.t;
        visits.push(v);
      }
      for (const r of chunk.rejected) rejectedOut.push(r);
      rejected += chunk.rejected.length;
    }
    valid += visits.length;
    const marks = { before: watermark, after: advanceWatermark(watermark, maxT, config) };
    watermark = marks.after;
    const split = splitByShard(visits, shards);
    for (let s = 0; s < shards; s++) take(states[s]!.apply(split[s]!, marks, file.name));
    write();
    sample();
    batch++;
  }
  // flush: close everything still pending
  for (const state of states) take(state.flush());
  write();
  const totalSeconds = (performance.now() - started) / 1000;
  const outputSeconds = outputMs / 1000;
  const cpu = process.cpuUsage(cpuStarted);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  sample();
  return {
    lines,
    valid,
    rejected,
    accepted,
    duplicates,
    late,
    sessions,
    sessionVisits,
    outputBytes,
    checksum,
    seconds: totalSeconds - outputSeconds,
    outputSeconds,
    totalSeconds,
    cpuSeconds,
    peakHeapBytes: peakHeap,
    peakRssBytes: peakRss,
  };
}

/** Conservation problems of a pass (empty when it holds). */
export function conservationErrors(label: string, r: PassResult): string[] {
  const errors: string[] = [];
  if (r.valid !== r.accepted + r.duplicates + r.late) {
    errors.push(
      `${label}: valid ${r.valid} != accepted ${r.accepted} + duplicates ${r.duplicates} + late ${r.late}`,
    );
  }
  if (r.lines !== r.valid + r.rejected)
    errors.push(`${label}: lines ${r.lines} != valid ${r.valid} + rejected ${r.rejected}`);
  if (r.sessionVisits !== r.accepted) {
    errors.push(`${label}: visits in closed sessions ${r.sessionVisits} != accepted ${r.accepted}`);
  }
  return errors;
}

const mib = (bytes: number): string => `${(bytes / 1_048_576).toFixed(0)} MiB`;
const rate = (n: number): string => Math.round(n).toLocaleString('en-US');

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      ...WORKLOAD_ARGS,
      runs: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const { visits, users, files: fileCount, seed } = workloadArgs(values);
  const runs = positiveInt('runs', values.runs, 3);
  const log = (line: string): void => {
    process.stdout.write(`${line}\n`);
  };

  let t0 = performance.now();
  const table = generateVisits({ visits, users, files: fileCount, seed });
  const formats = [
    { label: 'JSONL', files: renderFiles(table, { format: 'jsonl' }) },
    { label: 'gzip JSONL', files: renderFiles(table, { format: 'jsonl', gzip: true }) },
    { label: 'CSV', files: renderFiles(table, { format: 'csv' }) },
  ];
  log(
    `workload: ${table.count.toLocaleString('en-US')} visits, ${users.toLocaleString('en-US')} users, ${fileCount} files, ` +
      `seed ${seed} (${table.lateInjected} injected late, ${table.duplicatesInjected} injected duplicates), ` +
      `generated in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );

  // warm-up: every format once on the first fifth of the files, so the JIT has seen all paths
  t0 = performance.now();
  for (const f of formats) await runPass(f.files.slice(0, Math.max(1, Math.ceil(f.files.length / 5))));
  log(`warm-up: ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  const results: { label: string; result: PassResult }[] = [];
  const errors: string[] = [];
  for (const f of formats) {
    let best: PassResult | undefined;
    for (let i = 0; i < runs; i++) {
      const r = await runPass(f.files);
      errors.push(...conservationErrors(f.label, r));
      if (best === undefined || r.seconds < best.seconds) best = r;
    }
    results.push({ label: f.label, result: best! });
  }

  const ref = results[0]!.result;
  for (const { label, result } of results.slice(1)) {
    if (result.sessions !== ref.sessions || result.checksum !== ref.checksum || result.late !== ref.late) {
      errors.push(
        `${label}: sessions/late differ from JSONL (${result.sessions}/${result.late} vs ${ref.sessions}/${ref.late})`,
      );
    }
  }

  const header = [
    'format',
    'visits',
    'files',
    'sessions',
    'late',
    'duplicates',
    'rejected',
    'seconds',
    'visits/s',
    '+output s',
    'visits/s w/ output',
    'CPU s',
    'peak heap',
    'peak RSS',
  ];
  const rows = results.map(({ label, result: r }) => [
    label,
    r.lines.toLocaleString('en-US'),
    String(fileCount),
    r.sessions.toLocaleString('en-US'),
    r.late.toLocaleString('en-US'),
    r.duplicates.toLocaleString('en-US'),
    r.rejected.toLocaleString('en-US'),
    r.seconds.toFixed(3),
    rate(r.lines / r.seconds),
    r.outputSeconds.toFixed(3),
    rate(r.lines / r.totalSeconds),
    r.cpuSeconds.toFixed(3),
    mib(r.peakHeapBytes),
    mib(r.peakRssBytes),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const fmt = (row: string[]): string =>
    row.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  log('');
  log(`fastest of ${runs} run${runs === 1 ? '' : 's'} per format, Node ${process.version}`);
  log(fmt(header));
  log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of rows) log(fmt(row));
  log('');
  log(errors.length === 0 ? 'conservation: ok' : `conservation FAILED:\n  ${errors.join('\n  ')}`);

  if (values.json) {
    const [jsonl, gz, csv] = results.map((r) => r.result);
    const summary = {
      visits: jsonl!.lines,
      files: fileCount,
      users,
      seed,
      sessions: jsonl!.sessions,
      late: jsonl!.late,
      duplicates: jsonl!.duplicates,
      rejected: jsonl!.rejected,
      seconds: Number(jsonl!.seconds.toFixed(4)),
      cpu_seconds: Number(jsonl!.cpuSeconds.toFixed(4)),
      visits_per_s: Math.round(jsonl!.lines / jsonl!.seconds),
      output_seconds: Number(jsonl!.outputSeconds.toFixed(4)),
      with_output_visits_per_s: Math.round(jsonl!.lines / jsonl!.totalSeconds),
      gzip_with_output_visits_per_s: Math.round(gz!.lines / gz!.totalSeconds),
      gzip_seconds: Number(gz!.seconds.toFixed(4)),
      gzip_visits_per_s: Math.round(gz!.lines / gz!.seconds),
      csv_seconds: Number(csv!.seconds.toFixed(4)),
      csv_visits_per_s: Math.round(csv!.lines / csv!.seconds),
      peak_heap_bytes: Math.max(...results.map((r) => r.result.peakHeapBytes)),
      peak_rss_bytes: Math.max(...results.map((r) => r.result.peakRssBytes)),
      conservation_ok: errors.length === 0,
      node: process.version,
    };
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  }
  return errors.length === 0 ? 0 : 1;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    process.exitCode = await main();
  } catch (error) {
    process.stderr.write(`bench:core: ${(error as Error).message}\n`);
    process.exitCode = 2;
  }
}
