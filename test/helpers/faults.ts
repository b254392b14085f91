/**
 * Crash-and-retry harness over the local stack: the seed scenario on a stack whose AWS calls pass through the fault
 * controller (infra/local/faults.ts), with a test clock that is moved past the lease before each retry, as a Lambda
 * retry after a crash would find it.
 */
import type { HandlerResult } from '../../lambdas/sessionizer.ts';
import { type FaultController, type FaultDecision, installFaults } from '../../infra/local/faults.ts';
import type { LocalStack } from '../../infra/local/stack.ts';
import { s3Put } from './events.ts';
import { MINUTE, SEED, TestClock, putSeed, snapshotOutputs, startTestStack } from './local.ts';

/** Lease of the fault stacks; the clock moves twice this before each retry. */
export const LEASE = '1m';
const PAST_LEASE = 2 * MINUTE;

export interface FaultStack {
  readonly stack: LocalStack;
  readonly faults: FaultController;
  readonly clock: TestClock;
  /** S3 notifications of the seed's three objects. */
  readonly events: unknown[];
}

/** A stack with faults installed, notifications off, the seed's objects put (not yet processed). */
export async function startFaultStack(env: Record<string, string> = {}): Promise<FaultStack> {
  const clock = new TestClock(Date.UTC(2026, 1, 16, 8, 0, 0));
  const stack = await startTestStack({
    notifications: false,
    now: clock.now,
    env: { SESSIONIZER_LEASE: LEASE, ...env },
  });
  const faults = installFaults(stack.clients);
  const etags = await putSeed(stack);
  const events = SEED.map((file, i) => s3Put(stack.config.visitsBucket, file.key, etags[i]));
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
 * Invokes `event` with a fault at call `k` (1-based, counted from now) of kind `when`, then, as Lambda would, retries
 * the same event after the crash (the process revived, the clock moved past the lease) until it succeeds.
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
      if (result !== undefined && !fs.faults.dead) return { attempts: attempt, errors, result };
      // the crashed "process" is gone: let its calls still in flight fail, then start a new one after the lease
      await new Promise((r) => setTimeout(r, 20));
      fs.faults.setRule(undefined);
      fs.faults.revive();
      fs.clock.advance(PAST_LEASE);
    }
  } finally {
    fs.faults.setRule(undefined);
    fs.faults.revive();
  }
  throw new Error(`no success after ${maxAttempts} attempts: ${errors.map((e) => e.message).join('; ')}`);
}

/** The clean run: the seed's three batches and a flush, with no fault. Returns calls per step and the outputs. */
export async function cleanRun(): Promise<{ calls: number[]; outputs: Map<string, string> }> {
  const fs = await startFaultStack();
  try {
    const calls: number[] = [];
    for (const event of [...fs.events, { action: 'flush', id: 'final' }]) {
      const before = fs.faults.calls;
      await fs.stack.invoke(event);
      calls.push(fs.faults.calls - before);
    }
    return { calls, outputs: await snapshotOutputs(fs.stack) };
  } finally {
    await fs.stack.stop();
  }
}

/**
 * Invokes `event` once with a fault decided by `rule` (on calls counted from now); the invocation must fail. Then
 * the process is revived and the clock moved past the lease, without retrying: the event is left for later.
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
    fs.clock.advance(PAST_LEASE);
  }
  if (!failure) throw new Error('the invocation was expected to crash, and succeeded');
  return failure;
}
