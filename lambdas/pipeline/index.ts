/**
 * The pipeline (docs/design.md, "Protocol"): objects are ingested into the object log, then every shard is brought
 * up to the log's tail, closing what the log's watermarks close. Flushes and idle advances are log entries too,
 * so every shard applies them at the same place in the same order. Each step is idempotent and every write
 * conditional, so retries, crashes after any call and concurrent invocations leave each output written once.
 */
import pLimit from 'p-limit';
import type { S3ObjectStore } from '../adapters/s3.ts';
import type { Config } from '../config.ts';
import type { EntryDraft, LogEntry } from '../core/log.ts';
import { silentTelemetry, type Telemetry } from '../telemetry.ts';
import { ShardApplier, type ShardProgress } from './apply.ts';
import { EntryReader } from './entries.ts';
import { Ingest, type IngestResult, type ObjectRef } from './ingest.ts';
import { catchUpByListing, type ListingOptions } from './listing.ts';
import { Outbox } from './outbox.ts';
import type { Layout, ShardHead } from './records.ts';
import { Staging } from './staging.ts';
import type { StateStore } from './state-store.ts';

export type { IngestResult, ObjectRef } from './ingest.ts';

export interface PipelineDeps {
  readonly config: Config;
  readonly store: StateStore;
  readonly objects: S3ObjectStore;
  /** Wall clock (ms). */
  readonly now?: () => number;
  readonly log?: Telemetry;
  /** Shards caught up at once. @default 4 */
  readonly shardConcurrency?: number;
  /** Picks the shard a catch-up starts with (concurrent invocations start apart). @default Math.random */
  readonly random?: () => number;
}

/** What bringing the shards up to a point of the log did. */
export interface CatchUpSummary {
  /** The log position every shard reached. */
  readonly target: number;
  readonly watermark: number;
  readonly commits: number;
  readonly conflicts: number;
  readonly accepted: number;
  readonly duplicates: number;
  readonly late: number;
  readonly sessionsClosed: number;
  /** Output objects written (sessions and late visits). */
  readonly published: number;
  /** Log entries the furthest-behind shard has still to apply, once this catch-up is done. */
  readonly logLag: number;
}

export interface ObjectsSummary {
  readonly objects: IngestResult[];
  readonly catchUp: CatchUpSummary;
}

export interface ScheduledSummary {
  readonly ingested: IngestResult[];
  /** Objects under the prefix older than claims are kept (so possibly processed long ago), left alone. */
  readonly tooOld: number;
  readonly idleAdvanced: boolean;
  readonly catchUp: CatchUpSummary;
}

export interface FlushSummary {
  readonly catchUp: CatchUpSummary;
}

/** Visits in the entries a catch-up applies above which shards are caught up one at a time. */
const LARGE_BACKLOG_VISITS = 2_000_000;

/** Some objects of a scheduled listing failed (the rest, and the shards' catch-up, went on). */
export class CatchUpError extends Error {
  override readonly name = 'CatchUpError';
}

export class Pipeline {
  readonly config: Config;
  readonly store: StateStore;
  private readonly objects: S3ObjectStore;
  private readonly now: () => number;
  private readonly log: Telemetry;
  private readonly shardConcurrency: number;
  private readonly random: () => number;
  private readonly entries: EntryReader;
  readonly staging: Staging;
  private readonly ingester: Ingest;
  private applier: ShardApplier | undefined;
  private layoutRecord: Layout | undefined;

  constructor(deps: PipelineDeps) {
    this.config = deps.config;
    this.store = deps.store;
    this.objects = deps.objects;
    this.now = deps.now ?? Date.now;
    this.log = deps.log ?? silentTelemetry;
    this.shardConcurrency = deps.shardConcurrency ?? 4;
    this.random = deps.random ?? Math.random;
    this.entries = new EntryReader(this.store);
    this.staging = new Staging(this.config, this.objects);
    this.ingester = new Ingest({
      config: this.config,
      store: this.store,
      objects: this.objects,
      staging: this.staging,
      entries: this.entries,
      now: this.now,
    });
  }

  /** The state's layout (read, or made, once per container); fails if it does not fit this deployment. */
  async layout(): Promise<Layout> {
    this.layoutRecord ??= await this.store.layout(this.config.shards, this.now());
    return this.layoutRecord;
  }

  private async shards(): Promise<ShardApplier> {
    const layout = await this.layout();
    this.applier ??= new ShardApplier({
      config: this.config.session,
      store: this.store,
      staging: this.staging,
      entries: this.entries,
      outbox: new Outbox(this.objects, this.config.outputBucket, layout.id),
      now: this.now,
    });
    return this.applier;
  }

  /** Ingests one object into the log (no shard catch-up: see {@link catchUp}). */
  async ingest(ref: ObjectRef): Promise<IngestResult> {
    await this.layout();
    const result = await this.ingester.ingest(ref);
    this.log.log('info', `object ${result.outcome}`, {
      object: result.object,
      seq: result.entry?.seq,
      lines: result.entry?.lines,
      visits: result.entry?.visits,
      rejected: result.entry?.rejected,
    });
    return result;
  }

  /** Ingests objects in order, then brings every shard up to the last of their entries. */
  async processObjects(refs: readonly ObjectRef[]): Promise<ObjectsSummary> {
    const objects: IngestResult[] = [];
    for (const ref of refs) objects.push(await this.ingest(ref));
    const target = Math.max(0, ...objects.map((o) => o.entry?.seq ?? 0));
    return { objects, catchUp: await this.catchUp(target) };
  }

  /** The sequence number of the log's last entry (0: empty). */
  private async logEnd(): Promise<number> {
    return (await this.store.lastEntry())?.seq ?? 0;
  }

  /** Brings every shard up to `target` (default: the log's tail). */
  async catchUp(target?: number): Promise<CatchUpSummary> {
    const applier = await this.shards();
    const upTo = target ?? (await this.logEnd());
    const all = Array.from({ length: this.config.shards }, (_, i) => i);
    const heads = await this.store.getHeads(all);
    const behind = heads.filter((h) => h.applied < upTo || h.unpublished);
    // concurrent invocations start at different shards, so that they meet less often on the same head
    const start = Math.floor(this.random() * behind.length);
    const order = [...behind.slice(start), ...behind.slice(0, start)];
    // shards hold what their entries bring in memory: a large backlog (a huge object) is applied a shard at a time
    const from = Math.min(...behind.map((h) => h.applied)) + 1;
    const backlog = behind.length === 0 ? [] : await this.entries.range(from, upTo);
    const visits = backlog.reduce((n, e) => n + e.visits, 0);
    const limit = pLimit(visits > LARGE_BACKLOG_VISITS ? 1 : this.shardConcurrency);
    // each shard goes to the log's end as it is when its turn comes (often past `upTo`: entries other invocations
    // appended meanwhile), so that they find it done; a shard lost to another invocation is left to the end, when
    // the winner has usually taken it past `upTo`, and a second look costs one read instead of a second lost race
    const first: ShardProgress[] = await Promise.all(
      order.map((h: ShardHead) =>
        limit(async () => applier.catchUp(h.shard, Math.max(upTo, await this.logEnd()), true)),
      ),
    );
    const again = await Promise.all(
      first.filter((p) => p.deferred).map((p) => limit(() => applier.catchUp(p.shard, upTo))),
    );
    const done = [...first, ...again]; // counts add up; a shard's second look comes last, so `reached` keeps it
    const tail = upTo > 0 ? await this.entries.range(upTo, upTo) : [];
    const reached = new Map(done.map((p) => [p.shard, p.applied]));
    const lowest = Math.min(...heads.map((h) => reached.get(h.shard) ?? h.applied));
    const end = Math.max(upTo, await this.logEnd());
    const summary: CatchUpSummary = {
      target: upTo,
      watermark: tail[0]?.after ?? Number.NEGATIVE_INFINITY,
      commits: sum(done, (p) => p.commits),
      conflicts: sum(done, (p) => p.conflicts),
      accepted: sum(done, (p) => p.totals.accepted),
      duplicates: sum(done, (p) => p.totals.duplicates),
      late: sum(done, (p) => p.totals.late),
      sessionsClosed: sum(done, (p) => p.totals.sessionsClosed),
      published: sum(done, (p) => p.published),
      logLag: Math.max(0, end - lowest),
    };
    if (summary.commits > 0)
      this.log.log('info', 'shards caught up', { ...summary, watermark: iso(summary.watermark) });
    return summary;
  }

  /**
   * Appends a flush and brings every shard past it: every pending session closes. Each call is a flush of its own
   * (a repeated request closes what arrived since), so the entry's id is the request's and the time.
   */
  async flush(id: string): Promise<FlushSummary> {
    const now = this.now();
    const entry = await this.appendNew({
      ...emptyDraft('flush', `flush#${id}@${now}`, `flush:${id}`),
      clock: now,
    });
    const catchUp = await this.catchUp(Math.max(entry.seq, await this.logEnd()));
    return { catchUp };
  }

  /**
   * The scheduled run: an idle advance if it is on and due, the objects no event delivered, then every shard up to
   * the log's tail. Listing failures are reported (thrown) after the shards caught up.
   */
  async scheduled(runId: string, listing: ListingOptions = {}): Promise<ScheduledSummary> {
    await this.layout();
    const idleAdvanced = await this.idleAdvance(runId);
    const { ingested, tooOld, failures } = await catchUpByListing(
      {
        config: this.config,
        store: this.store,
        objects: this.objects,
        now: this.now,
        ingest: (ref) => this.ingest(ref),
      },
      listing,
    );
    const catchUp = await this.catchUp();
    if (tooOld > 0) {
      this.log.log('warn', 'catch-up: objects older than the claims are kept were left alone', {
        objects: tooOld,
      });
    }
    for (const f of failures)
      this.log.log('error', 'catch-up: object failed', { object: f.key, error: f.error });
    if (failures.length > 0) {
      throw new CatchUpError(
        `catch-up: ${failures.length} object(s) failed (${failures
          .slice(0, 3)
          .map((f) => `${f.key}: ${f.error.message}`)
          .join('; ')}); the shards caught up, they are tried again next run`,
        { cause: failures[0]!.error },
      );
    }
    return { ingested, tooOld, idleAdvanced, catchUp };
  }

  /** With an idle timeout, appends a watermark advance to now minus the allowed lateness once the log is idle. */
  private async idleAdvance(runId: string): Promise<boolean> {
    const idle = this.config.idleTimeoutMs;
    if (idle === null) return false;
    const tail = await this.store.lastEntry();
    const now = this.now();
    if (!tail || tail.advancedAt === 0 || now - tail.advancedAt <= idle) return false;
    const target = now - this.config.session.allowedLatenessMs;
    if (!(target > tail.after)) return false;
    const draft: EntryDraft = {
      ...emptyDraft('advance', `advance#${runId}@${now}`, `advance:${runId}`),
      advanceTo: target,
      clock: now,
    };
    await this.appendNew(draft);
    return true;
  }

  /** Appends a draft whose id is new (its claim only carries the position through retried calls). */
  private async appendNew(draft: EntryDraft): Promise<LogEntry> {
    await this.layout();
    const claim = await this.store.claim(draft.id, this.now());
    const entry =
      (await this.store.loggedEntry(claim)) ??
      (await this.store.append(draft, claim, this.now, this.config.session));
    await this.store.setClaimLogged(draft.id);
    this.entries.remember(entry);
    return entry;
  }
}

function emptyDraft(kind: EntryDraft['kind'], id: string, source: string): EntryDraft {
  return {
    kind,
    id,
    source,
    maxVisitTime: Number.NEGATIVE_INFINITY,
    clock: 0,
    segments: 0,
    shardVisits: [],
    lines: 0,
    visits: 0,
    rejected: 0,
  };
}

function sum<T>(list: readonly T[], f: (x: T) => number): number {
  return list.reduce((a, x) => a + f(x), 0);
}

function iso(t: number): string | null {
  return Number.isFinite(t) ? new Date(t).toISOString() : null;
}
