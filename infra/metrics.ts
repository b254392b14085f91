/**
 * The custom metrics the alarms and the dashboard read: the names, namespace and (absence of) dimensions the
 * function emits in embedded metric format (lambdas/telemetry.ts), imported so the two cannot drift apart.
 * The function emits them with no dimensions (`"Dimensions": [[]]`), so the alarms use none either: an alarm on a
 * dimensionless metric never sees data points that carry a dimension.
 */
import { METRIC_NAMESPACE, METRICS, type MetricName } from '../lambdas/telemetry.ts';

export const METRICS_NAMESPACE = METRIC_NAMESPACE;

/** Wall clock minus watermark at the end of an invocation, in seconds: the watermark-lag alarm's metric. */
export const WATERMARK_LAG_METRIC: MetricName = 'WatermarkLagSeconds';

/** Log entries the furthest-behind shard still has to apply, at the end of an invocation: the log-lag alarm's. */
export const LOG_LAG_METRIC: MetricName = 'LogLagObjects';

/** Levels at the end of an invocation, read by their maximum (never summed). */
export const GAUGE_METRICS: readonly MetricName[] = [WATERMARK_LAG_METRIC, LOG_LAG_METRIC];

/** The counters (unit Count, not a level), summed per period on the dashboard. */
export const COUNTER_METRICS: readonly MetricName[] = (Object.keys(METRICS) as MetricName[]).filter(
  (name) => METRICS[name] === 'Count' && !GAUGE_METRICS.includes(name),
);
