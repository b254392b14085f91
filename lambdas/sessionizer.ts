/**
 * Lambda entry point, thin: recognise the event, hand it to the pipeline. Configuration and clients are made once
 * per container (on the first invocation) and reused.
 */
import { loadConfig } from './config.ts';
import { type SessionizerEvent, classifyEvent } from './events.ts';
import { type Logger, jsonLogger } from './observability.ts';
import type { BatchSummary, ScheduledSummary } from './pipeline.ts';
import { type Runtime, createRuntime } from './runtime.ts';

export type HandlerResult =
  | { readonly kind: 'objects'; readonly batches: BatchSummary[] }
  | { readonly kind: 'scheduled'; readonly summary: ScheduledSummary }
  | { readonly kind: 'flush'; readonly sessionsClosed: number }
  | { readonly kind: 'ignored'; readonly reason: string };

/** Builds a handler over a given runtime (tests and the local stack pass their own). */
export function createHandler(getRuntime: () => Runtime, log: Logger = jsonLogger()) {
  return async (event: unknown): Promise<HandlerResult> => {
    let parsed: SessionizerEvent;
    try {
      parsed = classifyEvent(event);
    } catch (error) {
      log.log('error', 'unknown event', { error });
      throw error;
    }
    const { pipeline } = getRuntime();
    switch (parsed.kind) {
      case 'objects': {
        const batches: BatchSummary[] = [];
        for (const ref of parsed.objects) batches.push(await pipeline.processObject(ref));
        return { kind: 'objects', batches };
      }
      case 'scheduled':
        return { kind: 'scheduled', summary: await pipeline.scheduled(parsed.id) };
      case 'flush':
        return { kind: 'flush', sessionsClosed: await pipeline.flush(parsed.id) };
      case 'ignored':
        log.log('info', 'event ignored', { reason: parsed.reason });
        return parsed;
    }
  };
}

let runtime: Runtime | undefined;
const log = jsonLogger({ base: { service: 'sessionizer' } });

export const handler = createHandler(() => {
  runtime ??= createRuntime(loadConfig(), { log });
  return runtime;
}, log);
