/**
 * Lambda entry point, thin: recognise the event, hand it to the pipeline. Configuration and clients are made once
 * per container (on the first invocation) and reused. An SQS batch is ingested message by message, in order; a
 * message that fails is reported in `batchItemFailures` with every message after it, so that they come back and
 * keep their order in the log (Powertools' batch processor, in its ordered mode). Then every shard is brought up
 * to the objects' log entries; if that fails, the whole batch fails and comes back (its objects are duplicates then).
 */
import { processPartialResponse, SqsFifoPartialProcessorAsync } from '@aws-lambda-powertools/batch';
import type { Context, SQSRecord } from 'aws-lambda';
import { loadConfig } from './config.ts';
import { classifyEvent, objectsOfMessage, type SessionizerEvent } from './events.ts';
import type { CatchUpSummary, FlushSummary, IngestResult, ScheduledSummary } from './pipeline/index.ts';
import { createRuntime, type Runtime } from './runtime.ts';
import { type MetricName, powertoolsTelemetry, silentTelemetry, type Telemetry } from './telemetry.ts';

export type HandlerResult =
  | {
      readonly kind: 'queue';
      readonly batchItemFailures: { itemIdentifier: string }[];
      readonly objects: IngestResult[];
      readonly catchUp: CatchUpSummary;
    }
  | { readonly kind: 'objects'; readonly objects: IngestResult[]; readonly catchUp: CatchUpSummary }
  | { readonly kind: 'scheduled'; readonly summary: ScheduledSummary }
  | { readonly kind: 'flush'; readonly summary: FlushSummary }
  | { readonly kind: 'ignored'; readonly reason: string };

/** The metrics of an invocation (dimensionless, in the `Sessionizer` namespace: the alarms and dashboard read them). */
export function metricsOf(result: HandlerResult, now: number): Partial<Record<MetricName, number>> {
  const objects =
    result.kind === 'queue' || result.kind === 'objects'
      ? result.objects
      : result.kind === 'scheduled'
        ? result.summary.ingested
        : [];
  const catchUp =
    result.kind === 'queue' || result.kind === 'objects'
      ? result.catchUp
      : result.kind === 'scheduled' || result.kind === 'flush'
        ? result.summary.catchUp
        : undefined;
  if (catchUp === undefined) return {};
  const fresh = objects.filter((o) => o.outcome !== 'duplicate');
  return {
    ObjectsProcessed: fresh.length,
    VisitsProcessed: fresh.reduce((n, o) => n + (o.entry?.visits ?? 0), 0),
    RejectedRecords: fresh.reduce((n, o) => n + (o.entry?.rejected ?? 0), 0),
    SessionsClosed: catchUp.sessionsClosed,
    LateVisits: catchUp.late,
    Duplicates: catchUp.duplicates,
    StateWriteConflicts: catchUp.conflicts,
    LogLagObjects: catchUp.logLag,
    // negative when the watermark is ahead of the clock: visit times from the future (an alarm watches it)
    ...(Number.isFinite(catchUp.watermark) ? { WatermarkLagSeconds: (now - catchUp.watermark) / 1000 } : {}),
  };
}

/** Builds a handler over a given runtime (tests and the local stack pass their own), returning what it did. */
export function createHandler(getRuntime: () => Runtime, log: Telemetry = silentTelemetry) {
  return async (event: unknown): Promise<HandlerResult> => {
    const result = await run(event);
    const metrics = metricsOf(result, Date.now());
    if (Object.keys(metrics).length > 0) log.metrics(metrics);
    return result;
  };

  async function run(event: unknown): Promise<HandlerResult> {
    let parsed: SessionizerEvent;
    try {
      parsed = classifyEvent(event);
    } catch (error) {
      log.log('error', 'unknown event', { error });
      throw error;
    }
    const { pipeline } = getRuntime();
    switch (parsed.kind) {
      case 'queue': {
        const objects: IngestResult[] = [];
        const processor = new SqsFifoPartialProcessorAsync();
        const records = parsed.messages.map((m) => ({ ...m, eventSource: 'aws:sqs' }));
        const { batchItemFailures } = await processPartialResponse(
          { Records: records },
          async (record: SQSRecord) => {
            for (const ref of objectsOfMessage(record)) objects.push(await pipeline.ingest(ref));
          },
          processor,
        );
        for (const f of batchItemFailures)
          log.log('error', 'message failed', { messageId: f.itemIdentifier });
        const catchUp = await pipeline.catchUp(Math.max(0, ...objects.map((o) => o.entry?.seq ?? 0)));
        return { kind: 'queue', batchItemFailures, objects, catchUp };
      }
      case 'objects': {
        const summary = await pipeline.processObjects(parsed.objects);
        return { kind: 'objects', ...summary };
      }
      case 'scheduled':
        return { kind: 'scheduled', summary: await pipeline.scheduled(parsed.id) };
      case 'flush':
        return { kind: 'flush', summary: await pipeline.flush(parsed.id) };
      case 'ignored':
        log.log('info', 'event ignored', { reason: parsed.reason });
        return parsed;
    }
  }
}

let runtime: Runtime | undefined;
const telemetry = powertoolsTelemetry('sessionizer');
const handle = createHandler(() => {
  runtime ??= createRuntime(loadConfig(), { log: telemetry });
  return runtime;
}, telemetry);

/** The Lambda handler: an SQS batch answers only with its failed messages, as the event source mapping expects. */
export const handler = async (event: unknown, context?: Context): Promise<unknown> => {
  if (context) telemetry.logger.addContext(context); // the request id on every log line of this invocation
  telemetry.coldStart();
  const result = await handle(event);
  return result.kind === 'queue' ? { batchItemFailures: result.batchItemFailures } : result;
};
