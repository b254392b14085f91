/**
 * Every event kind the handler accepts, against the local servers (s3rver + dynalite), built from the sample events
 * under events/: SQS batches of S3 notifications, S3 notifications and EventBridge "Object Created" sent directly,
 * EventBridge "Scheduled Event", the flush event, and events the handler must refuse.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import type { LocalStack } from '../../infra/local/stack.ts';
import { UnknownEventError } from '../../lambdas/adapters/errors.ts';
import type { LogEntry } from '../../lambdas/core/log.ts';
import type { HandlerResult } from '../../lambdas/sessionizer.ts';
import { flush, loadEvent, s3Put, scheduled, sqsBatch } from '../helpers/events.ts';
import {
  at,
  deliveries,
  jsonl,
  MINUTE,
  putObject,
  putSeed,
  readOutputs,
  readRecords,
  SEED,
  startTestStack,
  TestClock,
  watermarkOf,
} from '../helpers/local.ts';

const T = at(10, 0, 0);

/** The handler's refusal of an event: an UnknownEventError whose message matches. */
function unknownEvent(message: RegExp) {
  return (error: unknown): boolean => {
    assert.ok(error instanceof UnknownEventError, `expected an UnknownEventError, got ${String(error)}`);
    assert.equal(error.name, 'UnknownEventError');
    assert.match(error.message, message);
    return true;
  };
}

describe('S3 notifications and EventBridge Object Created events', () => {
  let stack: LocalStack;
  before(async () => {
    stack = await startTestStack({ notifications: false });
  });
  after(() => stack.stop());

  it('processes the object named by an ObjectCreated record, with the key URL-decoded', async () => {
    const key = 'visits/día 1+2.jsonl';
    const etag = await putObject(
      stack,
      key,
      jsonl([
        ['s1', T, 'a.html'],
        ['s1', T + 1000, 'b.html'],
      ]),
    );
    const event = loadEvent('s3-put', { bucket: stack.config.visitsBucket, key, etag });
    assert.equal(event.Records[0]!.s3.object.key, 'visits/d%C3%ADa+1%2B2.jsonl');

    const result = await stack.invoke(event);

    const [batch] = deliveries([result]);
    assert.equal(batch?.object, `s3://${stack.config.visitsBucket}/${key}`);
    assert.equal(batch?.outcome, 'logged');
    assert.equal(batch?.lines, 2);
    assert.equal(batch?.accepted, 2);
  });

  it('reads `+` in an event key as a space and `%2B` as a plus sign', async () => {
    await putObject(stack, 'visits/s2 space.jsonl', jsonl([['s2', T, 'a.html']]));
    await putObject(
      stack,
      'visits/s2+plus.jsonl',
      jsonl([
        ['s2', T, 'b.html'],
        ['s2', T, 'c.html'],
      ]),
    );

    const space = deliveries([await stack.invoke(s3PutEncoded('visits/s2+space.jsonl'))]);
    const plus = deliveries([await stack.invoke(s3PutEncoded('visits/s2%2Bplus.jsonl'))]);

    assert.deepEqual(
      [...space, ...plus].map((b) => [b.object, b.outcome, b.lines]),
      [
        [`s3://${stack.config.visitsBucket}/visits/s2 space.jsonl`, 'logged', 1],
        [`s3://${stack.config.visitsBucket}/visits/s2+plus.jsonl`, 'logged', 2],
      ],
    );
  });

  it('processes every ObjectCreated record of a notification, in order, and skips removals among them', async () => {
    const e1 = await putObject(stack, 'visits/s3-a.jsonl', jsonl([['s3', T, 'a.html']]));
    const e2 = await putObject(stack, 'visits/s3-b.jsonl', jsonl([['s3', T + 1, 'b.html']]));
    const removed = loadEvent('s3-removed', {
      bucket: stack.config.visitsBucket,
      key: 'visits/s3-gone.jsonl',
    });
    const event = {
      Records: [
        s3Put(stack.config.visitsBucket, 'visits/s3-a.jsonl', e1).Records[0]!,
        removed.Records[0]!,
        s3Put(stack.config.visitsBucket, 'visits/s3-b.jsonl', e2).Records[0]!,
      ],
    };

    const batches = deliveries([await stack.invoke(event)]);

    assert.deepEqual(
      batches.map((b) => [b.object.split('/').pop(), b.outcome]),
      [
        ['s3-a.jsonl', 'logged'],
        ['s3-b.jsonl', 'logged'],
      ],
    );
  });

  it('reads the ETag from the object when the record has none, and then treats the same event as a duplicate', async () => {
    await putObject(stack, 'visits/s4.jsonl', jsonl([['s4', T, 'a.html']]));
    const event = s3Put(stack.config.visitsBucket, 'visits/s4.jsonl');
    assert.equal(event.Records[0]!.s3.object.eTag, undefined);

    const first = deliveries([await stack.invoke(event)]);
    const second = deliveries([await stack.invoke(event)]);

    assert.deepEqual([first[0]?.outcome, second[0]?.outcome], ['logged', 'duplicate']);
    assert.equal(second[0]?.lines, 1, 'a duplicate reports the log entry of its first delivery');
  });

  it('ignores a notification with only ObjectRemoved records, and the object is still processed when created', async () => {
    const key = 'visits/s5.jsonl';
    const etag = await putObject(stack, key, jsonl([['s5', T, 'a.html']]));

    const ignored = await stack.invoke(loadEvent('s3-removed', { bucket: stack.config.visitsBucket, key }));
    const created = deliveries([await stack.invoke(s3Put(stack.config.visitsBucket, key, etag))]);

    assert.deepEqual(ignored, { kind: 'ignored', reason: 'no ObjectCreated records' });
    assert.equal(created[0]?.outcome, 'logged');
  });

  it('ignores the S3 test event sent when a notification is configured', async () => {
    const result = await stack.invoke(loadEvent('s3-test-event'));

    assert.deepEqual(result, { kind: 'ignored', reason: 'S3 test event' });
  });

  it('processes an EventBridge Object Created event by detail.bucket.name, detail.object.key and etag', async () => {
    const key = 'visits/eb 1+1.jsonl';
    const etag = await putObject(
      stack,
      key,
      jsonl([
        ['eb', T, 'a.html'],
        ['eb', T + 5, 'b.html'],
      ]),
    );
    const event = loadEvent('eventbridge-object-created', { bucket: stack.config.visitsBucket, key, etag });

    const batches = deliveries([await stack.invoke(event)]);
    const again = deliveries([await stack.invoke(s3Put(stack.config.visitsBucket, key, etag))]);

    assert.deepEqual(
      batches.map((b) => [b.object, b.outcome, b.accepted]),
      [[`s3://${stack.config.visitsBucket}/${key}`, 'logged', 2]],
    );
    assert.equal(again[0]?.outcome, 'duplicate', 'the S3 notification of the same object version is a no-op');
  });

  it('processes an EventBridge Object Created event whose key is not URL-encoded (a literal + and %41)', async () => {
    const key = 'visits/raw a+b %41.jsonl'; // decoded it would be 'raw a b A.jsonl', which does not exist
    const etag = await putObject(stack, key, jsonl([['raw', T, 'a.html']]));
    const event = loadEvent('eventbridge-object-created', {
      bucket: stack.config.visitsBucket,
      key,
      encodedKey: key,
      etag,
    });

    const batches = deliveries([await stack.invoke(event)]);

    assert.deepEqual(
      batches.map((b) => [b.object, b.outcome, b.accepted]),
      [[`s3://${stack.config.visitsBucket}/${key}`, 'logged', 1]],
    );
  });
});

describe('SQS batches of S3 notifications (the deployed path)', () => {
  // a fresh stack for each test: the first reads the sequence numbers its objects get in an empty log
  let stack: LocalStack;
  beforeEach(async () => {
    stack = await startTestStack({ notifications: false });
  });
  afterEach(() => stack.stop());

  it("ingests every message's objects in order, then brings the shards up once for all of them", async () => {
    const a = await putObject(stack, 'visits/q-a.jsonl', jsonl([['q1', T, 'a.html']]));
    const b = await putObject(stack, 'visits/q b.jsonl', jsonl([['q1', T + 1000, 'b.html']]));
    const event = sqsBatch(
      s3Put(stack.config.visitsBucket, 'visits/q-a.jsonl', a),
      loadEvent('s3-test-event'),
      s3Put(stack.config.visitsBucket, 'visits/q b.jsonl', b),
    );

    const result = await stack.invoke(event);

    assert.equal(result.kind, 'queue');
    if (result.kind !== 'queue') return;
    assert.deepEqual(result.batchItemFailures, []);
    assert.deepEqual(
      result.objects.map((o) => [o.object.split('/').pop(), o.outcome, o.entry?.seq]),
      [
        ['q-a.jsonl', 'logged', 1],
        ['q b.jsonl', 'logged', 2],
      ],
    );
    assert.equal(result.catchUp.target, 2);
    assert.equal(result.catchUp.accepted, 2);
  });

  it('a message that fails is reported in batchItemFailures with every message after it; those before are ingested', async () => {
    const c = await putObject(stack, 'visits/q-c.jsonl', jsonl([['q2', T, 'c.html']]));
    const d = await putObject(stack, 'visits/q-d.jsonl', jsonl([['q2', T + 1, 'd.html']]));
    const event = sqsBatch(
      s3Put(stack.config.visitsBucket, 'visits/q-c.jsonl', c),
      'not json',
      s3Put(stack.config.visitsBucket, 'visits/q-d.jsonl', d),
    );

    const result = await stack.invoke(event);

    assert.equal(result.kind, 'queue');
    if (result.kind !== 'queue') return;
    assert.deepEqual(
      result.batchItemFailures.map((f) => f.itemIdentifier),
      [event.Records[1]!.messageId, event.Records[2]!.messageId],
      'the failed message, and the one after it so that it keeps its place in the log',
    );
    assert.deepEqual(
      result.objects.map((o) => [o.object.split('/').pop(), o.outcome]),
      [['q-c.jsonl', 'logged']],
    );
  });

  it('the Lambda handler answers an SQS batch with its failed messages only, as the event source mapping reads it', async () => {
    const { handler } = await import('../../lambdas/sessionizer.ts');
    const env = process.env;
    process.env = { ...env, ...stack.env };
    const event = sqsBatch(loadEvent('s3-test-event'), 'not json');

    let response: unknown;
    try {
      response = await handler(event);
    } finally {
      process.env = env;
    }

    assert.deepEqual(response, { batchItemFailures: [{ itemIdentifier: event.Records[1]!.messageId }] });
  });

  it('a batch whose every message fails fails as a whole (Powertools FullBatchFailureError): it all comes back', async () => {
    await assert.rejects(stack.invoke(sqsBatch('not json', { hello: 1 })), /All records failed processing/);
  });
});

describe('EventBridge Scheduled Event (catch-up and closing)', () => {
  const clock = new TestClock(at(18, 10, 0));
  let stack: LocalStack;
  /** Scheduled runs on a clock that moves on between them: what each returned and left, recorded by `before`. */
  const runs = {} as {
    /** The seed put while notifications are off, then run-1. */
    run1: HandlerResult;
    sessionsAfterRun1: Record<string, unknown>[];
    /** 60 minutes later, with nothing new: run-2, and the clock right after it. */
    run2: HandlerResult;
    nowAfterRun2: number;
    sessionsAfterRun2: Record<string, unknown>[];
    /** Right after run-2: run-3, and the records, watermark and log tail before and after it. */
    beforeRun3: { records: Record<string, unknown>[]; watermark: number; tail: LogEntry | undefined };
    run3: HandlerResult;
    afterRun3: { records: Record<string, unknown>[]; tail: LogEntry | undefined };
    /** User 5 delivered, 120 minutes later run-2 delivered again: its result, and the users of every session. */
    run2Again: HandlerResult;
    usersAfterRun2Again: unknown[];
  };
  before(async () => {
    stack = await startTestStack({
      notifications: false,
      now: clock.now,
      env: { SESSIONIZER_IDLE_TIMEOUT: '10m' },
    });
    await putSeed(stack);
    runs.run1 = await stack.invoke(scheduled('run-1'));
    runs.sessionsAfterRun1 = await readRecords(stack, 'sessions/');

    clock.advance(60 * MINUTE);
    runs.run2 = await stack.invoke(scheduled('run-2'));
    runs.nowAfterRun2 = clock.now();
    const outputsAfterRun2 = await readOutputs(stack, '');
    runs.sessionsAfterRun2 = outputsAfterRun2
      .filter((o) => o.key.startsWith('sessions/dt=2026-02-15/'))
      .flatMap((o) => o.records);

    runs.beforeRun3 = {
      records: outputsAfterRun2.flatMap((o) => o.records),
      watermark: await watermarkOf(stack),
      tail: await stack.inspect.store.lastEntry(),
    };
    runs.run3 = await stack.invoke(scheduled('run-3'));
    runs.afterRun3 = { records: await readRecords(stack, ''), tail: await stack.inspect.store.lastEntry() };

    // the session of user 4 was written by run-2; user 5 becomes pending, then due at the redelivery of run-2 (an
    // idle advance is a log entry of its own each time: the watermark only moves forward, so a repeat is harmless)
    const etag = await putObject(stack, 'visits/late-day.jsonl', jsonl([['5', at(19, 30, 0), 'a.html']]));
    await stack.invoke(s3Put(stack.config.visitsBucket, 'visits/late-day.jsonl', etag));
    clock.advance(120 * MINUTE);
    runs.run2Again = await stack.invoke(scheduled('run-2'));
    runs.usersAfterRun2Again = (await readRecords(stack, 'sessions/')).map((s) => s.user_id).sort();
  });
  after(() => stack.stop());

  it('catches up on objects no event delivered, in key order, and each batch closes what it allows', () => {
    const result = runs.run1;

    assert.equal(result.kind, 'scheduled');
    if (result.kind !== 'scheduled') return;
    assert.deepEqual(
      result.summary.ingested.map((b) => [b.object.split('/').pop(), b.outcome, b.entry?.visits]),
      [
        ['batch-1.jsonl', 'logged', 4],
        ['batch-2.jsonl', 'logged', 4],
        ['batch-3.jsonl', 'logged', 1],
      ],
    );
    assert.equal(result.summary.catchUp.sessionsClosed, 3);
    assert.equal(result.summary.catchUp.watermark, at(17, 54, 18));
    assert.equal(result.summary.idleAdvanced, false);
    assert.deepEqual(runs.sessionsAfterRun1.map((s) => [s.user_id, s.visit_count]).sort(), [
      ['1', 4],
      ['2', 2],
      ['3', 2],
    ]);
  });

  it('after the idle timeout advances the watermark to now minus the allowed lateness and closes what is due', () => {
    const result = runs.run2;

    assert.equal(result.kind, 'scheduled');
    if (result.kind !== 'scheduled') return;
    assert.deepEqual(result.summary.ingested, []);
    assert.equal(result.summary.idleAdvanced, true);
    assert.equal(result.summary.catchUp.sessionsClosed, 1);
    assert.ok(Math.abs(result.summary.catchUp.watermark - (runs.nowAfterRun2 - 15 * MINUTE)) < 5_000);
    assert.deepEqual(
      runs.sessionsAfterRun2
        .filter((s) => s.user_id === '4')
        .map((s) => [s.user_id, s.start_time, s.visit_count]),
      [['4', '2026-02-15T18:09:18.000Z', 1]],
    );
  });

  it('does nothing on a scheduled run with nothing new and nothing due', () => {
    const { records: before, watermark, tail } = runs.beforeRun3;

    const result = runs.run3;

    assert.equal(result.kind, 'scheduled');
    if (result.kind !== 'scheduled') return;
    assert.deepEqual(
      [result.summary.ingested, result.summary.idleAdvanced, result.summary.catchUp.commits],
      [[], false, 0],
    );
    assert.equal(result.summary.catchUp.watermark, watermark);
    assert.deepEqual(runs.afterRun3.tail, tail, 'nothing appended to the log');
    assert.deepEqual(runs.afterRun3.records, before);
  });

  it('a redelivered scheduled event (same id) later keeps the sessions its first delivery wrote', () => {
    const result = runs.run2Again;

    assert.equal(result.kind === 'scheduled' && result.summary.catchUp.sessionsClosed, 1);
    assert.deepEqual(runs.usersAfterRun2Again, ['1', '2', '3', '4', '5']);
  });
});

describe('the flush event', () => {
  let stack: LocalStack;
  /** Flushes on a stack whose notifications are off: what each returned and left, recorded in order by `before`. */
  const run = {} as {
    /** The flush event of events/flush.json, after batches 1 and 2 were delivered. */
    event: unknown;
    first: HandlerResult;
    sessionsAfterFirst: Record<string, unknown>[];
    /** A second flush, right after. */
    second: HandlerResult;
    sessionsAfterSecond: Record<string, unknown>[];
    /** User f1 delivered, flush 'same-id'; user f2 delivered, flush 'same-id' again: the users of every session. */
    usersAfterSameId: unknown[];
  };
  before(async () => {
    stack = await startTestStack({ notifications: false });
    const etags = await putSeed(stack, 2);
    for (const [i, etag] of etags.entries())
      await stack.invoke(s3Put(stack.config.visitsBucket, SEED[i]!.key, etag));
    run.event = loadEvent('flush');
    run.first = await stack.invoke(run.event);
    run.sessionsAfterFirst = await readRecords(stack, 'sessions/');

    run.second = await stack.invoke(flush('second'));
    run.sessionsAfterSecond = await readRecords(stack, 'sessions/');

    const key = 'visits/flush-again.jsonl';
    await stack.invoke(
      s3Put(stack.config.visitsBucket, key, await putObject(stack, key, jsonl([['f1', at(20, 0, 0), 'a']]))),
    );
    await stack.invoke(flush('same-id'));
    const key2 = 'visits/flush-again-2.jsonl';
    await stack.invoke(
      s3Put(
        stack.config.visitsBucket,
        key2,
        await putObject(stack, key2, jsonl([['f2', at(21, 0, 0), 'b']])),
      ),
    );
    await stack.invoke(flush('same-id'));
    run.usersAfterSameId = (await readRecords(stack, 'sessions/')).map((s) => s.user_id).sort();
  });
  after(() => stack.stop());

  it('{"action":"flush"} closes every pending session regardless of the watermark', () => {
    assert.deepEqual(run.event, { action: 'flush' });

    const result = run.first;

    assert.equal(result.kind === 'flush' && result.summary.catchUp.sessionsClosed, 3);
    assert.deepEqual(run.sessionsAfterFirst.map((s) => [s.user_id, s.visit_count]).sort(), [
      ['1', 4],
      ['2', 2],
      ['3', 2],
    ]);
  });

  it('a second flush has nothing left to close', () => {
    const result = run.second;

    assert.equal(result.kind === 'flush' && result.summary.catchUp.sessionsClosed, 0);
    assert.equal(run.sessionsAfterSecond.length, 3);
  });

  it('a flush event with an id used before is a flush again: it keeps what the first wrote and closes what came since', () => {
    assert.deepEqual(run.usersAfterSameId, ['1', '2', '3', 'f1', 'f2']);
  });
});

describe('events the handler refuses', () => {
  let stack: LocalStack;
  before(async () => {
    stack = await startTestStack({ notifications: false });
  });
  after(() => stack.stop());

  it('an unknown event fails with an UnknownEventError saying which events are expected', async () => {
    await assert.rejects(
      stack.invoke(loadEvent('unknown')),
      unknownEvent(
        /^unknown event with keys \[hello, action\]: expected an SQS batch of S3 notifications, an S3 notification, an EventBridge Object Created or Scheduled Event, or \{"action":"flush"\}$/,
      ),
    );
  });

  it('an SQS record without a message id or body fails with an UnknownEventError naming the record', async () => {
    const event = loadEvent('sqs-message');
    delete (event.Records[0] as Partial<(typeof event.Records)[number]>).body;

    await assert.rejects(
      stack.invoke(event),
      unknownEvent(/Records\[0\] is not an SQS message with an id and a body/),
    );
  });

  it('a Scheduled Event without an id, and an Object Created event without a key, fail with an UnknownEventError', async () => {
    await assert.rejects(
      stack.invoke(loadEvent('scheduled-without-id')),
      unknownEvent(/Scheduled Event without an id/),
    );
    await assert.rejects(
      stack.invoke(loadEvent('eventbridge-object-created-without-key')),
      unknownEvent(/Object Created event without bucket or key/),
    );
  });

  it('an S3 record without an object key fails with an UnknownEventError', async () => {
    await assert.rejects(
      stack.invoke(loadEvent('s3-put', { encodedKey: '' })),
      unknownEvent(/Records\[0\] has no bucket name or object key/),
    );
  });

  it('a value that is not an object fails with an UnknownEventError saying an object is expected', async () => {
    for (const [event, type] of [
      ['flush', 'string'],
      [42, 'number'],
      [true, 'boolean'],
      [undefined, 'undefined'],
    ] as const) {
      await assert.rejects(
        stack.invoke(event),
        unknownEvent(new RegExp(`expected a JSON object, got ${type}$`)),
      );
    }
  });

  it('an array or null event fails with a message that names what it got', async () => {
    await assert.rejects(
      stack.invoke([{ action: 'flush' }]),
      unknownEvent(/expected a JSON object, got (an )?array$/),
    );
    await assert.rejects(stack.invoke(null), unknownEvent(/expected a JSON object, got null$/));
  });

  it('a refused event writes nothing and leaves no state behind', async () => {
    await assert.rejects(stack.invoke(loadEvent('unknown')));

    assert.deepEqual(await readRecords(stack, ''), []);
    assert.equal(await stack.inspect.store.lastEntry(), undefined);
  });
});

/** An S3 notification whose key is given exactly as encoded in the event (no ETag: read from the object). */
function s3PutEncoded(encodedKey: string) {
  return loadEvent('s3-put', { bucket: 'sessionizer-visits', encodedKey, etag: null });
}
