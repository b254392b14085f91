/**
 * `migrate`: the upgrade of a state table from the first layout ("v1": per-user items, commit 53639eb) to layout 2
 * (object log, shard heads and parts). It reads the v1 items (never changing them), finishes every v1 closing in
 * flight exactly as v1 would have, and writes the layout-2 state: claims of the processed objects, the log's first
 * entry, one snapshot and head per shard, and the layout record last. Until that record exists the function refuses
 * to run on the table (LayoutError), and a migrate that died half-way is redone from the start: what it wrote is
 * deleted first, items and part objects (nothing else writes layout-2 state for a table without a layout record).
 */
import { randomUUID } from 'node:crypto';
import type { Clients } from '../../lambdas/adapters/clients.ts';
import { S3ObjectStore } from '../../lambdas/adapters/s3.ts';
import { S3PartObjects } from '../../lambdas/adapters/s3-parts.ts';
import type { Config } from '../../lambdas/config.ts';
import { type ClosingPlan, orphanedClosings, planClosing } from './closings.ts';
import { appendMigrationEntry, buildShards, commitShards, writeClaims } from './layout2.ts';
import { deleteItems, isLayout2Item, isLayoutItem, MigrationStore, scanTable } from './table.ts';
import { type Item, type V1Counts, type V1Marker, V1Reader, ZERO_V1_COUNTS } from './v1-items.ts';

export { MIGRATION_ENTRY_ID } from './layout2.ts';

/** Migrate refused to run: the table is not in a state it can move (nothing was written). */
export class MigrateError extends Error {
  override readonly name = 'MigrateError';
}

export interface MigrateOptions {
  readonly clients: Clients;
  /** The deployment's configuration: table, output bucket, shards, and the session settings v1 ran with. */
  readonly config: Config;
  /** Wall clock (ms). */
  readonly now?: () => number;
  /** Read and plan only: nothing is written. */
  readonly dryRun?: boolean;
  /** Progress lines. */
  readonly log?: (line: string) => void;
}

export interface ClosingReport {
  readonly run: string;
  /** Users the run froze. */
  readonly users: number;
  readonly sessions: number;
  /** v1 had written its sessions already (only the finalization of its users was left). */
  readonly writtenBefore: boolean;
  /** Output objects written now (v1's keys). */
  readonly objects: readonly string[];
}

export interface MigrateReport {
  readonly table: string;
  readonly dryRun: boolean;
  /** The v1 watermark: the watermark after the log's first entry. */
  readonly watermark: number;
  readonly maxVisitTime: number;
  /** v1 user heads read. */
  readonly users: number;
  readonly pendingUsers: number;
  readonly pendingSessions: number;
  /** Users whose last closed session end is carried over (a visit within gap of it stays late). */
  readonly flushedUsers: number;
  /** v1 closings in flight, each finished here. */
  readonly closings: readonly ClosingReport[];
  /** Sessions of those closings written now. */
  readonly sessionsWritten: number;
  /** Done v1 object markers carried over as claims (outcome `migrated`). */
  readonly markers: number;
  /** Sums of the v1 markers' counters (`sessionsClosed` also counts the closings finished here). */
  readonly totals: V1Counts;
  readonly shards: number;
  /** Id of the new layout record (undefined in a dry run). */
  readonly layoutId: string | undefined;
  /** Items and part objects of an earlier, unfinished migrate run, deleted before starting again. */
  readonly redone: number;
  /** v1 items left in place (the migrated state no longer reads them). */
  readonly legacyItems: number;
  /** v1 chunk items without a commit (leftovers of failed writes that v1 never read either). */
  readonly ignoredChunks: number;
}

const iso = (t: number) => (Number.isFinite(t) ? new Date(t).toISOString() : String(t));

function sumCounts(markers: readonly V1Marker[]): { -readonly [K in keyof V1Counts]: number } {
  const total = { ...ZERO_V1_COUNTS };
  for (const m of markers) for (const k of Object.keys(total) as (keyof V1Counts)[]) total[k] += m.counts[k];
  return total;
}

function refuseInProgress(table: string, markers: readonly V1Marker[]): void {
  const busy = markers.filter((m) => m.status !== 'done');
  if (busy.length === 0) return;
  const listed = busy.slice(0, 10).map((m) => `s3://${m.bucket}/${m.key}`);
  const more = busy.length > listed.length ? ` and ${busy.length - listed.length} more` : '';
  throw new MigrateError(
    `table ${table}: ${busy.length} object(s) are still in progress under the first layout: ${listed.join(', ')}${more}. ` +
      'A half-applied batch can only be finished by the first version of the function: let it finish them (its ' +
      'retries or its scheduled catch-up), then run migrate again (README, "Upgrading from the first state layout").',
  );
}

/** Moves the state of a v1 table to layout 2. Throws {@link MigrateError} (having written nothing) when it cannot. */
export async function migrate(options: MigrateOptions): Promise<MigrateReport> {
  const { clients, config } = options;
  const now = options.now ?? Date.now;
  const log = options.log ?? (() => undefined);
  const dryRun = options.dryRun === true;
  const table = config.table;

  const reader = new V1Reader();
  const leftovers: Item[] = [];
  let layoutItem: Item | undefined;
  let scanned = 0;
  await scanTable(clients.ddb, table, (page) => {
    for (const item of page) {
      if (isLayoutItem(item)) layoutItem = item;
      else if (isLayout2Item(item)) leftovers.push({ pk: item.pk, sk: item.sk });
      else reader.add(item);
    }
    scanned += page.length;
  });
  if (layoutItem) {
    throw new MigrateError(
      `table ${table} is already migrated: it has a layout record (layout version ${layoutItem.layoutVersion}, ` +
        `${layoutItem.shards} shards, created ${iso(Number(layoutItem.createdAt))})`,
    );
  }
  const v1 = reader.result();
  if (v1.items === 0)
    throw new MigrateError(`table ${table} holds no state of the first layout: nothing to migrate`);
  refuseInProgress(table, v1.markers);
  const orphaned = orphanedClosings(v1.users, v1.closings);
  if (orphaned.length > 0) {
    throw new MigrateError(
      `table ${table}: ${orphaned.length} user(s) are frozen by a closing run whose record does not list them, so ` +
        `whether their sessions were written cannot be told: ${orphaned
          .slice(0, 10)
          .map((o) => `${o.user} (${o.run})`)
          .join(', ')}`,
    );
  }
  const objects = new S3ObjectStore(clients.s3);
  const parts = new S3PartObjects(objects, config.outputBucket, table);
  const leftoverParts = await parts.keys();
  const watermark = v1.checkpoint?.watermark ?? Number.NEGATIVE_INFINITY;
  const maxVisitTime = v1.checkpoint?.maxVisitTime ?? Number.NEGATIVE_INFINITY;
  log(
    `read ${scanned} items: ${v1.users.size} users, ${v1.markers.length} object markers, ` +
      `${v1.closings.size} closing(s) in flight; watermark ${iso(watermark)}`,
  );

  const plans: ClosingPlan[] = [...v1.closings.values()]
    .sort((a, b) => (a.run < b.run ? -1 : 1))
    .map((c) => planClosing(c, v1.users, config.session));
  const shards = buildShards(v1.users.values(), config, watermark);
  const totals = sumCounts(v1.markers);
  totals.sessionsClosed += plans.reduce((a, p) => a + p.sessions, 0);
  const closings: ClosingReport[] = plans.map((p) => ({
    run: p.run,
    users: p.frozenUsers.length,
    sessions: p.sessions,
    writtenBefore: p.writtenBefore,
    objects: p.outputs.map((o) => o.key),
  }));
  const report = (layoutId: string | undefined): MigrateReport => ({
    table,
    dryRun,
    watermark,
    maxVisitTime,
    users: v1.users.size,
    pendingUsers: shards.pendingUsers,
    pendingSessions: shards.pendingSessions,
    flushedUsers: shards.flushedUsers,
    closings,
    sessionsWritten: plans.reduce((a, p) => a + (p.writtenBefore ? 0 : p.sessions), 0),
    markers: v1.markers.length,
    totals,
    shards: config.shards,
    layoutId,
    redone: leftovers.length + leftoverParts.length,
    legacyItems: v1.items,
    ignoredChunks: [...v1.users.values()].reduce((a, u) => a + u.orphans.length, 0),
  });
  if (dryRun) return report(undefined);

  if (leftovers.length + leftoverParts.length > 0) {
    log(
      `deleting ${leftovers.length} items and ${leftoverParts.length} part objects of an earlier migrate run ` +
        'that did not finish',
    );
    await deleteItems(clients.ddb, table, leftovers);
    await parts.deleteKeys(leftoverParts);
  }
  for (const plan of plans) {
    for (const o of plan.outputs) await objects.put(config.outputBucket, o.key, o.body);
    log(
      plan.writtenBefore
        ? `closing ${plan.run}: its ${plan.sessions} sessions were written by the first version`
        : `closing ${plan.run}: ${plan.sessions} sessions written in ${plan.outputs.length} objects`,
    );
  }
  const store = new MigrationStore(clients.ddb, { table, parts, now });
  await writeClaims(store, v1.markers, now());
  log(`${v1.markers.length} processed objects carried over`);
  const entry = await appendMigrationEntry(
    store,
    config,
    now,
    { watermark, maxVisitTime },
    totals,
    v1.markers.length,
  );
  await commitShards(store, shards, entry, totals, totals.sessionsClosed, now);
  log(
    `${shards.pendingSessions} pending sessions of ${shards.pendingUsers} users in ${config.shards} shards`,
  );
  const layout = await store.createLayout(config.shards, randomUUID().slice(0, 8), now());
  if (!layout)
    throw new Error(`table ${table}: a layout record appeared while migrating (another migrate run?)`);
  log(
    `layout record ${layout.id} written: the table is in layout 2; ${v1.items} first-layout items left in place`,
  );
  return report(layout.id);
}
