/**
 * The local stack: s3rver and dynalite started in-process on free loopback ports (or any endpoints given by
 * SESSIONIZER_S3_ENDPOINT / SESSIONIZER_DYNAMODB_ENDPOINT), the buckets and the table created as the CDK stack
 * defines them, and s3rver's object events turned into S3 notification events for the handler (keys URL-encoded
 * as real S3 does), with Lambda-like async retries. State persists under SESSIONIZER_HOME (default ./.sessionizer).
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
import { type Logger, silentLogger } from '../../lambdas/observability.ts';
import { type Runtime, createRuntime } from '../../lambdas/runtime.ts';
import { type HandlerResult, createHandler } from '../../lambdas/sessionizer.ts';
import { type FaultController, type FaultRule, faultRunRetryStrategy, installFaults } from './faults.ts';
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
  /** Deliver s3rver object events to the handler. @default true */
  readonly notifications?: boolean;
  /** Lambda-like async retries of a failed notification. @default 2 */
  readonly retryAttempts?: number;
  readonly log?: Logger;
  /** Wall clock for the pipeline (tests). */
  readonly now?: () => number;
  /**
   * Fault injection on the handler's own clients (the stack's `clients`, used for uploads and reads, stay clean).
   * A failed invocation is retried after its leases ran out (the stack's clock moves past the lease), as Lambda's
   * async retries or the scheduled catch-up would, up to `retryAttempts`.
   */
  readonly faults?: { readonly mode: 'crash' | 'transient'; readonly rule?: FaultRule };
  /** User operations in flight per invocation (the pipeline's default otherwise). */
  readonly concurrency?: number;
}

export interface FailedInvocation {
  readonly event: unknown;
  readonly error: Error;
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
  /** Invokes the handler with an event, as Lambda would (no retries). */
  invoke(event: unknown): Promise<HandlerResult>;
  /** Resolves when every delivered notification has been handled (with retries). */
  idle(): Promise<void>;
  /** Notifications that failed after all retries (the local dead-letter queue). */
  readonly deadLetters: FailedInvocation[];
  /** Results of handled notifications, in order. */
  readonly delivered: HandlerResult[];
  /** The fault controller, when faults are on. */
  readonly faults: FaultController | undefined;
  /** Invokes the handler, retrying failures like Lambda's async retries (clock moved past the lease). */
  invokeWithRetries(event: unknown): Promise<HandlerResult>;
  /** Invocations that failed and were retried. */
  readonly retries: number;
  /** Another independent handler instance (own clients), like a concurrent Lambda. */
  newInstance(): {
    invokeWithRetries(event: unknown): Promise<HandlerResult>;
    faults: FaultController | undefined;
  };
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

async function ensureTable(
  endpoint: string,
  region: string,
  table: string,
  expiryShards: number,
): Promise<void> {
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
    void expiryShards;
    client.destroy();
  }
}

export async function startLocalStack(options: LocalStackOptions = {}): Promise<LocalStack> {
  const baseEnv = options.env ?? process.env;
  const home = resolve(options.home ?? baseEnv.SESSIONIZER_HOME ?? '.sessionizer');
  const log = options.log ?? silentLogger;
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
  await ensureTable(dynamodbEndpoint, config.region, config.table, config.expiryShards);

  let clockOffset = 0;
  const baseNow = options.now ?? Date.now;
  const now = () => baseNow() + clockOffset;
  const deadLetters: FailedInvocation[] = [];
  const delivered: HandlerResult[] = [];
  let inFlight: Promise<void> = Promise.resolve();
  const retryAttempts = options.retryAttempts ?? 2;
  let retries = 0;
  const extraClients: Clients[] = [];

  /** A Lambda "instance": its own SDK clients (with faults, if on), runtime and handler. */
  const makeInstance = (shareClients: boolean) => {
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
      ...(options.concurrency ? { concurrency: options.concurrency } : {}),
    });
    const handler = createHandler(() => runtime, log);
    const invokeWithRetries = async (event: unknown, attempts = retryAttempts): Promise<HandlerResult> => {
      for (let attempt = 0; ; attempt++) {
        try {
          return faults ? await faults.run(() => handler(event)) : await handler(event);
        } catch (error) {
          if (attempt >= attempts) throw error;
          retries++;
          log.log('warn', 'invocation failed; retrying', { error, attempt: attempt + 1 });
          // the failed invocation is over: its leases run out before the retry, as Lambda retries after minutes
          faults?.revive();
          clockOffset += config.leaseMs + 1;
          await new Promise((r) => setTimeout(r, faults ? 1 : 50 * 2 ** attempt));
        }
      }
    };
    return { runtime, handler, faults, invokeWithRetries };
  };
  const main = makeInstance(true);
  const { runtime, handler, faults, invokeWithRetries } = main;

  const deliver = async (event: unknown): Promise<void> => {
    try {
      delivered.push(await invokeWithRetries(event));
    } catch (error) {
      deadLetters.push({ event, error: error as Error });
      log.log('error', 'notification failed after retries', { error, attempts: retryAttempts + 1 });
    }
  };

  if (s3rver && options.notifications !== false) {
    s3rver.on('event', (raw: unknown) => {
      const event = raw as {
        Records?: { eventName?: string; s3?: { bucket?: { name?: string }; object?: { key?: string } } }[];
      };
      const record = event.Records?.[0];
      const bucket = record?.s3?.bucket?.name;
      const key = record?.s3?.object?.key;
      if (!record?.eventName?.startsWith('ObjectCreated') || bucket !== config.visitsBucket || !key) return;
      if (!key.startsWith(config.visitsPrefix)) return;
      // s3rver gives raw keys; real S3 URL-encodes them
      record.s3!.object!.key = encodeS3EventKey(key);
      // one at a time, in upload order, like a Lambda with reserved concurrency 1
      inFlight = inFlight.then(() => deliver(event));
    });
  }

  return {
    config,
    env,
    home,
    runtime,
    inspect: options.faults ? createRuntime(config, { clients, log, now }) : runtime,
    clients,
    invoke: (event) => handler(event),
    idle: async () => {
      // a delivery may enqueue while we wait: wait until the chain is stable
      for (;;) {
        const current = inFlight;
        await current;
        await new Promise((r) => setImmediate(r));
        if (current === inFlight) return;
      }
    },
    deadLetters,
    delivered,
    faults,
    invokeWithRetries: (event) => invokeWithRetries(event),
    newInstance: () => {
      const instance = makeInstance(false);
      return { invokeWithRetries: (event) => instance.invokeWithRetries(event), faults: instance.faults };
    },
    get retries() {
      return retries;
    },
    stop: async () => {
      await inFlight.catch(() => undefined);
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
