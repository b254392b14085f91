import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseLevels } from '../../bench/concurrency.ts';
import { conservationErrors, runPass } from '../../bench/core.ts';
import { countSessions, expectedSessions, writeBigFile } from '../../bench/memory-files.ts';
import { compareSessions, coreSessions, type SessionRow } from '../../bench/sessions.ts';
import { generateVisits, generateWorkload } from '../../bench/workload.ts';
import type { ClosedSession } from '../../lambdas/core/types.ts';

describe('bench: the core pass', () => {
  it('closes the same sessions as the plain driver, after the same files', async () => {
    // the plain driver checks every user after every batch; the pass closes through the shards' expiry queues. 100 files make
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

describe('bench: the memory objects and options', () => {
  it('counts the sessions it expects as the row-by-row reference does', () => {
    const table = generateVisits({
      visits: 30_000,
      users: 1_500,
      files: 1,
      seed: 3,
      lateFraction: 0,
      duplicateFraction: 0,
    });
    assert.equal(countSessions(table), expectedSessions(table).length);
  });

  it('writes lines of the asked size that parse as visits, and expects their sessions', async () => {
    const dir = await mkdtemp(join(os.tmpdir(), 'sessionizer-bench-test-'));
    try {
      const path = join(dir, 'big.jsonl');
      const options = { visits: 20_000, users: 1_000, seed: 5, bytes: 20_000 * 150 };
      const file = await writeBigFile(path, { ...options, keepRows: true });
      const lines = (await readFile(path, 'utf8')).split('\n').filter((l) => l !== '');
      assert.equal(lines.length, options.visits);
      assert.equal(file.bytes, options.visits * 150);
      assert.ok(lines.every((l) => l.length === 149));
      const first = JSON.parse(lines[0]!) as { user_id: unknown; visit_time: string; page: string };
      assert.match(first.visit_time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.match(first.page, /^page_\d+\.html$/);
      assert.equal(file.expectedSessions, file.expectedRows!.length);
      const counted = await writeBigFile(path, options);
      assert.equal(counted.expectedSessions, file.expectedSessions);
      assert.equal(counted.expectedRows, undefined);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('parses concurrency levels', () => {
    assert.deepEqual(parseLevels('1,2, 4,8'), [1, 2, 4, 8]);
    assert.throws(() => parseLevels('1,0'), /--concurrency/);
    assert.throws(() => parseLevels('two'), /--concurrency/);
  });
});
