/**
 * Scenarios recorded step by step on a local stack, so that no test depends on another test's order: a describe's
 * `before` runs its scenario once and records, after each step, what the stack shows; each test then asserts on
 * the step it is about, and passes alone (`--test-name-pattern`) or in any order.
 */
import type { FailedInvocation, LocalStack } from '../../infra/local/stack.ts';
import type { HandlerResult } from '../../lambdas/sessionizer.ts';
import { type OutputObject, readOutputs, watermarkOf } from './local.ts';

/** What a stack showed after a step of a scenario. */
export interface StackStep {
  /** Results of the queue's invocations until then, in order of completion (`stack.delivered` at that time). */
  readonly delivered: readonly HandlerResult[];
  /** Notifications and invocations that had failed for good until then (`stack.deadLetters` at that time). */
  readonly deadLetters: readonly FailedInvocation[];
  /** Every output object (sessions, late visits, rejected records), in key order. */
  readonly outputs: readonly OutputObject[];
  /** The watermark after the log's last entry (`-Infinity` before any). */
  readonly watermark: number;
}

/** Records what the stack shows now: its deliveries and dead letters so far, its outputs and its watermark. */
export async function recordStep(stack: LocalStack): Promise<StackStep> {
  return {
    delivered: [...stack.delivered],
    deadLetters: [...stack.deadLetters],
    outputs: await readOutputs(stack, ''),
    watermark: await watermarkOf(stack),
  };
}

/** The output objects of a step under a prefix (`sessions/`, `late-visits/`, `rejected/`, ...), as `readOutputs`. */
export function outputsUnder(step: StackStep, prefix: string): OutputObject[] {
  return step.outputs.filter((o) => o.key.startsWith(prefix));
}

/** The records of a step under a prefix, across objects, in key order, as `readRecords`. */
export function recordsUnder(step: StackStep, prefix: string): Record<string, unknown>[] {
  return outputsUnder(step, prefix).flatMap((o) => o.records);
}

/** What an action threw, or `undefined` if it did not throw: a refusal a scenario records, for a test to assert on. */
export async function errorOf(action: () => Promise<unknown>): Promise<unknown> {
  try {
    await action();
  } catch (error) {
    return error;
  }
  return undefined;
}
