/**
 * Finishing the first layout's closings in flight, exactly as v1's `finishRun` (53639eb:lambdas/pipeline.ts) would
 * have: the run's listed users sorted and cut in groups of 500, each group written as one object per `dt` of its
 * sessions' starts, under `sessions/dt=<D>/<run>-<group>-<digest>.jsonl` with the digest of the sessions it holds.
 * Same keys, same bytes: an object the crashed run already wrote is rewritten identically, so each session of the
 * run ends written exactly once.
 */
import { createHash } from 'node:crypto';
import { partition, SESSIONS, sessionPartition, toJsonLine } from '../../lambdas/core/schema.ts';
import { cutSessions } from '../../lambdas/core/sessionize.ts';
import type { ClosedSession, SessionConfig } from '../../lambdas/core/types.ts';
import type { V1Closing, V1User } from './v1-items.ts';
import { closingVisits } from './v1-rules.ts';

/** Users whose sessions one output object (per `dt`) of a v1 closing holds. */
export const USERS_PER_OUTPUT_GROUP = 500;

export interface OutputObject {
  readonly key: string;
  readonly body: string;
  readonly sessions: number;
}

/** What finishing one closing takes: its output objects (none when the run had written them already). */
export interface ClosingPlan {
  readonly run: string;
  /** Listed users whose head the run froze. */
  readonly frozenUsers: readonly string[];
  /** The run's sessions were written by v1 before (only its users' finalization was left). */
  readonly writtenBefore: boolean;
  /** Sessions the run closes (written now, or before). */
  readonly sessions: number;
  readonly outputs: readonly OutputObject[];
}

/** The sessions one user contributes to `run`: those frozen by it, cut as v1 cut them. */
function runSessions(user: V1User | undefined, run: string, config: SessionConfig): ClosedSession[] {
  if (user?.closing?.run !== run) return [];
  return cutSessions(user.userId, closingVisits(user), config);
}

/** The output objects of a closing run, as v1's finishRun writes them. Pure. */
export function closingOutputs(
  closing: V1Closing,
  users: ReadonlyMap<string, V1User>,
  config: SessionConfig,
): OutputObject[] {
  const outputs: OutputObject[] = [];
  const sorted = [...closing.users].sort();
  for (let g = 0; g * USERS_PER_OUTPUT_GROUP < sorted.length; g++) {
    const group = sorted.slice(g * USERS_PER_OUTPUT_GROUP, (g + 1) * USERS_PER_OUTPUT_GROUP);
    const sessions = group.flatMap((u) => runSessions(users.get(u), closing.run, config));
    for (const [dt, list] of partition(sessions, sessionPartition)) {
      const body = list.map((s) => toJsonLine(SESSIONS, s)).join('');
      const digest = createHash('sha256');
      for (const s of list) digest.update(`${s.userId}\u0000${s.start}\n`);
      const key = `${SESSIONS.prefix}dt=${dt}/${closing.run}-${String(g).padStart(5, '0')}-${digest.digest('hex').slice(0, 12)}.jsonl`;
      outputs.push({ key, body, sessions: list.length });
    }
  }
  return outputs;
}

/** What finishing `closing` takes. */
export function planClosing(
  closing: V1Closing,
  users: ReadonlyMap<string, V1User>,
  config: SessionConfig,
): ClosingPlan {
  const frozenUsers = closing.users.filter((u) => users.get(u)?.closing?.run === closing.run);
  if (closing.written) {
    return { run: closing.run, frozenUsers, writtenBefore: true, sessions: closing.sessions, outputs: [] };
  }
  const outputs = closingOutputs(closing, users, config);
  return {
    run: closing.run,
    frozenUsers,
    writtenBefore: false,
    sessions: outputs.reduce((a, o) => a + o.sessions, 0),
    outputs,
  };
}

/**
 * Users frozen by a run that has no record: v1 deletes a record only after finalizing every user it froze, so this
 * is a table edited by hand or damaged. Migrate cannot tell whether their sessions were written.
 */
export function orphanedClosings(
  users: ReadonlyMap<string, V1User>,
  closings: ReadonlyMap<string, V1Closing>,
): { user: string; run: string }[] {
  const listed = new Map([...closings].map(([run, c]) => [run, new Set(c.users)]));
  const out: { user: string; run: string }[] = [];
  for (const u of users.values()) {
    const run = u.closing?.run;
    if (run !== undefined && !listed.get(run)?.has(u.userId)) out.push({ user: u.userId, run });
  }
  return out;
}
