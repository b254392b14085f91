/**
 * The pipeline: what one batch (input object), one closing run, one scheduled run and one flush do, over the state
 * store and the object store. Decisions about sessions come from lambdas/core; this module orders the writes so that
 * a retry after a crash at any point, or a concurrent invocation, leaves every output written exactly once.
 *
 * Batch (one input object), each step idempotent:
 *  1. Claim the object's marker (a lease). The watermark before the batch is fixed at the first claim.
 *  2. Parse the object in segments of `segmentVisits` visits. For every user of a segment: read the user's state,
 *     sessionize (pure), write new visits (inline in the head, or a chunk item), the late visits, then the head,
 *     conditional on its version. The head remembers the segment, so a retried segment skips that user.
 *  3. Write the segment's late visits and rejected records (deterministic keys: a retry replaces them).
 *  4. Advance the watermark (conditional: only forward), run a closing, mark the object done.
 *
 * Closing run (id `run`, watermark W):
 *  1. Claim the run's record (a lease), list the due users from the expiry index, store that list.
 *  2. Mark each due user's due sessions as closing by this run (conditional head write): they are frozen.
 *  3. Write the run's sessions, one object per `dt` (deterministic content and key), then note the record written.
 *  4. Finalize each user (drop the closed visits, conditional head write), delete the record.
 *  A crash anywhere repeats the same steps with the same content; a run whose owner died is finished by the next
 *  run that meets one of its users.
 */
import pLimit from 'p-limit';
import pRetry from 'p-retry';
import { createHash } from 'node:crypto';
import type { Config } from './config.ts';
import { parseVisits } from './core/parse.ts';
import {
  LATE_VISITS,
  REJECTED,
  SESSIONS,
  latePartition,
  partition,
  sessionPartition,
  toJsonLine,
} from './core/schema.ts';
import { cutSessions, isClosedBy, mergeVisitsSorted, sessionizeBatch } from './core/sessionize.ts';
import {
  type AppliedEntry,
  CHUNK_MAX_BYTES,
  INLINE_MAX_BYTES,
  chunkId,
  type UserHead,
  closedBoundary,
  closingVisits,
  expiresAt,
  expiryShard,
  finalizeClosing,
  indexValue,
  pendingSessions,
  visitBytes,
  visitsBytes,
} from './core/state.ts';
import { utcDate } from './core/time.ts';
import type { ClosedSession, LateVisit, PageVisit, Rejected, Visit } from './core/types.ts';
import type { DynamoStateStore, MarkerCounts, StoredLate } from './adapters/dynamo.ts';
import { CatchUpError, ConflictError, ObjectBusyError, ObjectNotFoundError } from './adapters/errors.ts';
import type { S3ObjectStore } from './adapters/s3.ts';
import { type Logger, silentLogger } from './observability.ts';

export interface ObjectRef {
  readonly bucket: string;
  readonly key: string;
  /** ETag from the event or listing; read from the object when absent. */
  readonly etag?: string;
  /** Another spelling of the key to use if `key` does not exist (an EventBridge key, URL-encoded or not). */
  readonly altKey?: string;
}

export interface BatchSummary extends MarkerCounts {
  readonly object: string;
  readonly outcome: 'processed' | 'duplicate' | 'deleted' | 'superseded';
  readonly watermark: number;
}

export interface ScheduledSummary {
  readonly caughtUp: BatchSummary[];
  readonly sessionsClosed: number;
  readonly watermark: number;
  readonly idleAdvanced: boolean;
}

export interface PipelineDeps {
  readonly config: Config;
  readonly store: DynamoStateStore;
  readonly objects: S3ObjectStore;
  /** Wall clock (ms). Tests move it to let leases run out. */
  readonly now?: () => number;
  readonly log?: Logger;
  /** User reads/writes in flight at once. @default 16 */
  readonly concurrency?: number;
  /** Visits per segment of a batch (bounds memory). @default 50,000 */
  readonly segmentVisits?: number;
  /** Days a done object marker is kept (DynamoDB TTL, cloud only). @default 400 */
  readonly markerTtlDays?: number;
}

/** Identity of an input object version: bucket, key and ETag. Names the marker, chunks and output objects. */
export function objectId(bucket: string, key: string, etag: string): string {
  return createHash('sha256').update(`${bucket}\n${key}\n${etag}`).digest('hex').slice(0, 20);
}

/** Users whose sessions one output object (per `dt`) of a closing holds. */
const USERS_PER_OUTPUT_GROUP = 500;

/** Retries a step on write conflicts, with exponential backoff and jitter (p-retry). */
function onConflict<T>(step: () => Promise<T>, onRetry: () => void): Promise<T> {
  return pRetry(step, {
    retries: 30,
    minTimeout: 5,
    maxTimeout: 500,
    factor: 2,
    randomize: true,
    shouldRetry: ({ error }) => error instanceof ConflictError,
    onFailedAttempt: ({ error }) => {
      if (error instanceof ConflictError) onRetry();
    },
  });
}

/** Zeroed batch counters (the fields of an object marker's counts). */
export function emptyCounts(): { -readonly [K in keyof MarkerCounts]: number } {
  return { lines: 0, visits: 0, accepted: 0, duplicates: 0, late: 0, rejected: 0, sessionsClosed: 0 };
}

/** Adds counters into `total`, field by field. */
export function addCounts(
  total: { -readonly [K in keyof MarkerCounts]: number },
  counts: Partial<MarkerCounts>,
): void {
  for (const k of Object.keys(total) as (keyof MarkerCounts)[]) total[k] += counts[k] ?? 0;
}

export class Pipeline {
  readonly config: Config;
  private readonly store: DynamoStateStore;
  private readonly objects: S3ObjectStore;
  private readonly now: () => number;
  private readonly log: Logger;
  private readonly concurrency: number;
  private readonly segmentVisits: number;
  private readonly markerTtlDays: number;
  /** State write conflicts seen (optimistic concurrency retries). */
  conflicts = 0;
  /** Batches (object ids) known to be done, so their applied entries can be dropped without a read. */
  private readonly doneBatches = new Set<string>();
  /** Objects the current scheduled run's catch-up could not process. */
  private catchUpFailures: { key: string; error: Error }[] = [];

  constructor(deps: PipelineDeps) {
    this.config = deps.config;
    this.store = deps.store;
    this.objects = deps.objects;
    this.now = deps.now ?? Date.now;
    this.log = deps.log ?? silentLogger;
    this.concurrency = deps.concurrency ?? 16;
    this.segmentVisits = deps.segmentVisits ?? 25_000;
    this.markerTtlDays = deps.markerTtlDays ?? 400;
  }

  private get session() {
    return this.config.session;
  }

  private shardOf(userId: string): number {
    return expiryShard(userId, this.config.expiryShards);
  }

  private retry<T>(step: () => Promise<T>): Promise<T> {
    return onConflict(step, () => this.conflicts++);
  }

  // ---- batch ------------------------------------------------------------------------------------------------

  /** Processes one input object (one batch). A second call for the same object version is a no-op. */
  async processObject(input: ObjectRef): Promise<BatchSummary> {
    let ref = input;
    if (
      ref.altKey !== undefined &&
      ref.altKey !== ref.key &&
      !(await this.objects.exists(ref.bucket, ref.key))
    ) {
      ref = { ...ref, key: ref.altKey };
    }
    const source = `s3://${ref.bucket}/${ref.key}`;
    let etag = ref.etag;
    let opened: Awaited<ReturnType<S3ObjectStore['open']>> | undefined;
    if (!etag) {
      try {
        opened = await this.objects.open(ref.bucket, ref.key);
      } catch (error) {
        if (error instanceof ObjectNotFoundError) return this.deletedWithoutEtag(ref);
        throw error;
      }
      etag = opened.etag;
    }
    const id = objectId(ref.bucket, ref.key, etag);
    const existing = await this.store.getMarker(id);
    if (existing?.status === 'done') {
      opened?.close();
      return this.duplicate(source, existing.counts);
    }
    const checkpoint = await this.store.getCheckpoint();
    let marker: Awaited<ReturnType<DynamoStateStore['claimMarker']>>;
    try {
      marker = await this.store.claimMarker(
        { id, bucket: ref.bucket, key: ref.key, etag },
        this.now(),
        this.config.leaseMs,
        checkpoint.watermark,
      );
    } catch (error) {
      if (!(error instanceof ConflictError)) throw error;
      opened?.close();
      const now = await this.store.getMarker(id);
      if (now?.status === 'done') return this.duplicate(source, now.counts);
      throw new ObjectBusyError(
        `${source} is being processed by another invocation (lease until ${now?.leaseUntil})`,
      );
    }
    try {
      return await this.runBatch(ref, id, etag, marker.watermarkBefore, utcDate(marker.claimedAt), opened);
    } catch (error) {
      await this.store.releaseMarker(id).catch(() => undefined);
      throw error;
    }
  }

  private duplicate(object: string, counts: MarkerCounts | undefined): BatchSummary {
    this.log.log('info', 'duplicate event: object already processed', { object });
    return { object, outcome: 'duplicate', watermark: Number.NaN, ...emptyCounts(), ...(counts ?? {}) };
  }

  /** An object deleted before even its ETag could be read: one object-level rejected record, keyed by its name. */
  private async deletedWithoutEtag(ref: ObjectRef): Promise<BatchSummary> {
    const id = objectId(ref.bucket, ref.key, 'deleted');
    await this.writeRejected(id, 'object', utcDate(this.now()), [
      {
        sourceObject: `s3://${ref.bucket}/${ref.key}`,
        line: null,
        reason: 'object was deleted before it could be read',
        raw: '',
      },
    ]);
    return {
      object: `s3://${ref.bucket}/${ref.key}`,
      outcome: 'deleted',
      watermark: Number.NaN,
      ...emptyCounts(),
      lines: 1,
      rejected: 1,
    };
  }

  private async runBatch(
    ref: ObjectRef,
    id: string,
    etag: string,
    watermarkBefore: number,
    processingDate: string,
    alreadyOpened: Awaited<ReturnType<S3ObjectStore['open']>> | undefined,
  ): Promise<BatchSummary> {
    const source = `s3://${ref.bucket}/${ref.key}`;
    const counts = emptyCounts();
    const conflictsBefore = this.conflicts;
    let opened = alreadyOpened;
    if (!opened) {
      try {
        opened = await this.objects.open(ref.bucket, ref.key, etag);
      } catch (error) {
        if (!(error instanceof ObjectNotFoundError)) throw error;
        if (error.reason === 'changed') {
          // the new version has its own event (and catch-up sees it); this version is gone
          await this.store.completeMarker(id, 'superseded', counts, this.ttl());
          return { object: source, outcome: 'superseded', watermark: watermarkBefore, ...counts };
        }
        const rejected: Rejected = {
          sourceObject: source,
          line: null,
          reason: 'object was deleted before it could be read',
          raw: '',
        };
        await this.writeRejected(id, 'object', processingDate, [rejected]);
        counts.lines = 1;
        counts.rejected = 1;
        await this.store.completeMarker(id, 'deleted', counts, this.ttl());
        return { object: source, outcome: 'deleted', watermark: watermarkBefore, ...counts };
      }
    }

    let maxVisitTime = Number.NEGATIVE_INFINITY;
    let segment = 0;
    let visits: Visit[] = [];
    let rejected: Rejected[] = [];
    const flushSegment = async (): Promise<void> => {
      if (visits.length === 0 && rejected.length === 0) return;
      const result = await this.applySegment(source, `${id}:${segment}`, visits, watermarkBefore);
      await this.writeRejected(id, String(segment), processingDate, rejected);
      counts.visits += visits.length;
      counts.rejected += rejected.length;
      counts.lines += visits.length + rejected.length;
      counts.accepted += result.accepted;
      counts.duplicates += result.duplicates;
      counts.late += result.late;
      segment++;
      visits = [];
      rejected = [];
    };
    for await (const chunk of parseVisits(opened.body, {
      sourceObject: source,
      ...(opened.gzipEncoded ? { gzip: true } : {}),
    })) {
      for (const v of chunk.visits) {
        if (v.t > maxVisitTime) maxVisitTime = v.t;
        visits.push(v);
      }
      for (const r of chunk.rejected) rejected.push(r);
      if (visits.length >= this.segmentVisits) await flushSegment();
    }
    await flushSegment();

    // advance the watermark (only forward; the checkpoint is written only when it really moves)
    const target = Math.max(watermarkBefore, maxVisitTime - this.session.allowedLatenessMs);
    let checkpoint = await this.store.getCheckpoint();
    if (target > checkpoint.watermark) {
      await this.store.advanceWatermark(target, maxVisitTime, this.now());
      checkpoint = await this.store.getCheckpoint();
    }
    counts.sessionsClosed = await this.closeRun(`b-${id}`, checkpoint.watermark);
    await this.store.completeMarker(id, 'processed', counts, this.ttl());
    this.rememberDone(id);
    const summary: BatchSummary = {
      object: source,
      outcome: 'processed',
      watermark: checkpoint.watermark,
      ...counts,
    };
    this.log.log('info', 'batch processed', { ...summary, watermark: iso(checkpoint.watermark) });
    this.log.metrics({
      ObjectsProcessed: 1,
      VisitsProcessed: counts.visits,
      SessionsClosed: counts.sessionsClosed,
      LateVisits: counts.late,
      RejectedRecords: counts.rejected,
      Duplicates: counts.duplicates,
      StateWriteConflicts: this.conflicts - conflictsBefore,
      ...(Number.isFinite(checkpoint.watermark) && Number.isFinite(maxVisitTime)
        ? { WatermarkLagSeconds: Math.max(0, (this.now() - checkpoint.watermark) / 1000) }
        : {}),
    });
    return summary;
  }

  private ttl(): number {
    return Math.floor(this.now() / 1000) + this.markerTtlDays * 86_400;
  }

  private async writeRejected(
    id: string,
    part: string,
    date: string,
    rejected: readonly Rejected[],
  ): Promise<void> {
    if (rejected.length === 0) return;
    const body = rejected.map((r) => toJsonLine(REJECTED, r)).join('');
    await this.objects.put(
      this.config.outputBucket,
      `${REJECTED.prefix}dt=${date}/${id}-${part}.jsonl`,
      body,
    );
  }

  /** Applies one segment of a batch to every user in it, then writes the segment's late visits. */
  private async applySegment(
    source: string,
    applyKey: string,
    visits: readonly Visit[],
    watermarkBefore: number,
  ): Promise<{ accepted: number; duplicates: number; late: number }> {
    const byUser = new Map<string, Visit[]>();
    for (const v of visits) {
      const list = byUser.get(v.userId);
      if (list) list.push(v);
      else byUser.set(v.userId, [v]);
    }
    const limit = pLimit(this.concurrency);
    const entries = await Promise.all(
      [...byUser].map(([userId, userVisits]) =>
        limit(() => this.applyUser(source, applyKey, userId, userVisits, watermarkBefore)),
      ),
    );
    const total = { accepted: 0, duplicates: 0, late: 0 };
    for (const e of entries) {
      total.accepted += e.accepted;
      total.duplicates += e.duplicates;
      total.late += e.late;
    }
    if (total.late > 0) {
      const stored = await this.store.queryLate(applyKey);
      const late: LateVisit[] = stored
        .sort((a, b) => a.line - b.line || (a.userId < b.userId ? -1 : 1))
        .map((l: StoredLate) => ({ ...l, sourceObject: source, sourceLine: l.line }));
      const [id, segment] = applyKey.split(':');
      for (const [dt, records] of partition(late, latePartition)) {
        const body = records.map((r) => toJsonLine(LATE_VISITS, r)).join('');
        await this.objects.put(
          this.config.outputBucket,
          `${LATE_VISITS.prefix}dt=${dt}/${id}-${segment}.jsonl`,
          body,
        );
      }
    }
    return total;
  }

  /** Applies a segment's visits of one user: exactly once, whatever retries and concurrent writers do. */
  private applyUser(
    source: string,
    applyKey: string,
    userId: string,
    visits: readonly Visit[],
    watermarkBefore: number,
  ): Promise<AppliedEntry> {
    return this.retry(async () => {
      const { head, chunks, commits, orphans } = await this.store.readUser(userId);
      const done = head.applied[applyKey];
      if (done) {
        // applied before a crash: finish what may be missing (commit items of its chunks)
        for (let i = 0; i < (done.chunks ?? 0); i++) {
          const id = chunkId(applyKey, i);
          if (chunks.has(id) && !commits.has(id)) await this.store.putCommit(userId, id);
        }
        return done;
      }
      const boundary = closedBoundary(head);
      const before = pendingSessions(head, chunks, this.session);
      const result = sessionizeBatch({
        pending: new Map([[userId, before]]),
        visits,
        watermark: watermarkBefore,
        config: this.session,
        sourceObject: source,
        close: false,
        ...(Number.isFinite(boundary) ? { closedThrough: new Map([[userId, boundary]]) } : {}),
      });
      const outcome = result.users.get(userId);
      const added = outcome?.added ?? [];
      let inline = head.inline;
      const newChunks: string[] = [];
      if (added.length > 0) {
        if (visitsBytes(inline) + visitsBytes(added) <= INLINE_MAX_BYTES) {
          inline = mergeVisitsSorted(inline, added);
        } else {
          // spill: new visits go to chunk items of their own (committed after the head), so no write grows with
          // the session's length
          let part: PageVisit[] = [];
          let bytes = 0;
          const flushPart = async (): Promise<void> => {
            const id = chunkId(applyKey, newChunks.length);
            await this.store.putChunk(userId, id, part);
            newChunks.push(id);
            part = [];
            bytes = 0;
          };
          for (const v of added) {
            part.push(v);
            bytes += visitBytes(v);
            if (bytes >= CHUNK_MAX_BYTES) await flushPart();
          }
          if (part.length > 0) await flushPart();
        }
      }
      if (result.late.length > 0) {
        await this.store.putLate(
          applyKey,
          userId,
          result.late.map((l) => ({
            userId,
            t: l.t,
            page: l.page,
            line: l.sourceLine,
            watermark: l.watermark,
          })),
        );
      }
      const entry: AppliedEntry = {
        accepted: result.accepted,
        duplicates: result.duplicates,
        late: result.late.length,
        at: this.now(),
        ...(newChunks.length > 0 ? { chunks: newChunks.length } : {}),
      };
      const { kept, pruned } = await this.pruneApplied(head.applied);
      const next: UserHead = { ...head, inline, applied: { ...kept, [applyKey]: entry } };
      // a user whose visits were all late keeps the sessions it had
      const pending = outcome?.pending ?? before;
      await this.store.writeHead(
        next,
        head.version,
        indexValue(head.indexed, expiresAt(next, pending, this.session)),
        this.shardOf(userId),
      );
      for (const id of newChunks) await this.store.putCommit(userId, id);
      // leftovers of failed writes of batches now done can go: nobody writes them any more
      for (const id of orphans) {
        if (pruned.has(id.slice(0, id.lastIndexOf('-')))) await this.store.deleteChunk(userId, id);
      }
      return entry;
    });
  }

  /**
   * Drops the applied-segment entries of batches that are done (their marker says so): a done batch is never
   * retried. Only entries older than a minute are checked, so this costs a read only now and then.
   */
  private async pruneApplied(
    applied: UserHead['applied'],
  ): Promise<{ kept: Record<string, AppliedEntry>; pruned: Set<string> }> {
    const batchOf = (key: string) => key.split(':')[0]!;
    const old = this.now() - Math.min(this.config.leaseMs, 60_000);
    // batches this process saw done cost nothing to check; other old entries cost one marker read
    const unknown = [
      ...new Set(
        Object.entries(applied)
          .filter(([key, e]) => e.at < old && !this.doneBatches.has(batchOf(key)))
          .map(([key]) => batchOf(key)),
      ),
    ];
    if (unknown.length > 0) {
      for (const [id, marker] of await this.store.getMarkers(unknown)) {
        if (marker.status === 'done') this.rememberDone(id);
      }
    }
    const kept: Record<string, AppliedEntry> = {};
    const pruned = new Set<string>();
    for (const [key, e] of Object.entries(applied)) {
      if (this.doneBatches.has(batchOf(key))) pruned.add(key);
      else kept[key] = e;
    }
    return { kept, pruned };
  }

  /** Remembers a batch as done (bounded: the oldest are forgotten first). */
  private rememberDone(id: string): void {
    this.doneBatches.add(id);
    if (this.doneBatches.size > 10_000) {
      const first = this.doneBatches.values().next().value;
      if (first !== undefined) this.doneBatches.delete(first);
    }
  }

  // ---- closing ----------------------------------------------------------------------------------------------

  /**
   * Closes, exactly once, every pending session the watermark closes (`Infinity`: all of them, a flush).
   * Returns how many sessions this run wrote.
   */
  async closeRun(run: string, watermark: number): Promise<number> {
    const record = await this.store.getClosing(run);
    const w = record ? record.watermark : watermark;
    const due = record?.written ? [] : await this.dueUsers(w);
    if (!record && due.length === 0) return 0;
    if (record && record.leaseUntil >= this.now()) {
      throw new ObjectBusyError(
        `closing ${run} is owned by another invocation until ${iso(record.leaseUntil)}`,
      );
    }
    try {
      await this.store.claimClosing(run, w, this.now(), this.config.leaseMs, record?.leaseUntil);
    } catch (error) {
      if (error instanceof ConflictError)
        throw new ObjectBusyError(`closing ${run} is owned by another invocation`);
      throw error;
    }
    try {
      const users = [...new Set([...(record?.users ?? []), ...due])].sort();
      if (!record?.written) {
        if (!record || users.length > record.users.length) await this.store.putClosingUsers(run, users);
        const limit = pLimit(this.concurrency);
        await Promise.all(users.map((u) => limit(() => this.markUser(u, run, w))));
      }
      return await this.finishRun(run, users, record?.written ? record.sessions : undefined);
    } catch (error) {
      await this.store.releaseClosing(run).catch(() => undefined);
      throw error;
    }
  }

  private async dueUsers(watermark: number): Promise<string[]> {
    if (watermark === Number.NEGATIVE_INFINITY) return []; // nothing can be due before any visit
    const shards = Array.from({ length: this.config.expiryShards }, (_, i) => i);
    const lists = await Promise.all(shards.map((s) => this.store.dueUsers(s, watermark)));
    return lists.flat();
  }

  /** Freezes a user's due sessions as closing by `run`. Finishes an abandoned run it meets on the way. */
  private markUser(userId: string, run: string, watermark: number): Promise<void> {
    return this.retry(async () => {
      const { head, chunks } = await this.store.readUser(userId);
      if (head.closing?.run === run) return;
      if (head.closing) {
        // another run is closing this user: leave it to that run, or finish it if its owner died
        if (!(await this.finishAbandoned(head.closing.run))) return;
        throw new ConflictError(`user ${userId} was closing in ${head.closing.run}`, userId);
      }
      const pending = pendingSessions(head, chunks, this.session);
      const due = pending.filter((s) => isClosedBy(s, watermark, this.session));
      const last = due[due.length - 1];
      if (!last) {
        // listed by an earlier expiry than its real one (see indexValue): store the real one, once
        const real = expiresAt(head, pending, this.session);
        if (real !== head.indexed) await this.store.writeHead(head, head.version, real, this.shardOf(userId));
        return;
      }
      const next: UserHead = { ...head, closing: { run, through: last.end } };
      await this.store.writeHead(next, head.version, head.indexed, this.shardOf(userId));
    });
  }

  /**
   * Finishes another run whose owner died (its lease ran out). Returns false when that run is alive (owned), true
   * when it was finished here or had finished meanwhile (the caller re-reads).
   */
  private async finishAbandoned(run: string): Promise<boolean> {
    const record = await this.store.getClosing(run);
    if (!record) return true;
    if (record.leaseUntil >= this.now()) return false;
    try {
      await this.store.claimClosing(
        run,
        record.watermark,
        this.now(),
        this.config.leaseMs,
        record.leaseUntil,
      );
    } catch (error) {
      if (error instanceof ConflictError) return false; // someone else took it over
      throw error;
    }
    this.log.log('warn', 'finishing an abandoned closing run', { run, users: record.users.length });
    await this.finishRun(run, record.users, record.written ? record.sessions : undefined);
    return true;
  }

  /**
   * Writes a run's sessions (unless `written` says how many were already written) and finalizes its users.
   * Returns the number of sessions the run closed.
   */
  private async finishRun(
    run: string,
    users: readonly string[],
    written: number | undefined,
  ): Promise<number> {
    const limit = pLimit(this.concurrency);
    let count = written ?? 0;
    if (written === undefined) {
      // users in fixed groups (the sorted list cut every USERS_PER_OUTPUT_GROUP), each written as one object per
      // `dt`: memory stays bounded, and the same closing always makes the same objects
      const sorted = [...users].sort();
      for (let g = 0; g * USERS_PER_OUTPUT_GROUP < sorted.length; g++) {
        const group = sorted.slice(g * USERS_PER_OUTPUT_GROUP, (g + 1) * USERS_PER_OUTPUT_GROUP);
        const perUser = await Promise.all(
          group.map((u) =>
            limit(async (): Promise<ClosedSession[]> => {
              const { head, chunks } = await this.store.readUser(u);
              if (head.closing?.run !== run) return [];
              return cutSessions(u, closingVisits(head, chunks), this.session);
            }),
          ),
        );
        const sessions = perUser.flat();
        count += sessions.length;
        for (const [dt, list] of partition(sessions, sessionPartition)) {
          const body = list.map((s) => toJsonLine(SESSIONS, s)).join('');
          // the name has the run and a digest of its sessions: a retry of this closing rewrites the same object,
          // while a later closing that reuses the run id (a redelivered scheduled event) cannot overwrite it
          const digest = createHash('sha256');
          for (const s of list) digest.update(`${s.userId}\u0000${s.start}\n`);
          const key = `${SESSIONS.prefix}dt=${dt}/${run}-${String(g).padStart(5, '0')}-${digest.digest('hex').slice(0, 12)}.jsonl`;
          await this.objects.put(this.config.outputBucket, key, body);
        }
      }
      await this.store.markClosingWritten(run, count);
    }
    await Promise.all(users.map((u) => limit(() => this.finalizeUser(u, run))));
    await this.store.deleteClosing(run);
    if (count > 0) this.log.log('info', 'sessions closed', { run, sessions: count });
    return count;
  }

  private finalizeUser(userId: string, run: string): Promise<void> {
    return this.retry(async () => {
      const { head, chunks } = await this.store.readUser(userId);
      if (head.closing?.run !== run) return;
      const { head: next, droppedChunks } = finalizeClosing(head);
      const pending = pendingSessions(next, chunks, this.session);
      await this.store.writeHead(
        next,
        head.version,
        expiresAt(next, pending, this.session),
        this.shardOf(userId),
      );
      for (const id of droppedChunks) await this.store.deleteChunk(userId, id);
    });
  }

  // ---- scheduled run and flush ------------------------------------------------------------------------------

  /**
   * The scheduled run: idle advance (if on), catch-up of objects no event delivered (resumable through a cursor),
   * then a closing with the current watermark.
   */
  async scheduled(runId: string): Promise<ScheduledSummary> {
    this.catchUpFailures = [];
    let idleAdvanced = false;
    const idle = this.config.idleTimeoutMs;
    if (idle !== null) {
      const cp = await this.store.getCheckpoint();
      const now = this.now();
      if (cp.advancedAt > 0 && now - cp.advancedAt > idle) {
        idleAdvanced = await this.store.advanceWatermark(
          now - this.session.allowedLatenessMs,
          cp.maxVisitTime,
          now,
        );
      }
    }
    const caughtUp = await this.catchUp();
    const cp = await this.store.getCheckpoint();
    const sessionsClosed = await this.closeRun(`s-${runId}`, cp.watermark);
    // the lag is emitted on every scheduled run too, so its alarm sees it grow while no batch arrives
    this.log.metrics({
      SessionsClosed: sessionsClosed,
      ...(Number.isFinite(cp.watermark)
        ? { WatermarkLagSeconds: Math.max(0, (this.now() - cp.watermark) / 1000) }
        : {}),
    });
    this.log.log('info', 'scheduled run', {
      run: runId,
      caughtUp: caughtUp.length,
      sessionsClosed,
      watermark: iso(cp.watermark),
      idleAdvanced,
    });
    const failures = this.catchUpFailures;
    this.catchUpFailures = [];
    if (failures.length > 0) {
      throw new CatchUpError(
        `catch-up: ${failures.length} object(s) failed (${failures
          .slice(0, 3)
          .map((f) => `${f.key}: ${f.error.message}`)
          .join('; ')}); the closing ran, they are tried again next run`,
        { cause: failures[0]!.error },
      );
    }
    return { caughtUp, sessionsClosed, watermark: cp.watermark, idleAdvanced };
  }

  /** Processes visit objects that have no done marker, from the cursor on, at most `catchUpMaxObjects` a run. */
  async catchUp(
    onObject?: (summary: BatchSummary) => void,
    options: { all?: boolean; onSkip?: () => void } = {},
  ): Promise<BatchSummary[]> {
    const { visitsBucket, visitsPrefix } = this.config;
    const catchUpMaxObjects = options.all ? Number.POSITIVE_INFINITY : this.config.catchUpMaxObjects;
    const done: BatchSummary[] = [];
    const failures = this.catchUpFailures;
    let cursor = options.all ? undefined : await this.store.getCursor();
    let seen = 0;
    for (;;) {
      const page = await this.objects.list(visitsBucket, visitsPrefix, cursor, 1000);
      const candidates = page.objects.filter((o) => !o.key.endsWith('/'));
      const markers = await this.store.getMarkers(
        candidates.map((o) => objectId(visitsBucket, o.key, o.etag)),
      );
      for (const o of candidates) {
        const marker = markers.get(objectId(visitsBucket, o.key, o.etag));
        if (marker?.status === 'done' || (marker && marker.leaseUntil >= this.now())) {
          options.onSkip?.(); // done, or in progress elsewhere
          continue;
        }
        let summary: BatchSummary;
        try {
          summary = await this.processObject({ bucket: visitsBucket, key: o.key, etag: o.etag });
        } catch (error) {
          if (error instanceof ObjectBusyError) continue; // another invocation has it
          // one failing object must not stop the others (or the closing after the catch-up): it stays without a
          // done marker, so a later run tries it again; the scheduled run fails at its end so the alarm sees it
          this.log.log('error', 'catch-up: object failed', {
            object: `s3://${visitsBucket}/${o.key}`,
            error,
          });
          failures.push({ key: o.key, error: error as Error });
          continue;
        }
        done.push(summary);
        onObject?.(summary);
        if (++seen >= catchUpMaxObjects) {
          await this.store.setCursor(o.key, this.now());
          return done;
        }
      }
      const last = page.objects[page.objects.length - 1];
      if (!page.truncated || !last) {
        if (cursor !== undefined) await this.store.setCursor(undefined, this.now());
        return done;
      }
      cursor = last.key;
      await this.store.setCursor(cursor, this.now());
    }
  }

  /** Flush: closes every pending session regardless of the watermark. */
  async flush(runId: string): Promise<number> {
    const sessionsClosed = await this.closeRun(`f-${runId}`, Number.POSITIVE_INFINITY);
    this.log.metrics({ SessionsClosed: sessionsClosed });
    this.log.log('info', 'flush', { run: runId, sessionsClosed });
    return sessionsClosed;
  }
}

function iso(t: number): string | null {
  return Number.isFinite(t) ? new Date(t).toISOString() : null;
}
