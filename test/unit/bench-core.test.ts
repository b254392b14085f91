import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { conservationErrors, runPass } from '../../bench/core.ts';
import { compareSessions, coreSessions, type SessionRow } from '../../bench/sessions.ts';
import { generateWorkload } from '../../bench/workload.ts';
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
