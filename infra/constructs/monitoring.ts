/**
 * Alarms (function errors, dead letters of both queues, ingest queue age, watermark lag, log lag) to an encrypted
 * SNS topic, and a dashboard (dashboard.ts) with the function's and the ingest queue's metrics and the pipeline's
 * own (infra/metrics.ts).
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
import { LOG_LAG_METRIC, METRICS_NAMESPACE, WATERMARK_LAG_METRIC } from '../metrics.ts';
import { addDashboard } from './dashboard.ts';

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

/** The metrics both the alarms and the dashboard read. */
export interface WatchedMetrics {
  readonly errors: cloudwatch.Metric;
  readonly deadLetters: cloudwatch.Metric;
  readonly ingestDeadLetters: cloudwatch.Metric;
  readonly queueDepth: cloudwatch.Metric;
  readonly queueAge: cloudwatch.Metric;
  readonly watermarkLag: cloudwatch.Metric;
  readonly logLag: cloudwatch.Metric;
}

function watchedMetrics(props: MonitoringProps): WatchedMetrics {
  const maximum = { period: PERIOD, statistic: cloudwatch.Stats.MAXIMUM };
  return {
    errors: props.function.metricErrors({ period: PERIOD, statistic: cloudwatch.Stats.SUM }),
    deadLetters: props.deadLetterQueue.metricApproximateNumberOfMessagesVisible(maximum),
    ingestDeadLetters: props.ingestDeadLetterQueue.metricApproximateNumberOfMessagesVisible(maximum),
    queueDepth: props.ingestQueue.metricApproximateNumberOfMessagesVisible(maximum),
    queueAge: props.ingestQueue.metricApproximateAgeOfOldestMessage(maximum),
    // No unit: an alarm with a unit ignores data points emitted with another (or none).
    watermarkLag: new cloudwatch.Metric({
      namespace: METRICS_NAMESPACE,
      metricName: WATERMARK_LAG_METRIC,
      ...maximum,
    }),
    logLag: new cloudwatch.Metric({ namespace: METRICS_NAMESPACE, metricName: LOG_LAG_METRIC, ...maximum }),
  };
}

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
    this.topic = this.addAlarmTopic(props);
    const notify = new actions.SnsAction(this.topic);
    const metrics = watchedMetrics(props);

    const failures = this.addFailureAlarms(props, metrics);
    this.errorsAlarm = failures.errors;
    this.deadLettersAlarm = failures.deadLetters;
    this.ingestDeadLettersAlarm = failures.ingestDeadLetters;
    const lags = this.addLagAlarms(props, metrics);
    this.queueAgeAlarm = lags.queueAge;
    this.watermarkLagAlarm = lags.watermarkLag;
    this.watermarkAheadAlarm = lags.watermarkAhead;
    this.logLagAlarm = lags.logLag;

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

    this.dashboard = addDashboard(this, { ...props, alarms, metrics, period: PERIOD });
  }

  /** CloudWatch can publish to an encrypted topic only with a customer managed key that lets it use the key. */
  private addAlarmTopic(props: MonitoringProps): sns.Topic {
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
    const topic = new sns.Topic(this, 'AlarmTopic', {
      displayName: `${props.name} alarms`,
      masterKey: key,
      enforceSSL: true,
    });
    if (props.alarmEmail) topic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));
    return topic;
  }

  /** Failures an operator has to look at: function errors and messages in either dead-letter queue. */
  private addFailureAlarms(props: MonitoringProps, metrics: WatchedMetrics) {
    const errors = new cloudwatch.Alarm(this, 'FunctionErrors', {
      alarmName: `${props.name}-function-errors`,
      alarmDescription:
        'The sessionizer function failed. Failed ingest messages come back after the visibility timeout (then go ' +
        'to the ingest DLQ); failed scheduled runs and flushes are retried twice (then go to the DLQ).',
      metric: metrics.errors,
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    const deadLetters = new cloudwatch.Alarm(this, 'DeadLetters', {
      alarmName: `${props.name}-dead-letters`,
      alarmDescription:
        'Scheduled runs or flushes that failed every retry are in the dead-letter queue: fix the cause, invoke ' +
        'again, then delete them.',
      metric: metrics.deadLetters,
      threshold: 0,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.MISSING,
    });
    const ingestDeadLetters = new cloudwatch.Alarm(this, 'IngestDeadLetters', {
      alarmName: `${props.name}-ingest-dead-letters`,
      alarmDescription:
        'S3 notifications that failed every receive are in the ingest dead-letter queue: fix the cause, then ' +
        'redrive them to the ingest queue (the scheduled catch-up also lists objects never ingested).',
      metric: metrics.ingestDeadLetters,
      threshold: 0,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.MISSING,
    });
    return { errors, deadLetters, ingestDeadLetters };
  }

  /** The pipeline falling behind: the ingest queue's oldest message, the watermark's lag (or lead), the log lag. */
  private addLagAlarms(props: MonitoringProps, metrics: WatchedMetrics) {
    const queueAge = new cloudwatch.Alarm(this, 'QueueAge', {
      alarmName: `${props.name}-queue-age`,
      alarmDescription:
        `An S3 notification has waited more than ${props.queueAgeThreshold.toHumanString()} in the ingest queue: ` +
        'the function is failing on it (it comes back after each visibility timeout) or not keeping up.',
      metric: metrics.queueAge,
      threshold: props.queueAgeThreshold.toSeconds(),
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.MISSING,
    });
    const watermarkLag = new cloudwatch.Alarm(this, 'WatermarkLag', {
      alarmName: `${props.name}-watermark-lag`,
      alarmDescription:
        `The watermark is more than ${props.watermarkLagThreshold.toHumanString()} behind the wall clock: no new ` +
        'visits, or the function is not keeping up. Sessions close only when the watermark moves.',
      metric: metrics.watermarkLag,
      threshold: props.watermarkLagThreshold.toSeconds(),
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.MISSING,
    });
    // the lag is negative while the watermark is ahead of the clock: visit times from producers whose clocks run
    // ahead (up to the allowed future skew; later ones are rejected), which closes sessions early
    const watermarkAhead = new cloudwatch.Alarm(this, 'WatermarkAhead', {
      alarmName: `${props.name}-watermark-ahead`,
      alarmDescription:
        'The watermark is ahead of the wall clock: visits are dated in the future by more than the allowed ' +
        'lateness (a producer clock runs ahead, or writes local time as UTC). Sessions may close early.',
      metric: metrics.watermarkLag.with({ statistic: cloudwatch.Stats.MINIMUM }),
      threshold: 0,
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      evaluationPeriods: LOG_LAG_EVALUATION_PERIODS,
      datapointsToAlarm: LOG_LAG_EVALUATION_PERIODS,
      treatMissingData: cloudwatch.TreatMissingData.MISSING,
    });
    const logLag = new cloudwatch.Alarm(this, 'LogLag', {
      alarmName: `${props.name}-log-lag`,
      alarmDescription:
        `A shard has had more than ${props.logLagThreshold} logged objects still to apply for ` +
        `${LOG_LAG_EVALUATION_PERIODS * PERIOD.toMinutes()} minutes: the shards are not keeping up with the ` +
        'uploads, or one keeps failing. Sessions of a shard close only once it has applied the log.',
      metric: metrics.logLag,
      threshold: props.logLagThreshold,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: LOG_LAG_EVALUATION_PERIODS,
      datapointsToAlarm: LOG_LAG_EVALUATION_PERIODS,
      treatMissingData: cloudwatch.TreatMissingData.MISSING,
    });
    return { queueAge, watermarkLag, watermarkAhead, logLag };
  }
}
