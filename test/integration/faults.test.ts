/**
 * Exactly-once under crashes and concurrency, on the local servers: a crash right before or after any single AWS
 * call, then retries of the same event, leave the same outputs as a clean run; concurrent invocations of the same
 * event, of batches over the same users, and of closings write every session exactly once.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { ObjectBusyError } from '../../lambdas/adapters/errors.ts';
import type { HandlerResult } from '../../lambdas/sessionizer.ts';
import type { FaultDecision } from '../../infra/local/faults.ts';
import { flush, s3Put, scheduled } from '../helpers/events.ts';
import {
  type FaultStack,
  cleanRun,
  invokeAndCrash,
  invokeWithCrash,
  startFaultStack,
} from '../helpers/faults.ts';
import {
  type VisitRow,
  at,
  batchesOf,
  jsonl,
  onlyBatches,
  putObject,
  readRecords,
  snapshotOutputs,
} from '../helpers/local.ts';

const FLUSH = { action: 'flush', id: 'final' };

/** Each session id with the number of times it appears across every object under sessions/. */
async function sessionCounts(fs: FaultStack): Promise<Map<string, number>> {
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

/** Rows of `users` users with two visits each, from `t`. */
function manyUsers(prefix: string, users: number, t: number): VisitRow[] {
  const rows: VisitRow[] = [];
  for (let u = 0; u < users; u++)
    rows.push([`${prefix}${u}`, t + u, 'a.html'], [`${prefix}${u}`, t + u + 60_000, 'b.html']);
  return rows;
}

describe('a crash at any single AWS call, then retries of the same event', () => {
  let clean: Awaited<ReturnType<typeof cleanRun>>;
  before(async () => {
    clean = await cleanRun();
  });

  /**
   * The seed scenario (three batches, then a flush) with a crash at call `k` of step `step` (0-2: batches, 3: the
   * flush), retried until it succeeds. Returns what differs from the clean run, or an empty list.
   */
  async function crashedRun(
    step: number,
    k: number,
    when: Exclude<FaultDecision, undefined>,
  ): Promise<string[]> {
    const fs = await startFaultStack();
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
      const outputs = await snapshotOutputs(fs.stack);
      const diffs: string[] = [];
      for (const key of new Set([...outputs.keys(), ...clean.outputs.keys()])) {
        if (outputs.get(key) !== clean.outputs.get(key))
          diffs.push(`${when} call ${k} of step ${step}: ${key} differs`);
      }
      return diffs;
    } finally {
      await fs.stack.stop();
    }
  }

  it('the clean run closes users 1, 2, 3 in batch 3 and user 4 in the flush', async () => {
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
    assert.ok(clean.calls[2]! > 20, `batch 3 makes ${clean.calls[2]} AWS calls`);
  });

  it('a crash right after each call of the closing batch (batch 3) leaves outputs identical to the clean run', async (t) => {
    const diffs: string[] = [];
    for (let k = 1; k <= clean.calls[2]!; k++) diffs.push(...(await crashedRun(2, k, 'after')));
    t.diagnostic(`crash points: ${clean.calls[2]}`);

    assert.deepEqual(diffs, []);
  });

  it('a crash right before a call of the closing batch (sampled) leaves outputs identical to the clean run', async (t) => {
    const ks = sample(clean.calls[2]!, 4);
    const diffs: string[] = [];
    for (const k of ks) diffs.push(...(await crashedRun(2, k, 'before')));
    t.diagnostic(`crash points: ${ks.join(', ')}`);

    assert.deepEqual(diffs, []);
  });

  it('a crash after a call of the flush, or of batch 1 (sampled), leaves outputs identical to the clean run', async (t) => {
    const diffs: string[] = [];
    const flushPoints = sample(clean.calls[3]!, 3);
    const batchPoints = sample(clean.calls[0]!, 5);
    for (const k of flushPoints) diffs.push(...(await crashedRun(3, k, 'after')));
    for (const k of batchPoints) diffs.push(...(await crashedRun(0, k, 'after')));
    t.diagnostic(`flush: ${flushPoints.join(', ')}; batch 1: ${batchPoints.join(', ')}`);

    assert.deepEqual(diffs, []);
  });

  it('a batch retried after its closing finished (crash before marking it done) does not overwrite that closing', async () => {
    const fs = await startFaultStack();
    try {
      const key4 = 'visits/2026-02-15/batch-4.jsonl';
      const etag4 = await putObject(fs.stack, key4, jsonl([['5', at(19, 30, 0), 'page_1.html']]));
      const event4 = s3Put(fs.stack.config.visitsBucket, key4, etag4);
      await fs.stack.invoke(fs.events[0]);
      await fs.stack.invoke(fs.events[1]);
      // batch 3 closes users 1, 2, 3, then crashes before its last call (marking the object done)
      const last = clean.calls[2]!;
      await invokeAndCrash(fs, fs.events[2], (k) => (k === last ? 'before' : undefined));
      // batch 4 advances the watermark past user 4's session, then crashes before its own closing
      let updates = 0;
      await invokeAndCrash(fs, event4, (_, command) =>
        command === 'UpdateItemCommand' && ++updates === 2 ? 'after' : undefined,
      );

      await fs.stack.invoke(fs.events[2]); // the retry of batch 3
      await fs.stack.invoke(event4); // the retry of batch 4
      await fs.stack.invoke(FLUSH);

      const sessions = await readRecords(fs.stack, 'sessions/');
      assert.deepEqual(sessions.map((s) => s.user_id).sort(), ['1', '2', '3', '4', '5']);
    } finally {
      await fs.stack.stop();
    }
  });
});

describe('concurrent invocations', () => {
  let clean: Awaited<ReturnType<typeof cleanRun>>;
  before(async () => {
    clean = await cleanRun();
  });

  it('the same event twice at once: one may fail with ObjectBusyError, its retry is a no-op, sessions are written once', async () => {
    const fs = await startFaultStack();
    try {
      const busy: Error[] = [];
      for (const event of fs.events) {
        const settled = await Promise.allSettled([fs.stack.invoke(event), fs.stack.invoke(event)]);
        for (const s of settled) {
          if (s.status === 'fulfilled') continue;
          assert.ok(s.reason instanceof ObjectBusyError, `expected ObjectBusyError, got ${String(s.reason)}`);
          busy.push(s.reason);
          const retry = onlyBatches(await fs.stack.invoke(event));
          assert.equal(retry[0]?.outcome, 'duplicate');
        }
      }
      await fs.stack.invoke(FLUSH);

      assertEachSessionOnce(await sessionCounts(fs));
      assert.deepEqual(await snapshotOutputs(fs.stack), clean.outputs);
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
        events.push(s3Put(fs.stack.config.visitsBucket, key, await putObject(fs.stack, key, jsonl(rows))));
      }

      const results = await Promise.all(events.map((e) => fs.stack.invoke(e)));
      await fs.stack.invoke(FLUSH);

      const batches = batchesOf(results);
      assert.deepEqual(
        batches.map((b) => [b.outcome, b.accepted]),
        batches.map(() => ['processed', users]),
      );
      const sessions = await readRecords(fs.stack, 'sessions/');
      assert.equal(sessions.length, users);
      assert.ok(sessions.every((s) => s.visit_count === files));
      assertEachSessionOnce(await sessionCounts(fs));
    } finally {
      await fs.stack.stop();
    }
  });

  it('two flushes with different ids at once close every pending session exactly once', async () => {
    const fs = await startFaultStack();
    try {
      for (const event of fs.events) await fs.stack.invoke(event);
      const key = 'visits/many-users.jsonl';
      await fs.stack.invoke(
        s3Put(
          fs.stack.config.visitsBucket,
          key,
          await putObject(fs.stack, key, jsonl(manyUsers('m', 60, at(18, 10, 0)))),
        ),
      );

      const settled = await Promise.allSettled([fs.stack.invoke(flush('a')), fs.stack.invoke(flush('b'))]);

      assert.deepEqual(
        settled.map((s) => s.status),
        ['fulfilled', 'fulfilled'],
      );
      const closed = settled.map((s) => (s as PromiseFulfilledResult<HandlerResult>).value);
      assert.equal(
        closed.reduce((n, r) => n + (r.kind === 'flush' ? r.sessionsClosed : 0), 0),
        61,
      );
      const counts = await sessionCounts(fs);
      assertEachSessionOnce(counts);
      const users = (await readRecords(fs.stack, 'sessions/')).map((s) => String(s.user_id));
      assert.equal(new Set(users).size, 3 + 1 + 60);
    } finally {
      await fs.stack.stop();
    }
  });

  it('two scheduled runs at once catch up each object once and write every session exactly once', async () => {
    const fs = await startFaultStack();
    try {
      const rows = manyUsers('s', 100, at(17, 30, 0));
      await putObject(fs.stack, 'visits/2026-02-15/batch-0-many.jsonl', jsonl(rows));
      const inputVisits = 4 + 4 + 1 + rows.length;

      const settled = await Promise.allSettled([
        fs.stack.invoke(scheduled('sched-a')),
        fs.stack.invoke(scheduled('sched-b')),
      ]);
      await fs.stack.invoke(FLUSH);

      assert.deepEqual(
        settled.map((s) => s.status),
        ['fulfilled', 'fulfilled'],
      );
      const batches = batchesOf(settled.map((s) => (s as PromiseFulfilledResult<HandlerResult>).value));
      const processed = batches.filter((b) => b.outcome === 'processed').map((b) => b.object);
      assert.equal(processed.length, 4);
      assert.equal(new Set(processed).size, 4, 'each object processed by one run');
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
