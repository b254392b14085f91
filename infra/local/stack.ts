/**
 * The local stack: s3rver and dynalite started in-process on free loopback ports (or any endpoints given by
 * SESSIONIZER_S3_ENDPOINT / SESSIONIZER_DYNAMODB_ENDPOINT), the buckets and the table created as the CDK stack
 * defines them, and s3rver's object events turned into S3 notifications (keys URL-encoded as real S3 does) sent to
 * a local ingest queue that hands them to the handler in SQS batches, as the deployed event source mapping does.
 * State persists under SESSIONIZER_HOME (default ./.sessionizer).
 */
import { resolve } from 'node:path';
import { type Clients, createClients } from '../../lambdas/adapters/clients.ts';
import { type Config, ENV, loadConfig } from '../../lambdas/config.ts';
import { createRuntime, type Runtime } from '../../lambdas/runtime.ts';
import type { HandlerResult } from '../../lambdas/sessionizer.ts';
import { silentTelemetry, type Telemetry } from '../../lambdas/telemetry.ts';
import type { FaultController, FaultRule } from './faults.ts';
import { createInstance, type InstanceContext } from './instance.ts';
import { LocalQueue, type QueueOptions } from './queue.ts';
import { forwardObjectCreated, s3Notification } from './s3-events.ts';
import { ensureStorage, startServers } from './servers.ts';

export const LOCAL_NAMES = {
  visitsBucket: 'sessionizer-visits',
  outputBucket: 'sessionizer-sessions',
  table: 'sessionizer-state',
} as const;

export interface LocalStackOptions {
  /** Where s3rver and dynalite keep their data. @default $SESSIONIZER_HOME or ./.sessionizer */
  readonly home?: string;
  /** Keep nothing on disk (dynalite in memory; s3rver in `home`). */
  readonly inMemory?: boolean;
  /** Environment: endpoints, settings (gap, lateness...). @default process.env */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Send s3rver's object-created events to the ingest queue. @default true */
  readonly notifications?: boolean;
  /** The ingest queue's batching, concurrency and redrive. @default one invocation at a time, 10 messages */
  readonly queue?: QueueOptions;
  /** Retries of a failed direct invocation (schedule, flush), as Lambda's async retries. @default 2 */
  readonly retryAttempts?: number;
  readonly log?: Telemetry;
  /** Wall clock for the pipeline (tests). */
  readonly now?: () => number;
  /**
   * Fault injection on the handler's own clients (the stack's `clients`, used for uploads and reads, stay clean).
   * A failed invocation is retried: its queue messages come back, a direct invocation is invoked again.
   */
  readonly faults?: { readonly mode: 'crash' | 'transient'; readonly rule?: FaultRule };
  /** Shards caught up at once per invocation (the pipeline's default otherwise). */
  readonly shardConcurrency?: number;
  /** One shard at a time, always in the same order: the same calls in the same order on every run (crash tests). */
  readonly deterministic?: boolean;
}

export interface FailedInvocation {
  readonly event: unknown;
  readonly error: Error;
}

/** A Lambda "instance": its own SDK clients (with faults, if on) and runtime, like one warm container. */
export interface Instance {
  readonly runtime: Runtime;
  readonly faults: FaultController | undefined;
  /** Invocations made, and their wall-clock time together. */
  readonly invocations: number;
  readonly busyMs: number;
  /** Invokes the handler once. */
  invoke(event: unknown): Promise<HandlerResult>;
  /** Invokes the handler, retrying a failure like Lambda's async retries. */
  invokeWithRetries(event: unknown): Promise<HandlerResult>;
}

export interface LocalStack {
  readonly config: Config;
  readonly env: Record<string, string>;
  readonly home: string;
  /** The handler's runtime (its clients carry the faults, when on). */
  readonly runtime: Runtime;
  /** A runtime on the clean clients, for reading state and outputs without faults and without counting them. */
  readonly inspect: Runtime;
  readonly clients: Clients;
  /** The ingest queue S3 notifications go to. */
  readonly queue: LocalQueue;
  /** Sends an S3 notification for an object to the ingest queue (what S3 does on upload). */
  notify(key: string, etag?: string): void;
  /** Invokes the handler with an event, as Lambda would (no retries). */
  invoke(event: unknown): Promise<HandlerResult>;
  /** Resolves when the ingest queue is empty and nothing is in flight. */
  idle(): Promise<void>;
  /** Messages that failed `maxReceiveCount` times, and direct invocations that failed every retry. */
  readonly deadLetters: FailedInvocation[];
  /** Results of the queue's invocations, in order of completion. */
  readonly delivered: HandlerResult[];
  /** The fault controller of the main instance, when faults are on. */
  readonly faults: FaultController | undefined;
  /** Invokes the handler, retrying failures like Lambda's async retries. */
  invokeWithRetries(event: unknown): Promise<HandlerResult>;
  /** Invocations that failed and were retried (direct ones and queue batches). */
  readonly retries: number;
  /** Another independent handler instance (own clients), like a concurrent Lambda. */
  newInstance(): Instance;
  /** Every handler instance made so far (the main one first): their stores and object stores count usage. */
  instances(): readonly Instance[];
  stop(): Promise<void>;
}

/** The pipeline's environment: names and endpoints of the local stack, then any other setting of `baseEnv`. */
function localEnv(
  baseEnv: Readonly<Record<string, string | undefined>>,
  s3Endpoint: string,
  dynamodbEndpoint: string,
): Record<string, string> {
  const env: Record<string, string> = {
    [ENV.visitsBucket]: baseEnv[ENV.visitsBucket] ?? LOCAL_NAMES.visitsBucket,
    [ENV.outputBucket]: baseEnv[ENV.outputBucket] ?? LOCAL_NAMES.outputBucket,
    [ENV.table]: baseEnv[ENV.table] ?? LOCAL_NAMES.table,
    [ENV.s3Endpoint]: s3Endpoint,
    [ENV.dynamodbEndpoint]: dynamodbEndpoint,
    [ENV.region]: baseEnv[ENV.region] ?? 'us-east-1',
  };
  for (const name of Object.values(ENV)) {
    const value = baseEnv[name];
    if (value !== undefined && !(name in env)) env[name] = value;
  }
  return env;
}

/** The folder the local stack keeps its data in: `home` if given, else $SESSIONIZER_HOME, else ./.sessionizer. */
export function localHome(home: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return resolve(home ?? env.SESSIONIZER_HOME ?? '.sessionizer');
}

export async function startLocalStack(options: LocalStackOptions = {}): Promise<LocalStack> {
  const baseEnv = options.env ?? process.env;
  const home = localHome(options.home, baseEnv);
  const log = options.log ?? silentTelemetry;
  const { s3Endpoint, dynamodbEndpoint, s3rver, stops } = await startServers({
    home,
    s3Endpoint: baseEnv[ENV.s3Endpoint],
    dynamodbEndpoint: baseEnv[ENV.dynamodbEndpoint],
    inMemory: options.inMemory,
    buckets: [LOCAL_NAMES.visitsBucket, LOCAL_NAMES.outputBucket],
  });

  const env = localEnv(baseEnv, s3Endpoint, dynamodbEndpoint);
  const config = loadConfig(env);
  const clients = createClients({
    region: config.region,
    s3Endpoint,
    dynamodbEndpoint,
  });
  await ensureStorage(clients, dynamodbEndpoint, config);

  const now = options.now ?? Date.now;
  const deadLetters: FailedInvocation[] = [];
  const delivered: HandlerResult[] = [];
  const retryAttempts = options.retryAttempts ?? 2;
  const counts = { retries: 0 };
  const extraClients: Clients[] = [];
  const all: Instance[] = [];
  const context: InstanceContext = {
    options,
    config,
    clients,
    s3Endpoint,
    dynamodbEndpoint,
    log,
    now,
    retryAttempts,
    extraClients,
    counts,
  };

  const makeInstance = (shareClients: boolean): Instance => {
    const instance = createInstance(context, shareClients);
    all.push(instance);
    return instance;
  };
  const main = makeInstance(true);
  const workers: Instance[] = [main];
  const queue = new LocalQueue(
    async (event, worker) => {
      workers[worker] ??= makeInstance(false);
      try {
        const result = await workers[worker]!.invoke(event);
        delivered.push(result);
        return result.kind === 'queue' ? result : {};
      } catch (error) {
        counts.retries++;
        log.log('warn', 'queue batch failed; its messages come back', { error });
        throw error;
      }
    },
    {
      ...options.queue,
      ...(options.faults && options.queue?.maxReceiveCount === undefined
        ? { maxReceiveCount: retryAttempts + 1 }
        : {}),
    },
  );
  const queueDeadLetters = queue.deadLetters;

  const notify = (key: string, etag?: string): void => {
    queue.send(JSON.stringify(s3Notification(config.visitsBucket, key, etag)));
  };
  if (s3rver && options.notifications !== false) {
    forwardObjectCreated(
      s3rver,
      { bucket: config.visitsBucket, prefix: config.visitsPrefix, suffix: config.visitsSuffix },
      notify,
    );
  }

  return {
    config,
    env,
    home,
    runtime: main.runtime,
    // its own runtime, so that what is read to inspect never counts as the handler's usage
    inspect: createRuntime(config, { clients, log, now }),
    clients,
    queue,
    notify,
    invoke: (event) => main.invoke(event),
    idle: () => queue.idle(),
    get deadLetters() {
      return [
        ...queueDeadLetters.map((d) => ({ event: JSON.parse(d.message.body) as unknown, error: d.error })),
        ...deadLetters,
      ];
    },
    delivered,
    faults: main.faults,
    invokeWithRetries: (event) => main.invokeWithRetries(event),
    newInstance: () => makeInstance(false),
    instances: () => all,
    get retries() {
      return counts.retries;
    },
    stop: async () => {
      await queue.idle().catch(() => undefined);
      clients.s3.destroy();
      clients.ddb.destroy();
      for (const c of extraClients) {
        c.s3.destroy();
        c.ddb.destroy();
      }
      for (const stop of stops.reverse()) await stop();
    },
  };
}
