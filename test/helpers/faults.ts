/**
 * Crash-and-retry harness over the local stack: the seed scenario on a stack whose AWS calls pass through the fault
 * controller (infra/local/faults.ts). Objects arrive as SQS batches, as the deployed event source mapping delivers
 * them; a crashed invocation is retried with the same batch, as SQS redelivers it after the visibility timeout.
 */

import { type FaultController, type FaultDecision, installFaults } from '../../infra/local/faults.ts';
import type { LocalStack } from '../../infra/local/stack.ts';
import type { HandlerResult } from '../../lambdas/sessionizer.ts';
import { s3Batch } from './events.ts';
import { MINUTE, putSeed, SEED, snapshotOutputs, startTestStack, TestClock } from './local.ts';

/** How far the clock moves before a retry (SQS's visibility timeout, say). */
const RETRY_DELAY = 2 * MINUTE;

export interface FaultStack {
  readonly stack: LocalStack;
  readonly faults: FaultController;
  readonly clock: TestClock;
  /** SQS batches of one S3 notification each, for the seed's three objects. */
  readonly events: unknown[];
}

/** A stack with faults installed, notifications off, the seed's objects put (not yet processed). */
export async function startFaultStack(env: Record<string, string> = {}): Promise<FaultStack> {
  const clock = new TestClock(Date.UTC(2026, 1, 16, 8, 0, 0));
  const stack = await startTestStack({ notifications: false, now: clock.now, env, deterministic: true });
  const faults = installFaults(stack.clients);
  const etags = await putSeed(stack);
  const events = SEED.map((file, i) =>
    s3Batch(stack.config.visitsBucket, [{ key: file.key, etag: etags[i] }]),
  );
  return { stack, faults, clock, events };
}

export interface CrashOutcome {
  /** Attempts until the invocation succeeded (1: the fault never fired). */
  readonly attempts: number;
  /** The errors of the failed attempts. */
  readonly errors: Error[];
  readonly result: HandlerResult;
}

/**
 * Invokes `event` with a fault at call `k` (1-based, counted from now) of kind `when`, then, as SQS and Lambda
 * would, retries the same event after the crash (the process revived, the clock moved on) until it succeeds. An
 * SQS batch that reports failed messages counts as failed too (those messages would come back).
 */
export async function invokeWithCrash(
  fs: FaultStack,
  event: unknown,
  k: number,
  when: Exclude<FaultDecision, undefined>,
  maxAttempts = 6,
): Promise<CrashOutcome> {
  const base = fs.faults.calls;
  fs.faults.setRule((call) => (call === base + k ? when : undefined));
  const errors: Error[] = [];
  try {
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      let result: HandlerResult | undefined;
      try {
        result = await fs.stack.invoke(event);
      } catch (error) {
        errors.push(error as Error);
      }
      const partial = result?.kind === 'queue' && result.batchItemFailures.length > 0;
      if (result !== undefined && !partial && !fs.faults.dead) return { attempts: attempt, errors, result };
      // the crashed "process" is gone: let its calls still in flight fail, then start a new one
      await new Promise((r) => setTimeout(r, 20));
      fs.faults.setRule(undefined);
      fs.faults.revive();
      fs.clock.advance(RETRY_DELAY);
    }
  } finally {
    fs.faults.setRule(undefined);
    fs.faults.revive();
  }
  throw new Error(`no success after ${maxAttempts} attempts: ${errors.map((e) => e.message).join('; ')}`);
}

/**
 * The clean run: the seed's three batches and a flush, with no fault. Returns calls per step, the commands the
 * handler called in order, and the outputs.
 */
export async function cleanRun(
  env: Record<string, string> = {},
): Promise<{ calls: number[]; log: string[]; outputs: Map<string, string> }> {
  const fs = await startFaultStack(env);
  try {
    const calls: number[] = [];
    const start = fs.faults.log.length;
    for (const event of [...fs.events, { action: 'flush', id: 'final' }]) {
      const before = fs.faults.calls;
      await fs.stack.invoke(event);
      calls.push(fs.faults.calls - before);
    }
    return { calls, log: fs.faults.log.slice(start), outputs: await snapshotOutputs(fs.stack) };
  } finally {
    await fs.stack.stop();
  }
}

/**
 * Invokes `event` once with a fault decided by `rule` (on calls counted from now); the invocation must fail. Then
 * the process is revived and the clock moved on, without retrying: the event is left for later.
 */
export async function invokeAndCrash(
  fs: FaultStack,
  event: unknown,
  rule: (k: number, command: string) => FaultDecision,
): Promise<Error> {
  const base = fs.faults.calls;
  fs.faults.setRule((call, command) => rule(call - base, command));
  let failure: Error | undefined;
  try {
    await fs.stack.invoke(event);
  } catch (error) {
    failure = error as Error;
  } finally {
    await new Promise((r) => setTimeout(r, 20));
    fs.faults.setRule(undefined);
    fs.faults.revive();
    fs.clock.advance(RETRY_DELAY);
  }
  if (!failure) throw new Error('the invocation was expected to crash, and succeeded');
  return failure;
}
