/**
 * `sessionizer replay`: a fresh local stack in a temporary home; the files uploaded in the given order as
 * `visits/<basename>`, their S3 events handed to the handler through the ingest queue in batches (one invocation
 * at a time, or several at once with `concurrency`); then a flush (unless disabled); then the output prefixes
 * copied to a folder keeping their keys. Returns the summary printed as the last line: the counters, the order
 * the object log gave the files (the processing order), and what the run consumed and would cost on AWS.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { randomFaults } from '../infra/local/faults.ts';
import type { LocalStack, LocalStackOptions } from '../infra/local/stack.ts';
import { DEFAULT_SETTINGS } from '../infra/settings.ts';
import { ENV } from '../lambdas/config.ts';
import { formatDuration } from '../lambdas/core/duration.ts';
import { LATE_VISITS, REJECTED, SESSIONS } from '../lambdas/core/schema.ts';
import type { IngestResult } from '../lambdas/pipeline/index.ts';
import { withStack } from './local.ts';
import { readSummary } from './state.ts';
import { stackUsage } from './usage.ts';

export interface ReplayOptions {
  readonly files: readonly string[];
  readonly out: string;
  readonly gapMs?: number;
  readonly latenessMs?: number;
  readonly maxDurationMs?: number;
  readonly flush: boolean;
  /** Called for each object ingested (progress). */
  readonly onObject?: (result: IngestResult) => void;
  /** Probability that any AWS call of the handler fails (half before the request, half after the response). */
  readonly chaos?: number;
  /** Seed of the faults. */
  readonly seed?: number;
  /** Invocations taking batches from the queue at once. @default 1 */
  readonly concurrency?: number;
  /** Messages (objects) per invocation. @default the deployment's queue batch size (100) */
  readonly batchSize?: number;
  /** Shards of the state. @default the deployment default (16) */
  readonly shards?: number;
  /** Told how many faults were injected and invocations retried, at the end. */
  readonly onFaults?: (stats: { injected: number; calls: number; retried: number }) => void;
}

export interface ReplaySummary {
  files: number;
  lines: number;
  visits: number;
  accepted: number;
  duplicates: number;
  late: number;
  rejected: number;
  sessions: number;
  pending: number;
  watermark: string | null;
  /** The files in the order the object log recorded them: the order their batches were processed in. */
  order: string[];
  invocations: number;
  ddb_write_units_per_visit: number;
  ddb_read_units_per_visit: number;
  s3_requests: { get: number; put: number; list: number };
  usd_per_million_visits: number;
}

export function settingsEnv(options: {
  gapMs?: number;
  latenessMs?: number;
  maxDurationMs?: number;
  shards?: number;
}) {
  const env: Record<string, string> = {};
  if (options.gapMs !== undefined) env[ENV.gap] = formatDuration(options.gapMs);
  if (options.latenessMs !== undefined) env[ENV.allowedLateness] = formatDuration(options.latenessMs);
  if (options.maxDurationMs !== undefined)
    env[ENV.maxSessionDuration] = formatDuration(options.maxDurationMs);
  if (options.shards !== undefined) env[ENV.shards] = String(options.shards);
  return env;
}

/** Copies every object under the output prefixes to `out`, keeping keys. Returns how many session lines. */
export async function copyOutputs(stack: LocalStack, out: string): Promise<number> {
  let sessions = 0;
  for (const prefix of [SESSIONS.prefix, LATE_VISITS.prefix, REJECTED.prefix]) {
    for (const o of await stack.inspect.objects.listAll(stack.config.outputBucket, prefix)) {
      const text = await stack.inspect.objects.getText(stack.config.outputBucket, o.key);
      const target = join(out, o.key);
      await mkdir(dirname(target), { recursive: true });
      await writeFile(target, text);
      if (prefix === SESSIONS.prefix) sessions += text.split('\n').filter((l) => l !== '').length;
    }
  }
  return sessions;
}

/** The objects of the log, in log order, as the basenames of their keys. */
export async function logOrder(stack: LocalStack): Promise<string[]> {
  const tail = (await stack.inspect.store.lastEntry())?.seq ?? 0;
  const entries = tail > 0 ? await stack.inspect.store.readEntries(1, tail) : [];
  return entries.filter((e) => e.kind === 'object').map((e) => basename(e.source));
}

export async function replay(options: ReplayOptions): Promise<ReplaySummary> {
  const home = await mkdtemp(join(tmpdir(), 'sessionizer-replay-'));
  const chaos = options.chaos ?? 0;
  const stackOptions: LocalStackOptions = {
    home,
    inMemory: true,
    env: settingsEnv(options),
    queue: {
      batchSize: options.batchSize ?? DEFAULT_SETTINGS.queueBatchSize,
      maxConcurrency: options.concurrency ?? 1,
    },
    ...(chaos > 0
      ? {
          faults: { mode: 'transient' as const, rule: randomFaults(chaos, options.seed ?? 1) },
          retryAttempts: 10_000,
        }
      : {}),
  };
  try {
    return await withStack(stackOptions, async (stack) => {
      const bucket = stack.config.visitsBucket;
      // every upload first, then the queue hands them out: batches are made as the deployed queue makes them
      stack.queue.pause();
      for (const file of options.files) {
        const key = `${stack.config.visitsPrefix}${basename(file)}`;
        await stack.clients.s3.send(
          new PutObjectCommand({ Bucket: bucket, Key: key, Body: await readFile(file) }),
        );
      }
      const seen = new Set<string>();
      const tick = () => {
        for (const r of stack.delivered) {
          if (r.kind !== 'queue') continue;
          for (const o of r.objects) {
            const id = `${o.object}#${o.entry?.seq}`;
            if (!seen.has(id)) {
              seen.add(id);
              options.onObject?.(o);
            }
          }
        }
      };
      const progress = setInterval(tick, 100);
      stack.queue.resume();
      await stack.idle();
      clearInterval(progress);
      tick();
      if (stack.deadLetters.length > 0) {
        throw new Error(`processing failed: ${stack.deadLetters[0]!.error.message}`);
      }
      if (options.flush) await stack.invokeWithRetries({ action: 'flush', id: 'replay' });
      if (stack.faults) {
        const all = stack.instances().map((i) => i.faults!);
        options.onFaults?.({
          injected: all.reduce((a, f) => a + f.injected, 0),
          calls: all.reduce((a, f) => a + f.calls, 0),
          retried: stack.retries,
        });
      }
      await mkdir(options.out, { recursive: true });
      const state = await readSummary(stack.inspect, stack.config);
      const usage = stackUsage(stack, state.lines);
      const perVisit = (n: number) => (state.lines > 0 ? Number((n / state.lines).toFixed(5)) : 0);
      return {
        files: options.files.length,
        lines: state.lines,
        visits: state.visits,
        accepted: state.accepted,
        duplicates: state.duplicates,
        late: state.late,
        rejected: state.rejected,
        sessions: await copyOutputs(stack, options.out),
        pending: state.pendingSessions,
        watermark: Number.isFinite(state.watermark) ? new Date(state.watermark).toISOString() : null,
        order: await logOrder(stack),
        invocations: usage.invocations,
        ddb_write_units_per_visit: perVisit(usage.writeUnits),
        ddb_read_units_per_visit: perVisit(usage.readUnits),
        s3_requests: { get: usage.s3Get, put: usage.s3Put, list: usage.s3List },
        usd_per_million_visits: Number(usage.cost.total.toFixed(4)),
      };
    });
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}
