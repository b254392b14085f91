/**
 * Hostile input and timing, read against real AWS behaviour, each through the handler on the local servers: clocks
 * ahead, numeric ids beyond 2^53, object versions overwritten before their event is handled, objects older than
 * the duplicate check remembers, items sized by their encoded bytes, times before the first partition, sessions too
 * large for one output row, files catch-up should not read, and ids that do not fit in a key.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DeleteCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { replay } from '../../cli/replay.ts';
import { readSummary } from '../../cli/state.ts';
import type { LocalStack } from '../../infra/local/stack.ts';
import { UnknownEventError } from '../../lambdas/adapters/errors.ts';
import { DEFAULT_SESSION_CONFIG } from '../../lambdas/core/types.ts';
import { metricsOf } from '../../lambdas/sessionizer.ts';
import { s3Batch, s3Put, scheduled } from '../helpers/events.ts';
import { linesUnder, readTree } from '../helpers/files.ts';
import {
  DYNAMODB_ITEM_LIMIT,
  deliveries,
  itemSizes,
  jsonl,
  putObject,
  readRecords,
  startTestStack,
  TestClock,
  type VisitRow,
  watermarkOf,
} from '../helpers/local.ts';
import { PipelineDriver, visit } from '../helpers/pipeline.ts';
import { sessionsFromCore, sessionsFromJsonLines } from '../helpers/reference.ts';

const HOUR = 3_600_000;
const MINUTE = 60_000;
/** The processing clock of these tests. */
const NOW = Date.UTC(2026, 1, 16, 12, 0, 0);

async function deliver(stack: LocalStack, key: string, body: string) {
  const etag = await putObject(stack, key, body);
  const result = await stack.invoke(s3Batch(stack.config.visitsBucket, [{ key, etag }]));
  return { result, delivery: deliveries([result])[0]! };
}

async function rejectedOf(stack: LocalStack, key: string) {
  return (await readRecords(stack, 'rejected/')).filter(
    (r) => r.source_object === `s3://${stack.config.visitsBucket}/${key}`,
  );
}

describe('visit times ahead of the processing clock', () => {
  let stack: LocalStack;
  /** A file with visits ahead of the clock, one of them exactly the skew ahead (line 4, accepted). */
  const FUTURE = 'visits/future.jsonl';
  const futureRows: VisitRow[] = [
    ['a', NOW - 30 * MINUTE, 'ok.html'],
    ['b', Date.UTC(2099, 0, 1), 'far.html'],
    ['c', '2026-02-16T14:30:00', 'local-time-east-of-utc.html'], // written without an offset: 2.5 h ahead
    ['d', NOW + HOUR, 'exactly-the-skew.html'],
  ];
  const OLD_TIMES = 'visits/old-times.jsonl';
  /** The files delivered in order on a clock that stands still: what each left, recorded by `before`. */
  const run = {} as {
    /** The file above, its rejected records and the watermark after it. */
    future: Awaited<ReturnType<typeof deliver>>;
    futureRejected: Record<string, unknown>[];
    watermarkAfterFuture: number;
    /** Then a visit 50 minutes ahead. */
    ahead: Awaited<ReturnType<typeof deliver>>;
    /** Then a visit before the epoch, and its rejected records. */
    oldTimes: Awaited<ReturnType<typeof deliver>>;
    oldTimesRejected: Record<string, unknown>[];
  };
  before(async () => {
    stack = await startTestStack({ notifications: false, now: () => NOW });
    run.future = await deliver(stack, FUTURE, jsonl(futureRows));
    run.futureRejected = await rejectedOf(stack, FUTURE);
    run.watermarkAfterFuture = await watermarkOf(stack);

    run.ahead = await deliver(stack, 'visits/ahead.jsonl', jsonl([['e', NOW + 50 * MINUTE, 'a.html']]));

    run.oldTimes = await deliver(stack, OLD_TIMES, jsonl([['f', '1969-12-31T23:59:59.999Z', 'a.html']]));
    run.oldTimesRejected = await rejectedOf(stack, OLD_TIMES);
  });
  after(() => stack.stop());

  it('a visit dated 2099, or more than maxFutureSkew ahead, is rejected and does not move the watermark', () => {
    const { delivery } = run.future;

    assert.deepEqual([delivery.lines, delivery.visits, delivery.rejected], [4, 2, 2]);
    const rejected = run.futureRejected;
    assert.deepEqual(
      rejected.map((r) => r.source_line),
      [2, 3],
    );
    for (const r of rejected) {
      assert.match(String(r.reason), /is after 2026-02-16T13:00:00\.000Z, the processing clock plus 1h/);
    }
    // the watermark follows the accepted visits only: the one exactly at the skew, less the allowed lateness
    assert.equal(run.watermarkAfterFuture, NOW + HOUR - 15 * MINUTE);
  });

  it('reports a negative watermark lag while the watermark is ahead of the clock, for the alarm to see', () => {
    // after the file above, whose visit exactly the skew ahead set the watermark
    const { result } = run.ahead;

    const lag = metricsOf(result, NOW).WatermarkLagSeconds;

    assert.equal(lag, -(45 * MINUTE) / 1000, 'watermark = now + 1h - 15 min: 45 minutes ahead');
  });

  it('a visit_time before the Unix epoch (the first partition Athena projects) is rejected', () => {
    const { delivery } = run.oldTimes;

    assert.equal(delivery.rejected, 1);
    const [r] = run.oldTimesRejected;
    assert.match(String(r?.reason), /is before 1970-01-01T00:00:00\.000Z, the Unix epoch/);
  });
});

describe('numeric user ids beyond 2^53', () => {
  it('are rejected instead of rounded into one id; the same digits as strings are two users', async () => {
    const stack = await startTestStack({ notifications: false, now: new TestClock(NOW).now });
    try {
      const t = new Date(NOW - HOUR).toISOString();
      const line = (user: string) => `{"user_id":${user},"visit_time":"${t}","page":"p"}`;
      const key = 'visits/big-ids.jsonl';
      const body = [
        line('12345678901234567891'),
        line('12345678901234567892'),
        line('"12345678901234567891"'),
        line('"12345678901234567892"'),
        line('9007199254740991'),
      ].join('\n');

      const { delivery } = await deliver(stack, key, body);
      await stack.invoke({ action: 'flush', id: 'ids' });

      assert.deepEqual([delivery.visits, delivery.rejected], [3, 2]);
      const users = (await readRecords(stack, 'sessions/')).map((s) => s.user_id).sort();
      assert.deepEqual(users, ['12345678901234567891', '12345678901234567892', '9007199254740991']);
    } finally {
      await stack.stop();
    }
  });
});

describe('an object overwritten before its event is handled', () => {
  it('on a versioned bucket each version is read by its version id: both are batches, nothing is dropped', async () => {
    const stack = await startTestStack({ notifications: false, now: new TestClock(NOW).now });
    try {
      // s3rver keeps no versions: this keeps every body put and answers reads by version id, as S3 does
      const versions = new Map<string, Buffer>();
      let next = 0;
      const versioning =
        (next_: (args: unknown) => Promise<unknown>, context: { commandName?: string }) =>
        async (args: unknown): Promise<unknown> => {
          const input = (args as { input: { Key?: string; Body?: unknown; VersionId?: string } }).input;
          if (context.commandName === 'PutObjectCommand' && input.Key?.startsWith('visits/')) {
            const out = (await next_(args)) as { output: { VersionId?: string } };
            const id = `v${++next}`;
            versions.set(id, Buffer.from(input.Body as string));
            out.output.VersionId = id;
            return out;
          }
          if (context.commandName === 'GetObjectCommand' && input.VersionId) {
            const body = versions.get(input.VersionId);
            if (!body) throw Object.assign(new Error('no such version'), { name: 'NoSuchVersion' });
            const out = (await next_(args)) as { output: Record<string, unknown> };
            out.output.Body = (async function* () {
              yield body;
            })();
            out.output.VersionId = input.VersionId;
            return out;
          }
          return next_(args);
        };
      stack.clients.s3.middlewareStack.add(versioning as never, { step: 'initialize', name: 'versions' });
      const key = 'visits/overwritten.jsonl';
      const put = async (rows: Parameters<typeof jsonl>[0]) => {
        const etag = await putObject(stack, key, jsonl(rows));
        return { key, etag, versionId: `v${next}` };
      };
      const first = await put([['o', NOW - 2 * HOUR, 'first.html']]);
      const second = await put([['o', NOW - 2 * HOUR + MINUTE, 'second.html']]);
      const event = (v: typeof first) => {
        const e = s3Put(stack.config.visitsBucket, v.key, v.etag);
        (e.Records[0]!.s3.object as Record<string, unknown>).versionId = v.versionId;
        return e;
      };

      const a = deliveries([await stack.invoke(event(first))]);
      const b = deliveries([await stack.invoke(event(second))]);
      await stack.invoke({ action: 'flush', id: 'versions' });

      assert.deepEqual(
        [...a, ...b].map((d) => [d.outcome, d.visits]),
        [
          ['logged', 1],
          ['logged', 1],
        ],
      );
      const [session] = await readRecords(stack, 'sessions/');
      assert.ok(session, 'one session written');
      assert.deepEqual(
        (session.visited_pages as { page: string }[]).map((p) => p.page),
        ['first.html', 'second.html'],
      );
    } finally {
      await stack.stop();
    }
  });

  it('on a bucket without versions the lost version is one rejected record saying so, not a silent drop', async () => {
    const stack = await startTestStack({ notifications: false, now: new TestClock(NOW).now });
    try {
      const key = 'visits/overwritten.jsonl';
      const old = await putObject(stack, key, jsonl([['o', NOW - 2 * HOUR, 'old.html']]));
      await putObject(stack, key, jsonl([['o', NOW - 2 * HOUR, 'new.html']]));

      const [d] = deliveries([await stack.invoke(s3Batch(stack.config.visitsBucket, [{ key, etag: old }]))]);

      assert.deepEqual([d?.outcome, d?.lines, d?.rejected], ['superseded', 1, 1]);
      const [r] = await rejectedOf(stack, key);
      assert.equal(r?.source_line, null);
      assert.match(String(r?.reason), /overwritten before this version could be read/);
      const state = await readSummary(stack.inspect, stack.config);
      assert.equal(state.lines, state.visits + state.rejected);
    } finally {
      await stack.stop();
    }
  });
});

describe('objects older than the duplicate check remembers', () => {
  it('are left alone by catch-up once their claims may have expired, instead of being processed again', async () => {
    // the clock of the objects' LastModified (s3rver's): the real one
    const clock = new TestClock(Date.now());
    const stack = await startTestStack({ notifications: false, now: clock.now });
    try {
      await putObject(stack, 'visits/year-old.jsonl', jsonl([['y', Date.now() - HOUR, 'a.html']]));
      await stack.invoke(scheduled('first'));
      // DynamoDB's TTL deletes claims after 400 days (dynalite has no TTL: delete them as it would)
      const claims = await stack.clients.ddb.send(new ScanCommand({ TableName: stack.config.table }));
      for (const item of claims.Items ?? []) {
        if (String(item.pk).startsWith('claim#'))
          await stack.clients.ddb.send(
            new DeleteCommand({ TableName: stack.config.table, Key: { pk: item.pk, sk: item.sk } }),
          );
      }
      clock.advance(400 * 24 * HOUR);

      const result = await stack.invoke(scheduled('a-year-later'));

      assert.equal(result.kind, 'scheduled');
      if (result.kind !== 'scheduled') return;
      assert.deepEqual([result.summary.ingested.length, result.summary.tooOld], [0, 1]);
      const state = await readSummary(stack.inspect, stack.config);
      assert.deepEqual([state.objects, state.lines], [1, 1], 'nothing counted twice');
    } finally {
      await stack.stop();
    }
  });
});

describe('item sizes by the bytes written', () => {
  it('pages of 16 KB of control characters and random text keep every state item within 400 KB', async () => {
    const stack = await startTestStack({ notifications: false, now: new TestClock(NOW).now });
    try {
      const rows: [string, number, string][] = [];
      for (let i = 0; i < 60; i++) {
        const page =
          i % 2 === 0
            ? '\u0001'.repeat(16 * 1024)
            : randomBytes(12 * 1024)
                .toString('base64')
                .slice(0, 16 * 1024);
        rows.push(['bot', NOW - 2 * HOUR + i * 1000, `${page.slice(0, -4)}${i}`]);
      }

      const { delivery } = await deliver(stack, 'visits/escapes.jsonl', jsonl(rows));

      assert.equal(delivery.accepted, 60);
      const [largest] = await itemSizes(stack);
      assert.ok(
        largest && largest.bytes <= DYNAMODB_ITEM_LIMIT,
        `${largest?.pk} ${largest?.sk}: ${largest?.bytes}`,
      );
    } finally {
      await stack.stop();
    }
  });
});

describe('a session too large for one output row', () => {
  it('a bot with 1,000,000 visits and no pause gives sessions of at most 50,000 visits, each line under 32 MB', async () => {
    const stack = await startTestStack({ notifications: false, now: new TestClock(NOW).now });
    try {
      const TOTAL = 1_000_000;
      const FILES = 10;
      const start = NOW - 20 * 24 * HOUR;
      for (let f = 0; f < FILES; f++) {
        const lines: string[] = [];
        for (let i = f * (TOTAL / FILES); i < (f + 1) * (TOTAL / FILES); i++) {
          lines.push(`{"user_id":"bot","visit_time":${start + i * 1000},"page":"/p${i % 100}"}`);
        }
        await deliver(stack, `visits/bot-${f}.jsonl`, `${lines.join('\n')}\n`);
      }
      await stack.invoke({ action: 'flush', id: 'bot' });

      const outputs = await stack.inspect.objects.listAll(stack.config.outputBucket, 'sessions/');
      const sessions: { start: number; end: number; count: number; bytes: number }[] = [];
      for (const o of outputs) {
        const text = await stack.inspect.objects.getText(stack.config.outputBucket, o.key);
        for (const line of text.split('\n')) {
          if (line === '') continue;
          const s = JSON.parse(line) as { start_time: string; end_time: string; visit_count: number };
          sessions.push({
            start: Date.parse(s.start_time),
            end: Date.parse(s.end_time),
            count: s.visit_count,
            bytes: Buffer.byteLength(line),
          });
        }
      }
      sessions.sort((a, b) => a.start - b.start);
      assert.equal(sessions.length, 20);
      assert.ok(sessions.every((s) => s.count === 50_000));
      assert.ok(sessions.every((s) => s.bytes < 32 * 1024 * 1024));
      for (let k = 1; k < sessions.length; k++) assert.equal(sessions[k]!.start, sessions[k - 1]!.end + 1000);
    } finally {
      await stack.stop();
    }
  });
});

describe('what catch-up reads, and ids that would not fit in a key', () => {
  it('catch-up reads only keys with the suffix the notification filters on: no _SUCCESS, no temporary files', async () => {
    const stack = await startTestStack({
      notifications: false,
      now: new TestClock(NOW).now,
      env: { SESSIONIZER_VISITS_SUFFIX: '.jsonl' },
    });
    try {
      await putObject(stack, 'visits/_SUCCESS', '');
      await putObject(stack, 'visits/part-0.jsonl.tmp', 'partial {');
      await putObject(stack, 'visits/part-0.jsonl', jsonl([['s', NOW - HOUR, 'a.html']]));

      const result = await stack.invoke(scheduled('suffix'));

      assert.deepEqual(
        deliveries([result]).map((d) => d.object.split('/').pop()),
        ['part-0.jsonl'],
      );
    } finally {
      await stack.stop();
    }
  });

  it('a flush or scheduled event whose id is not 1 to 128 plain characters is refused before anything is written', async () => {
    const stack = await startTestStack({ notifications: false });
    try {
      for (const event of [
        { action: 'flush', id: 'x'.repeat(1024) },
        { action: 'flush', id: 'a/b' },
        { 'detail-type': 'Scheduled Event', id: 'y'.repeat(129) },
      ]) {
        await assert.rejects(
          stack.invoke(event),
          (e: unknown) => e instanceof UnknownEventError && /1 to 128/.test((e as Error).message),
        );
      }
      assert.equal(await stack.inspect.store.lastEntry(), undefined);
    } finally {
      await stack.stop();
    }
  });
});

describe('replay of files that mix hostile lines with normal ones', () => {
  it('gives the sessions of the normal lines alone, counts the hostile ones as rejected, and keeps the watermark', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sessionizer-hostile-'));
    try {
      const now = Date.now();
      const base = now - 6 * HOUR;
      const hostile = [
        `{"user_id":"h","visit_time":"2099-01-01T00:00:00Z","page":"far-future"}`,
        `{"user_id":"h","visit_time":"${new Date(now + 3 * HOUR).toISOString().slice(0, 19)}","page":"local-time-ahead"}`,
        `{"user_id":12345678901234567891,"visit_time":"${new Date(base).toISOString()}","page":"big-id"}`,
        `{"user_id":"h","visit_time":"1969-07-20T20:17:40Z","page":"before-the-epoch"}`,
      ];
      const files: string[] = [];
      const normal: { userId: string; t: number; page: string; file: number; line: number }[] = [];
      for (let f = 0; f < 4; f++) {
        const lines: string[] = [];
        for (let i = 0; i < 12; i++) {
          if (i % 4 === 3) {
            lines.push(hostile[(f + i) % hostile.length]!);
            continue;
          }
          const v = {
            userId: `u${i % 3}`,
            t: base + (f * 30 + i * 3) * MINUTE,
            page: `p${i}`,
            file: f,
            line: i + 1,
          };
          normal.push(v);
          lines.push(
            JSON.stringify({ user_id: v.userId, visit_time: new Date(v.t).toISOString(), page: v.page }),
          );
        }
        const path = join(dir, `mixed-${f}.jsonl`);
        await writeFile(path, `${lines.join('\n')}\n`);
        files.push(path);
      }
      const driver = new PipelineDriver(DEFAULT_SESSION_CONFIG);
      for (let f = 0; f < 4; f++) {
        driver.batch(
          normal.filter((v) => v.file === f).map((v) => visit(v.userId, v.t, v.page, v.line)),
          `mixed-${f}`,
        );
      }
      driver.flush();

      const summary = await replay({ files, out: join(dir, 'out'), flush: true });

      assert.equal(summary.rejected, 12, 'every hostile line is a rejected record');
      assert.equal(summary.visits, normal.length);
      assert.equal(
        summary.watermark,
        new Date(driver.watermark).toISOString(),
        'the watermark of the normal lines',
      );
      const sessions = sessionsFromJsonLines(
        linesUnder(await readTree(join(dir, 'out')), 'sessions/').join('\n'),
      );
      assert.deepEqual(sessions, sessionsFromCore(driver.closed));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
