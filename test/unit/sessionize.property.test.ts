import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { ClosedSession, SessionConfig, Visit } from '../../lambdas/core/types.ts';
import { compareVisits } from '../../lambdas/core/visit-lists.ts';
import { MINUTE, PipelineDriver } from '../helpers/pipeline.ts';

// ---- Independent reference: batch sessionization of a set of visits (like LAG over visit_time in SQL) ----

interface RefSession {
  readonly userId: string;
  readonly start: number;
  readonly end: number;
  readonly visits: readonly (readonly [number, string])[];
}

const keyOf = (userId: string, t: number, page: string): string => JSON.stringify([userId, t, page]);

/** Distinct visits per user, sorted by time then page, split where the difference exceeds the gap (and greedy max). */
function referenceSessions(
  visits: readonly { userId: string; t: number; page: string }[],
  config: SessionConfig,
): RefSession[] {
  const distinct = new Map<string, { userId: string; t: number; page: string }>();
  for (const v of visits) distinct.set(keyOf(v.userId, v.t, v.page), v);
  const byUser = new Map<string, [number, string][]>();
  for (const v of distinct.values()) {
    const list = byUser.get(v.userId) ?? [];
    list.push([v.t, v.page]);
    byUser.set(v.userId, list);
  }
  const sessions: RefSession[] = [];
  for (const [userId, list] of byUser) {
    list.sort((a, b) => (a[0] !== b[0] ? a[0] - b[0] : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
    let current: [number, string][] = [];
    const emit = (): void => {
      if (current.length === 0) return;
      sessions.push({ userId, start: current[0]![0], end: current[current.length - 1]![0], visits: current });
      current = [];
    };
    for (const v of list) {
      const first = current[0];
      const prev = current[current.length - 1];
      if (first !== undefined && prev !== undefined) {
        const gapSplit = v[0] - prev[0] > config.gapMs;
        const maxSplit =
          config.maxSessionDurationMs !== null && v[0] - first[0] > config.maxSessionDurationMs;
        const countSplit = config.maxSessionVisits != null && current.length >= config.maxSessionVisits;
        if (gapSplit || maxSplit || countSplit) emit();
      }
      current.push(v);
    }
    emit();
  }
  return sortSessions(sessions);
}

function sortSessions<S extends { userId: string; start: number }>(sessions: S[]): S[] {
  return sessions.sort((a, b) => (a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : a.start - b.start));
}

const asRef = (sessions: readonly ClosedSession[]): RefSession[] =>
  sortSessions(
    sessions.map((s) => ({
      userId: s.userId,
      start: s.start,
      end: s.end,
      visits: s.visits.map((v) => [v.t, v.page] as const),
    })),
  );

// ---- Generators ----

const T0 = Date.UTC(2026, 1, 15, 12, 0, 0, 0);

/** Times on a 5-minute grid (so differences often hit the gap and the max duration exactly), nudged by -1/0/+1 ms. */
const timeArb = fc
  .tuple(fc.integer({ min: 0, max: 48 }), fc.constantFrom(0, 0, 0, 1, -1))
  .map(([k, nudge]) => T0 + k * 5 * MINUTE + nudge);

const rawVisitArb = fc.record({
  userId: fc.constantFrom('1', '2', '3', 'u'),
  t: timeArb,
  page: fc.constantFrom('a', 'b', 'c'),
});

const configArb: fc.Arbitrary<SessionConfig> = fc.record({
  gapMs: fc.constantFrom(10 * MINUTE, 40 * MINUTE),
  allowedLatenessMs: fc.constantFrom(0, 15 * MINUTE, 30 * MINUTE),
  maxSessionDurationMs: fc.constantFrom(null, null, 60 * MINUTE, 90 * MINUTE),
  maxSessionVisits: fc.constantFrom(null, null, null, 2, 3),
});

interface Scenario {
  readonly config: SessionConfig;
  /** Batches in arrival order; every visit has a unique line number (its global arrival index). */
  readonly batches: Visit[][];
}

/**
 * Random visits (some exact copies of earlier ones) dealt into random batches. Batch order is arrival order; as the
 * batch is picked independently of the time, batches arrive out of time order. Or, half the time, the visits sorted
 * by time and dealt into consecutive batches.
 */
function scenarioArb(config: fc.Arbitrary<SessionConfig>): fc.Arbitrary<Scenario> {
  return fc
    .record({
      config,
      fresh: fc.array(rawVisitArb, { minLength: 1, maxLength: 40 }),
      copies: fc.array(fc.nat(), { maxLength: 10 }),
      batchOf: fc.array(fc.nat({ max: 7 }), { minLength: 50, maxLength: 50 }),
      inTimeOrder: fc.boolean(),
    })
    .map(({ config, fresh, copies, batchOf, inTimeOrder }) => {
      const all = [...fresh, ...copies.map((i) => fresh[i % fresh.length]!)];
      // in time order, sessions mostly grow at their end from batch to batch (the common case in production)
      if (inTimeOrder) all.sort((a, b) => a.t - b.t);
      const batches: Visit[][] = Array.from({ length: 8 }, () => []);
      all.forEach((v, i) => {
        const b = inTimeOrder ? Math.floor((i * 8) / all.length) : (batchOf[i] ?? 0);
        batches[b]!.push({ ...v, line: i + 1 });
      });
      return { config, batches: batches.filter((b) => b.length > 0) };
    });
}

// ---- Running the core as the pipeline does, with invariant checks after every batch ----

interface Run {
  readonly closedPerBatch: ClosedSession[][];
  readonly flushed: ClosedSession[];
  readonly driver: PipelineDriver;
  /** Line numbers the core reported as late. */
  readonly lateLines: Set<number>;
}

function run(scenario: Scenario): Run {
  const { config } = scenario;
  const driver = new PipelineDriver(config);
  const closedPerBatch: ClosedSession[][] = [];
  const lateLines = new Set<number>();
  let expectedW = Number.NEGATIVE_INFINITY;
  scenario.batches.forEach((batch, b) => {
    // Independent late check: recompute W; a visit is late iff t < W before its batch.
    const expectedLate = new Set(batch.filter((v) => v.t < expectedW).map((v) => v.line));
    expectedW = Math.max(expectedW, Math.max(...batch.map((v) => v.t)) - config.allowedLatenessMs);

    const step = driver.batch(batch, `batch-${b}`);
    const { result } = step;

    assert.equal(result.watermark, expectedW, 'watermark = max(W, batch max - lateness)');
    assert.ok(result.watermark >= step.watermarkBefore, 'the watermark never moves back');
    assert.deepEqual(
      new Set(result.late.map((l) => l.sourceLine)),
      expectedLate,
      'late = t < W before the batch',
    );
    for (const l of result.late) {
      assert.ok(l.t < l.watermark && l.watermark === step.watermarkBefore);
      assert.equal(l.sourceObject, `batch-${b}`);
      lateLines.add(l.sourceLine);
    }
    assert.equal(
      batch.length,
      result.accepted + result.duplicates + result.late.length,
      'conservation per batch',
    );
    for (const s of step.closed) {
      assert.ok(result.watermark > s.end + config.gapMs, 'a session closes only when W > end + gap');
    }
    for (const sessions of driver.pending.values()) {
      for (const s of sessions) {
        assert.ok(!(result.watermark > s.end + config.gapMs), 'no due session is left pending');
      }
    }
    closedPerBatch.push(step.closed);
  });
  const flushed = driver.flush();
  return { closedPerBatch, flushed, driver, lateLines };
}

/** Deterministic in-place shuffle (mulberry32), so a shuffled run is reproducible from the fast-check seed. */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  let a = seed >>> 0;
  const random = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

const NUM_RUNS = 500;

describe('sessionizer against a batch reference (properties)', () => {
  it('closed sessions equal the batch sessionization of the distinct non-late visits', () => {
    fc.assert(
      fc.property(scenarioArb(configArb), (scenario) => {
        const { driver, lateLines } = run(scenario);

        const nonLate = scenario.batches.flat().filter((v) => !lateLines.has(v.line));
        assert.deepEqual(asRef(driver.closed), referenceSessions(nonLate, scenario.config));
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('conserves visits: valid = accepted + duplicates + late, and accepted = visits in closed sessions', () => {
    fc.assert(
      fc.property(scenarioArb(configArb), (scenario) => {
        const { driver } = run(scenario);
        const valid = scenario.batches.flat().length;

        assert.equal(valid, driver.accepted + driver.duplicates + driver.late.length);
        const inSessions = driver.closed.reduce((n, s) => n + s.visits.length, 0);
        assert.equal(inSessions, driver.accepted);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('puts no visit in two sessions and closes each session once', () => {
    fc.assert(
      fc.property(scenarioArb(configArb), (scenario) => {
        const { driver } = run(scenario);

        const seenVisits = new Set<string>();
        const seenSessions = new Set<string>();
        for (const s of driver.closed) {
          const sessionKey = JSON.stringify([s.userId, s.start]);
          assert.ok(!seenSessions.has(sessionKey), `session ${sessionKey} closed twice`);
          seenSessions.add(sessionKey);
          for (const v of s.visits) {
            const k = keyOf(s.userId, v.t, v.page);
            assert.ok(!seenVisits.has(k), `visit ${k} in two sessions`);
            seenVisits.add(k);
          }
        }
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('never lets a later visit land inside or before a session already closed', () => {
    fc.assert(
      fc.property(scenarioArb(configArb), (scenario) => {
        const { closedPerBatch, flushed, driver } = run(scenario);
        const closedSoFar: ClosedSession[] = [];
        // every session closed later (or flushed) must start after the last visit of one closed before (in the order
        // of visits: the cap of visits per session can split visits of one millisecond), or belong to another user
        for (const batchClosed of [...closedPerBatch, flushed]) {
          for (const s of batchClosed) {
            for (const earlier of closedSoFar) {
              if (earlier.userId !== s.userId) continue;
              assert.ok(
                compareVisits(s.visits[0]!, earlier.visits[earlier.visits.length - 1]!) > 0,
                `session of ${s.userId} at ${s.start} overlaps one closed before, ending ${earlier.end}`,
              );
            }
          }
          closedSoFar.push(...batchClosed);
        }
        assert.equal(closedSoFar.length, driver.closed.length);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('gives the same results when the visits inside each batch are shuffled', () => {
    fc.assert(
      fc.property(scenarioArb(configArb), fc.integer(), (scenario, seed) => {
        const original = run(scenario);
        const reordered = run({
          ...scenario,
          batches: scenario.batches.map((b, i) => shuffled(b, seed + i)),
        });

        assert.deepEqual(
          reordered.closedPerBatch.map((c) => asRef(c)),
          original.closedPerBatch.map((c) => asRef(c)),
        );
        assert.deepEqual(asRef(reordered.flushed), asRef(original.flushed));
        assert.deepEqual(reordered.lateLines, original.lateLines);
        assert.equal(reordered.driver.duplicates, original.driver.duplicates);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('with lateness larger than the time range, nothing is late and closed = reference over all distinct visits', () => {
    const noLateConfig = configArb.map((c) => ({ ...c, allowedLatenessMs: 5 * 60 * MINUTE }));
    fc.assert(
      fc.property(scenarioArb(noLateConfig), (scenario) => {
        const { driver } = run(scenario);

        assert.equal(driver.late.length, 0);
        assert.deepEqual(asRef(driver.closed), referenceSessions(scenario.batches.flat(), scenario.config));
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('with one batch, closed sessions equal the reference over all distinct visits', () => {
    fc.assert(
      fc.property(scenarioArb(configArb), (scenario) => {
        const all = scenario.batches.flat();
        const { driver } = run({ ...scenario, batches: [all] });

        assert.deepEqual(asRef(driver.closed), referenceSessions(all, scenario.config));
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it("sorts and de-duplicates one user's visits in a batch whether they are few or many", () => {
    // few visits of a user in a batch are sorted by insertion, many by Array#sort: both sizes, in any order
    const oneUser = fc.array(
      rawVisitArb.map((v) => ({ ...v, userId: 'u' })),
      { minLength: 1, maxLength: 60 },
    );
    fc.assert(
      fc.property(oneUser, configArb, (visits, config) => {
        const batch = visits.map((v, i) => ({ ...v, line: i + 1 }));
        const { driver } = run({ config, batches: [batch] });

        assert.deepEqual(asRef(driver.closed), referenceSessions(batch, config));
      }),
      { numRuns: NUM_RUNS },
    );
  });
});
