/**
 * Failures the pipeline meets in production, each through the real handler on the local servers: throttling and
 * SlowDown retried by the SDK, bad objects ending as clear rejected records without failing the invocation.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { installFaults } from '../../infra/local/faults.ts';
import { type LocalStack, startLocalStack } from '../../infra/local/stack.ts';
import { type Delivery, deliveries } from '../helpers/local.ts';

const T = Date.UTC(2026, 1, 15, 17, 5, 34, 432);
const line = (user: string, t: number, page: string) =>
  JSON.stringify({ user_id: user, visit_time: new Date(t).toISOString(), page });

let home: string;
let stack: LocalStack;
before(async () => {
  home = await mkdtemp(join(tmpdir(), 'sessionizer-failures-'));
  stack = await startLocalStack({ home, inMemory: true, env: {} });
});
after(async () => {
  await stack.stop();
  await rm(home, { recursive: true, force: true });
});

async function upload(key: string, body: string | Buffer): Promise<Delivery> {
  const before = stack.delivered.length;
  await stack.clients.s3.send(
    new PutObjectCommand({ Bucket: stack.config.visitsBucket, Key: `visits/${key}`, Body: body }),
  );
  await stack.idle();
  assert.deepEqual(
    stack.deadLetters.map((d) => d.error.message),
    [],
    'no invocation failed for good',
  );
  const batches = deliveries(stack.delivered.slice(before));
  assert.equal(batches.length, 1);
  return batches[0]!;
}

async function rejectedOf(
  object: string,
): Promise<{ source_line: number | null; reason: string; raw: string }[]> {
  const out: { source_object: string; source_line: number | null; reason: string; raw: string }[] = [];
  for (const o of await stack.inspect.objects.listAll(stack.config.outputBucket, 'rejected/')) {
    const text = await stack.inspect.objects.getText(stack.config.outputBucket, o.key);
    for (const l of text.split('\n')) if (l) out.push(JSON.parse(l));
  }
  return out.filter((r) => r.source_object === `s3://${stack.config.visitsBucket}/visits/${object}`);
}

describe('bad objects', () => {
  const cases: [string, string | Buffer, { lines: number; visits: number; rejected: RegExp[] }][] = [
    ['empty.jsonl', '', { lines: 0, visits: 0, rejected: [] }],
    ['header-only.csv', 'user_id,visit_time,page\r\n', { lines: 0, visits: 0, rejected: [] }],
    [
      'invalid.gz',
      Buffer.from([0x1f, 0x8b, 0x08, 0x00, 1, 2, 3, 4, 5, 6, 7]),
      { lines: 1, visits: 0, rejected: [/invalid gzip/] },
    ],
    [
      'truncated.jsonl.gz',
      gzipSync(`${line('u', T, 'a')}\n${line('u', T + 1, 'b')}\n`).subarray(0, 30),
      { lines: 1, visits: 0, rejected: [/cannot read object/] },
    ],
    [
      'garbage.bin',
      Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 7919) % 256)),
      { lines: -1, visits: 0, rejected: [] },
    ],
    [
      'invalid-utf8.jsonl',
      Buffer.concat([
        Buffer.from(`${line('u', T, 'a')}\n{"user_id":"\xff"}\n`, 'latin1'),
        Buffer.from(`${line('u', T + 2, 'c')}\n`),
      ]),
      { lines: 3, visits: 2, rejected: [/invalid UTF-8/] },
    ],
    [
      'bom-crlf.csv',
      `\ufeffuser_id,visit_time,page\r\n1,${new Date(T).toISOString()},a\r\n2,${new Date(T).toISOString()},"b,c"\r\n`,
      { lines: 2, visits: 2, rejected: [] },
    ],
  ];
  for (const [name, body, expected] of cases) {
    it(`${name}: ends as ${expected.rejected.length || 'no'} clear rejected record(s), the invocation succeeds`, async () => {
      // act
      const summary = await upload(name, body);

      // assert
      assert.equal(summary.outcome, 'logged');
      assert.equal(summary.visits, expected.visits);
      if (expected.lines >= 0) assert.equal(summary.lines, expected.lines);
      assert.equal(summary.lines, summary.visits + summary.rejected, 'lines = visits + rejected');
      const rejected = await rejectedOf(name);
      assert.equal(rejected.length, summary.rejected);
      for (const pattern of expected.rejected)
        assert.ok(
          rejected.some((r) => pattern.test(r.reason)),
          `${pattern}`,
        );
      for (const r of rejected) assert.ok(r.reason.length > 0 && Buffer.byteLength(r.raw) <= 4096);
    });
  }

  it('a single 50 MB line is one rejected record; the lines around it are sessionized', async () => {
    // arrange
    const body = Buffer.concat([
      Buffer.from(`${line('big', T, 'before')}\n`),
      Buffer.alloc(50 * 1024 * 1024, 'x'),
      Buffer.from(`\n${line('big', T + 1000, 'after')}\n`),
    ]);

    // act
    const summary = await upload('huge-line.jsonl', body);

    // assert
    assert.deepEqual([summary.lines, summary.visits, summary.rejected], [3, 2, 1]);
    const [rejected] = await rejectedOf('huge-line.jsonl');
    assert.equal(rejected?.source_line, 2);
    assert.match(rejected?.reason ?? '', /line longer than 1048576 bytes \(52428800 bytes\)/);
    assert.equal(rejected?.raw.length, 4096);
  });
});

describe('throttling', () => {
  it('retries DynamoDB ThrottlingException and S3 SlowDown with the SDK retry strategy; no invocation fails', async () => {
    // arrange: every 4th call is throttled on its first attempt (after the response for some: the effect happened)
    const faults = installFaults(stack.clients, {
      mode: 'transient',
      transientName: (command) => (command.includes('Object') ? 'SlowDown' : 'ThrottlingException'),
    });
    const throttled = new Set<number>();
    faults.setRule((call) => {
      if (call % 4 !== 0 || throttled.has(call)) return undefined;
      throttled.add(call);
      return call % 8 === 0 ? 'after' : 'before';
    });
    const body = Array.from({ length: 30 }, (_, i) => line(`t${i % 5}`, T + i * 1000, `p${i}`)).join('\n');

    // act
    const summary = await upload('throttled.jsonl', body);
    const flushed = await stack.invoke({ action: 'flush', id: 'throttling' });
    faults.setRule(undefined);

    // assert
    assert.ok(faults.injected >= 5, `faults injected: ${faults.injected}`);
    assert.equal(summary.accepted, 30);
    assert.equal(flushed.kind === 'flush' && flushed.summary.catchUp.sessionsClosed >= 5, true);
    const sessions: { user_id: string; visit_count: number }[] = [];
    for (const o of await stack.inspect.objects.listAll(stack.config.outputBucket, 'sessions/')) {
      const text = await stack.inspect.objects.getText(stack.config.outputBucket, o.key);
      for (const l of text.split('\n')) if (l) sessions.push(JSON.parse(l));
    }
    const throttledUsers = sessions.filter((s) => s.user_id.startsWith('t'));
    assert.deepEqual(throttledUsers.map((s) => s.user_id).sort(), ['t0', 't1', 't2', 't3', 't4']);
    assert.equal(
      throttledUsers.reduce((a, s) => a + s.visit_count, 0),
      30,
    );
  });
});
