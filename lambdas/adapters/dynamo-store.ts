/**
 * The state store on DynamoDB: each method one single-item call (or a batch read), every write conditional where the
 * protocol needs it, no transactions and no index, so it runs the same on dynalite and on AWS. The parts' bytes are
 * kept apart ({@link PartObjects}: S3). Capacity is counted from what DynamoDB returns, or by its own rounding where a
 * server omits it. SDK errors are translated here.
 */
import {
  BatchGetCommand,
  type BatchGetCommandOutput,
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import type { LogEntry } from '../core/log.ts';
import type { Layout, ObjectClaim, ShardHead } from '../pipeline/records.ts';
import { CLAIM_RETENTION_DAYS, emptyHead } from '../pipeline/records.ts';
import { type PartObjects, StateStore } from '../pipeline/state-store.ts';
import { ConflictError, translateAwsError } from './errors.ts';
import {
  claimItem,
  claimOf,
  entryItem,
  entryOf,
  headItem,
  headOf,
  type Item,
  itemBytes,
  KEYS,
  layoutItem,
  layoutOf,
} from './state-items.ts';

export interface DynamoStoreOptions {
  readonly table: string;
  /** Where the parts' bytes are kept (S3 in the handler: {@link S3PartObjects}). */
  readonly parts: PartObjects;
  /** Bytes of parts kept in memory across invocations. @default 64 MiB */
  readonly partCacheBytes?: number;
  /** Wall clock (seconds of the TTL). */
  readonly now?: () => number;
}

type Consumed = { CapacityUnits?: number } | { CapacityUnits?: number }[] | undefined;

const units = (consumed: Consumed): number | undefined => {
  if (consumed === undefined) return undefined;
  const list = Array.isArray(consumed) ? consumed : [consumed];
  return list.reduce((a, c) => a + (c.CapacityUnits ?? 0), 0);
};

/** Write units DynamoDB bills for an item: 1 per KB, at least 1. */
const writeUnits = (item: Item): number => Math.max(1, Math.ceil(itemBytes(item) / 1024));
/** Read units of items read together: 1 per 4 KB (strong), half for an eventually consistent read. */
const readUnits = (items: Item[], consistent: boolean): number => {
  const n = Math.max(1, Math.ceil(items.reduce((a, i) => a + itemBytes(i), 0) / 4096));
  return consistent ? n : n / 2;
};

export class DynamoStateStore extends StateStore {
  private readonly table: string;
  private readonly now: () => number;

  constructor(
    private readonly client: DynamoDBDocumentClient,
    options: DynamoStoreOptions,
  ) {
    super(options.parts, options.partCacheBytes);
    this.table = options.table;
    this.now = options.now ?? Date.now;
  }

  /** Runs a read, counting its units (returned, or estimated from the items). */
  private async read<T extends { ConsumedCapacity?: Consumed }>(
    what: string,
    call: () => Promise<T>,
    items: (out: T) => Item[],
    consistent: boolean,
  ): Promise<T> {
    try {
      const out = await call();
      this.usage.reads++;
      this.usage.readUnits += units(out.ConsumedCapacity) ?? readUnits(items(out), consistent);
      return out;
    } catch (error) {
      throw translateAwsError(error, `dynamodb:${this.table}/${what}`);
    }
  }

  /** Runs a conditional write: true when written, false when its condition failed (billed all the same). */
  private async write(what: string, item: Item, call: () => Promise<{ ConsumedCapacity?: Consumed }>) {
    this.usage.writes++;
    try {
      const out = await call();
      this.usage.writeUnits += units(out.ConsumedCapacity) ?? writeUnits(item);
      return true;
    } catch (error) {
      const translated = translateAwsError(error, `dynamodb:${this.table}/${what}`);
      if (!(translated instanceof ConflictError)) throw translated;
      this.usage.writeUnits += writeUnits(item);
      this.usage.conditionFailures++;
      return false;
    }
  }

  private async getItem(key: Item, consistent = true): Promise<Item | undefined> {
    const out = await this.read(
      `${key.pk}/${key.sk}`,
      () =>
        this.client.send(
          new GetCommand({
            TableName: this.table,
            Key: key,
            ConsistentRead: consistent,
            ReturnConsumedCapacity: 'TOTAL',
          }),
        ),
      (o) => (o.Item ? [o.Item] : []),
      consistent,
    );
    return out.Item;
  }

  private putIfAbsent(item: Item): Promise<boolean> {
    return this.write(`${item.pk}/${item.sk}`, item, () =>
      this.client.send(
        new PutCommand({
          TableName: this.table,
          Item: item,
          ConditionExpression: 'attribute_not_exists(pk)',
          ReturnConsumedCapacity: 'TOTAL',
        }),
      ),
    );
  }

  /** Every item of a strongly consistent batch read (unprocessed keys retried with backoff), in no particular order. */
  private async batchGet(keys: Item[]): Promise<Item[]> {
    const found: Item[] = [];
    for (let i = 0; i < keys.length; i += 40) {
      let pending: Item[] | undefined = keys.slice(i, i + 40);
      for (let round = 0; pending && pending.length > 0; round++) {
        const request: Item[] = pending;
        const out: BatchGetCommandOutput = await this.read(
          'batch',
          () =>
            this.client.send(
              new BatchGetCommand({
                RequestItems: { [this.table]: { Keys: request, ConsistentRead: true } },
                ReturnConsumedCapacity: 'TOTAL',
              }),
            ),
          (o) => o.Responses?.[this.table] ?? [],
          true,
        );
        found.push(...(out.Responses?.[this.table] ?? []));
        pending = out.UnprocessedKeys?.[this.table]?.Keys as Item[] | undefined;
        if (pending && pending.length > 0)
          await new Promise((r) => setTimeout(r, Math.min(1000, 20 * 2 ** round)));
      }
    }
    return found;
  }

  // ---- layout ------------------------------------------------------------------------------------------------

  protected async getLayoutRecord(): Promise<Layout | undefined> {
    const item = await this.getItem(KEYS.layout);
    return item ? layoutOf(item) : undefined;
  }

  protected putLayoutRecord(layout: Layout): Promise<boolean> {
    return this.putIfAbsent(layoutItem(layout));
  }

  async hasLegacyState(): Promise<boolean> {
    return (await this.getItem(KEYS.legacyCheckpoint)) !== undefined;
  }

  // ---- claims ------------------------------------------------------------------------------------------------

  async getClaim(id: string): Promise<ObjectClaim | undefined> {
    const item = await this.getItem(KEYS.claim(id));
    return item ? claimOf(id, item) : undefined;
  }

  putClaim(claim: ObjectClaim): Promise<boolean> {
    const ttl = Math.floor(this.now() / 1000) + CLAIM_RETENTION_DAYS * 86_400;
    return this.putIfAbsent(claimItem(claim, ttl));
  }

  protected putClaimSeq(id: string, seq: number, expected: number | undefined): Promise<boolean> {
    const key = KEYS.claim(id);
    return this.write(`${key.pk}/claim`, { ...key, seq }, () =>
      this.client.send(
        new UpdateCommand({
          TableName: this.table,
          Key: key,
          UpdateExpression: 'SET #seq = :seq',
          ConditionExpression:
            expected === undefined
              ? 'attribute_exists(pk) AND attribute_not_exists(#seq)'
              : '#seq = :expected',
          ExpressionAttributeNames: { '#seq': 'seq' },
          ExpressionAttributeValues: {
            ':seq': seq,
            ...(expected === undefined ? {} : { ':expected': expected }),
          },
          ReturnConsumedCapacity: 'TOTAL',
        }),
      ),
    );
  }

  async setClaimLogged(id: string): Promise<void> {
    const key = KEYS.claim(id);
    await this.write(`${key.pk}/claim`, { ...key, logged: true }, () =>
      this.client.send(
        new UpdateCommand({
          TableName: this.table,
          Key: key,
          UpdateExpression: 'SET #logged = :yes',
          ExpressionAttributeNames: { '#logged': 'logged' },
          ExpressionAttributeValues: { ':yes': true },
          ReturnConsumedCapacity: 'TOTAL',
        }),
      ),
    );
  }

  async getClaims(ids: readonly string[]): Promise<Map<string, ObjectClaim>> {
    const items = await this.batchGet(ids.map((id) => KEYS.claim(id)));
    const out = new Map<string, ObjectClaim>();
    for (const item of items) {
      const id = String(item.pk).slice('claim#'.length);
      out.set(id, claimOf(id, item));
    }
    return out;
  }

  async getCursor(): Promise<string | undefined> {
    const item = await this.getItem(KEYS.cursor);
    return typeof item?.after === 'string' && item.after !== '' ? item.after : undefined;
  }

  async setCursor(after: string | undefined, now: number): Promise<void> {
    const item = { ...KEYS.cursor, after: after ?? '', at: now };
    await this.write('cursor', item, () =>
      this.client.send(
        new PutCommand({ TableName: this.table, Item: item, ReturnConsumedCapacity: 'TOTAL' }),
      ),
    );
  }

  // ---- the log -----------------------------------------------------------------------------------------------

  private async queryLog(input: {
    from?: number;
    to?: number;
    newestFirst?: boolean;
    limit?: number;
  }): Promise<LogEntry[]> {
    const entries: LogEntry[] = [];
    let start: Item | undefined;
    const range = input.from !== undefined && input.to !== undefined;
    do {
      const out = await this.read(
        'log',
        () =>
          this.client.send(
            new QueryCommand({
              TableName: this.table,
              KeyConditionExpression: range ? 'pk = :pk AND sk BETWEEN :from AND :to' : 'pk = :pk',
              ExpressionAttributeValues: {
                ':pk': KEYS.logPk,
                ...(range ? { ':from': KEYS.logSk(input.from!), ':to': KEYS.logSk(input.to!) } : {}),
              },
              ConsistentRead: true,
              ScanIndexForward: !input.newestFirst,
              ...(input.limit ? { Limit: input.limit } : {}),
              ...(start ? { ExclusiveStartKey: start } : {}),
              ReturnConsumedCapacity: 'TOTAL',
            }),
          ),
        (o) => o.Items ?? [],
        true,
      );
      for (const item of out.Items ?? []) entries.push(entryOf(item));
      start = input.limit && entries.length >= input.limit ? undefined : out.LastEvaluatedKey;
    } while (start);
    return entries;
  }

  async lastEntry(): Promise<LogEntry | undefined> {
    return (await this.queryLog({ newestFirst: true, limit: 1 }))[0];
  }

  async getEntry(seq: number): Promise<LogEntry | undefined> {
    const item = await this.getItem({ pk: KEYS.logPk, sk: KEYS.logSk(seq) });
    return item ? entryOf(item) : undefined;
  }

  readEntries(from: number, to: number): Promise<LogEntry[]> {
    if (to < from) return Promise.resolve([]);
    return this.queryLog({ from, to });
  }

  protected putEntry(entry: LogEntry): Promise<boolean> {
    return this.putIfAbsent(entryItem(entry));
  }

  // ---- heads and parts ---------------------------------------------------------------------------------------

  async getHeads(shards: readonly number[]): Promise<ShardHead[]> {
    const items = await this.batchGet(shards.map((s) => KEYS.head(s)));
    const byPk = new Map(items.map((i) => [String(i.pk), i]));
    return shards.map((s) => {
      const item = byPk.get(KEYS.head(s).pk);
      return item ? headOf(s, item) : emptyHead(s);
    });
  }

  protected putHead(head: ShardHead, expected: number): Promise<boolean> {
    const item = headItem(head);
    return this.write(`shard#${head.shard}/head`, item, () =>
      this.client.send(
        new PutCommand({
          TableName: this.table,
          Item: item,
          ConditionExpression: expected === 0 ? 'attribute_not_exists(pk)' : '#v = :expected',
          ...(expected === 0
            ? {}
            : {
                ExpressionAttributeNames: { '#v': 'headVersion' },
                ExpressionAttributeValues: { ':expected': expected },
              }),
          ReturnConsumedCapacity: 'TOTAL',
        }),
      ),
    );
  }

  protected putPublished(shard: number, version: number): Promise<boolean> {
    const key = KEYS.head(shard);
    return this.write(`shard#${shard}/head`, { ...key, unpublished: false }, () =>
      this.client.send(
        new UpdateCommand({
          TableName: this.table,
          Key: key,
          UpdateExpression: 'SET #u = :no',
          ConditionExpression: '#v = :version',
          ExpressionAttributeNames: { '#u': 'unpublished', '#v': 'headVersion' },
          ExpressionAttributeValues: { ':no': false, ':version': version },
          ReturnConsumedCapacity: 'TOTAL',
        }),
      ),
    );
  }
}
