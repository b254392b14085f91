/**
 * Alarms (function errors, dead letters, watermark lag) to an encrypted SNS topic, and a dashboard with the
 * function's metrics and the pipeline's own (infra/metrics.ts).
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
import { COUNTER_METRICS, METRICS_NAMESPACE, WATERMARK_LAG_METRIC } from '../metrics.ts';

export interface MonitoringProps {
  /** Prefix of alarm names and the dashboard name. */
  readonly name: string;
  readonly function: lambda.IFunction;
  readonly deadLetterQueue: sqs.IQueue;
  /** Watermark lag above which the lag alarm fires. */
  readonly watermarkLagThreshold: Duration;
  /** Subscribed to the alarm topic. @default - no subscription */
  readonly alarmEmail?: string;
  /** Of the topic's KMS key. */
  readonly removalPolicy: RemovalPolicy;
}

const PERIOD = Duration.minutes(5);

export class Monitoring extends Construct {
  readonly topic: sns.Topic;
  readonly errorsAlarm: cloudwatch.Alarm;
  readonly deadLettersAlarm: cloudwatch.Alarm;
  readonly watermarkLagAlarm: cloudwatch.Alarm;
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
        'The sessionizer function failed (each failed event is retried, then sent to the DLQ).',
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
        'Events that failed every retry are in the dead-letter queue: replay their objects, then delete them.',
      metric: deadLetters,
      threshold: 0,
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

    for (const alarm of [this.errorsAlarm, this.deadLettersAlarm, this.watermarkLagAlarm]) {
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
            alarms: [this.errorsAlarm, this.deadLettersAlarm, this.watermarkLagAlarm],
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
            title: 'Concurrency and dead letters',
            left: [
              fn.metric('ConcurrentExecutions', { period: PERIOD, statistic: cloudwatch.Stats.MAXIMUM }),
            ],
            right: [deadLetters],
            width: 8,
          }),
        ],
        [
          new cloudwatch.GraphWidget({
            title: 'Records',
            left: COUNTER_METRICS.map(counter),
            width: 12,
          }),
          new cloudwatch.GraphWidget({
            title: 'Watermark lag (seconds)',
            left: [lag],
            leftAnnotations: [
              { value: props.watermarkLagThreshold.toSeconds(), label: 'alarm', color: cloudwatch.Color.RED },
            ],
            width: 12,
          }),
        ],
      ],
    });
  }
}
