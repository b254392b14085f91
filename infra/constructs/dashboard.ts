/**
 * The pipeline's dashboard: alarm states, the function's invocations, duration and concurrency, the ingest queue,
 * both dead-letter queues, and the pipeline's own metrics (infra/metrics.ts) with the alarm thresholds drawn in.
 */
import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type { Construct } from 'constructs';
import { COUNTER_METRICS, METRICS_NAMESPACE } from '../metrics.ts';
import type { MonitoringProps, WatchedMetrics } from './monitoring.ts';

export interface DashboardProps
  extends Pick<
    MonitoringProps,
    'name' | 'function' | 'queueAgeThreshold' | 'watermarkLagThreshold' | 'logLagThreshold'
  > {
  readonly alarms: cloudwatch.IAlarm[];
  readonly metrics: WatchedMetrics;
  /** Of every graph's data points. */
  readonly period: Duration;
}

/** Adds the dashboard (construct id `Dashboard`, named after the pipeline) to `scope`. */
export function addDashboard(scope: Construct, props: DashboardProps): cloudwatch.Dashboard {
  return new cloudwatch.Dashboard(scope, 'Dashboard', {
    dashboardName: props.name,
    defaultInterval: Duration.hours(24),
    widgets: [
      [
        new cloudwatch.AlarmStatusWidget({
          title: 'Alarms',
          alarms: props.alarms,
          width: 24,
          height: 3,
        }),
      ],
      functionRow(props),
      queueRow(props),
      pipelineRow(props),
    ],
  });
}

function functionRow({ function: fn, metrics, period }: DashboardProps): cloudwatch.IWidget[] {
  return [
    new cloudwatch.GraphWidget({
      title: 'Invocations, errors, throttles',
      left: [
        fn.metricInvocations({ period, statistic: cloudwatch.Stats.SUM }),
        metrics.errors,
        fn.metricThrottles({ period, statistic: cloudwatch.Stats.SUM }),
      ],
      width: 8,
    }),
    new cloudwatch.GraphWidget({
      title: 'Duration',
      left: [
        fn.metricDuration({ period, statistic: cloudwatch.Stats.p(50), label: 'p50' }),
        fn.metricDuration({ period, statistic: cloudwatch.Stats.p(99), label: 'p99' }),
        fn.metricDuration({ period, statistic: cloudwatch.Stats.MAXIMUM, label: 'max' }),
      ],
      width: 8,
    }),
    new cloudwatch.GraphWidget({
      title: 'Concurrency',
      left: [fn.metric('ConcurrentExecutions', { period, statistic: cloudwatch.Stats.MAXIMUM })],
      width: 8,
    }),
  ];
}

function queueRow({ metrics, queueAgeThreshold }: DashboardProps): cloudwatch.IWidget[] {
  return [
    new cloudwatch.GraphWidget({
      title: 'Ingest queue: messages waiting',
      left: [metrics.queueDepth.with({ label: 'waiting' })],
      width: 8,
    }),
    new cloudwatch.GraphWidget({
      title: 'Ingest queue: oldest message (seconds)',
      left: [metrics.queueAge.with({ label: 'oldest message' })],
      leftAnnotations: [
        { value: queueAgeThreshold.toSeconds(), label: 'alarm', color: cloudwatch.Color.RED },
      ],
      width: 8,
    }),
    new cloudwatch.GraphWidget({
      title: 'Dead letters',
      left: [
        metrics.ingestDeadLetters.with({ label: 'ingest (S3 notifications)' }),
        metrics.deadLetters.with({ label: 'scheduled runs and flushes' }),
      ],
      width: 8,
    }),
  ];
}

function pipelineRow(props: DashboardProps): cloudwatch.IWidget[] {
  const counter = (metricName: string) =>
    new cloudwatch.Metric({
      namespace: METRICS_NAMESPACE,
      metricName,
      period: props.period,
      statistic: cloudwatch.Stats.SUM,
    });
  return [
    new cloudwatch.GraphWidget({
      title: 'Records',
      left: COUNTER_METRICS.map(counter),
      width: 8,
    }),
    new cloudwatch.GraphWidget({
      title: 'Watermark lag (seconds)',
      left: [props.metrics.watermarkLag],
      leftAnnotations: [
        { value: props.watermarkLagThreshold.toSeconds(), label: 'alarm', color: cloudwatch.Color.RED },
      ],
      width: 8,
    }),
    new cloudwatch.GraphWidget({
      title: 'Log lag (objects, furthest-behind shard)',
      left: [props.metrics.logLag],
      leftAnnotations: [{ value: props.logLagThreshold, label: 'alarm', color: cloudwatch.Color.RED }],
      width: 8,
    }),
  ];
}
