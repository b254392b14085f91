/**
 * Staging (docs/design.md, "Staging"): an object's records are parsed once, in segments cut by line number (so a
 * retry cuts them the same however the bytes arrive), each segment's valid visits written split by shard under
 * `_sessionizer/staging/<object id>/<segment>` and its rejected lines under `rejected/`. Shards read their own section
 * of each segment, from this container's cache, from S3, or, if the staged object is gone, by staging again.
 */

import { ObjectNotFoundError } from '../adapters/errors.ts';
import type { S3ObjectStore } from '../adapters/s3.ts';
import type { Config } from '../config.ts';
import { formatDuration } from '../core/duration.ts';
import type { EntryDraft, LogEntry } from '../core/log.ts';
import { EARLIEST_VISIT_TIME, parseVisits, RecentStrings, type VisitTimeRange } from '../core/parse/index.ts';
import { INTERNAL_PREFIX, REJECTED, toJsonLine } from '../core/schema.ts';
import { splitByShard } from '../core/shards.ts';
import { decodeSegmentShard, encodeSegment } from '../core/staged.ts';
import { utcDate } from '../core/time.ts';
import type { Rejected, Visit } from '../core/types.ts';
import { ByteCache } from './cache.ts';

export const STAGING_PREFIX = `${INTERNAL_PREFIX}staging/`;

/** An object version to stage: where it is and which version. */
export interface ObjectVersion {
  readonly bucket: string;
  readonly key: string;
  readonly etag?: string;
  readonly versionId?: string;
}

export function stagedKey(id: string, segment: number): string {
  return `${STAGING_PREFIX}${id}/${String(segment).padStart(5, '0')}`;
}

/** What staging an object version gave: its log entry's draft, and why it could not be read, if it could not. */
export interface Staged {
  readonly draft: EntryDraft;
  readonly unreadable?: 'deleted' | 'changed';
}

/** One segment's records while it is being read. */
interface OpenSegment {
  readonly visits: Visit[];
  readonly rejected: Rejected[];
}

export class Staging {
  /** Staged segments this container wrote or read, so that applying what it staged needs no GET. */
  readonly cache: ByteCache;
  /** User ids and pages decoded lately, shared by the parses of this container. */
  private readonly strings = new RecentStrings();

  constructor(
    private readonly config: Config,
    private readonly objects: S3ObjectStore,
    cacheBytes = 128 * 1024 * 1024,
  ) {
    this.cache = new ByteCache(cacheBytes);
  }

  /**
   * Reads, parses and stages an object version. Returns the draft of its log entry, and whether the version could not
   * be read: deleted, or overwritten on a bucket without versions (its bytes are gone). An unreadable version is one
   * object-level rejected record.
   */
  async stage(version: ObjectVersion, id: string, clock: number): Promise<Staged> {
    const source = `s3://${version.bucket}/${version.key}`;
    const base = {
      kind: 'object' as const,
      id,
      source,
      clock,
      ...(version.etag ? { etag: version.etag } : {}),
      ...(version.versionId ? { versionId: version.versionId } : {}),
    };
    let opened: Awaited<ReturnType<S3ObjectStore['open']>>;
    try {
      opened = await this.objects.open(version.bucket, version.key, version);
    } catch (error) {
      if (!(error instanceof ObjectNotFoundError)) throw error;
      const gone: Rejected = {
        sourceObject: source,
        line: null,
        reason:
          error.reason === 'changed'
            ? 'object was overwritten before this version could be read (the bucket keeps no earlier versions); ' +
              'the new version is processed by its own event'
            : 'object was deleted before it could be read',
        raw: '',
      };
      await this.writeRejected(id, 0, clock, [gone]);
      const draft = { ...base, maxVisitTime: Number.NEGATIVE_INFINITY, segments: 0, shardVisits: [] };
      return { draft: { ...draft, lines: 1, visits: 0, rejected: 1 }, unreadable: error.reason };
    }
    const shards = this.config.shards;
    const shardVisits = new Array<number>(shards).fill(0);
    let maxVisitTime = Number.NEGATIVE_INFINITY;
    let lines = 0;
    let visits = 0;
    let rejected = 0;
    let written = 0; // segments written so far (every index below it)
    const open = new Map<number, OpenSegment>();
    const perSegment = this.config.segmentLines;
    const segmentOf = (line: number | null, last: number): number =>
      line === null ? last : Math.floor((line - 1) / perSegment);
    const take = (index: number): OpenSegment => {
      let s = open.get(index);
      if (s === undefined) open.set(index, (s = { visits: [], rejected: [] }));
      return s;
    };
    /** Writes every segment below `upTo` (empty ones too: a shard reads segments by index). */
    const writeSegmentsBelow = async (upTo: number): Promise<void> => {
      for (; written < upTo; written++) {
        const s = open.get(written) ?? { visits: [], rejected: [] };
        open.delete(written);
        const split = splitByShard(s.visits, shards);
        for (let i = 0; i < shards; i++) shardVisits[i]! += split[i]!.length;
        await this.putSegment(id, written, encodeSegment(split));
        await this.writeRejected(id, written, clock, s.rejected);
      }
    };
    let current = 0;
    for await (const chunk of parseVisits(opened.body, {
      sourceObject: source,
      visitTimes: this.visitTimes(clock),
      strings: this.strings,
      ...(opened.gzipEncoded ? { gzip: true } : {}),
    })) {
      for (const v of chunk.visits) {
        if (v.t > maxVisitTime) maxVisitTime = v.t;
        current = Math.max(current, segmentOf(v.line, current));
        take(segmentOf(v.line, current)).visits.push(v);
      }
      for (const r of chunk.rejected) {
        current = Math.max(current, segmentOf(r.line, current));
        take(segmentOf(r.line, current)).rejected.push(r);
      }
      visits += chunk.visits.length;
      rejected += chunk.rejected.length;
      lines += chunk.visits.length + chunk.rejected.length;
      await writeSegmentsBelow(current); // lines only grow: segments below the current one are complete
    }
    await writeSegmentsBelow(current + 1);
    return { draft: { ...base, maxVisitTime, segments: written, shardVisits, lines, visits, rejected } };
  }

  /**
   * Visit times an object claimed at `clock` may hold: from the Unix epoch (the first day Athena's partition
   * projection covers) to the clock plus the allowed future skew (a later one is a bad clock, not a visit).
   */
  private visitTimes(clock: number): VisitTimeRange {
    const skew = this.config.maxFutureSkewMs;
    return {
      earliest: EARLIEST_VISIT_TIME,
      earliestIs: 'the Unix epoch (the first day of the output partitions)',
      latest: clock + skew,
      latestIs: `the processing clock plus ${formatDuration(skew)} (SESSIONIZER_MAX_FUTURE_SKEW)`,
    };
  }

  private async putSegment(id: string, segment: number, bytes: Buffer): Promise<void> {
    const key = stagedKey(id, segment);
    await this.objects.put(this.config.outputBucket, key, bytes, 'application/octet-stream');
    this.cache.set(key, bytes);
  }

  /** Writes a segment's rejected records (deterministic key and content: a retry rewrites the same object). */
  private async writeRejected(
    id: string,
    segment: number,
    clock: number,
    records: readonly Rejected[],
  ): Promise<void> {
    if (records.length === 0) return;
    const body = records.map((r) => toJsonLine(REJECTED, r)).join('');
    const key = `${REJECTED.prefix}dt=${utcDate(clock)}/${id}-${String(segment).padStart(5, '0')}.jsonl`;
    await this.objects.put(this.config.outputBucket, key, body);
  }

  /** The valid visits of one shard in a logged object, in input order. */
  async shardVisits(entry: LogEntry, shard: number): Promise<Visit[]> {
    if ((entry.shardVisits[shard] ?? 0) === 0) return [];
    const out: Visit[] = [];
    for (let segment = 0; segment < entry.segments; segment++) {
      for (const v of decodeSegmentShard(await this.segment(entry, segment), shard)) out.push(v);
    }
    return out;
  }

  private async segment(entry: LogEntry, segment: number): Promise<Buffer> {
    const key = stagedKey(entry.id, segment);
    const cached = this.cache.get(key);
    if (cached) return cached;
    try {
      const bytes = await this.objects.getBytes(this.config.outputBucket, key);
      this.cache.set(key, bytes);
      return bytes;
    } catch (error) {
      if (!(error instanceof ObjectNotFoundError)) throw error;
    }
    // the staged object expired (or was deleted): stage the object again, from the version the entry names
    const restaged = await this.stage(versionOf(entry), entry.id, entry.clock);
    const again = this.cache.get(key);
    if (restaged.unreadable !== undefined || !again) {
      throw new ObjectNotFoundError(
        `${entry.source}: its staged visits and the object version are both gone`,
        'deleted',
      );
    }
    return again;
  }
}

function versionOf(entry: LogEntry): ObjectVersion {
  const m = /^s3:\/\/([^/]+)\/(.*)$/s.exec(entry.source);
  if (!m) throw new Error(`log entry ${entry.seq}: source ${entry.source} is not an S3 object`);
  return {
    bucket: m[1]!,
    key: m[2]!,
    ...(entry.etag ? { etag: entry.etag } : {}),
    ...(entry.versionId ? { versionId: entry.versionId } : {}),
  };
}
