import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { conservationErrors, ExpiryBuckets, runPass } from '../../bench/core.ts';
import { compareSessions, coreSessions, type SessionRow } from '../../bench/duckdb.ts';
import { generateWorkload } from '../../bench/workload.ts';
import type { ClosedSession } from '../../lambdas/core/types.ts';

const MINUTE = 60_000;

type Op = { kind: 'push'; key: number } | { kind: 'take'; step: number; requeue: boolean };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant('push' as const),
    key: fc.integer({ min: -5 * MINUTE, max: 300 * MINUTE }),
  }),
  fc.record({
    kind: fc.constant('take' as const),
    // small steps, steps of whole buckets, and jumps far ahead (past many empty buckets)
    step: fc.oneof(
      fc.integer({ min: 0, max: 3 * MINUTE }),
      fc.constantFrom(MINUTE, 2 * MINUTE),
      fc.constant(100_000 * MINUTE),
    ),
    requeue: fc.boolean(),
  }),
);

describe('bench: the in-memory expiry index (calendar queue)', () => {
  it('takes every entry below the watermark exactly once, and nothing else (property)', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 150 }), (ops) => {
        const index = new ExpiryBuckets<number>();
        let model: { key: number; id: number }[] = [];
        let watermark = -10 * MINUTE;
        let next = 0;
        for (const op of ops) {
          if (op.kind === 'push') {
            index.push(op.key, next);
            model.push({ key: op.key, id: next++ });
            continue;
          }
          watermark += op.step;
          const taken: [number, number][] = [];
          const due = model.filter((e) => e.key < watermark);
          model = model.filter((e) => e.key >= watermark);
          index.takeDue(watermark, (id, key) => {
            taken.push([key, id]);
            if (op.requeue) {
              // as closing does for a session not due: an entry at or above the watermark, taken later
              const key = watermark + (id % 3) * MINUTE;
              index.push(key, next);
              model.push({ key, id: next++ });
            }
          });

          const byKeyThenId = (a: [number, number], b: [number, number]): number =>
            a[0] - b[0] || a[1] - b[1];
          assert.deepEqual(
            taken.sort(byKeyThenId),
            due.map((e): [number, number] => [e.key, e.id]).sort(byKeyThenId),
          );
        }
        // whatever is left comes out once the watermark passes it all
        const rest: number[] = [];
        index.takeDue(Number.MAX_SAFE_INTEGER, (id) => rest.push(id));
        assert.deepEqual(
          rest.sort((a, b) => a - b),
          model.map((e) => e.id).sort((a, b) => a - b),
        );
      }),
      { numRuns: 300 },
    );
  });
});

describe('bench: the core pass', () => {
  it('closes the same sessions as the plain driver, after the same files', async () => {
    // the plain driver checks every user after every batch; the pass closes through its expiry index. 100 files make
    // each one span about 15 minutes, less than the gap: sessions of users absent from a file then come due close to
    // its watermark, where a wrong closing rule in the index shows
    const { files } = generateWorkload({ visits: 20_000, users: 1_000, files: 100, seed: 7 });
    const dir = await mkdtemp(join(os.tmpdir(), 'sessionizer-bench-test-'));
    try {
      const paths: string[] = [];
      for (const f of files) {
        const path = join(dir, f.name);
        await writeFile(path, f.bytes);
        paths.push(path);
      }
      const row = (s: ClosedSession): SessionRow => ({
        userId: s.userId,
        start: s.start,
        end: s.end,
        visitCount: s.visits.length,
      });
      const closed: SessionRow[] = [];
      const closedWhen: string[] = [];
      const plainWhen: string[] = [];
      const when = (s: ClosedSession, batch: number): string => `${s.userId} ${s.start} ${s.end} ${batch}`;

      const pass = await runPass(files, undefined, (s, batch) => {
        closed.push(row(s));
        closedWhen.push(when(s, batch));
      });
      const plain = await coreSessions(paths, undefined, (s, batch) => plainWhen.push(when(s, batch)));

      assert.deepEqual(conservationErrors('pass', pass), []);
      const comparison = compareSessions({ sessions: closed, late: pass.late }, plain);
      assert.equal(comparison.equal, true, JSON.stringify(comparison));
      assert.deepEqual(closedWhen.sort(), plainWhen.sort(), 'each session closes after the same file');
      assert.equal(pass.sessions, closed.length);
      // the workload did exercise late visits, duplicates and closing between batches
      assert.ok(pass.late > 0, 'late visits');
      assert.ok(pass.duplicates > 0, 'duplicates');
      assert.ok(closed.length > 1_000, 'several sessions per user');
      assert.ok(new Set(closedWhen.map((w) => w.split(' ')[3])).size > 10, 'sessions close after many files');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
