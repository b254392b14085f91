/**
 * Catch-up of a shard (docs/design.md, "Commit"): from the last entry its head applied to a target, several log
 * entries per commit. A commit writes the parts it adds (immutable, new ids), then the head, conditional on the
 * version it was built on; only then does it publish its outbox. Losing the race to another commit leaves nothing
 * visible: the loser re-reads the head and goes on from the winner's state. A head left unpublished (its writer
 * died after the commit) is published by whoever reads it next, from the parts, before anything is built on it.
 */
import { randomUUID } from 'node:crypto';
import type { LogEntry } from '../core/log.ts';
import {
  type DeltaStep,
  decodeDelta,
  decodeSnapshot,
  encodeDelta,
  encodeSnapshot,
  replayStep,
} from '../core/parts.ts';
import { ShardState, type StepOutcome } from '../core/shard-state.ts';
import type { ClosedSession, LateVisit, SessionConfig } from '../core/types.ts';
import type { EntryReader } from './entries.ts';
import type { CommitOutputs, Outbox } from './outbox.ts';
import type { PartRef, ShardHead, ShardTotals } from './records.ts';
import type { Staging } from './staging.ts';
import { PartMissingError, type StateStore } from './state-store.ts';

/** Most log entries one commit applies. */
const MAX_ENTRIES_PER_COMMIT = 1000;
/** A commit stops taking entries once it has this many of the shard's visits (bounds memory and part size). */
const MAX_VISITS_PER_COMMIT = 2_000_000;
/** Deltas are folded into a new snapshot once they outweigh the snapshot and this many bytes, or are this many. */
const COMPACT_MIN_BYTES = 64 * 1024;
const COMPACT_MAX_DELTAS = 64;
/** Commit attempts on one shard before giving up (each lost race re-reads and goes on). */
const MAX_ATTEMPTS = 50;

export interface ShardProgress {
  readonly shard: number;
  commits: number;
  conflicts: number;
  published: number;
  applied: number;
  /** Left at the first lost race, to be tried again later (`deferOnConflict`). */
  deferred: boolean;
  readonly totals: { -readonly [K in keyof ShardTotals]: number };
}

export interface ApplierDeps {
  readonly config: SessionConfig;
  readonly store: StateStore;
  readonly staging: Staging;
  readonly entries: EntryReader;
  readonly outbox: Outbox;
  readonly now: () => number;
}

/** A shard's state in memory at a head version (kept across invocations of a warm container). */
interface CachedState {
  readonly version: number;
  readonly commit: string;
  readonly state: ShardState;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class ShardApplier {
  private readonly states = new Map<number, CachedState>();

  constructor(private readonly deps: ApplierDeps) {}

  /**
   * Brings a shard's head to at least `target` (and publishes any unpublished commit on the way). With `deferOnConflict`
   * it stops at the first lost race (`progress.deferred`), so the caller can do other shards while the winner works.
   */
  async catchUp(shard: number, target: number, deferOnConflict = false): Promise<ShardProgress> {
    const progress: ShardProgress = {
      shard,
      commits: 0,
      conflicts: 0,
      published: 0,
      applied: 0,
      deferred: false,
      totals: { accepted: 0, duplicates: 0, late: 0, sessionsClosed: 0 },
    };
    let head: ShardHead | undefined;
    for (let attempt = 0; ; attempt++) {
      head ??= (await this.deps.store.getHeads([shard]))[0]!;
      progress.applied = head.applied;
      try {
        if (head.unpublished) {
          progress.published += await this.recover(head);
          await this.deps.store.markPublished(shard, head.version);
        }
        if (head.applied >= target) return progress;
        if (attempt >= MAX_ATTEMPTS) {
          throw new Error(
            `shard ${shard}: no commit after ${MAX_ATTEMPTS} attempts (other invocations kept winning)`,
          );
        }
        const next = await this.commitNext(head, target, progress);
        if (next) {
          head = next;
          attempt = -1; // progress was made: the attempt budget is for lost races in a row
          continue;
        }
      } catch (error) {
        if (!(error instanceof PartMissingError)) throw error;
        // another invocation moved the head on and compacted away the parts being read: read it again
      }
      progress.conflicts++;
      if (deferOnConflict) {
        progress.deferred = true;
        return progress;
      }
      head = undefined;
      await sleep(Math.random() * Math.min(500, 5 * 2 ** Math.min(attempt, 7)));
    }
  }

  /**
   * Applies the next entries to `head` and commits. Returns the new head, or undefined when another commit won (or
   * the log read did not show the next entry yet).
   */
  private async commitNext(
    head: ShardHead,
    target: number,
    progress: ShardProgress,
  ): Promise<ShardHead | undefined> {
    const { store, entries, staging } = this.deps;
    const shard = head.shard;
    const todo = await entries.range(
      head.applied + 1,
      Math.min(target, head.applied + MAX_ENTRIES_PER_COMMIT),
    );
    if (todo.length === 0) return undefined; // the log read does not show the entry yet: read again
    const state = await this.take(head);
    const compact = shouldCompact(head.parts);
    const snapshot = compact ? encodeSnapshot(state) : undefined;

    const steps: DeltaStep[] = [];
    const closed: ClosedSession[] = [];
    const late: LateVisit[] = [];
    const totals = { accepted: 0, duplicates: 0, late: 0, sessionsClosed: 0 };
    let last = head.applied;
    let visits = 0;
    for (const entry of todo) {
      if (visits > 0 && visits + (entry.shardVisits[shard] ?? 0) > MAX_VISITS_PER_COMMIT) break;
      visits += entry.shardVisits[shard] ?? 0;
      const out = await this.applyEntry(state, entry, shard, staging);
      last = entry.seq;
      for (const s of out.closed) closed.push(s);
      for (const l of out.late) late.push(l);
      totals.accepted += out.accepted;
      totals.duplicates += out.duplicates;
      totals.late += out.late.length;
      totals.sessionsClosed += out.closed.length;
      if (entry.kind === 'flush' || out.added.size > 0 || out.late.length > 0 || out.closed.length > 0) {
        steps.push(stepOf(entry, out));
      }
    }

    // a read before the writes: when another commit won meanwhile, this attempt writes nothing at all
    const [current] = await store.getHeads([shard]);
    if (current?.version !== head.version || current.commit !== head.commit) return undefined;
    const version = head.version + 1;
    const added: PartRef[] = [];
    if (snapshot) added.push(await store.writePart(shard, 'snapshot', version, snapshot));
    if (steps.length > 0) added.push(await store.writePart(shard, 'delta', version, encodeDelta(steps)));
    const next: ShardHead = {
      shard,
      version,
      applied: last,
      parts: compact ? added : [...head.parts, ...added],
      unpublished: closed.length > 0 || late.length > 0,
      commit: randomUUID(),
      watermark: state.watermark,
      nextExpiry: state.nextExpiry,
      pendingUsers: state.userCount,
      pendingSessions: state.sessionCount,
      totals: sumTotals(head.totals, totals),
      committedAt: this.deps.now(),
    };
    if (!(await store.commit(next, head.version))) {
      await store.deleteParts(shard, added); // never named by a head
      return undefined;
    }
    this.states.set(shard, { version, commit: next.commit, state });
    progress.commits++;
    progress.applied = last;
    for (const k of Object.keys(totals) as (keyof ShardTotals)[]) progress.totals[k] += totals[k];
    if (next.unpublished) {
      progress.published += await this.deps.outbox.publish(shard, version, { closed, late });
      await store.markPublished(shard, version);
    }
    if (compact) await store.deleteParts(shard, head.parts);
    return { ...next, unpublished: false };
  }

  private async applyEntry(
    state: ShardState,
    entry: LogEntry,
    shard: number,
    staging: Staging,
  ): Promise<StepOutcome> {
    if (entry.kind === 'flush') return state.flush();
    if (entry.kind === 'advance') return state.advance(entry.after);
    const visits = await staging.shardVisits(entry, shard);
    return state.apply(visits, { before: entry.before, after: entry.after }, entry.source);
  }

  /**
   * The state of a head, to be changed: the cached one when it is that very version (it leaves the cache: a commit
   * that fails must not leave it half-changed there), else rebuilt from the parts.
   */
  private async take(head: ShardHead): Promise<ShardState> {
    const cached = this.states.get(head.shard);
    this.states.delete(head.shard);
    if (cached && cached.version === head.version && cached.commit === head.commit) return cached.state;
    return loadShard(this.deps.store, this.deps.config, head);
  }

  /**
   * Publishes the outbox of a head whose writer died after committing: its last delta replayed on the parts
   * before it gives back what that commit closed and found late. Returns the number of objects written.
   */
  private async recover(head: ShardHead): Promise<number> {
    const last = head.parts[head.parts.length - 1];
    if (last?.kind !== 'delta' || last.version !== head.version) {
      throw new Error(`shard ${head.shard}: head ${head.version} is unpublished but has no delta of its own`);
    }
    const state = new ShardState(this.deps.config);
    const outputs = await replayParts(this.deps.store, state, head.shard, head.parts);
    return this.deps.outbox.publish(head.shard, head.version, outputs);
  }
}

/** Replays parts onto a state; returns what the steps of the last part closed and found late. */
export async function replayParts(
  store: StateStore,
  state: ShardState,
  shard: number,
  parts: readonly PartRef[],
): Promise<CommitOutputs> {
  let outputs: CommitOutputs = { closed: [], late: [] };
  for (const part of parts) {
    const bytes = await store.readPart(shard, part);
    if (part.kind === 'snapshot') {
      decodeSnapshot(bytes, state);
      continue;
    }
    const closed: ClosedSession[] = [];
    const late: LateVisit[] = [];
    for (const step of decodeDelta(bytes)) {
      const out = replayStep(state, step);
      for (const s of out.closed) closed.push(s);
      for (const l of out.late) late.push(l);
    }
    outputs = { closed, late };
  }
  return outputs;
}

/** The pending state of a shard as its head names it (read-only use: status, listings). */
export async function loadShard(
  store: StateStore,
  config: SessionConfig,
  head: ShardHead,
): Promise<ShardState> {
  const state = new ShardState(config);
  await replayParts(store, state, head.shard, head.parts);
  if (head.watermark > state.watermark) state.watermark = head.watermark;
  return state;
}

function shouldCompact(parts: readonly PartRef[]): boolean {
  let snapshot = 0;
  let deltas = 0;
  let count = 0;
  for (const p of parts) {
    if (p.kind === 'snapshot') snapshot += p.bytes;
    else {
      deltas += p.bytes;
      count++;
    }
  }
  return count >= COMPACT_MAX_DELTAS || (deltas > COMPACT_MIN_BYTES && deltas > snapshot);
}

function stepOf(entry: LogEntry, out: StepOutcome): DeltaStep {
  return {
    seq: entry.seq,
    kind: entry.kind === 'object' ? 'visits' : entry.kind,
    before: entry.before,
    after: entry.after,
    source: entry.source,
    accepted: out.accepted,
    duplicates: out.duplicates,
    added: out.added,
    late: out.late,
  };
}

function sumTotals(a: ShardTotals, b: ShardTotals): ShardTotals {
  return {
    accepted: a.accepted + b.accepted,
    duplicates: a.duplicates + b.duplicates,
    late: a.late + b.late,
    sessionsClosed: a.sessionsClosed + b.sessionsClosed,
  };
}
