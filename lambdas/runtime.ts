/** Wires a Pipeline from a Config: clients, adapters, logger. Used by the handler, the CLI and the tests. */
import { type Clients, clientsFromConfig } from './adapters/clients.ts';
import { DynamoStateStore } from './adapters/dynamo-store.ts';
import { S3ObjectStore } from './adapters/s3.ts';
import { S3PartObjects } from './adapters/s3-parts.ts';
import type { Config } from './config.ts';
import { Pipeline, type PipelineDeps } from './pipeline/index.ts';
import { silentTelemetry, type Telemetry } from './telemetry.ts';

export interface Runtime {
  readonly pipeline: Pipeline;
  readonly store: DynamoStateStore;
  readonly objects: S3ObjectStore;
  readonly clients: Clients;
}

export function createRuntime(
  config: Config,
  options: { clients?: Clients; log?: Telemetry } & Omit<
    PipelineDeps,
    'config' | 'store' | 'objects' | 'log'
  > = {},
): Runtime {
  const clients = options.clients ?? clientsFromConfig(config);
  const objects = new S3ObjectStore(clients.s3);
  const store = new DynamoStateStore(clients.ddb, {
    table: config.table,
    parts: new S3PartObjects(objects, config.outputBucket, config.table),
    ...(options.now ? { now: options.now } : {}),
  });
  const pipeline = new Pipeline({ ...options, config, store, objects, log: options.log ?? silentTelemetry });
  return { pipeline, store, objects, clients };
}
