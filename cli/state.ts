/** Reading the pipeline's state for `status`, `read pending` and `replay`. */
import { pendingSessions } from '../lambdas/core/state.ts';
import type { PendingSession } from '../lambdas/core/types.ts';
import type { LocalStack } from '../infra/local/stack.ts';

export async function listPending(stack: LocalStack): Promise<PendingSession[]> {
  const { store } = stack.runtime;
  const all: PendingSession[] = [];
  for (const userId of await store.listUsers()) {
    const { head, chunks } = await store.readUser(userId);
    all.push(...pendingSessions(head, chunks, stack.config.session));
  }
  return all;
}

export async function countPending(stack: LocalStack): Promise<{ sessions: number; users: number }> {
  const pending = await listPending(stack);
  return { sessions: pending.length, users: new Set(pending.map((s) => s.userId)).size };
}
