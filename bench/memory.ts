/**
 * Memory benchmark: the handler's peak resident memory processing one ~1 GB JSON Lines object.
 *
 * A 1 GB object of ordinary 80-byte lines is 12 million visits, far too many for dynalite, so the object has wide
 * records instead: each line is a visit plus an ignored `payload` field of text (~2 KB a line), about 500,000 visits
 * of ~5,000 users in time order (bench/workload.ts sessions, no late visits, no duplicates). The file is written to
 * disk as a stream, uploaded to the local S3 (s3rver keeps it on disk), and handled by the Lambda handler in a child
 * process (bench/memory-child.ts) while the servers run in another process (bench/servers.ts).
 *
 * With the Lambda bundle, the child runs on plain node (memory-child.ts compiled to JavaScript by esbuild, no
 * bundling), as Lambda runs the bundle: under tsx, loading the bundle alone costs ~100 MB more (tsx transforms it).
 * Without it, the child runs lambdas/sessionizer.ts from source under tsx, and its RSS includes tsx.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import type { MarkerCounts } from '../lambdas/adapters/dynamo.ts';
import { DEFAULT_SESSION_CONFIG } from '../lambdas/core/types.ts';
import { progress } from '../cli/progress.ts';
import { type Comparison, compareSessions, type SessionRow } from './duckdb.ts';
import { benchStack, readSessions, upload } from './pipeline.ts';
import { generateVisits, mulberry32, userIdOf, type VisitTable } from './workload.ts';

const CHILD = fileURLToPath(new URL('./memory-child.ts', import.meta.url));
const RESULT_PREFIX = 'BENCH_MEMORY_RESULT ';

export interface WideFileOptions {
  readonly visits: number;
  readonly users: number;
  readonly seed: number;
  /** Target size of the object in bytes. */
  readonly bytes: number;
}

export interface WideFile {
  readonly path: string;
  readonly bytes: number;
  readonly visits: number;
  readonly users: number;
  /** The visits written (to compute the expected sessions). */
  readonly table: VisitTable;
}

/**
 * The sessions one batch of these visits followed by a flush must give (DESIGN section 2: the batch sessionization
 * of the distinct visits; one batch has no late visit): per user, sorted by time, cut where a gap exceeds 40 min.
 */
export function expectedSessions(table: VisitTable, gapMs = DEFAULT_SESSION_CONFIG.gapMs): SessionRow[] {
  const byUser = new Map<number, { t: number; page: number }[]>();
  for (let i = 0; i < table.count; i++) {
    const u = table.user[i]!;
    let list = byUser.get(u);
    if (list === undefined) byUser.set(u, (list = []));
    list.push({ t: table.time[i]!, page: table.page[i]! });
  }
  const out: SessionRow[] = [];
  for (const [u, list] of byUser) {
    const userId = String(userIdOf(u));
    const pageName = (n: number) => `page_${n}.html`;
    list.sort(
      (a, b) =>
        a.t - b.t || (pageName(a.page) < pageName(b.page) ? -1 : pageName(a.page) > pageName(b.page) ? 1 : 0),
    );
    let start = -1;
    let prev: { t: number; page: number } | undefined;
    let count = 0;
    for (let i = 0; i <= list.length; i++) {
      const v = list[i];
      if (v !== undefined && prev !== undefined && v.t === prev.t && v.page === prev.page) continue; // duplicate
      if (prev !== undefined && (v === undefined || v.t - prev.t > gapMs)) {
        out.push({ userId, start: list[start]!.t, end: prev.t, visitCount: count });
        count = 0;
      }
      if (v === undefined) break;
      if (count === 0) start = i;
      count++;
      prev = v;
    }
  }
  return out;
}

/** Writes the wide visits file as a stream: at most ~1 MiB of it is in memory at a time. */
export async function writeWideFile(path: string, options: WideFileOptions): Promise<WideFile> {
  const table = generateVisits({
    visits: options.visits,
    users: options.users,
    files: 1,
    seed: options.seed,
    lateFraction: 0,
    duplicateFraction: 0,
  });
  // time order (ties by arrival), so the file reads like a log
  const order = Int32Array.from({ length: table.count }, (_, i) => i).sort(
    (a, b) => table.time[a]! - table.time[b]! || a - b,
  );
  const lineBytes = Math.floor(options.bytes / table.count);
  const rand = mulberry32(options.seed ^ 0x5eed);
  const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ;/().,_-';
  const text = Array.from(
    { length: lineBytes + 4096 },
    () => alphabet[Math.floor(rand() * alphabet.length)],
  ).join('');

  const out = createWriteStream(path);
  const bar = progress('memory: writing the 1 GB object', 20);
  let parts: string[] = [];
  let pending = 0;
  let written = 0;
  const flush = async (): Promise<void> => {
    const chunk = parts.join('');
    parts = [];
    pending = 0;
    written += Buffer.byteLength(chunk);
    if (!out.write(chunk)) await once(out, 'drain');
  };
  let ticked = 0;
  for (let n = 0; n < table.count; n++) {
    const i = order[n]!;
    const id = userIdOf(table.user[i]!);
    const head = `{"user_id":${typeof id === 'number' ? id : JSON.stringify(id)},"visit_time":"${new Date(
      table.time[i]!,
    ).toISOString()}","page":"page_${table.page[i]!}.html","payload":"`;
    const padding = Math.max(0, lineBytes - head.length - 3);
    const from = (n * 131) % 4096;
    const line = `${head}${text.slice(from, from + padding)}"}\n`;
    parts.push(line);
    pending += line.length;
    if (pending >= 1 << 20) await flush();
    while (ticked < Math.floor(((n + 1) * 20) / table.count)) {
      bar.tick();
      ticked++;
    }
  }
  await flush();
  out.end();
  await once(out, 'finish');
  bar.stop();
  return { path, bytes: written, visits: table.count, users: options.users, table };
}

export interface MemoryRun {
  readonly objectBytes: number;
  readonly visits: number;
  readonly users: number;
  readonly handlerModule: string;
  /** How the child ran: the bundle on plain node, or the source under tsx. */
  readonly childRuntime: 'node + bundle' | 'node + tsx + source';
  /**
   * `process.resourceUsage().maxRSS` of the child before it loaded the handler, after loading it, after the object,
   * at the end. On Linux it starts at the parent's RSS at fork time (kept across execve): see the VmHWM figures.
   */
  readonly baselineMaxRssMb: number;
  readonly loadedMaxRssMb: number;
  readonly batchMaxRssMb: number;
  readonly flushMaxRssMb: number;
  /** The child's own peak RSS (Linux VmHWM, reset by execve) at the start, after the object, at the end. */
  readonly baselineHwmMb: number | null;
  readonly batchHwmMb: number | null;
  readonly flushHwmMb: number | null;
  /** Peaks of process.memoryUsage() sampled every 50 ms in the child (MB). */
  readonly sampledPeakMb: Record<string, number>;
  readonly writeSeconds: number;
  readonly uploadSeconds: number;
  /** Seconds the handler took for the object, and for the flush after it. */
  readonly batchSeconds: number;
  readonly flushSeconds: number;
  readonly counts: MarkerCounts;
  readonly flushSessions: number;
  /** The written sessions (read back from sessions/) against the expected ones. */
  readonly sessions: Comparison;
  readonly conservationErrors: string[];
}

interface ChildResult {
  handlerModule: string;
  baselineMaxRssKb: number;
  loadedMaxRssKb: number;
  batchMaxRssKb: number;
  flushMaxRssKb: number;
  baselineHwmKb: number | null;
  batchHwmKb: number | null;
  flushHwmKb: number | null;
  sampledPeakMb: Record<string, number>;
  batchSeconds: number;
  flushSeconds: number;
  batch: { kind: string; batches?: (MarkerCounts & { outcome: string })[] };
  flush: { kind: string; sessionsClosed?: number };
}

async function runChild(env: Record<string, string>, script: string | undefined): Promise<ChildResult> {
  const args = script
    ? ['--openssl-legacy-provider', script]
    : ['--openssl-legacy-provider', '--import', 'tsx', CHILD];
  const child = spawn(process.execPath, args, {
    env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let result: ChildResult | undefined;
  const tail: string[] = [];
  const keep = (line: string): void => {
    tail.push(line);
    if (tail.length > 20) tail.shift();
  };
  const lines = createInterface({ input: child.stdout });
  lines.on('line', (line) => {
    if (line.startsWith(RESULT_PREFIX)) result = JSON.parse(line.slice(RESULT_PREFIX.length)) as ChildResult;
    else keep(line);
  });
  createInterface({ input: child.stderr }).on('line', keep);
  const [code] = (await once(child, 'close')) as [number | null];
  if (code !== 0 || result === undefined) {
    throw new Error(`memory child failed (exit ${code}):\n${tail.join('\n')}`);
  }
  return result;
}

export async function runMemory(options: {
  readonly dir: string;
  readonly visits: number;
  readonly users: number;
  readonly seed: number;
  readonly bytes: number;
  /** Handler module for the child (the bundle); lambdas/sessionizer.ts from source when undefined. */
  readonly handlerModule?: string;
}): Promise<MemoryRun> {
  const path = join(options.dir, 'wide-visits.jsonl');
  let t = performance.now();
  const file = await writeWideFile(path, options);
  const writeSeconds = (performance.now() - t) / 1000;
  const { stack, stop } = await benchStack();
  try {
    t = performance.now();
    const size = (await stat(path)).size;
    const { key, etag } = await upload(stack, 'wide-visits.jsonl', createReadStream(path), size);
    const uploadSeconds = (performance.now() - t) / 1000;
    await rm(path, { force: true }); // s3rver has its own copy
    let script: string | undefined;
    if (options.handlerModule) {
      // plain node, like Lambda: the child's TypeScript compiled to JavaScript (types stripped, nothing bundled)
      script = join(options.dir, 'memory-child.mjs');
      await build({
        entryPoints: [CHILD],
        outfile: script,
        bundle: false,
        format: 'esm',
        platform: 'node',
        target: 'node20',
        logLevel: 'warning',
      });
    }
    process.stderr.write('memory: the handler is processing the object in a child process...\n');
    const child = await runChild(
      {
        ...stack.env,
        BENCH_MEMORY_BUCKET: stack.config.visitsBucket,
        BENCH_MEMORY_KEY: key,
        ...(etag ? { BENCH_MEMORY_ETAG: etag } : {}),
        ...(options.handlerModule ? { BENCH_HANDLER_MODULE: options.handlerModule } : {}),
      },
      script,
    );
    const batch = child.batch.batches?.[0];
    if (child.batch.kind !== 'objects' || batch === undefined || batch.outcome !== 'processed') {
      throw new Error(`memory child: object not processed: ${JSON.stringify(child.batch)}`);
    }
    const flushSessions = child.flush.sessionsClosed ?? 0;
    const errors: string[] = [];
    if (batch.lines !== file.visits) errors.push(`lines ${batch.lines} != visits written ${file.visits}`);
    if (batch.lines !== batch.visits + batch.rejected) {
      errors.push(`lines ${batch.lines} != valid ${batch.visits} + rejected ${batch.rejected}`);
    }
    if (batch.visits !== batch.accepted + batch.duplicates + batch.late) {
      errors.push(
        `valid ${batch.visits} != accepted ${batch.accepted} + duplicates ${batch.duplicates} + late ${batch.late}`,
      );
    }
    const written = await readSessions(stack);
    const sessions = compareSessions(
      { sessions: expectedSessions(file.table), late: 0 },
      { sessions: written, late: 0 },
    );
    if (!sessions.equal) {
      errors.push(
        `written sessions differ from the expected ones (${sessions.sessionsB} vs ${sessions.sessionsA}; only expected: ${sessions.onlyInA.join(' | ')}; only written: ${sessions.onlyInB.join(' | ')})`,
      );
    }
    if (batch.sessionsClosed + flushSessions !== written.length) {
      errors.push(
        `sessions written ${written.length} != closed by the batch ${batch.sessionsClosed} + the flush ${flushSessions}`,
      );
    }
    const mb = (kb: number): number => kb / 1024;
    const mbOrNull = (kb: number | null): number | null => (kb === null ? null : kb / 1024);
    return {
      objectBytes: size,
      visits: file.visits,
      users: file.users,
      handlerModule: child.handlerModule,
      childRuntime: script ? 'node + bundle' : 'node + tsx + source',
      baselineMaxRssMb: mb(child.baselineMaxRssKb),
      loadedMaxRssMb: mb(child.loadedMaxRssKb),
      batchMaxRssMb: mb(child.batchMaxRssKb),
      flushMaxRssMb: mb(child.flushMaxRssKb),
      baselineHwmMb: mbOrNull(child.baselineHwmKb),
      batchHwmMb: mbOrNull(child.batchHwmKb),
      flushHwmMb: mbOrNull(child.flushHwmKb),
      sampledPeakMb: child.sampledPeakMb,
      writeSeconds,
      uploadSeconds,
      batchSeconds: child.batchSeconds,
      flushSeconds: child.flushSeconds,
      counts: {
        lines: batch.lines,
        visits: batch.visits,
        accepted: batch.accepted,
        duplicates: batch.duplicates,
        late: batch.late,
        rejected: batch.rejected,
        sessionsClosed: batch.sessionsClosed,
      },
      flushSessions,
      sessions,
      conservationErrors: errors,
    };
  } finally {
    await stop();
    await rm(path, { force: true });
  }
}
