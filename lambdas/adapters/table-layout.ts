/**
 * The DynamoDB table layout: key and index names shared by the state store, the CDK stack and the local stack.
 * One table, generic string keys `pk`/`sk`:
 *
 * | item            | pk                    | sk              | notes                                             |
 * |-----------------|-----------------------|-----------------|---------------------------------------------------|
 * | checkpoint      | `checkpoint`          | `checkpoint`    | watermark (only forward), catch-up cursor          |
 * | object marker   | `object#<bucket>/<key>` | `<etag>`      | in-progress with a lease, then done with counters  |
 * | user head       | `user#<user_id>`      | `head`          | version, pending session summaries, chunk ids; in the expiry index |
 * | visit chunk     | `user#<user_id>`      | `chunk#<id>`    | immutable block of pending visits                  |
 * | closing record  | `closing#<id>`        | `closing`       | a closing in progress: its output keys and sessions |
 */
export const TABLE_KEYS = { partitionKey: 'pk', sortKey: 'sk' } as const;

/** Global secondary index over user heads: which users have a session due to close. */
export const EXPIRY_INDEX = {
  name: 'expiry',
  /** `exp#<shard>`: spreads the index over shards so no partition is hot. */
  partitionKey: 'expShard',
  /** Smallest `end + gap` over the user's pending sessions: due when the watermark is above it. */
  sortKey: 'expiresAt',
} as const;

/** Attribute DynamoDB TTL deletes by (epoch seconds), set on object markers only: a cloud-side cleanup. */
export const TTL_ATTRIBUTE = 'ttl';
