/**
 * Races between invocations on one shard (docs/design.md, sections 5.2 and 5.5), played out step by step on the
 * local servers: a second pipeline runs at the exact moment the first is between two calls.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import type { LocalStack } from '../../infra/local/stack.ts';
import { DynamoStateStore } from '../../lambdas/adapters/dynamo-store.ts';
import { S3ObjectStore } from '../../lambdas/adapters/s3.ts';
import { Pipeline } from '../../lambdas/pipeline/index.ts';
import type { PartRef, ShardHead } from '../../lambdas/pipeline/records.ts';
import { at, jsonl, putObject, readRecords, startTestStack, type VisitRow } from '../helpers/local.ts';
import { stateStore } from '../helpers/store.ts';

const ONE_SHARD = { SESSIONIZER_SHARDS: '1' };

/**
 * A store that runs `interleave` once, at one point of a catch-up: just before it reads a part (`part`), or right after
 * a shard's own read of its head (`head`: the second head read; the first is the catch-up's look at every head).
 */
class InterleavingStore extends DynamoStateStore {
  interleave: (() => Promise<void>) | undefined;
  at: 'part' | 'head' = 'part';
  partsWritten = 0;
  private headReads = 0;

  private async once(): Promise<void> {
    const run = this.interleave;
    this.interleave = undefined;
    await run?.();
  }
  override async readPart(shard: number, part: PartRef): Promise<Buffer> {
    if (this.at === 'part') await this.once();
    return super.readPart(shard, part);
  }
  override async getHeads(shards: readonly number[]): Promise<ShardHead[]> {
    const heads = await super.getHeads(shards);
    if (this.at === 'head' && ++this.headReads === 2) await this.once();
    return heads;
  }
  override async writePart(
    shard: number,
    kind: PartRef['kind'],
    version: number,
    bytes: Buffer,
  ): Promise<PartRef> {
    this.partsWritten++;
    return super.writePart(shard, kind, version, bytes);
  }
}

/** A store whose first commit that closes something fails right after its head is written (before publishing). */
class CrashAfterHeadStore extends DynamoStateStore {
  crashed = false;
  protected override async putHead(head: ShardHead, expected: number): Promise<boolean> {
    const ok = await super.putHead(head, expected);
    if (ok && head.unpublished && !this.crashed) {
      this.crashed = true;
      throw new Error('injected crash after the head write');
    }
    return ok;
  }
}

function pipelineOn(stack: LocalStack, store: DynamoStateStore): Pipeline {
  return new Pipeline({ config: stack.config, store, objects: new S3ObjectStore(stack.clients.s3) });
}

async function putVisits(stack: LocalStack, key: string, rows: readonly VisitRow[]) {
  return { bucket: stack.config.visitsBucket, key, etag: await putObject(stack, key, jsonl(rows)) };
}

describe('an unpublished head whose parts another invocation compacts away while they are read', () => {
  it('is read again instead of failing the invocation: each session is written once', async () => {
    const stack = await startTestStack({ notifications: false, env: ONE_SHARD });
    try {
      // arrange: pages that do not compress, so that the first delta stays under the 64 KiB that makes a commit
      // compact and the first two outweigh it; the second object closes the first one's 1,500 sessions, and its
      // commit crashes before publishing them
      const random = (hour: number, n: number, prefix: string): VisitRow[] =>
        Array.from({ length: n }, (_, i) => [
          `${prefix}${i}`,
          at(hour, 0, i % 600),
          randomBytes(24).toString('hex'),
        ]);
      const first = await putVisits(stack, 'visits/1.jsonl', random(8, 1500, 'u'));
      const closing = await putVisits(stack, 'visits/2.jsonl', random(11, 1000, 'w'));
      const third = await putVisits(stack, 'visits/3.jsonl', [['late-user', at(11, 1, 0), 'y']]);
      await pipelineOn(stack, stateStore(stack.clients, stack.config)).processObjects([first]);
      const crashing = pipelineOn(stack, stateStore(stack.clients, stack.config, CrashAfterHeadStore));
      await assert.rejects(crashing.processObjects([closing]), /injected crash/);
      const slow = stateStore(stack.clients, stack.config, InterleavingStore);
      const other = pipelineOn(stack, stateStore(stack.clients, stack.config));
      await other.ingest(third);
      // the other invocation publishes the head, commits entry 3 and compacts, just as the first reads the parts
      slow.interleave = async () => {
        await other.catchUp();
      };

      // act
      const summary = await pipelineOn(stack, slow).catchUp();

      // assert
      assert.equal(slow.interleave, undefined, 'the other invocation ran in between');
      assert.ok(summary.conflicts >= 1);
      const sessions = await readRecords(stack, 'sessions/');
      assert.equal(sessions.length, 1500);
      assert.equal(new Set(sessions.map((s) => s.user_id)).size, 1500);
      const [head] = await other.store.getHeads([0]);
      assert.equal(head?.parts[0]?.kind, 'snapshot', 'the other invocation compacted');
    } finally {
      await stack.stop();
    }
  });
});

describe('a commit that another invocation beats while it applies its entries', () => {
  it('writes no part of its own: it sees the new head before writing and goes on from there', async () => {
    const stack = await startTestStack({ notifications: false, env: ONE_SHARD });
    try {
      const object = await putVisits(stack, 'visits/1.jsonl', [
        ['a', at(8, 0, 0), 'p1'],
        ['b', at(8, 1, 0), 'p2'],
      ]);
      const loser = stateStore(stack.clients, stack.config, InterleavingStore);
      const winner = pipelineOn(stack, stateStore(stack.clients, stack.config));
      await winner.ingest(object);
      loser.at = 'head';
      loser.interleave = async () => {
        await winner.catchUp();
      };

      const summary = await pipelineOn(stack, loser).catchUp();

      assert.equal(loser.interleave, undefined, 'the winner ran in between');
      assert.equal(summary.conflicts, 1);
      assert.equal(summary.commits, 0);
      assert.equal(loser.partsWritten, 0);
      await winner.flush('end');
      assert.deepEqual((await readRecords(stack, 'sessions/')).map((s) => s.user_id).sort(), ['a', 'b']);
    } finally {
      await stack.stop();
    }
  });
});
