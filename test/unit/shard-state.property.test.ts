/**
 * The sharded state the pipeline runs (ShardState per shard, the log's global watermark) against the plain driver
 * that sessionizes every batch over all users and closes with closeDue; and its persistence: a snapshot, or a
 * snapshot plus replayed deltas, continues exactly as the state it was taken from.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  type DeltaStep,
  decodeDelta,
  decodeSnapshot,
  encodeDelta,
  encodeSnapshot,
  replayStep,
} from '../../lambdas/core/parts.ts';
import { advanceWatermark } from '../../lambdas/core/sessionize.ts';
import { ShardState, type StepOutcome } from '../../lambdas/core/shard-state.ts';
import { splitByShard } from '../../lambdas/core/shards.ts';
import type { ClosedSession, LateVisit, SessionConfig, Visit } from '../../lambdas/core/types.ts';
import { MINUTE, PipelineDriver } from '../helpers/pipeline.ts';

const T0 = Date.UTC(2026, 1, 15, 12, 0, 0, 0);

const timeArb = fc
  .tuple(fc.integer({ min: 0, max: 48 }), fc.constantFrom(0, 0, 0, 1, -1))
  .map(([k, nudge]) => T0 + k * 5 * MINUTE + nudge);

const rawVisitArb = fc.record({
  userId: fc.constantFrom('1', '2', '3', 'u', 'user-5', '6'),
  t: timeArb,
  page: fc.constantFrom('a', 'b', 'c', 'é/ü'),
});

const configArb: fc.Arbitrary<SessionConfig> = fc.record({
  gapMs: fc.constantFrom(10 * MINUTE, 40 * MINUTE),
  allowedLatenessMs: fc.constantFrom(0, 15 * MINUTE),
  maxSessionDurationMs: fc.constantFrom(null, null, 60 * MINUTE),
  maxSessionVisits: fc.constantFrom(null, null, 2, 3),
});

interface Scenario {
  readonly config: SessionConfig;
  readonly batches: Visit[][];
  readonly shards: number;
}

const scenarioArb: fc.Arbitrary<Scenario> = fc
  .record({
    config: configArb,
    fresh: fc.array(rawVisitArb, { minLength: 1, maxLength: 40 }),
    copies: fc.array(fc.nat(), { maxLength: 10 }),
    batchOf: fc.array(fc.nat({ max: 7 }), { minLength: 50, maxLength: 50 }),
    inTimeOrder: fc.boolean(),
    shards: fc.constantFrom(1, 2, 3, 16),
  })
  .map(({ config, fresh, copies, batchOf, inTimeOrder, shards }) => {
    const all = [...fresh, ...copies.map((i) => fresh[i % fresh.length]!)];
    if (inTimeOrder) all.sort((a, b) => a.t - b.t);
    const batches: Visit[][] = Array.from({ length: 8 }, () => []);
    all.forEach((v, i) => {
      const b = inTimeOrder ? Math.floor((i * 8) / all.length) : (batchOf[i] ?? 0);
      batches[b]!.push({ ...v, line: i + 1 });
    });
    return { config, batches: batches.filter((b) => b.length > 0), shards };
  });

const sessionKey = (s: ClosedSession) =>
  JSON.stringify([s.userId, s.start, s.end, s.visits.map((v) => [v.t, v.page])]);
const lateKey = (l: LateVisit) => JSON.stringify([l.userId, l.t, l.page, l.sourceLine, l.watermark]);
const sorted = (keys: string[]) => keys.sort();

/** The shards of a scenario, stepped through its batches with the global watermark as the log records it. */
class ShardedRun {
  readonly states: ShardState[];
  watermark = Number.NEGATIVE_INFINITY;

  constructor(
    readonly config: SessionConfig,
    readonly shards: number,
  ) {
    this.states = Array.from({ length: shards }, () => new ShardState(config));
  }

  batch(visits: readonly Visit[], source: string): StepOutcome[] {
    let maxT = Number.NEGATIVE_INFINITY;
    for (const v of visits) if (v.t > maxT) maxT = v.t;
    const before = this.watermark;
    const after = advanceWatermark(before, maxT, this.config);
    this.watermark = after;
    const split = splitByShard(visits, this.shards);
    return this.states.map((s, i) => s.apply(split[i]!, { before, after }, source));
  }
}

describe('sharded state against the plain driver (properties)', () => {
  it('closes the same sessions after every batch and reports the same late visits, for 1 to 16 shards', () => {
    fc.assert(
      fc.property(scenarioArb, ({ config, batches, shards }) => {
        const driver = new PipelineDriver(config);
        const run = new ShardedRun(config, shards);
        for (const [b, batch] of batches.entries()) {
          const expected = driver.batch(batch, `b${b}`);
          const got = run.batch(batch, `b${b}`);
          assert.deepEqual(
            sorted(got.flatMap((o) => o.closed).map(sessionKey)),
            sorted(expected.closed.map(sessionKey)),
          );
          assert.deepEqual(
            sorted(got.flatMap((o) => o.late).map(lateKey)),
            sorted(expected.result.late.map(lateKey)),
          );
          assert.equal(
            got.reduce((n, o) => n + o.accepted, 0),
            expected.result.accepted,
          );
          for (const o of got) {
            const keys = o.closed.map((s) => [s.userId, s.start] as const);
            const inOrder = [...keys].sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : x[1] - y[1]));
            assert.deepEqual(keys, inOrder, 'closed sessions come sorted by user and start');
          }
        }
        const flushed = run.states.flatMap((s) => s.flush().closed);
        assert.deepEqual(sorted(flushed.map(sessionKey)), sorted(driver.flush().map(sessionKey)));
      }),
      { numRuns: 300 },
    );
  });

  it('after a flush, a visit within the gap of a flushed session is late with watermark end + gap + 1 ms', () => {
    const config: SessionConfig = {
      gapMs: 40 * MINUTE,
      allowedLatenessMs: 15 * MINUTE,
      maxSessionDurationMs: null,
    };
    const state = new ShardState(config);
    state.apply(
      [{ userId: 'a', t: T0, page: 'p', line: 1 }],
      { before: -Infinity, after: T0 - 15 * MINUTE },
      'o1',
    );
    const flushed = state.flush();
    const next = state.apply(
      [
        { userId: 'a', t: T0 + 40 * MINUTE, page: 'q', line: 1 },
        { userId: 'a', t: T0 + 40 * MINUTE + 1, page: 'r', line: 2 },
      ],
      { before: T0 - 15 * MINUTE, after: T0 + 25 * MINUTE },
      'o2',
    );

    assert.equal(flushed.closed.length, 1);
    assert.deepEqual(
      next.late.map((l) => [l.page, l.watermark]),
      [['q', T0 + 40 * MINUTE + 1]],
    );
    assert.equal(next.accepted, 1);
  });
});

describe('snapshots and deltas (properties)', () => {
  it('a state rebuilt from a snapshot taken after any batch continues exactly as the original', () => {
    fc.assert(
      fc.property(scenarioArb, fc.nat(), fc.boolean(), ({ config, batches }, cutAt, flushAtCut) => {
        const original = new ShardedRun(config, 1);
        const cut = cutAt % batches.length;
        for (const [b, batch] of batches.slice(0, cut + 1).entries()) original.batch(batch, `b${b}`);
        if (flushAtCut) original.states[0]!.flush();
        const copy = new ShardedRun(config, 1);
        decodeSnapshot(encodeSnapshot(original.states[0]!), copy.states[0]!);
        copy.watermark = original.watermark;

        for (const [b, batch] of batches.slice(cut + 1).entries()) {
          const a = original.batch(batch, `x${b}`)[0]!;
          const c = copy.batch(batch, `x${b}`)[0]!;
          assert.deepEqual(c.closed.map(sessionKey), a.closed.map(sessionKey));
          assert.deepEqual(c.late.map(lateKey), a.late.map(lateKey));
        }
        assert.deepEqual(
          copy.states[0]!.flush().closed.map(sessionKey),
          original.states[0]!.flush().closed.map(sessionKey),
        );
      }),
      { numRuns: 300 },
    );
  });

  it('replaying a delta onto the snapshot before it gives the same state and gives back what each step closed', () => {
    fc.assert(
      fc.property(scenarioArb, fc.nat(), fc.nat(), ({ config, batches }, cutAt, flushAt) => {
        const run = new ShardedRun(config, 1);
        const state = run.states[0]!;
        const cut = cutAt % batches.length;
        for (const [b, batch] of batches.slice(0, cut).entries()) run.batch(batch, `b${b}`);
        const snapshot = encodeSnapshot(state);
        const steps: DeltaStep[] = [];
        const outcomes: StepOutcome[] = [];
        for (const [b, batch] of batches.slice(cut).entries()) {
          const before = run.watermark;
          const out = run.batch(batch, `b${b}`)[0]!;
          outcomes.push(out);
          steps.push({
            seq: b + 1,
            kind: 'visits',
            before,
            after: run.watermark,
            source: `b${b}`,
            accepted: out.accepted,
            duplicates: out.duplicates,
            added: out.added,
            late: out.late,
          });
          if (b === flushAt % 4) {
            outcomes.push(state.flush());
            const w = run.watermark;
            steps.push({
              seq: b + 1.5,
              kind: 'flush',
              before: w,
              after: w,
              source: 'flush',
              accepted: 0,
              duplicates: 0,
              added: new Map(),
              late: [],
            });
          }
        }
        const replayed = new ShardState(config);
        decodeSnapshot(snapshot, replayed);
        const decoded = decodeDelta(encodeDelta(steps.map((s) => ({ ...s, seq: Math.floor(s.seq) }))));
        decoded.forEach((step, i) => {
          const out = replayStep(replayed, step);
          assert.deepEqual(out.closed.map(sessionKey), outcomes[i]!.closed.map(sessionKey), `step ${i}`);
          assert.deepEqual(out.late.map(lateKey), outcomes[i]!.late.map(lateKey));
          assert.equal(out.accepted, outcomes[i]!.accepted);
        });
        const users = (s: ShardState) =>
          [...s.snapshot()]
            .map((u) => JSON.stringify([u.user, u.flushedThrough, u.sessions.map(sessionKey).sort()]))
            .sort();
        assert.deepEqual(users(replayed), users(state));
        assert.equal(replayed.watermark, state.watermark);
      }),
      { numRuns: 300 },
    );
  });
});
