/** Starting and stopping the local stack around a CLI command. */
import { type LocalStack, type LocalStackOptions, startLocalStack } from '../infra/local/stack.ts';

export async function withStack<T>(
  options: LocalStackOptions,
  run: (stack: LocalStack) => Promise<T>,
): Promise<T> {
  const stack = await startLocalStack(options);
  try {
    return await run(stack);
  } finally {
    await stack.stop();
  }
}
