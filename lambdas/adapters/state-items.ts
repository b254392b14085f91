/**
 * The items of the state table (layout 2) and their attributes, mapped to and from the pipeline's records. One
 * table with string keys `pk` and `sk`, no index (docs/design.md, "Items"):
 *
 * | item         | pk               | sk                    | attributes                                           |
 * |--------------|------------------|-----------------------|------------------------------------------------------|
 * | layout       | `layout`         | `layout`              | layoutVersion, shards, stateId, createdAt            |
 * | object claim | `claim#<id>`     | `claim`               | clock, seq, logged, outcome (`migrated`), ttl        |
 * | log entry    | `log`            | `<seq, 15 digits>`    | see {@link entryItem}                                |
 * | shard head   | `shard#<n>`      | `head`                | see {@link headItem}                                 |
 * | cursor       | `cursor`         | `catchup`             | after (the last key a catch-up listing reached), at  |
 *
 * The parts a head names are S3 objects (lambdas/adapters/s3-parts.ts), not items. Numbers that may be infinite (watermarks, expiries) are stored as strings (`-Infinity`, `Infinity`).
 */
import type { LogEntry } from '../core/log.ts';
import {
  type Layout,
  type ObjectClaim,
  type PartRef,
  type ShardHead,
  ZERO_SHARD_TOTALS,
} from '../pipeline/records.ts';

export type Item = Record<string, unknown>;

export const KEYS = {
  layout: { pk: 'layout', sk: 'layout' },
  /** The first layout's checkpoint item: its presence means the table needs `sessionizer migrate`. */
  legacyCheckpoint: { pk: 'checkpoint', sk: 'checkpoint' },
  claim: (id: string) => ({ pk: `claim#${id}`, sk: 'claim' }),
  logPk: 'log',
  logSk: (seq: number) => String(seq).padStart(15, '0'),
  cursor: { pk: 'cursor', sk: 'catchup' },
  head: (shard: number) => ({ pk: `shard#${shard}`, sk: 'head' }),
} as const;

/** Attribute DynamoDB TTL deletes by (epoch seconds), on claims only: a cloud-side cleanup. */
export const TTL_ATTRIBUTE = 'ttl';

const num = (n: number): string | number => (Number.isFinite(n) ? n : String(n));
const readNum = (v: unknown, fallback: number): number =>
  v === undefined || v === null ? fallback : Number(v);
const int = (v: unknown): number => readNum(v, 0);

export function layoutItem(layout: Layout): Item {
  return {
    ...KEYS.layout,
    layoutVersion: layout.version,
    shards: layout.shards,
    stateId: layout.id,
    createdAt: layout.createdAt,
  };
}

export function layoutOf(item: Item): Layout {
  return {
    version: int(item.layoutVersion),
    shards: int(item.shards),
    id: String(item.stateId),
    createdAt: int(item.createdAt),
  };
}

export function claimItem(claim: ObjectClaim, ttl: number): Item {
  return {
    ...KEYS.claim(claim.id),
    clock: claim.clock,
    ...(claim.seq !== undefined ? { seq: claim.seq } : {}),
    ...(claim.logged ? { logged: true } : {}),
    ...(claim.outcome ? { outcome: claim.outcome } : {}),
    [TTL_ATTRIBUTE]: ttl,
  };
}

export function claimOf(id: string, item: Item): ObjectClaim {
  return {
    id,
    clock: int(item.clock),
    ...(item.seq !== undefined ? { seq: int(item.seq) } : {}),
    ...(item.outcome === 'migrated' ? { outcome: item.outcome } : {}),
    ...(item.logged === true ? { logged: true } : {}),
  };
}

/** A log entry: what the object was and where its visits are, its watermarks, and running totals. */
export function entryItem(e: LogEntry): Item {
  return {
    pk: KEYS.logPk,
    sk: KEYS.logSk(e.seq),
    seq: e.seq,
    kind: e.kind,
    entryId: e.id,
    source: e.source,
    ...(e.etag ? { etag: e.etag } : {}),
    ...(e.versionId ? { versionId: e.versionId } : {}),
    maxVisitTime: num(e.maxVisitTime),
    ...(e.advanceTo !== undefined ? { advanceTo: num(e.advanceTo) } : {}),
    ...(e.objects !== undefined ? { objects: e.objects } : {}),
    clock: e.clock,
    segments: e.segments,
    shardVisits: [...e.shardVisits],
    lines: e.lines,
    visits: e.visits,
    rejected: e.rejected,
    before: num(e.before),
    after: num(e.after),
    appendedAt: e.appendedAt,
    advancedAt: e.advancedAt,
    newestVisit: num(e.newestVisit),
    totalObjects: e.totals.objects,
    totalLines: e.totals.lines,
    totalVisits: e.totals.visits,
    totalRejected: e.totals.rejected,
  };
}

export function entryOf(item: Item): LogEntry {
  const kind = item.kind === 'flush' || item.kind === 'advance' ? item.kind : 'object';
  return {
    seq: int(item.seq),
    kind,
    id: String(item.entryId),
    source: String(item.source),
    ...(typeof item.etag === 'string' ? { etag: item.etag } : {}),
    ...(typeof item.versionId === 'string' ? { versionId: item.versionId } : {}),
    maxVisitTime: readNum(item.maxVisitTime, Number.NEGATIVE_INFINITY),
    ...(item.advanceTo !== undefined ? { advanceTo: readNum(item.advanceTo, Number.NEGATIVE_INFINITY) } : {}),
    ...(item.objects !== undefined ? { objects: int(item.objects) } : {}),
    clock: int(item.clock),
    segments: int(item.segments),
    shardVisits: Array.isArray(item.shardVisits) ? item.shardVisits.map(int) : [],
    lines: int(item.lines),
    visits: int(item.visits),
    rejected: int(item.rejected),
    before: readNum(item.before, Number.NEGATIVE_INFINITY),
    after: readNum(item.after, Number.NEGATIVE_INFINITY),
    appendedAt: int(item.appendedAt),
    advancedAt: int(item.advancedAt),
    newestVisit: readNum(item.newestVisit, Number.NEGATIVE_INFINITY),
    totals: {
      objects: int(item.totalObjects),
      lines: int(item.totalLines),
      visits: int(item.totalVisits),
      rejected: int(item.totalRejected),
    },
  };
}

/** A shard head: the version and what it is made of (parts as compact JSON), plus figures for status and metrics. */
export function headItem(h: ShardHead): Item {
  return {
    ...KEYS.head(h.shard),
    headVersion: h.version,
    applied: h.applied,
    parts: JSON.stringify(h.parts.map((p) => [p.id, p.kind === 'snapshot' ? 's' : 'd', p.bytes, p.version])),
    unpublished: h.unpublished,
    commitId: h.commit,
    watermark: num(h.watermark),
    nextExpiry: num(h.nextExpiry),
    pendingUsers: h.pendingUsers,
    pendingSessions: h.pendingSessions,
    accepted: h.totals.accepted,
    duplicates: h.totals.duplicates,
    late: h.totals.late,
    sessionsClosed: h.totals.sessionsClosed,
    committedAt: h.committedAt,
  };
}

export function headOf(shard: number, item: Item): ShardHead {
  const parts = (JSON.parse(String(item.parts ?? '[]')) as [string, string, number, number][]).map(
    ([id, kind, bytes, version]): PartRef => ({
      id,
      kind: kind === 's' ? 'snapshot' : 'delta',
      bytes,
      version,
    }),
  );
  return {
    shard,
    version: int(item.headVersion),
    applied: int(item.applied),
    parts,
    unpublished: item.unpublished === true,
    commit: String(item.commitId ?? ''),
    watermark: readNum(item.watermark, Number.NEGATIVE_INFINITY),
    nextExpiry: readNum(item.nextExpiry, Number.POSITIVE_INFINITY),
    pendingUsers: int(item.pendingUsers),
    pendingSessions: int(item.pendingSessions),
    totals:
      item.accepted === undefined
        ? ZERO_SHARD_TOTALS
        : {
            accepted: int(item.accepted),
            duplicates: int(item.duplicates),
            late: int(item.late),
            sessionsClosed: int(item.sessionsClosed),
          },
    committedAt: int(item.committedAt),
  };
}

/** Size DynamoDB bills for an item: attribute names plus values (strings and binary by their bytes). */
export function itemBytes(item: Item): number {
  let n = 0;
  for (const [k, v] of Object.entries(item)) n += Buffer.byteLength(k) + valueBytes(v);
  return n;
}

function valueBytes(v: unknown): number {
  if (typeof v === 'string') return Buffer.byteLength(v);
  if (typeof v === 'number') return 1 + Math.ceil(String(Math.abs(v)).replace(/[.-]/g, '').length / 2);
  if (typeof v === 'boolean' || v === null || v === undefined) return 1;
  if (v instanceof Uint8Array) return v.length;
  if (Array.isArray(v)) return 3 + v.reduce((a: number, x) => a + 1 + valueBytes(x), 0);
  if (typeof v === 'object') {
    return 3 + Object.entries(v).reduce((a, [k, x]) => a + 1 + Buffer.byteLength(k) + valueBytes(x), 0);
  }
  return 0;
}
