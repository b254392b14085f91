/**
 * The persisted state of the pipeline, as plain data, and the pure decisions over it. The DynamoDB adapter only
 * maps these types to items; every rule about what is pending, inline or due lives here.
 */
import { compareVisits, cutSessions } from './sessionize.ts';
import type { PageVisit, PendingSession, SessionConfig } from './types.ts';

/** A block of a user's pending visits stored as its own item (visits that did not fit in the head). */
export interface ChunkRef {
  readonly id: string;
  readonly min: number;
  readonly max: number;
  readonly count: number;
}

/** Counts one batch segment left on a user, so a retried segment is a no-op for that user. */
export interface AppliedEntry {
  readonly accepted: number;
  readonly duplicates: number;
  readonly late: number;
  readonly at: number;
  /** Chunk items the segment wrote for this user (`chunkId(key, 0..chunks-1)`). */
  readonly chunks?: number;
}

/** Id of the `n`th chunk a segment (apply key) wrote for a user. */
export function chunkId(applyKey: string, n: number): string {
  return `${applyKey}-${n}`;
}

/** A closing in progress for this user: visits up to `through` belong to closing run `run`. */
export interface ClosingMark {
  readonly run: string;
  readonly through: number;
}

/**
 * The head item of a user: everything but the spilled visit chunks. `version` 0 means it does not exist yet.
 * `chunks` is not stored in the head (it would grow with every batch): it is derived on read from the chunk items.
 */
export interface UserHead {
  readonly userId: string;
  readonly version: number;
  readonly inline: readonly PageVisit[];
  readonly chunks: readonly ChunkRef[];
  /** End of the user's last finalized closed session (`-Infinity` when none). */
  readonly closedThrough: number;
  readonly applied: Readonly<Record<string, AppliedEntry>>;
  readonly closing: ClosingMark | null;
  /** The value stored in the expiry index (`expiresAt`), null when the user is not in it. */
  readonly indexed: number | null;
}

export function emptyHead(userId: string): UserHead {
  return {
    userId,
    version: 0,
    inline: [],
    chunks: [],
    closedThrough: Number.NEGATIVE_INFINITY,
    applied: {},
    closing: null,
    indexed: null,
  };
}

/** Most bytes of inline visits a head holds before new visits spill into a chunk item. */
export const INLINE_MAX_BYTES = 2048;
/** Most bytes of visits in one chunk item (well under DynamoDB's 400 KB item limit). */
export const CHUNK_MAX_BYTES = 256 * 1024;

/** Stored size of a visit in UTF-8 bytes, as the adapter encodes it (JSON `[t,"page"],`), escapes aside. */
export function visitBytes(v: PageVisit): number {
  return Buffer.byteLength(v.page) + 20;
}

/** Stored size of visits in UTF-8 bytes (JSON escapes can add a little: the limits keep a wide margin). */
export function visitsBytes(visits: readonly PageVisit[]): number {
  let n = 2;
  for (const v of visits) n += visitBytes(v);
  return n;
}

/** The boundary below which a user's visits are closed or closing: new visits at or below it + gap are late. */
export function closedBoundary(head: UserHead): number {
  return head.closing ? head.closing.through : head.closedThrough;
}

/** All stored visits of a user (inline and committed chunks), sorted, duplicate-free. */
export function storedVisits(head: UserHead, chunks: ReadonlyMap<string, readonly PageVisit[]>): PageVisit[] {
  const all: PageVisit[] = [...head.inline];
  for (const ref of head.chunks) {
    const visits = chunks.get(ref.id);
    if (visits === undefined) throw new Error(`user ${head.userId}: chunk ${ref.id} is missing`);
    for (const v of visits) all.push(v);
  }
  all.sort(compareVisits);
  return all;
}

/** Pending visits: stored ones after the closed/closing boundary. */
export function pendingVisits(
  head: UserHead,
  chunks: ReadonlyMap<string, readonly PageVisit[]>,
): PageVisit[] {
  const boundary = closedBoundary(head);
  return storedVisits(head, chunks).filter((v) => v.t > boundary);
}

/** Visits of the closing in progress: after the last finalized closing, up to the closing's `through`. */
export function closingVisits(
  head: UserHead,
  chunks: ReadonlyMap<string, readonly PageVisit[]>,
): PageVisit[] {
  if (!head.closing) return [];
  const { through } = head.closing;
  return storedVisits(head, chunks).filter((v) => v.t > head.closedThrough && v.t <= through);
}

export function pendingSessions(
  head: UserHead,
  chunks: ReadonlyMap<string, readonly PageVisit[]>,
  config: SessionConfig,
): PendingSession[] {
  return cutSessions(head.userId, pendingVisits(head, chunks), config);
}

/**
 * Value of the expiry index for a user: the first pending session's `end + gap`; null when nothing is pending (the
 * user leaves the index). While a closing is in progress the stored value stays as it is: it is below the watermark
 * the user was due by, so any later closing run still meets the user (and finishes that closing if its owner died),
 * and moving it would cost index writes for nothing.
 */
export function expiresAt(
  head: UserHead,
  pending: readonly PendingSession[],
  config: SessionConfig,
): number | null {
  if (head.closing) return head.indexed;
  const first = pending[0];
  return first === undefined ? null : first.end + config.gapMs;
}

/**
 * The expiry value to store when a batch adds visits. A stored value that is not later than the wanted one stays:
 * it can only make a closing run look at the user early (the run checks what is really due and corrects it), while
 * rewriting it on every batch would cost two index writes each time (an index key change is a delete and a put).
 */
export function indexValue(stored: number | null, wanted: number | null): number | null {
  if (wanted === null || stored === null) return wanted;
  return stored <= wanted ? stored : wanted;
}

/** Shard of the expiry index for a user (a stable hash, so a user always lands in the same shard). */
export function expiryShard(userId: string, shards: number): number {
  let h = 2166136261;
  for (let i = 0; i < userId.length; i++) h = Math.imul(h ^ userId.charCodeAt(i), 16777619);
  return (h >>> 0) % shards;
}

/**
 * The head after a closing is finalized: the boundary moves to `through`, and inline visits and chunks wholly at or
 * before it are dropped. Returns the ids of the dropped chunks (to delete after the head is written).
 */
export function finalizeClosing(head: UserHead): { head: UserHead; droppedChunks: string[] } {
  if (!head.closing) return { head, droppedChunks: [] };
  const through = head.closing.through;
  const dropped = head.chunks.filter((c) => c.max <= through).map((c) => c.id);
  return {
    head: {
      ...head,
      closing: null,
      closedThrough: Math.max(head.closedThrough, through),
      inline: head.inline.filter((v) => v.t > through),
      chunks: head.chunks.filter((c) => c.max > through),
    },
    droppedChunks: dropped,
  };
}
