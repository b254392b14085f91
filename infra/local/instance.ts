/**
 * A Lambda "instance" of the local stack: the handler on its own SDK clients (with faults, if on) and runtime, like
 * one warm container, counting its invocations and retrying a failed one as Lambda's async retries do.
 */
import { type Clients, createClients } from '../../lambdas/adapters/clients.ts';
import type { Config } from '../../lambdas/config.ts';
import { createRuntime } from '../../lambdas/runtime.ts';
import { createHandler, type HandlerResult } from '../../lambdas/sessionizer.ts';
import type { Telemetry } from '../../lambdas/telemetry.ts';
import { type FaultController, faultRunRetryStrategy, installFaults } from './faults.ts';
import type { Instance, LocalStackOptions } from './stack.ts';

/** What every handler instance of one local stack shares. */
export interface InstanceContext {
  readonly options: LocalStackOptions;
  readonly config: Config;
  /** The clean clients: the main instance uses them when faults are off. */
  readonly clients: Clients;
  readonly s3Endpoint: string;
  readonly dynamodbEndpoint: string;
  readonly log: Telemetry;
  readonly now: () => number;
  readonly retryAttempts: number;
  /** Clients made for instances, destroyed when the stack stops. */
  readonly extraClients: Clients[];
  /** Invocations that failed and were retried, by any instance or the queue. */
  readonly counts: { retries: number };
}

/**
 * A handler instance: the shared clean clients when `shareClients` and faults are off, its own clients otherwise
 * (with the faults installed, when on).
 */
export function createInstance(context: InstanceContext, shareClients: boolean): Instance {
  const { options, config, log, counts } = context;
  let instanceClients = context.clients;
  let faults: FaultController | undefined;
  if (options.faults || !shareClients) {
    instanceClients = createClients({
      region: config.region,
      s3Endpoint: context.s3Endpoint,
      dynamodbEndpoint: context.dynamodbEndpoint,
      ...(options.faults?.mode === 'transient' ? { retryStrategy: faultRunRetryStrategy() } : {}),
    });
    context.extraClients.push(instanceClients);
  }
  if (options.faults) {
    faults = installFaults(instanceClients, { mode: options.faults.mode });
    faults.setRule(options.faults.rule);
  }
  const runtime = createRuntime(config, {
    clients: instanceClients,
    log,
    now: context.now,
    ...(options.shardConcurrency ? { shardConcurrency: options.shardConcurrency } : {}),
    ...(options.deterministic ? { shardConcurrency: 1, random: () => 0 } : {}),
  });
  const handler = createHandler(() => runtime, log);
  const stats = { invocations: 0, busyMs: 0 };
  const invoke = async (event: unknown): Promise<HandlerResult> => {
    const started = performance.now();
    stats.invocations++;
    try {
      return faults ? await faults.run(() => handler(event)) : await handler(event);
    } catch (error) {
      faults?.revive(); // the failed invocation is over; the next one runs
      throw error;
    } finally {
      stats.busyMs += performance.now() - started;
    }
  };
  const invokeWithRetries = async (event: unknown): Promise<HandlerResult> => {
    for (let attempt = 0; ; attempt++) {
      try {
        return await invoke(event);
      } catch (error) {
        if (attempt >= context.retryAttempts) throw error;
        counts.retries++;
        log.log('warn', 'invocation failed; retrying', { error, attempt: attempt + 1 });
        await new Promise((r) => setTimeout(r, faults ? 1 : 20 * 2 ** attempt));
      }
    }
  };
  return {
    runtime,
    faults,
    invoke,
    invokeWithRetries,
    get invocations() {
      return stats.invocations;
    },
    get busyMs() {
      return stats.busyMs;
    },
  };
}
