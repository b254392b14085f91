/**
 * The end-to-end run: every file uploaded to s3rver with the ingest queue paused (so batches are made as the deployed
 * queue makes them from a backlog), then the queue resumed, the handler invoked on its batches until the queue is
 * idle, then a flush. Timed from the resume to the end of the flush. Measures what the handler consumed (cli/usage.ts,
 * the same counting as `sessionizer replay`), the commits and lost races of its shard catch-ups, and checks
 * conservation and the sessions written against the reference driver.
 */
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { type CostBreakdown, costPerMillionVisits } from '../cli/cost.ts';
import { readSummary, type StateSummary } from '../cli/state.ts';
import { createRuntime } from '../lambdas/runtime.ts';
import { type PhaseTimes, phasesSince, timePhases } from './probes.ts';
import type { SessionRow } from './sessions.ts';
import { benchStack, catchUps, readSessions, type UsageCount, upload, usageNow } from './stack.ts';

export interface PipelineOptions {
  /** Messages (objects) per invocation. */
  readonly batchSize: number;
  /** Invocations at once (each its own handler instance). @default 1 */
  readonly concurrency?: number;
  /** Told of each delivered batch (progress). */
  readonly onBatch?: (objects: number, done: number) => void;
}

export interface PipelineRun {
  readonly files: number;
  readonly batchSize: number;
  /** Seconds from the queue's resume to the end of the flush. */
  readonly seconds: number;
  readonly uploadSeconds: number;
  readonly flushSeconds: number;
  /** Queue invocations (the flush not included) and the flush's. */
  readonly queueInvocations: number;
  readonly commits: number;
  /** Commits lost to another invocation (re-read and retried). */
  readonly conflicts: number;
  /** Failed invocations the queue retried, and why. */
  readonly retries: number;
  readonly failures: string[];
  /** The state's totals after the flush (the log's lines, the shards' counts). */
  readonly state: StateSummary;
  readonly usage: UsageCount;
  readonly cost: CostBreakdown;
  /** Handler time by phase (summed over instances). */
  readonly phases: PhaseTimes;
  /** CPU seconds of this process (the handler, the queue) and of the servers' process, from resume to flush end. */
  readonly handlerCpuSeconds: number;
  readonly serversCpuSeconds: number | null;
  /** Sessions read back from sessions/. */
  readonly sessions: SessionRow[];
  readonly conservationErrors: string[];
}

/** Conservation of the state's totals, and the sessions written against them. */
function conservation(state: StateSummary, sessions: readonly SessionRow[]): string[] {
  const errors: string[] = [];
  if (state.lines !== state.visits + state.rejected)
    errors.push(`lines ${state.lines} != valid ${state.visits} + rejected ${state.rejected}`);
  if (state.visits !== state.accepted + state.duplicates + state.late) {
    errors.push(
      `valid ${state.visits} != accepted ${state.accepted} + duplicates ${state.duplicates} + late ${state.late}`,
    );
  }
  if (state.pendingSessions !== 0)
    errors.push(`${state.pendingSessions} sessions still pending after the flush`);
  const visits = sessions.reduce((a, s) => a + s.visitCount, 0);
  if (visits !== state.accepted)
    errors.push(`visits in written sessions ${visits} != accepted ${state.accepted}`);
  if (sessions.length !== state.sessionsClosed)
    errors.push(`sessions written ${sessions.length} != sessions the shards closed ${state.sessionsClosed}`);
  return errors;
}

/** Runs `paths` (in upload order) through a fresh stack; see the module comment. */
export async function runPipeline(paths: readonly string[], options: PipelineOptions): Promise<PipelineRun> {
  const concurrency = options.concurrency ?? 1;
  const { stack, stop, serversCpuSeconds, failures } = await benchStack({
    queue: { batchSize: options.batchSize, maxConcurrency: concurrency },
  });
  try {
    stack.queue.pause();
    let t = performance.now();
    for (const path of paths) await upload(stack, basename(path), await readFile(path));
    const uploadSeconds = (performance.now() - t) / 1000;

    let done = 0;
    const progress = setInterval(() => {
      const now = catchUps(stack).length;
      if (now > done) options.onBatch?.(paths.length, (done = now));
    }, 250);
    const phases = { ...timePhases() };
    const cpu = process.cpuUsage();
    const serversCpu = serversCpuSeconds();
    const started = performance.now();
    stack.queue.resume();
    await stack.idle();
    clearInterval(progress);
    if (stack.deadLetters.length > 0) throw new Error(`pipeline: ${stack.deadLetters[0]!.error.message}`);
    t = performance.now();
    const flush = await stack.invoke({ action: 'flush', id: 'bench' });
    const ended = performance.now();
    const spent = phasesSince(phases);
    const handlerCpu = process.cpuUsage(cpu);
    const serversAfter = serversCpuSeconds();
    if (flush.kind !== 'flush') throw new Error(`flush: unexpected result ${flush.kind}`);

    const state = await readSummary(createRuntime(stack.config, { clients: stack.clients }), stack.config);
    const usage = usageNow(stack, state.lines);
    const all = [...catchUps(stack), flush.summary.catchUp];
    const sessions = await readSessions(stack);
    return {
      files: paths.length,
      batchSize: options.batchSize,
      seconds: (ended - started) / 1000,
      uploadSeconds,
      flushSeconds: (ended - t) / 1000,
      queueInvocations: stack.queue.invocations,
      commits: all.reduce((a, c) => a + c.commits, 0),
      conflicts: all.reduce((a, c) => a + c.conflicts, 0),
      retries: stack.retries,
      failures: failures(),
      state,
      usage,
      cost: costPerMillionVisits(usage),
      phases: spent,
      handlerCpuSeconds: (handlerCpu.user + handlerCpu.system) / 1e6,
      serversCpuSeconds: serversCpu === null || serversAfter === null ? null : serversAfter - serversCpu,
      sessions,
      conservationErrors: conservation(state, sessions),
    };
  } finally {
    await stop();
  }
}
