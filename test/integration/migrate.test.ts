/**
 * `migrate` (cli/migrate/) on state written by the first layout's code: test/fixtures/v1-state/ holds every item
 * and output that the v1 pipeline (commit 53639eb) left after six batches, a complete flush and a flush that crashed
 * after writing one of its two session objects (see its README). The fixture is loaded into a fresh local stack,
 * migrated, and then run on by the layout-2 pipeline.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CreateTableCommand } from '@aws-sdk/client-dynamodb';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { BatchWriteCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { describeReport } from '../../cli/migrate/command.ts';
import { MIGRATION_ENTRY_ID, MigrateError, type MigrateReport, migrate } from '../../cli/migrate/index.ts';
import type { LocalStack } from '../../infra/local/stack.ts';
import { type Clients, createClients } from '../../lambdas/adapters/clients.ts';
import { normalizeEtag, S3ObjectStore } from '../../lambdas/adapters/s3.ts';
import type { Config } from '../../lambdas/config.ts';
import { decodeDelta, decodeSnapshot, replayStep } from '../../lambdas/core/parts.ts';
import { ShardState } from '../../lambdas/core/shard-state.ts';
import { shardOf } from '../../lambdas/core/shards.ts';
import {
  type IngestResult,
  type ObjectsSummary,
  Pipeline,
  type ScheduledSummary,
} from '../../lambdas/pipeline/index.ts';
import { LayoutError } from '../../lambdas/pipeline/state-store.ts';
import { startTestStack } from '../helpers/local.ts';
import { type RefVisit, referenceSessionize, sessionsFromJsonLines } from '../helpers/reference.ts';
import { errorOf } from '../helpers/steps.ts';
import { partObjects, stateStore } from '../helpers/store.ts';

type Item = Record<string, unknown>;
interface FixtureObject {
  readonly key: string;
  readonly body: string;
  readonly etag?: string;
}

const FIXTURE = join(import.meta.dirname, '..', 'fixtures', 'v1-state');
const readJson = <T>(name: string): T => JSON.parse(readFileSync(join(FIXTURE, name), 'utf8')) as T;
const TABLE = readJson<{ items: Item[] }>('table.json').items;
const OUTPUTS = readJson<{ objects: FixtureObject[] }>('outputs.json').objects;
const VISITS = readJson<{ bucket: string; objects: FixtureObject[] }>('visits.json');

/** The fixture's times: 2026-02-14 at h:m UTC (hours from 24 on are on 2026-02-15). */
const t = (h: number, m: number): number => Date.UTC(2026, 1, 14, h, m);
const iso = (ms: number) => new Date(ms).toISOString();
const SHARDS = 4;
const V1_WATERMARK = t(24, 25);
const INTERRUPTED_RUN = 'f-halt';

/** A chunk item without a commit (a v1 write that failed): never read by v1, so never pending. */
const ORPHAN_CHUNK: Item = {
  pk: 'user#p2',
  sk: 'chunk#0123456789abcdef0123:0-0',
  v: JSON.stringify([[t(24, 33), 'orphan.html']]),
  min: t(24, 33),
  max: t(24, 33),
  n: 1,
};

/** The pending sessions v1 left, per user: [start, end, visits]. */
const EXPECTED_PENDING: Record<string, [number, number, number][]> = {
  g1: [[t(24, 10), t(24, 30), 16]], // 15 visits in a chunk item, 1 inline
  m1: [[t(24, 35), t(24, 35), 1]], // after the session the interrupted flush froze
  p1: [[t(24, 20), t(24, 30), 2]],
  p2: [[t(24, 31), t(24, 31), 1]],
  p3: [
    [t(23, 55), t(23, 55), 1],
    [t(24, 40), t(24, 40), 1],
  ],
};

/** Users whose last closed session ends within gap of the v1 watermark: a visit within gap of it stays late. */
const EXPECTED_FLUSHED: Record<string, number> = {
  f1: t(23, 50), // closed by the complete flush
  m1: t(23, 45), // frozen by the interrupted flush: exactly gap below the watermark
  s1: t(23, 48),
  s2: t(24, 5),
  s3: t(23, 47),
};

/** Sums of the v1 markers. */
const V1_TOTALS = { lines: 58, visits: 55, accepted: 49, duplicates: 2, late: 4, rejected: 3 };

async function createTable(clients: Clients, table: string): Promise<void> {
  await clients.ddb.send(
    new CreateTableCommand({
      TableName: table,
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
      AttributeDefinitions: [
        { AttributeName: 'pk', AttributeType: 'S' },
        { AttributeName: 'sk', AttributeType: 'S' },
      ],
      BillingMode: 'PAY_PER_REQUEST',
    }),
  );
}

async function putItems(clients: Clients, table: string, items: readonly Item[]): Promise<void> {
  for (let i = 0; i < items.length; i += 25) {
    const requests = items.slice(i, i + 25).map((Item) => ({ PutRequest: { Item } }));
    const out = await clients.ddb.send(new BatchWriteCommand({ RequestItems: { [table]: requests } }));
    assert.equal(Object.keys(out.UnprocessedItems ?? {}).length, 0);
  }
}

async function scan(clients: Clients, table: string): Promise<Item[]> {
  const items: Item[] = [];
  let start: Item | undefined;
  do {
    const out = await clients.ddb.send(
      new ScanCommand({
        TableName: table,
        ConsistentRead: true,
        ...(start ? { ExclusiveStartKey: start } : {}),
      }),
    );
    items.push(...(out.Items ?? []));
    start = out.LastEvaluatedKey;
  } while (start);
  return items;
}

/** The layout-2 state as stored: each shard's pending sessions and flushed ends, read back through the store. */
async function readState(clients: Clients, config: Config) {
  const store = stateStore(clients, config); // a fresh store: no cached parts
  const heads = await store.getHeads(Array.from({ length: config.shards }, (_, i) => i));
  const pending: Record<string, [number, number, number][]> = {};
  const flushed: Record<string, number> = {};
  const misplaced: string[] = [];
  for (const head of heads) {
    const state = new ShardState(config.session);
    for (const part of head.parts) {
      const bytes = await store.readPart(head.shard, part);
      if (part.kind === 'snapshot') decodeSnapshot(bytes, state);
      else for (const step of decodeDelta(bytes)) replayStep(state, step);
    }
    for (const u of state.snapshot()) {
      if (shardOf(u.user, config.shards) !== head.shard) misplaced.push(u.user);
      if (u.flushedThrough !== undefined) flushed[u.user] = u.flushedThrough;
      if (u.sessions.length > 0) pending[u.user] = u.sessions.map((s) => [s.start, s.end, s.visits.length]);
    }
  }
  return { heads, pending, flushed, misplaced, tail: await store.lastEntry() };
}

/** Every object under a prefix of the output bucket, key to body. */
async function outputs(stack: LocalStack, prefix: string): Promise<Map<string, string>> {
  const objects = new S3ObjectStore(stack.clients.s3);
  const out = new Map<string, string>();
  for (const o of await objects.listAll(stack.config.outputBucket, prefix)) {
    out.set(o.key, await objects.getText(stack.config.outputBucket, o.key));
  }
  return out;
}

const lines = (texts: Iterable<string>) =>
  [...texts].flatMap((text) => text.split('\n').filter((l) => l !== ''));

/** Loads the fixture into `table` (made here unless it is the stack's own), with `edit` applied to its items. */
async function loadFixture(stack: LocalStack, table: string, edit: (items: Item[]) => Item[] = (i) => i) {
  if (table !== stack.config.table) await createTable(stack.clients, table);
  await putItems(stack.clients, table, edit([...TABLE, ORPHAN_CHUNK]));
}

describe('migrate: the first state layout to layout 2, on state written by the v1 code', () => {
  let stack: LocalStack;
  let config: Config;
  const etags = new Map<string, string>();
  /** A file after the migration: a visit within gap of a session v1 closed (f1), and one further on (c1). */
  const AFTER_MIGRATE = 'visits/2026-02-15/after-migrate.jsonl';
  const afterMigrateBody =
    `${JSON.stringify({ user_id: 'f1', visit_time: iso(t(24, 26)), page: 'late.html' })}\n` +
    `${JSON.stringify({ user_id: 'c1', visit_time: iso(t(24, 26)), page: 'back.html' })}\n`;
  /**
   * The fixture loaded, then each step of its migration and of the pipeline running on after it, in order: what
   * each step returned and left, recorded by `before`.
   */
  const run = {} as {
    /** What the layout-2 pipeline threw on an object before migrate. */
    refusedBeforeMigrate: unknown;
    /** A dry run, and the number of items before and after it. */
    itemsBeforeDryRun: number;
    dryRun: MigrateReport;
    itemsAfterDryRun: number;
    /** The migration, the state it left and the session objects after it. */
    report: MigrateReport;
    stateAfterMigrate: Awaited<ReturnType<typeof readState>>;
    sessionsAfterMigrate: Map<string, string>;
    /** Each object of the fixture delivered again, then a scheduled run. */
    redelivered: Map<string, IngestResult>;
    scheduled: ScheduledSummary;
    /** The file above processed, the late visits and the pending sessions of c1 after it. */
    afterMigrate: ObjectsSummary;
    lateAfterFile: Record<string, unknown>[];
    pendingOfC1: [number, number, number][] | undefined;
    /** A flush: the session and late-visit lines after it, and every input object's text. */
    sessionLines: string[];
    lateLines: string[];
    inputs: { key: string; text: string }[];
    /** What a second migrate threw. */
    refusedSecondRun: unknown;
  };

  before(async () => {
    stack = await startTestStack({ notifications: false, env: { SESSIONIZER_SHARDS: String(SHARDS) } });
    config = stack.config;
    assert.equal(config.visitsBucket, VISITS.bucket);
    await loadFixture(stack, config.table);
    const s3 = stack.clients.s3;
    for (const o of OUTPUTS)
      await s3.send(new PutObjectCommand({ Bucket: config.outputBucket, Key: o.key, Body: o.body }));
    for (const o of VISITS.objects) {
      const out = await s3.send(
        new PutObjectCommand({ Bucket: config.visitsBucket, Key: o.key, Body: o.body }),
      );
      etags.set(o.key, normalizeEtag(out.ETag));
    }
    const store = stateStore(stack.clients, config);
    const pipeline = new Pipeline({ config, store, objects: new S3ObjectStore(s3) });

    run.refusedBeforeMigrate = await errorOf(() =>
      pipeline.ingest({ bucket: config.visitsBucket, key: VISITS.objects[0]!.key }),
    );

    run.itemsBeforeDryRun = (await scan(stack.clients, config.table)).length;
    run.dryRun = await migrate({ clients: stack.clients, config, dryRun: true });
    run.itemsAfterDryRun = (await scan(stack.clients, config.table)).length;

    run.report = await migrate({ clients: stack.clients, config });
    run.stateAfterMigrate = await readState(stack.clients, config);
    run.sessionsAfterMigrate = await outputs(stack, 'sessions/');

    run.redelivered = new Map();
    for (const o of VISITS.objects) {
      run.redelivered.set(
        o.key,
        await pipeline.ingest({ bucket: config.visitsBucket, key: o.key, etag: etags.get(o.key)! }),
      );
    }
    run.scheduled = await pipeline.scheduled('after-migrate');

    const out = await s3.send(
      new PutObjectCommand({ Bucket: config.visitsBucket, Key: AFTER_MIGRATE, Body: afterMigrateBody }),
    );
    run.afterMigrate = await pipeline.processObjects([
      { bucket: config.visitsBucket, key: AFTER_MIGRATE, etag: normalizeEtag(out.ETag) },
    ]);
    run.lateAfterFile = lines((await outputs(stack, 'late-visits/')).values()).map((l) => JSON.parse(l));
    run.pendingOfC1 = (await readState(stack.clients, config)).pending.c1;

    await pipeline.flush('end');
    run.sessionLines = lines((await outputs(stack, 'sessions/')).values());
    run.lateLines = lines((await outputs(stack, 'late-visits/')).values());
    const inputs = new S3ObjectStore(s3);
    run.inputs = [];
    for (const o of await inputs.listAll(config.visitsBucket, 'visits/'))
      run.inputs.push({ key: o.key, text: await inputs.getText(config.visitsBucket, o.key) });

    run.refusedSecondRun = await errorOf(() => migrate({ clients: stack.clients, config }));
  });

  after(async () => {
    await stack?.stop();
  });

  it('before migrate, the layout-2 pipeline refuses the table', () => {
    const refused = run.refusedBeforeMigrate;

    assert.ok(refused instanceof LayoutError, `expected a LayoutError, got ${String(refused)}`);
  });

  it('a dry run plans the migration and writes nothing', () => {
    const dry = run.dryRun;

    assert.equal(dry.pendingSessions, 6);
    assert.equal(dry.layoutId, undefined);
    assert.deepEqual(run.itemsAfterDryRun, run.itemsBeforeDryRun);
  });

  it('moves every pending v1 session to its layout-2 shard, with the v1 watermark and totals', () => {
    const { report, stateAfterMigrate: state } = run;

    assert.deepEqual(state.pending, EXPECTED_PENDING);
    assert.deepEqual(state.flushed, EXPECTED_FLUSHED);
    assert.deepEqual(state.misplaced, []);
    assert.equal(report.watermark, V1_WATERMARK);
    assert.deepEqual([report.users, report.pendingUsers, report.pendingSessions], [14, 5, 6]);
    assert.deepEqual([report.markers, report.ignoredChunks, report.redone], [6, 1, 0]);
    assert.deepEqual(
      state.heads.map((h) => [h.shard, h.version, h.applied, h.watermark, h.unpublished]),
      Array.from({ length: SHARDS }, (_, s) => [s, 1, 1, V1_WATERMARK, false]),
    );
    assert.equal(
      state.heads.reduce((a, h) => a + h.pendingSessions, 0),
      6,
    );
    const tail = state.tail!;
    assert.deepEqual(
      [
        tail.seq,
        tail.kind,
        tail.id,
        iso(tail.after),
        tail.totals.lines,
        tail.totals.visits,
        tail.totals.rejected,
      ],
      [
        1,
        'advance',
        MIGRATION_ENTRY_ID,
        iso(V1_WATERMARK),
        V1_TOTALS.lines,
        V1_TOTALS.visits,
        V1_TOTALS.rejected,
      ],
    );
    // what `status` adds up: lines = visits + rejected, visits = accepted + duplicates + late
    const sum = (k: 'accepted' | 'duplicates' | 'late') => state.heads.reduce((a, h) => a + h.totals[k], 0);
    assert.deepEqual(
      { accepted: sum('accepted'), duplicates: sum('duplicates'), late: sum('late') },
      { accepted: V1_TOTALS.accepted, duplicates: V1_TOTALS.duplicates, late: V1_TOTALS.late },
    );
    assert.equal(tail.totals.lines, tail.totals.visits + tail.totals.rejected);
    assert.deepEqual(state.heads[0]!.totals, {
      accepted: V1_TOTALS.accepted,
      duplicates: V1_TOTALS.duplicates,
      late: V1_TOTALS.late,
      // 5 by v1's batch closings (v1 counted them in its markers; not its flushes'), 4 by the flush migrate finished
      sessionsClosed: 9,
    });
    assert.deepEqual(
      describeReport(report).filter((l) => l.startsWith('closing')),
      ['closing f-halt: 4 sessions of 4 users, written in 2 objects'],
    );
  });

  it("finishes the interrupted v1 closing: its sessions written once, under v1's keys and bytes", () => {
    const written = run.sessionsAfterMigrate;
    const ofRun = [...written].filter(([key]) => key.includes(`/${INTERRUPTED_RUN}-`));
    const before = OUTPUTS.filter((o) => o.key.includes(`/${INTERRUPTED_RUN}-`));
    assert.equal(before.length, 1, 'the fixture holds one of the two objects of the crashed flush');
    assert.equal(
      written.get(before[0]!.key),
      before[0]!.body,
      'the object written before the crash is unchanged',
    );
    assert.equal(ofRun.length, 2);

    const sessions = lines(ofRun.map(([, body]) => body)).map(
      (l) => JSON.parse(l) as Record<string, unknown>,
    );
    assert.deepEqual(sessions.map((s) => `${s.user_id} ${s.start_time} ${s.visit_count}`).sort(), [
      `m1 ${iso(t(23, 45))} 1`,
      `s1 ${iso(t(23, 40))} 2`,
      `s2 ${iso(t(24, 1))} 2`,
      `s3 ${iso(t(23, 36))} 12`,
    ]);
    // the key of the object v1 never wrote, as v1 names it: run, group, digest of its sessions
    const digest = createHash('sha256')
      .update(`s2\u0000${t(24, 1)}\n`)
      .digest('hex')
      .slice(0, 12);
    assert.ok(written.has(`sessions/dt=2026-02-15/${INTERRUPTED_RUN}-00000-${digest}.jsonl`));
    assert.deepEqual(run.report.closings, [
      {
        run: INTERRUPTED_RUN,
        users: 4,
        sessions: 4,
        writtenBefore: false,
        objects: ofRun.map(([k]) => k).sort(),
      },
    ]);
  });

  it('an object v1 processed, delivered again, is a duplicate; the listing skips them all', () => {
    for (const o of VISITS.objects) {
      assert.equal(etags.get(o.key), o.etag, `${o.key} has the ETag v1 saw`);
      const result = run.redelivered.get(o.key);
      assert.equal(result?.outcome, 'duplicate', o.key);
    }
    assert.deepEqual(run.scheduled.ingested, []);
  });

  it('a visit within gap of a session v1 closed is late; one further on is pending', () => {
    const done = run.afterMigrate;

    assert.deepEqual([done.catchUp.accepted, done.catchUp.late], [1, 1]);
    const f1 = run.lateAfterFile.find((l) => l.user_id === 'f1' && l.visit_time === iso(t(24, 26)));
    assert.equal(f1?.watermark, iso(t(23, 50) + 40 * 60_000 + 1));
    assert.deepEqual(run.pendingOfC1, [[t(24, 26), t(24, 26), 1]]);
  });

  it('after a flush, the sessions written equal the batch sessionization of every non-late visit, each once', () => {
    const written = run.sessionLines;
    const ids = written.map((l) => String(JSON.parse(l).session_id));
    assert.equal(new Set(ids).size, ids.length, 'a session was written twice');

    // the reference: every valid visit of every input (v1's and the one above), less those reported late
    const late = new Set(
      run.lateLines.map((l) => {
        const r = JSON.parse(l);
        return `${r.source_object}#${r.source_line}`;
      }),
    );
    const visits: RefVisit[] = [];
    for (const o of run.inputs) {
      for (const [i, line] of o.text.split('\n').entries()) {
        let r: { user_id?: unknown; visit_time?: unknown; page?: unknown };
        try {
          r = JSON.parse(line);
        } catch {
          continue; // rejected (or the end)
        }
        const time = typeof r.visit_time === 'string' ? Date.parse(r.visit_time) : Number.NaN;
        if (typeof r.user_id !== 'string' || typeof r.page !== 'string' || Number.isNaN(time)) continue;
        if (late.has(`s3://${config.visitsBucket}/${o.key}#${i + 1}`)) continue;
        visits.push({ userId: r.user_id, t: time, page: r.page });
      }
    }
    assert.equal(late.size, V1_TOTALS.late + 1);
    assert.deepEqual(
      sessionsFromJsonLines(written.join('\n')),
      referenceSessionize(visits, config.session.gapMs, config.session.maxSessionDurationMs),
    );
  });

  it('refuses to run a second time', () => {
    const e = run.refusedSecondRun;

    assert.ok(e instanceof MigrateError, `expected a MigrateError, got ${String(e)}`);
    assert.match(e.message, /already migrated/);
  });

  it('refuses a table where a v1 object is still in progress, naming it, and writes nothing', async () => {
    const table = 'v1-in-progress';
    const busy = VISITS.objects[3]!.key;
    await loadFixture(stack, table, (items) =>
      items.map((i) => (i.key === busy ? { ...i, st: 'in-progress', lease: Date.now() } : i)),
    );
    const before = await scan(stack.clients, table);
    await assert.rejects(
      () => migrate({ clients: stack.clients, config: { ...config, table } }),
      (e: Error) => {
        assert.ok(e instanceof MigrateError);
        assert.match(e.message, /1 object\(s\) are still in progress/);
        assert.ok(e.message.includes(`s3://${config.visitsBucket}/${busy}`), e.message);
        return true;
      },
    );
    assert.equal((await scan(stack.clients, table)).length, before.length);
  });

  it('a migrate that died after any call is redone cleanly by the next run', async (t) => {
    // the calls a whole run makes, counted on a clean run of its own
    const counting = faultyClients(stack, Number.POSITIVE_INFINITY);
    await loadFixture(stack, 'v1-count');
    await migrate({ clients: counting.clients, config: { ...config, table: 'v1-count' } });
    const calls = counting.calls();
    assert.ok(calls > 20, `a run makes ${calls} calls`);

    for (const k of [1, 2, 5, Math.floor(calls / 2), calls - 3, calls - 1]) {
      const table = `v1-crash-${k}`;
      await loadFixture(stack, table);
      const crashing = faultyClients(stack, k);
      await assert.rejects(
        () => migrate({ clients: crashing.clients, config: { ...config, table } }),
        /crashed/,
      );
      await crashing.settled();
      const redo = await migrate({ clients: stack.clients, config: { ...config, table } });
      const state = await readState(stack.clients, { ...config, table });

      assert.deepEqual([state.pending, state.flushed], [EXPECTED_PENDING, EXPECTED_FLUSHED], `crash at ${k}`);
      assert.equal(state.tail?.seq, 1, `crash at ${k}`);
      const items = await scan(stack.clients, table);
      const parts = partObjects(stack.clients, { ...config, table });
      const named = state.heads.flatMap((h) => h.parts.map((p) => parts.key(h.shard, p.id)));
      assert.deepEqual(await parts.keys(), named.sort(), `crash at ${k}: parts no head names, or missing`);
      assert.equal(items.filter((i) => String(i.pk).startsWith('claim#')).length, 7, `crash at ${k}`);
      assert.equal(redo.pendingSessions, 6);
      t.diagnostic(`crash after call ${k} of ${calls}: the next run replaced ${redo.redone} items`);
      if (k > calls / 2) assert.ok(redo.redone > 0, `crash at ${k}: nothing to redo?`);
    }
  });
});

/** Clients whose process "dies" right after its `k`th AWS call: that call's effect happens, it and all later fail. */
function faultyClients(
  stack: LocalStack,
  k: number,
): { clients: Clients; calls: () => number; settled: () => Promise<void> } {
  const clients = createClients({
    region: stack.config.region,
    s3Endpoint: stack.config.s3Endpoint!,
    dynamodbEndpoint: stack.config.dynamodbEndpoint!,
  });
  let calls = 0;
  let inFlight = 0;
  const crash =
    (next: (args: unknown) => Promise<unknown>) =>
    async (args: unknown): Promise<unknown> => {
      const call = ++calls;
      if (call > k) throw new Error(`crashed before call ${call}`);
      inFlight++;
      try {
        const out = await next(args);
        if (call === k) throw new Error(`crashed after call ${call}`);
        return out;
      } finally {
        inFlight--;
      }
    };
  const step = { step: 'initialize', name: 'migrateCrash', priority: 'high' } as const;
  clients.s3.middlewareStack.add(crash as never, step);
  clients.ddb.middlewareStack.add(crash as never, step);
  // a dead process's calls already sent still land: wait for them before the next run starts
  const settled = async () => {
    while (inFlight > 0) await new Promise((r) => setTimeout(r, 5));
  };
  return { clients, calls: () => calls, settled };
}
