/**
 * The state store as the pipeline sees it. This class holds every decision of the protocol that concerns single
 * records (how an entry gets its place in the log, how a commit tells a lost response from a lost race, how parts
 * are cached); a subclass implements only the calls, one conditional single-item operation each (the DynamoDB one
 * is lambdas/adapters/dynamo-store.ts), and the parts' bytes are kept by a {@link PartObjects} (S3 in the handler:
 * lambdas/adapters/s3-parts.ts). See docs/design.md, "Protocol".
 */
import { randomUUID } from 'node:crypto';
import { type EntryDraft, type LogEntry, placeEntry } from '../core/log.ts';
import type { SessionConfig } from '../core/types.ts';
import { ByteCache } from './cache.ts';
import { LAYOUT_VERSION, type Layout, type ObjectClaim, type PartRef, type ShardHead } from './records.ts';

/** The table holds state in another layout, or for another shard count. Not retryable: an operator must act. */
export class LayoutError extends Error {
  override readonly name = 'LayoutError';
}

/** Capacity and requests a store consumed, counted the way DynamoDB bills them. */
export interface StoreUsage {
  readUnits: number;
  writeUnits: number;
  reads: number;
  writes: number;
  /** Conditional writes that lost (a race, or a retried write meeting its own success). */
  conditionFailures: number;
}

/** Where the bytes of parts are kept: immutable blobs under names never reused (a part id is new per write). */
export interface PartObjects {
  put(shard: number, id: string, bytes: Uint8Array): Promise<void>;
  /** The bytes of a part, or undefined when there is no such part (any more). */
  get(shard: number, id: string): Promise<Buffer | undefined>;
  delete(shard: number, id: string): Promise<void>;
}

export abstract class StateStore {
  readonly usage: StoreUsage = { readUnits: 0, writeUnits: 0, reads: 0, writes: 0, conditionFailures: 0 };
  private cachedLayout: Layout | undefined;
  /** Immutable parts this container read or wrote, so that a warm invocation reads only the heads. */
  readonly parts: ByteCache;

  constructor(
    private readonly partObjects: PartObjects,
    partCacheBytes = 64 * 1024 * 1024,
  ) {
    this.parts = new ByteCache(partCacheBytes);
  }

  // ---- one call each ---------------------------------------------------------------------------------------

  protected abstract getLayoutRecord(): Promise<Layout | undefined>;
  /** Creates the layout record if there is none. False when one exists. */
  protected abstract putLayoutRecord(layout: Layout): Promise<boolean>;
  /** Whether the table holds state of the first layout (a checkpoint item). */
  abstract hasLegacyState(): Promise<boolean>;

  abstract getClaim(id: string): Promise<ObjectClaim | undefined>;
  /** Creates a claim if there is none. False when one exists. */
  abstract putClaim(claim: ObjectClaim): Promise<boolean>;
  /** Sets a claim's reserved position if it is still `expected`. False otherwise. */
  protected abstract putClaimSeq(id: string, seq: number, expected: number | undefined): Promise<boolean>;
  /** Notes on a claim that the log holds its entry, so a listing can tell without reading the log. */
  abstract setClaimLogged(id: string): Promise<void>;
  /** Claims of several ids at once (missing ones absent from the map). */
  abstract getClaims(ids: readonly string[]): Promise<Map<string, ObjectClaim>>;
  /** Where the last catch-up listing stopped (undefined: at the start). */
  abstract getCursor(): Promise<string | undefined>;
  abstract setCursor(after: string | undefined, now: number): Promise<void>;

  /** The entry with the highest sequence number (strongly consistent). */
  abstract lastEntry(): Promise<LogEntry | undefined>;
  abstract getEntry(seq: number): Promise<LogEntry | undefined>;
  /** Entries `from` to `to` inclusive, in order (strongly consistent). */
  abstract readEntries(from: number, to: number): Promise<LogEntry[]>;
  /** Puts an entry if its position is free. False when taken. */
  protected abstract putEntry(entry: LogEntry): Promise<boolean>;

  /** Heads of the given shards, strongly consistent; a shard never committed gets an empty head. */
  abstract getHeads(shards: readonly number[]): Promise<ShardHead[]>;
  /** Writes a head if the stored one is at version `expected` (0: none stored). False otherwise. */
  protected abstract putHead(head: ShardHead, expected: number): Promise<boolean>;
  /** Clears `unpublished` if the head is still at `version`. False otherwise. */
  protected abstract putPublished(shard: number, version: number): Promise<boolean>;

  // ---- layout ------------------------------------------------------------------------------------------------

  /**
   * The table's layout, created on first use with `shards`. Fails with a LayoutError when the table was made for
   * another shard count, or holds state of the first layout (it needs `sessionizer migrate`).
   */
  async layout(shards: number, now: number): Promise<Layout> {
    if (this.cachedLayout) return this.checkShards(this.cachedLayout, shards);
    let layout = await this.getLayoutRecord();
    if (!layout) {
      if (await this.hasLegacyState()) {
        throw new LayoutError(
          'the state table holds state of the first layout (per-user items): run `sessionizer migrate` to move ' +
            'its pending sessions to this version (see the README, "Upgrading")',
        );
      }
      const made: Layout = { version: LAYOUT_VERSION, shards, id: randomUUID().slice(0, 8), createdAt: now };
      layout = (await this.putLayoutRecord(made)) ? made : await this.getLayoutRecord();
      if (!layout) throw new LayoutError('the layout record vanished while it was being created');
    }
    if (layout.version !== LAYOUT_VERSION) {
      throw new LayoutError(
        `the state table has layout version ${layout.version}; this code reads ${LAYOUT_VERSION}`,
      );
    }
    this.cachedLayout = layout;
    return this.checkShards(layout, shards);
  }

  private checkShards(layout: Layout, shards: number): Layout {
    if (layout.shards !== shards) {
      throw new LayoutError(
        `the state was written with ${layout.shards} shards and this deployment is configured with ${shards} ` +
          '(SESSIONIZER_SHARDS): the shard count is fixed for the life of the state',
      );
    }
    return layout;
  }

  // ---- objects and the log -------------------------------------------------------------------------------------

  /**
   * The claim of an id: a new one with `now` as its processing clock, or the one that exists (another delivery of
   * the same object version, or this call's own write whose response was lost).
   */
  async claim(id: string, now: number): Promise<ObjectClaim> {
    const made: ObjectClaim = { id, clock: now };
    if (await this.putClaim(made)) return made;
    const raced = await this.getClaim(id); // another delivery of the same version, or our own lost response
    if (!raced) throw new Error(`claim ${id} could not be written nor read`);
    return raced;
  }

  /** The log entry of a claimed id, if the log holds it. */
  async loggedEntry(claim: ObjectClaim): Promise<LogEntry | undefined> {
    if (claim.seq === undefined) return undefined;
    const entry = await this.getEntry(claim.seq);
    return entry?.id === claim.id ? entry : undefined;
  }

  /**
   * Appends a draft at the end of the log, once: its claim records the position it goes to before the entry is
   * put there, and a position is only ever taken right after the last entry, so the log has no gaps and an id
   * is never at two positions, whoever appends it concurrently and however often a call is retried.
   */
  async append(
    draft: EntryDraft,
    start: ObjectClaim,
    now: () => number,
    config: SessionConfig,
  ): Promise<LogEntry> {
    let claim = start;
    for (;;) {
      const last = await this.lastEntry();
      const tail = last?.seq ?? 0;
      if (claim.seq !== undefined && claim.seq <= tail) {
        const held = claim.seq === tail ? last : await this.getEntry(claim.seq);
        if (held?.id === draft.id) return held;
      }
      const seq = tail + 1;
      if (claim.seq !== seq) {
        if (!(await this.putClaimSeq(draft.id, seq, claim.seq))) {
          claim = (await this.getClaim(draft.id)) ?? claim;
          continue;
        }
        claim = { ...claim, seq };
      }
      const entry = placeEntry(last, draft, seq, now(), config);
      if (await this.putEntry(entry)) return entry;
      // the position was taken (by another entry, or by this one through a retried call): look again
    }
  }

  // ---- shard heads and parts ---------------------------------------------------------------------------------

  /**
   * Writes `head` over the version it was built on. True when this attempt's head is the one stored (also when
   * the write succeeded but its response was lost), false when another commit got there first.
   */
  async commit(head: ShardHead, expected: number): Promise<boolean> {
    if (await this.putHead(head, expected)) return true;
    const [stored] = await this.getHeads([head.shard]);
    return stored?.version === head.version && stored.commit === head.commit;
  }

  /** Marks a head's outbox published (a newer head needs nothing: it was built only after publishing this one). */
  async markPublished(shard: number, version: number): Promise<void> {
    await this.putPublished(shard, version);
  }

  /** Writes a part under a new id and remembers its bytes. Returns its reference. */
  async writePart(shard: number, kind: PartRef['kind'], version: number, bytes: Buffer): Promise<PartRef> {
    const id = `${version}-${randomUUID().slice(0, 8)}`;
    await this.partObjects.put(shard, id, bytes);
    this.parts.set(`${shard}/${id}`, bytes);
    return { id, kind, bytes: bytes.length, version };
  }

  /** A part's bytes, from this container's cache or the part objects. */
  async readPart(shard: number, part: PartRef): Promise<Buffer> {
    const key = `${shard}/${part.id}`;
    const cached = this.parts.get(key);
    if (cached) return cached;
    const bytes = await this.partObjects.get(shard, part.id);
    if (!bytes) throw new PartMissingError(`shard ${shard}: part ${part.id} is missing`);
    this.parts.set(key, bytes);
    return bytes;
  }

  /** Deletes parts no head names any more (a compaction's old parts, or a lost commit's). Best effort. */
  async deleteParts(shard: number, parts: readonly PartRef[]): Promise<void> {
    for (const p of parts) {
      this.parts.delete(`${shard}/${p.id}`);
      await this.partObjects.delete(shard, p.id).catch(() => undefined);
    }
  }
}

/** A part a head names could not be read: the head moved on (its parts were replaced) while it was being read. */
export class PartMissingError extends Error {
  override readonly name = 'PartMissingError';
}
