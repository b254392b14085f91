/**
 * Integration-test helpers over the local stack (s3rver + dynalite, no mocks): a stack in a fresh temporary home
 * that is removed on stop, a controllable clock, putting visit objects, and reading the output datasets.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { type LocalStack, type LocalStackOptions, startLocalStack } from '../../infra/local/stack.ts';
import { normalizeEtag } from '../../lambdas/adapters/s3.ts';
import { INTERNAL_PREFIX } from '../../lambdas/core/schema.ts';
import type { IngestResult } from '../../lambdas/pipeline/index.ts';
import type { HandlerResult } from '../../lambdas/sessionizer.ts';

export const MINUTE = 60_000;

/** 2026-02-15 at the given UTC time (the seed's day). */
export const at = (h: number, m: number, s: number, ms = 0): number => Date.UTC(2026, 1, 15, h, m, s, ms);

/** ISO-8601 UTC text of an epoch-ms time. */
export const iso = (t: number): string => new Date(t).toISOString();

/** A wall clock for the pipeline that starts at `start` and runs with real time, and can be moved forward at once. */
export class TestClock {
  private offset = 0;
  private readonly origin = Date.now();

  constructor(private readonly start: number) {}

  readonly now = (): number => this.start + this.offset + (Date.now() - this.origin);

  advance(ms: number): void {
    this.offset += ms;
  }
}

export interface TestStackOptions extends Omit<LocalStackOptions, 'home' | 'inMemory' | 'env'> {
  /** SESSIONIZER_* settings (nothing else from process.env reaches the stack). */
  readonly env?: Record<string, string>;
}

/** A local stack in a fresh temporary home, dynalite in memory; `stop()` also removes the home. */
export async function startTestStack(options: TestStackOptions = {}): Promise<LocalStack> {
  const home = await mkdtemp(join(tmpdir(), 'sessionizer-'));
  let stack: LocalStack;
  try {
    stack = await startLocalStack({ ...options, home, inMemory: true, env: { ...options.env } });
  } catch (error) {
    await rm(home, { recursive: true, force: true });
    throw error;
  }
  return {
    ...stack,
    stop: async () => {
      try {
        await stack.stop();
      } finally {
        await rm(home, { recursive: true, force: true });
      }
    },
  };
}

export interface PutOptions {
  readonly contentEncoding?: string;
  readonly contentType?: string;
  /** Bucket; the visits bucket by default. */
  readonly bucket?: string;
}

/** Puts an object with the stack's own S3 client. Returns its ETag (without quotes). */
export async function putObject(
  stack: LocalStack,
  key: string,
  body: string | Uint8Array,
  options: PutOptions = {},
): Promise<string> {
  const out = await stack.clients.s3.send(
    new PutObjectCommand({
      Bucket: options.bucket ?? stack.config.visitsBucket,
      Key: key,
      Body: body,
      ...(options.contentEncoding ? { ContentEncoding: options.contentEncoding } : {}),
      ...(options.contentType ? { ContentType: options.contentType } : {}),
    }),
  );
  return normalizeEtag(out.ETag);
}

/** One visit line of a JSON Lines input file. */
export type VisitRow = readonly [user: string | number, time: number | string, page: string];

/** JSON Lines text of visits (times given as epoch ms are written as ISO-8601 UTC). */
export function jsonl(rows: readonly VisitRow[]): string {
  return rows
    .map(([user, time, page]) =>
      JSON.stringify({ user_id: user, visit_time: typeof time === 'number' ? iso(time) : time, page }),
    )
    .map((line) => `${line}\n`)
    .join('');
}

export interface OutputObject {
  readonly key: string;
  readonly text: string;
  /** The object's JSON Lines, parsed. */
  readonly records: Record<string, unknown>[];
}

/**
 * Every output object under a prefix of the output bucket (`sessions/`, `late-visits/`, `rejected/`, or `` for all
 * three; the function's own data under `_sessionizer/` is not output), in key order.
 */
export async function readOutputs(stack: LocalStack, prefix: string): Promise<OutputObject[]> {
  const { objects } = stack.inspect;
  const out: OutputObject[] = [];
  for (const o of await objects.listAll(stack.config.outputBucket, prefix)) {
    if (o.key.startsWith(INTERNAL_PREFIX)) continue;
    const text = await objects.getText(stack.config.outputBucket, o.key);
    const records = text
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    out.push({ key: o.key, text, records });
  }
  return out;
}

/** Every record under a prefix of the output bucket, across objects, in key order. */
export async function readRecords(stack: LocalStack, prefix: string): Promise<Record<string, unknown>[]> {
  return (await readOutputs(stack, prefix)).flatMap((o) => o.records);
}

/**
 * Keys and contents of every output object, for comparing two runs. The random id of the state in output keys is
 * written `<state>`, so that runs on two fresh stacks compare.
 */
export async function snapshotOutputs(stack: LocalStack): Promise<Map<string, string>> {
  return new Map(
    (await readOutputs(stack, '')).map((o) => [
      o.key.replace(/\/[0-9a-f]{8}-s(\d{3})-v/, '/<state>-s$1-v'),
      o.text,
    ]),
  );
}

/** Every output line (sessions, late visits, rejected records) with its dataset, sorted: outputs as sets of lines. */
export async function outputLines(stack: LocalStack): Promise<string[]> {
  const lines: string[] = [];
  for (const o of await readOutputs(stack, '')) {
    const dataset = o.key.split('/')[0]!;
    const dt = o.key.split('/')[1]!;
    for (const line of o.text.split('\n')) if (line !== '') lines.push(`${dataset}/${dt} ${line}`);
  }
  return lines.sort();
}

/** The objects ingested by handler results (queue batches, direct notifications, scheduled catch-ups). */
export function objectsOf(results: readonly HandlerResult[]): IngestResult[] {
  return results.flatMap((r) =>
    r.kind === 'objects' || r.kind === 'queue' ? r.objects : r.kind === 'scheduled' ? r.summary.ingested : [],
  );
}

/** What an invocation did with one of its objects: the object's log entry, and the counts of the shards' catch-up. */
export interface Delivery {
  readonly object: string;
  readonly outcome: IngestResult['outcome'];
  readonly lines: number;
  readonly visits: number;
  readonly rejected: number;
  /** The catch-up's counts; they are this object's when the invocation had this one object only. */
  readonly accepted: number;
  readonly duplicates: number;
  readonly late: number;
  readonly sessionsClosed: number;
  readonly watermark: number;
}

/** Every object of handler results, with the counts of its invocation's catch-up. */
export function deliveries(results: readonly HandlerResult[]): Delivery[] {
  return results.flatMap((r) => {
    const catchUp =
      r.kind === 'queue' || r.kind === 'objects'
        ? r.catchUp
        : r.kind === 'scheduled'
          ? r.summary.catchUp
          : undefined;
    return objectsOf([r]).map((o) => ({
      object: o.object,
      outcome: o.outcome,
      lines: o.entry?.lines ?? 0,
      visits: o.entry?.visits ?? 0,
      rejected: o.entry?.rejected ?? 0,
      accepted: catchUp?.accepted ?? 0,
      duplicates: catchUp?.duplicates ?? 0,
      late: catchUp?.late ?? 0,
      sessionsClosed: catchUp?.sessionsClosed ?? 0,
      watermark: catchUp?.watermark ?? Number.NaN,
    }));
  });
}

/** The watermark after the log's last entry (`-Infinity` before any). */
export async function watermarkOf(stack: LocalStack): Promise<number> {
  return (await stack.inspect.store.lastEntry())?.after ?? Number.NEGATIVE_INFINITY;
}

/** The objects of one handler result that must be a queue or objects result. */
export function onlyObjects(result: HandlerResult): IngestResult[] {
  if (result.kind !== 'objects' && result.kind !== 'queue')
    throw new Error(`expected an objects result, got ${JSON.stringify(result)}`);
  return result.objects;
}

/**
 * The seed walkthrough (gap 40 min, allowed lateness 15 min): users 1, 1, 2, 3 at 17:05:34 on pages 1 to 4, the same
 * users at 17:06:47, then user 4 at 18:09:18. After batch 3 users 1, 2 and 3 close with 4, 2 and 2 visits.
 */
export const SEED: readonly { readonly key: string; readonly rows: readonly VisitRow[] }[] = [
  {
    key: 'visits/2026-02-15/batch-1.jsonl',
    rows: [
      ['1', at(17, 5, 34, 432), 'page_1.html'],
      ['1', at(17, 5, 34, 532), 'page_2.html'],
      ['2', at(17, 5, 34, 632), 'page_3.html'],
      ['3', at(17, 5, 34, 732), 'page_4.html'],
    ],
  },
  {
    key: 'visits/2026-02-15/batch-2.jsonl',
    rows: [
      ['1', at(17, 6, 46, 900), 'page_3.html'],
      ['1', at(17, 6, 47, 100), 'page_4.html'],
      ['2', at(17, 6, 47, 0), 'page_1.html'],
      ['3', at(17, 6, 47, 50), 'page_2.html'],
    ],
  },
  { key: 'visits/2026-02-15/batch-3.jsonl', rows: [['4', at(18, 9, 18, 0), 'page_1.html']] },
];

/** Puts the seed's three objects (their events fire if the stack delivers notifications). Returns their ETags. */
export async function putSeed(stack: LocalStack, count = SEED.length): Promise<string[]> {
  const etags: string[] = [];
  for (const file of SEED.slice(0, count)) etags.push(await putObject(stack, file.key, jsonl(file.rows)));
  return etags;
}

/** DynamoDB's item size limit: attribute names and values, strings counted in UTF-8 bytes. */
export const DYNAMODB_ITEM_LIMIT = 400 * 1024;

/** Size of an attribute value as DynamoDB counts it (strings in UTF-8 bytes; numbers up to 21 bytes). */
function valueBytes(value: unknown): number {
  if (typeof value === 'string') return Buffer.byteLength(value, 'utf8');
  if (typeof value === 'number')
    return Math.min(21, 1 + Math.ceil(String(Math.abs(value)).replace(/[.-]/g, '').length / 2));
  if (typeof value === 'boolean' || value === null || value === undefined) return 1;
  if (value instanceof Uint8Array) return value.length;
  if (Array.isArray(value)) return 3 + value.reduce((n: number, v) => n + 1 + valueBytes(v), 0);
  if (value instanceof Set) return [...value].reduce((n: number, v) => n + valueBytes(v), 0);
  if (typeof value === 'object') {
    return 3 + Object.entries(value).reduce((n, [k, v]) => n + 1 + Buffer.byteLength(k) + valueBytes(v), 0);
  }
  return 0;
}

/**
 * Every item of the state table with its size as DynamoDB counts it, largest first. dynalite measures strings in
 * UTF-16 units, so it lets non-ASCII items through that DynamoDB would refuse: this measures them as DynamoDB does.
 */
export async function itemSizes(stack: LocalStack): Promise<{ pk: string; sk: string; bytes: number }[]> {
  const sizes: { pk: string; sk: string; bytes: number }[] = [];
  let start: Record<string, unknown> | undefined;
  do {
    const out = await stack.clients.ddb.send(
      new ScanCommand({ TableName: stack.config.table, ...(start ? { ExclusiveStartKey: start } : {}) }),
    );
    for (const item of out.Items ?? []) {
      const bytes = Object.entries(item).reduce((n, [k, v]) => n + Buffer.byteLength(k) + valueBytes(v), 0);
      sizes.push({ pk: String(item.pk), sk: String(item.sk), bytes });
    }
    start = out.LastEvaluatedKey;
  } while (start);
  return sizes.sort((a, b) => b.bytes - a.bytes);
}
