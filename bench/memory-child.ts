/**
 * Child process of the memory runs (bench/memory.ts): the Lambda handler on its own, talking to the local servers
 * through the SESSIONIZER_* environment variables (endpoints, buckets, table). It handles one SQS event (given in
 * BENCH_MEMORY_EVENT, the event source mapping's shape: Records of messages whose body is an S3 notification), then a
 * flush, and prints its peak resident memory as the last line:
 *
 *   BENCH_MEMORY_RESULT {"batchHwmKb":..,"batchMaxRssKb":..,"batchSeconds":..,...}
 *
 * BENCH_HANDLER_MODULE: the module to import the handler from (the esbuild bundle Lambda runs, when given; this file
 * is then compiled to JavaScript and run on plain node); otherwise lambdas/sessionizer.ts from source (tsx).
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

/** Prefix of the result line (bench/memory.ts looks for it; not imported from there, to keep this process lean). */
const RESULT_PREFIX = 'BENCH_MEMORY_RESULT ';

interface HandlerModule {
  handler(event: unknown): Promise<unknown>;
}

/**
 * The process's own peak RSS in KB (Linux VmHWM, reset by execve), or null elsewhere. `maxRSS` is not reset by
 * execve on Linux: a child may start with its parent's RSS at fork time as its maxRSS.
 */
function vmHwmKb(): number | null {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** Peaks of what the memory is made of (V8 heap, Buffers), sampled every 50 ms. */
function sampler() {
  const peak = { rss: 0, heapUsed: 0, heapTotal: 0, external: 0, arrayBuffers: 0 };
  const sample = (): void => {
    const m = process.memoryUsage();
    for (const k of Object.keys(peak) as (keyof typeof peak)[]) peak[k] = Math.max(peak[k], m[k]);
  };
  const timer = setInterval(sample, 50);
  timer.unref();
  const mb = (bytes: number): number => Math.round((bytes / 1_048_576) * 10) / 10;
  return {
    stop(): Record<string, number> {
      sample();
      clearInterval(timer);
      return Object.fromEntries(Object.entries(peak).map(([k, v]) => [k, mb(v)]));
    },
  };
}

async function main(): Promise<void> {
  const event = JSON.parse(process.env.BENCH_MEMORY_EVENT ?? 'null') as unknown;
  if (event === null) throw new Error('BENCH_MEMORY_EVENT is required');
  const peaks = sampler();
  const modulePath = process.env.BENCH_HANDLER_MODULE;
  const mod = (await import(
    modulePath ? pathToFileURL(modulePath).href : '../lambdas/sessionizer.ts'
  )) as HandlerModule;
  const loadedHwmKb = vmHwmKb();
  let t = performance.now();
  const batch = await mod.handler(event);
  const batchSeconds = (performance.now() - t) / 1000;
  const batchMaxRssKb = process.resourceUsage().maxRSS;
  const batchHwmKb = vmHwmKb();
  t = performance.now();
  const flush = await mod.handler({ action: 'flush', id: 'bench-memory' });
  const flushSeconds = (performance.now() - t) / 1000;
  process.stdout.write(
    `${RESULT_PREFIX}${JSON.stringify({
      handlerModule: modulePath ?? 'lambdas/sessionizer.ts',
      loadedHwmKb,
      batchMaxRssKb,
      batchHwmKb,
      flushHwmKb: vmHwmKb(),
      sampledPeakMb: peaks.stop(),
      batchSeconds,
      flushSeconds,
      batch,
      flush,
    })}\n`,
  );
}

await main();
