/**
 * `replay` end to end through the local S3 and DynamoDB servers, against two independent expectations: the core
 * driven sequentially in memory (same late visits, same counts) and the brute-force batch reference (closed
 * sessions = batch sessionization of the distinct non-late visits).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { replay } from '../../cli/replay.ts';
import type { Visit } from '../../lambdas/core/types.ts';
import { linesByPartition, linesUnder, readTree } from '../helpers/files.ts';
import { PipelineDriver, visit } from '../helpers/pipeline.ts';
import { referenceSessionize, sessionsFromCore, sessionsFromJsonLines } from '../helpers/reference.ts';

const MIN = 60_000;
const BASE = Date.UTC(2026, 1, 15, 17, 0, 0);
const GAP = 10 * MIN;
const LATENESS = 5 * MIN;

type Line = { kind: 'visit'; user: string | number; t: number; page: string } | { kind: 'bad'; text: string };

const lineArb: fc.Arbitrary<Line> = fc.oneof(
  {
    weight: 12,
    arbitrary: fc.record({
      kind: fc.constant('visit' as const),
      user: fc.constantFrom<string | number>('a', 'b', 'c d', 17),
      t: fc.integer({ min: 0, max: 180 }).map((m) => BASE + m * MIN),
      page: fc.constantFrom('p1', 'p2', 'p3'),
    }),
  },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom('not json', '{"user_id":"a"}', '{"user_id":"a","visit_time":"x","page":"p"}')
      .map((text) => ({ kind: 'bad' as const, text })),
  },
);

/** Files: each a list of lines; later files tend to be later in time, with some going back (late data). */
const scenarioArb = fc
  .array(fc.array(lineArb, { minLength: 0, maxLength: 12 }), { minLength: 1, maxLength: 5 })
  .chain((files) =>
    // duplicate some lines inside and across files
    fc.array(fc.nat(), { maxLength: 4 }).map((picks) => {
      const all = files.flat();
      const copy = files.map((f) => [...f]);
      for (const p of picks)
        if (all.length > 0 && copy.length > 0) copy[p % copy.length]!.push(all[p % all.length]!);
      return copy;
    }),
  );

const render = (l: Line): string =>
  l.kind === 'bad'
    ? l.text
    : JSON.stringify({ user_id: l.user, visit_time: new Date(l.t).toISOString(), page: l.page });

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sessionizer-replay-test-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function writeFiles(name: string, files: Line[][]): Promise<string[]> {
  const paths: string[] = [];
  for (const [i, lines] of files.entries()) {
    const path = join(dir, `${name}-${i}.jsonl`);
    await writeFile(path, lines.map(render).join('\n'));
    paths.push(path);
  }
  return paths;
}

describe('replay', () => {
  it('equals the core run sequentially and the batch reference of the distinct non-late visits', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(scenarioArb, async (files) => {
        // arrange
        const name = `run${run++}`;
        const paths = await writeFiles(name, files);
        const out = join(dir, `${name}-out`);
        const driver = new PipelineDriver({
          gapMs: GAP,
          allowedLatenessMs: LATENESS,
          maxSessionDurationMs: null,
        });
        for (const [i, lines] of files.entries()) {
          const visits = lines.flatMap((l, n) =>
            l.kind === 'visit' && lines.length > 0 ? [visit(String(l.user), l.t, l.page, n + 1)] : [],
          );
          driver.batch(visits, `s3://sessionizer-visits/visits/${name}-${i}.jsonl`);
        }
        driver.flush();

        // act
        const summary = await replay({ files: paths, out, gapMs: GAP, latenessMs: LATENESS, flush: true });
        const tree = await readTree(out);

        // assert: counts
        const lines = files.flat();
        const bad = lines.filter((l) => l.kind === 'bad').length;
        assert.equal(summary.files, files.length);
        assert.equal(summary.lines, lines.length);
        assert.equal(summary.visits, lines.length - bad);
        assert.equal(summary.rejected, bad);
        assert.equal(summary.late, driver.late.length);
        assert.equal(summary.duplicates, driver.duplicates);
        assert.equal(summary.visits, driver.accepted + driver.duplicates + driver.late.length);
        assert.equal(summary.pending, 0);
        // late visits: exactly the ones the sequential core reports
        const late = linesUnder(tree, 'late-visits/').map((l) => {
          const r = JSON.parse(l) as {
            user_id: string;
            visit_time: string;
            page: string;
            source_object: string;
            source_line: number;
          };
          return [r.source_object, r.source_line, r.user_id, Date.parse(r.visit_time), r.page].join('|');
        });
        const expectedLate = driver.late.map((v) =>
          [v.sourceObject, v.sourceLine, v.userId, v.t, v.page].join('|'),
        );
        assert.deepEqual(late.sort(), expectedLate.sort());
        assert.equal(linesUnder(tree, 'rejected/').length, bad);
        // sessions: the batch reference of the distinct non-late visits, and the core's own closings
        const sessions = sessionsFromJsonLines(linesUnder(tree, 'sessions/').join('\n'));
        const lateKeys = new Set(driver.late.map((v) => `${v.sourceObject}|${v.sourceLine}`));
        const accepted: Visit[] = [];
        for (const [i, lines] of files.entries()) {
          lines.forEach((l, n) => {
            if (l.kind !== 'visit') return;
            if (lateKeys.has(`s3://sessionizer-visits/visits/${name}-${i}.jsonl|${n + 1}`)) return;
            accepted.push(visit(String(l.user), l.t, l.page, n + 1));
          });
        }
        assert.deepEqual(sessions, referenceSessionize(accepted, GAP));
        assert.equal(summary.sessions, sessions.length);
        assert.deepEqual(sessions, sessionsFromCore(driver.closed));
      }),
      { numRuns: 12 },
    );
  });

  it('treats the same file given twice as a duplicate delivery that changes nothing', async () => {
    // arrange
    const [path] = await writeFiles('twice', [
      [
        { kind: 'visit', user: 'a', t: BASE, page: 'p1' },
        { kind: 'visit', user: 'a', t: BASE + MIN, page: 'p2' },
        { kind: 'visit', user: 'b', t: BASE, page: 'p1' },
      ],
    ]);

    // act
    const once = await replay({ files: [path!], out: join(dir, 'once'), flush: true });
    const twice = await replay({ files: [path!, path!], out: join(dir, 'twice'), flush: true });

    // assert: the same records and counts (what the runs cost differs: the second delivery is one more request)
    const counts = (s: typeof once) => ({
      lines: s.lines,
      visits: s.visits,
      accepted: s.accepted,
      duplicates: s.duplicates,
      late: s.late,
      rejected: s.rejected,
      sessions: s.sessions,
      pending: s.pending,
      watermark: s.watermark,
      order: s.order,
    });
    assert.deepEqual(counts(twice), counts(once));
    assert.deepEqual(
      linesByPartition(await readTree(join(dir, 'twice'))),
      linesByPartition(await readTree(join(dir, 'once'))),
    );
    assert.equal(once.sessions, 2);
  });

  it('leaves sessions pending with --no-flush', async () => {
    // arrange
    const [path] = await writeFiles('noflush', [[{ kind: 'visit', user: 'a', t: BASE, page: 'p1' }]]);

    // act
    const summary = await replay({ files: [path!], out: join(dir, 'noflush-out'), flush: false });

    // assert
    assert.equal(summary.sessions, 0);
    assert.equal(summary.pending, 1);
    assert.equal(summary.watermark, new Date(BASE - 15 * MIN).toISOString());
  });
});
