/**
 * Table access of the migration beyond the layout-2 store's own calls: a full, paged, strongly consistent scan; the
 * removal of what an unfinished earlier run wrote; and the layout record, created last and directly (the store's
 * `layout()` refuses a table that still holds the first layout's checkpoint, which migrate leaves in place).
 */
import { BatchWriteCommand, type DynamoDBDocumentClient, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { DynamoStateStore } from '../../lambdas/adapters/dynamo-store.ts';
import { KEYS } from '../../lambdas/adapters/state-items.ts';
import { LAYOUT_VERSION, type Layout } from '../../lambdas/pipeline/records.ts';
import type { Item } from './v1-items.ts';

/** Every item of the table, page by page (strongly consistent). */
export async function scanTable(
  ddb: DynamoDBDocumentClient,
  table: string,
  onPage: (items: readonly Item[]) => void,
): Promise<void> {
  let start: Item | undefined;
  do {
    const out = await ddb.send(
      new ScanCommand({
        TableName: table,
        ConsistentRead: true,
        ...(start ? { ExclusiveStartKey: start } : {}),
      }),
    );
    onPage(out.Items ?? []);
    start = out.LastEvaluatedKey;
  } while (start);
}

/** The layout record (lambdas/adapters/state-items.ts). */
export function isLayoutItem(item: Item): boolean {
  return item.pk === KEYS.layout.pk && item.sk === KEYS.layout.sk;
}

/** Items of layout 2 other than the layout record: claims, log entries, shard heads and parts, the cursor. */
export function isLayout2Item(item: Item): boolean {
  const pk = String(item.pk);
  return pk === KEYS.logPk || pk === KEYS.cursor.pk || pk.startsWith('claim#') || pk.startsWith('shard#');
}

/** Deletes items by key, 25 a request, unprocessed ones again with backoff. */
export async function deleteItems(
  ddb: DynamoDBDocumentClient,
  table: string,
  items: readonly Item[],
): Promise<void> {
  for (let i = 0; i < items.length; i += 25) {
    let pending: Item[] = items
      .slice(i, i + 25)
      .map((item) => ({ DeleteRequest: { Key: { pk: item.pk, sk: item.sk } } }));
    for (let round = 0; pending.length > 0; round++) {
      if (round > 0) await new Promise((r) => setTimeout(r, Math.min(2000, 20 * 2 ** round)));
      if (round > 12) throw new Error(`${table}: ${pending.length} deletes stayed unprocessed`);
      const out = await ddb.send(new BatchWriteCommand({ RequestItems: { [table]: pending } }));
      pending = (out.UnprocessedItems?.[table] ?? []) as Item[];
    }
  }
}

/** The layout-2 store, with the one call migrate needs that the pipeline never makes: the layout record put as is. */
export class MigrationStore extends DynamoStateStore {
  /** Creates the layout record; undefined when one exists already (another migrate finished first). */
  async createLayout(shards: number, id: string, now: number): Promise<Layout | undefined> {
    const layout: Layout = { version: LAYOUT_VERSION, shards, id, createdAt: now };
    return (await this.putLayoutRecord(layout)) ? layout : undefined;
  }
}
