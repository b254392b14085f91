/**
 * Fault injection for the local stack. Every AWS call made through a set of clients passes through one controller
 * that may fail it, in one of two modes:
 *
 * - `crash` (outermost, outside the SDK's retries): the call fails before its request is sent, or after its response
 *   arrived (the effect happened but the caller sees an error, as when a Lambda is killed right after the call).
 *   The "process" is then dead: every further call of that invocation fails. Invocations run through `run()` carry
 *   a generation, so calls still in flight from a crashed invocation keep failing after `revive()` (no zombies).
 * - `transient` (innermost, inside the SDK's retry loop): the call fails like a timeout or a 503 before the request,
 *   or after the response (so a retried conditional write may meet its own earlier success). The SDK retries it;
 *   only when its retries run out does the caller see the error.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Clients } from '../../lambdas/adapters/clients.ts';

/** The error an injected crash raises. */
export class InjectedFault extends Error {
  override readonly name = 'InjectedFault';
  constructor(
    readonly when: 'before' | 'after',
    readonly call: number,
    readonly command: string,
  ) {
    super(`injected fault ${when} call ${call} (${command})`);
  }
}

/** A transient failure the SDK's standard retry strategy retries (a 503 with a transient error name). */
export class InjectedTransientError extends Error {
  readonly $metadata = { httpStatusCode: 503 };
  readonly $retryable = {};
  constructor(
    override readonly name: string,
    readonly when: 'before' | 'after',
    readonly command: string,
  ) {
    super(`injected ${name} ${when} the request (${command})`);
  }
}

export type FaultDecision = 'before' | 'after' | undefined;
export type FaultRule = (call: number, command: string) => FaultDecision;

export interface FaultController {
  /** Calls (attempts, in transient mode) seen so far, all clients together. */
  readonly calls: number;
  /** Faults injected so far. */
  readonly injected: number;
  /** Names of the commands in call order (for reports). */
  readonly log: string[];
  /** True after a crash until `revive()`. */
  readonly dead: boolean;
  /** Ends the crashed generation: the next invocation runs; calls of the old one keep failing. */
  revive(): void;
  /** Runs an invocation in the current generation (calls outside any `run` are not generation-checked). */
  run<T>(fn: () => Promise<T>): Promise<T>;
  /** Sets the rule deciding each call's fault; `undefined` turns faults off. */
  setRule(rule: FaultRule | undefined): void;
}

export interface FaultOptions {
  readonly mode?: 'crash' | 'transient';
  /** Error name of transient faults: `TimeoutError` (default), `ThrottlingException`, `SlowDown`... */
  readonly transientName?: (command: string) => string;
}

/** A seeded PRNG (mulberry32): the same seed gives the same faults. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A rule failing each call with probability `p`, half before the request and half after the response. */
export function randomFaults(p: number, seed: number): FaultRule {
  const random = seededRandom(seed);
  return () => {
    if (random() >= p) return undefined;
    return random() < 0.5 ? 'before' : 'after';
  };
}

export function installFaults(clients: Clients, options: FaultOptions = {}): FaultController {
  const mode = options.mode ?? 'crash';
  const transientName = options.transientName ?? (() => 'TimeoutError');
  let calls = 0;
  let injected = 0;
  let dead = false;
  let generation = 0;
  let rule: FaultRule | undefined;
  const log: string[] = [];
  const als = new AsyncLocalStorage<{ generation: number }>();

  const crash =
    (next: (args: unknown) => Promise<unknown>, context: { commandName?: string }) =>
    async (args: unknown): Promise<unknown> => {
      const command = context.commandName ?? 'unknown';
      const call = ++calls;
      log.push(command);
      const store = als.getStore();
      if (dead || (store !== undefined && store.generation !== generation)) {
        throw new InjectedFault('before', call, command);
      }
      const decision = rule?.(call, command);
      if (decision === 'before') {
        injected++;
        dead = true;
        throw new InjectedFault('before', call, command);
      }
      const result = await next(args);
      if (decision === 'after') {
        injected++;
        dead = true;
        throw new InjectedFault('after', call, command);
      }
      return result;
    };

  const transient =
    (next: (args: unknown) => Promise<unknown>, context: { commandName?: string }) =>
    async (args: unknown): Promise<unknown> => {
      const command = context.commandName ?? 'unknown';
      const call = ++calls;
      log.push(command);
      const decision = rule?.(call, command);
      if (decision === 'before') {
        injected++;
        throw new InjectedTransientError(transientName(command), 'before', command);
      }
      const result = await next(args);
      if (decision === 'after') {
        injected++;
        throw new InjectedTransientError(transientName(command), 'after', command);
      }
      return result;
    };

  // crash: before the SDK's retry middleware (initialize); transient: after it, once per attempt (deserialize)
  const options_ =
    mode === 'crash'
      ? ({ step: 'initialize', name: 'sessionizerFaults', priority: 'high' } as const)
      : ({ step: 'deserialize', name: 'sessionizerFaults', priority: 'low' } as const);
  const middleware = mode === 'crash' ? crash : transient;
  clients.s3.middlewareStack.add(middleware as never, options_ as never);
  clients.ddb.middlewareStack.add(middleware as never, options_ as never);
  return {
    get calls() {
      return calls;
    },
    get injected() {
      return injected;
    },
    log,
    get dead() {
      return dead;
    },
    revive() {
      dead = false;
      generation++;
    },
    run(fn) {
      return als.run({ generation }, fn);
    },
    setRule(next) {
      rule = next;
    },
  };
}

interface Token {
  getRetryCount(): number;
  getRetryDelay(): number;
}

/**
 * A retry strategy for fault-injection runs only: the SDK's standard one keeps a retry quota (a token bucket) that
 * a 30% fault rate empties for good, after which every fault would surface. This one retries any retryable error up
 * to `maxAttempts` with a short exponential backoff and jitter, with no quota. Production keeps the standard one.
 */
export function faultRunRetryStrategy(maxAttempts = 8, baseDelayMs = 2) {
  const token = (count: number, delay: number): Token => ({
    getRetryCount: () => count,
    getRetryDelay: () => delay,
  });
  return {
    mode: 'standard',
    acquireInitialRetryToken: async (): Promise<Token> => token(0, 0),
    refreshRetryTokenForRetry: async (
      previous: Token,
      info: { errorType: string; error?: unknown },
    ): Promise<Token> => {
      const count = previous.getRetryCount() + 1;
      if (count >= maxAttempts || info.errorType === 'CLIENT_ERROR')
        throw info.error ?? new Error('retries exhausted');
      return token(count, Math.random() * baseDelayMs * 2 ** Math.min(count, 6));
    },
    recordSuccess: () => undefined,
  };
}
