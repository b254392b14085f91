/**
 * Alarms (function errors, dead letters of both queues, ingest queue age, watermark lag, log lag) to an encrypted
 * SNS topic, and a dashboard with the function's and the ingest queue's metrics and the pipeline's own
 * (infra/metrics.ts).
 */
import { Duration, type RemovalPolicy } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { COUNTER_METRICS, LOG_LAG_METRIC, METRICS_NAMESPACE, WATERMARK_LAG_METRIC } from '../metrics.ts';

export interface MonitoringProps {
  /** Prefix of alarm names and the dashboard name. */
  readonly name: string;
  readonly function: lambda.IFunction;
  /** Dead letters of asynchronous invocations (schedule, flush). */
  readonly deadLetterQueue: sqs.IQueue;
  /** S3 notifications waiting for the function. */
  readonly ingestQueue: sqs.IQueue;
  /** S3 notifications that failed every receive. */
  readonly ingestDeadLetterQueue: sqs.IQueue;
  /** Watermark lag above which the lag alarm fires. */
  readonly watermarkLagThreshold: Duration;
  /** Age of the ingest queue's oldest message above which the queue-age alarm fires. */
  readonly queueAgeThreshold: Duration;
  /** Log entries behind (the furthest-behind shard) above which the log-lag alarm fires. */
  readonly logLagThreshold: number;
  /** Subscribed to the alarm topic. @default - no subscription */
  readonly alarmEmail?: string;
  /** Of the topic's KMS key. */
  readonly removalPolicy: RemovalPolicy;
}

const PERIOD = Duration.minutes(5);
/** Periods (all of them breaching) before the log-lag alarm fires: a burst of uploads is caught up in minutes. */
export const LOG_LAG_EVALUATION_PERIODS = 3;

export class Monitoring extends Construct {
  readonly topic: sns.Topic;
  readonly errorsAlarm: cloudwatch.Alarm;
  readonly deadLettersAlarm: cloudwatch.Alarm;
  readonly ingestDeadLettersAlarm: cloudwatch.Alarm;
  readonly queueAgeAlarm: cloudwatch.Alarm;
  readonly watermarkLagAlarm: cloudwatch.Alarm;
  readonly watermarkAheadAlarm: cloudwatch.Alarm;
  readonly logLagAlarm: cloudwatch.Alarm;
  readonly dashboard: cloudwatch.Dashboard;

  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id);

    // CloudWatch can publish to an encrypted topic only with a customer managed key that lets it use the key.
    const key = new kms.Key(this, 'TopicKey', {
      description: `${props.name} alarm topic`,
      enableKeyRotation: true,
      removalPolicy: props.removalPolicy,
    });
    key.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'AllowCloudWatchAlarmsToPublish',
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        resources: ['*'],
      }),
    );
    this.topic = new sns.Topic(this, 'AlarmTopic', {
      displayName: `${props.name} alarms`,
      masterKey: key,
      enforceSSL: true,
    });
    if (props.alarmEmail) this.topic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));
    const notify = new actions.SnsAction(this.topic);

    const errors = props.function.metricErrors({ period: PERIOD, statistic: cloudwatch.Stats.SUM });
    this.errorsAlarm = new cloudwatch.Alarm(this, 'FunctionErrors', {
      alarmName: `${props.name}-function-errors`,
      alarmDescription:
        'The sessionizer function failed. Failed ingest messages come back after the visibility timeout (then go ' +
        'to the ingest DLQ); failed scheduled runs and flushes are retried twice (then go to the DLQ).',
      metric: errors,
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    const deadLetters = props.deadLetterQueue.metricApproximateNumberOfMessagesVisible({
      period: PERIOD,
      statistic: cloudwatch.Stats.MAXIMUM,
    });
    this.deadLettersAlarm = new cloudwatch.Alarm(this, 'DeadLetters', {
      alarmName: `${props.name}-dead-letters`,
      alarmDescription:
        'Scheduled runs or flushes that failed every retry are in the dead-letter queue: fix the cause, invoke ' +
        'again, then delete them.',
      metric: deadLetters,
      threshold: 0,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.MISSING,
    });

    const ingestDeadLetters = props.ingestDeadLetterQueue.metricApproximateNumberOfMessagesVisible({
      period: PERIOD,
      statistic: cloudwatch.Stats.MAXIMUM,
    });
    this.ingestDeadLettersAlarm = new cloudwatch.Alarm(this, 'IngestDeadLetters', {
      alarmName: `${props.name}-ingest-dead-letters`,
      alarmDescription:
        'S3 notifications that failed every receive are in the ingest dead-letter queue: fix the cause, then ' +
        'redrive them to the ingest queue (the scheduled catch-up also lists objects never ingested).',
      metric: ingestDeadLetters,
      threshold: 0,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.MISSING,
    });

    const queueDepth = props.ingestQueue.metricApproximateNumberOfMessagesVisible({
      period: PERIOD,
      statistic: cloudwatch.Stats.MAXIMUM,
    });
    const queueAge = props.ingestQueue.metricApproximateAgeOfOldestMessage({
      period: PERIOD,
      statistic: cloudwatch.Stats.MAXIMUM,
    });
    this.queueAgeAlarm = new cloudwatch.Alarm(this, 'QueueAge', {
      alarmName: `${props.name}-queue-age`,
      alarmDescription:
        `An S3 notification has waited more than ${props.queueAgeThreshold.toHumanString()} in the ingest queue: ` +
        'the function is failing on it (it comes back after each visibility timeout) or not keeping up.',
      metric: queueAge,
      threshold: props.queueAgeThreshold.toSeconds(),
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.MISSING,
    });

    const lag = new cloudwatch.Metric({
      namespace: METRICS_NAMESPACE,
      metricName: WATERMARK_LAG_METRIC,
      period: PERIOD,
      statistic: cloudwatch.Stats.MAXIMUM,
      // No unit: an alarm with a unit ignores data points emitted with another (or none).
    });
    this.watermarkLagAlarm = new cloudwatch.Alarm(this, 'WatermarkLag', {
      alarmName: `${props.name}-watermark-lag`,
      alarmDescription:
        `The watermark is more than ${props.watermarkLagThreshold.toHumanString()} behind the wall clock: no new ` +
        'visits, or the function is not keeping up. Sessions close only when the watermark moves.',
      metric: lag,
      threshold: props.watermarkLagThreshold.toSeconds(),
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.MISSING,
    });

    // the lag is negative while the watermark is ahead of the clock: visit times from producers whose clocks run
    // ahead (up to the allowed future skew; later ones are rejected), which closes sessions early
    this.watermarkAheadAlarm = new cloudwatch.Alarm(this, 'WatermarkAhead', {
      alarmName: `${props.name}-watermark-ahead`,
      alarmDescription:
        'The watermark is ahead of the wall clock: visits are dated in the future by more than the allowed ' +
        'lateness (a producer clock runs ahead, or writes local time as UTC). Sessions may close early.',
      metric: lag.with({ statistic: cloudwatch.Stats.MINIMUM }),
      threshold: 0,
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      evaluationPeriods: LOG_LAG_EVALUATION_PERIODS,
      datapointsToAlarm: LOG_LAG_EVALUATION_PERIODS,
      treatMissingData: cloudwatch.TreatMissingData.MISSING,
    });

    const logLag = new cloudwatch.Metric({
      namespace: METRICS_NAMESPACE,
      metricName: LOG_LAG_METRIC,
      period: PERIOD,
      statistic: cloudwatch.Stats.MAXIMUM,
    });
    this.logLagAlarm = new cloudwatch.Alarm(this, 'LogLag', {
      alarmName: `${props.name}-log-lag`,
      alarmDescription:
        `A shard has had more than ${props.logLagThreshold} logged objects still to apply for ` +
        `${LOG_LAG_EVALUATION_PERIODS * PERIOD.toMinutes()} minutes: the shards are not keeping up with the ` +
        'uploads, or one keeps failing. Sessions of a shard close only once it has applied the log.',
      metric: logLag,
      threshold: props.logLagThreshold,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: LOG_LAG_EVALUATION_PERIODS,
      datapointsToAlarm: LOG_LAG_EVALUATION_PERIODS,
      treatMissingData: cloudwatch.TreatMissingData.MISSING,
    });

    const alarms = [
      this.errorsAlarm,
      this.deadLettersAlarm,
      this.ingestDeadLettersAlarm,
      this.queueAgeAlarm,
      this.watermarkLagAlarm,
      this.watermarkAheadAlarm,
      this.logLagAlarm,
    ];
    for (const alarm of alarms) {
      alarm.addAlarmAction(notify);
      alarm.addOkAction(notify);
    }

    const fn = props.function;
    const counter = (metricName: string) =>
      new cloudwatch.Metric({
        namespace: METRICS_NAMESPACE,
        metricName,
        period: PERIOD,
        statistic: cloudwatch.Stats.SUM,
      });

    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: props.name,
      defaultInterval: Duration.hours(24),
      widgets: [
        [
          new cloudwatch.AlarmStatusWidget({
            title: 'Alarms',
            alarms,
            width: 24,
            height: 3,
          }),
        ],
        [
          new cloudwatch.GraphWidget({
            title: 'Invocations, errors, throttles',
            left: [
              fn.metricInvocations({ period: PERIOD, statistic: cloudwatch.Stats.SUM }),
              errors,
              fn.metricThrottles({ period: PERIOD, statistic: cloudwatch.Stats.SUM }),
            ],
            width: 8,
          }),
          new cloudwatch.GraphWidget({
            title: 'Duration',
            left: [
              fn.metricDuration({ period: PERIOD, statistic: cloudwatch.Stats.p(50), label: 'p50' }),
              fn.metricDuration({ period: PERIOD, statistic: cloudwatch.Stats.p(99), label: 'p99' }),
              fn.metricDuration({ period: PERIOD, statistic: cloudwatch.Stats.MAXIMUM, label: 'max' }),
            ],
            width: 8,
          }),
          new cloudwatch.GraphWidget({
            title: 'Concurrency',
            left: [
              fn.metric('ConcurrentExecutions', { period: PERIOD, statistic: cloudwatch.Stats.MAXIMUM }),
            ],
            width: 8,
          }),
        ],
        [
          new cloudwatch.GraphWidget({
            title: 'Ingest queue: messages waiting',
            left: [queueDepth.with({ label: 'waiting' })],
            width: 8,
          }),
          new cloudwatch.GraphWidget({
            title: 'Ingest queue: oldest message (seconds)',
            left: [queueAge.with({ label: 'oldest message' })],
            leftAnnotations: [
              { value: props.queueAgeThreshold.toSeconds(), label: 'alarm', color: cloudwatch.Color.RED },
            ],
            width: 8,
          }),
          new cloudwatch.GraphWidget({
            title: 'Dead letters',
            left: [
              ingestDeadLetters.with({ label: 'ingest (S3 notifications)' }),
              deadLetters.with({ label: 'scheduled runs and flushes' }),
            ],
            width: 8,
          }),
        ],
        [
          new cloudwatch.GraphWidget({
            title: 'Records',
            left: COUNTER_METRICS.map(counter),
            width: 8,
          }),
          new cloudwatch.GraphWidget({
            title: 'Watermark lag (seconds)',
            left: [lag],
            leftAnnotations: [
              { value: props.watermarkLagThreshold.toSeconds(), label: 'alarm', color: cloudwatch.Color.RED },
            ],
            width: 8,
          }),
          new cloudwatch.GraphWidget({
            title: 'Log lag (objects, furthest-behind shard)',
            left: [logLag],
            leftAnnotations: [{ value: props.logLagThreshold, label: 'alarm', color: cloudwatch.Color.RED }],
            width: 8,
          }),
        ],
      ],
    });
  }
}
