/** The table of `npm run bench` (stdout): the figures of bench/figures.ts, the targets, correctness and notes. */
import { describePrices, LAMBDA_MEMORY_MB } from '../cli/cost.ts';
import { formatTable } from '../cli/table.ts';
import { type BenchResults, type Derived, TARGET } from './figures.ts';
import type { GrowthRun } from './growth.ts';

type Row = [string, string, string];

const log = (line = ''): void => {
  process.stdout.write(`${line}\n`);
};
const int = (n: number): string => Math.round(n).toLocaleString('en-US');
const fixed = (n: number, digits: number): string => n.toFixed(digits);

function coreRows(r: BenchResults, d: Derived): Row[] {
  const { head, coreChild, comparison } = r.versus;
  const rounds = (xs: number[]) => xs.map((x) => x.toFixed(3)).join(', ');
  return [
    [
      'workload',
      `${int(r.workload.visits)} visits`,
      `${int(r.workload.users)} users, ${r.workload.files} files, seed ${r.workload.seed}, ${fixed(r.workload.bytes / 1024 ** 2, 1)} MiB of JSON Lines`,
    ],
    [
      'core visits/s',
      int(d.coreRate),
      `parse + split by shard + apply to each shard's state, one core, best of ${r.rounds} rounds (s: ${rounds(head.coreSeconds)}); ` +
        `in bench/core.ts: JSONL ${int(coreChild.visits_per_s)}, gzip ${int(coreChild.gzip_visits_per_s)}, CSV ${int(coreChild.csv_visits_per_s ?? Number.NaN)}, ` +
        `JSONL with the JSON output ${int(coreChild.with_output_visits_per_s ?? Number.NaN)}`,
    ],
    [
      'DuckDB visits/s',
      int(d.duckRate),
      `${head.duckdbThreads} threads, same semantics in one SQL statement, ${head.duckdbVersion}, best of ${r.rounds} (s: ${rounds(head.duckdbSeconds)})`,
    ],
    [
      'DuckDB 1 thread visits/s',
      int(d.duckOneRate),
      `best of ${r.rounds} (s: ${rounds(head.duckdbOneThreadSeconds)})`,
    ],
    [
      'core / DuckDB',
      `${fixed(d.coreRate / d.duckRate, 2)}x`,
      `one core against ${head.duckdbThreads} threads; median of the rounds ${fixed(d.medianRatio, 2)}x; against one thread ${fixed(d.coreRate / d.duckOneRate, 2)}x`,
    ],
    [
      'results_equal',
      String(comparison.equal),
      `${int(comparison.sessionsA)} sessions and ${int(comparison.lateA)} late (core) vs ${int(comparison.sessionsB)} and ${int(comparison.lateB)} (DuckDB)`,
    ],
  ];
}

function pipelineRows(r: BenchResults, d: Derived): Row[] {
  const stage = r.pipeline;
  const x = d.pipeline;
  if (!stage || !x) return [['pipeline', 'skipped', '--skip-pipeline']];
  const p = stage.run;
  const u = p.usage;
  const c = p.cost;
  const ph = p.phases;
  const cpu = p.serversCpuSeconds === null ? 'n/a' : fixed(p.serversCpuSeconds, 1);
  return [
    [
      'pipeline visits/s',
      int(x.visitsPerS),
      `${int(p.state.lines)} visits, ${p.files} files, s3rver + dynalite in another process; ${fixed(p.seconds, 1)} s from the queue's resume to the end of the flush (flush ${fixed(p.flushSeconds, 1)} s; uploads before, ${fixed(p.uploadSeconds, 1)} s)`,
    ],
    [
      'pipeline invocations',
      String(u.invocations),
      `queue batch size ${p.batchSize} (the deployed default), ${p.queueInvocations} queue invocation(s) + the flush; ${p.commits} commits, ${p.conflicts} conflicts, ${u.conditionFailures} failed conditional writes` +
        (p.retries > 0
          ? `; ${p.retries} invocation(s) failed and were retried: ${p.failures.join('; ')}`
          : ''),
    ],
    [
      'pipeline time',
      `${fixed(p.handlerCpuSeconds, 1)} CPU s`,
      `handler process CPU; servers ${cpu} CPU s (2 cores shared). Handler wall s: ingest ${fixed(ph.ingest, 1)} (staging ${fixed(ph.staging, 1)}), shard catch-up ${fixed(ph.catchUp, 1)}; ` +
        `summed over the shards caught up at once: applying entries ${fixed(ph.apply, 1)}, part and head writes ${fixed(ph.commitWrites, 1)}, publishing outputs ${fixed(ph.publish, 1)}`,
    ],
    [
      'pipeline sessions = core',
      String(stage.comparison.equal),
      `${int(stage.comparison.sessionsB)} written vs ${int(stage.comparison.sessionsA)} (reference driver), ${int(stage.comparison.lateB)} vs ${int(stage.comparison.lateA)} late`,
    ],
    [
      'DynamoDB WCU/visit',
      fixed(x.writeUnitsPerVisit, 4),
      `${int(u.writeUnits)} write units (ConsumedCapacity as dynalite returns it; failed conditional writes by DynamoDB's rounding)`,
    ],
    ['DynamoDB RCU/visit', fixed(x.readUnitsPerVisit, 5), `${int(u.readUnits)} read units`],
    [
      'S3 requests/file',
      fixed(x.s3PerFile, 2),
      `GET+HEAD ${fixed(u.s3Get / p.files, 2)}, PUT ${fixed(u.s3Put / p.files, 2)}, LIST ${fixed(u.s3List / p.files, 2)} (the handler's; flush included); SQS ${u.sqsRequests} requests`,
    ],
    [
      'handler ms/visit',
      fixed(x.handlerMsPerVisit, 4),
      `${fixed(u.handlerSeconds, 1)} s in the handler (the Lambda duration estimate, ${LAMBDA_MEMORY_MB} MB arm64)`,
    ],
    [
      'USD per million visits',
      fixed(c.total, 4),
      `DynamoDB W ${fixed(c.dynamoWrite, 4)} + R ${fixed(c.dynamoRead, 5)}, S3 ${fixed(c.s3, 4)}, Lambda ${fixed(c.lambdaCompute, 4)} + requests ${fixed(c.lambdaRequests, 6)}, SQS ${fixed(c.sqs, 5)}`,
    ],
  ];
}

function growthRows(r: BenchResults): Row[] {
  const g = r.growth;
  if (!g) return [['state growth', 'skipped', '--skip-growth']];
  const firstAndLast = (x: GrowthRun, which: 'writeUnitsPerVisit' | 'readUnitsPerVisit', digits: number) =>
    `files ${x.first.files} ${fixed(x.first[which], digits)}, ${x.last.files} ${fixed(x.last[which], digits)}`;
  const { long, pending } = g;
  const compactions = pending.compactions
    .map((c) => `file ${c.file} ${fixed(c.bytes / 1024, 0)} KB`)
    .join(', ');
  return [
    [
      '1,000-visit session WCU/visit',
      firstAndLast(long, 'writeUnitsPerVisit', 3),
      `one user, ${long.files} files of 20 visits a minute apart, one invocation each, ${long.perFile[0]?.commits} shard commits each (one shard has visits); write units per file: ${long.perFile.map((f) => f.writeUnits).join(' ')}`,
    ],
    [
      '1,000-visit session RCU/visit',
      firstAndLast(long, 'readUnitsPerVisit', 3),
      `read units per file: ${long.perFile.map((f) => f.readUnits).join(' ')}; flush ${fixed(long.flush.writeUnitsPerVisit, 3)} WCU/visit`,
    ],
    [
      `${int(pending.visits)} pending users WCU/visit`,
      firstAndLast(pending, 'writeUnitsPerVisit', 4),
      `one visit each within 10 minutes (nothing closes before the flush), ${pending.files} files, one invocation each; files without a compaction ${fixed(pending.steady.first, 4)} (first) and ${fixed(pending.steady.last, 4)} (last); ` +
        `compactions (a shard's whole state written again once its deltas outweigh it): ${compactions || 'none'}; per file: ${pending.perFile.map((f) => f.writeUnits).join(' ')}`,
    ],
    [
      `${int(pending.visits)} pending users RCU/visit`,
      firstAndLast(pending, 'readUnitsPerVisit', 5),
      `read units per file: ${pending.perFile.map((f) => f.readUnits).join(' ')}`,
    ],
    [
      'their flush, per visit',
      `WCU ${fixed(pending.flush.writeUnitsPerVisit, 5)}, RCU ${fixed(pending.flush.readUnitsPerVisit, 6)}`,
      `${int(pending.sessionsClosed)} sessions closed in ${fixed(pending.flush.seconds, 1)} s; the whole run ${fixed(pending.seconds, 1)} s`,
    ],
  ];
}

function concurrencyRows(r: BenchResults): Row[] {
  return (r.concurrency ?? []).map((l) => [
    `concurrency ${l.level} visits/s`,
    int(l.visitsPerS),
    `batches of ${l.batchSize}, ${l.invocations} invocations, ${fixed(l.seconds, 1)} s; ${l.commits} commits, ${l.conflicts} conflict retries, ` +
      `${l.conditionFailures} failed conditional writes; ${fixed(l.writeUnitsPerVisit, 4)} WCU/visit, $${fixed(l.usdPerMillionVisits, 4)}/M visits` +
      (l.retried > 0
        ? `; ${l.retried} invocation(s) failed and were retried: ${l.failures.join('; ')}`
        : '') +
      (l.errors.length > 0 ? `; ERRORS: ${l.errors.join('; ')}` : ''),
  ]);
}

function memoryRows(r: BenchResults): Row[] {
  const m = r.memory;
  if (!m) return [['memory', 'skipped', '--skip-memory']];
  const rows: Row[] = m.errors.map((e): Row => ['memory', 'FAILED', e]);
  const { wide, big } = m;
  if (wide) {
    const s = wide.run.sampledPeakMb;
    rows.push([
      'peak RSS, 1 GB wide object',
      `${fixed(wide.run.peakMb, 0)} MB`,
      `${fixed(wide.bytes / 1024 ** 3, 2)} GiB, ${int(wide.visits)} visits of ~${int(wide.bytes / wide.visits)} B, ${int(wide.users)} users; the handler child's own peak (VmHWM; ${wide.childRuntime}) ` +
        `after the object (${fixed(wide.run.seconds, 1)} s); after the flush ${fixed(wide.run.peakAfterFlushMb ?? Number.NaN, 0)} MB; handler loaded ${fixed(wide.run.loadedMb ?? Number.NaN, 0)} MB; ` +
        `sampled peaks: heap used ${s.heapUsed} MB, external ${s.external} MB; sessions = expected ${wide.sessions.equal}`,
    ]);
  }
  if (big) {
    const s = big.full.sampledPeakMb;
    rows.push(
      [
        'big object, one invocation',
        `${fixed(big.full.seconds, 1)} s, ${fixed(big.full.peakMb, 0)} MB`,
        `${fixed(big.bytes / 1024 ** 3, 2)} GiB, ${int(big.visits)} visits of ~${int(big.bytes / big.visits)} B, ${int(big.users)} users: ${int(big.visits / big.full.seconds)} visits/s; ` +
          `peak RSS (VmHWM) against Lambda's ${LAMBDA_MEMORY_MB} MB; sampled peaks: heap used ${s.heapUsed} MB, external ${s.external} MB; flush after it ${fixed(big.full.flushSeconds, 1)} s`,
      ],
      [
        'big object, rerun after a crash',
        `${fixed(big.rerun.seconds, 1)} s (${fixed((100 * big.rerun.seconds) / big.full.seconds, 0)}% of the full run)`,
        `the first child killed ${big.killedAfterSeconds === null ? '(never: it finished first)' : `after ${fixed(big.killedAfterSeconds, 1)} s`}; a fresh child with the same SQS event found ` +
          `${big.shardsFoundCommitted} of ${big.shards} shards already committed; its peak ${fixed(big.rerun.peakMb, 0)} MB`,
      ],
    );
  }
  return rows;
}

function bundleRows(r: BenchResults): Row[] {
  const { bundle, init, error } = r.bundle;
  return [
    [
      'bundle',
      bundle ? `${fixed(bundle.bytes / 1024, 0)} KB` : 'FAILED',
      bundle
        ? `esbuild ESM minified node22, AWS SDK bundled (+ ${fixed(bundle.mapBytes / 1024, 0)} KB source map)`
        : (error ?? ''),
    ],
    [
      'init (module load)',
      init ? `${fixed(init.medianMs, 0)} ms` : 'n/a',
      init ? `median of 5: ${init.samplesMs.map((x) => x.toFixed(0)).join(', ')} ms` : '',
    ],
  ];
}

function printTargets(r: BenchResults, d: Derived): void {
  const t = d.targets;
  const x = d.pipeline;
  const check = (ok: boolean | undefined, text: string) =>
    log(`  ${ok === undefined ? 'n/a ' : ok ? 'ok  ' : 'MISS'} ${text}`);
  log('Targets (reported, not enforced):');
  check(
    t.writeUnits,
    `DynamoDB write units/visit <= ${TARGET.unitsPerVisit}: ${x ? fixed(x.writeUnitsPerVisit, 4) : 'skipped'}`,
  );
  check(
    t.readUnits,
    `DynamoDB read units/visit <= ${TARGET.unitsPerVisit}: ${x ? fixed(x.readUnitsPerVisit, 5) : 'skipped'}`,
  );
  check(
    t.usd,
    `USD per million visits <= ${TARGET.usdPerMillion}: ${r.pipeline ? fixed(r.pipeline.run.cost.total, 4) : 'skipped'}`,
  );
  check(
    t.pipelineRate,
    `pipeline >= ${int(TARGET.pipelineVisitsPerS)} visits/s: ${x ? int(x.visitsPerS) : 'skipped'}`,
  );
  check(
    t.peakRss,
    `peak RSS, 1 GB wide object <= ${TARGET.peakRssMb} MB: ${d.peakRss === undefined ? 'skipped' : `${fixed(d.peakRss, 0)} MB`}`,
  );
  check(
    t.coreOverDuckDb,
    `core >= DuckDB, one core each: ${int(d.coreRate)} vs ${int(d.duckOneRate)} visits/s (${int(d.duckRate)} on ${r.versus.head.duckdbThreads} threads)`,
  );
  const g = r.growth;
  check(
    t.longSessionFlat,
    `1,000-visit session: WCU/visit does not grow (last 10 files <= first 10 x ${TARGET.growth}): ${g ? `${fixed(g.long.first.writeUnitsPerVisit, 3)} -> ${fixed(g.long.last.writeUnitsPerVisit, 3)}` : 'skipped'}`,
  );
  check(
    t.pendingUsersFlat,
    `pending users: WCU/visit does not grow (second half <= first half x ${TARGET.growth}, and files without a compaction): ${g ? `${fixed(g.pending.first.writeUnitsPerVisit, 4)} -> ${fixed(g.pending.last.writeUnitsPerVisit, 4)}, ${fixed(g.pending.steady.first, 4)} -> ${fixed(g.pending.steady.last, 4)}` : 'skipped'}`,
  );
}

function printNotes(r: BenchResults): void {
  log('Notes:');
  log('  Prices (on-demand list prices, us-east-1; cli/cost.ts, the table `sessionizer replay` uses):');
  for (const p of describePrices()) log(`    ${p}`);
  log(
    '  Usage is counted as `sessionizer replay` counts it (cli/usage.ts): every handler instance, the flush included; the uploads, ' +
      'the read-back and the checks are not. Lambda compute is an ESTIMATE from the handler wall time here: the servers run on the same 2 cores ' +
      '(their CPU competes; local round trips are far shorter than AWS ones).',
  );
  log(
    '  Not in the cost: S3 storage and data transfer, CloudWatch logs and metrics, the scheduled runs, the uploads.',
  );
  log(`  Total: ${fixed(r.seconds, 1)} s.`);
}

export function printReport(r: BenchResults, d: Derived): void {
  const rows = [
    ...coreRows(r, d),
    ...pipelineRows(r, d),
    ...growthRows(r),
    ...concurrencyRows(r),
    ...memoryRows(r),
    ...bundleRows(r),
  ];
  log(formatTable(['metric', 'value', 'notes'], rows, 400));
  log();
  printTargets(r, d);
  log();
  const cmp = r.versus.comparison;
  log(
    `Correctness: results_equal ${cmp.equal}${r.pipeline ? `, pipeline_results_equal ${r.pipeline.comparison.equal}` : ''}, ` +
      `conservation ${d.conservation.length === 0 ? 'ok' : 'FAILED'}`,
  );
  for (const c of d.conservation) log(`  ${c}`);
  for (const [label, c] of [
    ['core vs DuckDB', cmp],
    ['core vs pipeline', r.pipeline?.comparison],
  ] as const) {
    if (c && !c.equal)
      log(
        `  ${label}: only in core: ${c.onlyInA.join(' | ') || '-'}; only in the other: ${c.onlyInB.join(' | ') || '-'}`,
      );
  }
  log();
  printNotes(r);
}
