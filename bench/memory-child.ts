/**
 * Child process of the memory benchmark (bench/memory.ts): the Lambda handler on its own, talking to the local
 * servers through the SESSIONIZER_* environment variables (endpoints, buckets, table). It handles one S3 notification for the big
 * object, then a flush, and prints its peak resident memory (`process.resourceUsage().maxRSS`, KB) as the last line:
 *
 *   BENCH_MEMORY_RESULT {"baselineMaxRssKb":..,"batchMaxRssKb":..,"flushMaxRssKb":..,...}
 *
 * BENCH_HANDLER_MODULE: the module to import the handler from (the esbuild bundle Lambda runs, when given; this
 * file is then compiled to JavaScript and run on plain node); otherwise lambdas/sessionizer.ts from source (tsx).
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
 * execve on Linux: a child starts with its parent's RSS at fork time as its maxRSS.
 */
function vmHwmKb(): number | null {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

async function main(): Promise<void> {
  const bucket = process.env.BENCH_MEMORY_BUCKET;
  const key = process.env.BENCH_MEMORY_KEY;
  const etag = process.env.BENCH_MEMORY_ETAG;
  if (!bucket || !key) throw new Error('BENCH_MEMORY_BUCKET and BENCH_MEMORY_KEY are required');
  const baselineMaxRssKb = process.resourceUsage().maxRSS;
  const baselineHwmKb = vmHwmKb();
  // sampled peaks of what the memory is made of (V8 heap, Buffers), every 50 ms
  const peak = { rss: 0, heapUsed: 0, heapTotal: 0, external: 0, arrayBuffers: 0 };
  const sample = (): void => {
    const m = process.memoryUsage();
    for (const k of Object.keys(peak) as (keyof typeof peak)[]) peak[k] = Math.max(peak[k], m[k]);
  };
  const sampler = setInterval(sample, 50);
  sampler.unref();
  const modulePath = process.env.BENCH_HANDLER_MODULE;
  const mod = (await import(
    modulePath ? pathToFileURL(modulePath).href : '../lambdas/sessionizer.ts'
  )) as HandlerModule;
  const loadedMaxRssKb = process.resourceUsage().maxRSS;
  // the key as an S3 notification carries it (URL-encoded, '+' for a space)
  const encoded = key
    .split('/')
    .map((part) => encodeURIComponent(part).replace(/%20/g, '+'))
    .join('/');
  const event = {
    Records: [
      {
        eventSource: 'aws:s3',
        eventName: 'ObjectCreated:Put',
        s3: { bucket: { name: bucket }, object: { key: encoded, ...(etag ? { eTag: etag } : {}) } },
      },
    ],
  };
  let t = performance.now();
  const batch = await mod.handler(event);
  const batchSeconds = (performance.now() - t) / 1000;
  const batchMaxRssKb = process.resourceUsage().maxRSS;
  const batchHwmKb = vmHwmKb();
  t = performance.now();
  const flush = await mod.handler({ action: 'flush', id: 'bench-memory' });
  const flushSeconds = (performance.now() - t) / 1000;
  const flushMaxRssKb = process.resourceUsage().maxRSS;
  const flushHwmKb = vmHwmKb();
  sample();
  clearInterval(sampler);
  const mb = (bytes: number): number => Math.round((bytes / 1_048_576) * 10) / 10;
  process.stdout.write(
    `${RESULT_PREFIX}${JSON.stringify({
      handlerModule: modulePath ?? 'lambdas/sessionizer.ts',
      baselineMaxRssKb,
      loadedMaxRssKb,
      batchMaxRssKb,
      flushMaxRssKb,
      baselineHwmKb,
      batchHwmKb,
      flushHwmKb,
      sampledPeakMb: {
        rss: mb(peak.rss),
        heapUsed: mb(peak.heapUsed),
        heapTotal: mb(peak.heapTotal),
        external: mb(peak.external),
        arrayBuffers: mb(peak.arrayBuffers),
      },
      batchSeconds,
      flushSeconds,
      batch,
      flush,
    })}\n`,
  );
}

await main();
