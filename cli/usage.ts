/** What a local run consumed, summed over the handler instances: the input of the cost model (cli/cost.ts). */
import type { LocalStack } from '../infra/local/stack.ts';
import { type CostBreakdown, costPerMillionVisits, type UsageSample } from './cost.ts';

export interface RunUsage extends UsageSample {
  readonly cost: CostBreakdown;
}

/** Usage of every handler instance of a stack so far, and its cost per million of `visits`. */
export function stackUsage(stack: LocalStack, visits: number): RunUsage {
  let writeUnits = 0;
  let readUnits = 0;
  let s3Get = 0;
  let s3Put = 0;
  let s3List = 0;
  let busyMs = 0;
  let invocations = 0;
  for (const i of stack.instances()) {
    writeUnits += i.runtime.store.usage.writeUnits;
    readUnits += i.runtime.store.usage.readUnits;
    s3Get += i.runtime.objects.requests.get;
    s3Put += i.runtime.objects.requests.put;
    s3List += i.runtime.objects.requests.list;
    busyMs += i.busyMs;
    invocations += i.invocations;
  }
  const sample: UsageSample = {
    visits,
    invocations,
    sqsRequests: stack.queue.sent + 2 * stack.queue.invocations,
    writeUnits,
    readUnits,
    s3Get,
    s3Put,
    s3List,
    handlerSeconds: busyMs / 1000,
  };
  return { ...sample, cost: costPerMillionVisits(sample) };
}
