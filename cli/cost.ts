/**
 * The price table and cost model of `replay` and `npm run bench`: what a million visits cost at on-demand list
 * prices in us-east-1, from the capacity and requests a run consumed. One table, with its sources:
 *
 * - DynamoDB on-demand: https://aws.amazon.com/dynamodb/pricing/on-demand/ (write and read request units)
 * - S3 Standard requests: https://aws.amazon.com/s3/pricing/ (PUT, COPY, POST, LIST; GET and others)
 * - Lambda on Arm: https://aws.amazon.com/lambda/pricing/ (per GB-second, per request)
 * - SQS standard queue: https://aws.amazon.com/sqs/pricing/ (per request, each 64 KB chunk a request)
 */

/** On-demand list prices, us-east-1, in USD. */
export const PRICES = {
  /** DynamoDB on-demand, per write request unit (1 KB written). */
  dynamoWriteUnit: 0.625 / 1e6,
  /** DynamoDB on-demand, per read request unit (4 KB read strongly, 8 KB eventually consistent). */
  dynamoReadUnit: 0.125 / 1e6,
  /** S3 Standard PUT, COPY, POST, LIST, per request. */
  s3PutOrList: 0.005 / 1000,
  /** S3 Standard GET and all other requests (HEAD), per request. */
  s3Get: 0.0004 / 1000,
  /** Lambda on Arm (Graviton), per GB-second. */
  lambdaGbSecond: 0.0000133334,
  /** Lambda, per request. */
  lambdaRequest: 0.2 / 1e6,
  /** SQS standard queue, per request. */
  sqsRequest: 0.4 / 1e6,
} as const;

/** The function's configured memory (the CDK setting memorySizeMb's default). */
export const LAMBDA_MEMORY_MB = 1024;

export function describePrices(): string[] {
  return [
    'DynamoDB on-demand: $0.625 per million write request units, $0.125 per million read request units',
    'S3 Standard: PUT/LIST $0.005 per 1,000 requests, GET/HEAD $0.0004 per 1,000 requests',
    `Lambda Arm: $0.0000133334 per GB-second at ${LAMBDA_MEMORY_MB} MB, $0.20 per million requests`,
    'SQS standard: $0.40 per million requests (a send per object, a receive and a delete per batch)',
  ];
}

export interface UsageSample {
  /** Input records (lines) the sample held. */
  readonly visits: number;
  /** Lambda invocations. */
  readonly invocations: number;
  /** SQS requests: one send per object, a receive and a delete per batch. */
  readonly sqsRequests: number;
  readonly writeUnits: number;
  readonly readUnits: number;
  readonly s3Get: number;
  readonly s3Put: number;
  readonly s3List: number;
  /** Wall-clock seconds of all handler invocations. */
  readonly handlerSeconds: number;
}

export interface CostBreakdown {
  readonly dynamoWrite: number;
  readonly dynamoRead: number;
  readonly s3: number;
  readonly lambdaCompute: number;
  readonly lambdaRequests: number;
  readonly sqs: number;
  readonly total: number;
}

/** USD per million visits, scaling the sample linearly. */
export function costPerMillionVisits(sample: UsageSample): CostBreakdown {
  const scale = sample.visits > 0 ? 1e6 / sample.visits : 0;
  const dynamoWrite = sample.writeUnits * scale * PRICES.dynamoWriteUnit;
  const dynamoRead = sample.readUnits * scale * PRICES.dynamoReadUnit;
  const s3 =
    (sample.s3Put + sample.s3List) * scale * PRICES.s3PutOrList + sample.s3Get * scale * PRICES.s3Get;
  const lambdaCompute = (LAMBDA_MEMORY_MB / 1024) * sample.handlerSeconds * scale * PRICES.lambdaGbSecond;
  const lambdaRequests = sample.invocations * scale * PRICES.lambdaRequest;
  const sqs = sample.sqsRequests * scale * PRICES.sqsRequest;
  return {
    dynamoWrite,
    dynamoRead,
    s3,
    lambdaCompute,
    lambdaRequests,
    sqs,
    total: dynamoWrite + dynamoRead + s3 + lambdaCompute + lambdaRequests + sqs,
  };
}
