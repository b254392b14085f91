/**
 * The `sessionizer` command. Every command runs the same Lambda handler in-process against the local stack
 * (s3rver + dynalite started on free loopback ports, state under --home / SESSIONIZER_HOME), or against any
 * endpoints given by SESSIONIZER_S3_ENDPOINT and SESSIONIZER_DYNAMODB_ENDPOINT.
 */
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { Command, InvalidArgumentError } from 'commander';
import type { LocalStackOptions } from '../infra/local/stack.ts';
import { DEFAULT_SETTINGS } from '../infra/settings.ts';
import { ENV } from '../lambdas/config.ts';
import { parseDuration } from '../lambdas/core/duration.ts';
import { LATE_VISITS, REJECTED, SESSIONS } from '../lambdas/core/schema.ts';
import { formatIso } from '../lambdas/core/time.ts';
import type { CatchUpSummary, IngestResult } from '../lambdas/pipeline/index.ts';
import { demo } from './demo.ts';
import { withStack } from './local.ts';
import { runMigrate, targetFromEnv } from './migrate/command.ts';
import { progress } from './progress.ts';
import { replay } from './replay.ts';
import { listPending, readSummary } from './state.ts';
import { stderrTelemetry } from './verbose.ts';

const duration = (name: string) => (value: string) => {
  try {
    return parseDuration(value, name);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
};

const positiveInt = (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0)
    throw new InvalidArgumentError(`expected a positive integer, got ${value}`);
  return n;
};

const probability = (value: string) => {
  const p = Number(value);
  if (!(p >= 0 && p <= 0.5))
    throw new InvalidArgumentError(`expected a probability from 0 to 0.5, got ${value}`);
  return p;
};

const program = new Command('sessionizer')
  .description('Event-time sessionization of visit files on S3 and DynamoDB, run locally or on AWS Lambda')
  .option(
    '--home <dir>',
    'where the local S3 and DynamoDB keep their data (default: $SESSIONIZER_HOME or ./.sessionizer)',
  )
  .option('--verbose', 'print the handler logs (JSON lines) on stderr')
  .showHelpAfterError();

function stackOptions(): LocalStackOptions {
  const { home, verbose } = program.opts<{ home?: string; verbose?: boolean }>();
  return {
    ...(home ? { home } : {}),
    ...(verbose ? { log: stderrTelemetry() } : {}),
  };
}

const print = (value: unknown) => console.log(typeof value === 'string' ? value : JSON.stringify(value));

const iso = (t: number): string | null => (Number.isFinite(t) ? formatIso(t) : null);

function objectLine(o: IngestResult): Record<string, unknown> {
  return {
    object: o.object,
    outcome: o.outcome,
    ...(o.entry
      ? { seq: o.entry.seq, lines: o.entry.lines, visits: o.entry.visits, rejected: o.entry.rejected }
      : {}),
  };
}

function catchUpLine(c: CatchUpSummary): Record<string, unknown> {
  return {
    log_position: c.target,
    watermark: iso(c.watermark),
    accepted: c.accepted,
    duplicates: c.duplicates,
    late: c.late,
    sessions_closed: c.sessionsClosed,
    commits: c.commits,
    conflicts: c.conflicts,
  };
}

program
  .command('demo')
  .description(
    'the seed walkthrough end to end on the local stack, emptied first; the results stay for other commands',
  )
  .action(async () => {
    const { home } = program.opts<{ home?: string }>();
    await demo(home ? { home } : {});
  });

program
  .command('up')
  .description('keep the local stack running: print its endpoints, run the scheduled run every N seconds')
  .option('--every <seconds>', 'seconds between scheduled runs', positiveInt, 60)
  .action(async (opts: { every: number }) => {
    await withStack(stackOptions(), async (stack) => {
      print(
        `S3:       ${stack.env.SESSIONIZER_S3_ENDPOINT}  (buckets ${stack.config.visitsBucket}, ${stack.config.outputBucket})`,
      );
      print(`DynamoDB: ${stack.env.SESSIONIZER_DYNAMODB_ENDPOINT}  (table ${stack.config.table})`);
      print('environment for other tools:');
      for (const [k, v] of Object.entries(stack.env)) print(`  export ${k}=${v}`);
      print(
        `uploads to s3://${stack.config.visitsBucket}/${stack.config.visitsPrefix} are processed at once; Ctrl-C stops`,
      );
      let n = 0;
      const tick = async () => {
        const result = await stack.invoke({
          'detail-type': 'Scheduled Event',
          id: `up-${Date.now()}-${n++}`,
        });
        if (result.kind === 'scheduled') {
          const s = result.summary;
          const watermark = s.catchUp.watermark;
          print(
            `${new Date().toISOString()} scheduled run: ${s.ingested.length} objects caught up, ` +
              `${s.catchUp.sessionsClosed} sessions closed, watermark ${Number.isFinite(watermark) ? formatIso(watermark) : 'none'}`,
          );
        }
      };
      await new Promise<void>((resolve) => {
        const timer = setInterval(
          () => void tick().catch((e: Error) => print(`scheduled run failed: ${e.message}`)),
          opts.every * 1000,
        );
        process.once('SIGINT', () => {
          clearInterval(timer);
          resolve();
        });
      });
    });
  });

program
  .command('upload')
  .description('upload visit files as visits/<basename>; their S3 events go through the ingest queue')
  .argument('<files...>')
  .action(async (files: string[]) => {
    await withStack(stackOptions(), async (stack) => {
      const before = stack.delivered.length;
      for (const file of files) {
        const key = `${stack.config.visitsPrefix}${basename(file)}`;
        await stack.clients.s3.send(
          new PutObjectCommand({ Bucket: stack.config.visitsBucket, Key: key, Body: await readFile(file) }),
        );
      }
      await stack.idle();
      for (const r of stack.delivered.slice(before)) {
        if (r.kind !== 'queue') continue;
        for (const o of r.objects) print(objectLine(o));
        print(catchUpLine(r.catchUp));
      }
      for (const d of stack.deadLetters) print(`FAILED: ${d.error.message}`);
      if (stack.deadLetters.length > 0) process.exitCode = 1;
    });
  });

program
  .command('run')
  .description(
    'the scheduled run: catch up on objects no event delivered, then close what the watermark allows',
  )
  .action(async () => {
    await withStack({ ...stackOptions(), notifications: false }, async (stack) => {
      // catch up first with progress shown; the scheduled run then finds nothing left and closes
      const { visitsBucket, visitsPrefix } = stack.config;
      const objects = await stack.inspect.objects.listAll(visitsBucket, visitsPrefix);
      const bar = progress('catch-up', objects.length);
      const summary = await stack.runtime.pipeline.scheduled(`cli-${Date.now()}`, {
        all: true,
        onObject: (o) => bar.tick(`${o.object} (${o.outcome})`),
        onSkip: () => bar.tick(),
      });
      bar.stop();
      print({
        objects: summary.ingested.length,
        idle_advanced: summary.idleAdvanced,
        ...catchUpLine(summary.catchUp),
      });
    });
  });

program
  .command('flush')
  .description('close every pending session regardless of the watermark (end of input, backfills)')
  .action(async () => {
    await withStack({ ...stackOptions(), notifications: false }, async (stack) => {
      const result = await stack.invoke({ action: 'flush', id: `cli-${Date.now()}` });
      print(result.kind === 'flush' ? catchUpLine(result.summary.catchUp) : result);
    });
  });

program
  .command('read')
  .description('print visits, sessions, late visits, rejected records (JSON lines) or pending sessions')
  .argument('<what>', 'visits | sessions | late | rejected | pending')
  .action(async (what: string) => {
    const prefixes: Record<string, string> = {
      sessions: SESSIONS.prefix,
      late: LATE_VISITS.prefix,
      rejected: REJECTED.prefix,
    };
    if (what !== 'visits' && what !== 'pending' && !(what in prefixes)) {
      throw new InvalidArgumentError(
        `unknown <what> "${what}": expected visits, sessions, late, rejected or pending`,
      );
    }
    await withStack({ ...stackOptions(), notifications: false }, async (stack) => {
      if (what === 'pending') {
        for (const s of await listPending(stack.runtime, stack.config)) {
          print({
            user_id: s.userId,
            start_time: formatIso(s.start),
            end_time: formatIso(s.end),
            visit_count: s.visits.length,
            closes_after: formatIso(s.end + stack.config.session.gapMs),
          });
        }
        return;
      }
      const bucket = what === 'visits' ? stack.config.visitsBucket : stack.config.outputBucket;
      const prefix = what === 'visits' ? stack.config.visitsPrefix : prefixes[what]!;
      for (const o of await stack.runtime.objects.listAll(bucket, prefix)) {
        process.stdout.write(await stack.runtime.objects.getText(bucket, o.key));
      }
    });
  });

program
  .command('status')
  .description('watermark and its lag, pending sessions, processed objects and counters')
  .action(async () => {
    await withStack({ ...stackOptions(), notifications: false }, async (stack) => {
      const s = await readSummary(stack.runtime, stack.config);
      const finite = Number.isFinite(s.watermark);
      print({
        watermark: finite ? formatIso(s.watermark) : null,
        newest_visit: Number.isFinite(s.newestVisit) ? formatIso(s.newestVisit) : null,
        lag_behind_newest_visit_s: finite ? (s.newestVisit - s.watermark) / 1000 : null,
        lag_behind_wall_clock_s: finite ? Math.round((Date.now() - s.watermark) / 1000) : null,
        pending_sessions: s.pendingSessions,
        pending_users: s.pendingUsers,
        next_close_after: Number.isFinite(s.nextExpiry) ? formatIso(s.nextExpiry) : null,
        objects_processed: s.objects,
        log_entries: s.logTail,
        log_lag_objects: s.logLag,
        lines: s.lines,
        visits: s.visits,
        accepted: s.accepted,
        duplicates: s.duplicates,
        late: s.late,
        rejected: s.rejected,
        sessions_closed: s.sessionsClosed,
        last_run: s.lastEntryAt > 0 ? new Date(s.lastEntryAt).toISOString() : null,
      });
    });
  });

program
  .command('replay')
  .description('replay files through a fresh local stack, in order, and copy the outputs to a folder')
  .requiredOption('--out <dir>', 'folder to copy sessions/, late-visits/ and rejected/ to')
  .option('--gap <duration>', 'session inactivity gap', duration('--gap'))
  .option('--lateness <duration>', 'allowed lateness', duration('--lateness'))
  .option('--max-duration <duration>', 'maximum session duration', duration('--max-duration'))
  .option('--no-flush', 'leave pending sessions pending at the end')
  .option('--chaos <p>', 'fail every AWS call of the handler with probability p (0 to 0.5)', probability, 0)
  .option('--seed <n>', 'seed of the faults', Number, 1)
  .option('--concurrency <n>', 'invocations taking batches from the queue at once', positiveInt, 1)
  .option(
    '--batch-size <n>',
    'objects per invocation (SQS messages per batch; the deployed default)',
    positiveInt,
    DEFAULT_SETTINGS.queueBatchSize,
  )
  .option('--shards <n>', 'shards of the state', positiveInt)
  .argument('<files...>')
  .action(
    async (
      files: string[],
      opts: {
        out: string;
        gap?: number;
        lateness?: number;
        maxDuration?: number;
        flush: boolean;
        chaos: number;
        seed: number;
        concurrency: number;
        batchSize: number;
        shards?: number;
      },
    ) => {
      const bar = progress('replay', files.length);
      const summary = await replay({
        files,
        onObject: (o) => bar.tick(`${o.object} (${o.outcome})`),
        out: opts.out,
        flush: opts.flush,
        chaos: opts.chaos,
        seed: opts.seed,
        concurrency: opts.concurrency,
        batchSize: opts.batchSize,
        onFaults: (f) =>
          console.error(
            `faults: ${f.injected} injected in ${f.calls} calls; ${f.retried} invocations retried`,
          ),
        ...(opts.shards !== undefined ? { shards: opts.shards } : {}),
        ...(opts.gap !== undefined ? { gapMs: opts.gap } : {}),
        ...(opts.lateness !== undefined ? { latenessMs: opts.lateness } : {}),
        ...(opts.maxDuration !== undefined ? { maxDurationMs: opts.maxDuration } : {}),
      });
      bar.stop();
      console.error(
        `cost: ${summary.ddb_write_units_per_visit} DynamoDB write units and ${summary.ddb_read_units_per_visit} ` +
          `read units per visit; S3 ${summary.s3_requests.put} PUT, ${summary.s3_requests.get} GET, ` +
          `${summary.s3_requests.list} LIST; ${summary.invocations} invocations: ` +
          `$${summary.usd_per_million_visits} per million visits at on-demand prices (us-east-1)`,
      );
      print(summary);
    },
  );

program
  .command('migrate')
  .description(
    'move a state table of the first layout to this version (README, "Upgrading from the first state layout")',
  )
  .option('--dry-run', 'read and plan only: write nothing')
  .option('--json', 'the report as one JSON object')
  .action(async (opts: { dryRun?: boolean; json?: boolean }) => {
    // the resources named in the environment (AWS, or the endpoints set there), else the local stack
    if (process.env[ENV.table]) await runMigrate(targetFromEnv(), opts);
    else await withStack({ ...stackOptions(), notifications: false }, (stack) => runMigrate(stack, opts));
  });

// query and report load DuckDB (a native module) only when they run
program
  .command('query')
  .description('SQL over the outputs with DuckDB: views sessions, late_visits, rejected (Athena SQL works)')
  .argument('[sql]', 'the query, e.g. "select dt, count(*) from sessions group by dt"')
  .option('--dir <dir>', "a replay --out folder (default: the local stack's output bucket)")
  .option('--saved <name>', 'run a saved Athena query (see --list)')
  .option('--list', 'list the saved queries')
  .option('--json', 'print a JSON array of row objects')
  .option('--csv', 'print CSV (RFC 4180)')
  .action(
    async (
      sql: string | undefined,
      opts: { dir?: string; saved?: string; list?: boolean; json?: boolean; csv?: boolean },
    ) => {
      const { queryCommand } = await import('./query.ts');
      process.stdout.write(await queryCommand(sql, opts, stackOptions()));
    },
  );

program
  .command('report')
  .description('a self-contained HTML page with charts of the outputs (inline SVG, no scripts)')
  .requiredOption('--out <file>', 'the HTML file to write')
  .option('--dir <dir>', "a replay --out folder (default: the local stack's output bucket)")
  .option('--title <text>', 'the page title')
  .action(async (opts: { out: string; dir?: string; title?: string }) => {
    const { reportCommand } = await import('./report.ts');
    print(await reportCommand(opts, stackOptions()));
  });

program.parseAsync(process.argv).catch((error: Error) => {
  console.error(`sessionizer: ${error.message}`);
  process.exitCode = 1;
});
