/** A state store on a stack's table and output bucket, made as the handler makes it (lambdas/runtime.ts). */
import type { Clients } from '../../lambdas/adapters/clients.ts';
import { DynamoStateStore, type DynamoStoreOptions } from '../../lambdas/adapters/dynamo-store.ts';
import { S3ObjectStore } from '../../lambdas/adapters/s3.ts';
import { S3PartObjects } from '../../lambdas/adapters/s3-parts.ts';
import type { Config } from '../../lambdas/config.ts';

type StoreClass<T> = new (client: Clients['ddb'], options: DynamoStoreOptions) => T;

/** The part objects of a stack's table, in its output bucket. */
export function partObjects(clients: Clients, config: Config): S3PartObjects {
  return new S3PartObjects(new S3ObjectStore(clients.s3), config.outputBucket, config.table);
}

/** A fresh store (nothing cached), of class `Store` (a test's subclass, say). */
export function stateStore<T extends DynamoStateStore = DynamoStateStore>(
  clients: Clients,
  config: Config,
  Store: StoreClass<T> = DynamoStateStore as StoreClass<T>,
): T {
  return new Store(clients.ddb, { table: config.table, parts: partObjects(clients, config) });
}
