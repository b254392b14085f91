/** Users hash into a fixed number of shards: the unit of commit and of parallelism (docs/design.md, "Shards"). */
import type { Visit } from './types.ts';

/** Most shards a deployment may have (a shard head each; every object's log entry counts visits per shard). */
export const MAX_SHARDS = 256;

/** Shard of a user: FNV-1a over the id's UTF-16 code units, modulo the shard count. Stable across versions. */
export function shardOf(userId: string, shards: number): number {
  let h = 2166136261;
  for (let i = 0; i < userId.length; i++) h = Math.imul(h ^ userId.charCodeAt(i), 16777619);
  return (h >>> 0) % shards;
}

/** Visits split by shard, each list in input order. */
export function splitByShard(visits: readonly Visit[], shards: number): Visit[][] {
  const out: Visit[][] = Array.from({ length: shards }, () => []);
  if (shards === 1) {
    for (const v of visits) out[0]!.push(v);
    return out;
  }
  // one hash per user per call: a user's visits come in runs, and ids are shared strings
  let lastUser = '';
  let lastShard = -1;
  for (const v of visits) {
    if (v.userId !== lastUser || lastShard < 0) {
      lastUser = v.userId;
      lastShard = shardOf(v.userId, shards);
    }
    out[lastShard]!.push(v);
  }
  return out;
}
