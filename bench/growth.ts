/**
 * Does the cost of a visit grow with the state? Two end-to-end runs, each file handled (one invocation of one
 * message) before the next is uploaded, the DynamoDB units of each invocation counted apart:
 *  - a long session: one user, `visits` visits a minute apart (every gap under 40 minutes: one session) over `files`
 *    files; the first files against the last ones, the session then holding everything before them;
 *  - many pending users: `users` users with one visit each, all within ten minutes (nothing closes: the watermark
 *    stays below every session's end + gap), over `files` files; the first files against the last ones, each shard
 *    then holding most of the users, and the flush that closes them all, apart.
 */
import type { LocalStack } from '../infra/local/stack.ts';
import { countParts } from './probes.ts';
import { benchStack, catchUps, type UsageCount, upload, usageNow, usageSince } from './stack.ts';

/** One file of a run, and what its invocation consumed. */
export interface FileUsage {
  readonly visits: number;
  readonly writeUnits: number;
  readonly readUnits: number;
  /** Bytes of the snapshots its commits wrote (compactions: the shard's whole state written again). */
  readonly snapshotBytes: number;
  /** Shard heads its invocation committed. */
  readonly commits: number;
}

/** Units per visit over a range of files. */
export interface Window {
  readonly files: string;
  readonly writeUnitsPerVisit: number;
  readonly readUnitsPerVisit: number;
}

export interface GrowthRun {
  readonly visits: number;
  readonly files: number;
  readonly perFile: FileUsage[];
  /** The first `window` files and the last `window` ones. */
  readonly first: Window;
  readonly last: Window;
  /** Write units per visit of the first and the last file that compacted nothing. */
  readonly steady: { readonly first: number; readonly last: number };
  /** The files whose commits compacted (1-based) and the snapshot bytes they wrote. */
  readonly compactions: { readonly file: number; readonly bytes: number }[];
  /** The flush after the files, per visit it closed. */
  readonly flush: {
    readonly writeUnitsPerVisit: number;
    readonly readUnitsPerVisit: number;
    seconds: number;
  };
  readonly sessionsClosed: number;
  readonly seconds: number;
  /** Sessions closed other than expected, or failed deliveries. */
  readonly errors: string[];
}

/** Units per visit of files `from` to `to` (0-based, exclusive). */
function window(perFile: readonly FileUsage[], from: number, to: number): Window {
  const part = perFile.slice(from, to);
  const visits = part.reduce((a, f) => a + f.visits, 0);
  return {
    files: `${from + 1}-${to}`,
    writeUnitsPerVisit: part.reduce((a, f) => a + f.writeUnits, 0) / visits,
    readUnitsPerVisit: part.reduce((a, f) => a + f.readUnits, 0) / visits,
  };
}

/** What the files did, summed up: windows, steady files, compactions. */
function summarize(perFile: readonly FileUsage[], n: number) {
  const files = perFile.length;
  const steady = perFile.filter((f) => f.snapshotBytes === 0).map((f) => f.writeUnits / f.visits);
  return {
    first: window(perFile, 0, n),
    last: window(perFile, files - n, files),
    steady: { first: steady[0] ?? Number.NaN, last: steady[steady.length - 1] ?? Number.NaN },
    compactions: perFile.flatMap((f, i) =>
      f.snapshotBytes > 0 ? [{ file: i + 1, bytes: f.snapshotBytes }] : [],
    ),
  };
}

/**
 * Uploads each file and waits for its invocation, then flushes. `lines(f)` gives file f's JSON Lines; the first and
 * last `n` files are compared.
 */
async function runFiles(
  stack: LocalStack,
  name: string,
  options: {
    files: number;
    window: number;
    lines: (f: number) => string[];
    /** Sessions the flush must have closed, with the files before it. */
    sessions: number;
    onFile?: (done: number) => void;
  },
): Promise<Omit<GrowthRun, 'visits' | 'files'>> {
  const started = performance.now();
  const perFile: FileUsage[] = [];
  const parts = countParts();
  let before: UsageCount = usageNow(stack);
  let snapshotBytes = parts.snapshotBytes;
  for (let f = 0; f < options.files; f++) {
    const body = options.lines(f);
    await upload(stack, `${name}-${String(f + 1).padStart(4, '0')}.jsonl`, Buffer.from(body.join('')));
    const delivered = stack.delivered.length;
    await stack.idle();
    const after = usageNow(stack);
    const used = usageSince(before, after, body.length);
    perFile.push({
      visits: body.length,
      writeUnits: used.writeUnits,
      readUnits: used.readUnits,
      snapshotBytes: parts.snapshotBytes - snapshotBytes,
      commits: catchUps(stack, delivered).reduce((a, c) => a + c.commits, 0),
    });
    before = after;
    snapshotBytes = parts.snapshotBytes;
    options.onFile?.(f + 1);
  }
  const errors = stack.deadLetters.map((d) => `${name}: a message failed: ${d.error.message}`);
  const t = performance.now();
  const flushed = await stack.invoke({ action: 'flush', id: name });
  const flushSeconds = (performance.now() - t) / 1000;
  if (flushed.kind !== 'flush') throw new Error(`${name}: flush gave ${flushed.kind}`);
  const used = usageSince(before, usageNow(stack), 0);
  const visits = perFile.reduce((a, f) => a + f.visits, 0);
  const closed =
    catchUps(stack).reduce((a, c) => a + c.sessionsClosed, 0) + flushed.summary.catchUp.sessionsClosed;
  if (closed !== options.sessions)
    errors.push(`${name}: ${closed} sessions closed, ${options.sessions} expected`);
  return {
    perFile,
    ...summarize(perFile, Math.min(options.window, Math.floor(options.files / 2))),
    flush: {
      writeUnitsPerVisit: used.writeUnits / visits,
      readUnitsPerVisit: used.readUnits / visits,
      seconds: flushSeconds,
    },
    sessionsClosed: closed,
    seconds: (performance.now() - started) / 1000,
    errors,
  };
}

const BASE = Date.UTC(2026, 1, 15, 6, 0, 0);

/** One user's session of `visits` visits a minute apart over `files` files. */
export async function runLongSession(options: { visits: number; files: number }): Promise<GrowthRun> {
  const { stack, stop } = await benchStack();
  try {
    const per = Math.ceil(options.visits / options.files);
    const run = await runFiles(stack, 'long', {
      files: options.files,
      window: 10,
      sessions: 1,
      lines: (f) => {
        const out: string[] = [];
        for (let i = f * per; i < Math.min(options.visits, (f + 1) * per); i++) {
          const t = new Date(BASE + i * 60_000 + (i % 7) * 113).toISOString();
          out.push(`{"user_id":"long-session-user","visit_time":"${t}","page":"page_${i % 37}.html"}\n`);
        }
        return out;
      },
    });
    return { visits: options.visits, files: options.files, ...run };
  } finally {
    await stop();
  }
}

/** `users` users with one visit each, all within ten minutes, over `files` files. */
export async function runPendingUsers(options: {
  users: number;
  files: number;
  onFile?: (done: number) => void;
}): Promise<GrowthRun> {
  const { stack, stop } = await benchStack();
  try {
    const per = Math.ceil(options.users / options.files);
    const step = 600_000 / options.users;
    // halves: a compaction writes the shard's whole state once its deltas outweigh the last snapshot, so a state
    // of doubling size is written at doubling intervals; halves each hold their share of it
    const run = await runFiles(stack, 'pending', {
      files: options.files,
      window: Math.floor(options.files / 2),
      sessions: options.users,
      lines: (f) => {
        const out: string[] = [];
        for (let i = f * per; i < Math.min(options.users, (f + 1) * per); i++) {
          const t = new Date(BASE + Math.floor(i * step)).toISOString();
          out.push(`{"user_id":${1_000_000 + i},"visit_time":"${t}","page":"page_${i % 997}.html"}\n`);
        }
        return out;
      },
      ...(options.onFile ? { onFile: options.onFile } : {}),
    });
    return { visits: options.users, files: options.files, ...run };
  } finally {
    await stop();
  }
}
