/**
 * Memory runs: the Lambda handler in a child process of its own (bench/memory-child.ts) on one large object, its
 * peak resident memory and time, while the servers run in another process (bench/servers.ts). The child gets the SQS
 * event the event source mapping would deliver for the object.
 *
 *  - wide: ~1 GB of ~2 KB lines (~500,000 visits): reading an object must not hold it (target: peak <= 256 MB);
 *  - big: ~1 GB of ~100-byte lines (~10 million visits) in one invocation (Lambda's default memory here is 1024 MB),
 *    then the same event again after a crash: a first child is killed once half the shards have committed, a fresh
 *    one handles the same event, and finds those shards done (the rerun against the full run's time).
 *
 * With the Lambda bundle, the child runs on plain node (memory-child.ts compiled to JavaScript by esbuild, no
 * bundling), as Lambda runs the bundle: under tsx, loading the bundle alone costs ~100 MB more. Without it, the child
 * runs lambdas/sessionizer.ts from source under tsx, and its RSS includes tsx.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { localEnv } from '../bin/run.js';
import { readSummary } from '../cli/state.ts';
import { s3Notification } from '../infra/local/s3-events.ts';
import type { LocalStack } from '../infra/local/stack.ts';
import { createRuntime } from '../lambdas/runtime.ts';
import { type BigFile, type BigFileOptions, writeBigFile } from './memory-files.ts';
import { type Comparison, compareSessions } from './sessions.ts';
import { benchStack, readSessions, upload } from './stack.ts';

const CHILD = fileURLToPath(new URL('./memory-child.ts', import.meta.url));
const RESULT_PREFIX = 'BENCH_MEMORY_RESULT ';

/** What one child reported. Peaks in MB: VmHWM (its own peak, Linux) or else maxRSS. */
export interface ChildRun {
  readonly seconds: number;
  readonly flushSeconds: number;
  readonly loadedMb: number | null;
  readonly peakMb: number;
  readonly peakAfterFlushMb: number | null;
  readonly sampledPeakMb: Record<string, number>;
  readonly batchItemFailures: number;
}

interface ChildResult {
  loadedHwmKb: number | null;
  batchMaxRssKb: number;
  batchHwmKb: number | null;
  flushHwmKb: number | null;
  sampledPeakMb: Record<string, number>;
  batchSeconds: number;
  flushSeconds: number;
  batch: { batchItemFailures?: unknown[] };
}

export interface ObjectInfo {
  readonly bytes: number;
  readonly visits: number;
  readonly users: number;
}

export interface WideRun extends ObjectInfo {
  readonly run: ChildRun;
  readonly childRuntime: string;
  readonly sessions: Comparison;
  readonly errors: string[];
}

export interface BigRun extends ObjectInfo {
  readonly full: ChildRun;
  readonly childRuntime: string;
  /** The crashed attempt: seconds until it was killed, and the shards committed then. */
  readonly killedAfterSeconds: number | null;
  readonly rerun: ChildRun;
  /** Shards the rerun found at the object's entry already (of `shards`). */
  readonly shardsFoundCommitted: number;
  readonly shards: number;
  readonly errors: string[];
}

export interface MemoryOptions {
  readonly dir: string;
  readonly seed: number;
  /** Handler module for the child (the bundle); lambdas/sessionizer.ts from source when undefined. */
  readonly handlerModule?: string;
}

const mb = (kb: number | null): number | null => (kb === null ? null : kb / 1024);

/** The SQS event the event source mapping delivers for one object: one message, an S3 notification body. */
function sqsEvent(bucket: string, key: string, etag: string | undefined): unknown {
  return {
    Records: [
      {
        messageId: randomUUID(),
        receiptHandle: 'bench',
        body: JSON.stringify(s3Notification(bucket, key, etag)),
        attributes: { ApproximateReceiveCount: '1' },
        messageAttributes: {},
        md5OfBody: '',
        eventSource: 'aws:sqs',
        eventSourceARN: 'arn:aws:sqs:us-east-1:000000000000:sessionizer-ingest',
        awsRegion: 'us-east-1',
      },
    ],
  };
}

type Watch = (child: ChildProcess) => void;

/** Runs the child with an environment; resolves with its result, or null when `watch` killed it first. */
interface ChildRunner {
  /** How the child runs: the bundle on plain node, or the source under tsx. */
  readonly runtime: string;
  run(env: Record<string, string>, watch?: Watch): Promise<ChildRun | null>;
}

/** The child: memory-child.ts compiled to JavaScript for plain node with the bundle, or the source under tsx. */
async function childRunner(options: MemoryOptions): Promise<ChildRunner> {
  if (!options.handlerModule) {
    return {
      runtime: 'node + tsx + source',
      run: (env, watch) => runChild([CHILD], localEnv({ ...process.env, ...env }), watch),
    };
  }
  const script = join(options.dir, 'memory-child.mjs');
  await build({
    entryPoints: [CHILD],
    outfile: script,
    bundle: false,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    logLevel: 'warning',
  });
  const module = { BENCH_HANDLER_MODULE: options.handlerModule };
  // plain node, as Lambda runs the bundle: without tsx, with only the flag s3rver's listings need
  const plain = { ...localEnv(), NODE_OPTIONS: '--openssl-legacy-provider' };
  return {
    runtime: 'node + bundle',
    run: (env, watch) => runChild([script], { ...plain, ...env, ...module }, watch),
  };
}

const runners = new Map<string, Promise<ChildRunner>>();

/** childRunner, built once per folder and handler module: the wide and the big runs share it. */
function sharedRunner(options: MemoryOptions): Promise<ChildRunner> {
  const key = `${options.dir}\0${options.handlerModule ?? ''}`;
  let runner = runners.get(key);
  if (runner === undefined) {
    runner = childRunner(options);
    runners.set(key, runner);
  }
  return runner;
}

async function runChild(args: string[], env: NodeJS.ProcessEnv, watch?: Watch): Promise<ChildRun | null> {
  const child = spawn(process.execPath, args, {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let result: ChildResult | undefined;
  const tail: string[] = [];
  const keep = (line: string): void => {
    tail.push(line);
    if (tail.length > 20) tail.shift();
  };
  createInterface({ input: child.stdout }).on('line', (line) => {
    if (line.startsWith(RESULT_PREFIX)) result = JSON.parse(line.slice(RESULT_PREFIX.length)) as ChildResult;
    else keep(line);
  });
  createInterface({ input: child.stderr }).on('line', keep);
  watch?.(child);
  const [code, signal] = (await once(child, 'close')) as [number | null, string | null];
  if (signal === 'SIGKILL' && watch) return null;
  if (code !== 0 || result === undefined)
    throw new Error(`memory child failed (exit ${code}):\n${tail.join('\n')}`);
  return {
    seconds: result.batchSeconds,
    flushSeconds: result.flushSeconds,
    loadedMb: mb(result.loadedHwmKb),
    peakMb: mb(result.batchHwmKb) ?? result.batchMaxRssKb / 1024,
    peakAfterFlushMb: mb(result.flushHwmKb),
    sampledPeakMb: result.sampledPeakMb,
    batchItemFailures: result.batch.batchItemFailures?.length ?? 0,
  };
}

/** Writes and uploads an object (no notification: the child gets the event); the file is removed after. */
async function prepare(stack: LocalStack, path: string, options: BigFileOptions, label: string) {
  const file = await writeBigFile(path, {
    ...options,
    onProgress: (f) => process.stderr.write(`memory: writing the ${label} object, ${Math.round(f * 100)}%\n`),
  });
  const size = (await stat(path)).size;
  const { key, etag } = await upload(stack, `${label}-visits.jsonl`, createReadStream(path), {
    contentLength: size,
    notify: false,
  });
  await rm(path, { force: true }); // s3rver has its own copy
  const info: ObjectInfo = { bytes: size, visits: file.visits, users: file.users };
  return { file, info, event: sqsEvent(stack.config.visitsBucket, key, etag) };
}

/** Conservation of the state after one object and a flush, and its sessions against the expected count. */
async function stateErrors(stack: LocalStack, file: BigFile): Promise<string[]> {
  const state = await readSummary(createRuntime(stack.config, { clients: stack.clients }), stack.config);
  const errors: string[] = [];
  if (state.lines !== file.visits) errors.push(`lines ${state.lines} != visits written ${file.visits}`);
  if (state.visits !== state.accepted + state.duplicates + state.late)
    errors.push(`valid ${state.visits} != accepted + duplicates + late`);
  if (state.pendingSessions !== 0) errors.push(`${state.pendingSessions} sessions pending after the flush`);
  if (state.sessionsClosed !== file.expectedSessions)
    errors.push(`sessions closed ${state.sessionsClosed} != expected ${file.expectedSessions}`);
  return errors;
}

/** The wide object: peak RSS of one invocation over ~1 GB of ~2 KB lines, then a flush; sessions compared. */
export async function runWide(
  options: MemoryOptions & { visits: number; users: number; bytes: number },
): Promise<WideRun> {
  const { stack, stop } = await benchStack();
  try {
    const { file, info, event } = await prepare(
      stack,
      join(options.dir, 'wide-visits.jsonl'),
      { ...options, keepRows: true },
      'wide',
    );
    const child = await sharedRunner(options);
    process.stderr.write('memory: the handler is processing the wide object in a child process...\n');
    const run = (await child.run({ ...stack.env, BENCH_MEMORY_EVENT: JSON.stringify(event) }))!;
    const errors = await stateErrors(stack, file);
    const sessions = compareSessions(
      { sessions: file.expectedRows!, late: 0 },
      { sessions: await readSessions(stack), late: 0 },
    );
    if (!sessions.equal)
      errors.push(
        `written sessions differ from the expected ones (${sessions.sessionsB} vs ${sessions.sessionsA})`,
      );
    if (run.batchItemFailures > 0) errors.push(`${run.batchItemFailures} message(s) failed`);
    return { ...info, run, childRuntime: child.runtime, sessions, errors };
  } finally {
    await stop();
  }
}

/** Reads `stack`'s shard heads: how many there are, and how many have applied entry 1 (the object). */
function shardProgress(stack: LocalStack): () => Promise<{ committed: number; heads: number }> {
  const store = createRuntime(stack.config, { clients: stack.clients }).store;
  const shards = Array.from({ length: stack.config.shards }, (_, i) => i);
  return async () => {
    const heads = await store.getHeads(shards);
    return { committed: heads.filter((h) => h.applied >= 1).length, heads: heads.length };
  };
}

/** Kills `child` once half the shards of `stack`'s state have applied entry 1 (the object). */
function killAtHalf(stack: LocalStack, started: number, out: { at: number | null }) {
  const progress = shardProgress(stack);
  return (child: ChildProcess): void => {
    let busy = false;
    const timer = setInterval(async () => {
      if (busy) return;
      busy = true;
      const { committed } = await progress().catch(() => ({ committed: 0 }));
      busy = false;
      if (committed * 2 >= stack.config.shards && child.exitCode === null) {
        out.at = (performance.now() - started) / 1000;
        child.kill('SIGKILL');
      }
    }, 100);
    child.once('close', () => clearInterval(timer));
  };
}

/** The big object: one invocation, then a crash part-way through its catch-up and a rerun of the same event. */
export async function runBig(
  options: MemoryOptions & { visits: number; users: number; bytes: number },
): Promise<BigRun> {
  const bench = await benchStack();
  try {
    const { stack } = bench;
    const { file, info, event } = await prepare(stack, join(options.dir, 'big-visits.jsonl'), options, 'big');
    const child = await sharedRunner(options);
    const env = { BENCH_MEMORY_EVENT: JSON.stringify(event) };
    process.stderr.write('memory: the handler is processing the big object in a child process...\n');
    const full = (await child.run({ ...stack.env, ...env }))!;
    const errors = (await stateErrors(stack, file)).map((e) => `full run: ${e}`);

    // the same object and event on a fresh state: killed part-way, then handled again by a fresh child
    const crash = await bench.withTable('sessionizer-state-crash');
    process.stderr.write('memory: the big object again, killed once half the shards have committed...\n');
    const killed = { at: null as number | null };
    const first = await child.run({ ...crash.env, ...env }, killAtHalf(crash, performance.now(), killed));
    if (first !== null) errors.push('crash run: the child finished before half the shards had committed');
    const found = await shardProgress(crash)();
    process.stderr.write('memory: the same event in a fresh child...\n');
    const rerun = (await child.run({ ...crash.env, ...env }))!;
    errors.push(...(await stateErrors(crash, file)).map((e) => `rerun: ${e}`));
    return {
      ...info,
      full,
      childRuntime: child.runtime,
      killedAfterSeconds: killed.at,
      rerun,
      shardsFoundCommitted: found.committed,
      shards: found.heads,
      errors,
    };
  } finally {
    await bench.stop();
  }
}
