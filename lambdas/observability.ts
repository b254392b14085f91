/**
 * Structured JSON logs and CloudWatch embedded metric format (EMF). A log line is one JSON object; a metrics line
 * is an EMF document that CloudWatch turns into metrics in the `Sessionizer` namespace without any API call.
 */

export type Level = 'debug' | 'info' | 'warn' | 'error';

export interface Logger {
  log(level: Level, message: string, fields?: Record<string, unknown>): void;
  metrics(values: Partial<Record<MetricName, number>>, fields?: Record<string, unknown>): void;
}

export const METRIC_NAMESPACE = 'Sessionizer';

/** Every metric the function emits, with its CloudWatch unit. The stack's dashboard and alarms use these names. */
export const METRICS = {
  VisitsProcessed: 'Count',
  SessionsClosed: 'Count',
  LateVisits: 'Count',
  RejectedRecords: 'Count',
  Duplicates: 'Count',
  StateWriteConflicts: 'Count',
  WatermarkLagSeconds: 'Seconds',
  ObjectsProcessed: 'Count',
  /** Log entries the furthest-behind shard has still to apply, at the end of an invocation. */
  LogLagObjects: 'Count',
} as const;
export type MetricName = keyof typeof METRICS;

const LEVELS: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

function errorFields(value: unknown): unknown {
  if (value instanceof Error) {
    return {
      name: value.name,
      message: value.message,
      ...(value.cause ? { cause: errorFields(value.cause) } : {}),
    };
  }
  return value;
}

/** A logger writing JSON lines through `write` (stdout by default). */
export function jsonLogger(
  options: { write?: (line: string) => void; level?: Level; base?: Record<string, unknown> } = {},
): Logger {
  const write = options.write ?? ((line: string) => process.stdout.write(`${line}\n`));
  const min = LEVELS[options.level ?? 'info'];
  const base = options.base ?? {};
  return {
    log(level, message, fields = {}) {
      if (LEVELS[level] < min) return;
      const entry: Record<string, unknown> = { level, time: new Date().toISOString(), message, ...base };
      for (const [k, v] of Object.entries(fields)) entry[k] = errorFields(v);
      write(JSON.stringify(entry));
    },
    metrics(values, fields = {}) {
      const names = Object.keys(values) as MetricName[];
      if (names.length === 0) return;
      write(
        JSON.stringify({
          _aws: {
            Timestamp: Date.now(),
            CloudWatchMetrics: [
              {
                Namespace: METRIC_NAMESPACE,
                Dimensions: [[]],
                Metrics: names.map((name) => ({ Name: name, Unit: METRICS[name] })),
              },
            ],
          },
          ...base,
          ...fields,
          ...values,
        }),
      );
    },
  };
}

/** A logger that drops everything (tests, benchmarks). */
export const silentLogger: Logger = { log() {}, metrics() {} };
