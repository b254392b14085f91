/**
 * Exactly once under faults and concurrency (DESIGN section 5), through `replay` on the local servers:
 * random AWS call failures give output identical to a clean run; concurrent invocations keep every invariant.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { replay } from '../../cli/replay.ts';
import { linesUnder, readTree } from '../helpers/files.ts';
import { referenceSessionize, sessionsFromJsonLines } from '../helpers/reference.ts';
import { MIN, type TestFiles, writeTestFiles } from '../helpers/workload.ts';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

const GAP = 10 * MIN;
const LATENESS = 5 * MIN;
let dir: string;
let files: TestFiles;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sessionizer-chaos-'));
  files = await writeTestFiles(dir, 'chaos', { files: 4, lines: 40, users: 6, seed: 11 });
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('replay --chaos', () => {
  for (const [p, seed] of [
    [0.1, 1],
    [0.3, 2],
    [0.3, 3],
  ] as const) {
    it(`gives the same output folder and counts as a clean run when AWS calls fail with p=${p} (seed ${seed})`, async () => {
      // arrange
      const clean = await replay({
        files: files.paths,
        out: join(dir, `clean-${seed}`),
        gapMs: GAP,
        latenessMs: LATENESS,
        flush: true,
      });
      let stats = { injected: 0, calls: 0, retried: 0 };

      // act
      const chaotic = await replay({
        files: files.paths,
        out: join(dir, `chaos-${seed}`),
        gapMs: GAP,
        latenessMs: LATENESS,
        flush: true,
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
      assert.deepEqual(chaotic, clean);
      assert.deepEqual(
        await readTree(join(dir, `chaos-${seed}`)),
        await readTree(join(dir, `clean-${seed}`)),
      );
      assert.ok(clean.sessions > 0 && clean.late > 0 && clean.rejected > 0 && clean.duplicates > 0);
    });
  }
});

describe('replay --concurrency', () => {
  for (const [concurrency, chaos] of [
    [3, 0],
    [4, 0.2],
  ] as const) {
    it(`keeps every invariant with ${concurrency} concurrent invocations${chaos ? ` and p=${chaos} faults` : ''}`, async () => {
      // act
      const out = join(dir, `concurrent-${concurrency}-${chaos}`);
      const summary = await replay({
        files: files.paths,
        out,
        gapMs: GAP,
        latenessMs: LATENESS,
        flush: true,
        concurrency,
        chaos,
        seed: 5,
      });
      const tree = await readTree(out);

      // assert: the late visits are exactly the ones reported, each once
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
      // sessions = the batch sessionization (gap rule) of the distinct valid visits that were not late; so no visit
      // is in two sessions and no session breaks the gap rule
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
