/** The byte formats of the state: snapshots, deltas and staged segments round-trip exactly, and refuse corrupt data. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ByteReader, ByteWriter, CorruptDataError } from '../../lambdas/core/binary.ts';
import { decodeDelta, decodeSnapshot, encodeDelta, encodeSnapshot } from '../../lambdas/core/parts.ts';
import { ShardState } from '../../lambdas/core/shard-state.ts';
import { shardOf, splitByShard } from '../../lambdas/core/shards.ts';
import { decodeSegmentShard, encodeSegment, segmentShards } from '../../lambdas/core/staged.ts';
import { DEFAULT_SESSION_CONFIG, type Visit } from '../../lambdas/core/types.ts';

const YEAR_0 = -62_167_219_200_000; // 0000-01-01T00:00:00.000Z
const YEAR_9999 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z

function visitsOf(user: string, from: number, n: number, stepMs: number): Visit[] {
  return Array.from({ length: n }, (_, i) => ({
    userId: user,
    t: from + i * stepMs,
    page: i % 3 === 0 ? `p/${i % 7}` : i % 3 === 1 ? 'ünïcødé "quoted" \\ \u0001' : `page_${i}.html`,
    line: i + 1,
  }));
}

describe('binary encoding', () => {
  it('round-trips integers up to 2^53, negative ones, infinities and strings', () => {
    const w = new ByteWriter(1);
    const ints = [0, 1, 127, 128, 2 ** 31, 2 ** 53 - 1, YEAR_9999];
    const signed = [0, -1, 1, YEAR_0, YEAR_9999, -(2 ** 52)];
    for (const n of ints) w.uint(n);
    for (const n of signed) w.int(n);
    for (const d of [Number.NEGATIVE_INFINITY, Number.POSITIVE_INFINITY, 1.5]) w.double(d);
    w.string('é\u0000😀');
    const r = new ByteReader(w.finish());

    assert.deepEqual(
      ints.map(() => r.uint()),
      ints,
    );
    assert.deepEqual(
      signed.map(() => r.int()),
      signed,
    );
    assert.deepEqual([r.double(), r.double(), r.double()], [-Infinity, Infinity, 1.5]);
    assert.equal(r.string(), 'é\u0000😀');
    assert.ok(r.done);
  });

  it('fails with CorruptDataError on truncated data', () => {
    const w = new ByteWriter();
    w.string('hello');
    const bytes = w.finish().subarray(0, 3);

    assert.throws(() => new ByteReader(bytes).string(), CorruptDataError);
  });
});

describe('snapshots', () => {
  it('round-trip a long session, times from year 0000 to 9999, odd pages and a flushed end', () => {
    const state = new ShardState(DEFAULT_SESSION_CONFIG);
    const visits = [
      ...visitsOf('long', Date.UTC(2026, 1, 15), 1000, 1000),
      ...visitsOf('old', YEAR_0, 3, 60_000),
      ...visitsOf('late-in-time', YEAR_9999 - 10, 3, 1),
    ];
    state.apply(visits, { before: Number.NEGATIVE_INFINITY, after: YEAR_0 - 1 }, 'o');
    state.apply(
      visitsOf('gone', Date.UTC(2026, 1, 15), 2, 1000),
      { before: YEAR_0 - 1, after: YEAR_0 - 1 },
      'o',
    );
    const copy = new ShardState(DEFAULT_SESSION_CONFIG);
    decodeSnapshot(encodeSnapshot(state), copy);

    const dump = (s: ShardState) =>
      [...s.snapshot()]
        .map((u) =>
          JSON.stringify([
            u.user,
            u.flushedThrough,
            u.sessions.map((x) => x.visits.map((v) => [v.t, v.page])),
          ]),
        )
        .sort();
    assert.deepEqual(dump(copy), dump(state));
    assert.equal(copy.watermark, state.watermark);
    assert.equal(copy.sessionCount, 4);

    state.flush();
    const flushed = new ShardState(DEFAULT_SESSION_CONFIG);
    decodeSnapshot(encodeSnapshot(state), flushed);
    assert.deepEqual(dump(flushed), dump(state));
    assert.equal(dump(flushed).length, 4, 'each flushed user is kept with its end');
  });

  it('refuses a delta given as a snapshot, and bytes that are not a part', () => {
    const delta = encodeDelta([]);

    assert.throws(() => decodeSnapshot(delta, new ShardState(DEFAULT_SESSION_CONFIG)), /expected kind/);
    assert.throws(() => decodeDelta(Buffer.from('not a part')), CorruptDataError);
  });
});

describe('deltas', () => {
  it('round-trip every field of every step kind', () => {
    const added = new Map([
      ['u1', visitsOf('u1', Date.UTC(2026, 1, 15), 20, 500).map(({ t, page }) => ({ t, page }))],
    ]);
    const late = [
      { userId: 'u2', t: YEAR_0, page: 'x', sourceObject: 's3://b/k', sourceLine: 7, watermark: 5 },
      { userId: 'u1', t: 1, page: 'é', sourceObject: 's3://b/k', sourceLine: 9, watermark: 2 },
    ];
    const steps = [
      {
        seq: 1,
        kind: 'visits' as const,
        before: -Infinity,
        after: 10,
        source: 's3://b/k',
        accepted: 20,
        duplicates: 3,
        added,
        late,
      },
      {
        seq: 2,
        kind: 'flush' as const,
        before: 10,
        after: 10,
        source: 'flush',
        accepted: 0,
        duplicates: 0,
        added: new Map(),
        late: [],
      },
      {
        seq: 3,
        kind: 'advance' as const,
        before: 10,
        after: 99,
        source: 'advance',
        accepted: 0,
        duplicates: 0,
        added: new Map(),
        late: [],
      },
    ];

    assert.deepEqual(decodeDelta(encodeDelta(steps)), steps);
  });
});

describe('staged segments', () => {
  it('give each shard its own visits, in input order, with their lines', () => {
    const visits = [
      ...visitsOf('a', 1000, 50, 7),
      ...visitsOf('b', 5, 30, -1),
      ...visitsOf('c', YEAR_0, 3, 1),
    ];
    const byShard = splitByShard(visits, 16);
    const bytes = encodeSegment(byShard);

    assert.equal(segmentShards(bytes), 16);
    for (let s = 0; s < 16; s++) {
      assert.deepEqual(
        decodeSegmentShard(bytes, s),
        visits.filter((v) => shardOf(v.userId, 16) === s),
      );
    }
  });

  it('refuses a shard beyond the count and bytes that are not a segment', () => {
    const bytes = encodeSegment(splitByShard(visitsOf('a', 0, 3, 1), 4));

    assert.throws(() => decodeSegmentShard(bytes, 4), /no shard 4 of 4/);
    assert.throws(() => decodeSegmentShard(Buffer.from('nope, not a segment'), 0), /bad magic/);
  });
});
