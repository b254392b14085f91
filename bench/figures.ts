/**
 * The figures of `npm run bench`: what the stages measured (BenchResults), the numbers derived from it once (rates,
 * units per visit, the targets), and the JSON summary printed as the last stdout line. bench/report.ts prints the
 * same figures as a table.
 */
import { LAMBDA_MEMORY_MB, PRICES } from '../cli/cost.ts';
import type { Bundle } from './bundle.ts';
import type { ConcurrencyLevel } from './concurrency.ts';
import type { GrowthRun } from './growth.ts';
import type { BigRun, WideRun } from './memory.ts';
import type { PipelineRun } from './pipeline.ts';
import type { Comparison } from './sessions.ts';
import type { Versus } from './versus.ts';

export interface BundleStage {
  readonly bundle?: Bundle;
  readonly init?: { medianMs: number; samplesMs: number[] };
  readonly error?: string;
}

export interface PipelineStage {
  readonly run: PipelineRun;
  /** The pipeline's sessions against the reference driver's. */
  readonly comparison: Comparison;
}

export interface MemoryStage {
  readonly wide?: WideRun;
  readonly big?: BigRun;
  readonly errors: string[];
}

export interface BenchResults {
  readonly machine: Record<string, string | number>;
  readonly workload: { visits: number; users: number; files: number; seed: number; bytes: number };
  readonly rounds: number;
  readonly versus: Versus;
  readonly bundle: BundleStage;
  readonly pipeline: PipelineStage | undefined;
  readonly growth: { long: GrowthRun; pending: GrowthRun } | undefined;
  readonly concurrency: ConcurrencyLevel[] | undefined;
  readonly memory: MemoryStage | undefined;
  readonly seconds: number;
}

/** Whether each target is met; undefined when its stage did not run. */
export interface Targets {
  readonly writeUnits: boolean | undefined;
  readonly readUnits: boolean | undefined;
  readonly usd: boolean | undefined;
  readonly pipelineRate: boolean | undefined;
  readonly peakRss: boolean | undefined;
  readonly coreOverDuckDb: boolean;
  readonly longSessionFlat: boolean | undefined;
  readonly pendingUsersFlat: boolean | undefined;
}

export const TARGET = {
  unitsPerVisit: 0.03,
  usdPerMillion: 0.03,
  pipelineVisitsPerS: 50_000,
  peakRssMb: 256,
  /** Slack of "does not grow": the later files may cost this much more per visit than the first ones. */
  growth: 1.1,
} as const;

/** Numbers derived from the results, used by the table and the JSON alike. */
export function derive(r: BenchResults) {
  const { head } = r.versus;
  const visits = r.workload.visits;
  const coreRate = visits / Math.min(...head.coreSeconds);
  const duckRate = visits / Math.min(...head.duckdbSeconds);
  const duckOneRate = visits / Math.min(...head.duckdbOneThreadSeconds);
  const ratios = head.coreSeconds.map((c, i) => head.duckdbSeconds[i]! / c).sort((a, b) => a - b);
  const p = r.pipeline?.run;
  const lines = p?.state.lines ?? Number.NaN;
  const pipeline = p && {
    visitsPerS: lines / p.seconds,
    writeUnitsPerVisit: p.usage.writeUnits / lines,
    readUnitsPerVisit: p.usage.readUnits / lines,
    s3PerFile: (p.usage.s3Get + p.usage.s3Put + p.usage.s3List) / p.files,
    handlerMsPerVisit: (p.usage.handlerSeconds * 1000) / lines,
  };
  const long = r.growth?.long;
  const pending = r.growth?.pending;
  const peakRss = r.memory?.wide?.run.peakMb;
  const targets: Targets = {
    writeUnits: pipeline && pipeline.writeUnitsPerVisit <= TARGET.unitsPerVisit,
    readUnits: pipeline && pipeline.readUnitsPerVisit <= TARGET.unitsPerVisit,
    usd: p && p.cost.total <= TARGET.usdPerMillion,
    pipelineRate: pipeline && pipeline.visitsPerS >= TARGET.pipelineVisitsPerS,
    peakRss: peakRss === undefined ? undefined : peakRss <= TARGET.peakRssMb,
    // core for core: one thread each (the ratio against DuckDB's default threads is printed beside it)
    coreOverDuckDb: coreRate >= duckOneRate,
    longSessionFlat: long && long.last.writeUnitsPerVisit <= long.first.writeUnitsPerVisit * TARGET.growth,
    pendingUsersFlat:
      pending &&
      pending.last.writeUnitsPerVisit <= pending.first.writeUnitsPerVisit * TARGET.growth &&
      pending.steady.last <= pending.steady.first * TARGET.growth,
  };
  const conservation = [
    ...r.versus.errors,
    ...(p?.conservationErrors ?? []).map((e) => `pipeline: ${e}`),
    ...(r.growth ? [...r.growth.long.errors, ...r.growth.pending.errors] : []).map(
      (e) => `state growth: ${e}`,
    ),
    ...(r.concurrency ?? []).flatMap((l) => l.errors.map((e) => `concurrency ${l.level}: ${e}`)),
    ...(r.memory?.wide?.errors ?? []).map((e) => `memory, wide object: ${e}`),
    ...(r.memory?.big?.errors ?? []).map((e) => `memory, big object: ${e}`),
    ...(r.memory?.errors ?? []).map((e) => `memory: ${e}`),
  ];
  return {
    coreRate,
    duckRate,
    duckOneRate,
    medianRatio: ratios[Math.floor(ratios.length / 2)]!,
    pipeline,
    peakRss,
    targets,
    conservation,
  };
}

export type Derived = ReturnType<typeof derive>;

const round = (n: number | undefined, digits: number): number | null =>
  n === undefined || !Number.isFinite(n) ? null : Number(n.toFixed(digits));

function coreJson(r: BenchResults, d: Derived) {
  const { head, coreChild, comparison, reference } = r.versus;
  return {
    core_visits_per_s: Math.round(d.coreRate),
    core_seconds_per_round: head.coreSeconds.map((x) => round(x, 4)),
    core_with_output_visits_per_s: coreChild.with_output_visits_per_s ?? null,
    core_gzip_visits_per_s: coreChild.gzip_visits_per_s,
    core_csv_visits_per_s: coreChild.csv_visits_per_s ?? null,
    duckdb_visits_per_s: Math.round(d.duckRate),
    duckdb_seconds_per_round: head.duckdbSeconds.map((x) => round(x, 4)),
    duckdb_to_js_seconds_per_round: head.duckdbToJsSeconds.map((x) => round(x, 4)),
    duckdb_one_thread_visits_per_s: Math.round(d.duckOneRate),
    duckdb_one_thread_seconds_per_round: head.duckdbOneThreadSeconds.map((x) => round(x, 4)),
    duckdb_threads: head.duckdbThreads,
    duckdb_version: head.duckdbVersion,
    core_over_duckdb: round(d.coreRate / d.duckRate, 3),
    core_over_duckdb_median_round: round(d.medianRatio, 3),
    core_over_duckdb_one_thread: round(d.coreRate / d.duckOneRate, 3),
    results_equal: comparison.equal,
    sessions_core: comparison.sessionsA,
    sessions_duckdb: comparison.sessionsB,
    late_core: comparison.lateA,
    late_duckdb: comparison.lateB,
    duplicates_core: reference.counts.duplicates,
  };
}

function pipelineJson(r: BenchResults, d: Derived) {
  const p = r.pipeline?.run;
  const x = d.pipeline;
  if (!p || !x) return { pipeline_visits_per_s: null, pipeline_visits: null, pipeline_results_equal: null };
  return {
    pipeline_visits_per_s: Math.round(x.visitsPerS),
    pipeline_visits: p.state.lines,
    pipeline_files: p.files,
    pipeline_batch_size: p.batchSize,
    pipeline_invocations: p.usage.invocations,
    pipeline_commits: p.commits,
    pipeline_conflicts: p.conflicts,
    pipeline_seconds: round(p.seconds, 2),
    pipeline_flush_seconds: round(p.flushSeconds, 2),
    pipeline_upload_seconds: round(p.uploadSeconds, 2),
    pipeline_handler_cpu_seconds: round(p.handlerCpuSeconds, 2),
    pipeline_servers_cpu_seconds: round(p.serversCpuSeconds ?? undefined, 2),
    pipeline_phase_seconds: Object.fromEntries(Object.entries(p.phases).map(([k, v]) => [k, round(v, 2)])),
    pipeline_results_equal: r.pipeline!.comparison.equal,
    pipeline_sessions: p.sessions.length,
    pipeline_late: p.state.late,
    pipeline_duplicates: p.state.duplicates,
    ddb_write_units_per_visit: round(x.writeUnitsPerVisit, 5),
    ddb_read_units_per_visit: round(x.readUnitsPerVisit, 5),
    ddb_condition_failures: p.usage.conditionFailures,
    s3_requests_per_file: round(x.s3PerFile, 3),
    s3_get_per_file: round(p.usage.s3Get / p.files, 3),
    s3_put_per_file: round(p.usage.s3Put / p.files, 3),
    s3_list_per_file: round(p.usage.s3List / p.files, 3),
    sqs_requests: p.usage.sqsRequests,
    handler_ms_per_visit: round(x.handlerMsPerVisit, 5),
    usd_per_million_visits: round(p.cost.total, 5),
    usd_breakdown: {
      dynamodb_write: round(p.cost.dynamoWrite, 6),
      dynamodb_read: round(p.cost.dynamoRead, 6),
      s3_requests: round(p.cost.s3, 6),
      lambda_compute: round(p.cost.lambdaCompute, 6),
      lambda_requests: round(p.cost.lambdaRequests, 6),
      sqs: round(p.cost.sqs, 6),
    },
  };
}

function growthJson(r: BenchResults) {
  const g = r.growth;
  if (!g) return { state_growth: null };
  const run = (x: GrowthRun) => ({
    visits: x.visits,
    files: x.files,
    first_files: x.first.files,
    first_write_units_per_visit: round(x.first.writeUnitsPerVisit, 5),
    first_read_units_per_visit: round(x.first.readUnitsPerVisit, 5),
    last_files: x.last.files,
    last_write_units_per_visit: round(x.last.writeUnitsPerVisit, 5),
    last_read_units_per_visit: round(x.last.readUnitsPerVisit, 5),
    steady_write_units_per_visit_first: round(x.steady.first, 5),
    steady_write_units_per_visit_last: round(x.steady.last, 5),
    compactions: x.compactions,
    flush_write_units_per_visit: round(x.flush.writeUnitsPerVisit, 6),
    flush_read_units_per_visit: round(x.flush.readUnitsPerVisit, 6),
    flush_seconds: round(x.flush.seconds, 2),
    write_units_per_file: x.perFile.map((f) => f.writeUnits),
    commits_per_file: x.perFile.map((f) => f.commits),
    read_units_per_file: x.perFile.map((f) => f.readUnits),
    sessions_closed: x.sessionsClosed,
    seconds: round(x.seconds, 1),
  });
  return { session_1000: run(g.long), pending_users: run(g.pending) };
}

function memoryJson(r: BenchResults) {
  const m = r.memory;
  const wide = m?.wide;
  const big = m?.big;
  return {
    peak_rss_mb_1gb: round(wide?.run.peakMb, 1),
    memory_wide: wide && {
      object_bytes: wide.bytes,
      visits: wide.visits,
      users: wide.users,
      seconds: round(wide.run.seconds, 2),
      flush_seconds: round(wide.run.flushSeconds, 2),
      peak_rss_mb_after_flush: round(wide.run.peakAfterFlushMb ?? undefined, 1),
      loaded_rss_mb: round(wide.run.loadedMb ?? undefined, 1),
      sampled_peak_mb: wide.run.sampledPeakMb,
      sessions_equal: wide.sessions.equal,
      child_runtime: wide.childRuntime,
    },
    memory_big: big && {
      object_bytes: big.bytes,
      visits: big.visits,
      users: big.users,
      seconds: round(big.full.seconds, 2),
      visits_per_s: Math.round(big.visits / big.full.seconds),
      peak_rss_mb: round(big.full.peakMb, 1),
      flush_seconds: round(big.full.flushSeconds, 2),
      sampled_peak_mb: big.full.sampledPeakMb,
      killed_after_seconds: round(big.killedAfterSeconds ?? undefined, 2),
      rerun_seconds: round(big.rerun.seconds, 2),
      rerun_over_full: round(big.rerun.seconds / big.full.seconds, 3),
      rerun_peak_rss_mb: round(big.rerun.peakMb, 1),
      shards_found_committed: big.shardsFoundCommitted,
      shards: big.shards,
    },
    memory_errors: m?.errors ?? null,
  };
}

/** Prints the JSON summary: one line, last on stdout. */
export function printSummary(r: BenchResults, d: Derived): void {
  const summary = {
    machine: r.machine,
    visits: r.workload.visits,
    users: r.workload.users,
    files: r.workload.files,
    seed: r.workload.seed,
    workload_bytes: r.workload.bytes,
    ...coreJson(r, d),
    ...pipelineJson(r, d),
    ...growthJson(r),
    concurrency:
      r.concurrency?.map((l) => ({
        level: l.level,
        batch_size: l.batchSize,
        visits_per_s: Math.round(l.visitsPerS),
        seconds: round(l.seconds, 2),
        invocations: l.invocations,
        commits: l.commits,
        conflicts: l.conflicts,
        condition_failures: l.conditionFailures,
        invocations_retried: l.retried,
        failures: l.failures,
        write_units_per_visit: round(l.writeUnitsPerVisit, 5),
        usd_per_million_visits: round(l.usdPerMillionVisits, 5),
      })) ?? null,
    ...memoryJson(r),
    bundle_kb: round(r.bundle.bundle ? r.bundle.bundle.bytes / 1024 : undefined, 1),
    init_ms: round(r.bundle.init?.medianMs, 1),
    prices_usd: {
      dynamodb_write_request_unit: PRICES.dynamoWriteUnit,
      dynamodb_read_request_unit: PRICES.dynamoReadUnit,
      s3_put_or_list_request: PRICES.s3PutOrList,
      s3_get_request: PRICES.s3Get,
      lambda_arm_gb_second: PRICES.lambdaGbSecond,
      lambda_request: PRICES.lambdaRequest,
      sqs_request: PRICES.sqsRequest,
      lambda_memory_mb: LAMBDA_MEMORY_MB,
      region: 'us-east-1',
    },
    targets: {
      ddb_write_units_per_visit_le_0_03: d.targets.writeUnits ?? null,
      ddb_read_units_per_visit_le_0_03: d.targets.readUnits ?? null,
      usd_per_million_visits_le_0_03: d.targets.usd ?? null,
      pipeline_visits_per_s_ge_50000: d.targets.pipelineRate ?? null,
      peak_rss_mb_1gb_le_256: d.targets.peakRss ?? null,
      core_ge_duckdb_one_thread: d.targets.coreOverDuckDb,
      session_1000_write_units_not_growing: d.targets.longSessionFlat ?? null,
      pending_users_write_units_not_growing: d.targets.pendingUsersFlat ?? null,
    },
    conservation_ok: d.conservation.length === 0,
    conservation_errors: d.conservation,
    seconds_total: round(r.seconds, 1),
  };
  process.stdout.write(`${JSON.stringify(summary)}\n`);
}
