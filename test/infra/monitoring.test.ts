import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Match } from 'aws-cdk-lib/assertions';
import {
  COUNTER_METRICS,
  LOG_LAG_METRIC,
  METRICS_NAMESPACE,
  WATERMARK_LAG_METRIC,
} from '../../infra/metrics.ts';
import { only, type Resources } from './fixtures.ts';
import { queues, sessionizer, template } from './pipeline-fixtures.ts';

describe('pipeline stack: alarms and dashboard', () => {
  const queueName = (id: string) => [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [id, 'QueueName'] } }];

  it('alarms on function errors, both dead-letter queues, queue age, watermark lag or lead, and log lag', () => {
    template.resourceCountIs('AWS::CloudWatch::Alarm', 7);
  });

  it('alarms when the watermark is ahead of the clock (the lag metric below 0) for three periods', () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmName: 'sessionizer-watermark-ahead',
      Namespace: 'Sessionizer',
      MetricName: 'WatermarkLagSeconds',
      Statistic: 'Minimum',
      Threshold: 0,
      ComparisonOperator: 'LessThanThreshold',
      EvaluationPeriods: 3,
      DatapointsToAlarm: 3,
    });
  });

  it('alarms on any function error', () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmName: 'sessionizer-function-errors',
      Namespace: 'AWS/Lambda',
      MetricName: 'Errors',
      Dimensions: [{ Name: 'FunctionName', Value: { Ref: sessionizer.id } }],
      Statistic: 'Sum',
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
    });
  });

  it('alarms on any message in either dead-letter queue', () => {
    for (const [name, id] of [
      ['sessionizer-dead-letters', queues.deadLetters],
      ['sessionizer-ingest-dead-letters', queues.ingestDeadLetters],
    ] as const) {
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        AlarmName: name,
        Namespace: 'AWS/SQS',
        MetricName: 'ApproximateNumberOfMessagesVisible',
        Dimensions: queueName(id),
        Statistic: 'Maximum',
        Threshold: 0,
        ComparisonOperator: 'GreaterThanThreshold',
      });
    }
  });

  it('alarms when the oldest ingest message is more than 30 minutes old', () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmName: 'sessionizer-queue-age',
      Namespace: 'AWS/SQS',
      MetricName: 'ApproximateAgeOfOldestMessage',
      Dimensions: queueName(queues.ingest),
      Statistic: 'Maximum',
      Period: 300,
      Threshold: 1800,
      ComparisonOperator: 'GreaterThanThreshold',
    });
  });

  it('alarms on watermark lag over 2 hours, on the dimensionless metric with no unit filter', () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmName: 'sessionizer-watermark-lag',
      Namespace: METRICS_NAMESPACE,
      MetricName: WATERMARK_LAG_METRIC,
      Statistic: 'Maximum',
      Threshold: 7200,
      ComparisonOperator: 'GreaterThanThreshold',
      // The function emits dimensionless metrics, with their unit: the alarm filters on neither.
      Dimensions: Match.absent(),
      Unit: Match.absent(),
    });
  });

  it('alarms when a shard is more than 1000 objects behind the log for three 5-minute periods', () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmName: 'sessionizer-log-lag',
      Namespace: METRICS_NAMESPACE,
      MetricName: LOG_LAG_METRIC,
      Statistic: 'Maximum',
      Period: 300,
      EvaluationPeriods: 3,
      DatapointsToAlarm: 3,
      Threshold: 1000,
      ComparisonOperator: 'GreaterThanThreshold',
      Dimensions: Match.absent(),
      Unit: Match.absent(),
    });
  });

  it('notifies an encrypted SNS topic', () => {
    const topic = only(template, 'AWS::SNS::Topic');
    assert.ok(topic.resource.Properties.KmsMasterKeyId);
    template.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
    for (const alarm of Object.values(template.findResources('AWS::CloudWatch::Alarm') as Resources)) {
      assert.deepEqual(alarm.Properties.AlarmActions, [{ Ref: topic.id }]);
      assert.deepEqual(alarm.Properties.OKActions, [{ Ref: topic.id }]);
    }
    template.resourceCountIs('AWS::SNS::Subscription', 0);
  });

  describe('dashboard', () => {
    const body = JSON.stringify(
      only(template, 'AWS::CloudWatch::Dashboard').resource.Properties.DashboardBody,
    );
    /** A metric of the dashboard's JSON (escaped inside the Fn::Join string): namespace, name, then dimensions. */
    const shows = (namespace: string, name: string) => body.includes(`\\"${namespace}\\",\\"${name}\\"`);
    const showsQueueMetric = (name: string, queueId: string) =>
      new RegExp(
        `\\\\"AWS/SQS\\\\",\\\\"${name}\\\\",\\\\"QueueName\\\\",\\\\"",\\{"Fn::GetAtt":\\["${queueId}","QueueName"\\]\\}`,
      ).test(body);

    it('shows the function metrics and every custom metric', () => {
      for (const name of [...COUNTER_METRICS, WATERMARK_LAG_METRIC, LOG_LAG_METRIC]) {
        assert.ok(shows(METRICS_NAMESPACE, name), `${name} missing`);
      }
      for (const name of ['Invocations', 'Errors', 'Throttles', 'Duration', 'ConcurrentExecutions']) {
        assert.ok(shows('AWS/Lambda', name), `${name} missing`);
      }
    });

    it('sums the counters, never the lag levels', () => {
      for (const name of [
        'VisitsProcessed',
        'SessionsClosed',
        'LateVisits',
        'RejectedRecords',
        'Duplicates',
      ]) {
        assert.ok((COUNTER_METRICS as readonly string[]).includes(name), name);
      }
      for (const name of [WATERMARK_LAG_METRIC, LOG_LAG_METRIC])
        assert.ok(!COUNTER_METRICS.includes(name), name);
    });

    it('shows the ingest queue depth and age, and both dead-letter queues', () => {
      assert.ok(showsQueueMetric('ApproximateNumberOfMessagesVisible', queues.ingest), 'queue depth');
      assert.ok(showsQueueMetric('ApproximateAgeOfOldestMessage', queues.ingest), 'queue age');
      assert.ok(
        showsQueueMetric('ApproximateNumberOfMessagesVisible', queues.ingestDeadLetters),
        'ingest DLQ',
      );
      assert.ok(showsQueueMetric('ApproximateNumberOfMessagesVisible', queues.deadLetters), 'DLQ');
    });
  });
});
