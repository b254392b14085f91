/**
 * The local stack of the end-to-end runs: s3rver and dynalite in a process of their own (bench/servers.ts), the
 * handler here (infra/local/stack.ts pointed at them, one handler instance per queue worker), uploads that send
 * their S3 notification to the ingest queue as S3 would, and what the handler consumed, counted the way `sessionizer
 * replay` counts it (cli/usage.ts) and priced with the same table (cli/cost.ts).
 */

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { localEnv } from '../bin/run.js';
import type { UsageSample } from '../cli/cost.ts';
import { stackUsage } from '../cli/usage.ts';
import type { QueueOptions } from '../infra/local/queue.ts';
import { type LocalStack, startLocalStack } from '../infra/local/stack.ts';
import { S3ObjectStore } from '../lambdas/adapters/s3.ts';
import { ENV } from '../lambdas/config.ts';
import { SESSIONS } from '../lambdas/core/schema.ts';
import type { CatchUpSummary } from '../lambdas/pipeline/index.ts';
import type { Telemetry } from '../lambdas/telemetry.ts';
import type { SessionRow } from './sessions.ts';

const SERVERS = fileURLToPath(new URL('./servers.ts', import.meta.url));

/** CPU seconds (user + system) a process used so far, from /proc (Linux; null elsewhere). */
function processCpuSeconds(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the fields after the command name (which may hold spaces) in parentheses; utime and stime are 14 and 15
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // clock ticks, USER_HZ = 100 on Linux
  } catch {
    return null;
  }
}

interface Servers {
  readonly s3: string;
  readonly dynamodb: string;
  cpuSeconds(): number | null;
  stop(): Promise<void>;
}

/** Starts bench/servers.ts in a child process; resolves with its endpoints once they are ready. */
async function startServers(home: string): Promise<Servers> {
  const child = spawn(process.execPath, [SERVERS, home], {
    env: localEnv(),
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
    cpuSeconds: () => processCpuSeconds(child.pid),
    stop: async () => {
      if (child.exitCode === null) {
        child.stdin.end();
        child.kill('SIGTERM');
        await exited;
      }
    },
  };
}

export interface BenchStack {
  readonly stack: LocalStack;
  /** What the stack and the handler logged as warnings or errors (why invocations failed): `count x message`. */
  failures(): string[];
  /** Another stack on the same servers with a state table of its own (a fresh state; stopped with this one). */
  withTable(table: string): Promise<LocalStack>;
  /** CPU seconds the servers' process used so far (null where /proc is not there). */
  serversCpuSeconds(): number | null;
  stop(): Promise<void>;
}

/**
 * A local stack in a fresh temporary home, the servers in their own process (dynalite in memory, s3rver on disk).
 * Only the endpoints come from here: default settings (16 shards, gap 40 min, lateness 15 min), whatever the
 * caller's environment says.
 */
export async function benchStack(options: { queue?: QueueOptions } = {}): Promise<BenchStack> {
  const home = await mkdtemp(join(tmpdir(), 'sessionizer-bench-stack-'));
  const servers = await startServers(home);
  const env = { [ENV.s3Endpoint]: servers.s3, [ENV.dynamodbEndpoint]: servers.dynamodb };
  const failures = new Map<string, number>();
  const log: Telemetry = {
    log(level, message, fields) {
      if (level !== 'warn' && level !== 'error') return;
      const error = fields?.error instanceof Error ? `${fields.error.name}: ${fields.error.message}` : '';
      const key = `${message}${error ? `: ${error}` : ''}`;
      failures.set(key, (failures.get(key) ?? 0) + 1);
    },
    metrics() {},
  };
  let stack: LocalStack;
  const others: LocalStack[] = [];
  try {
    stack = await startLocalStack({
      home,
      inMemory: true,
      env,
      notifications: false,
      log,
      ...(options.queue ? { queue: options.queue } : {}),
    });
  } catch (error) {
    await servers.stop();
    await rm(home, { recursive: true, force: true });
    throw error;
  }
  return {
    stack,
    failures: () => [...failures].sort((a, b) => b[1] - a[1]).map(([m, n]) => `${n} x ${m}`),
    withTable: async (table) => {
      const other = await startLocalStack({ home, inMemory: true, env: { ...env, [ENV.table]: table } });
      others.push(other);
      return other;
    },
    serversCpuSeconds: () => servers.cpuSeconds(),
    stop: async () => {
      for (const other of others) await other.stop();
      await stack.stop();
      await servers.stop();
      await rm(home, { recursive: true, force: true });
    },
  };
}

/**
 * Uploads bytes as `visits/<name>` with the stack's own client (not counted as the handler's) and sends the
 * object's S3 notification to the ingest queue (unless `notify` is false). Returns the key and ETag.
 */
export async function upload(
  stack: LocalStack,
  name: string,
  body: PutObjectCommand['input']['Body'],
  options: { contentLength?: number; notify?: boolean } = {},
): Promise<{ key: string; etag: string | undefined }> {
  const { contentLength } = options;
  const key = `${stack.config.visitsPrefix}${name}`;
  const out = await stack.clients.s3.send(
    new PutObjectCommand({
      Bucket: stack.config.visitsBucket,
      Key: key,
      Body: body,
      ...(contentLength !== undefined ? { ContentLength: contentLength } : {}),
    }),
  );
  const etag = out.ETag?.replace(/"/g, '');
  if (options.notify !== false) stack.notify(key, etag);
  return { key, etag };
}

/** What every handler instance consumed so far (`replay`'s counting), plus the conditional writes that lost. */
/** The catch-ups of the queue's invocations, from the `from`-th delivered result on. */
export function catchUps(stack: LocalStack, from = 0): CatchUpSummary[] {
  return stack.delivered.slice(from).flatMap((r) => (r.kind === 'queue' ? [r.catchUp] : []));
}

export interface UsageCount extends UsageSample {
  readonly conditionFailures: number;
}

export function usageNow(stack: LocalStack, visits = 0): UsageCount {
  const { cost: _cost, ...sample } = stackUsage(stack, visits);
  let conditionFailures = 0;
  for (const i of stack.instances()) conditionFailures += i.runtime.store.usage.conditionFailures;
  return { ...sample, conditionFailures };
}

/** What was consumed between two counts, for `visits` visits. */
export function usageSince(before: UsageCount, after: UsageCount, visits: number): UsageCount {
  return {
    visits,
    invocations: after.invocations - before.invocations,
    sqsRequests: after.sqsRequests - before.sqsRequests,
    writeUnits: after.writeUnits - before.writeUnits,
    readUnits: after.readUnits - before.readUnits,
    s3Get: after.s3Get - before.s3Get,
    s3Put: after.s3Put - before.s3Put,
    s3List: after.s3List - before.s3List,
    handlerSeconds: after.handlerSeconds - before.handlerSeconds,
    conditionFailures: after.conditionFailures - before.conditionFailures,
  };
}

/** Every session written under sessions/, as rows (read through an object store of its own: not counted). */
export async function readSessions(stack: LocalStack): Promise<SessionRow[]> {
  const rows: SessionRow[] = [];
  const objects = new S3ObjectStore(stack.clients.s3);
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
