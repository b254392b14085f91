/**
 * Scenarios read adversarially against the protocol (docs/design.md, section 5.5), each on the local servers with
 * the real handler or pipeline: a retried object whose bytes arrive in other chunks, a log read that does not show
 * the newest entries yet, and a failed attempt whose writes land after its retry's.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readSummary } from '../../cli/state.ts';
import { installFaults } from '../../infra/local/faults.ts';
import { DynamoStateStore } from '../../lambdas/adapters/dynamo-store.ts';
import { S3ObjectStore } from '../../lambdas/adapters/s3.ts';
import type { LogEntry } from '../../lambdas/core/log.ts';
import { Pipeline } from '../../lambdas/pipeline/index.ts';
import { s3Batch } from '../helpers/events.ts';
import { cleanRun } from '../helpers/faults.ts';
import {
  at,
  putObject,
  putSeed,
  readRecords,
  SEED,
  snapshotOutputs,
  startTestStack,
  TestClock,
} from '../helpers/local.ts';
import { referenceSessionize, sessionsFromJsonLines } from '../helpers/reference.ts';
import { stateStore } from '../helpers/store.ts';

const GAP = 40 * 60_000;

/** A body that arrives in pieces of `size` bytes, whatever S3 sent. */
async function* rechunk(body: AsyncIterable<Uint8Array>, size: number): AsyncGenerator<Uint8Array> {
  let pending = Buffer.alloc(0);
  for await (const chunk of body) {
    pending = Buffer.concat([pending, Buffer.from(chunk)]);
    while (pending.length >= size) {
      yield pending.subarray(0, size);
      pending = pending.subarray(size);
    }
  }
  if (pending.length > 0) yield pending;
}

describe('a retried object whose bytes arrive in other chunks the second time', () => {
  it('is cut into the same segments: every line ends in exactly one output, sessions equal the reference', async () => {
    // arrange: 3 lines a segment, so one object is 9 segments; the first attempt reads 7-byte chunks and dies
    // after its third staged segment, the retry reads the object in one chunk
    const stack = await startTestStack({ notifications: false, env: { SESSIONIZER_SEGMENT_LINES: '3' } });
    try {
      const lines: string[] = [];
      const visits: { userId: string; t: number; page: string }[] = [];
      for (let i = 0; i < 25; i++) {
        if (i % 7 === 3) {
          lines.push(`{"broken": ${i}`);
          continue;
        }
        const v = { userId: `u${i % 4}`, t: at(9, 0, 0) + i * 60_000, page: `p${i}.html` };
        visits.push(v);
        lines.push(
          JSON.stringify({ user_id: v.userId, visit_time: new Date(v.t).toISOString(), page: v.page }),
        );
      }
      const key = 'visits/chunked.jsonl';
      const etag = await putObject(stack, key, `${lines.join('\n')}\n`);
      let chunk = 7;
      const rechunking =
        (next: (args: unknown) => Promise<unknown>, context: { commandName?: string }) =>
        async (args: unknown): Promise<unknown> => {
          const out = (await next(args)) as { output: { Body?: AsyncIterable<Uint8Array> } };
          if (context.commandName === 'GetObjectCommand' && out.output.Body) {
            out.output.Body = rechunk(out.output.Body, chunk);
          }
          return out;
        };
      stack.clients.s3.middlewareStack.add(rechunking as never, { step: 'initialize', name: 'rechunk' });
      const faults = installFaults(stack.clients);
      const event = s3Batch(stack.config.visitsBucket, [{ key, etag }]);
      let staged = 0;

      // act
      faults.setRule((_, command) =>
        command === 'PutObjectCommand' && ++staged === 3 ? 'after' : undefined,
      );
      await assert.rejects(faults.run(() => stack.invoke(event)));
      faults.setRule(undefined);
      faults.revive();
      const stagedByFirst = staged;
      chunk = 1 << 20;
      await faults.run(() => stack.invoke(event));
      await stack.invoke({ action: 'flush', id: 'end' });

      // assert
      assert.ok(stagedByFirst >= 3, 'the first attempt died part-way through its segments');
      const summary = await readSummary(stack.inspect, stack.config);
      assert.deepEqual(
        [
          summary.lines,
          summary.visits,
          summary.rejected,
          summary.accepted + summary.duplicates + summary.late,
        ],
        [25, visits.length, 25 - visits.length, visits.length],
      );
      assert.equal((await readRecords(stack, 'rejected/')).length, 25 - visits.length, 'each bad line once');
      const staging = await stack.inspect.objects.listAll(stack.config.outputBucket, '_sessionizer/staging/');
      assert.equal(staging.length, 9, '25 lines in segments of 3');
      const sessions = sessionsFromJsonLines(
        (await readRecords(stack, 'sessions/')).map((r) => JSON.stringify(r)).join('\n'),
      );
      assert.deepEqual(sessions, referenceSessionize(visits, GAP));
    } finally {
      await stack.stop();
    }
  });
});

/** A store whose log reads miss each new entry for its first `reads` reads, as an eventually consistent read might. */
class LaggingStore extends DynamoStateStore {
  private readonly hidden = new Map<number, number>();
  constructor(...args: ConstructorParameters<typeof DynamoStateStore>) {
    super(...args);
  }
  protected override async putEntry(entry: LogEntry): Promise<boolean> {
    const ok = await super.putEntry(entry);
    if (ok) this.hidden.set(entry.seq, 2);
    return ok;
  }
  private visible(entries: LogEntry[]): LogEntry[] {
    const out: LogEntry[] = [];
    for (const e of entries) {
      const left = this.hidden.get(e.seq) ?? 0;
      if (left > 0) {
        this.hidden.set(e.seq, left - 1);
        break; // a log read that misses an entry misses the ones after it too
      }
      out.push(e);
    }
    return out;
  }
  override async lastEntry(): Promise<LogEntry | undefined> {
    const last = await super.lastEntry();
    if (!last) return undefined;
    const seen = this.visible(await super.readEntries(1, last.seq));
    return seen[seen.length - 1];
  }
  override async readEntries(from: number, to: number): Promise<LogEntry[]> {
    return this.visible(await super.readEntries(from, to));
  }
}

describe('a flush right after a batch, with log reads that lag behind the writes', () => {
  it("closes the batch's sessions: the flush is placed after the batch in the log and every shard applies both", async () => {
    const stack = await startTestStack({ notifications: false });
    try {
      const etags = await putSeed(stack, 2);
      const store = stateStore(stack.clients, stack.config, LaggingStore);
      const objects = new S3ObjectStore(stack.clients.s3);
      const batcher = new Pipeline({ config: stack.config, store, objects });
      const flusher = new Pipeline({ config: stack.config, store, objects });

      // act: the batch is ingested (not yet applied anywhere), a flush comes right after it
      const ingested = await batcher.ingest({
        bucket: stack.config.visitsBucket,
        key: SEED[0]!.key,
        etag: etags[0],
      });
      const flush = await flusher.flush('right-after');
      await batcher.processObjects([
        { bucket: stack.config.visitsBucket, key: SEED[1]!.key, etag: etags[1] },
      ]);
      await flusher.flush('end');

      // assert: the first flush closed batch 1's three users; batch 2's visits, within the gap of those flushed
      // sessions, are late (they would belong to sessions already written)
      assert.equal(ingested.entry?.seq, 1);
      assert.equal(flush.catchUp.target, 2);
      assert.equal(flush.catchUp.sessionsClosed, 3);
      const sessions = await readRecords(stack, 'sessions/');
      assert.deepEqual(sessions.map((s) => [s.user_id, s.visit_count]).sort(), [
        ['1', 2],
        ['2', 1],
        ['3', 1],
      ]);
      assert.equal((await readRecords(stack, 'late-visits/')).length, 4);
    } finally {
      await stack.stop();
    }
  });
});

describe('a failed attempt whose writes are still in flight when its retry starts in the same container', () => {
  it('cannot overwrite what the retry wrote: outputs equal a clean run, each session once', async () => {
    const clean = await cleanRun();
    const stack = await startTestStack({
      notifications: false,
      now: new TestClock(Date.UTC(2026, 1, 16, 8, 0, 0)).now,
    });
    try {
      const etags = await putSeed(stack);
      const events = SEED.map((f, i) => s3Batch(stack.config.visitsBucket, [{ key: f.key, etag: etags[i] }]));
      // during batch 3's first attempt: every write of a head, and of an output object, waits 300 ms before it is
      // sent; the second head write fails at once, so the attempt fails while the others are on their way
      let stale = false;
      let heads = 0;
      const landed: string[] = [];
      stack.clients.ddb.middlewareStack.add(
        (next) => async (args) => {
          const item = (args.input as { Item?: { pk?: string; sk?: string } }).Item;
          if (stale && item?.sk === 'head') {
            if (++heads === 2) throw new Error('injected failure of one shard');
            await new Promise((r) => setTimeout(r, 300));
            try {
              return await next(args);
            } finally {
              landed.push(String(item.pk)); // sent after its attempt failed (and refused: its version is gone)
            }
          }
          return next(args);
        },
        { step: 'initialize', name: 'staleHeads' },
      );
      await stack.invoke(events[0]);
      await stack.invoke(events[1]);

      stale = true;
      await assert.rejects(stack.invoke(events[2]), /injected failure/);
      stale = false;
      await stack.invoke(events[2]); // the retry, while the first attempt's writes are still in flight
      await new Promise((r) => setTimeout(r, 700));
      await stack.invoke({ action: 'flush', id: 'final' });

      assert.ok(landed.length > 0, 'writes of the failed attempt were sent after it failed');
      assert.deepEqual(await snapshotOutputs(stack), clean.outputs);
    } finally {
      await stack.stop();
    }
  });
});
