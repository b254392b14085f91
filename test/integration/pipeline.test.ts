/**
 * The pipeline end to end on the local servers (s3rver + dynalite): objects put into the visits bucket, their S3
 * notifications delivered to the handler through the ingest queue, outputs read back from the sessions bucket.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { listPending, readSummary } from '../../cli/state.ts';
import type { FailedInvocation, LocalStack } from '../../infra/local/stack.ts';
import { sessionId } from '../../lambdas/core/schema.ts';
import type { IngestResult } from '../../lambdas/pipeline/index.ts';
import type { HandlerResult } from '../../lambdas/sessionizer.ts';
import { flush, s3Batch, s3Put, scheduled } from '../helpers/events.ts';
import {
  at,
  type Delivery,
  deliveries,
  jsonl,
  onlyObjects,
  outputLines,
  putObject,
  putSeed,
  readRecords,
  SEED,
  startTestStack,
  TestClock,
  type VisitRow,
  watermarkOf,
} from '../helpers/local.ts';
import { outputsUnder, recordStep, recordsUnder, type StackStep } from '../helpers/steps.ts';

/** The pipeline's wall clock: 2026-02-16 08:00 UTC, so the processing date of rejected records is 2026-02-16. */
const PROCESSING_START = Date.UTC(2026, 1, 16, 8, 0, 0);
const PROCESSING_DATE = '2026-02-16';

/** What the last invocation through the queue did with its last object (of a stack, or of a recorded step). */
function lastBatch(source: { readonly delivered: readonly HandlerResult[] }): Delivery {
  const all = deliveries(source.delivered);
  const last = all[all.length - 1];
  assert.ok(last, 'no object was delivered');
  return last;
}

function assertNoDeadLetters(source: { readonly deadLetters: readonly FailedInvocation[] }): void {
  assert.deepEqual(
    source.deadLetters.map((d) => d.error.message),
    [],
    'every notification was handled',
  );
}

describe('the seed walkthrough (gap 40 min, allowed lateness 15 min)', () => {
  let stack: LocalStack;
  /** What the walkthrough left after each of its steps, recorded in order by `before`. */
  const walk = {} as {
    /** Batches 1 and 2 put, their notifications handled. */
    batches12: StackStep;
    /** Batch 3 put, its notification handled. */
    batch3: StackStep;
    /** The pending sessions after batch 3, before the flush. */
    pendingBeforeFlush: Awaited<ReturnType<typeof listPending>>;
    /** The flush, and the sessions and output lines after it. */
    flush: HandlerResult;
    sessionsAfterFlush: Record<string, unknown>[];
    linesAfterFlush: string[];
  };
  before(async () => {
    stack = await startTestStack({ now: new TestClock(PROCESSING_START).now });
    await putSeed(stack, 2);
    await stack.idle();
    walk.batches12 = await recordStep(stack);

    await putObject(stack, SEED[2]!.key, jsonl(SEED[2]!.rows));
    await stack.idle();
    walk.batch3 = await recordStep(stack);

    walk.pendingBeforeFlush = await listPending(stack.inspect, stack.config);
    walk.flush = await stack.invoke(flush('seed'));
    walk.sessionsAfterFlush = await readRecords(stack, 'sessions/');
    walk.linesAfterFlush = await outputLines(stack);
  });
  after(() => stack.stop());

  const expectedLines = [
    {
      session_id: sessionId('1', at(17, 5, 34, 432)),
      user_id: '1',
      start_time: '2026-02-15T17:05:34.432Z',
      end_time: '2026-02-15T17:06:47.100Z',
      duration_ms: 72_668,
      visit_count: 4,
      visited_pages: [
        { page: 'page_1.html', visit_time: '2026-02-15T17:05:34.432Z' },
        { page: 'page_2.html', visit_time: '2026-02-15T17:05:34.532Z' },
        { page: 'page_3.html', visit_time: '2026-02-15T17:06:46.900Z' },
        { page: 'page_4.html', visit_time: '2026-02-15T17:06:47.100Z' },
      ],
    },
    {
      session_id: sessionId('2', at(17, 5, 34, 632)),
      user_id: '2',
      start_time: '2026-02-15T17:05:34.632Z',
      end_time: '2026-02-15T17:06:47.000Z',
      duration_ms: 72_368,
      visit_count: 2,
      visited_pages: [
        { page: 'page_3.html', visit_time: '2026-02-15T17:05:34.632Z' },
        { page: 'page_1.html', visit_time: '2026-02-15T17:06:47.000Z' },
      ],
    },
    {
      session_id: sessionId('3', at(17, 5, 34, 732)),
      user_id: '3',
      start_time: '2026-02-15T17:05:34.732Z',
      end_time: '2026-02-15T17:06:47.050Z',
      duration_ms: 72_318,
      visit_count: 2,
      visited_pages: [
        { page: 'page_4.html', visit_time: '2026-02-15T17:05:34.732Z' },
        { page: 'page_2.html', visit_time: '2026-02-15T17:06:47.050Z' },
      ],
    },
  ];

  it('closes nothing after batches 1 and 2', () => {
    const step = walk.batches12;

    assertNoDeadLetters(step);
    assert.deepEqual(
      deliveries(step.delivered).map((b) => [b.outcome, b.lines, b.accepted, b.sessionsClosed]),
      [
        ['logged', 4, 4, 0],
        ['logged', 4, 4, 0],
      ],
    );
    assert.deepEqual(step.outputs, []);
    assert.equal(step.watermark, at(16, 51, 47, 100));
  });

  it('batch 3 closes users 1, 2 and 3 with 4, 2 and 2 visits, written field by field as the contract says', () => {
    const step = walk.batch3;

    assertNoDeadLetters(step);
    assert.equal(lastBatch(step).sessionsClosed, 3);
    assert.equal(step.watermark, at(17, 54, 18));
    const outputs = step.outputs;
    assert.ok(outputs.length >= 1 && outputs.length <= 3, 'one object per shard that closed a session');
    for (const o of outputs)
      assert.match(o.key, /^sessions\/dt=2026-02-15\/[0-9a-f]{8}-s\d{3}-v\d{10}-0\.jsonl$/);
    const records = outputs
      .flatMap((o) => o.records)
      .sort((a, b) => String(a.user_id).localeCompare(String(b.user_id)));
    for (const [i, expected] of expectedLines.entries()) {
      const actual = records[i]!;
      assert.deepEqual(Object.keys(actual), Object.keys(expected), 'the columns, in the contract order');
      for (const [field, value] of Object.entries(expected)) {
        assert.deepEqual(actual[field], value, `user ${expected.user_id}: ${field}`);
      }
    }
    const user1Line = outputs.flatMap((o) => o.text.split('\n')).find((l) => l.includes('"user_id":"1"'));
    assert.equal(user1Line, JSON.stringify(expectedLines[0]));
  });

  it('keeps user 4 pending after batch 3, until a flush closes it with its one visit', () => {
    const pending = walk.pendingBeforeFlush;
    assert.deepEqual(
      pending.map((p) => [p.userId, p.visits.map((v) => [v.t, v.page])]),
      [['4', [[at(18, 9, 18), 'page_1.html']]]],
    );

    const result = walk.flush;

    assert.equal(result.kind, 'flush');
    assert.equal(result.kind === 'flush' && result.summary.catchUp.sessionsClosed, 1);
    assert.deepEqual(
      walk.sessionsAfterFlush
        .filter((s) => s.user_id === '4')
        .map((s) => [s.session_id, s.start_time, s.end_time, s.visit_count]),
      [[sessionId('4', at(18, 9, 18)), '2026-02-15T18:09:18.000Z', '2026-02-15T18:09:18.000Z', 1]],
    );
  });

  it('gives the same session ids and lines when a fresh stack replays the same files', async () => {
    const first = walk.sessionsAfterFlush;
    const replay = await startTestStack({ now: new TestClock(PROCESSING_START).now });
    try {
      await putSeed(replay);
      await replay.idle();
      await replay.invoke(flush('seed'));

      const second = await readRecords(replay, 'sessions/');
      const byId = (records: Record<string, unknown>[]) =>
        [...records].sort((a, b) => String(a.session_id).localeCompare(String(b.session_id)));
      assert.equal(new Set(first.map((s) => s.session_id)).size, 4);
      assert.deepEqual(byId(second), byId(first));
      assert.deepEqual(await outputLines(replay), walk.linesAfterFlush);
    } finally {
      await replay.stop();
    }
  });
});

describe('duplicate events and re-uploads', () => {
  /** A step of a stack (`recordStep`) with its pending sessions and log tail, to compare before and after a delivery. */
  async function stateOf(stack: LocalStack) {
    return {
      ...(await recordStep(stack)),
      pending: await listPending(stack.inspect, stack.config),
      tail: await stack.inspect.store.lastEntry(),
    };
  }

  let stack: LocalStack;
  /** New content for the key of batch 3: user 4 again, and user 5. */
  const newBatch3 = jsonl([
    ['4', at(18, 10, 0), 'page_2.html'],
    ['5', at(18, 10, 0), 'a.html'],
  ]);
  /** What each delivery did and left, recorded in order by `before`, on top of the seed processed. */
  const run = {} as {
    /** The seed put and processed through its notifications. */
    seeded: Awaited<ReturnType<typeof stateOf>>;
    /** The notification of batch 2 delivered again, and what it left. */
    again: IngestResult[];
    afterAgain: Awaited<ReturnType<typeof stateOf>>;
    /** Batch 1 re-uploaded with identical content, and what it left. */
    identical: StackStep;
    /** Batch 3's key re-uploaded with new content, and the sessions after a flush. */
    changed: StackStep;
    sessionsAfterFlush: Record<string, unknown>[];
  };
  before(async () => {
    stack = await startTestStack({ now: new TestClock(PROCESSING_START).now });
    const etags = await putSeed(stack);
    await stack.idle();
    run.seeded = await stateOf(stack);

    run.again = onlyObjects(
      await stack.invoke(s3Batch(stack.config.visitsBucket, [{ key: SEED[1]!.key, etag: etags[1] }])),
    );
    run.afterAgain = await stateOf(stack);

    await putObject(stack, SEED[0]!.key, jsonl(SEED[0]!.rows));
    await stack.idle();
    run.identical = await recordStep(stack);

    await putObject(stack, SEED[2]!.key, newBatch3);
    await stack.idle();
    run.changed = await recordStep(stack);
    await stack.invoke(flush('reupload'));
    run.sessionsAfterFlush = await readRecords(stack, 'sessions/');
  });
  after(() => stack.stop());

  it('the same notification delivered twice changes nothing the second time', () => {
    const again = run.again;

    assert.equal(again[0]?.outcome, 'duplicate');
    assert.equal(again[0]?.entry?.seq, 2, 'the entry of its first delivery');
    assert.deepEqual(run.afterAgain.outputs, run.seeded.outputs);
    assert.deepEqual(run.afterAgain.pending, run.seeded.pending);
    assert.deepEqual(run.afterAgain.tail, run.seeded.tail);
  });

  it('the same file re-uploaded with identical content is a duplicate', () => {
    const step = run.identical;

    assertNoDeadLetters(step);
    assert.equal(step.delivered.length, run.afterAgain.delivered.length + 1);
    assert.equal(lastBatch(step).outcome, 'duplicate');
    assert.deepEqual(step.outputs, run.afterAgain.outputs);
  });

  it('the same key re-uploaded with new content is processed again', () => {
    const step = run.changed;

    assertNoDeadLetters(step);
    const batch = lastBatch(step);
    assert.deepEqual([batch.outcome, batch.lines, batch.accepted], ['logged', 2, 2]);
    const user4 = run.sessionsAfterFlush.filter((s) => s.user_id === '4');
    assert.deepEqual(
      user4.map((s) => s.visited_pages),
      [
        [
          { page: 'page_1.html', visit_time: '2026-02-15T18:09:18.000Z' },
          { page: 'page_2.html', visit_time: '2026-02-15T18:10:00.000Z' },
        ],
      ],
    );
  });

  it('an event for an object version overwritten since (no versions kept) is superseded, not processed with the new content', async () => {
    const key = 'visits/overwritten.jsonl';
    const quiet = await startTestStack({ notifications: false });
    try {
      const oldEtag = await putObject(quiet, key, jsonl([['o', at(12, 0, 0), 'old.html']]));
      await putObject(
        quiet,
        key,
        jsonl([
          ['o', at(12, 0, 0), 'new.html'],
          ['o', at(12, 0, 1), 'new2.html'],
        ]),
      );

      const result = onlyObjects(
        await quiet.invoke(s3Batch(quiet.config.visitsBucket, [{ key, etag: oldEtag }])),
      );

      assert.deepEqual(
        result.map((b) => [b.outcome, b.entry?.lines, b.entry?.visits, b.entry?.rejected]),
        [['superseded', 1, 0, 1]],
        'the version is one rejected record: its bytes are gone, its new version has its own event',
      );
    } finally {
      await quiet.stop();
    }
  });
});

describe('object keys and input formats', () => {
  let stack: LocalStack;
  before(async () => {
    stack = await startTestStack({ now: new TestClock(PROCESSING_START).now });
  });
  after(() => stack.stop());

  const T = at(9, 0, 0);

  /** Puts an object, waits for its notification, returns the batch summary. */
  async function process(
    key: string,
    body: string | Uint8Array,
    contentEncoding?: string,
  ): Promise<Delivery> {
    await putObject(stack, key, body, contentEncoding ? { contentEncoding } : {});
    await stack.idle();
    assertNoDeadLetters(stack);
    return lastBatch(stack);
  }

  it('processes keys with spaces, `+` and unicode under their real names', async () => {
    const keys = ['visits/día 1+2.jsonl', 'visits/a b+c/x y.jsonl', 'visits/用户 visits+éé.jsonl'];
    const summaries: Delivery[] = [];

    for (const [i, key] of keys.entries())
      summaries.push(await process(key, jsonl([[`k${i}`, T, 'p.html']])));

    assert.deepEqual(
      summaries.map((b) => [b.object, b.outcome, b.accepted]),
      keys.map((k) => [`s3://${stack.config.visitsBucket}/${k}`, 'logged', 1]),
    );
  });

  it('reads gzip JSON Lines by a .gz name, by the magic bytes under a .jsonl name, and by Content-Encoding', async () => {
    const body = (user: string) =>
      gzipSync(
        jsonl([
          [user, T, 'a.html'],
          [user, T + 1000, 'b.html'],
        ]),
      );

    const byName = await process('visits/gz-name.jsonl.gz', body('gz1'));
    const byMagic = await process('visits/gz-magic.jsonl', body('gz2'));
    const byEncoding = await process('visits/gz-encoding.jsonl', body('gz3'), 'gzip');

    assert.deepEqual(
      [byName, byMagic, byEncoding].map((b) => [b.outcome, b.lines, b.accepted, b.rejected]),
      [
        ['logged', 2, 2, 0],
        ['logged', 2, 2, 0],
        ['logged', 2, 2, 0],
      ],
    );
  });

  it('reads CSV with a header row and RFC 4180 quoting, gzip or not', async () => {
    const csv =
      'user_id,visit_time,page\r\n' +
      `csv1,${new Date(T).toISOString()},"/search?q=a,b"\r\n` +
      `csv1,${new Date(T + 1000).toISOString()},"say ""hi"""\r\n` +
      `"csv1",${T + 2000},"two\nlines"\r\n`;

    const plain = await process('visits/plain.csv', csv);
    const gzipped = await process('visits/gzipped.csv.gz', gzipSync(csv.replaceAll('csv1', 'csv2')));

    assert.deepEqual(
      [plain, gzipped].map((b) => [b.outcome, b.lines, b.accepted, b.rejected]),
      [
        ['logged', 3, 3, 0],
        ['logged', 3, 3, 0],
      ],
    );
    await stack.invoke(flush('formats'));
    const sessions = await readRecords(stack, 'sessions/');
    const csv1 = sessions.find((s) => s.user_id === 'csv1');
    assert.ok(csv1, 'the session of csv1');
    assert.deepEqual(
      (csv1.visited_pages as { page: string }[]).map((p) => p.page),
      ['/search?q=a,b', 'say "hi"', 'two\nlines'],
    );
  });

  it('an object that is not valid gzip is one rejected record with source_line null', async () => {
    const key = 'visits/broken.jsonl.gz';

    const batch = await process(key, 'this is not gzip\n');

    assert.deepEqual([batch.outcome, batch.lines, batch.visits, batch.rejected], ['logged', 1, 0, 1]);
    const rejected = (await readRecords(stack, `rejected/dt=${PROCESSING_DATE}/`)).filter(
      (r) => r.source_object === `s3://${stack.config.visitsBucket}/${key}`,
    );
    assert.equal(rejected.length, 1);
    assert.equal(rejected[0]!.source_line, null);
    assert.match(String(rejected[0]!.reason), /gzip/i);
  });
});

describe('rejected lines, late visits and conservation', () => {
  let stack: LocalStack;
  /** A file of six lines, four of them rejected (lines 2 to 5); its visits move the watermark to 18:22 - 15 min. */
  const WITH_ERRORS = 'visits/with-errors.jsonl';
  const errorLines = [
    JSON.stringify({ user_id: 'r1', visit_time: '2026-02-15T18:20:00Z', page: 'ok.html' }),
    '{"user_id": "r1", "visit_time": ',
    JSON.stringify({ visit_time: '2026-02-15T18:20:00Z', page: 'x.html' }),
    JSON.stringify({ user_id: 'r1', visit_time: 'yesterday', page: 'x.html' }),
    JSON.stringify({ user_id: 'r1', visit_time: '2026-02-15T18:21:00Z', page: '' }),
    JSON.stringify({ user_id: 'r1', visit_time: '2026-02-15T18:22:00Z', page: 'ok2.html' }),
  ];
  /** A file of four visits, three of them before the watermark 18:07 left by the file above. */
  const LATE = 'visits/late.jsonl';
  const lateRows: VisitRow[] = [
    ['1', at(17, 5, 34, 432), 'page_1.html'], // a copy of a closed session's visit
    ['l1', Date.UTC(2026, 1, 14, 23, 59, 0), 'yesterday.html'],
    ['l1', at(18, 30, 0), 'on-time.html'],
    [7, at(17, 0, 0), 'numeric-user.html'],
  ];
  /** A file of three visits, two of them duplicates. */
  const duplicateRows: VisitRow[] = [
    ['l1', at(18, 30, 0), 'on-time.html'], // already pending: a duplicate
    ['l1', at(18, 31, 0), 'next.html'],
    ['l1', at(18, 31, 0), 'next.html'], // earlier in the same batch: a duplicate
  ];
  const DELETED_WITH_ETAG = 'visits/deleted-with-etag.jsonl';
  const DELETED_WITHOUT_ETAG = 'visits/deleted without etag.jsonl';
  /** The seed processed, then each file of the scenario in order: what each step left, recorded by `before`. */
  const run = {} as {
    /** The file with rejected lines, put and processed. */
    withErrors: StackStep;
    /** The file with late visits, put and processed. */
    late: StackStep;
    /** The file of duplicates, put and processed, then a flush; and the summary of the state after it. */
    flushed: StackStep;
    summary: Awaited<ReturnType<typeof readSummary>>;
    /** Notifications of objects deleted before they are read, with an ETag and without. */
    deletedWithEtag: Delivery[];
    deletedWithoutEtag: Delivery[];
    deleted: StackStep;
  };
  before(async () => {
    stack = await startTestStack({ now: new TestClock(PROCESSING_START).now });
    await putSeed(stack);
    await stack.idle();

    await putObject(stack, WITH_ERRORS, `${errorLines.join('\n')}\n`);
    await stack.idle();
    run.withErrors = await recordStep(stack);

    await putObject(stack, LATE, jsonl(lateRows));
    await stack.idle();
    run.late = await recordStep(stack);

    await putObject(stack, 'visits/duplicates.jsonl', jsonl(duplicateRows));
    await stack.idle();
    await stack.invoke(flush('conservation'));
    run.flushed = await recordStep(stack);
    run.summary = await readSummary(stack.inspect, stack.config);

    run.deletedWithEtag = deliveries([
      await stack.invoke(
        s3Batch(stack.config.visitsBucket, [
          { key: DELETED_WITH_ETAG, etag: '0123456789abcdef0123456789abcdef' },
        ]),
      ),
    ]);
    run.deletedWithoutEtag = deliveries([
      await stack.invoke(s3Put(stack.config.visitsBucket, DELETED_WITHOUT_ETAG)),
    ]);
    run.deleted = await recordStep(stack);
  });
  after(() => stack.stop());

  it('writes rejected lines under rejected/dt=<processing date>/ with source object, line, reason and raw line', () => {
    const step = run.withErrors;

    assertNoDeadLetters(step);
    const batch = lastBatch(step);
    assert.deepEqual([batch.lines, batch.visits, batch.rejected], [6, 2, 4]);
    const outputs = outputsUnder(step, 'rejected/');
    assert.ok(
      outputs.every((o) => o.key.startsWith(`rejected/dt=${PROCESSING_DATE}/`)),
      'partitioned by processing date',
    );
    const records = outputs
      .flatMap((o) => o.records)
      .filter((r) => r.source_object === `s3://${stack.config.visitsBucket}/${WITH_ERRORS}`);
    assert.deepEqual(
      records.map((r) => Object.keys(r)),
      records.map(() => ['source_object', 'source_line', 'reason', 'raw']),
    );
    assert.deepEqual(
      records.map((r) => [r.source_line, r.raw]),
      [
        [2, errorLines[1]],
        [3, errorLines[2]],
        [4, errorLines[3]],
        [5, errorLines[4]],
      ],
    );
    const reasons = records.map((r) => String(r.reason));
    assert.match(reasons[0]!, /invalid JSON/);
    assert.match(reasons[1]!, /missing user_id/);
    assert.match(reasons[2]!, /invalid visit_time/);
    assert.match(reasons[3]!, /empty page/);
  });

  it('writes late visits under late-visits/dt=<date of visit>/ with the watermark they missed', () => {
    assert.equal(run.withErrors.watermark, at(18, 7, 0)); // 18:22 - 15 min, after the file with rejected lines

    const step = run.late;

    assertNoDeadLetters(step);
    const batch = lastBatch(step);
    assert.deepEqual([batch.visits, batch.accepted, batch.late], [4, 1, 3]);
    const outputs = outputsUnder(step, 'late-visits/');
    const source = `s3://${stack.config.visitsBucket}/${LATE}`;
    const rows = outputs.flatMap((o) =>
      o.records.map((r): Record<string, unknown> => ({ dt: o.key.split('/')[1], ...r })),
    );
    assert.deepEqual(
      rows
        .filter((r) => r.source_object === source)
        .sort((a, b) => Number(a.source_line) - Number(b.source_line)),
      [
        {
          dt: 'dt=2026-02-15',
          user_id: '1',
          visit_time: '2026-02-15T17:05:34.432Z',
          page: 'page_1.html',
          source_object: source,
          source_line: 1,
          watermark: '2026-02-15T18:07:00.000Z',
        },
        {
          dt: 'dt=2026-02-14',
          user_id: 'l1',
          visit_time: '2026-02-14T23:59:00.000Z',
          page: 'yesterday.html',
          source_object: source,
          source_line: 2,
          watermark: '2026-02-15T18:07:00.000Z',
        },
        {
          dt: 'dt=2026-02-15',
          user_id: '7',
          visit_time: '2026-02-15T17:00:00.000Z',
          page: 'numeric-user.html',
          source_object: source,
          source_line: 4,
          watermark: '2026-02-15T18:07:00.000Z',
        },
      ],
    );
  });

  it('conserves every line: lines = visits + rejected and visits = accepted + duplicates + late, matching the outputs', () => {
    const step = run.flushed;

    assertNoDeadLetters(step);
    const batches = deliveries(step.delivered);
    assert.ok(
      batches.every((b) => b.lines === b.visits + b.rejected),
      'per object: lines = visits + rejected',
    );
    const total = run.summary;
    assert.equal(total.lines, total.visits + total.rejected);
    assert.equal(total.visits, total.accepted + total.duplicates + total.late);
    assert.equal(total.duplicates, 2);
    assert.equal(total.pendingSessions, 0);
    const sessions = recordsUnder(step, 'sessions/');
    assert.equal(
      sessions.reduce((n, s) => n + Number(s.visit_count), 0),
      total.accepted,
      'every accepted visit is in exactly one session',
    );
    assert.equal(recordsUnder(step, 'late-visits/').length, total.late);
    assert.equal(recordsUnder(step, 'rejected/').length, total.rejected);
    assert.equal(total.lines, 4 + 4 + 1 + 6 + 4 + 3);
    assert.equal(
      batches.reduce((n, b) => n + b.lines, 0),
      total.lines,
      'the objects delivered hold every line',
    );
  });

  it('an object deleted before it is read is one rejected record with source_line null, and the invocation succeeds', () => {
    const a = run.deletedWithEtag;
    const b = run.deletedWithoutEtag;

    assert.deepEqual(
      [...a, ...b].map((s) => [s.outcome, s.lines, s.rejected]),
      [
        ['deleted', 1, 1],
        ['deleted', 1, 1],
      ],
    );
    const rejected = recordsUnder(run.deleted, `rejected/dt=${PROCESSING_DATE}/`);
    for (const key of [DELETED_WITH_ETAG, DELETED_WITHOUT_ETAG]) {
      const records = rejected.filter((r) => r.source_object === `s3://${stack.config.visitsBucket}/${key}`);
      assert.deepEqual(
        records.map((r) => [r.source_line, r.raw]),
        [[null, '']],
        key,
      );
      assert.match(String(records[0]!.reason), /deleted/);
    }
  });
});

describe('catch-up of objects no event delivered', () => {
  let stack: LocalStack;
  /** Five objects put after the seed's first two, caught up at most two a run. */
  const RESUME_KEYS = [
    'visits/c/1.jsonl',
    'visits/c/2.jsonl',
    'visits/c/3.jsonl',
    'visits/c/4.jsonl',
    'visits/c/5.jsonl',
  ];
  /** Scheduled runs on a stack whose notifications are off, in order: what each left, recorded by `before`. */
  const run = {} as {
    /** The seed's first two objects put, then two scheduled runs, and the watermark after them. */
    first: HandlerResult;
    second: HandlerResult;
    watermark: number;
    /** The five objects above put, then four scheduled runs: the keys each run processed. */
    resumed: string[][];
    /** The seed's third object put, a scheduled run and a flush: the sessions then. */
    sessions: Record<string, unknown>[];
  };
  before(async () => {
    stack = await startTestStack({
      notifications: false,
      now: new TestClock(PROCESSING_START).now,
      env: { SESSIONIZER_CATCHUP_MAX_OBJECTS: '2' },
    });
    await putSeed(stack, 2);
    run.first = await stack.invoke(scheduled('catch-up-1'));
    run.second = await stack.invoke(scheduled('catch-up-2'));
    run.watermark = await watermarkOf(stack);

    for (const [i, key] of RESUME_KEYS.entries())
      await putObject(stack, key, jsonl([[`c${i}`, at(17, 10, i), 'p.html']]));
    run.resumed = [];
    for (let i = 0; i < 4; i++) {
      const result = await stack.invoke(scheduled(`resume-${i}`));
      run.resumed.push(
        deliveries([result]).map((b) => b.object.replace(`s3://${stack.config.visitsBucket}/`, '')),
      );
    }

    await putObject(stack, SEED[2]!.key, jsonl(SEED[2]!.rows));
    await stack.invoke(scheduled('catch-up-3'));
    await stack.invoke(flush('catch-up'));
    run.sessions = await readRecords(stack, 'sessions/');
  });
  after(() => stack.stop());

  it('a scheduled run processes objects put while notifications were off, and a second run processes nothing new', () => {
    const { first, second } = run;

    assert.equal(first.kind, 'scheduled');
    assert.deepEqual(
      deliveries([first]).map((b) => [b.object.split('/').pop(), b.outcome, b.lines]),
      [
        ['batch-1.jsonl', 'logged', 4],
        ['batch-2.jsonl', 'logged', 4],
      ],
    );
    assert.equal(first.kind === 'scheduled' && first.summary.catchUp.accepted, 8);
    assert.deepEqual(deliveries([second]), []);
    assert.equal(run.watermark, at(16, 51, 47, 100));
  });

  it('a run processes at most SESSIONIZER_CATCHUP_MAX_OBJECTS objects and the next runs resume where it stopped', () => {
    const runs = run.resumed;

    assert.deepEqual(runs, [RESUME_KEYS.slice(0, 2), RESUME_KEYS.slice(2, 4), RESUME_KEYS.slice(4), []]);
  });

  it('after catch-up and a flush the sessions equal those of the seed processed by notifications', () => {
    const sessions = run.sessions;

    assert.deepEqual(sessions.map((s) => [s.user_id, s.visit_count]).sort(), [
      ['1', 4],
      ['2', 2],
      ['3', 2],
      ['4', 1],
      ['c0', 1],
      ['c1', 1],
      ['c2', 1],
      ['c3', 1],
      ['c4', 1],
    ]);
  });
});
