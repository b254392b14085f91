/**
 * Exactly-once under crashes and concurrency, on the local servers: a crash right before or after any single AWS
 * call of the protocol, then a retry of the same SQS batch, leaves the same outputs as a clean run; so does a lost
 * response to any conditional write (the SDK retries it and meets its own success). Concurrent invocations of the
 * same batch, of batches over the same users, of flushes and of scheduled runs write every session exactly once.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import type { FaultDecision } from '../../infra/local/faults.ts';
import type { HandlerResult } from '../../lambdas/sessionizer.ts';
import { flush, s3Batch, scheduled } from '../helpers/events.ts';
import {
  cleanRun,
  type FaultStack,
  invokeAndCrash,
  invokeWithCrash,
  startFaultStack,
} from '../helpers/faults.ts';
import {
  at,
  deliveries,
  jsonl,
  putObject,
  readRecords,
  snapshotOutputs,
  startTestStack,
  TestClock,
  type VisitRow,
} from '../helpers/local.ts';

const FLUSH = { action: 'flush', id: 'final' };
/** Shards of the crash matrix: every kind of call shows with four, and each step makes fewer calls than with 16. */
const SHARDS = { SESSIONIZER_SHARDS: '4' };

/** Each session id with the number of times it appears across every object under sessions/. */
async function sessionCounts(fs: { stack: FaultStack['stack'] }): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const s of await readRecords(fs.stack, 'sessions/')) {
    const id = String(s.session_id);
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}

function assertEachSessionOnce(counts: Map<string, number>): void {
  const repeated = [...counts].filter(([, n]) => n !== 1);
  assert.deepEqual(repeated, [], 'sessions written more than once');
}

/** Sample of 1..n: every `step`-th call, and always the first and the last. */
function sample(n: number, step: number): number[] {
  const ks = new Set<number>([1, n]);
  for (let k = 1; k <= n; k += step) ks.add(k);
  return [...ks].sort((a, b) => a - b);
}

/** Keys and contents that differ between two output snapshots. */
function differences(label: string, a: Map<string, string>, b: Map<string, string>): string[] {
  const diffs: string[] = [];
  for (const key of new Set([...a.keys(), ...b.keys()])) {
    if (a.get(key) !== b.get(key)) diffs.push(`${label}: ${key} differs`);
  }
  return diffs;
}

/** Rows of `users` users with two visits each, from `t`. */
function manyUsers(prefix: string, users: number, t: number): VisitRow[] {
  const rows: VisitRow[] = [];
  for (let u = 0; u < users; u++)
    rows.push([`${prefix}${u}`, t + u, 'a.html'], [`${prefix}${u}`, t + u + 60_000, 'b.html']);
  return rows;
}

describe('a crash at any single AWS call, then retries of the same batch', () => {
  let clean: Awaited<ReturnType<typeof cleanRun>>;
  before(async () => {
    clean = await cleanRun(SHARDS);
  });

  /**
   * The seed scenario (three SQS batches, then a flush) with a crash at call `k` of step `step` (0-2: batches, 3: the
   * flush), retried until it succeeds. Returns what differs from the clean run, or an empty list.
   */
  async function crashedRun(
    step: number,
    k: number,
    when: Exclude<FaultDecision, undefined>,
  ): Promise<string[]> {
    const fs = await startFaultStack(SHARDS);
    try {
      const events = [...fs.events, FLUSH];
      for (const [i, event] of events.entries()) {
        if (i !== step) {
          await fs.stack.invoke(event);
          continue;
        }
        const outcome = await invokeWithCrash(fs, event, k, when);
        if (outcome.attempts < 2) return [`${when} call ${k} of step ${step}: the fault did not fire`];
      }
      return differences(`${when} call ${k} of step ${step}`, await snapshotOutputs(fs.stack), clean.outputs);
    } finally {
      await fs.stack.stop();
    }
  }

  it('the clean run closes users 1, 2, 3 in batch 3 and user 4 in the flush', () => {
    const sessions = [...clean.outputs.values()].flatMap((text) =>
      text
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as { user_id: string; visit_count: number }),
    );

    assert.deepEqual(sessions.map((s) => [s.user_id, s.visit_count]).sort(), [
      ['1', 4],
      ['2', 2],
      ['3', 2],
      ['4', 1],
    ]);
    assert.ok(clean.calls[2]! > 15, `batch 3 makes ${clean.calls[2]} AWS calls`);
  });

  for (const [step, name] of ['batch 1', 'batch 2', 'batch 3 (the closing batch)', 'the flush'].entries()) {
    it(`a crash right after each call of ${name} leaves outputs identical to the clean run`, async (t) => {
      const diffs: string[] = [];
      for (let k = 1; k <= clean.calls[step]!; k++) diffs.push(...(await crashedRun(step, k, 'after')));
      t.diagnostic(`crash points: ${clean.calls[step]}`);

      assert.deepEqual(diffs, []);
    });
  }

  it('a crash right before a call of batch 3 or the flush (sampled) leaves outputs identical to the clean run', async (t) => {
    const diffs: string[] = [];
    const batchPoints = sample(clean.calls[2]!, 3);
    const flushPoints = sample(clean.calls[3]!, 3);
    for (const k of batchPoints) diffs.push(...(await crashedRun(2, k, 'before')));
    for (const k of flushPoints) diffs.push(...(await crashedRun(3, k, 'before')));
    t.diagnostic(`batch 3: ${batchPoints.join(', ')}; flush: ${flushPoints.join(', ')}`);

    assert.deepEqual(diffs, []);
  });

  it('a commit published by a later batch (its own invocation died after the commit) writes the same sessions once', async () => {
    // batch 3 commits the closing of users 1-3 on some shard and dies before publishing; batch 4 comes first: the
    // shard publishes the old commit's outbox (fixed when it was committed) before it commits batch 4's, which
    // closes user 4 too. Nothing of the old commit is rewritten with a larger set of sessions, nothing twice.
    const fs = await startFaultStack(SHARDS);
    try {
      const key4 = 'visits/2026-02-15/batch-4.jsonl';
      const etag4 = await putObject(fs.stack, key4, jsonl([['5', at(19, 30, 0), 'page_1.html']]));
      const event4 = s3Batch(fs.stack.config.visitsBucket, [{ key: key4, etag: etag4 }]);
      await fs.stack.invoke(fs.events[0]);
      await fs.stack.invoke(fs.events[1]);
      // its first output object is the second PutObject (after the staged segment): the commit is made by then
      let puts = 0;
      await invokeAndCrash(fs, fs.events[2], (_, command) =>
        command === 'PutObjectCommand' && ++puts === 2 ? 'before' : undefined,
      );
      assert.equal(
        (await readRecords(fs.stack, 'sessions/')).length,
        0,
        'nothing published before the crash',
      );

      await fs.stack.invoke(event4);
      await fs.stack.invoke(fs.events[2]); // the retry of batch 3: a duplicate by now
      await fs.stack.invoke(FLUSH);

      const counts = await sessionCounts(fs);
      assertEachSessionOnce(counts);
      const sessions = await readRecords(fs.stack, 'sessions/');
      assert.deepEqual(sessions.map((s) => s.user_id).sort(), ['1', '2', '3', '4', '5']);
    } finally {
      await fs.stack.stop();
    }
  });
});

describe('a lost response to a conditional write, retried by the SDK', () => {
  it('every conditional write of the seed scenario, its response lost once, leaves outputs identical to a clean run', async (t) => {
    const clean = await cleanRun(SHARDS);
    const conditional = new Set(['PutItemCommand', 'UpdateItemCommand']);
    // the j-th write of a run, for every j: each run makes the same writes in the same order
    const writes = clean.log.filter((command) => conditional.has(command)).length;
    assert.ok(writes > 20, `the scenario makes ${writes} writes`);
    const diffs: string[] = [];
    for (let j = 1; j <= writes; j++) {
      let seen = 0;
      const stack = await startTestStack({
        notifications: false,
        env: SHARDS,
        deterministic: true,
        now: new TestClock(Date.UTC(2026, 1, 16, 8, 0, 0)).now,
        faults: {
          mode: 'transient',
          rule: (_, command) => (conditional.has(command) && ++seen === j ? 'after' : undefined),
        },
      });
      try {
        const fs = await startSeed(stack);
        for (const event of [...fs.events, FLUSH]) await stack.invoke(event);
        assert.equal(stack.faults?.injected, 1, `write ${j} was answered and its response lost`);
        diffs.push(...differences(`lost response ${j}`, await snapshotOutputs(stack), clean.outputs));
      } finally {
        await stack.stop();
      }
    }
    t.diagnostic(`writes: ${writes}`);

    assert.deepEqual(diffs, []);
  });
});

/** The seed's objects put through the stack's clean clients, and their SQS batches. */
async function startSeed(stack: FaultStack['stack']) {
  const { putSeed, SEED } = await import('../helpers/local.ts');
  const etags = await putSeed(stack);
  return { events: SEED.map((f, i) => s3Batch(stack.config.visitsBucket, [{ key: f.key, etag: etags[i] }])) };
}

describe('concurrent invocations', () => {
  let clean: Awaited<ReturnType<typeof cleanRun>>;
  before(async () => {
    clean = await cleanRun();
  });

  it('the same batch twice at once: both succeed, each object gets one log entry, sessions are written once', async () => {
    const fs = await startFaultStack();
    try {
      for (const event of fs.events) {
        const results = await Promise.all([fs.stack.invoke(event), fs.stack.newInstance().invoke(event)]);
        assert.equal(deliveries(results).length, 2);
        const entries = results.flatMap((r) =>
          r.kind === 'queue' ? r.objects.map((o) => o.entry?.seq) : [],
        );
        assert.equal(new Set(entries).size, 1, 'both deliveries name the same entry');
      }
      await fs.stack.invoke(FLUSH);

      assertEachSessionOnce(await sessionCounts(fs));
      assert.deepEqual(differences('same batch twice', await snapshotOutputs(fs.stack), clean.outputs), []);
    } finally {
      await fs.stack.stop();
    }
  });

  it('batches over the same users at once never lose an update: every visit is in exactly one session', async () => {
    const fs = await startFaultStack();
    try {
      const files = 8;
      const users = 20;
      const events: unknown[] = [];
      for (let f = 0; f < files; f++) {
        const rows: VisitRow[] = [];
        for (let u = 0; u < users; u++) rows.push([`c${u}`, at(12, 0, 0) + f * 1000 + u, `f${f}.html`]);
        const key = `visits/concurrent/${f}.jsonl`;
        const etag = await putObject(fs.stack, key, jsonl(rows));
        events.push(s3Batch(fs.stack.config.visitsBucket, [{ key, etag }]));
      }

      const results = await Promise.all(events.map((e) => fs.stack.newInstance().invoke(e)));
      await fs.stack.invoke(FLUSH);

      assert.deepEqual(
        deliveries(results).map((b) => b.outcome),
        events.map(() => 'logged'),
      );
      const sessions = await readRecords(fs.stack, 'sessions/');
      assert.equal(sessions.length, users);
      assert.ok(sessions.every((s) => s.visit_count === files));
      assertEachSessionOnce(await sessionCounts(fs));
    } finally {
      await fs.stack.stop();
    }
  });

  it('two flushes at once close every pending session exactly once', async () => {
    const fs = await startFaultStack();
    try {
      for (const event of fs.events) await fs.stack.invoke(event);
      const key = 'visits/many-users.jsonl';
      const etag = await putObject(fs.stack, key, jsonl(manyUsers('m', 60, at(18, 10, 0))));
      await fs.stack.invoke(s3Batch(fs.stack.config.visitsBucket, [{ key, etag }]));

      const settled = await Promise.allSettled([
        fs.stack.invoke(flush('a')),
        fs.stack.newInstance().invoke(flush('b')),
      ]);

      assert.deepEqual(
        settled.map((s) => s.status),
        ['fulfilled', 'fulfilled'],
      );
      const closed = settled.map((s) => (s as PromiseFulfilledResult<HandlerResult>).value);
      assert.equal(
        closed.reduce((n, r) => n + (r.kind === 'flush' ? r.summary.catchUp.sessionsClosed : 0), 0),
        61,
      );
      assertEachSessionOnce(await sessionCounts(fs));
      const users = (await readRecords(fs.stack, 'sessions/')).map((s) => String(s.user_id));
      assert.equal(new Set(users).size, 3 + 1 + 60);
    } finally {
      await fs.stack.stop();
    }
  });

  it('two scheduled runs at once give each object one log entry and write every session exactly once', async () => {
    const fs = await startFaultStack();
    try {
      const rows = manyUsers('s', 100, at(17, 30, 0));
      await putObject(fs.stack, 'visits/2026-02-15/batch-0-many.jsonl', jsonl(rows));
      const inputVisits = 4 + 4 + 1 + rows.length;

      const settled = await Promise.allSettled([
        fs.stack.invoke(scheduled('sched-a')),
        fs.stack.newInstance().invoke(scheduled('sched-b')),
      ]);
      await fs.stack.invoke(FLUSH);

      assert.deepEqual(
        settled.map((s) => s.status),
        ['fulfilled', 'fulfilled'],
      );
      const logged = deliveries(settled.map((s) => (s as PromiseFulfilledResult<HandlerResult>).value));
      const tail = (await fs.stack.inspect.store.lastEntry())?.seq ?? 0;
      const entries = await fs.stack.inspect.store.readEntries(1, tail);
      const objects = entries.filter((e) => e.kind === 'object').map((e) => e.source);
      assert.equal(objects.length, 4, 'four objects in the log');
      assert.equal(new Set(objects).size, 4, 'each object once');
      assert.ok(logged.length >= 4);
      assertEachSessionOnce(await sessionCounts(fs));
      const sessions = await readRecords(fs.stack, 'sessions/');
      const late = await readRecords(fs.stack, 'late-visits/');
      assert.equal(
        sessions.reduce((n, s) => n + Number(s.visit_count), 0) + late.length,
        inputVisits,
        'every input visit is in exactly one session or reported late',
      );
    } finally {
      await fs.stack.stop();
    }
  });
});
