/**
 * The body of `sessionizer migrate`: where it runs (the resources named in the environment, on AWS or on the
 * endpoints given there), and the report as an operator reads it. cli/main.ts registers the command.
 */
import { type Clients, clientsFromConfig } from '../../lambdas/adapters/clients.ts';
import { type Config, loadConfig } from '../../lambdas/config.ts';
import { type MigrateReport, migrate } from './index.ts';

export interface MigrateTarget {
  readonly clients: Clients;
  readonly config: Config;
}

export interface MigrateCommandOptions {
  readonly dryRun?: boolean;
  /** The report as one JSON object instead of lines. */
  readonly json?: boolean;
  /** Where the report goes. @default stdout */
  readonly print?: (line: string) => void;
  /** Where progress goes. @default stderr */
  readonly log?: (line: string) => void;
}

/** The table and buckets named by SESSIONIZER_TABLE, SESSIONIZER_OUTPUT_BUCKET... (AWS, or the endpoints set). */
export function targetFromEnv(
  env: Readonly<Record<string, string | undefined>> = process.env,
): MigrateTarget {
  const config = loadConfig(env);
  return { config, clients: clientsFromConfig(config) };
}

const iso = (t: number) => (Number.isFinite(t) ? new Date(t).toISOString() : 'none');

/** The report in a few lines. */
export function describeReport(r: MigrateReport): string[] {
  const t = r.totals;
  return [
    r.dryRun
      ? `dry run on table ${r.table}: nothing was written`
      : `table ${r.table} is now in layout 2 (layout ${r.layoutId}, ${r.shards} shards)`,
    `watermark ${iso(r.watermark)}, newest visit ${iso(r.maxVisitTime)}`,
    `pending: ${r.pendingSessions} sessions of ${r.pendingUsers} users (of ${r.users}); ${r.flushedUsers} users ` +
      'keep the end of their last closed session (a visit within gap of it stays late)',
    ...r.closings.map(
      (c) =>
        `closing ${c.run}: ${c.sessions} sessions of ${c.users} users, ` +
        (c.writtenBefore
          ? 'written by the first version'
          : `${r.dryRun ? 'to write' : 'written'} in ${c.objects.length} objects`),
    ),
    `objects carried over: ${r.markers} (lines ${t.lines} = visits ${t.visits} + rejected ${t.rejected}; ` +
      `visits = accepted ${t.accepted} + duplicates ${t.duplicates} + late ${t.late}; sessions closed ${t.sessionsClosed})`,
    ...(r.redone > 0
      ? [`${r.redone} items and part objects of an earlier unfinished migrate run were replaced`]
      : []),
    `first-layout items left in place: ${r.legacyItems} (no longer read)` +
      (r.ignoredChunks > 0
        ? `; ${r.ignoredChunks} uncommitted chunk items among them were ignored, as v1 did`
        : ''),
  ];
}

export async function runMigrate(
  target: MigrateTarget,
  options: MigrateCommandOptions = {},
): Promise<MigrateReport> {
  const print = options.print ?? ((line: string) => process.stdout.write(`${line}\n`));
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const report = await migrate({ ...target, dryRun: options.dryRun === true, log });
  if (options.json) print(JSON.stringify(report));
  else for (const line of describeReport(report)) print(line);
  return report;
}
