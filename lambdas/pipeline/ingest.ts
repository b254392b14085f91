/**
 * Ingest of one object version (docs/design.md, "Ingest"): claim it (which fixes its processing clock), stage
 * it, append its entry to the log. A version whose entry the log holds is a duplicate and changes nothing; a retry
 * after a crash at any point repeats the same staged bytes under the same keys and finds or makes the same entry.
 */
import { createHash } from 'node:crypto';
import type { S3ObjectStore } from '../adapters/s3.ts';
import type { Config } from '../config.ts';
import type { LogEntry } from '../core/log.ts';
import type { EntryReader } from './entries.ts';
import type { Staging } from './staging.ts';
import type { StateStore } from './state-store.ts';

export interface ObjectRef {
  readonly bucket: string;
  readonly key: string;
  /** ETag from the event or listing; read from the object when absent. */
  readonly etag?: string;
  /** Version id from the event (a versioned bucket): the version read, whatever happened to the key since. */
  readonly versionId?: string;
  /** Another spelling of the key to use if `key` does not exist (an EventBridge key, URL-encoded or not). */
  readonly altKey?: string;
}

export interface IngestResult {
  readonly object: string;
  /**
   * `logged`: its entry is in the log now; `duplicate`: it was already; `deleted` / `superseded`: it could not be
   * read (deleted, or overwritten on a bucket without versions), and its entry holds one rejected record.
   */
  readonly outcome: 'logged' | 'duplicate' | 'superseded' | 'deleted';
  /** The object's log entry (absent for an object processed by the first state layout). */
  readonly entry?: LogEntry;
}

/** Identity of an input object version: bucket, key and ETag. Names its claim, staged data and rejected records. */
export function objectId(bucket: string, key: string, etag: string): string {
  return createHash('sha256').update(`${bucket}\n${key}\n${etag}`).digest('hex').slice(0, 20);
}

export interface IngestDeps {
  readonly config: Config;
  readonly store: StateStore;
  readonly objects: S3ObjectStore;
  readonly staging: Staging;
  readonly entries: EntryReader;
  readonly now: () => number;
}

export class Ingest {
  constructor(private readonly deps: IngestDeps) {}

  async ingest(input: ObjectRef): Promise<IngestResult> {
    const { objects, store } = this.deps;
    let ref = input;
    if (ref.altKey !== undefined && ref.altKey !== ref.key && !(await objects.exists(ref.bucket, ref.key))) {
      ref = { ...ref, key: ref.altKey };
    }
    const object = `s3://${ref.bucket}/${ref.key}`;
    if (!ref.etag) {
      const found = await objects.head(ref.bucket, ref.key, ref.versionId);
      if (found)
        ref = { ...ref, etag: found.etag, ...(found.versionId ? { versionId: found.versionId } : {}) };
    }
    // the ETag is the identity (the same content uploaded again is a duplicate); a version id, when known, is what
    // is read, so an overwrite between the event and the read cannot change what this event stands for. An object
    // deleted before even its ETag could be read is one object-level rejected record, under the key's identity.
    const id = objectId(ref.bucket, ref.key, ref.etag ?? 'deleted');
    const known = await store.getClaim(id);
    if (known) {
      if (known.outcome === 'migrated') return { object, outcome: 'duplicate' };
      const logged = await store.loggedEntry(known);
      if (logged) {
        this.deps.entries.remember(logged);
        return { object, outcome: 'duplicate', entry: logged };
      }
    }
    const claim = known ?? (await store.claim(id, this.deps.now()));
    const { draft, unreadable } = await this.deps.staging.stage(
      {
        bucket: ref.bucket,
        key: ref.key,
        ...(ref.etag ? { etag: ref.etag } : {}),
        ...(ref.versionId ? { versionId: ref.versionId } : {}),
      },
      id,
      claim.clock,
    );
    const entry = await store.append(draft, claim, this.deps.now, this.deps.config.session);
    await store.setClaimLogged(id);
    this.deps.entries.remember(entry);
    const outcome = unreadable === 'changed' ? 'superseded' : unreadable === 'deleted' ? 'deleted' : 'logged';
    return { object, outcome, entry };
  }
}
