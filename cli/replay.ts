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
import type { LocalStack } from '../infra/local/stack.ts';
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
  if (options.maxDurationMs !== undefined) env[ENV.maxSessionDuration] = formatDuration(options.maxDurationMs);
  return env;
}

/** Copies every object under the output prefixes to `out`, keeping keys. Returns how many session lines. */
export async function copyOutputs(stack: LocalStack, out: string): Promise<number> {
  let sessions = 0;
  for (const prefix of [SESSIONS.prefix, LATE_VISITS.prefix, REJECTED.prefix]) {
    for (const o of await stack.runtime.objects.listAll(stack.config.outputBucket, prefix)) {
      const text = await stack.runtime.objects.getText(stack.config.outputBucket, o.key);
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
  try {
    return await withStack({ home, inMemory: true, env: { ...settingsEnv(options) } }, async (stack) => {
      const summary: ReplaySummary = {
        files: 0,
        lines: 0,
        visits: 0,
        duplicates: 0,
        late: 0,
        rejected: 0,
        sessions: 0,
        pending: 0,
        watermark: null,
      };
      for (const [index, file] of options.files.entries()) {
        const body = await readFile(file);
        const before = stack.delivered.length;
        await stack.clients.s3.send(
          new PutObjectCommand({
            Bucket: stack.config.visitsBucket,
            Key: `${stack.config.visitsPrefix}${basename(file)}`,
            Body: body,
          }),
        );
        await stack.idle();
        if (stack.deadLetters.length > 0) {
          throw new Error(`processing ${file} failed: ${stack.deadLetters[0]!.error.message}`);
        }
        summary.files++;
        let last: BatchSummary | undefined;
        for (const result of stack.delivered.slice(before)) {
          if (result.kind !== 'objects') continue;
          for (const b of result.batches) {
            last = b;
            if (b.outcome === 'duplicate') continue;
            summary.lines += b.lines;
            summary.visits += b.visits;
            summary.duplicates += b.duplicates;
            summary.late += b.late;
            summary.rejected += b.rejected;
          }
        }
        options.onFile?.(index, last);
      }
      if (options.flush) await stack.invoke({ action: 'flush', id: 'replay' });
      await mkdir(options.out, { recursive: true });
      summary.sessions = await copyOutputs(stack, options.out);
      summary.pending = (await countPending(stack)).sessions;
      const cp = await stack.runtime.store.getCheckpoint();
      summary.watermark = Number.isFinite(cp.watermark) ? new Date(cp.watermark).toISOString() : null;
      return summary;
    });
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}
