/**
 * `npm run bench`: the sessionizer against DuckDB, end to end through the local servers, memory, bundle, and a cost
 * model at on-demand list prices.
 *
 *   npm run bench -- [--visits N] [--users N] [--files N] [--seed N] [--pipeline-visits N]
 *                    [--memory-visits N] [--memory-users N] [--memory-mb N]
 *                    [--skip-pipeline] [--skip-memory] [--rounds N] [--json]
 *
 * A seeded workload (bench/workload.ts) is written as JSON Lines files to a temporary folder; then:
 *  - core: bench/core.ts in a child process (parse + sessionize, one core, no I/O; the JSON Lines output stage
 *    timed apart), for JSON Lines, gzip JSON Lines and CSV;
 *  - core and DuckDB head to head, in turns (--rounds, default 5), in a child process of their own
 *    (bench/head-to-head.ts): one core pass over the JSON Lines, then one run of the SQL with the pipeline's exact
 *    semantics over the same files (timed until its result is in DuckDB; the conversion of the rows to JavaScript
 *    timed apart, not counted); the best of each is the figure, and the core's sessions are compared with DuckDB's
 *    (sorted (user_id, start, end, visit_count) lists and the late count);
 *  - bundle: the Lambda bundle as CDK builds it, its size and module load time;
 *  - pipeline: the first files (up to --pipeline-visits visits) replayed through s3rver and dynalite, each event
 *    handled before the next upload, then a flush: throughput, DynamoDB units, S3 requests, cost per million
 *    visits, and its sessions compared with the core's for the same files;
 *  - a 1,000-visit session of one user over 50 small files: write units per visit must not grow with its length;
 *  - memory: the handler in a child process on one ~1 GB object of wide records.
 * Defaults: 1,000,000 visits, 50,000 users, 100 files, seed 42; --pipeline-visits 100,000 (or a tenth of --visits
 * when that is less); memory: 500,000 visits of 5,000 users in a 1,024 MiB object.
 * Progress goes to stderr; the table to stdout; with --json, one JSON object as the last stdout line.
 */
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { progress } from '../cli/progress.ts';
import { formatTable } from '../cli/table.ts';
import { type Bundle, buildBundle, measureInit } from './bundle.ts';
import type { HeadToHead } from './head-to-head.ts';
import { costPerMillionVisits, describePrices, LAMBDA_MEMORY_MB, PRICES } from './cost.ts';
import { type Comparison, compareSessions, coreSessions, runDuckDb } from './duckdb.ts';
import { type MemoryRun, runMemory } from './memory.ts';
import { type LongSessionRun, type PipelineRun, runLongSession, runPipeline } from './pipeline.ts';
import { generateVisits, positiveInt, renderFiles, WORKLOAD_ARGS, workloadArgs } from './workload.ts';

const run = promisify(execFile);
const CORE_SCRIPT = fileURLToPath(new URL('./core.ts', import.meta.url));
const HEAD_TO_HEAD_SCRIPT = fileURLToPath(new URL('./head-to-head.ts', import.meta.url));

const log = (line = ''): void => {
  process.stdout.write(`${line}\n`);
};
const note = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

const int = (n: number): string => Math.round(n).toLocaleString('en-US');
const fixed = (n: number, digits: number): string => n.toFixed(digits);
const round = (n: number, digits: number): number => Number(n.toFixed(digits));

interface CoreChild {
  visits_per_s: number;
  gzip_visits_per_s: number;
  csv_visits_per_s?: number;
  conservation_ok?: boolean;
  sessions?: number;
  late?: number;
  [key: string]: unknown;
}

async function runCoreChild(args: { visits: number; users: number; files: number; seed: number }): Promise<{
  result: CoreChild;
  exitCode: number;
}> {
  const argv = [
    '--import',
    'tsx',
    CORE_SCRIPT,
    '--visits',
    String(args.visits),
    '--users',
    String(args.users),
    '--files',
    String(args.files),
    '--seed',
    String(args.seed),
    '--json',
  ];
  let stdout: string;
  let exitCode = 0;
  try {
    ({ stdout } = await run(process.execPath, argv, { maxBuffer: 64 * 1024 * 1024 }));
  } catch (error) {
    // bench/core.ts exits 1 when conservation fails, still printing its JSON line
    const e = error as { stdout?: string; code?: number; stderr?: string };
    if (!e.stdout) throw new Error(`bench/core.ts failed: ${e.stderr ?? String(error)}`);
    stdout = e.stdout;
    exitCode = typeof e.code === 'number' ? e.code : 1;
  }
  const last = stdout.trim().split('\n').pop() ?? '';
  try {
    return { result: JSON.parse(last) as CoreChild, exitCode };
  } catch {
    throw new Error(`bench/core.ts: no JSON line at the end of its output:\n${stdout.slice(-2000)}`);
  }
}

/** bench/head-to-head.ts in a child process (its progress on our stderr); its JSON result. */
async function runHeadToHead(rounds: number, paths: readonly string[]): Promise<HeadToHead> {
  const child = spawn(process.execPath, ['--import', 'tsx', HEAD_TO_HEAD_SCRIPT, String(rounds), ...paths], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let stdout = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (text: string) => {
    stdout += text;
  });
  const [code] = (await once(child, 'close')) as [number | null];
  if (code !== 0) throw new Error(`bench/head-to-head.ts exited with ${code}`);
  return JSON.parse(stdout.trim().split('\n').pop() ?? '') as HeadToHead;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      ...WORKLOAD_ARGS,
      'pipeline-visits': { type: 'string' },
      'memory-visits': { type: 'string' },
      'memory-users': { type: 'string' },
      'memory-mb': { type: 'string' },
      'skip-memory': { type: 'boolean', default: false },
      'skip-pipeline': { type: 'boolean', default: false },
      rounds: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const { visits, users, files: fileCount, seed } = workloadArgs(values);
  // dynalite takes ~2.5 ms a visit: 100,000 visits by default, or a tenth of the workload when that is less (so a
  // scaled-down run stays short)
  const pipelineVisits = positiveInt(
    'pipeline-visits',
    values['pipeline-visits'],
    Math.min(100_000, Math.ceil(visits / 10)),
  );
  const memoryVisits = positiveInt('memory-visits', values['memory-visits'], 500_000);
  const memoryUsers = positiveInt('memory-users', values['memory-users'], 5_000);
  const memoryBytes = positiveInt('memory-mb', values['memory-mb'], 1024) * 1024 * 1024;
  const skipPipeline = values['skip-pipeline'];
  const rounds = positiveInt('rounds', values.rounds, 5);
  const skipMemory = values['skip-memory'];

  const startedAll = performance.now();
  const cpus = os.cpus();
  const machine = {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memory_gb: round(os.totalmem() / 1024 ** 3, 1),
    node: process.version,
    platform: `${os.platform()} ${os.arch()}`,
  };
  const dir = await mkdtemp(join(os.tmpdir(), 'sessionizer-bench-'));
  try {
    // ---- workload -------------------------------------------------------------------------------------------
    let t = performance.now();
    const table = generateVisits({ visits, users, files: fileCount, seed });
    const rendered = renderFiles(table, { format: 'jsonl' });
    const paths: string[] = [];
    let workloadBytes = 0;
    for (const f of rendered) {
      const path = join(dir, f.name);
      await writeFile(path, f.bytes);
      paths.push(path);
      workloadBytes += f.bytes.length;
    }
    const records = rendered.map((f) => f.records);
    rendered.length = 0;
    note(
      `workload: ${int(table.count)} visits, ${int(users)} users, ${fileCount} files, seed ${seed}, ` +
        `${fixed(workloadBytes / 1024 ** 2, 1)} MiB in ${dir} (${fixed((performance.now() - t) / 1000, 1)} s)`,
    );

    // ---- core (child process) -------------------------------------------------------------------------------
    note('core: bench/core.ts in a child process...');
    t = performance.now();
    const core = await runCoreChild({ visits, users, files: fileCount, seed });
    note(`core: done in ${fixed((performance.now() - t) / 1000, 1)} s`);

    // ---- core and DuckDB head to head -----------------------------------------------------------------------
    // In turns, so that both see the same machine: on a shared host the speed drifts by 10-20% from minute to minute.
    note(`head to head: ${rounds} rounds of one core pass and one DuckDB run, in a child process...`);
    const head = await runHeadToHead(rounds, paths);
    const coreSeconds = head.coreSeconds;
    const duckSeconds = head.duckdbSeconds;
    const headErrors = head.errors;
    const ratios = coreSeconds.map((c, i) => duckSeconds[i]! / c).sort((a, b) => a - b);
    const medianRatio = ratios[Math.floor(ratios.length / 2)]!;
    // DuckDB's sessions for the comparison (one more run, not timed here)
    const duckResult = await runDuckDb(paths, 1);
    const duck = {
      ...duckResult,
      seconds: Math.min(...duckSeconds),
      threads: head.duckdbThreads,
      version: head.duckdbVersion,
    };
    note('the core in-process for the comparison of results...');
    const coreRef = await coreSessions(paths);
    const duckCompare = compareSessions(coreRef, duck);
    const coreCounts = coreRef.counts;
    const coreConservation =
      coreCounts.valid === coreCounts.accepted + coreCounts.duplicates + coreCounts.late &&
      coreCounts.sessionVisits === coreCounts.accepted;

    // ---- bundle ---------------------------------------------------------------------------------------------
    note('bundle: esbuild with the CDK options...');
    let bundle: Bundle | undefined;
    let init: { medianMs: number; samplesMs: number[] } | undefined;
    let bundleError: string | undefined;
    try {
      bundle = await buildBundle(join(dir, 'bundle'));
      init = await measureInit(bundle.file, 5);
    } catch (error) {
      bundleError = (error as Error).message;
      note(`bundle: FAILED: ${bundleError}`);
    }

    // ---- pipeline sample ------------------------------------------------------------------------------------
    let pipeline: PipelineRun | undefined;
    let pipelineCompare: Comparison | undefined;
    let sampleFiles = 0;
    let sampleVisits = 0;
    let longSession: LongSessionRun | undefined;
    if (!skipPipeline) {
      while (
        sampleFiles < paths.length &&
        (sampleFiles === 0 || sampleVisits + records[sampleFiles]! <= pipelineVisits)
      ) {
        sampleVisits += records[sampleFiles]!;
        sampleFiles++;
      }
      const sample = paths.slice(0, sampleFiles);
      note(
        `pipeline: the first ${sampleFiles} files (${int(sampleVisits)} visits) through s3rver + dynalite...`,
      );
      const bar = progress('pipeline', sampleFiles);
      pipeline = await runPipeline(sample, (_, b) =>
        bar.tick(`${int(b.visits)} visits, ${b.sessionsClosed} closed`),
      );
      bar.stop();
      pipelineCompare = compareSessions(await coreSessions(sample), {
        sessions: pipeline.sessions,
        late: pipeline.late,
      });
      note(`pipeline: ${fixed(pipeline.seconds, 1)} s`);

      note('session of 1,000 visits over 50 files...');
      longSession = await runLongSession({ visits: 1000, files: 50 });
      note(`session of 1,000 visits: ${fixed(longSession.seconds, 1)} s`);
    }

    // ---- memory ---------------------------------------------------------------------------------------------
    let memory: MemoryRun | undefined;
    if (!skipMemory) {
      memory = await runMemory({
        dir,
        visits: memoryVisits,
        users: memoryUsers,
        seed,
        bytes: memoryBytes,
        ...(bundle ? { handlerModule: bundle.file } : {}),
      });
      note(`memory: ${fixed(memory.batchSeconds + memory.flushSeconds, 1)} s in the handler`);
    }

    // ---- figures --------------------------------------------------------------------------------------------
    const duckdbRate = table.count / duck.seconds;
    const duckdbOneThreadRate = table.count / Math.min(...head.duckdbOneThreadSeconds);
    const perVisit = (n: number) => (pipeline ? n / pipeline.lines : Number.NaN);
    // the adapter's write units include its count of expiry-index writes (dynalite does not count them)
    const wcu = pipeline ? perVisit(pipeline.usage.writeUnits) : Number.NaN;
    const gsiWcu = pipeline ? perVisit(pipeline.usage.indexWriteUnits) : Number.NaN;
    const tableWcu = wcu - gsiWcu;
    const indexCheckOk = pipeline
      ? pipeline.usage.watchedIndexWriteUnits === pipeline.usage.indexWriteUnits
      : undefined;
    const rcu = pipeline ? perVisit(pipeline.usage.readUnits) : Number.NaN;
    const s3PerFile = pipeline
      ? (pipeline.usage.s3Get + pipeline.usage.s3Put + pipeline.usage.s3List) / pipeline.files
      : Number.NaN;
    const costSample = pipeline
      ? {
          visits: pipeline.lines,
          invocations: pipeline.files,
          writeUnits: pipeline.usage.writeUnits,
          readUnits: pipeline.usage.readUnits,
          s3Get: pipeline.usage.s3Get,
          s3Put: pipeline.usage.s3Put,
          s3List: pipeline.usage.s3List,
          handlerSeconds: pipeline.handlerSeconds,
        }
      : undefined;
    const cost = costSample ? costPerMillionVisits(costSample) : undefined;
    const costNoGsi = costSample
      ? costPerMillionVisits({
          ...costSample,
          writeUnits: pipeline!.usage.writeUnits - pipeline!.usage.indexWriteUnits,
        })
      : undefined;
    const longFirst = longSession ? longSession.firstWcuPerVisit : Number.NaN;
    const longSecond = longSession ? longSession.secondWcuPerVisit : Number.NaN;
    const longLast = longSession ? longSession.lastWcuPerVisit : Number.NaN;
    // not growing: the last 10 files cost no more than files 11-20 (the first files are cheaper: their visits still
    // fit in the head, with no chunk items), 5% tolerance
    const longFlat = longSession ? longLast <= longSecond * 1.05 : undefined;
    const longIndexCheckOk = longSession
      ? longSession.indexUnitsPerFile.every((u, i) => u === longSession!.watchedIndexUnitsPerFile[i])
      : undefined;
    const coreRate = Math.round(table.count / Math.min(...coreSeconds));
    const peakRss = memory?.batchMaxRssMb;

    const conservation: string[] = [];
    if (core.result.conservation_ok === false || core.exitCode !== 0)
      conservation.push('bench/core.ts reported a conservation failure');
    if (!coreConservation) conservation.push('core in-process: conservation failed');
    conservation.push(...headErrors);
    for (const e of pipeline?.conservationErrors ?? []) conservation.push(`pipeline: ${e}`);
    for (const e of memory?.conservationErrors ?? []) conservation.push(`memory: ${e}`);
    if (
      longSession &&
      (longSession.sessionsWritten !== 1 || longSession.sessionVisits !== longSession.visits)
    ) {
      conservation.push(
        `1,000-visit session: expected 1 session of ${longSession.visits} visits, got ${longSession.sessionsWritten} with ${longSession.sessionVisits} visits`,
      );
    }

    // ---- table ----------------------------------------------------------------------------------------------
    const na = 'n/a';
    const rows: [string, string, string][] = [
      [
        'machine',
        `${machine.cpu}, ${machine.cores} cores, ${machine.memory_gb} GiB`,
        `Node ${machine.node}, ${machine.platform}`,
      ],
      [
        'workload',
        `${int(table.count)} visits, ${int(users)} users, ${fileCount} files`,
        `seed ${seed}, ${int(table.lateInjected)} injected late, ${int(table.duplicatesInjected)} injected duplicates, ${fixed(workloadBytes / 1024 ** 2, 1)} MiB JSONL`,
      ],
      [
        'core visits/s (JSONL)',
        int(coreRate),
        `best of ${rounds} rounds head to head with DuckDB: one core, parse + sessionize + closing, no I/O`,
      ],
      [
        'DuckDB visits/s',
        int(duckdbRate),
        `best of ${rounds} rounds, ${fixed(duck.seconds, 3)} s, whole SQL incl. reading the files, result read into DuckDB (+ ${fixed(Math.min(...head.duckdbToJsSeconds), 3)} s more to convert it to JavaScript, not counted), ${duck.threads} threads, DuckDB ${duck.version}`,
      ],
      [
        'core / DuckDB',
        fixed(coreRate / duckdbRate, 2),
        `median of the rounds ${fixed(medianRatio, 2)} (rounds: core ${coreSeconds.map((x) => fixed(x, 2)).join(' ')} s; DuckDB ${duckSeconds.map((x) => fixed(x, 2)).join(' ')} s)`,
      ],
      [
        'core / DuckDB on one thread',
        fixed(coreRate / duckdbOneThreadRate, 2),
        `core for core (not the target, which is against DuckDB's default threads): DuckDB with threads = 1, ${int(duckdbOneThreadRate)} visits/s, best of the same rounds (${head.duckdbOneThreadSeconds.map((x) => fixed(x, 2)).join(' ')} s)`,
      ],
      [
        'core child: JSONL, gzip JSONL, CSV',
        `${int(core.result.visits_per_s)}, ${int(core.result.gzip_visits_per_s)}, ${int(core.result.csv_visits_per_s ?? Number.NaN)}`,
        'bench/core.ts in its own process, visits/s, best of 3 each',
      ],
      [
        'core child: with JSON Lines output',
        int(Number(core.result.with_output_visits_per_s)),
        `JSONL, the output stage (${fixed(Number(core.result.output_seconds), 2)} s: sessions, late and rejected records serialised) included`,
      ],
      [
        'results equal (core vs DuckDB)',
        String(duckCompare.equal),
        `${int(duckCompare.sessionsA)} vs ${int(duckCompare.sessionsB)} sessions, ${int(duckCompare.lateA)} vs ${int(duckCompare.lateB)} late`,
      ],
    ];
    if (pipeline && pipelineCompare) {
      rows.push(
        [
          'pipeline visits/s',
          fixed(pipeline.lines / pipeline.seconds, 0),
          `SAMPLE: first ${pipeline.files} of ${fileCount} files = ${int(pipeline.lines)} visits; ${fixed(pipeline.seconds, 1)} s incl. uploads + flush; s3rver + dynalite in another process`,
        ],
        [
          'pipeline sessions = core',
          String(pipelineCompare.equal),
          `${int(pipelineCompare.sessionsB)} written vs ${int(pipelineCompare.sessionsA)} core, ${int(pipelineCompare.lateB)} vs ${int(pipelineCompare.lateA)} late (same sample)`,
        ],
        [
          'DynamoDB WCU/visit',
          fixed(wcu, 3),
          `table ${fixed(tableWcu, 3)} (dynalite) + expiry index ${fixed(gsiWcu, 3)} (counted by the adapter; cross-check ${indexCheckOk ? 'agrees' : `DIFFERS: ${fixed(perVisit(pipeline.usage.watchedIndexWriteUnits), 3)}`})`,
        ],
        [
          'DynamoDB RCU/visit',
          fixed(rcu, 3),
          'GetItem/BatchGet as dynalite reports; Query units from item sizes (strong reads, 4 KB)',
        ],
        [
          'S3 requests/file',
          fixed(s3PerFile, 2),
          `GET+HEAD ${fixed(pipeline.usage.s3Get / pipeline.files, 2)}, PUT ${fixed(pipeline.usage.s3Put / pipeline.files, 2)}, LIST ${fixed(pipeline.usage.s3List / pipeline.files, 2)} (handler only; flush included)`,
        ],
        [
          'handler ms/visit',
          fixed((pipeline.handlerSeconds * 1000) / pipeline.lines, 4),
          `${fixed(pipeline.handlerSeconds, 1)} s in the handler for ${int(pipeline.lines)} visits (the Lambda duration estimate)`,
        ],
        [
          'USD per million visits',
          fixed(cost!.total, 4),
          `DynamoDB W ${fixed(cost!.dynamoWrite, 4)} + R ${fixed(cost!.dynamoRead, 4)}, S3 ${fixed(cost!.s3, 4)}, Lambda ${fixed(cost!.lambdaCompute, 4)} + requests ${fixed(cost!.lambdaRequests, 4)}; without index writes ${fixed(costNoGsi!.total, 4)}`,
        ],
      );
    } else {
      rows.push(['pipeline', 'skipped', '--skip-pipeline']);
    }
    if (longSession) {
      rows.push(
        [
          '1,000-visit session WCU/visit',
          `first 10 files ${fixed(longFirst, 3)}, last 10 ${fixed(longLast, 3)}`,
          `files 11-20 ${fixed(longSecond, 3)}; of which expiry index ${fixed(longSession.firstIndexWcuPerVisit, 3)} -> ${fixed(longSession.lastIndexWcuPerVisit, 3)}; ` +
            `one user, 50 files of 20 visits a minute apart; per file: ${longSession.writeUnitsPerFile.join(' ')}`,
        ],
        [
          '1,000-visit session RCU/visit',
          `first 10 files ${fixed(longSession.firstRcuPerVisit, 3)}, last 10 ${fixed(longSession.lastRcuPerVisit, 3)}`,
          `not a target; per file: ${longSession.readUnitsPerFile.join(' ')}`,
        ],
      );
    }
    if (memory) {
      const hwm = (v: number | null) => (v === null ? 'n/a' : `${fixed(v, 0)} MB`);
      rows.push(
        [
          'peak RSS, 1 GB object',
          `${fixed(memory.batchMaxRssMb, 0)} MB`,
          `maxRSS of the handler's child process (${memory.childRuntime}) after the object; its own peak (VmHWM) ${hwm(memory.batchHwmMb)}; ` +
            `sampled peaks: heap used ${memory.sampledPeakMb.heapUsed} MB, heap total ${memory.sampledPeakMb.heapTotal} MB, external ${memory.sampledPeakMb.external} MB`,
        ],
        [
          'memory run',
          `${fixed(memory.objectBytes / 1024 ** 3, 2)} GiB, ${int(memory.visits)} visits`,
          `~${int(memory.objectBytes / memory.visits)} B/line, ${int(memory.users)} users, ${fixed(memory.batchSeconds, 1)} s in the handler, ` +
            `${int(memory.counts.sessionsClosed)} sessions closed + ${int(memory.flushSessions)} by a flush after it (${fixed(memory.flushSeconds, 1)} s, maxRSS then ${fixed(memory.flushMaxRssMb, 0)} MB); ` +
            `maxRSS at the child's start ${fixed(memory.baselineMaxRssMb, 0)} MB (inherited from the parent at fork on Linux; VmHWM then ${hwm(memory.baselineHwmMb)})`,
        ],
      );
    } else {
      rows.push(['peak RSS, 1 GB object', 'skipped', '--skip-memory']);
    }
    rows.push([
      'bundle',
      bundle ? `${fixed(bundle.bytes / 1024, 0)} KB` : `FAILED`,
      bundle
        ? `esbuild ESM minified node22, AWS SDK bundled (+ ${fixed(bundle.mapBytes / 1024, 0)} KB source map)`
        : (bundleError ?? ''),
    ]);
    rows.push([
      'init (module load)',
      init ? `${fixed(init.medianMs, 0)} ms` : na,
      init ? `median of 5: ${init.samplesMs.map((x) => x.toFixed(0)).join(', ')} ms` : '',
    ]);
    log(formatTable(['metric', 'value', 'notes'], rows, 300));

    log();
    log('Targets (reported, not enforced):');
    const check = (ok: boolean | undefined, text: string) =>
      log(`  ${ok === undefined ? 'n/a ' : ok ? 'ok  ' : 'MISS'} ${text}`);
    check(coreRate >= duckdbRate, `core >= DuckDB: ${int(coreRate)} vs ${int(duckdbRate)} visits/s`);
    check(
      peakRss === undefined ? undefined : peakRss <= 256,
      `peak RSS <= 256 MB: ${peakRss === undefined ? 'skipped' : `${fixed(peakRss, 0)} MB`}`,
    );
    check(
      pipeline ? wcu <= 1.5 : undefined,
      `WCU/visit <= 1.5: ${pipeline ? fixed(wcu, 3) : 'skipped'} (table ${fixed(tableWcu, 3)} + expiry index ${fixed(gsiWcu, 3)})`,
    );
    check(
      longFlat,
      `1,000-visit session: WCU/visit does not grow with its length: first 10 files ${fixed(longFirst, 3)}, files 11-20 ${fixed(longSecond, 3)}, last 10 files ${fixed(longLast, 3)} (checked: last 10 <= files 11-20 + 5%; the first files are cheaper, their visits still fit in the head)`,
    );
    log();
    log(
      `Correctness: results_equal ${duckCompare.equal}` +
        `${pipelineCompare ? `, pipeline_results_equal ${pipelineCompare.equal}` : ''}` +
        `${memory ? `, memory run sessions = expected ${memory.sessions.equal} (${int(memory.sessions.sessionsB)})` : ''}` +
        `, conservation ${conservation.length === 0 ? 'ok' : 'FAILED'}`,
    );
    for (const c of conservation) log(`  ${c}`);
    for (const [label, cmp] of [
      ['core vs DuckDB', duckCompare],
      ['core vs pipeline', pipelineCompare],
    ] as const) {
      if (!cmp || cmp.equal) continue;
      log(
        `  ${label}: only in core: ${cmp.onlyInA.join(' | ') || '-'}; only in the other: ${cmp.onlyInB.join(' | ') || '-'}`,
      );
    }
    log();
    log('Notes:');
    log('  Prices (on-demand list prices, us-east-1):');
    for (const p of describePrices()) log(`    ${p}`);
    log(
      `  Lambda cost is an ESTIMATE: duration = handler wall time per visit measured in the pipeline run (${LAMBDA_MEMORY_MB} MB), ` +
        'dynalite and s3rver run in another process on the same 2 cores (their CPU time is not counted but competes; the local round trips are far shorter than AWS ones).',
    );
    log(
      '  dynalite does not count writes to the expiry index (GSI). The adapter counts them itself (1 unit per index entry put or deleted; ' +
        'a changed key is a delete and a put) and they are included in WCU/visit and the cost. The bench cross-checks that count from the ' +
        "handler's PutItem requests of user heads (KEYS_ONLY index: entering or leaving 1 write, a changed key 2, an unchanged key 0; 1 KB units).",
    );
    log(
      '  Query read units (user partitions, expiry index) are computed by the adapter from item sizes as strong reads; index queries are eventually consistent in AWS (half that).',
    );
    log(
      '  Not in the cost: S3 storage and data transfer, CloudWatch logs and metrics, the scheduled runs, the upload of the input objects.',
    );
    if (pipeline)
      log(
        `  The pipeline figures come from a SAMPLE: the first ${pipeline.files} files (${int(pipeline.lines)} of ${int(table.count)} visits).`,
      );
    const seconds = (performance.now() - startedAll) / 1000;
    log(`  Total: ${fixed(seconds, 1)} s.`);

    if (values.json) {
      const summary = {
        machine,
        visits: table.count,
        users,
        files: fileCount,
        seed,
        workload_bytes: workloadBytes,
        core_visits_per_s: coreRate,
        core_seconds_per_round: coreSeconds.map((x) => round(x, 4)),
        duckdb_seconds_per_round: duckSeconds.map((x) => round(x, 4)),
        core_over_duckdb: round(coreRate / duckdbRate, 3),
        core_over_duckdb_median_round: round(medianRatio, 3),
        core_child_visits_per_s: core.result.visits_per_s,
        core_with_output_visits_per_s: core.result.with_output_visits_per_s ?? null,
        core_gzip_visits_per_s: core.result.gzip_visits_per_s,
        core_csv_visits_per_s: core.result.csv_visits_per_s ?? null,
        core_child_conservation_ok: core.result.conservation_ok ?? null,
        duckdb_visits_per_s: Math.round(duckdbRate),
        duckdb_seconds: round(duck.seconds, 4),
        duckdb_to_js_seconds_per_round: head.duckdbToJsSeconds.map((x) => round(x, 4)),
        duckdb_one_thread_visits_per_s: Math.round(duckdbOneThreadRate),
        duckdb_one_thread_seconds_per_round: head.duckdbOneThreadSeconds.map((x) => round(x, 4)),
        core_over_duckdb_one_thread: round(coreRate / duckdbOneThreadRate, 3),
        duckdb_threads: duck.threads,
        duckdb_version: duck.version,
        results_equal: duckCompare.equal,
        sessions_core: duckCompare.sessionsA,
        sessions_duckdb: duckCompare.sessionsB,
        late_core: duckCompare.lateA,
        late_duckdb: duckCompare.lateB,
        duplicates_core: coreCounts.duplicates,
        pipeline_sample_visits: pipeline ? pipeline.lines : null,
        pipeline_sample_files: pipeline ? pipeline.files : null,
        pipeline_visits_per_s: pipeline ? Math.round(pipeline.lines / pipeline.seconds) : null,
        pipeline_seconds: pipeline ? round(pipeline.seconds, 2) : null,
        pipeline_handler_seconds: pipeline ? round(pipeline.handlerSeconds, 2) : null,
        pipeline_results_equal: pipelineCompare ? pipelineCompare.equal : null,
        pipeline_sessions: pipeline ? pipeline.sessions.length : null,
        pipeline_late: pipeline ? pipeline.late : null,
        pipeline_duplicates: pipeline ? pipeline.duplicates : null,
        ddb_write_units_per_visit: pipeline ? round(wcu, 4) : null,
        ddb_table_write_units_per_visit: pipeline ? round(tableWcu, 4) : null,
        ddb_index_write_units_per_visit: pipeline ? round(gsiWcu, 4) : null,
        ddb_read_units_per_visit: pipeline ? round(rcu, 4) : null,
        ddb_index_write_units_per_visit_crosscheck: pipeline
          ? round(perVisit(pipeline.usage.watchedIndexWriteUnits), 4)
          : null,
        ddb_write_units_note:
          'dynalite does not count GSI writes; the adapter counts the expiry-index writes itself (usage.indexWriteUnits: 1 per index entry put or deleted) and they are included in ddb_write_units_per_visit; the bench cross-checks them from the head PutItem requests (KEYS_ONLY rules)',
        s3_requests_per_file: pipeline ? round(s3PerFile, 3) : null,
        s3_get_per_file: pipeline ? round(pipeline.usage.s3Get / pipeline.files, 3) : null,
        s3_put_per_file: pipeline ? round(pipeline.usage.s3Put / pipeline.files, 3) : null,
        s3_list_per_file: pipeline ? round(pipeline.usage.s3List / pipeline.files, 3) : null,
        handler_ms_per_visit: pipeline ? round((pipeline.handlerSeconds * 1000) / pipeline.lines, 5) : null,
        usd_per_million_visits: cost ? round(cost.total, 5) : null,
        usd_per_million_visits_without_index_writes: costNoGsi ? round(costNoGsi.total, 5) : null,
        usd_breakdown: cost
          ? {
              dynamodb_write: round(cost.dynamoWrite, 5),
              dynamodb_read: round(cost.dynamoRead, 5),
              s3_requests: round(cost.s3, 5),
              lambda_compute_estimate: round(cost.lambdaCompute, 5),
              lambda_requests: round(cost.lambdaRequests, 5),
            }
          : null,
        prices_usd: {
          dynamodb_write_request_unit: PRICES.dynamoWriteUnit,
          dynamodb_read_request_unit: PRICES.dynamoReadUnit,
          s3_put_or_list_request: PRICES.s3PutOrList,
          s3_get_request: PRICES.s3Get,
          lambda_arm_gb_second: PRICES.lambdaGbSecond,
          lambda_request: PRICES.lambdaRequest,
          lambda_memory_mb: LAMBDA_MEMORY_MB,
          region: 'us-east-1',
          lambda_duration: 'estimate from the measured handler time per visit',
        },
        session_1000_wcu_first: longSession ? round(longFirst, 4) : null,
        session_1000_wcu_last: longSession ? round(longLast, 4) : null,
        session_1000_wcu_files_11_20: longSession ? round(longSecond, 4) : null,
        session_1000_index_wcu_first: longSession ? round(longSession.firstIndexWcuPerVisit, 4) : null,
        session_1000_index_wcu_last: longSession ? round(longSession.lastIndexWcuPerVisit, 4) : null,
        session_1000_write_units_per_file: longSession ? longSession.writeUnitsPerFile : null,
        session_1000_index_crosscheck_ok: longIndexCheckOk ?? null,
        session_1000_rcu_first: longSession ? round(longSession.firstRcuPerVisit, 4) : null,
        session_1000_rcu_last: longSession ? round(longSession.lastRcuPerVisit, 4) : null,
        session_1000_read_units_per_file: longSession ? longSession.readUnitsPerFile : null,
        peak_rss_mb_1gb: memory ? round(memory.batchMaxRssMb, 1) : null,
        peak_rss_mb_1gb_after_flush: memory ? round(memory.flushMaxRssMb, 1) : null,
        peak_rss_mb_1gb_vmhwm: memory?.batchHwmMb != null ? round(memory.batchHwmMb, 1) : null,
        memory_sampled_peak_mb: memory ? memory.sampledPeakMb : null,
        memory_sessions_equal: memory ? memory.sessions.equal : null,
        memory_child_start_rss_mb: memory ? round(memory.baselineMaxRssMb, 1) : null,
        memory_handler_loaded_rss_mb: memory ? round(memory.loadedMaxRssMb, 1) : null,
        memory_object_bytes: memory ? memory.objectBytes : null,
        memory_visits: memory ? memory.visits : null,
        memory_users: memory ? memory.users : null,
        memory_seconds: memory ? round(memory.batchSeconds, 2) : null,
        memory_flush_seconds: memory ? round(memory.flushSeconds, 2) : null,
        memory_sessions_closed: memory ? memory.counts.sessionsClosed + memory.flushSessions : null,
        memory_child_runtime: memory ? memory.childRuntime : null,
        bundle_kb: bundle ? round(bundle.bytes / 1024, 1) : null,
        init_ms: init ? round(init.medianMs, 1) : null,
        targets: {
          core_ge_duckdb: coreRate >= duckdbRate,
          rss_le_256mb: peakRss === undefined ? null : peakRss <= 256,
          wcu_per_visit_le_1_5: pipeline ? wcu <= 1.5 : null,
          session_1000_wcu_not_growing: longFlat ?? null,
        },
        conservation_ok: conservation.length === 0,
        conservation_errors: conservation,
        seconds_total: round(seconds, 1),
      };
      log(JSON.stringify(summary));
    }
    return 0;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

process.exitCode = await main();
