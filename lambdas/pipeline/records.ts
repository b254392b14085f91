/**
 * The records of the state store (docs/design.md, "State"): the layout, object claims, shard heads and the parts
 * they name (the log's entries are in lambdas/core/log.ts). Plain data; the DynamoDB adapter maps them to items.
 */

/** What the table was created for; fixed for its life. */
export interface Layout {
  /** Layout version of the table: 2. */
  readonly version: number;
  readonly shards: number;
  /** Random id of this state, in every output key, so outputs of a state started afresh never overwrite older ones. */
  readonly id: string;
  readonly createdAt: number;
}

export const LAYOUT_VERSION = 2;

export type ClaimOutcome = 'migrated';

/**
 * Days a claim is kept (DynamoDB TTL deletes it after): the duplicate check remembers an object version this long,
 * so catch-up leaves alone objects older than this (less a day), which it could no longer tell from new ones.
 */
export const CLAIM_RETENTION_DAYS = 400;

/** The claim of an object version: its processing clock, and where the log has (or will have) its entry. */
export interface ObjectClaim {
  readonly id: string;
  readonly clock: number;
  /** Log position reserved for the entry; the entry is there once the log holds it at that position. */
  readonly seq?: number;
  /** The log holds the entry at `seq` (set after the append; without it, the log is asked). */
  readonly logged?: boolean;
  /** `migrated`: it was processed under the first state layout (`sessionizer migrate` carried its claim over). */
  readonly outcome?: ClaimOutcome;
}

/** A part of a shard's state: a snapshot or a delta, one immutable object. */
export interface PartRef {
  readonly id: string;
  readonly kind: 'snapshot' | 'delta';
  /** Encoded (deflated) bytes. */
  readonly bytes: number;
  /** The head version whose commit wrote it. */
  readonly version: number;
}

/** Running totals of what a shard's commits did. */
export interface ShardTotals {
  readonly accepted: number;
  readonly duplicates: number;
  readonly late: number;
  readonly sessionsClosed: number;
}

export const ZERO_SHARD_TOTALS: ShardTotals = { accepted: 0, duplicates: 0, late: 0, sessionsClosed: 0 };

/** The head of a shard: the one item a commit writes conditionally, naming the parts its state consists of. */
export interface ShardHead {
  readonly shard: number;
  /** 0 for a shard never committed. */
  readonly version: number;
  /** The last log entry applied. */
  readonly applied: number;
  /** A snapshot first (when there is one), then deltas in commit order. */
  readonly parts: readonly PartRef[];
  /** The sessions and late visits of this version's commit are not all published yet. */
  readonly unpublished: boolean;
  /** Random id of the attempt that committed this version (tells a lost response from a lost race). */
  readonly commit: string;
  readonly watermark: number;
  readonly nextExpiry: number;
  readonly pendingUsers: number;
  readonly pendingSessions: number;
  readonly totals: ShardTotals;
  readonly committedAt: number;
}

export function emptyHead(shard: number): ShardHead {
  return {
    shard,
    version: 0,
    applied: 0,
    parts: [],
    unpublished: false,
    commit: '',
    watermark: Number.NEGATIVE_INFINITY,
    nextExpiry: Number.POSITIVE_INFINITY,
    pendingUsers: 0,
    pendingSessions: 0,
    totals: ZERO_SHARD_TOTALS,
    committedAt: 0,
  };
}
