/**
 * Runs the deployed handler (lambdas/sessionizer.ts) in a process of its own, as Lambda would, on the events given
 * as JSON in argv[2], each with a context whose request id is `req-<n>`: what it writes is the process's output.
 */
import type { Context } from 'aws-lambda';
import { handler } from '../../lambdas/sessionizer.ts';

const events = JSON.parse(process.argv[2] ?? '[]') as unknown[];
for (const [i, event] of events.entries()) {
  const context = {
    awsRequestId: `req-${i + 1}`,
    functionName: 'sessionizer-fn',
    functionVersion: '$LATEST',
    invokedFunctionArn: 'arn:aws:lambda:us-east-1:123456789012:function:sessionizer-fn',
    memoryLimitInMB: '1024',
    logGroupName: '/aws/lambda/sessionizer-fn',
    logStreamName: 'stream',
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => 60_000,
  } as unknown as Context;
  await handler(event, context);
}
