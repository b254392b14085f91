/**
 * The local stack: s3rver and dynalite started in-process on free loopback ports (or any endpoints given by
 * SESSIONIZER_S3_ENDPOINT / SESSIONIZER_DYNAMODB_ENDPOINT), the buckets and the table created as the CDK stack
 * defines them, and s3rver's object events turned into S3 notifications (keys URL-encoded as real S3 does) sent to
 * a local ingest queue that hands them to the handler in SQS batches, as the deployed event source mapping does.
 * State persists under SESSIONIZER_HOME (default ./.sessionizer).
 */
import { mkdir } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { CreateBucketCommand, HeadBucketCommand } from '@aws-sdk/client-s3';
import { CreateTableCommand, DescribeTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
// @ts-expect-error no types for dynalite
import dynalite from 'dynalite';
// @ts-expect-error no types for s3rver
import S3rver from 's3rver';
import { type Clients, createClients } from '../../lambdas/adapters/clients.ts';
import { type Config, ENV, loadConfig } from '../../lambdas/config.ts';
import { silentTelemetry, type Telemetry } from '../../lambdas/telemetry.ts';
import { type Runtime, createRuntime } from '../../lambdas/runtime.ts';
import { type HandlerResult, createHandler } from '../../lambdas/sessionizer.ts';
import { type FaultController, type FaultRule, faultRunRetryStrategy, installFaults } from './faults.ts';
import { LocalQueue, type QueueOptions } from './queue.ts';
import { localTableDefinition } from './table.ts';

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
  /** A runtime on the clean clients, for reading state and outputs without faults. */
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

/** An S3 notification for one object, as S3 sends it (key URL-encoded, ETag without quotes). */
export function s3Notification(bucket: string, key: string, etag: string | undefined): unknown {
  return {
    Records: [
      {
        eventSource: 'aws:s3',
        eventName: 'ObjectCreated:Put',
        s3: {
          bucket: { name: bucket },
          object: { key: encodeS3EventKey(key), ...(etag ? { eTag: etag } : {}) },
        },
      },
    ],
  };
}

/** Encodes a key as S3 notifications do: URL-encoding with `+` for a space, `/` kept. */
export function encodeS3EventKey(key: string): string {
  return key
    .split('/')
    .map((part) => encodeURIComponent(part).replace(/%20/g, '+'))
    .join('/');
}

interface KoaContext {
  method: string;
  status: number;
  body: unknown;
  type: string;
  get(header: string): string;
  response: { get(header: string): string };
}

/**
 * s3rver answers a GET with `If-Match` as if the header were absent; real S3 answers 412 PreconditionFailed when the
 * ETag differs (the pipeline relies on it to notice an object overwritten since its event). A Koa middleware in
 * front of s3rver's own adds that.
 */
function honourIfMatch(server: {
  middleware: ((ctx: KoaContext, next: () => Promise<void>) => Promise<void>)[];
}) {
  const bare = (etag: string) => etag.replace(/^W\//, '').replace(/"/g, '').trim();
  server.middleware.unshift(async (ctx, next) => {
    const ifMatch = ctx.get('if-match');
    await next();
    if (!ifMatch || ifMatch === '*' || ctx.method !== 'GET' || ctx.status !== 200) return;
    const etag = bare(ctx.response.get('ETag'));
    if (ifMatch.split(',').map(bare).includes(etag)) return;
    (ctx.body as { destroy?: () => void } | undefined)?.destroy?.();
    ctx.status = 412;
    ctx.type = 'application/xml';
    ctx.body =
      '<?xml version="1.0" encoding="UTF-8"?><Error><Code>PreconditionFailed</Code>' +
      '<Message>At least one of the pre-conditions you specified did not hold</Message></Error>';
  });
}

async function ensureBucket(clients: Clients, name: string): Promise<void> {
  try {
    await clients.s3.send(new HeadBucketCommand({ Bucket: name }));
  } catch {
    await clients.s3.send(new CreateBucketCommand({ Bucket: name }));
  }
}

async function ensureTable(endpoint: string, region: string, table: string): Promise<void> {
  const client = new DynamoDBClient({
    endpoint,
    region,
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  try {
    await client.send(new DescribeTableCommand({ TableName: table }));
  } catch {
    await client.send(new CreateTableCommand(localTableDefinition(table)));
  } finally {
    client.destroy();
  }
}

export async function startLocalStack(options: LocalStackOptions = {}): Promise<LocalStack> {
  const baseEnv = options.env ?? process.env;
  const home = resolve(options.home ?? baseEnv.SESSIONIZER_HOME ?? '.sessionizer');
  const log = options.log ?? silentTelemetry;
  const stops: (() => Promise<void>)[] = [];

  let s3Endpoint = baseEnv[ENV.s3Endpoint];
  let dynamodbEndpoint = baseEnv[ENV.dynamodbEndpoint];
  let s3rver: { on(event: string, fn: (e: unknown) => void): void; close(): Promise<void> } | undefined;
  if (!s3Endpoint) {
    await mkdir(join(home, 's3'), { recursive: true });
    const server = new S3rver({
      address: '127.0.0.1',
      port: 0,
      silent: true,
      directory: join(home, 's3'),
      configureBuckets: [{ name: LOCAL_NAMES.visitsBucket }, { name: LOCAL_NAMES.outputBucket }],
    });
    honourIfMatch(server);
    const address = (await server.run()) as AddressInfo;
    s3Endpoint = `http://127.0.0.1:${address.port}`;
    s3rver = server;
    stops.push(() => server.close());
  }
  if (!dynamodbEndpoint) {
    if (!options.inMemory) await mkdir(join(home, 'dynamodb'), { recursive: true });
    const server = dynalite({
      ...(options.inMemory ? {} : { path: join(home, 'dynamodb') }),
      createTableMs: 0,
      deleteTableMs: 0,
      updateTableMs: 0,
    });
    await new Promise<void>((ok, fail) =>
      server.listen(0, '127.0.0.1', (err?: Error) => (err ? fail(err) : ok())),
    );
    dynamodbEndpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    stops.push(() => new Promise<void>((ok) => server.close(() => ok())));
  }

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
  const config = loadConfig(env);
  const clients = createClients({
    region: config.region,
    s3Endpoint,
    dynamodbEndpoint,
  });
  await ensureBucket(clients, config.visitsBucket);
  await ensureBucket(clients, config.outputBucket);
  await ensureTable(dynamodbEndpoint, config.region, config.table);

  const now = options.now ?? Date.now;
  const deadLetters: FailedInvocation[] = [];
  const delivered: HandlerResult[] = [];
  const retryAttempts = options.retryAttempts ?? 2;
  let retries = 0;
  const extraClients: Clients[] = [];
  const all: Instance[] = [];

  const makeInstance = (shareClients: boolean): Instance => {
    let instanceClients = clients;
    let faults: FaultController | undefined;
    if (options.faults || !shareClients) {
      instanceClients = createClients({
        region: config.region,
        s3Endpoint,
        dynamodbEndpoint,
        ...(options.faults?.mode === 'transient' ? { retryStrategy: faultRunRetryStrategy() } : {}),
      });
      extraClients.push(instanceClients);
    }
    if (options.faults) {
      faults = installFaults(instanceClients, { mode: options.faults.mode });
      faults.setRule(options.faults.rule);
    }
    const runtime = createRuntime(config, {
      clients: instanceClients,
      log,
      now,
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
          if (attempt >= retryAttempts) throw error;
          retries++;
          log.log('warn', 'invocation failed; retrying', { error, attempt: attempt + 1 });
          await new Promise((r) => setTimeout(r, faults ? 1 : 20 * 2 ** attempt));
        }
      }
    };
    const instance: Instance = {
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
        retries++;
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
    s3rver.on('event', (raw: unknown) => {
      const event = raw as {
        Records?: {
          eventName?: string;
          s3?: { bucket?: { name?: string }; object?: { key?: string; eTag?: string } };
        }[];
      };
      const record = event.Records?.[0];
      const bucket = record?.s3?.bucket?.name;
      const key = record?.s3?.object?.key;
      if (!record?.eventName?.startsWith('ObjectCreated') || bucket !== config.visitsBucket || !key) return;
      if (!key.startsWith(config.visitsPrefix)) return;
      // s3rver gives raw keys; real S3 URL-encodes them (s3Notification does)
      notify(key, record.s3?.object?.eTag?.replace(/"/g, ''));
    });
  }

  return {
    config,
    env,
    home,
    runtime: main.runtime,
    inspect: options.faults ? createRuntime(config, { clients, log, now }) : main.runtime,
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
      return retries;
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
