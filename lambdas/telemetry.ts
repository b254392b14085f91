/**
 * Logs and metrics. In the function they go through Powertools for AWS Lambda: Logger (JSON lines with the request
 * id, level from POWERTOOLS_LOG_LEVEL or the function's log level) and Metrics (embedded metric format in the
 * `Sessionizer` namespace, with no dimensions, as the alarms and the dashboard read them, plus the cold-start metric).
 * The pipeline sees only the small {@link Telemetry} interface, so that tests and the CLI can pass their own.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';

export type Level = 'debug' | 'info' | 'warn' | 'error';

export interface Telemetry {
  log(level: Level, message: string, fields?: Record<string, unknown>): void;
  metrics(values: Partial<Record<MetricName, number>>): void;
}

export const METRIC_NAMESPACE = 'Sessionizer';

/** Every metric the function emits, with its CloudWatch unit. The stack's dashboard and alarms use these names. */
export const METRICS = {
  VisitsProcessed: MetricUnit.Count,
  SessionsClosed: MetricUnit.Count,
  LateVisits: MetricUnit.Count,
  RejectedRecords: MetricUnit.Count,
  Duplicates: MetricUnit.Count,
  StateWriteConflicts: MetricUnit.Count,
  WatermarkLagSeconds: MetricUnit.Seconds,
  ObjectsProcessed: MetricUnit.Count,
  /** Log entries the furthest-behind shard has still to apply, at the end of an invocation. */
  LogLagObjects: MetricUnit.Count,
} as const;
export type MetricName = keyof typeof METRICS;

/** Telemetry that drops everything (tests, benchmarks). */
export const silentTelemetry: Telemetry = { log() {}, metrics() {} };

/** Powertools' Logger and Metrics behind the {@link Telemetry} interface. */
export interface PowertoolsTelemetry extends Telemetry {
  readonly logger: Logger;
  /** Emits the cold-start metric on a container's first invocation (once; later calls do nothing). */
  coldStart(): void;
}

export function powertoolsTelemetry(serviceName: string): PowertoolsTelemetry {
  const logger = new Logger({ serviceName });
  const metrics = new Metrics({ namespace: METRIC_NAMESPACE, serviceName });
  // no default dimension (Powertools adds `service`): the alarms and the dashboard read dimensionless metrics
  metrics.clearDefaultDimensions();
  return {
    logger,
    log(level, message, fields = {}) {
      logger[level](message, fields);
    },
    metrics(values) {
      const names = Object.keys(values) as MetricName[];
      if (names.length === 0) return;
      for (const name of names) metrics.addMetric(name, METRICS[name], values[name]!);
      // one empty dimension set: `"Dimensions": [[]]`, a metric with no dimensions
      metrics.addDimensions({});
      metrics.publishStoredMetrics();
    },
    coldStart() {
      metrics.captureColdStartMetric();
    },
  };
}
