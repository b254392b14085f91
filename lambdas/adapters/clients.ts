/**
 * SDK clients, made once per process and injected into the adapters. Endpoints may point at local servers
 * (s3rver, dynalite) or any S3/DynamoDB-compatible endpoint. Throttling (DynamoDB ProvisionedThroughputExceeded,
 * S3 SlowDown/503) is retried by the SDK's own standard retry strategy with exponential backoff and jitter.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Config } from '../config.ts';

export interface Clients {
  readonly s3: S3Client;
  readonly ddb: DynamoDBDocumentClient;
}

export interface ClientOptions {
  readonly region: string;
  readonly s3Endpoint?: string;
  readonly dynamodbEndpoint?: string;
  /** Total attempts per call, including the first. @default 8 */
  readonly maxAttempts?: number;
  /** Credentials for local endpoints; in AWS the default provider chain is used. */
  readonly credentials?: { accessKeyId: string; secretAccessKey: string };
  /** Replaces the SDK's standard retry strategy (fault-injection runs only). */
  readonly retryStrategy?: unknown;
}

const LOCAL_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

export function createClients(options: ClientOptions): Clients {
  const local = options.s3Endpoint !== undefined || options.dynamodbEndpoint !== undefined;
  const credentials = options.credentials ?? (local ? LOCAL_CREDENTIALS : undefined);
  const common = {
    region: options.region,
    maxAttempts: options.maxAttempts ?? 8,
    retryMode: 'standard',
    ...(credentials ? { credentials } : {}),
    ...(options.retryStrategy ? { retryStrategy: options.retryStrategy as never } : {}),
  };
  const s3 = new S3Client({
    ...common,
    ...(options.s3Endpoint ? { endpoint: options.s3Endpoint, forcePathStyle: true } : {}),
    // s3rver stores streamed bodies with aws-chunked framing otherwise
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  const ddb = DynamoDBDocumentClient.from(
    new DynamoDBClient({
      ...common,
      ...(options.dynamodbEndpoint ? { endpoint: options.dynamodbEndpoint } : {}),
    }),
    { marshallOptions: { removeUndefinedValues: true } },
  );
  return { s3, ddb };
}

export function clientsFromConfig(config: Config): Clients {
  return createClients({
    region: config.region,
    ...(config.s3Endpoint ? { s3Endpoint: config.s3Endpoint } : {}),
    ...(config.dynamodbEndpoint ? { dynamodbEndpoint: config.dynamodbEndpoint } : {}),
  });
}
