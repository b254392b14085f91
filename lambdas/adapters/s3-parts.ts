/**
 * Where the parts of shards' state live: S3 objects under `_sessionizer/state/<table>/` in the output bucket.
 * Parts are immutable and their names never reused, so S3's strong read-after-write consistency is all they need, and
 * S3 bills a part by the request, not by its size as DynamoDB does (docs/design.md, "Why this layout").
 */
import { INTERNAL_PREFIX } from '../core/schema.ts';
import type { PartObjects } from '../pipeline/state-store.ts';
import { ObjectNotFoundError } from './errors.ts';
import type { S3ObjectStore } from './s3.ts';

/** Prefix of the state's objects in the output bucket (kept: no lifecycle rule expires it). */
export const STATE_PREFIX = `${INTERNAL_PREFIX}state/`;

export class S3PartObjects implements PartObjects {
  private readonly prefix: string;

  /** `table`: the state table's name, so deployments that share a bucket keep their parts apart. */
  constructor(
    private readonly objects: S3ObjectStore,
    private readonly bucket: string,
    table: string,
  ) {
    this.prefix = `${STATE_PREFIX}${table}/`;
  }

  /** The object key of a part. */
  key(shard: number, id: string): string {
    return `${this.prefix}shard-${shard}/${id}`;
  }

  async put(shard: number, id: string, bytes: Uint8Array): Promise<void> {
    await this.objects.put(this.bucket, this.key(shard, id), bytes, 'application/octet-stream');
  }

  async get(shard: number, id: string): Promise<Buffer | undefined> {
    try {
      return await this.objects.getBytes(this.bucket, this.key(shard, id));
    } catch (error) {
      if (error instanceof ObjectNotFoundError) return undefined;
      throw error;
    }
  }

  async delete(shard: number, id: string): Promise<void> {
    await this.objects.delete(this.bucket, this.key(shard, id));
  }

  /** The keys of every part object of the table, in key order. */
  async keys(): Promise<string[]> {
    return (await this.objects.listAll(this.bucket, this.prefix)).map((o) => o.key);
  }

  /** Deletes part objects by key (migrate's cleanup of a run that did not finish). */
  async deleteKeys(keys: readonly string[]): Promise<void> {
    for (const key of keys) await this.objects.delete(this.bucket, key);
  }
}
