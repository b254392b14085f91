/**
 * The local stack's servers: s3rver and dynalite started in-process on free loopback ports, unless endpoints are
 * given, and the buckets and the table created on them when missing.
 */
import { mkdir } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { CreateTableCommand, DescribeTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { CreateBucketCommand, HeadBucketCommand } from '@aws-sdk/client-s3';
// @ts-expect-error no types for dynalite
import dynalite from 'dynalite';
// @ts-expect-error no types for s3rver
import S3rver from 's3rver';
import type { Clients } from '../../lambdas/adapters/clients.ts';
import type { Config } from '../../lambdas/config.ts';
import { honourIfMatch, type S3rverEvents } from './s3-events.ts';
import { localTableDefinition } from './table.ts';

export interface ServerOptions {
  /** s3rver keeps its objects under `home/s3`, dynalite its tables under `home/dynamodb`. */
  readonly home: string;
  /** Endpoints already running: no server is started for those given. */
  readonly s3Endpoint: string | undefined;
  readonly dynamodbEndpoint: string | undefined;
  /** dynalite keeps nothing on disk. */
  readonly inMemory: boolean | undefined;
  /** Buckets s3rver creates at start. */
  readonly buckets: readonly string[];
}

export interface LocalServers {
  readonly s3Endpoint: string;
  readonly dynamodbEndpoint: string;
  /** The s3rver started here, for its object events; undefined when an S3 endpoint was given. */
  readonly s3rver: S3rverEvents | undefined;
  /** Stop the servers started here, in the order they were started. */
  readonly stops: (() => Promise<void>)[];
}

/** Starts s3rver and dynalite where no endpoint is given for them. */
export async function startServers(options: ServerOptions): Promise<LocalServers> {
  const stops: (() => Promise<void>)[] = [];
  let s3Endpoint = options.s3Endpoint;
  let dynamodbEndpoint = options.dynamodbEndpoint;
  let s3rver: S3rverEvents | undefined;
  if (!s3Endpoint) {
    await mkdir(join(options.home, 's3'), { recursive: true });
    const server = new S3rver({
      address: '127.0.0.1',
      port: 0,
      silent: true,
      directory: join(options.home, 's3'),
      configureBuckets: options.buckets.map((name) => ({ name })),
    });
    honourIfMatch(server);
    const address = (await server.run()) as AddressInfo;
    s3Endpoint = `http://127.0.0.1:${address.port}`;
    s3rver = server;
    stops.push(() => server.close());
  }
  if (!dynamodbEndpoint) {
    if (!options.inMemory) await mkdir(join(options.home, 'dynamodb'), { recursive: true });
    const server = dynalite({
      ...(options.inMemory ? {} : { path: join(options.home, 'dynamodb') }),
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
  return { s3Endpoint, dynamodbEndpoint, s3rver, stops };
}

/** Creates the buckets and the table of `config` where they do not exist yet. */
export async function ensureStorage(
  clients: Clients,
  dynamodbEndpoint: string,
  config: Pick<Config, 'visitsBucket' | 'outputBucket' | 'table' | 'region'>,
): Promise<void> {
  await ensureBucket(clients, config.visitsBucket);
  await ensureBucket(clients, config.outputBucket);
  await ensureTable(dynamodbEndpoint, config.region, config.table);
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
