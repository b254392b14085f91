/**
 * Catch-up by listing (docs/design.md, "Scheduled run"): objects under the visits prefix (and with the suffix the
 * notification filters on) that no event delivered are ingested, a bounded number per run, resuming from a cursor
 * so that a large prefix is covered over several runs. Objects older than the duplicate check remembers are left
 * alone: their claims may be gone, and taking them for new would process them twice. One failing object does not
 * stop the others; the run reports the failures at its end.
 */

import type { S3ObjectStore } from '../adapters/s3.ts';
import type { Config } from '../config.ts';
import { type IngestResult, type ObjectRef, objectId } from './ingest.ts';
import { CLAIM_RETENTION_DAYS } from './records.ts';
import type { StateStore } from './state-store.ts';

export interface ListingOptions {
  /** Ignore the cursor and the per-run limit: every object under the prefix. */
  readonly all?: boolean;
  /** Told of each object ingested. */
  readonly onObject?: (result: IngestResult) => void;
  /** Told of each object skipped (already logged, or too old to tell). */
  readonly onSkip?: () => void;
}

export interface ListingResult {
  readonly ingested: IngestResult[];
  /** Objects older than the claims are kept, left alone. */
  readonly tooOld: number;
  readonly failures: { readonly key: string; readonly error: Error }[];
}

export async function catchUpByListing(
  deps: {
    readonly config: Config;
    readonly store: StateStore;
    readonly objects: S3ObjectStore;
    readonly now: () => number;
    readonly ingest: (ref: ObjectRef) => Promise<IngestResult>;
  },
  options: ListingOptions = {},
): Promise<ListingResult> {
  const { config, store, objects } = deps;
  const { visitsBucket: bucket, visitsPrefix: prefix } = config;
  const limit = options.all ? Number.POSITIVE_INFINITY : config.catchUpMaxObjects;
  const ingested: IngestResult[] = [];
  const failures: ListingResult['failures'] = [];
  let tooOld = 0;
  const oldest = deps.now() - (CLAIM_RETENTION_DAYS - 1) * 86_400_000;
  let cursor = options.all ? undefined : await store.getCursor();
  const startedAt = cursor;
  for (;;) {
    const page = await objects.list(bucket, prefix, cursor, 1000);
    const candidates = page.objects.filter(
      (o) => !o.key.endsWith('/') && o.key.endsWith(config.visitsSuffix),
    );
    const claims = await store.getClaims(candidates.map((o) => objectId(bucket, o.key, o.etag)));
    for (const o of candidates) {
      const claim = claims.get(objectId(bucket, o.key, o.etag));
      if (claim?.logged || claim?.outcome !== undefined) {
        options.onSkip?.();
        continue;
      }
      if (o.lastModified !== undefined && o.lastModified.getTime() < oldest) {
        tooOld++;
        options.onSkip?.();
        continue;
      }
      try {
        const result = await deps.ingest({ bucket, key: o.key, etag: o.etag });
        ingested.push(result);
        options.onObject?.(result);
      } catch (error) {
        failures.push({ key: o.key, error: error as Error });
        continue;
      }
      if (ingested.length >= limit) {
        await store.setCursor(o.key, deps.now());
        return { ingested, tooOld, failures };
      }
    }
    const last = page.objects[page.objects.length - 1];
    if (!page.truncated || !last) {
      if (startedAt !== undefined || cursor !== undefined) await store.setCursor(undefined, deps.now());
      return { ingested, tooOld, failures };
    }
    cursor = last.key;
    if (!options.all) await store.setCursor(cursor, deps.now());
  }
}
