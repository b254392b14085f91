import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { closeDue, flushAll, isClosedBy, sessionizeBatch } from '../../lambdas/core/sessionize.ts';
import {
  DEFAULT_SESSION_CONFIG,
  INITIAL_WATERMARK,
  type PendingSession,
  type SessionConfig,
} from '../../lambdas/core/types.ts';
import { MINUTE, PipelineDriver, visit } from '../helpers/pipeline.ts';

const GAP = 40 * MINUTE;
const LATENESS = 15 * MINUTE;
const CONFIG: SessionConfig = { gapMs: GAP, allowedLatenessMs: LATENESS, maxSessionDurationMs: null };
const T0 = Date.UTC(2026, 1, 15, 17, 0, 0, 0);

/** (start, end, [t, page] of each visit) of sessions, for compact comparisons. */
const shape = (sessions: readonly PendingSession[]): [string, number, number, [number, string][]][] =>
  sessions.map((s) => [s.userId, s.start, s.end, s.visits.map((v) => [v.t, v.page] as [number, string])]);

function session(userId: string, visits: [number, string][]): PendingSession {
  return {
    userId,
    start: visits[0]![0],
    end: visits[visits.length - 1]![0],
    visits: visits.map(([t, page]) => ({ t, page })),
  };
}

describe('defaults', () => {
  it('has a 40 minute gap, 15 minute allowed lateness, no max duration, 50,000 visits at most, and starts at minus infinity', () => {
    assert.deepEqual(DEFAULT_SESSION_CONFIG, { ...CONFIG, maxSessionVisits: 50_000 });
    assert.equal(INITIAL_WATERMARK, Number.NEGATIVE_INFINITY);
  });
});

describe('the gap rule', () => {
  it('keeps two visits exactly gap apart in one session', () => {
    const d = new PipelineDriver(CONFIG);

    d.batch([visit('u', T0, 'a'), visit('u', T0 + GAP, 'b')]);
    const closed = d.flush();

    assert.deepEqual(shape(closed), [
      [
        'u',
        T0,
        T0 + GAP,
        [
          [T0, 'a'],
          [T0 + GAP, 'b'],
        ],
      ],
    ]);
  });

  it('splits two visits gap + 1 ms apart into two sessions', () => {
    const d = new PipelineDriver(CONFIG);

    d.batch([visit('u', T0, 'a'), visit('u', T0 + GAP + 1, 'b')]);
    const closed = d.flush();

    assert.deepEqual(shape(closed), [
      ['u', T0, T0, [[T0, 'a']]],
      ['u', T0 + GAP + 1, T0 + GAP + 1, [[T0 + GAP + 1, 'b']]],
    ]);
  });

  it('extends a pending session with a visit exactly gap after it in a later batch', () => {
    const d = new PipelineDriver(CONFIG);
    d.batch([visit('u', T0, 'a')]);

    const step = d.batch([visit('u', T0 + GAP, 'b')]);

    assert.deepEqual(
      step.result.pending.get('u')?.map((s) => s.visits.length),
      [2],
    );
  });

  it('starts a new pending session for a visit gap + 1 ms after it in a later batch', () => {
    const config = { ...CONFIG, allowedLatenessMs: 2 * GAP }; // keep the first session open
    const d = new PipelineDriver(config);
    d.batch([visit('u', T0, 'a')]);

    const step = d.batch([visit('u', T0 + GAP + 1, 'b')]);

    assert.deepEqual(
      step.result.pending.get('u')?.map((s) => [s.start, s.end]),
      [
        [T0, T0],
        [T0 + GAP + 1, T0 + GAP + 1],
      ],
    );
  });

  it('merges two pending sessions when a visit bridges them', () => {
    const config = { ...CONFIG, allowedLatenessMs: 2 * GAP }; // W stays low enough that both stay pending
    const d = new PipelineDriver(config);
    d.batch([visit('u', T0, 'a'), visit('u', T0 + 2 * GAP, 'c')]);
    assert.equal(d.pending.get('u')?.length, 2, 'two sessions before the bridge');

    const step = d.batch([visit('u', T0 + GAP, 'b')]);

    assert.deepEqual(shape(step.result.pending.get('u') ?? []), [
      [
        'u',
        T0,
        T0 + 2 * GAP,
        [
          [T0, 'a'],
          [T0 + GAP, 'b'],
          [T0 + 2 * GAP, 'c'],
        ],
      ],
    ]);
    assert.equal(step.result.accepted, 1);
  });

  it('orders visits in a session by time, then page', () => {
    const d = new PipelineDriver(CONFIG);

    d.batch([visit('u', T0 + 5, 'b'), visit('u', T0 + 5, 'a'), visit('u', T0, 'z')]);

    assert.deepEqual(shape(d.flush())[0]![3], [
      [T0, 'z'],
      [T0 + 5, 'a'],
      [T0 + 5, 'b'],
    ]);
  });

  it('keeps users apart: the same times for two users give two sessions', () => {
    const d = new PipelineDriver(CONFIG);

    d.batch([visit('1', T0, 'a'), visit('2', T0, 'a')]);

    assert.deepEqual(
      d
        .flush()
        .map((s) => [s.userId, s.visits.length])
        .sort(),
      [
        ['1', 1],
        ['2', 1],
      ],
    );
  });
});

describe('maximum session duration', () => {
  const config: SessionConfig = {
    gapMs: GAP,
    allowedLatenessMs: LATENESS,
    maxSessionDurationMs: 60 * MINUTE,
  };

  it('cuts greedily: a visit more than the maximum after the session start starts a new session', () => {
    const d = new PipelineDriver(config);
    // every 25 minutes: no gap split; greedy cuts by the 60 minute maximum
    const minutes = [0, 25, 50, 75, 100, 125, 150];

    d.batch(minutes.map((m) => visit('u', T0 + m * MINUTE, `p${m}`)));
    d.flush();

    assert.deepEqual(
      d.closed.map((s) => s.visits.map((v) => (v.t - T0) / MINUTE)),
      [[0, 25, 50], [75, 100, 125], [150]],
    );
  });

  it('keeps a visit exactly the maximum after the start, and cuts at maximum + 1 ms', () => {
    const d = new PipelineDriver(config);
    const max = 60 * MINUTE;

    d.batch([
      visit('u', T0, 'a'),
      visit('u', T0 + 30 * MINUTE, 'b'),
      visit('u', T0 + max, 'c'),
      visit('u', T0 + max + 1, 'd'),
    ]);

    assert.deepEqual(
      d.flush().map((s) => s.visits.map((v) => v.page)),
      [['a', 'b', 'c'], ['d']],
    );
  });

  it('cuts the same greedily when the visits arrive one batch each, in time order', () => {
    const d = new PipelineDriver(config);

    for (const m of [0, 25, 50, 75, 100, 125, 150]) d.batch([visit('u', T0 + m * MINUTE, `p${m}`)]);
    d.flush();

    assert.deepEqual(
      d.closed.map((s) => s.visits.map((v) => (v.t - T0) / MINUTE)),
      [[0, 25, 50], [75, 100, 125], [150]],
    );
  });

  it('cuts the same greedily when the visits arrive over several batches', () => {
    const d = new PipelineDriver({ ...config, allowedLatenessMs: 4 * 60 * MINUTE });

    for (const m of [150, 0, 100, 25, 125, 50, 75]) d.batch([visit('u', T0 + m * MINUTE, `p${m}`)]);
    d.flush();

    assert.deepEqual(
      d.closed.map((s) => s.visits.map((v) => (v.t - T0) / MINUTE)),
      [[0, 25, 50], [75, 100, 125], [150]],
    );
  });
});

describe('the watermark', () => {
  it('starts at minus infinity, so nothing in the first batch is late', () => {
    const result = sessionizeBatch({
      pending: new Map(),
      visits: [visit('u', 0, 'a'), visit('u', T0, 'b')],
      watermark: INITIAL_WATERMARK,
      config: CONFIG,
      sourceObject: 'o',
    });

    assert.deepEqual(result.late, []);
    assert.equal(result.accepted, 2);
  });

  it('becomes the batch maximum minus the allowed lateness', () => {
    const d = new PipelineDriver(CONFIG);

    const step = d.batch([visit('u', T0 + 7, 'a'), visit('v', T0 + 1000, 'b'), visit('u', T0, 'c')]);

    assert.equal(step.result.maxVisitTime, T0 + 1000);
    assert.equal(step.result.watermark, T0 + 1000 - LATENESS);
  });

  it('never moves back when a later batch holds only older visits', () => {
    const d = new PipelineDriver(CONFIG);
    d.batch([visit('u', T0 + 60 * MINUTE, 'a')]);
    const before = d.watermark;

    const step = d.batch([visit('v', before, 'b')]);

    assert.equal(step.result.watermark, before);
    assert.equal(step.result.accepted, 1);
  });

  it('stays the same for an empty batch', () => {
    const result = sessionizeBatch({
      pending: new Map(),
      visits: [],
      watermark: T0,
      config: CONFIG,
      sourceObject: 'o',
    });

    assert.equal(result.watermark, T0);
    assert.equal(result.maxVisitTime, Number.NEGATIVE_INFINITY);
    assert.deepEqual(result.closed, []);
  });
});

describe('late visits', () => {
  const W = T0 + 60 * MINUTE - LATENESS; // watermark after a batch whose maximum is T0 + 60 min

  it('does not count a visit exactly at the watermark as late', () => {
    const d = new PipelineDriver(CONFIG);
    d.batch([visit('u', T0 + 60 * MINUTE, 'a')]);
    assert.equal(d.watermark, W);

    const step = d.batch([visit('v', W, 'b')]);

    assert.deepEqual(step.result.late, []);
    assert.equal(step.result.accepted, 1);
  });

  it('reports a visit 1 ms below the watermark as late, with source and watermark, and sessionizes nothing', () => {
    const d = new PipelineDriver(CONFIG);
    d.batch([visit('u', T0 + 60 * MINUTE, 'a')]);

    const step = d.batch([visit('v', W - 1, 'b', 7)], 's3://in/second.jsonl');

    assert.deepEqual(step.result.late, [
      { userId: 'v', t: W - 1, page: 'b', sourceObject: 's3://in/second.jsonl', sourceLine: 7, watermark: W },
    ]);
    assert.equal(step.result.accepted, 0);
    assert.equal(step.result.pending.has('v'), false, 'a user with only late visits gets no pending entry');
    assert.equal(d.pending.has('v'), false);
  });

  it('leaves a pending session untouched when a late visit falls inside it', () => {
    const d = new PipelineDriver(CONFIG);
    d.batch([visit('u', T0, 'a'), visit('u', T0 + 20 * MINUTE, 'c')]); // W = T0 + 5 min
    const inTime = d.batch([visit('u', T0 + 10 * MINUTE, 'b')]);
    assert.deepEqual(inTime.result.late, []);
    const before = shape(d.pending.get('u') ?? []);

    const step = d.batch([visit('u', T0 + 1, 'x')]);

    assert.deepEqual(
      step.result.late.map((v) => v.page),
      ['x'],
    );
    assert.equal(step.result.pending.has('u'), false);
    assert.deepEqual(shape(d.pending.get('u') ?? []), before);
    d.flush();
    assert.deepEqual(
      d.closed.map((s) => s.visits.map((v) => v.page)),
      [['a', 'b', 'c']],
    );
  });

  it('compares every visit of a batch with the watermark before the batch, not the one it produces', () => {
    const d = new PipelineDriver(CONFIG);
    d.batch([visit('u', T0, 'a')]);

    // The batch's own maximum moves W to T0 + 85 min, but T0 + 1 min is compared with W = T0 - 15 min.
    const step = d.batch([visit('u', T0 + 100 * MINUTE, 'b'), visit('v', T0 + MINUTE, 'c')]);

    assert.deepEqual(step.result.late, []);
    assert.equal(step.watermarkBefore, T0 - LATENESS);
  });
});

describe('duplicates', () => {
  it('counts a duplicate within a batch once and adds nothing', () => {
    const d = new PipelineDriver(CONFIG);

    const step = d.batch([visit('u', T0, 'a', 1), visit('u', T0, 'a', 2), visit('u', T0, 'b', 3)]);

    assert.equal(step.result.duplicates, 1);
    assert.equal(step.result.accepted, 2);
    assert.deepEqual(
      d.flush().map((s) => s.visits.length),
      [2],
    );
  });

  it('counts a copy of a pending visit as a duplicate and leaves the session as it was', () => {
    const d = new PipelineDriver(CONFIG);
    d.batch([visit('u', T0, 'a'), visit('u', T0 + MINUTE, 'b')]);
    const before = shape(d.pending.get('u') ?? []);

    const step = d.batch([visit('u', T0 + MINUTE, 'b'), visit('u', T0, 'a')]);

    assert.equal(step.result.duplicates, 2);
    assert.equal(step.result.accepted, 0);
    assert.deepEqual(shape(step.result.pending.get('u') ?? []), before);
  });

  it('does not treat a different page, time (1 ms) or user as a duplicate', () => {
    const d = new PipelineDriver(CONFIG);

    const step = d.batch([
      visit('u', T0, 'a'),
      visit('u', T0, 'A'),
      visit('u', T0 + 1, 'a'),
      visit('v', T0, 'a'),
    ]);

    assert.equal(step.result.duplicates, 0);
    assert.equal(step.result.accepted, 4);
  });

  it('reports a copy of a closed visit as late every time it arrives, never as a duplicate', () => {
    const d = new PipelineDriver(CONFIG);
    d.batch([visit('u', T0, 'a')]);
    d.batch([visit('w', T0 + 2 * 60 * MINUTE, 'x')]); // W = T0 + 105 min > T0 + 40 min: u closes
    assert.equal(d.closed.length, 1);

    const first = d.batch([visit('u', T0, 'a')]);
    const second = d.batch([visit('u', T0, 'a')]);

    for (const step of [first, second]) {
      assert.equal(step.result.late.length, 1);
      assert.equal(step.result.duplicates, 0);
      assert.equal(step.result.accepted, 0);
    }
    assert.equal(d.closed.length, 1, 'the closed session is not written again');
  });

  it('reports a late copy of a still-pending visit as late, not as a duplicate', () => {
    const d = new PipelineDriver(CONFIG);
    d.batch([visit('u', T0, 'a'), visit('u', T0 + 30 * MINUTE, 'b')]); // W = T0 + 15 min; u pending

    const step = d.batch([visit('u', T0, 'a')]);

    assert.equal(step.result.late.length, 1);
    assert.equal(step.result.duplicates, 0);
  });

  it('accounts for every visit: accepted + duplicates + late = visits', () => {
    const d = new PipelineDriver(CONFIG);
    d.batch([visit('u', T0 + 60 * MINUTE, 'a')]);
    const visits = [
      visit('u', T0 + 60 * MINUTE, 'a'), // duplicate of pending
      visit('u', T0 + 61 * MINUTE, 'b'),
      visit('u', T0 + 61 * MINUTE, 'b'), // duplicate in batch
      visit('v', T0, 'c'), // late
      visit('v', T0, 'c'), // late again
    ];

    const { result } = d.batch(visits);

    assert.deepEqual([result.accepted, result.duplicates, result.late.length], [1, 2, 2]);
  });
});

describe('closing', () => {
  it('does not close a session when W equals end + gap, and closes it when W is 1 ms past', () => {
    const d = new PipelineDriver(CONFIG);
    d.batch([visit('a', T0, 'p')]);

    const atBoundary = d.batch([visit('b', T0 + GAP + LATENESS, 'p')]); // W = T0 + GAP
    assert.equal(atBoundary.result.watermark, T0 + GAP);
    assert.deepEqual(atBoundary.closed, []);
    assert.ok(d.pending.has('a'));

    const past = d.batch([visit('b', T0 + GAP + LATENESS + 1, 'p')]); // W = T0 + GAP + 1
    assert.deepEqual(shape(past.closed), [['a', T0, T0, [[T0, 'p']]]]);
    assert.equal(d.pending.has('a'), false);
  });

  it('closes a batch user whose session the batch itself makes due', () => {
    const d = new PipelineDriver(CONFIG);

    const step = d.batch([visit('u', T0, 'a'), visit('u', T0 + 3 * GAP, 'b')]); // W = T0 + 120 - 15 min

    assert.deepEqual(shape(step.result.closed), [['u', T0, T0, [[T0, 'a']]]]);
    assert.deepEqual(
      step.result.pending.get('u')?.map((s) => s.start),
      [T0 + 3 * GAP],
    );
  });

  it('gives an empty pending list for a batch user whose sessions all closed', () => {
    const result = sessionizeBatch({
      pending: new Map([['u', [session('u', [[T0, 'a']])]]]),
      visits: [visit('u', T0, 'a'), visit('v', T0 + 3 * GAP, 'b')],
      watermark: T0,
      config: CONFIG,
      sourceObject: 'o',
    });

    assert.deepEqual(result.pending.get('u'), []);
    assert.deepEqual(
      result.closed.map((s) => s.userId),
      ['u'],
    );
  });

  it('sorts the closed sessions of a batch by user, then start', () => {
    const result = sessionizeBatch({
      pending: new Map(),
      visits: [
        visit('b', T0 + GAP + 1, 'x'),
        visit('b', T0, 'x'),
        visit('a', T0 + 1, 'x'),
        visit('z', T0 + 10 * GAP, 'x'),
      ],
      watermark: INITIAL_WATERMARK,
      config: CONFIG,
      sourceObject: 'o',
    });

    assert.deepEqual(
      result.closed.map((s) => [s.userId, s.start]),
      [
        ['a', T0 + 1],
        ['b', T0],
        ['b', T0 + GAP + 1],
      ],
    );
  });

  it('isClosedBy is strict: W > end + gap', () => {
    assert.equal(isClosedBy({ end: T0 }, T0 + GAP, CONFIG), false);
    assert.equal(isClosedBy({ end: T0 }, T0 + GAP + 1, CONFIG), true);
    assert.equal(isClosedBy({ end: T0 }, INITIAL_WATERMARK, CONFIG), false);
  });

  it('closeDue splits sessions into those the watermark closes and those still open', () => {
    const early = session('u', [[T0, 'a']]);
    const boundary = session('u', [[T0 + MINUTE, 'b']]);
    const late = session('u', [[T0 + 2 * GAP, 'c']]);

    const { closed, open } = closeDue([early, boundary, late], T0 + MINUTE + GAP, CONFIG);

    assert.deepEqual(closed, [early]);
    assert.deepEqual(open, [boundary, late]);
  });

  it('flushAll closes every session regardless of the watermark', () => {
    const sessions = [session('u', [[T0, 'a']]), session('v', [[T0 + 10 * GAP, 'b']])];

    assert.deepEqual(flushAll(sessions), sessions);
    assert.deepEqual(flushAll([]), []);
  });
});

describe('the seed walkthrough (gap 40 min, lateness 15 min)', () => {
  const at = (h: number, m: number, s: number, ms: number): number => Date.UTC(2026, 1, 15, h, m, s, ms);
  const batch1 = [
    visit('1', at(17, 5, 34, 432), 'page_1.html', 1),
    visit('1', at(17, 5, 34, 532), 'page_2.html', 2),
    visit('2', at(17, 5, 34, 632), 'page_3.html', 3),
    visit('3', at(17, 5, 34, 732), 'page_4.html', 4),
  ];
  const batch2 = [
    visit('1', at(17, 6, 46, 900), 'page_3.html', 1),
    visit('1', at(17, 6, 47, 100), 'page_4.html', 2),
    visit('2', at(17, 6, 47, 0), 'page_1.html', 3),
    visit('3', at(17, 6, 47, 50), 'page_2.html', 4),
  ];
  const batch3 = [visit('4', at(18, 9, 18, 0), 'page_1.html', 1)];

  it('closes nothing after batches 1 and 2', () => {
    const d = new PipelineDriver(CONFIG);

    const s1 = d.batch(batch1, 'visits-1.jsonl');
    const s2 = d.batch(batch2, 'visits-2.jsonl');

    assert.deepEqual(s1.closed, []);
    assert.deepEqual(s2.closed, []);
    assert.equal(d.watermark, at(16, 51, 47, 100)); // 17:06:47.100 - 15 min
    assert.deepEqual([...d.pending.keys()].sort(), ['1', '2', '3']);
    assert.equal(d.late.length, 0);
  });

  it('after batch 3 closes users 1, 2 and 3 with 4, 2 and 2 visits, and keeps user 4 pending', () => {
    const d = new PipelineDriver(CONFIG);
    d.batch(batch1, 'visits-1.jsonl');
    d.batch(batch2, 'visits-2.jsonl');

    const s3 = d.batch(batch3, 'visits-3.jsonl');

    assert.equal(d.watermark, at(17, 54, 18, 0)); // 18:09:18 - 15 min > 17:06:47.100 + 40 min
    assert.deepEqual(s3.closed.map((s) => [s.userId, s.visits.length]).sort(), [
      ['1', 4],
      ['2', 2],
      ['3', 2],
    ]);
    const user1 = s3.closed.find((s) => s.userId === '1')!;
    assert.equal(user1.start, at(17, 5, 34, 432));
    assert.equal(user1.end, at(17, 6, 47, 100));
    assert.equal(user1.end - user1.start, 72_668);
    assert.deepEqual([...d.pending.keys()], ['4']);
    assert.deepEqual(
      d.pending.get('4')?.map((s) => s.visits.length),
      [1],
    );
  });

  it('closes user 4 only once the watermark passes 18:09:18 + 40 min, or on flush', () => {
    const d = new PipelineDriver(CONFIG);
    for (const b of [batch1, batch2, batch3]) d.batch(b);

    const notYet = d.batch([visit('5', at(19, 4, 18, 0), 'p')]); // W = 18:49:18 = 18:09:18 + 40 min
    const closes = d.batch([visit('5', at(19, 4, 18, 1), 'p')]); // W = 18:49:18.001

    assert.deepEqual(notYet.closed, []);
    assert.deepEqual(
      closes.closed.map((s) => s.userId),
      ['4'],
    );
    assert.deepEqual(
      d.flush().map((s) => [s.userId, s.visits.length]),
      [['5', 2]],
    );
  });
});
