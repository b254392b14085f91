/**
 * `sessionizer replay`: a fresh local stack in a temporary home; each file uploaded as `visits/<basename>` in the
 * given order, its event handled to completion before the next; then a flush (unless disabled); then the output
 * prefixes copied to a folder keeping their keys. Returns the summary printed as the last line.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { ENV } from '../lambdas/config.ts';
import { formatDuration } from '../lambdas/core/duration.ts';
import { LATE_VISITS, REJECTED, SESSIONS } from '../lambdas/core/schema.ts';
import type { BatchSummary } from '../lambdas/pipeline.ts';
import { type FaultController, randomFaults } from '../infra/local/faults.ts';
import { type LocalStack, type LocalStackOptions, s3Notification } from '../infra/local/stack.ts';
import { withStack } from './local.ts';
import { countPending } from './state.ts';

export interface ReplayOptions {
  readonly files: readonly string[];
  readonly out: string;
  readonly gapMs?: number;
  readonly latenessMs?: number;
  readonly maxDurationMs?: number;
  readonly flush: boolean;
  /** Called after each file (progress). */
  readonly onFile?: (index: number, summary: BatchSummary | undefined) => void;
  /** Probability that any AWS call of the handler fails (half before the request, half after the response). */
  readonly chaos?: number;
  /** Seed of the faults. */
  readonly seed?: number;
  /** Files processed at once by independent handler instances. @default 1 */
  readonly concurrency?: number;
  /** Told how many faults were injected and invocations retried, at the end. */
  readonly onFaults?: (stats: { injected: number; calls: number; retried: number }) => void;
}

export interface ReplaySummary {
  files: number;
  lines: number;
  visits: number;
  duplicates: number;
  late: number;
  rejected: number;
  sessions: number;
  pending: number;
  watermark: string | null;
}

export function settingsEnv(options: { gapMs?: number; latenessMs?: number; maxDurationMs?: number }) {
  const env: Record<string, string> = {};
  if (options.gapMs !== undefined) env[ENV.gap] = formatDuration(options.gapMs);
  if (options.latenessMs !== undefined) env[ENV.allowedLateness] = formatDuration(options.latenessMs);
  if (options.maxDurationMs !== undefined)
    env[ENV.maxSessionDuration] = formatDuration(options.maxDurationMs);
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

export async function replay(options: ReplayOptions): Promise<ReplaySummary> {
  const home = await mkdtemp(join(tmpdir(), 'sessionizer-replay-'));
  const chaos = options.chaos ?? 0;
  const concurrency = options.concurrency ?? 1;
  const env: Record<string, string> = { ...settingsEnv(options) };
  // under faults, each failed invocation is retried once its leases ran out: the clock moves by the lease, so keep
  // it short (sequential runs have no other owner to wait for) and the processing date stays the same
  if (chaos > 0 || concurrency > 1) env[ENV.lease] = '1s';
  const stackOptions: LocalStackOptions = {
    home,
    inMemory: true,
    env,
    notifications: concurrency === 1,
    ...(chaos > 0
      ? {
          faults: { mode: 'transient' as const, rule: randomFaults(chaos, options.seed ?? 1) },
          retryAttempts: 10_000,
        }
      : {}),
  };
  const instances: { faults: FaultController | undefined }[] = [];
  try {
    return await withStack(stackOptions, async (stack) => {
      const bucket = stack.config.visitsBucket;
      const put = async (file: string) => {
        const key = `${stack.config.visitsPrefix}${basename(file)}`;
        const out = await stack.clients.s3.send(
          new PutObjectCommand({ Bucket: bucket, Key: key, Body: await readFile(file) }),
        );
        return { key, etag: out.ETag?.replace(/"/g, '') };
      };
      if (concurrency === 1) {
        // each upload's S3 event is handled (with retries) before the next upload
        for (const [index, file] of options.files.entries()) {
          const before = stack.delivered.length;
          await put(file);
          await stack.idle();
          if (stack.deadLetters.length > 0) {
            throw new Error(`processing ${file} failed: ${stack.deadLetters[0]!.error.message}`);
          }
          const last = stack.delivered.slice(before).flatMap((r) => (r.kind === 'objects' ? r.batches : []));
          options.onFile?.(index, last[last.length - 1]);
        }
      } else {
        // upload everything, then N independent handler instances take the events, like concurrent Lambdas
        const events: unknown[] = [];
        for (const file of options.files) {
          const { key, etag } = await put(file);
          events.push(s3Notification(bucket, key, etag));
        }
        let next = 0;
        let done = 0;
        const worker = async () => {
          const instance = stack.newInstance();
          instances.push(instance);
          while (next < events.length) {
            const i = next++;
            const result = await instance.invokeWithRetries(events[i]);
            const batches = result.kind === 'objects' ? result.batches : [];
            options.onFile?.(done++, batches[batches.length - 1]);
          }
        };
        await Promise.all(Array.from({ length: Math.min(concurrency, events.length) }, worker));
      }
      if (options.flush) await stack.invokeWithRetries({ action: 'flush', id: 'replay' });
      if (stack.faults) {
        const all = [stack, ...instances].map((i) => i.faults!);
        options.onFaults?.({
          injected: all.reduce((a, f) => a + f.injected, 0),
          calls: all.reduce((a, f) => a + f.calls, 0),
          retried: stack.retries,
        });
      }
      await mkdir(options.out, { recursive: true });
      // the totals come from the object markers: one per processed object version, whatever retries happened
      const summary: ReplaySummary = {
        files: options.files.length,
        lines: 0,
        visits: 0,
        duplicates: 0,
        late: 0,
        rejected: 0,
        sessions: 0,
        pending: 0,
        watermark: null,
      };
      for (const m of await stack.inspect.store.listMarkers()) {
        if (m.status !== 'done' || !m.counts) continue;
        summary.lines += m.counts.lines;
        summary.visits += m.counts.visits;
        summary.duplicates += m.counts.duplicates;
        summary.late += m.counts.late;
        summary.rejected += m.counts.rejected;
      }
      summary.sessions = await copyOutputs(stack, options.out);
      summary.pending = (await countPending(stack)).sessions;
      const cp = await stack.inspect.store.getCheckpoint();
      summary.watermark = Number.isFinite(cp.watermark) ? new Date(cp.watermark).toISOString() : null;
      return summary;
    });
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}
