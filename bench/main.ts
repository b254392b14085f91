/**
 * `npm run bench`: the sessionizer against DuckDB, end to end through the local servers, the cost of a visit as the
 * state grows, concurrent invocations, memory, the bundle; priced with the table `sessionizer replay` uses.
 *
 *   npm run bench -- [--visits N] [--users N] [--files N] [--seed N] [--rounds N]
 *                    [--skip-pipeline] [--skip-growth] [--pending-users N] [--pending-files N]
 *                    [--concurrency 1,2,4,8] [--concurrency-batch N]
 *                    [--skip-memory] [--memory-visits N] [--memory-users N] [--memory-mb N] [--big-visits N]
 *
 * Stages, in order (each in bench/<file>.ts):
 *  - workload (workload.ts): a seeded workload written as JSON Lines files to a temporary folder;
 *  - core and DuckDB head to head (versus.ts): the core's figure is parse + split by shard + apply to each shard's
 *    state (bench/core.ts, what the handler does with a log entry once its I/O is done);
 *  - bundle (bundle.ts): the Lambda bundle as CDK builds it, its size and module load time;
 *  - pipeline (pipeline.ts): every file through s3rver + dynalite in the ingest queue's batches, then a flush;
 *  - state growth (growth.ts): a 1,000-visit session over 50 files, and a million users pending at once;
 *  - concurrency (concurrency.ts), only with --concurrency: the pipeline with that many invocations at once;
 *  - memory (memory.ts): the handler in a child process on a wide ~1 GB object, then on ~10 million short visits in
 *    one invocation, killed part-way and run again.
 * Progress goes to stderr; the table to stdout, and one JSON object as the last stdout line (figures.ts).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_SETTINGS } from '../infra/settings.ts';
import { buildBundle, measureInit } from './bundle.ts';
import { parseLevels, runConcurrency } from './concurrency.ts';
import {
  type BenchResults,
  type BundleStage,
  derive,
  type MemoryStage,
  type PipelineStage,
  printSummary,
} from './figures.ts';
import { runLongSession, runPendingUsers } from './growth.ts';
import { runBig, runWide } from './memory.ts';
import { runPipeline } from './pipeline.ts';
import { printReport } from './report.ts';
import { compareSessions, type SessionsResult } from './sessions.ts';
import { runVersus } from './versus.ts';
import { positiveInt, WORKLOAD_ARGS, workloadArgs, writeWorkload } from './workload.ts';

const note = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

/** 1 GiB at ten million visits: ~107-byte lines. */
const BIG_BYTES_PER_VISIT = 1024 ** 3 / 10_000_000;

function parseOptions() {
  const { values } = parseArgs({
    options: {
      ...WORKLOAD_ARGS,
      rounds: { type: 'string' },
      'skip-pipeline': { type: 'boolean', default: false },
      'skip-growth': { type: 'boolean', default: false },
      'pending-users': { type: 'string' },
      'pending-files': { type: 'string' },
      concurrency: { type: 'string' },
      'concurrency-batch': { type: 'string' },
      'skip-memory': { type: 'boolean', default: false },
      'memory-visits': { type: 'string' },
      'memory-users': { type: 'string' },
      'memory-mb': { type: 'string' },
      'big-visits': { type: 'string' },
    },
    strict: true,
  });
  const bigVisits = positiveInt('big-visits', values['big-visits'], 10_000_000);
  return {
    workload: workloadArgs(values),
    rounds: positiveInt('rounds', values.rounds, 5),
    skipPipeline: values['skip-pipeline'],
    skipGrowth: values['skip-growth'],
    pendingUsers: positiveInt('pending-users', values['pending-users'], 1_000_000),
    pendingFiles: positiveInt('pending-files', values['pending-files'], 20),
    levels: values.concurrency === undefined ? undefined : parseLevels(values.concurrency),
    concurrencyBatch: positiveInt('concurrency-batch', values['concurrency-batch'], 10),
    skipMemory: values['skip-memory'],
    wide: {
      visits: positiveInt('memory-visits', values['memory-visits'], 500_000),
      users: positiveInt('memory-users', values['memory-users'], 5_000),
      bytes: positiveInt('memory-mb', values['memory-mb'], 1024) * 1024 * 1024,
    },
    // the workload's ratio of users to visits (20 visits a user)
    big: {
      visits: bigVisits,
      users: Math.max(1, Math.round(bigVisits / 20)),
      bytes: Math.round(bigVisits * BIG_BYTES_PER_VISIT),
    },
  };
}

type Options = ReturnType<typeof parseOptions>;

function machine() {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memory_gb: Number((os.totalmem() / 1024 ** 3).toFixed(1)),
    node: process.version,
    platform: `${os.platform()} ${os.arch()}`,
  };
}

async function bundleStage(dir: string): Promise<BundleStage> {
  note('bundle: esbuild with the CDK options...');
  try {
    const bundle = await buildBundle(join(dir, 'bundle'));
    return { bundle, init: await measureInit(bundle.file, 5) };
  } catch (error) {
    note(`bundle: FAILED: ${(error as Error).message}`);
    return { error: (error as Error).message };
  }
}

async function pipelineStage(paths: readonly string[], reference: SessionsResult): Promise<PipelineStage> {
  const batchSize = DEFAULT_SETTINGS.queueBatchSize;
  note(`pipeline: ${paths.length} files through s3rver + dynalite, in batches of ${batchSize}...`);
  const run = await runPipeline(paths, {
    batchSize,
    onBatch: (files, done) => note(`pipeline: ${done} batch(es) of ${Math.ceil(files / batchSize)} done`),
  });
  note(`pipeline: ${run.seconds.toFixed(1)} s from the queue's resume to the end of the flush`);
  const comparison = compareSessions(reference, { sessions: run.sessions, late: run.state.late });
  return { run, comparison };
}

async function growthStage(options: Options) {
  note('state growth: a session of 1,000 visits over 50 files...');
  const long = await runLongSession({ visits: 1000, files: 50 });
  note(
    `state growth: ${options.pendingUsers.toLocaleString('en-US')} users pending at once, ${options.pendingFiles} files...`,
  );
  const pending = await runPendingUsers({
    users: options.pendingUsers,
    files: options.pendingFiles,
    onFile: (done) => note(`state growth: pending users, file ${done}/${options.pendingFiles}`),
  });
  return { long, pending };
}

async function memoryStage(
  dir: string,
  options: Options,
  handlerModule: string | undefined,
): Promise<MemoryStage> {
  const base = { dir, seed: options.workload.seed, ...(handlerModule ? { handlerModule } : {}) };
  const stage: { -readonly [K in keyof MemoryStage]: MemoryStage[K] } = { errors: [] };
  try {
    stage.wide = await runWide({ ...base, ...options.wide });
    note(`memory: wide object, peak ${stage.wide.run.peakMb.toFixed(0)} MB`);
  } catch (error) {
    stage.errors.push(`wide object: ${(error as Error).message}`);
  }
  try {
    stage.big = await runBig({ ...base, ...options.big });
    note(
      `memory: big object, ${stage.big.full.seconds.toFixed(1)} s, peak ${stage.big.full.peakMb.toFixed(0)} MB`,
    );
  } catch (error) {
    stage.errors.push(`big object: ${(error as Error).message}`);
  }
  return stage;
}

async function main(): Promise<number> {
  const options = parseOptions();
  const started = performance.now();
  const dir = await mkdtemp(join(os.tmpdir(), 'sessionizer-bench-'));
  try {
    const workload = await writeWorkload(dir, options.workload);
    note(
      `workload: ${workload.table.count.toLocaleString('en-US')} visits, ${workload.paths.length} files, ` +
        `${(workload.bytes / 1024 ** 2).toFixed(1)} MiB in ${dir} (${workload.seconds.toFixed(1)} s)`,
    );
    const versus = await runVersus(workload.paths, options.workload, options.rounds);
    const bundle = await bundleStage(dir);
    const pipeline = options.skipPipeline ? undefined : await pipelineStage(workload.paths, versus.reference);
    const growth = options.skipGrowth ? undefined : await growthStage(options);
    const concurrency = options.levels
      ? await runConcurrency(workload.paths, options.levels, options.concurrencyBatch)
      : undefined;
    const memory = options.skipMemory ? undefined : await memoryStage(dir, options, bundle.bundle?.file);
    const results: BenchResults = {
      machine: machine(),
      workload: { ...options.workload, visits: workload.table.count, bytes: workload.bytes },
      rounds: options.rounds,
      versus,
      bundle,
      pipeline,
      growth,
      concurrency,
      memory,
      seconds: (performance.now() - started) / 1000,
    };
    const derived = derive(results);
    printReport(results, derived);
    printSummary(results, derived);
    return 0;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

process.exitCode = await main();
