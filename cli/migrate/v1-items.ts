/**
 * The items of the first state layout ("v1", commit 53639eb: lambdas/adapters/dynamo.ts), decoded read-only from a
 * table scan. Only what `migrate` needs: the checkpoint, object markers, user heads with their committed visit
 * chunks, and closing records. Late-visit staging items (`late#`) and the catch-up cursor are recognised and left
 * alone; nothing here writes.
 *
 * | item            | pk                 | sk                          | attributes read                          |
 * |-----------------|--------------------|-----------------------------|------------------------------------------|
 * | checkpoint      | `checkpoint`       | `checkpoint`                | wm, maxT, advancedAt                     |
 * | catch-up cursor | `catchup`          | `cursor`                    | (none)                                   |
 * | object marker   | `object#<id>`      | `object`                    | id, bucket, key, etag, st, counts...     |
 * | user head       | `user#<user>`      | `head`                      | iv, ct, ap, cl                           |
 * | visit chunk     | `user#<user>`      | `chunk#<id>` / `commit#<id>`| v, min (a chunk counts once committed)   |
 * | closing record  | `closing#<run>`    | `head` / `page#<n>`         | wm, written, sessions, lease / users     |
 * | late staging    | `late#<segment>`   | `<user>#<n>`                | (none)                                   |
 */
import type { PageVisit } from '../../lambdas/core/types.ts';

export type Item = Record<string, unknown>;

export interface V1Checkpoint {
  readonly watermark: number;
  readonly maxVisitTime: number;
  readonly advancedAt: number;
}

/** A v1 object marker's counters (`lines = visits + rejected`, `visits = accepted + duplicates + late`). */
export interface V1Counts {
  readonly lines: number;
  readonly visits: number;
  readonly accepted: number;
  readonly duplicates: number;
  readonly late: number;
  readonly rejected: number;
  readonly sessionsClosed: number;
}

export const ZERO_V1_COUNTS: V1Counts = {
  lines: 0,
  visits: 0,
  accepted: 0,
  duplicates: 0,
  late: 0,
  rejected: 0,
  sessionsClosed: 0,
};

export interface V1Marker {
  readonly id: string;
  readonly bucket: string;
  readonly key: string;
  readonly etag: string;
  readonly status: 'in-progress' | 'done';
  /** `processed`, `deleted` or `superseded` once done. */
  readonly outcome: string | undefined;
  readonly claimedAt: number;
  readonly leaseUntil: number;
  readonly counts: V1Counts;
}

/** A closing in progress on a user: its visits up to `through` belong to closing run `run`. */
export interface V1ClosingMark {
  readonly run: string;
  readonly through: number;
}

/** A user's head with the visits of its committed chunks (uncommitted chunks are leftovers: never read). */
export interface V1User {
  readonly userId: string;
  readonly inline: readonly PageVisit[];
  /** Visits of the committed chunks, one list per chunk, in chunk order (by first visit). */
  readonly chunks: readonly (readonly PageVisit[])[];
  /** End of the user's last finalized closed session (`-Infinity` when none). */
  readonly closedThrough: number;
  readonly closing: V1ClosingMark | null;
  /** Chunk items without a commit (ignored, as v1 ignored them). */
  readonly orphans: readonly string[];
}

export interface V1Closing {
  readonly run: string;
  /** The watermark the run closes with (`Infinity` for a flush). */
  readonly watermark: number;
  readonly leaseUntil: number;
  /** The run's sessions are all written (only its users' finalization was left). */
  readonly written: boolean;
  readonly sessions: number;
  /** The users the run listed (and froze, those whose head names it), in the order stored. */
  readonly users: readonly string[];
}

export interface V1State {
  readonly checkpoint: V1Checkpoint | undefined;
  readonly markers: readonly V1Marker[];
  readonly users: ReadonlyMap<string, V1User>;
  readonly closings: ReadonlyMap<string, V1Closing>;
  /** v1 items of every kind, counted (what migrate leaves in place). */
  readonly items: number;
}

/** Whether an item belongs to the first layout (by its partition key). */
export function isV1Item(item: Item): boolean {
  const pk = String(item.pk);
  return (
    pk === 'checkpoint' ||
    pk === 'catchup' ||
    pk.startsWith('object#') ||
    pk.startsWith('user#') ||
    pk.startsWith('closing#') ||
    pk.startsWith('late#')
  );
}

/** Numbers that may be infinite were stored as strings (`-Infinity` parses back). */
const num = (v: unknown, fallback: number): number => (v === undefined || v === null ? fallback : Number(v));

const decodeVisits = (text: unknown): PageVisit[] =>
  typeof text === 'string' ? (JSON.parse(text) as [number, string][]).map(([t, page]) => ({ t, page })) : [];

/** Chunk ids an applied-segment map (`ap`) declares committed: `<segment key>-<n>` for n below its chunk count. */
function appliedChunks(text: unknown): string[] {
  if (typeof text !== 'string') return [];
  const ids: string[] = [];
  for (const [key, entry] of Object.entries(JSON.parse(text) as Record<string, unknown>)) {
    // compact `[accepted, duplicates, late, at, chunks?]`, or the first, spelled-out format
    const chunks = Array.isArray(entry) ? entry[4] : (entry as { chunks?: unknown }).chunks;
    for (let i = 0; i < Number(chunks ?? 0); i++) ids.push(`${key}-${i}`);
  }
  return ids;
}

function counts(value: unknown): V1Counts {
  const c = (value ?? {}) as Partial<Record<keyof V1Counts, unknown>>;
  const out = { ...ZERO_V1_COUNTS };
  for (const k of Object.keys(out) as (keyof V1Counts)[]) out[k] = num(c[k], 0);
  return out;
}

function marker(item: Item): V1Marker {
  return {
    id: String(item.id ?? String(item.pk).slice('object#'.length)),
    bucket: String(item.bucket),
    key: String(item.key),
    etag: String(item.etag),
    status: item.st === 'done' ? 'done' : 'in-progress',
    outcome: typeof item.outcome === 'string' ? item.outcome : undefined,
    claimedAt: num(item.claimedAt, 0),
    leaseUntil: num(item.lease, 0),
    counts: counts(item.counts),
  };
}

/** A user's items as read so far: the head's fields and the chunks' visits (committed or not: known at the end). */
interface UserItems {
  head?: {
    inline: PageVisit[];
    closedThrough: number;
    closing: V1ClosingMark | null;
    appliedChunks: string[];
  };
  chunks: Map<string, { min: number; visits: PageVisit[] }>;
  commits: Set<string>;
}

function user(userId: string, items: UserItems & { head: NonNullable<UserItems['head']> }): V1User {
  const { head } = items;
  const committed = new Set([...items.commits, ...head.appliedChunks]);
  const live = [...items.chunks]
    .filter(([id]) => committed.has(id))
    .sort(([a, x], [b, y]) => x.min - y.min || (a < b ? -1 : 1));
  return {
    userId,
    inline: head.inline,
    chunks: live.map(([, c]) => c.visits),
    closedThrough: head.closedThrough,
    closing: head.closing,
    orphans: [...items.chunks.keys()].filter((id) => !committed.has(id)),
  };
}

/**
 * Decodes v1 items as a scan delivers them (any order, other items skipped), keeping only what migrate needs, so
 * that a large table's raw items need not all be held at once.
 */
export class V1Reader {
  private checkpoint: V1Checkpoint | undefined;
  private readonly markers: V1Marker[] = [];
  private readonly users = new Map<string, UserItems>();
  private readonly closingHeads = new Map<string, Item>();
  private readonly closingPages = new Map<string, { sk: string; users: string[] }[]>();
  private count = 0;

  /** Takes one item; false when it is not a v1 item. */
  add(item: Item): boolean {
    if (!isV1Item(item)) return false;
    this.count++;
    const pk = String(item.pk);
    const sk = String(item.sk);
    if (pk === 'checkpoint' && sk === 'checkpoint') {
      this.checkpoint = {
        watermark: num(item.wm, Number.NEGATIVE_INFINITY),
        maxVisitTime: num(item.maxT, Number.NEGATIVE_INFINITY),
        advancedAt: num(item.advancedAt, 0),
      };
    } else if (pk.startsWith('object#') && sk === 'object') {
      this.markers.push(marker(item));
    } else if (pk.startsWith('user#')) {
      const id = pk.slice('user#'.length);
      let u = this.users.get(id);
      if (!u) this.users.set(id, (u = { chunks: new Map(), commits: new Set() }));
      if (sk === 'head') {
        u.head = {
          inline: decodeVisits(item.iv),
          closedThrough: num(item.ct, Number.NEGATIVE_INFINITY),
          closing: typeof item.cl === 'string' ? (JSON.parse(item.cl) as V1ClosingMark) : null,
          appliedChunks: appliedChunks(item.ap),
        };
      } else if (sk.startsWith('chunk#')) {
        u.chunks.set(sk.slice('chunk#'.length), { min: Number(item.min), visits: decodeVisits(item.v) });
      } else if (sk.startsWith('commit#')) u.commits.add(sk.slice('commit#'.length));
    } else if (pk.startsWith('closing#')) {
      const run = pk.slice('closing#'.length);
      if (sk === 'head') this.closingHeads.set(run, item);
      else if (sk.startsWith('page#')) {
        const pages = this.closingPages.get(run) ?? [];
        pages.push({ sk, users: JSON.parse(String(item.users)) as string[] });
        this.closingPages.set(run, pages);
      }
    }
    return true;
  }

  /** The state read. */
  result(): V1State {
    const closings = new Map<string, V1Closing>();
    // a record counts once its head exists (v1 deleted the pages first and the head last)
    for (const [run, head] of this.closingHeads) {
      const pages = (this.closingPages.get(run) ?? []).sort((a, b) => (a.sk < b.sk ? -1 : 1));
      closings.set(run, {
        run,
        watermark: num(head.wm, Number.POSITIVE_INFINITY),
        leaseUntil: num(head.lease, 0),
        written: head.written === true,
        sessions: num(head.sessions, 0),
        users: pages.flatMap((p) => p.users),
      });
    }
    // a user with chunk items but no head has nothing committed (v1 wrote chunks before the head committing them)
    const users = new Map<string, V1User>();
    for (const [id, items] of this.users) {
      const head = items.head;
      if (head) users.set(id, user(id, { ...items, head }));
    }
    return {
      checkpoint: this.checkpoint,
      markers: [...this.markers].sort((a, b) => (a.id < b.id ? -1 : 1)),
      users,
      closings,
      items: this.count,
    };
  }
}

/** Decodes the v1 items among `items`. */
export function decodeV1(items: Iterable<Item>): V1State {
  const reader = new V1Reader();
  for (const item of items) reader.add(item);
  return reader.result();
}
