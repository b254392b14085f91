/**
 * Exactly once under faults and concurrency, through `replay` on the local servers: random AWS call failures give
 * the same records and counts as a clean run; N concurrent invocations give exactly what a sequential replay of the
 * files in the order the object log recorded them gives.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type ReplaySummary, replay } from '../../cli/replay.ts';
import { linesByPartition, linesUnder, readTree } from '../helpers/files.ts';
import { referenceSessionize, sessionsFromJsonLines } from '../helpers/reference.ts';
import { MIN, type TestFiles, writeTestFiles } from '../helpers/workload.ts';

const GAP = 10 * MIN;
const LATENESS = 5 * MIN;
let dir: string;
let files: TestFiles;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sessionizer-chaos-'));
  files = await writeTestFiles(dir, 'chaos', { files: 8, lines: 40, users: 6, seed: 11 });
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** What a replay computed, without what it cost (calls and retries differ under faults and concurrency). */
function records(summary: ReplaySummary) {
  const {
    invocations: _i,
    ddb_write_units_per_visit: _w,
    ddb_read_units_per_visit: _r,
    s3_requests: _s,
    usd_per_million_visits: _u,
    ...rest
  } = summary;
  return rest;
}

describe('replay --chaos', () => {
  for (const [p, seed] of [
    [0.1, 1],
    [0.3, 2],
    [0.3, 3],
  ] as const) {
    it(`gives the same records and counts as a clean run when AWS calls fail with p=${p} (seed ${seed})`, async () => {
      // arrange
      const options = { files: files.paths, gapMs: GAP, latenessMs: LATENESS, flush: true, batchSize: 3 };
      const clean = await replay({ ...options, out: join(dir, `clean-${seed}`) });
      let stats = { injected: 0, calls: 0, retried: 0 };

      // act
      const chaotic = await replay({
        ...options,
        out: join(dir, `chaos-${seed}`),
        chaos: p,
        seed,
        onFaults: (s) => {
          stats = s;
        },
      });

      // assert
      assert.ok(
        stats.injected > 0.5 * p * stats.calls * 0.5,
        `faults were injected: ${JSON.stringify(stats)}`,
      );
      assert.deepEqual(records(chaotic), records(clean));
      assert.deepEqual(
        linesByPartition(await readTree(join(dir, `chaos-${seed}`))),
        linesByPartition(await readTree(join(dir, `clean-${seed}`))),
      );
      assert.ok(clean.sessions > 0 && clean.late > 0 && clean.rejected > 0 && clean.duplicates > 0);
    });
  }
});

describe('replay --concurrency', () => {
  for (const [concurrency, chaos] of [
    [2, 0],
    [4, 0],
    [8, 0],
    [4, 0.2],
  ] as const) {
    it(`with ${concurrency} concurrent invocations${chaos ? ` and p=${chaos} faults` : ''}, equals a sequential replay in the log's order`, async () => {
      // act
      const out = join(dir, `concurrent-${concurrency}-${chaos}`);
      const options = { gapMs: GAP, latenessMs: LATENESS, flush: true, batchSize: 2 };
      const summary = await replay({ ...options, files: files.paths, out, concurrency, chaos, seed: 5 });
      const byName = new Map(files.paths.map((p) => [basename(p), p]));
      const sequentialOut = join(dir, `sequential-${concurrency}-${chaos}`);
      const sequential = await replay({
        ...options,
        files: summary.order.map((name) => byName.get(name)!),
        out: sequentialOut,
      });
      const tree = await readTree(out);

      // assert: the log holds every file once, and the records are those of the files processed in that order
      assert.deepEqual([...summary.order].sort(), files.paths.map((p) => basename(p)).sort());
      assert.deepEqual(sequential.order, summary.order);
      assert.deepEqual(records(summary), records(sequential));
      assert.deepEqual(linesByPartition(tree), linesByPartition(await readTree(sequentialOut)));
      // and they keep every invariant: late visits are valid input visits, each reported once
      const late = linesUnder(tree, 'late-visits/').map((l) => {
        const r = JSON.parse(l) as {
          source_object: string;
          source_line: number;
          user_id: string;
          visit_time: string;
          page: string;
        };
        const key = `${basename(r.source_object)}:${r.source_line}`;
        const v = files.valid.get(key);
        assert.ok(v, `late visit ${key} is a valid input visit`);
        assert.deepEqual([r.user_id, Date.parse(r.visit_time), r.page], [v.userId, v.t, v.page]);
        return key;
      });
      assert.equal(new Set(late).size, late.length, 'no late visit reported twice');
      assert.equal(summary.late, late.length);
      // sessions = the batch sessionization of the distinct valid visits that were not late
      const lateSet = new Set(late);
      const notLate = [...files.valid].filter(([key]) => !lateSet.has(key)).map(([, v]) => v);
      const sessions = sessionsFromJsonLines(linesUnder(tree, 'sessions/').join('\n'));
      assert.deepEqual(sessions, referenceSessionize(notLate, GAP));
      // conservation: lines = visits + rejected; visits = accepted + duplicates + late
      const accepted = sessions.reduce((a, s) => a + s.pages.length, 0);
      assert.equal(summary.lines, files.valid.size + files.badLines);
      assert.equal(summary.visits, files.valid.size);
      assert.equal(summary.rejected, files.badLines);
      assert.equal(summary.visits, accepted + summary.duplicates + summary.late);
      assert.equal(summary.pending, 0);
    });
  }
});
