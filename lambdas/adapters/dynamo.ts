/**
 * DynamoDB state store: maps the state of lambdas/core/state.ts to items (layout in table-layout.ts), built only on
 * single-item conditional writes so it runs the same on dynalite and on AWS. No decisions here beyond the
 * conditions themselves; SDK errors are translated at this boundary.
 */
import {
  ScanCommand,
  BatchGetCommand,
  DeleteCommand,
  GetCommand,
  PutCommand,
  QueryCommand,
  UpdateCommand,
  type DynamoDBDocumentClient,
} from '@aws-sdk/lib-dynamodb';
import {
  type AppliedEntry,
  type ChunkRef,
  type ClosingMark,
  type UserHead,
  chunkId,
  emptyHead,
} from '../core/state.ts';
import type { PageVisit } from '../core/types.ts';
import { ConflictError, translateAwsError } from './errors.ts';
import { EXPIRY_INDEX, TTL_ATTRIBUTE } from './table-layout.ts';

export interface Checkpoint {
  readonly watermark: number;
  readonly maxVisitTime: number;
  /** Wall-clock ms of the last watermark advance (0 when never). */
  readonly advancedAt: number;
}

export interface MarkerCounts {
  readonly lines: number;
  readonly visits: number;
  readonly accepted: number;
  readonly duplicates: number;
  readonly late: number;
  readonly rejected: number;
  readonly sessionsClosed: number;
}

export interface ObjectMarker {
  readonly id: string;
  readonly bucket: string;
  readonly key: string;
  readonly etag: string;
  readonly status: 'in-progress' | 'done';
  readonly leaseUntil: number;
  /** Watermark before the batch, fixed at the first claim so a retried batch decides lateness the same way. */
  readonly watermarkBefore: number;
  readonly claimedAt: number;
  readonly attempts: number;
  readonly outcome?: string;
  readonly counts?: MarkerCounts;
  /** Wall-clock ms when it was marked done (listings only). */
  readonly doneAt?: number;
}

export interface ClosingRecord {
  readonly run: string;
  /** The watermark the run closes with; `Infinity` for a flush. */
  readonly watermark: number;
  readonly startedAt: number;
  /** The run's owner holds it until then; after that another run may take it over and finish it. */
  readonly leaseUntil: number;
  readonly written: boolean;
  /** Sessions the run wrote, once `written`. */
  readonly sessions: number;
  readonly users: string[];
}

/** A user's state as read: the head (its `chunks` are the committed ones), chunk visits, and chunk bookkeeping. */
export interface UserRead {
  readonly head: UserHead;
  readonly chunks: Map<string, PageVisit[]>;
  /** Chunks with a commit item. */
  readonly commits: ReadonlySet<string>;
  /** Chunk items that are not committed (left by a failed write; never read). */
  readonly orphans: readonly string[];
}

export interface StoredLate {
  readonly userId: string;
  readonly t: number;
  readonly page: string;
  readonly line: number;
  readonly watermark: number;
}

/** Read and write units consumed, and requests made, for the benchmark's cost model. */
export interface DynamoUsage {
  readUnits: number;
  /** Write units of the table, plus the index writes below. */
  writeUnits: number;
  /** Write units of the expiry index (counted here: not every server reports them): 1 per entry put or deleted. */
  indexWriteUnits: number;
  reads: number;
  writes: number;
}

type Item = Record<string, unknown>;

/**
 * Aliases every attribute name in an expression (`#name`), so none can clash with DynamoDB's reserved words.
 * Write attribute names as `@name` in the expression.
 */
function expr(text: string): { text: string; names: Record<string, string> } {
  const names: Record<string, string> = {};
  const out = text.replace(/@([A-Za-z_][A-Za-z0-9_]*)/g, (_, name: string) => {
    names[`#${name}`] = name;
    return `#${name}`;
  });
  return { text: out, names };
}

/** Builds the expression parts of an UpdateCommand from `@name` expressions. */
function updateParts(update: string, condition?: string) {
  const u = expr(update);
  const c = condition ? expr(condition) : undefined;
  return {
    UpdateExpression: u.text,
    ...(c ? { ConditionExpression: c.text } : {}),
    ExpressionAttributeNames: { ...u.names, ...(c?.names ?? {}) },
  };
}

/** Most bytes of list data in one item: well under DynamoDB's 400 KB, leaving room for JSON escapes. */
const ITEM_DATA_BYTES = 200 * 1024;

/** Splits a list into parts of at most ITEM_DATA_BYTES (by the given size estimate), each at least one element. */
function splitBySize<T>(list: readonly T[], size: (x: T) => number): T[][] {
  const parts: T[][] = [];
  let part: T[] = [];
  let bytes = 0;
  for (const x of list) {
    const n = size(x);
    if (part.length > 0 && bytes + n > ITEM_DATA_BYTES) {
      parts.push(part);
      part = [];
      bytes = 0;
    }
    part.push(x);
    bytes += n;
  }
  if (part.length > 0) parts.push(part);
  return parts;
}
const LATE_TTL_SECONDS = 30 * 86_400;

const encodeVisits = (visits: readonly PageVisit[]): string =>
  JSON.stringify(visits.map((v) => [v.t, v.page]));
const decodeVisits = (text: unknown): PageVisit[] =>
  typeof text === 'string' ? (JSON.parse(text) as [number, string][]).map(([t, page]) => ({ t, page })) : [];

/** Applied entries, compactly: `{"<key>":[accepted,duplicates,late,at,chunks]}`. */
function encodeApplied(applied: Readonly<Record<string, AppliedEntry>>): string {
  const out: Record<string, number[]> = {};
  for (const [k, e] of Object.entries(applied)) {
    out[k] = e.chunks
      ? [e.accepted, e.duplicates, e.late, e.at, e.chunks]
      : [e.accepted, e.duplicates, e.late, e.at];
  }
  return JSON.stringify(out);
}

function decodeApplied(text: string): Record<string, AppliedEntry> {
  const out: Record<string, AppliedEntry> = {};
  for (const [k, v] of Object.entries(JSON.parse(text) as Record<string, number[] | AppliedEntry>)) {
    if (!Array.isArray(v)) {
      out[k] = v; // the first format, spelled out
      continue;
    }
    const [accepted = 0, duplicates = 0, late = 0, at = 0, chunks] = v;
    out[k] = { accepted, duplicates, late, at, ...(chunks ? { chunks } : {}) };
  }
  return out;
}

/** Numbers that may be infinite are stored as strings (`-Infinity` parses back). */
const encodeNum = (n: number): string => String(n);
const decodeNum = (v: unknown, fallback: number): number =>
  v === undefined || v === null ? fallback : Number(v);

/** Size DynamoDB bills for an item, approximately: attribute names plus values. */
export function itemBytes(item: Item): number {
  let n = 0;
  for (const [k, v] of Object.entries(item)) {
    n += Buffer.byteLength(k);
    if (typeof v === 'string') n += Buffer.byteLength(v);
    else if (typeof v === 'number') n += 8;
    else if (typeof v === 'boolean') n += 1;
    else if (v && typeof v === 'object') n += Buffer.byteLength(JSON.stringify(v));
  }
  return n;
}

export interface DynamoStateStoreOptions {
  readonly table: string;
  readonly expiryShards: number;
}

export class DynamoStateStore {
  readonly usage: DynamoUsage = { readUnits: 0, writeUnits: 0, indexWriteUnits: 0, reads: 0, writes: 0 };
  private readonly table: string;
  readonly expiryShards: number;

  constructor(
    private readonly client: DynamoDBDocumentClient,
    options: DynamoStateStoreOptions,
  ) {
    this.table = options.table;
    this.expiryShards = options.expiryShards;
  }

  private async send<T>(what: string, kind: 'read' | 'write', run: () => Promise<T>): Promise<T> {
    try {
      const out = await run();
      const consumed = (
        out as { ConsumedCapacity?: { CapacityUnits?: number } | { CapacityUnits?: number }[] }
      ).ConsumedCapacity;
      const units = Array.isArray(consumed)
        ? consumed.reduce((a, c) => a + (c.CapacityUnits ?? 0), 0)
        : (consumed?.CapacityUnits ?? 0);
      if (kind === 'read') {
        this.usage.reads++;
        this.usage.readUnits += units;
      } else {
        this.usage.writes++;
        this.usage.writeUnits += units;
      }
      return out;
    } catch (error) {
      throw translateAwsError(error, `dynamodb:${this.table}/${what}`);
    }
  }

  /** Query read units are not reported by every server: count them from item sizes (4 KB units, strong reads). */
  private countQuery(items: Item[]): void {
    const bytes = items.reduce((a, i) => a + itemBytes(i), 0);
    this.usage.readUnits += Math.max(1, Math.ceil(bytes / 4096));
  }

  // ---- checkpoint -------------------------------------------------------------------------------------------

  async getCheckpoint(): Promise<Checkpoint> {
    const out = await this.send('checkpoint', 'read', () =>
      this.client.send(
        new GetCommand({
          TableName: this.table,
          Key: { pk: 'checkpoint', sk: 'checkpoint' },
          ConsistentRead: true,
          ReturnConsumedCapacity: 'TOTAL',
        }),
      ),
    );
    const item = out.Item ?? {};
    return {
      watermark: decodeNum(item.wm, Number.NEGATIVE_INFINITY),
      maxVisitTime: decodeNum(item.maxT, Number.NEGATIVE_INFINITY),
      advancedAt: decodeNum(item.advancedAt, 0),
    };
  }

  /** Moves the watermark forward to `watermark` if it is behind it. Returns false when it was not behind. */
  async advanceWatermark(watermark: number, maxVisitTime: number, now: number): Promise<boolean> {
    if (!Number.isFinite(watermark)) return false;
    try {
      await this.send('checkpoint', 'write', () =>
        this.client.send(
          new UpdateCommand({
            TableName: this.table,
            Key: { pk: 'checkpoint', sk: 'checkpoint' },
            ...updateParts(
              'SET @wm = :w, @advancedAt = :now, @maxT = :m',
              'attribute_not_exists(@wm) OR @wm < :w',
            ),
            ExpressionAttributeValues: { ':w': watermark, ':now': now, ':m': maxVisitTime },
            ReturnConsumedCapacity: 'TOTAL',
          }),
        ),
      );
      return true;
    } catch (error) {
      if (error instanceof ConflictError) return false;
      throw error;
    }
  }

  async getCursor(): Promise<string | undefined> {
    const out = await this.send('cursor', 'read', () =>
      this.client.send(
        new GetCommand({ TableName: this.table, Key: { pk: 'catchup', sk: 'cursor' }, ConsistentRead: true }),
      ),
    );
    const after = out.Item?.after;
    return typeof after === 'string' && after !== '' ? after : undefined;
  }

  async setCursor(after: string | undefined, now: number): Promise<void> {
    await this.send('cursor', 'write', () =>
      this.client.send(
        new PutCommand({
          TableName: this.table,
          Item: { pk: 'catchup', sk: 'cursor', after: after ?? '', updatedAt: now },
          ReturnConsumedCapacity: 'TOTAL',
        }),
      ),
    );
  }

  // ---- object markers ---------------------------------------------------------------------------------------

  private static toMarker(item: Item): ObjectMarker {
    return {
      id: String(item.id),
      bucket: String(item.bucket),
      key: String(item.key),
      etag: String(item.etag),
      status: item.st === 'done' ? 'done' : 'in-progress',
      leaseUntil: decodeNum(item.lease, 0),
      watermarkBefore: decodeNum(item.wb, Number.NEGATIVE_INFINITY),
      claimedAt: decodeNum(item.claimedAt, 0),
      attempts: decodeNum(item.attempts, 0),
      ...(typeof item.outcome === 'string' ? { outcome: item.outcome } : {}),
      ...(item.counts ? { counts: item.counts as MarkerCounts } : {}),
    };
  }

  async getMarker(id: string): Promise<ObjectMarker | undefined> {
    const out = await this.send(`object#${id}`, 'read', () =>
      this.client.send(
        new GetCommand({
          TableName: this.table,
          Key: { pk: `object#${id}`, sk: 'object' },
          ConsistentRead: true,
          ReturnConsumedCapacity: 'TOTAL',
        }),
      ),
    );
    return out.Item ? DynamoStateStore.toMarker(out.Item) : undefined;
  }

  async getMarkers(ids: readonly string[]): Promise<Map<string, ObjectMarker>> {
    const found = new Map<string, ObjectMarker>();
    for (let i = 0; i < ids.length; i += 100) {
      let keys: Record<string, unknown>[] | undefined = ids
        .slice(i, i + 100)
        .map((id) => ({ pk: `object#${id}`, sk: 'object' }));
      for (let round = 0; keys && keys.length > 0; round++) {
        const request = keys;
        const out = await this.send('objects', 'read', () =>
          this.client.send(
            new BatchGetCommand({
              RequestItems: { [this.table]: { Keys: request, ConsistentRead: true } },
              ReturnConsumedCapacity: 'TOTAL',
            }),
          ),
        );
        for (const item of out.Responses?.[this.table] ?? []) {
          const marker = DynamoStateStore.toMarker(item);
          found.set(marker.id, marker);
        }
        keys = out.UnprocessedKeys?.[this.table]?.Keys as Record<string, unknown>[] | undefined;
        if (keys && keys.length > 0) await new Promise((r) => setTimeout(r, Math.min(1000, 20 * 2 ** round)));
      }
    }
    return found;
  }

  /**
   * Claims an object for processing: creates its marker, or takes over an in-progress one whose lease ran out.
   * The watermark before the batch is kept from the first claim. Throws ConflictError when the object is done or
   * another invocation holds the lease.
   */
  async claimMarker(
    marker: { id: string; bucket: string; key: string; etag: string },
    now: number,
    leaseMs: number,
    watermarkBefore: number,
  ): Promise<ObjectMarker> {
    const out = await this.send(`object#${marker.id}`, 'write', () =>
      this.client.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { pk: `object#${marker.id}`, sk: 'object' },
          ...updateParts(
            'SET @id = :id, @bucket = :b, @key = :k, @etag = :e, @st = :ip, @lease = :lease, ' +
              '@wb = if_not_exists(@wb, :wb), @claimedAt = if_not_exists(@claimedAt, :now), ' +
              '@attempts = if_not_exists(@attempts, :zero) + :one',
            'attribute_not_exists(@pk) OR (@st = :ip AND @lease < :now)',
          ),
          ExpressionAttributeValues: {
            ':id': marker.id,
            ':b': marker.bucket,
            ':k': marker.key,
            ':e': marker.etag,
            ':ip': 'in-progress',
            ':lease': now + leaseMs,
            ':wb': encodeNum(watermarkBefore),
            ':now': now,
            ':zero': 0,
            ':one': 1,
          },
          ReturnValues: 'ALL_NEW',
          ReturnConsumedCapacity: 'TOTAL',
        }),
      ),
    );
    return DynamoStateStore.toMarker(out.Attributes ?? {});
  }

  /** Gives up an object's lease at once (after a failure), so the retry need not wait for it. Best effort. */
  async releaseMarker(id: string): Promise<void> {
    await this.send(`object#${id}`, 'write', () =>
      this.client.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { pk: `object#${id}`, sk: 'object' },
          ...updateParts('SET @lease = :zero', '@st = :ip'),
          ExpressionAttributeValues: { ':zero': 0, ':ip': 'in-progress' },
        }),
      ),
    );
  }

  /** Marks a claimed object done with its counters. Idempotent. */
  async completeMarker(id: string, outcome: string, counts: MarkerCounts, ttlSeconds: number): Promise<void> {
    try {
      await this.send(`object#${id}`, 'write', () =>
        this.client.send(
          new UpdateCommand({
            TableName: this.table,
            Key: { pk: `object#${id}`, sk: 'object' },
            ...updateParts(
              `SET @st = :done, @outcome = :o, @counts = :c, @doneAt = :now, @${TTL_ATTRIBUTE} = :ttl REMOVE @lease`,
              'attribute_exists(@pk)',
            ),
            ExpressionAttributeValues: {
              ':done': 'done',
              ':o': outcome,
              ':c': counts,
              ':now': Date.now(),
              ':ttl': ttlSeconds,
            },
            ReturnConsumedCapacity: 'TOTAL',
          }),
        ),
      );
    } catch (error) {
      if (error instanceof ConflictError) return;
      throw error;
    }
  }

  // ---- users ------------------------------------------------------------------------------------------------

  /**
   * Reads a user's head and visit chunks (one strongly consistent query over the user's partition). A chunk item
   * counts only once committed: its `commit#` item exists, or the head's applied entry of the segment that wrote it
   * says so (the commit item is written right after the head). Others are leftovers of a failed write: ignored.
   */
  async readUser(userId: string): Promise<UserRead> {
    const items = await this.queryAll(`user#${userId}`, `user#${userId}`);
    let head: UserHead = emptyHead(userId);
    const chunks = new Map<string, PageVisit[]>();
    const refs = new Map<string, ChunkRef>();
    const commits = new Set<string>();
    for (const item of items) {
      const sk = String(item.sk);
      if (sk === 'head') {
        head = {
          userId,
          version: Number(item.ver),
          inline: decodeVisits(item.iv),
          chunks: [],
          closedThrough: decodeNum(item.ct, Number.NEGATIVE_INFINITY),
          applied: item.ap ? decodeApplied(String(item.ap)) : {},
          closing: item.cl ? (JSON.parse(String(item.cl)) as ClosingMark) : null,
          indexed:
            typeof item[EXPIRY_INDEX.sortKey] === 'number' ? (item[EXPIRY_INDEX.sortKey] as number) : null,
        };
      } else if (sk.startsWith('chunk#')) {
        const id = sk.slice('chunk#'.length);
        chunks.set(id, decodeVisits(item.v));
        refs.set(id, { id, min: Number(item.min), max: Number(item.max), count: Number(item.n) });
      } else if (sk.startsWith('commit#')) {
        commits.add(sk.slice('commit#'.length));
      }
    }
    const committed = new Set(commits);
    for (const [key, entry] of Object.entries(head.applied)) {
      for (let i = 0; i < (entry.chunks ?? 0); i++) committed.add(chunkId(key, i));
    }
    const live = [...refs.values()].filter((r) => committed.has(r.id)).sort((a, b) => a.min - b.min);
    return {
      head: { ...head, chunks: live },
      chunks,
      commits,
      orphans: [...refs.keys()].filter((id) => !committed.has(id)),
    };
  }

  /**
   * Writes a user's head if its version is still `expected` (0: must not exist). `expiresAt` null removes the
   * user from the expiry index. Throws ConflictError when another writer got there first.
   */
  async writeHead(head: UserHead, expected: number, expiresAt: number | null, shard: number): Promise<void> {
    const item: Item = {
      pk: `user#${head.userId}`,
      sk: 'head',
      ver: expected + 1,
      iv: encodeVisits(head.inline),
    };
    if (Number.isFinite(head.closedThrough)) item.ct = encodeNum(head.closedThrough);
    if (Object.keys(head.applied).length > 0) item.ap = encodeApplied(head.applied);
    if (head.closing) item.cl = JSON.stringify(head.closing);
    if (expiresAt !== null) {
      item[EXPIRY_INDEX.partitionKey] = `exp#${shard}`;
      item[EXPIRY_INDEX.sortKey] = expiresAt;
    }
    if (head.indexed !== expiresAt) {
      // an index entry is put, deleted, or both when its key changes
      const units = (head.indexed !== null ? 1 : 0) + (expiresAt !== null ? 1 : 0);
      this.usage.indexWriteUnits += units;
      this.usage.writeUnits += units;
    }
    await this.send(`user#${head.userId}`, 'write', () =>
      this.client.send(
        new PutCommand({
          TableName: this.table,
          Item: item,
          ...(expected === 0
            ? { ConditionExpression: 'attribute_not_exists(pk)' }
            : {
                ConditionExpression: '#ver = :v',
                ExpressionAttributeNames: { '#ver': 'ver' },
                ExpressionAttributeValues: { ':v': expected },
              }),
          ReturnConsumedCapacity: 'TOTAL',
        }),
      ),
    );
  }

  /** Writes a chunk of visits (sorted, non-empty). It counts once committed (see readUser). */
  async putChunk(userId: string, id: string, visits: readonly PageVisit[]): Promise<void> {
    await this.send(`user#${userId}/chunk#${id}`, 'write', () =>
      this.client.send(
        new PutCommand({
          TableName: this.table,
          Item: {
            pk: `user#${userId}`,
            sk: `chunk#${id}`,
            v: encodeVisits(visits),
            min: visits[0]!.t,
            max: visits[visits.length - 1]!.t,
            n: visits.length,
          },
          ReturnConsumedCapacity: 'TOTAL',
        }),
      ),
    );
  }

  /** Marks a chunk committed (a tiny item, so the head never lists its chunks). */
  async putCommit(userId: string, id: string): Promise<void> {
    await this.send(`user#${userId}/commit#${id}`, 'write', () =>
      this.client.send(
        new PutCommand({
          TableName: this.table,
          Item: { pk: `user#${userId}`, sk: `commit#${id}` },
          ReturnConsumedCapacity: 'TOTAL',
        }),
      ),
    );
  }

  /** Deletes a chunk and its commit item (commit first: a chunk without one is never read). */
  async deleteChunk(userId: string, id: string): Promise<void> {
    for (const sk of [`commit#${id}`, `chunk#${id}`]) {
      await this.send(`user#${userId}/${sk}`, 'write', () =>
        this.client.send(
          new DeleteCommand({
            TableName: this.table,
            Key: { pk: `user#${userId}`, sk },
            ReturnConsumedCapacity: 'TOTAL',
          }),
        ),
      );
    }
  }

  /** Users whose expiry is below `watermark` in one shard of the expiry index. */
  async dueUsers(shard: number, watermark: number): Promise<string[]> {
    const users: string[] = [];
    let start: Record<string, unknown> | undefined;
    const bound = Number.isFinite(watermark) ? watermark : Number.MAX_SAFE_INTEGER;
    do {
      const exclusiveStart = start;
      const out = await this.send(`${EXPIRY_INDEX.name}/exp#${shard}`, 'read', () =>
        this.client.send(
          new QueryCommand({
            TableName: this.table,
            IndexName: EXPIRY_INDEX.name,
            KeyConditionExpression: '#s = :s AND #e < :w',
            ExpressionAttributeNames: { '#s': EXPIRY_INDEX.partitionKey, '#e': EXPIRY_INDEX.sortKey },
            ExpressionAttributeValues: { ':s': `exp#${shard}`, ':w': bound },
            ...(exclusiveStart ? { ExclusiveStartKey: exclusiveStart } : {}),
          }),
        ),
      );
      const items = out.Items ?? [];
      this.countQuery(items);
      for (const item of items) users.push(String(item.pk).slice('user#'.length));
      start = out.LastEvaluatedKey;
    } while (start);
    return users;
  }

  // ---- late visits of a batch segment -----------------------------------------------------------------------

  async putLate(applyKey: string, userId: string, late: readonly StoredLate[]): Promise<void> {
    const rows = late.map((l) => [l.t, l.page, l.line, encodeNum(l.watermark)]);
    for (const [n, part] of splitBySize(rows, (r) => Buffer.byteLength(String(r[1])) + 60).entries()) {
      await this.send(`late#${applyKey}`, 'write', () =>
        this.client.send(
          new PutCommand({
            TableName: this.table,
            Item: {
              pk: `late#${applyKey}`,
              sk: `${userId}#${n}`,
              u: userId,
              v: JSON.stringify(part),
              // staging only: written to late-visits/ by the same batch; DynamoDB TTL removes it in the cloud
              [TTL_ATTRIBUTE]: Math.floor(Date.now() / 1000) + LATE_TTL_SECONDS,
            },
            ReturnConsumedCapacity: 'TOTAL',
          }),
        ),
      );
    }
  }

  async queryLate(applyKey: string): Promise<StoredLate[]> {
    const items = await this.queryAll(`late#${applyKey}`, `late#${applyKey}`);
    const out: StoredLate[] = [];
    for (const item of items) {
      for (const [t, page, line, wm] of JSON.parse(String(item.v)) as [number, string, number, string][]) {
        out.push({ userId: String(item.u), t, page, line, watermark: Number(wm) });
      }
    }
    return out;
  }

  // ---- closing records --------------------------------------------------------------------------------------

  async getClosing(run: string): Promise<ClosingRecord | undefined> {
    const items = await this.queryAll(`closing#${run}`, `closing#${run}`);
    const head = items.find((i) => i.sk === 'head');
    if (!head) return undefined;
    const users = items
      .filter((i) => typeof i.sk === 'string' && i.sk.startsWith('page#'))
      .flatMap((i) => JSON.parse(String(i.users)) as string[]);
    return {
      run,
      watermark: decodeNum(head.wm, Number.POSITIVE_INFINITY),
      startedAt: decodeNum(head.startedAt, 0),
      leaseUntil: decodeNum(head.lease, 0),
      written: head.written === true,
      sessions: decodeNum(head.sessions, 0),
      users,
    };
  }

  /**
   * Takes ownership of a closing run: creates its head when `expectedLease` is undefined, or takes it over when its
   * lease is still `expectedLease` (and ran out). Throws ConflictError when someone else holds or took it.
   */
  async claimClosing(
    run: string,
    watermark: number,
    now: number,
    leaseMs: number,
    expectedLease: number | undefined,
  ): Promise<void> {
    await this.send(`closing#${run}`, 'write', () =>
      this.client.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { pk: `closing#${run}`, sk: 'head' },
          ...updateParts(
            'SET @lease = :lease, @wm = if_not_exists(@wm, :wm), @startedAt = if_not_exists(@startedAt, :now), ' +
              '@written = if_not_exists(@written, :f)',
            expectedLease === undefined ? 'attribute_not_exists(@pk)' : '@lease = :old AND @lease < :now',
          ),
          ExpressionAttributeValues: {
            ':lease': now + leaseMs,
            ':wm': encodeNum(watermark),
            ':now': now,
            ':f': false,
            ...(expectedLease === undefined ? {} : { ':old': expectedLease }),
          },
          ReturnConsumedCapacity: 'TOTAL',
        }),
      ),
    );
  }

  /** Gives up a closing run's lease at once (on a failure), so a retry need not wait for it. Best effort. */
  async releaseClosing(run: string): Promise<void> {
    await this.send(`closing#${run}`, 'write', () =>
      this.client.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { pk: `closing#${run}`, sk: 'head' },
          ...updateParts('SET @lease = :zero', 'attribute_exists(@pk)'),
          ExpressionAttributeValues: { ':zero': 0 },
        }),
      ),
    );
  }

  /** Writes a closing run's user list (in pages). Writing it again with more users replaces the pages. */
  async putClosingUsers(run: string, users: readonly string[]): Promise<void> {
    for (const [p, part] of splitBySize(users, (u) => Buffer.byteLength(u) + 3).entries()) {
      await this.send(`closing#${run}`, 'write', () =>
        this.client.send(
          new PutCommand({
            TableName: this.table,
            Item: {
              pk: `closing#${run}`,
              sk: `page#${String(p).padStart(5, '0')}`,
              users: JSON.stringify(part),
            },
            ReturnConsumedCapacity: 'TOTAL',
          }),
        ),
      );
    }
  }

  async markClosingWritten(run: string, sessions: number): Promise<void> {
    await this.send(`closing#${run}`, 'write', () =>
      this.client.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { pk: `closing#${run}`, sk: 'head' },
          ...updateParts('SET @written = :t, @sessions = :n', 'attribute_exists(@pk)'),
          ExpressionAttributeValues: { ':t': true, ':n': sessions },
          ReturnConsumedCapacity: 'TOTAL',
        }),
      ),
    );
  }

  async deleteClosing(run: string): Promise<void> {
    const items = await this.queryAll(`closing#${run}`, `closing#${run}`);
    // pages first, head last: a crash in between leaves a head whose run is then finished again (a no-op)
    for (const item of [...items].sort((a, b) => (a.sk === 'head' ? 1 : b.sk === 'head' ? -1 : 0))) {
      await this.send(`closing#${run}`, 'write', () =>
        this.client.send(
          new DeleteCommand({
            TableName: this.table,
            Key: { pk: item.pk, sk: item.sk },
            ReturnConsumedCapacity: 'TOTAL',
          }),
        ),
      );
    }
  }

  // ---- listing for status and the CLI -----------------------------------------------------------------------

  /** Every item whose partition key starts with `prefix` (a full table scan: for operators, not the hot path). */
  private async scanPrefix(prefix: string, sk?: string): Promise<Item[]> {
    const items: Item[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const exclusiveStart = start;
      const out = await this.send(`scan ${prefix}`, 'read', () =>
        this.client.send(
          new ScanCommand({
            TableName: this.table,
            FilterExpression: sk ? 'begins_with(#pk, :p) AND #sk = :sk' : 'begins_with(#pk, :p)',
            ExpressionAttributeNames: { '#pk': 'pk', ...(sk ? { '#sk': 'sk' } : {}) },
            ExpressionAttributeValues: { ':p': prefix, ...(sk ? { ':sk': sk } : {}) },
            ConsistentRead: true,
            ...(exclusiveStart ? { ExclusiveStartKey: exclusiveStart } : {}),
          }),
        ),
      );
      items.push(...(out.Items ?? []));
      start = out.LastEvaluatedKey;
    } while (start);
    return items;
  }

  /** Ids of every user with a head item. */
  async listUsers(): Promise<string[]> {
    const items = await this.scanPrefix('user#', 'head');
    return items.map((i) => String(i.pk).slice('user#'.length)).sort();
  }

  /** Every object marker. */
  async listMarkers(): Promise<ObjectMarker[]> {
    const items = await this.scanPrefix('object#', 'object');
    return items.map((i) => ({ ...DynamoStateStore.toMarker(i), doneAt: decodeNum(i.doneAt, 0) }));
  }

  private async queryAll(pk: string, what: string): Promise<Item[]> {
    const items: Item[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const exclusiveStart = start;
      const out = await this.send(what, 'read', () =>
        this.client.send(
          new QueryCommand({
            TableName: this.table,
            KeyConditionExpression: 'pk = :pk',
            ExpressionAttributeValues: { ':pk': pk },
            ConsistentRead: true,
            ...(exclusiveStart ? { ExclusiveStartKey: exclusiveStart } : {}),
          }),
        ),
      );
      const page = out.Items ?? [];
      this.countQuery(page);
      items.push(...page);
      start = out.LastEvaluatedKey;
    } while (start);
    return items;
  }
}
