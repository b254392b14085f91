/**
 * End-to-end runs through the local S3 and DynamoDB servers: s3rver and dynalite run in a process of their own
 * (bench/servers.ts), the handler here (infra/local/stack.ts pointed at them), every file uploaded in order, its S3
 * notification handled to completion before the next upload, then a flush. Measures time, the DynamoDB capacity the
 * state store consumed (`store.usage`: write and read units as dynalite reports them, plus the Query units and the
 * expiry-index writes the adapter computes), the S3 requests of the handler, and checks conservation and the closed
 * sessions against the core.
 *
 * dynalite does not count writes to the global secondary index (the expiry index); the adapter counts them itself
 * (`usage.indexWriteUnits`, included in `usage.writeUnits`). As a cross-check, they are also counted here from the
 * handler's PutItem requests of user heads (the only items carrying the index keys; heads are never updated or
 * deleted any other way) with DynamoDB's rules for a KEYS_ONLY index: a head entering or leaving the index is one
 * index write, a changed index key two (delete + put), an unchanged key none; each write is the index entry's size
 * (keys + 100 bytes) rounded up to 1 KB.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { DynamoUsage } from '../lambdas/adapters/dynamo.ts';
import type { S3RequestCounts } from '../lambdas/adapters/s3.ts';
import { EXPIRY_INDEX, TABLE_KEYS } from '../lambdas/adapters/table-layout.ts';
import { SESSIONS } from '../lambdas/core/schema.ts';
import type { MarkerCounts } from '../lambdas/adapters/dynamo.ts';
import { addCounts, type BatchSummary, emptyCounts } from '../lambdas/pipeline.ts';
import type { HandlerResult } from '../lambdas/sessionizer.ts';
import { ENV } from '../lambdas/config.ts';
import { type LocalStack, s3Notification, startLocalStack } from '../infra/local/stack.ts';
import type { SessionRow } from './duckdb.ts';

export interface IndexWrites {
  /** Index write operations (each of one index entry). */
  writes: number;
  /** Write units of those operations. */
  units: number;
}

/** Size DynamoDB counts for an attribute: name plus value (numbers approximately: 1 byte per 2 digits + 1). */
function attributeBytes(name: string, value: unknown): number {
  if (typeof value === 'number')
    return Buffer.byteLength(name) + Math.ceil(String(Math.abs(value)).replace(/[.-]/g, '').length / 2) + 1;
  return Buffer.byteLength(name) + Buffer.byteLength(String(value));
}

/**
 * Watches a DocumentClient's PutItem requests of user heads and counts the expiry-index writes they cause (see the
 * module comment). Starts from an empty table: call it before the first write.
 */
export function watchExpiryIndex(client: DynamoDBDocumentClient): IndexWrites {
  const counts: IndexWrites = { writes: 0, units: 0 };
  const indexed = new Map<string, string>();
  client.middlewareStack.add(
    (next) => async (args) => {
      const out = await next(args);
      const item = (args.input as { Item?: Record<string, unknown> }).Item;
      const pk = item?.[TABLE_KEYS.partitionKey];
      if (item && typeof pk === 'string' && pk.startsWith('user#') && item[TABLE_KEYS.sortKey] === 'head') {
        const shard = item[EXPIRY_INDEX.partitionKey];
        const at = item[EXPIRY_INDEX.sortKey];
        const now =
          shard !== undefined && at !== undefined ? `${String(shard)}\u0000${String(at)}` : undefined;
        const before = indexed.get(pk);
        const entryBytes =
          100 +
          attributeBytes(TABLE_KEYS.partitionKey, pk) +
          attributeBytes(TABLE_KEYS.sortKey, 'head') +
          (now === undefined
            ? 0
            : attributeBytes(EXPIRY_INDEX.partitionKey, shard) + attributeBytes(EXPIRY_INDEX.sortKey, at));
        const unit = Math.max(1, Math.ceil(entryBytes / 1024));
        const ops = before === now ? 0 : before === undefined || now === undefined ? 1 : 2;
        counts.writes += ops;
        counts.units += ops * unit;
        if (now === undefined) indexed.delete(pk);
        else indexed.set(pk, now);
      }
      return out;
    },
    { step: 'initialize', name: 'benchExpiryIndexWatch' },
  );
  return counts;
}

export interface Counters {
  /** Write units: the table's as dynalite reports them, plus the adapter's expiry-index writes. */
  readonly writeUnits: number;
  /** Expiry-index write units as the adapter counts them (part of `writeUnits`). */
  readonly indexWriteUnits: number;
  readonly readUnits: number;
  readonly writes: number;
  readonly reads: number;
  /** Expiry-index writes and units counted here from the head PutItem requests (the cross-check). */
  readonly watchedIndexWrites: number;
  readonly watchedIndexWriteUnits: number;
  readonly s3Get: number;
  readonly s3Put: number;
  readonly s3List: number;
}

function snapshot(usage: DynamoUsage, index: IndexWrites, requests: S3RequestCounts): Counters {
  return {
    writeUnits: usage.writeUnits,
    indexWriteUnits: usage.indexWriteUnits,
    readUnits: usage.readUnits,
    writes: usage.writes,
    reads: usage.reads,
    watchedIndexWrites: index.writes,
    watchedIndexWriteUnits: index.units,
    s3Get: requests.get,
    s3Put: requests.put,
    s3List: requests.list,
  };
}

function diff(a: Counters, b: Counters): Counters {
  return {
    writeUnits: b.writeUnits - a.writeUnits,
    indexWriteUnits: b.indexWriteUnits - a.indexWriteUnits,
    readUnits: b.readUnits - a.readUnits,
    writes: b.writes - a.writes,
    reads: b.reads - a.reads,
    watchedIndexWrites: b.watchedIndexWrites - a.watchedIndexWrites,
    watchedIndexWriteUnits: b.watchedIndexWriteUnits - a.watchedIndexWriteUnits,
    s3Get: b.s3Get - a.s3Get,
    s3Put: b.s3Put - a.s3Put,
    s3List: b.s3List - a.s3List,
  };
}

const SERVERS = fileURLToPath(new URL('./servers.ts', import.meta.url));

/** Starts bench/servers.ts in a child process; resolves with its endpoints once they are ready. */
async function startServers(
  home: string,
): Promise<{ s3: string; dynamodb: string; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, ['--openssl-legacy-provider', '--import', 'tsx', SERVERS, home], {
    env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const exited = once(child, 'exit');
  const ready = new Promise<{ s3: string; dynamodb: string }>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      if (line.startsWith('BENCH_SERVERS ')) resolve(JSON.parse(line.slice('BENCH_SERVERS '.length)));
    });
    child.once('exit', (code) => reject(new Error(`bench/servers.ts exited (${code}) before it was ready`)));
    child.once('error', reject);
  });
  const endpoints = await ready;
  return {
    ...endpoints,
    stop: async () => {
      if (child.exitCode === null) {
        child.stdin.end();
        child.kill('SIGTERM');
        await exited;
      }
    },
  };
}

/**
 * A local stack in a fresh temporary home: the servers in their own process (dynalite in memory, s3rver on disk),
 * the handler's runtime here, with the index cross-check.
 */
export async function benchStack(
  options: { now?: () => number } = {},
): Promise<{ stack: LocalStack; index: IndexWrites; home: string; stop: () => Promise<void> }> {
  const home = await mkdtemp(join(tmpdir(), 'sessionizer-bench-stack-'));
  const servers = await startServers(home);
  let stack: LocalStack;
  try {
    // only the endpoints from the environment: default settings (gap 40 min, lateness 15 min), whatever the
    // caller's environment says
    stack = await startLocalStack({
      home,
      inMemory: true,
      env: { [ENV.s3Endpoint]: servers.s3, [ENV.dynamodbEndpoint]: servers.dynamodb },
      notifications: false,
      ...(options.now ? { now: options.now } : {}),
    });
  } catch (error) {
    await servers.stop();
    await rm(home, { recursive: true, force: true });
    throw error;
  }
  const index = watchExpiryIndex(stack.runtime.clients.ddb);
  return {
    stack,
    index,
    home,
    stop: async () => {
      await stack.stop();
      await servers.stop();
      await rm(home, { recursive: true, force: true });
    },
  };
}

/** Uploads bytes as `visits/<name>` and returns the object's key and ETag (the upload is not the handler's). */
export async function upload(
  stack: LocalStack,
  name: string,
  body: PutObjectCommand['input']['Body'],
  contentLength?: number,
): Promise<{ key: string; etag: string | undefined }> {
  const key = `${stack.config.visitsPrefix}${name}`;
  const out = await stack.clients.s3.send(
    new PutObjectCommand({
      Bucket: stack.config.visitsBucket,
      Key: key,
      Body: body,
      ...(contentLength !== undefined ? { ContentLength: contentLength } : {}),
    }),
  );
  return { key, etag: out.ETag?.replace(/"/g, '') };
}

function batchOf(result: HandlerResult): BatchSummary {
  if (result.kind !== 'objects' || result.batches.length !== 1) {
    throw new Error(`expected one processed object, got ${JSON.stringify(result)}`);
  }
  const batch = result.batches[0]!;
  if (batch.outcome !== 'processed') throw new Error(`object not processed: ${batch.outcome}`);
  return batch;
}

/** Counters summed over the batches (`sessionsClosed` includes the final flush), and what the run measured. */
export interface PipelineRun extends MarkerCounts {
  readonly files: number;
  /** Session rows read back from the sessions/ output. */
  readonly sessions: SessionRow[];
  /** Wall seconds of the whole replay: uploads, invocations, flush. */
  readonly seconds: number;
  /** Wall seconds inside the handler (every invocation, flush included). */
  readonly handlerSeconds: number;
  readonly uploadSeconds: number;
  readonly invocations: number;
  /** What the handler consumed (uploads and the read-back excluded). */
  readonly usage: Counters;
  readonly conservationErrors: string[];
}

/** Replays `files` (paths, in order) through a fresh local stack, then flushes and reads the sessions back. */
export async function runPipeline(
  files: readonly string[],
  onFile?: (index: number, batch: BatchSummary) => void,
): Promise<PipelineRun> {
  const { stack, index, stop } = await benchStack();
  try {
    const { store, objects } = stack.runtime;
    const start = snapshot(store.usage, index, objects.requests);
    const totals = emptyCounts();
    let handlerSeconds = 0;
    let uploadSeconds = 0;
    const started = performance.now();
    for (const [i, file] of files.entries()) {
      let t = performance.now();
      const { key, etag } = await upload(stack, basename(file), await readFile(file));
      uploadSeconds += (performance.now() - t) / 1000;
      t = performance.now();
      const batch = batchOf(await stack.invoke(s3Notification(stack.config.visitsBucket, key, etag)));
      handlerSeconds += (performance.now() - t) / 1000;
      addCounts(totals, batch);
      onFile?.(i, batch);
    }
    const t = performance.now();
    const flush = await stack.invoke({ action: 'flush', id: 'bench' });
    handlerSeconds += (performance.now() - t) / 1000;
    if (flush.kind !== 'flush') throw new Error(`flush: unexpected result ${flush.kind}`);
    totals.sessionsClosed += flush.sessionsClosed;
    const seconds = (performance.now() - started) / 1000;
    const usage = diff(start, snapshot(store.usage, index, objects.requests));

    const sessions = await readSessions(stack);
    const errors: string[] = [];
    if (totals.visits !== totals.accepted + totals.duplicates + totals.late) {
      errors.push(
        `valid ${totals.visits} != accepted ${totals.accepted} + duplicates ${totals.duplicates} + late ${totals.late}`,
      );
    }
    if (totals.lines !== totals.visits + totals.rejected) {
      errors.push(`lines ${totals.lines} != valid ${totals.visits} + rejected ${totals.rejected}`);
    }
    const sessionVisits = sessions.reduce((a, s) => a + s.visitCount, 0);
    if (sessionVisits !== totals.accepted) {
      errors.push(`visits in written sessions ${sessionVisits} != accepted ${totals.accepted}`);
    }
    if (sessions.length !== totals.sessionsClosed) {
      errors.push(
        `sessions written ${sessions.length} != sessions the handler reported closed ${totals.sessionsClosed}`,
      );
    }
    return {
      files: files.length,
      ...totals,
      sessions,
      seconds,
      handlerSeconds,
      uploadSeconds,
      invocations: files.length + 1,
      usage,
      conservationErrors: errors,
    };
  } finally {
    await stop();
  }
}

/** Every session written under sessions/, as rows. */
export async function readSessions(stack: LocalStack): Promise<SessionRow[]> {
  const rows: SessionRow[] = [];
  const objects = stack.inspect.objects;
  for (const o of await objects.listAll(stack.config.outputBucket, SESSIONS.prefix)) {
    const text = await objects.getText(stack.config.outputBucket, o.key);
    for (const line of text.split('\n')) {
      if (line === '') continue;
      const s = JSON.parse(line) as {
        user_id: string;
        start_time: string;
        end_time: string;
        visit_count: number;
      };
      rows.push({
        userId: s.user_id,
        start: Date.parse(s.start_time),
        end: Date.parse(s.end_time),
        visitCount: s.visit_count,
      });
    }
  }
  return rows;
}

export interface LongSessionRun {
  readonly visits: number;
  readonly files: number;
  /** Write units per file (table as dynalite reports + the adapter's index writes), in order. */
  readonly writeUnitsPerFile: number[];
  /** The adapter's expiry-index write units per file (part of `writeUnitsPerFile`). */
  readonly indexUnitsPerFile: number[];
  /** Index write units per file counted by the cross-check. */
  readonly watchedIndexUnitsPerFile: number[];
  /** Read units per file (GetItem/BatchGet as dynalite reports, Query units from item sizes), in order. */
  readonly readUnitsPerFile: number[];
  readonly firstRcuPerVisit: number;
  readonly lastRcuPerVisit: number;
  /** Write units per visit over the first 10, the second 10 and the last 10 files. */
  readonly firstWcuPerVisit: number;
  readonly secondWcuPerVisit: number;
  readonly lastWcuPerVisit: number;
  readonly firstIndexWcuPerVisit: number;
  readonly lastIndexWcuPerVisit: number;
  /** Sessions written, and their visits, after the flush (1 and `visits` expected). */
  readonly sessionsWritten: number;
  readonly sessionVisits: number;
  readonly seconds: number;
}

/**
 * One user, `visits` visits a minute apart (one session: every gap is under 40 minutes) in `files` small files,
 * through the pipeline on the real clock (the files in a burst). The write units per visit must not grow with the
 * session's length.
 */
export async function runLongSession(
  options: { visits?: number; files?: number } = {},
): Promise<LongSessionRun> {
  const visits = options.visits ?? 1000;
  const fileCount = options.files ?? 50;
  const { stack, index, stop } = await benchStack();
  try {
    const base = Date.UTC(2026, 1, 15, 6, 0, 0);
    const per = Math.ceil(visits / fileCount);
    const writeUnitsPerFile: number[] = [];
    const indexUnitsPerFile: number[] = [];
    const watchedIndexUnitsPerFile: number[] = [];
    const readUnitsPerFile: number[] = [];
    const visitsPerFile: number[] = [];
    const started = performance.now();
    for (let f = 0; f < fileCount; f++) {
      const lines: string[] = [];
      for (let i = f * per; i < Math.min(visits, (f + 1) * per); i++) {
        const t = new Date(base + i * 60_000 + (i % 7) * 113).toISOString();
        lines.push(`{"user_id":"long-session-user","visit_time":"${t}","page":"page_${i % 37}.html"}\n`);
      }
      const name = `long-${String(f + 1).padStart(4, '0')}.jsonl`;
      const { key, etag } = await upload(stack, name, Buffer.from(lines.join('')));
      const before = snapshot(stack.runtime.store.usage, index, stack.runtime.objects.requests);
      batchOf(await stack.invoke(s3Notification(stack.config.visitsBucket, key, etag)));
      const d = diff(before, snapshot(stack.runtime.store.usage, index, stack.runtime.objects.requests));
      writeUnitsPerFile.push(d.writeUnits);
      indexUnitsPerFile.push(d.indexWriteUnits);
      watchedIndexUnitsPerFile.push(d.watchedIndexWriteUnits);
      readUnitsPerFile.push(d.readUnits);
      visitsPerFile.push(lines.length);
    }
    await stack.invoke({ action: 'flush', id: 'long-session' });
    const seconds = (performance.now() - started) / 1000;
    const sessions = await readSessions(stack);
    const sum = (xs: number[], from: number, to: number) => xs.slice(from, to).reduce((a, x) => a + x, 0);
    const n = Math.min(10, fileCount);
    const perVisit = (xs: number[], from: number, to: number) =>
      sum(xs, from, to) / sum(visitsPerFile, from, to);
    return {
      visits,
      files: fileCount,
      writeUnitsPerFile,
      indexUnitsPerFile,
      watchedIndexUnitsPerFile,
      readUnitsPerFile,
      firstRcuPerVisit: perVisit(readUnitsPerFile, 0, n),
      lastRcuPerVisit: perVisit(readUnitsPerFile, fileCount - n, fileCount),
      firstWcuPerVisit: perVisit(writeUnitsPerFile, 0, n),
      secondWcuPerVisit: perVisit(writeUnitsPerFile, n, Math.min(2 * n, fileCount)),
      lastWcuPerVisit: perVisit(writeUnitsPerFile, fileCount - n, fileCount),
      firstIndexWcuPerVisit: perVisit(indexUnitsPerFile, 0, n),
      lastIndexWcuPerVisit: perVisit(indexUnitsPerFile, fileCount - n, fileCount),
      sessionsWritten: sessions.length,
      sessionVisits: sessions.reduce((a, s) => a + s.visitCount, 0),
      seconds,
    };
  } finally {
    await stop();
  }
}
