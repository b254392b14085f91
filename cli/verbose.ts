/**
 * `--verbose`: what the function would log and measure, as JSON lines on stderr (the function itself logs through
 * Powertools to CloudWatch; here stdout belongs to the command's output).
 */
import { METRIC_NAMESPACE, METRICS, type MetricName, type Telemetry } from '../lambdas/telemetry.ts';

function plain(value: unknown): unknown {
  if (value instanceof Error) {
    return {
      name: value.name,
      message: value.message,
      ...(value.cause ? { cause: plain(value.cause) } : {}),
    };
  }
  return value;
}

export function stderrTelemetry(write = (line: string) => process.stderr.write(`${line}\n`)): Telemetry {
  return {
    log(level, message, fields = {}) {
      const entry: Record<string, unknown> = { level, time: new Date().toISOString(), message };
      for (const [k, v] of Object.entries(fields)) entry[k] = plain(v);
      write(JSON.stringify(entry));
    },
    metrics(values) {
      const names = Object.keys(values) as MetricName[];
      if (names.length === 0) return;
      const metrics = names.map((name) => ({ Name: name, Unit: METRICS[name] }));
      const directive = { Namespace: METRIC_NAMESPACE, Dimensions: [[]], Metrics: metrics };
      write(JSON.stringify({ _aws: { Timestamp: Date.now(), CloudWatchMetrics: [directive] }, ...values }));
    },
  };
}
