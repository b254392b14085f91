/**
 * The layout-2 state migrate writes (lambdas/pipeline/records.ts, lambdas/core/log.ts): one ShardState per shard
 * restored from the users' pending sessions, a claim per processed v1 object, the log's first entry (an advance to
 * the v1 watermark), and a head per shard at version 1 that has applied that entry. Each shard's state is one
 * snapshot part.
 */
import { randomUUID } from 'node:crypto';
import pLimit from 'p-limit';
import type { Config } from '../../lambdas/config.ts';
import type { EntryDraft, LogEntry } from '../../lambdas/core/log.ts';
import { encodeSnapshot } from '../../lambdas/core/parts.ts';
import { ShardState } from '../../lambdas/core/shard-state.ts';
import { shardOf } from '../../lambdas/core/shards.ts';
import { objectId } from '../../lambdas/pipeline/ingest.ts';
import { type ShardHead, type ShardTotals, ZERO_SHARD_TOTALS } from '../../lambdas/pipeline/records.ts';
import type { StateStore } from '../../lambdas/pipeline/state-store.ts';
import type { V1Counts, V1Marker, V1User } from './v1-items.ts';
import { lastClosed, pendingSessions } from './v1-rules.ts';

/** Id (and claim) of the log entry migrate appends: the log's first. */
export const MIGRATION_ENTRY_ID = 'migrate#v1';
export const MIGRATION_SOURCE = 'migrate:v1';

export interface Shards {
  readonly states: readonly ShardState[];
  readonly pendingUsers: number;
  readonly pendingSessions: number;
  /** Users carrying the end of their last closed session (a visit within gap of it stays late). */
  readonly flushedUsers: number;
}

/**
 * The users' pending state, by shard. A user's last closed session end is kept (`flushedThrough`) while it is
 * within `gap` of the watermark: v1 treated a visit within gap of the last closed session as late, whatever the
 * watermark, and layout 2 keeps that rule through the same field its flushes use.
 */
export function buildShards(users: Iterable<V1User>, config: Config, watermark: number): Shards {
  const session = config.session;
  const states = Array.from({ length: config.shards }, () => new ShardState(session));
  let flushedUsers = 0;
  for (const user of users) {
    const sessions = pendingSessions(user, session);
    const closed = lastClosed(user);
    const flushedThrough =
      Number.isFinite(closed) && closed + session.gapMs >= watermark ? closed : undefined;
    if (sessions.length === 0 && flushedThrough === undefined) continue;
    if (flushedThrough !== undefined) flushedUsers++;
    states[shardOf(user.userId, config.shards)]!.restore({ user: user.userId, sessions, flushedThrough });
  }
  for (const s of states) s.watermark = watermark;
  return {
    states,
    pendingUsers: states.reduce((a, s) => a + s.userCount, 0),
    pendingSessions: states.reduce((a, s) => a + s.sessionCount, 0),
    flushedUsers,
  };
}

/** Every done v1 marker as a claim with outcome `migrated`: a redelivery or a listing finds it processed. */
export async function writeClaims(
  store: StateStore,
  markers: readonly V1Marker[],
  now: number,
): Promise<number> {
  const limit = pLimit(16);
  let written = 0;
  await Promise.all(
    markers.map((m) =>
      limit(async () => {
        const id = objectId(m.bucket, m.key, m.etag);
        const clock = m.claimedAt > 0 ? m.claimedAt : now;
        if (await store.putClaim({ id, clock, outcome: 'migrated', logged: true })) written++;
        else if ((await store.getClaim(id))?.outcome !== 'migrated') {
          throw new Error(`claim ${id} (s3://${m.bucket}/${m.key}) exists already, not as a migrated one`);
        }
      }),
    ),
  );
  return written;
}

/** Appends the log's first entry: an advance to the v1 watermark carrying the v1 line counts. */
export async function appendMigrationEntry(
  store: StateStore,
  config: Config,
  now: () => number,
  marks: { readonly watermark: number; readonly maxVisitTime: number },
  totals: V1Counts,
  objects: number,
): Promise<LogEntry> {
  const draft: EntryDraft = {
    kind: 'advance',
    id: MIGRATION_ENTRY_ID,
    source: MIGRATION_SOURCE,
    maxVisitTime: marks.maxVisitTime,
    advanceTo: marks.watermark,
    clock: now(),
    segments: 0,
    shardVisits: [],
    lines: totals.lines,
    visits: totals.visits,
    rejected: totals.rejected,
    objects,
  };
  const claim = await store.claim(draft.id, now());
  const entry = await store.append(draft, claim, now, config.session);
  await store.setClaimLogged(draft.id);
  if (entry.seq !== 1) {
    throw new Error(`the migration's log entry went to position ${entry.seq}, not 1: the log was not empty`);
  }
  return entry;
}

/** The v1 counters a shard head carries (all in shard 0, so that the sums over shards are the v1 totals). */
export function shardTotals(shard: number, totals: V1Counts, sessionsClosed: number): ShardTotals {
  if (shard !== 0) return ZERO_SHARD_TOTALS;
  return { accepted: totals.accepted, duplicates: totals.duplicates, late: totals.late, sessionsClosed };
}

/** Writes each shard's snapshot and commits its head at version 1, having applied `entry`. */
export async function commitShards(
  store: StateStore,
  shards: Shards,
  entry: LogEntry,
  totals: V1Counts,
  sessionsClosed: number,
  now: () => number,
): Promise<ShardHead[]> {
  const limit = pLimit(4);
  return Promise.all(
    shards.states.map((state, shard) =>
      limit(async () => {
        const empty = state.userCount === 0 && [...state.snapshot()].length === 0;
        const parts = empty ? [] : [await store.writePart(shard, 'snapshot', 1, encodeSnapshot(state))];
        const head: ShardHead = {
          shard,
          version: 1,
          applied: entry.seq,
          parts,
          unpublished: false,
          commit: randomUUID(),
          watermark: entry.after,
          nextExpiry: state.nextExpiry,
          pendingUsers: state.userCount,
          pendingSessions: state.sessionCount,
          totals: shardTotals(shard, totals, sessionsClosed),
          committedAt: now(),
        };
        if (!(await store.commit(head, 0))) throw new Error(`shard ${shard}: a head exists already`);
        return head;
      }),
    ),
  );
}
