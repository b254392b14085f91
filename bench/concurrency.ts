/**
 * Concurrent invocations (`--concurrency 1,2,4,8`): the end-to-end run (bench/pipeline.ts) once per level, with the
 * queue handing batches to that many invocations at once, each its own handler instance (own clients and caches),
 * on a fresh state each time. Batches are smaller than the deployed default, so that every level has batches for all
 * its workers. Invocations meet on the log's tail and on the shard heads: their lost races are the conflict retries.
 * Which visits are late depends on the order the log gives the files, so only conservation is checked here.
 */
import { runPipeline } from './pipeline.ts';

export interface ConcurrencyLevel {
  readonly level: number;
  readonly batchSize: number;
  readonly visits: number;
  readonly seconds: number;
  readonly visitsPerS: number;
  readonly invocations: number;
  readonly commits: number;
  /** Commits lost to another invocation (CatchUpSummary.conflicts). */
  readonly conflicts: number;
  /** Conditional writes that failed (lost races on the log, claims and heads). */
  readonly conditionFailures: number;
  readonly writeUnitsPerVisit: number;
  readonly usdPerMillionVisits: number;
  /** Invocations that failed and were retried (their messages came back), and why. */
  readonly retried: number;
  readonly failures: string[];
  readonly errors: string[];
}

/** Parses `1,2,4,8`: positive integers. */
export function parseLevels(text: string): number[] {
  const levels = text.split(',').map((s) => Number(s.trim()));
  if (levels.some((n) => !Number.isSafeInteger(n) || n < 1 || n > 64)) {
    throw new Error(`--concurrency: expected levels such as 1,2,4,8, got ${JSON.stringify(text)}`);
  }
  return levels;
}

export async function runConcurrency(
  paths: readonly string[],
  levels: readonly number[],
  batchSize: number,
): Promise<ConcurrencyLevel[]> {
  const out: ConcurrencyLevel[] = [];
  for (const level of levels) {
    process.stderr.write(`concurrency ${level}: ${paths.length} files in batches of ${batchSize}...\n`);
    const run = await runPipeline(paths, { batchSize, concurrency: level });
    const visits = run.state.lines;
    out.push({
      level,
      batchSize,
      visits,
      seconds: run.seconds,
      visitsPerS: visits / run.seconds,
      invocations: run.usage.invocations,
      commits: run.commits,
      conflicts: run.conflicts,
      conditionFailures: run.usage.conditionFailures,
      writeUnitsPerVisit: run.usage.writeUnits / visits,
      usdPerMillionVisits: run.cost.total,
      retried: run.retries,
      failures: run.failures,
      errors: run.conservationErrors,
    });
    process.stderr.write(
      `concurrency ${level}: ${run.seconds.toFixed(1)} s, ${run.conflicts} conflicts, ${run.usage.conditionFailures} failed conditional writes\n`,
    );
  }
  return out;
}
