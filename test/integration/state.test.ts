/**
 * State size on the local DynamoDB (dynalite enforces the 400 KB item limit, so a write that is too large fails the
 * batch): a user with tens of thousands of visits in one session, and what batches write as a session grows.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { readSummary } from '../../cli/state.ts';
import type { LocalStack } from '../../infra/local/stack.ts';
import type { HandlerResult } from '../../lambdas/sessionizer.ts';
import { flush, s3Put } from '../helpers/events.ts';
import {
  at,
  type Delivery,
  DYNAMODB_ITEM_LIMIT,
  deliveries,
  iso,
  itemSizes,
  jsonl,
  MINUTE,
  putObject,
  readRecords,
  startTestStack,
  TestClock,
  type VisitRow,
} from '../helpers/local.ts';

/** Puts an object and invokes its S3 notification; returns the batch summary and the write units it consumed. */
async function processFile(stack: LocalStack, key: string, body: string) {
  const etag = await putObject(stack, key, body);
  const usage = stack.runtime.store.usage;
  const units = usage.writeUnits;
  let result: HandlerResult;
  try {
    result = await stack.invoke(s3Put(stack.config.visitsBucket, key, etag));
  } catch (error) {
    // keep the report readable: store errors name the item, which may hold a very long user id
    const { name, message } = error as Error;
    throw new Error(
      `${key} failed: ${name}: ${message.length > 300 ? `${message.slice(0, 150)}...${message.slice(-150)}` : message}`,
    );
  }
  const [batch] = deliveries([result]);
  assert.ok(batch, `no batch for ${key}`);
  return { batch, writeUnits: usage.writeUnits - units };
}

describe('a hot user with 100,000 visits in one session across 20 files', () => {
  const FILES = 20;
  const PER_FILE = 5_000;
  const STEP = 50; // ms between visits: 100,000 visits span 83 minutes, far within the gap between neighbours
  const T0 = at(8, 0, 0);
  let stack: LocalStack;
  /** The hot user's files processed one by one, then a flush: what each step did, recorded in order by `before`. */
  const run = {} as {
    /** Each file's batch summary and the write units it consumed, in order. */
    batches: Delivery[];
    units: number[];
    /** The largest state item after the 20 files. */
    largest: Awaited<ReturnType<typeof itemSizes>>[number] | undefined;
    /** The flush, the sessions it wrote, and the state after it. */
    flush: HandlerResult;
    sessions: Record<string, unknown>[];
    state: Awaited<ReturnType<typeof readSummary>>;
  };
  before(async () => {
    // the cap of visits a session is off: this is about state size with a very long session
    stack = await startTestStack({ notifications: false, env: { SESSIONIZER_MAX_SESSION_VISITS: 'off' } });
    run.batches = [];
    run.units = [];
    for (let f = 0; f < FILES; f++) {
      const rows: VisitRow[] = [];
      for (let i = 0; i < PER_FILE; i++) {
        const n = f * PER_FILE + i;
        rows.push(['heavy', T0 + n * STEP, `page_${n % 1000}.html`]);
      }
      const { batch, writeUnits } = await processFile(
        stack,
        `visits/heavy/${String(f).padStart(2, '0')}.jsonl`,
        jsonl(rows),
      );
      run.batches.push(batch);
      run.units.push(writeUnits);
    }
    [run.largest] = await itemSizes(stack);

    run.flush = await stack.invoke(flush('heavy'));
    run.sessions = await readRecords(stack, 'sessions/');
    run.state = await readSummary(stack.inspect, stack.config);
  });
  after(() => stack.stop());

  it('stays within the 400 KB item limit while its visits arrive in 20 files', (t) => {
    assert.equal(run.batches.length, FILES);
    for (const [f, batch] of run.batches.entries()) {
      assert.deepEqual(
        [batch.outcome, batch.accepted, batch.late, batch.sessionsClosed],
        ['logged', PER_FILE, 0, 0],
        `file ${f}`,
      );
    }
    const { largest } = run;
    t.diagnostic(`largest item: ${largest?.pk} ${largest?.sk} ${largest?.bytes} bytes`);
    assert.ok(largest && largest.bytes <= DYNAMODB_ITEM_LIMIT);
  });

  it('does not write more per visit as the session grows (the last ten files against the first ten)', (t) => {
    // a compaction rewrites the whole state once the deltas outweigh the snapshot, so single batches vary; what
    // must not grow is the cost per visit over many batches
    const { units } = run;
    const sum = (list: number[]) => list.reduce((a, b) => a + b, 0);
    const early = sum(units.slice(0, FILES / 2));
    const late = sum(units.slice(FILES / 2));
    t.diagnostic(`write units per batch: ${units.join(', ')}`);

    assert.equal(units.length, FILES);
    assert.ok(late <= early * 2, `the first ten files wrote ${early} units, the last ten ${late}`);
    assert.ok(
      late / ((FILES / 2) * PER_FILE) < 0.05,
      `${late / ((FILES / 2) * PER_FILE)} write units per visit`,
    );
  });

  it('closes on flush as one session with all 100,000 visits in order', () => {
    const result = run.flush;

    assert.equal(result.kind === 'flush' && result.summary.catchUp.sessionsClosed, 1);
    const [session] = run.sessions;
    assert.ok(session);
    const total = FILES * PER_FILE;
    assert.equal(session.visit_count, total);
    assert.equal(session.start_time, iso(T0));
    assert.equal(session.end_time, iso(T0 + (total - 1) * STEP));
    assert.equal(session.duration_ms, (total - 1) * STEP);
    const pages = session.visited_pages as { page: string; visit_time: string }[];
    assert.equal(pages.length, total);
    assert.ok(
      pages.every((p, n) => p.visit_time === iso(T0 + n * STEP) && p.page === `page_${n % 1000}.html`),
    );
  });

  it('leaves no pending state for the user after the flush', () => {
    const { state } = run;

    assert.deepEqual([state.pendingSessions, state.pendingUsers], [0, 0]);
  });
});

describe('what one batch writes for a long-running session', () => {
  const clock = new TestClock(Date.UTC(2026, 1, 16, 8, 0, 0));
  let stack: LocalStack;
  before(async () => {
    stack = await startTestStack({ notifications: false, now: clock.now });
  });
  after(() => stack.stop());

  it('one-visit batches write no more late in a session than early (no write grows with the session)', async (t) => {
    const BATCHES = 120;
    const units: number[] = [];
    for (let b = 0; b < BATCHES; b++) {
      // one visit a file, a minute apart: one session
      const { writeUnits } = await processFile(
        stack,
        `visits/long/${String(b).padStart(4, '0')}.jsonl`,
        jsonl([['long', at(0, 0, 0) + b * MINUTE, `/a/rather/long/page/path/number/${b}.html`]]),
      );
      units.push(writeUnits);
      clock.advance(2 * MINUTE);
    }
    const sum = (list: number[]) => list.reduce((a, b) => a + b, 0);
    const early = sum(units.slice(0, BATCHES / 2));
    const late = sum(units.slice(BATCHES / 2));
    t.diagnostic(`write units per batch: ${units.join(', ')}`);

    assert.ok(late <= early * 1.1, `the first ${BATCHES / 2} batches wrote ${early} units, the last ${late}`);
  });
});

describe('item size with large visits', () => {
  // a fresh stack for each test: the last one moves the watermark past the visits of the others
  let stack: LocalStack;
  beforeEach(async () => {
    stack = await startTestStack({ notifications: false });
  });
  afterEach(() => stack.stop());

  it('a batch of one user with 3,000 visits on long non-ASCII page names keeps every item within 400 KB (UTF-8)', async () => {
    const page = `/ページ/${'商品詳細'.repeat(25)}`;
    const rows: VisitRow[] = [];
    for (let i = 0; i < 3_000; i++) rows.push(['jp', at(9, 0, 0) + i * 1000, `${page}/${i}`]);

    const { batch } = await processFile(stack, 'visits/unicode-pages.jsonl', jsonl(rows));

    assert.deepEqual([batch.outcome, batch.accepted], ['logged', 3_000]);
    const [largest] = await itemSizes(stack);
    assert.ok(
      largest && largest.bytes <= DYNAMODB_ITEM_LIMIT,
      `${largest?.pk} ${largest?.sk} is ${largest?.bytes} bytes in UTF-8`,
    );
  });

  it('a line whose user_id is too long for a DynamoDB key is rejected, and the rest of the file is processed', async () => {
    const body = jsonl([
      ['x'.repeat(2_100), at(11, 0, 0), 'a.html'],
      ['short', at(11, 0, 1), 'b.html'],
    ]);

    const { batch } = await processFile(stack, 'visits/long-user-id.jsonl', body);

    assert.deepEqual([batch.outcome, batch.lines, batch.accepted, batch.rejected], ['logged', 2, 1, 1]);
  });

  it('a batch with 2,000 late visits of one user on 250-byte pages writes them all to late-visits/', async () => {
    await processFile(stack, 'visits/advance.jsonl', jsonl([['w', at(23, 0, 0), 'a.html']]));
    const rows: VisitRow[] = [];
    for (let i = 0; i < 2_000; i++) rows.push(['lt', at(10, 0, 0) + i * 1000, `/p/${'x'.repeat(240)}/${i}`]);

    const { batch } = await processFile(stack, 'visits/late-backfill.jsonl', jsonl(rows));

    assert.deepEqual([batch.outcome, batch.late], ['logged', 2_000]);
    assert.equal((await readRecords(stack, 'late-visits/')).length, 2_000);
  });
});
