/**
 * The local servers of the benchmark in a process of their own: s3rver and dynalite (in memory) with the buckets
 * and the table created as the CDK stack defines them (infra/local/stack.ts). The handler then runs in another
 * process, as Lambda runs apart from S3 and DynamoDB, so its measured time does not include the servers' CPU.
 *
 * Prints one line `BENCH_SERVERS {"s3":"http://...","dynamodb":"http://..."}` once ready; stops when its stdin
 * closes (the parent ended) or on SIGTERM.
 */
import { startLocalStack } from '../infra/local/stack.ts';

const home = process.argv[2];
if (!home) throw new Error('usage: servers.ts <home folder>');
const stack = await startLocalStack({ home, inMemory: true, env: {}, notifications: false });
let stopping = false;
const stop = async (): Promise<void> => {
  if (stopping) return;
  stopping = true;
  await stack.stop();
  process.exit(0);
};
process.on('SIGTERM', () => void stop());
process.stdin.on('end', () => void stop());
process.stdin.on('close', () => void stop());
process.stdin.resume();
process.stdout.write(
  `BENCH_SERVERS ${JSON.stringify({ s3: stack.config.s3Endpoint, dynamodb: stack.config.dynamodbEndpoint })}\n`,
);
