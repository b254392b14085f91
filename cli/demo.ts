/**
 * `sessionizer demo`: the seed walkthrough of the Spark job this replaces, end to end on the local stack, in the
 * last hour and a bit: three uploads, each handled by the Lambda handler through its S3 event and the ingest queue.
 */
import { rm } from 'node:fs/promises';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { type LocalStack, localHome } from '../infra/local/stack.ts';
import { formatDuration } from '../lambdas/core/duration.ts';
import { SESSIONS } from '../lambdas/core/schema.ts';
import { formatIso } from '../lambdas/core/time.ts';
import { withStack } from './local.ts';
import { listPending, readSummary } from './state.ts';
import { formatTable } from './table.ts';

interface Row {
  user_id: number;
  visit_time: string;
  page: string;
}

interface SessionLine {
  user_id: string;
  start_time: string;
  end_time: string;
  duration_ms: number;
  visited_pages: { page: string; visit_time: string }[];
}

async function upload(
  stack: LocalStack,
  name: string,
  rows: Row[],
  print: (s: string) => void,
): Promise<void> {
  print(
    formatTable(
      ['user_id', 'visit_time', 'page'],
      rows.map((r) => [r.user_id, r.visit_time, r.page]),
    ),
  );
  const key = `${stack.config.visitsPrefix}${name}`;
  await stack.clients.s3.send(
    new PutObjectCommand({
      Bucket: stack.config.visitsBucket,
      Key: key,
      Body: `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`,
    }),
  );
  print(
    `uploaded s3://${stack.config.visitsBucket}/${key}; its S3 event goes through the queue to the handler...`,
  );
  const before = stack.delivered.length;
  await stack.idle();
  if (stack.deadLetters.length > 0) throw stack.deadLetters[0]!.error;
  for (const result of stack.delivered.slice(before)) {
    if (result.kind !== 'queue') continue;
    const visits = result.objects.reduce((n, o) => n + (o.entry?.visits ?? 0), 0);
    const rejected = result.objects.reduce((n, o) => n + (o.entry?.rejected ?? 0), 0);
    const c = result.catchUp;
    print(
      `processed: ${visits} visits (${c.accepted} accepted, ${c.duplicates} duplicates, ${c.late} late, ` +
        `${rejected} rejected), ${c.sessionsClosed} sessions closed; watermark now ${formatIso(c.watermark)}`,
    );
  }
}

async function showSessions(stack: LocalStack, print: (s: string) => void): Promise<SessionLine[]> {
  const sessions: SessionLine[] = [];
  for (const o of await stack.runtime.objects.listAll(stack.config.outputBucket, SESSIONS.prefix)) {
    const text = await stack.runtime.objects.getText(stack.config.outputBucket, o.key);
    for (const line of text.split('\n')) if (line) sessions.push(JSON.parse(line) as SessionLine);
  }
  sessions.sort((a, b) => a.user_id.localeCompare(b.user_id) || a.start_time.localeCompare(b.start_time));
  print('sessions:');
  print(
    formatTable(
      ['start_time', 'end_time', 'visited_pages', 'duration_ms', 'user_id'],
      sessions.map((s) => [
        s.start_time,
        s.end_time,
        `[${s.visited_pages.map((p) => p.page).join(', ')}]`,
        s.duration_ms,
        s.user_id,
      ]),
      120,
    ),
  );
  return sessions;
}

/**
 * Runs the walkthrough in `home` (the local stack's default home unless given), which it empties first, and leaves
 * the results there, so that `status`, `query` and `report` show them afterwards.
 */
export async function demo(options: { home?: string; print?: (s: string) => void; now?: number } = {}) {
  const print = options.print ?? ((s: string) => console.log(s));
  const home = localHome(options.home);
  print(
    `resetting the local stack's home ${home}: the demo starts from nothing and leaves its results there`,
  );
  await rm(home, { recursive: true, force: true });
  return await withStack({ home, env: {} }, async (stack) => {
    const { gapMs, allowedLatenessMs } = stack.config.session;
    print(`sessionizer demo on a local S3 (s3rver) and DynamoDB (dynalite) in ${home}`);
    print(`settings: gap ${formatDuration(gapMs)}, allowed lateness ${formatDuration(allowedLatenessMs)}\n`);
    // the walkthrough's times, ending a few minutes before now: visits ahead of the clock would be rejected
    const t2 = (options.now ?? Date.now()) - 6 * 60_000; // 18:09:18: user 4, an hour later
    const t0 = t2 - (63 * 60 + 44) * 1000; // 17:05:34
    const t1 = t0 + 73_000; // 17:06:47
    const at = (t: number) => formatIso(t);

    // the first two uploads hold the same four rows, at t0 and at t1
    const rowsAt = (t: number) => [
      { user_id: 1, visit_time: at(t), page: 'page_1.html' },
      { user_id: 1, visit_time: at(t), page: 'page_2.html' },
      { user_id: 2, visit_time: at(t), page: 'page_3.html' },
      { user_id: 3, visit_time: at(t), page: 'page_4.html' },
    ];

    print('1. generate the first rows');
    await upload(stack, 'visits-1.jsonl', rowsAt(t0), print);
    await showSessions(stack, print);

    print('\n2. generate new rows');
    await upload(stack, 'visits-2.jsonl', rowsAt(t1), print);
    await showSessions(stack, print);

    print('\n3. generate the closing rows: user 4, an hour later');
    await upload(stack, 'visits-3.jsonl', [{ user_id: 4, visit_time: at(t2), page: 'page_1.html' }], print);
    const sessions = await showSessions(stack, print);

    const state = await readSummary(stack.runtime, stack.config);
    const pending = await listPending(stack.runtime, stack.config);
    for (const p of pending) {
      print(
        `user ${p.userId} is still pending: its last visit at ${at(p.end)} closes once the watermark passes ` +
          `${at(p.end + gapMs)} (last visit + ${formatDuration(gapMs)} gap); the watermark is ${at(state.watermark)} ` +
          `(newest visit ${at(state.newestVisit)} - ${formatDuration(allowedLatenessMs)} allowed lateness).`,
      );
    }
    print('\nthe results stay in the local stack; next, try:');
    for (const line of NEXT_COMMANDS) print(`  ${line}`);
    return { sessions, pending, watermark: state.watermark };
  });
}

/** What to try after the demo: they read the same local stack. */
export const NEXT_COMMANDS = [
  'npx sessionizer status                                   # watermark, pending sessions, counters',
  'npx sessionizer query "SELECT count(*) FROM sessions"    # SQL over the outputs (DuckDB)',
  'npx sessionizer read pending                             # user 4, and when it closes',
  'npx sessionizer flush                                    # close user 4 now',
  'npx sessionizer report --out report.html                 # charts of the outputs',
];
