/**
 * The core and DuckDB stage of `npm run bench`, each part in a child process of its own (with nothing else loaded, so
 * that neither pays for this process's heap):
 *  - bench/core.ts: one core pass per format (JSON Lines, gzip JSON Lines, CSV), the output stage timed apart;
 *  - bench/head-to-head.ts: the core pass and DuckDB's SQL in turns, `rounds` times, DuckDB with its default threads
 *    and with one; the best of each is the figure.
 * Then here, untimed: DuckDB's sessions (one more run) and the reference driver's (bench/sessions.ts), compared.
 */

import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { localEnv } from '../bin/run.js';
import { runDuckDb } from './duckdb.ts';
import type { HeadToHead } from './head-to-head.ts';
import {
  type Comparison,
  type CoreCounts,
  compareSessions,
  coreSessions,
  type SessionsResult,
} from './sessions.ts';

const run = promisify(execFile);
const CORE_SCRIPT = fileURLToPath(new URL('./core.ts', import.meta.url));
const HEAD_TO_HEAD_SCRIPT = fileURLToPath(new URL('./head-to-head.ts', import.meta.url));

/** bench/core.ts's JSON line (the fields read here). */
export interface CoreChild {
  visits_per_s: number;
  with_output_visits_per_s?: number;
  gzip_visits_per_s: number;
  csv_visits_per_s?: number;
  conservation_ok?: boolean;
}

export interface Versus {
  readonly coreChild: CoreChild;
  readonly head: HeadToHead;
  /** The reference driver's sessions for every file (the pipeline is compared with them too). */
  readonly reference: SessionsResult & { counts: CoreCounts };
  readonly comparison: Comparison;
  readonly errors: string[];
}

async function runCoreChild(args: { visits: number; users: number; files: number; seed: number }) {
  const argv = [CORE_SCRIPT, '--json'];
  for (const [k, v] of Object.entries(args)) argv.push(`--${k}`, String(v));
  let stdout: string;
  let exitCode = 0;
  try {
    ({ stdout } = await run(process.execPath, argv, { env: localEnv(), maxBuffer: 64 * 1024 * 1024 }));
  } catch (error) {
    // bench/core.ts exits 1 when conservation fails, still printing its JSON line
    const e = error as { stdout?: string; code?: number; stderr?: string };
    if (!e.stdout) throw new Error(`bench/core.ts failed: ${e.stderr ?? String(error)}`);
    stdout = e.stdout;
    exitCode = typeof e.code === 'number' ? e.code : 1;
  }
  try {
    return { result: JSON.parse(stdout.trim().split('\n').pop() ?? '') as CoreChild, exitCode };
  } catch {
    throw new Error(`bench/core.ts: no JSON line at the end of its output:\n${stdout.slice(-2000)}`);
  }
}

/** bench/head-to-head.ts in a child process (its progress on our stderr); its JSON result. */
async function runHeadToHead(rounds: number, paths: readonly string[]): Promise<HeadToHead> {
  const child = spawn(process.execPath, [HEAD_TO_HEAD_SCRIPT, String(rounds), ...paths], {
    env: localEnv(),
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let stdout = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (text: string) => {
    stdout += text;
  });
  const [code] = (await once(child, 'close')) as [number | null];
  if (code !== 0) throw new Error(`bench/head-to-head.ts exited with ${code}`);
  return JSON.parse(stdout.trim().split('\n').pop() ?? '') as HeadToHead;
}

export async function runVersus(
  paths: readonly string[],
  workload: { visits: number; users: number; files: number; seed: number },
  rounds: number,
): Promise<Versus> {
  process.stderr.write('core: bench/core.ts in a child process...\n');
  const core = await runCoreChild(workload);
  // in turns, so that both see the same machine: on a shared host the speed drifts by 10-20% from minute to minute
  process.stderr.write(
    `head to head: ${rounds} rounds of one core pass and one DuckDB run, in a child process...\n`,
  );
  const head = await runHeadToHead(rounds, paths);
  const duck = await runDuckDb(paths, 1);
  process.stderr.write('the reference driver, for the comparison of results...\n');
  const reference = await coreSessions(paths);
  const c = reference.counts;
  const errors: string[] = [];
  if (core.result.conservation_ok === false || core.exitCode !== 0)
    errors.push('bench/core.ts reported a conservation failure');
  if (c.valid !== c.accepted + c.duplicates + c.late || c.sessionVisits !== c.accepted)
    errors.push('reference driver: conservation failed');
  errors.push(...head.errors);
  return {
    coreChild: core.result,
    head,
    reference,
    comparison: compareSessions(reference, duck),
    errors,
  };
}
