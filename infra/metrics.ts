/**
 * The custom metrics the alarms and the dashboard read: the names, namespace and (absence of) dimensions the
 * function emits in embedded metric format (lambdas/observability.ts), imported so the two cannot drift apart.
 * The function emits them with no dimensions (`"Dimensions": [[]]`), so the alarms use none either: an alarm on a
 * dimensionless metric never sees data points that carry a dimension.
 */
import { METRIC_NAMESPACE, METRICS, type MetricName } from '../lambdas/observability.ts';

export const METRICS_NAMESPACE = METRIC_NAMESPACE;

/** Wall clock minus watermark at the end of an invocation, in seconds: the lag alarm's metric. */
export const WATERMARK_LAG_METRIC: MetricName = 'WatermarkLagSeconds';

/** The counters (unit Count), summed per period on the dashboard. */
export const COUNTER_METRICS: readonly MetricName[] = (Object.keys(METRICS) as MetricName[]).filter(
  (name) => METRICS[name] === 'Count',
);
