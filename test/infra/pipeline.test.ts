import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Match } from 'aws-cdk-lib/assertions';
import { ENV } from '../../lambdas/config.ts';
import { EXPIRY_INDEX } from '../../lambdas/adapters/table-layout.ts';
import { LATE_VISITS, REJECTED, SESSIONS } from '../../lambdas/core/schema.ts';
import { COUNTER_METRICS, METRICS_NAMESPACE, WATERMARK_LAG_METRIC } from '../../infra/metrics.ts';
import { storageExportNames } from '../../infra/storage-stack.ts';
import { asList, iamStatements, only, type Resources, synth, type Json } from './fixtures.ts';

const { pipelineTemplate: template } = synth();
const exports = storageExportNames('sessionizer');
const imported = (name: string) => ({ 'Fn::ImportValue': name });
const s3Arn = (exportName: string, suffix = '') => ({
  'Fn::Join': [
    '',
    ['arn:', { Ref: 'AWS::Partition' }, ':s3:::', imported(exportName), ...(suffix ? [suffix] : [])],
  ],
});
const sessionizer = (() => {
  const all = Object.entries(template.findResources('AWS::Lambda::Function') as Resources);
  const found = all.filter(([, r]) => r.Properties.Environment?.Variables?.[ENV.table] !== undefined);
  assert.equal(found.length, 1);
  return { id: found[0]![0], props: found[0]![1].Properties };
})();

describe('pipeline stack: function', () => {
  it('runs Node 22 on ARM64 with the configured memory and timeout, and no reserved concurrency by default', () => {
    assert.equal(sessionizer.props.Runtime, 'nodejs22.x');
    assert.deepEqual(sessionizer.props.Architectures, ['arm64']);
    assert.equal(sessionizer.props.Handler, 'index.handler');
    assert.equal(sessionizer.props.MemorySize, 1024);
    assert.equal(sessionizer.props.Timeout, 300);
    assert.equal(sessionizer.props.ReservedConcurrentExecutions, undefined);
  });

  it('is configured by the environment variables lambdas/config.ts reads', () => {
    assert.deepEqual(sessionizer.props.Environment.Variables, {
      NODE_OPTIONS: '--enable-source-maps',
      [ENV.gap]: '40m',
      [ENV.allowedLateness]: '15m',
      [ENV.maxSessionDuration]: 'off',
      [ENV.idleTimeout]: 'off',
      [ENV.visitsBucket]: imported(exports.visitsBucketName),
      [ENV.visitsPrefix]: 'visits/',
      [ENV.outputBucket]: imported(exports.outputBucketName),
      [ENV.table]: imported(exports.tableName),
    });
  });

  it('logs JSON to its own log group with 30 days retention', () => {
    const { id } = only(template, 'AWS::Logs::LogGroup');
    template.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 30 });
    assert.deepEqual(sessionizer.props.LoggingConfig, { LogFormat: 'JSON', LogGroup: { Ref: id } });
  });

  it('has its own role with no managed policy', () => {
    const role = (template.findResources('AWS::IAM::Role') as Resources)[
      sessionizer.props.Role['Fn::GetAtt'][0]
    ]!;
    assert.equal(role.Properties.ManagedPolicyArns, undefined);
    assert.deepEqual(role.Properties.AssumeRolePolicyDocument.Statement, [
      { Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' } },
    ]);
  });
});

describe('pipeline stack: least privilege', () => {
  const roleId = sessionizer.props.Role['Fn::GetAtt'][0];
  const statements = iamStatements(template);
  const own = statements
    .filter(({ policy }) => {
      const p = (template.findResources('AWS::IAM::Policy') as Resources)[policy];
      return p?.Properties.Roles.some((r: Json) => r.Ref === roleId);
    })
    .map(({ statement }) => statement);
  const granting = (action: string) =>
    own.filter((s) => s.Effect === 'Allow' && asList(s.Action).includes(action));

  it('allows no wildcard action anywhere in the stack', () => {
    for (const { policy, statement } of statements) {
      if (statement.Effect !== 'Allow') continue;
      for (const action of asList<string>(statement.Action))
        assert.ok(!action.includes('*'), `${policy}: ${action}`);
    }
  });

  it('reads visit objects only under the visits prefix', () => {
    const [read, ...more] = granting('s3:GetObject');
    assert.equal(more.length, 0);
    assert.deepEqual(asList(read!.Action), ['s3:GetObject']);
    assert.deepEqual(read!.Resource, s3Arn(exports.visitsBucketName, '/visits/*'));
  });

  it('lists the visits bucket only under the visits prefix', () => {
    const [list, ...more] = granting('s3:ListBucket');
    assert.equal(more.length, 0);
    assert.deepEqual(list!.Resource, s3Arn(exports.visitsBucketName));
    assert.deepEqual(list!.Condition, { StringLike: { 's3:prefix': ['visits/*'] } });
  });

  it('puts objects only under sessions/, late-visits/ and rejected/ of the output bucket', () => {
    const puts = own.filter(
      (s) => s.Effect === 'Allow' && asList<string>(s.Action).some((a) => a.startsWith('s3:Put')),
    );
    assert.equal(puts.length, 1);
    assert.deepEqual(asList(puts[0]!.Action), ['s3:PutObject']);
    const expected = [SESSIONS, LATE_VISITS, REJECTED].map((d) =>
      s3Arn(exports.outputBucketName, `/${d.prefix}*`),
    );
    assert.deepEqual(
      asList(puts[0]!.Resource)
        .map((r) => JSON.stringify(r))
        .sort(),
      expected.map((r) => JSON.stringify(r)).sort(),
    );
  });

  it('uses the state table and its expiry index, by exact ARN, with the state store actions only', () => {
    const dynamo = own.filter((s) => asList<string>(s.Action).some((a) => a.startsWith('dynamodb:')));
    assert.equal(dynamo.length, 1);
    assert.deepEqual(asList<string>(dynamo[0]!.Action).sort(), [
      'dynamodb:BatchGetItem',
      'dynamodb:BatchWriteItem',
      'dynamodb:DeleteItem',
      'dynamodb:GetItem',
      'dynamodb:PutItem',
      'dynamodb:Query',
      'dynamodb:UpdateItem',
    ]);
    const resources = asList<Json>(dynamo[0]!.Resource).map((r) => JSON.stringify(r));
    assert.equal(resources.length, 2);
    assert.ok(resources.every((r) => r.includes(exports.tableName)));
    assert.ok(
      resources.some((r) => r.endsWith(`"/index/${EXPIRY_INDEX.name}"]]}`)),
      resources.join('\n'),
    );
    assert.ok(resources.every((r) => !r.includes('*')));
  });

  it('writes only to its own log group, and sends failures only to its DLQ', () => {
    const services = new Set(own.flatMap((s) => asList<string>(s.Action).map((a) => a.split(':')[0])));
    assert.deepEqual([...services].sort(), ['dynamodb', 'logs', 's3', 'sqs']);
    const logs = own.filter((s) => asList<string>(s.Action).some((a) => a.startsWith('logs:')));
    assert.deepEqual(
      logs.map((s) => s.Resource),
      [{ 'Fn::GetAtt': [only(template, 'AWS::Logs::LogGroup').id, 'Arn'] }],
    );
    const sqs = own.filter((s) => asList<string>(s.Action).some((a) => a.startsWith('sqs:')));
    assert.deepEqual(
      sqs.map((s) => s.Resource),
      [{ 'Fn::GetAtt': [only(template, 'AWS::SQS::Queue').id, 'Arn'] }],
    );
  });
});

describe('pipeline stack: triggers and dead letters', () => {
  const queue = only(template, 'AWS::SQS::Queue');

  it('retries asynchronous events twice, then sends them to the DLQ', () => {
    template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
      FunctionName: { Ref: sessionizer.id },
      MaximumRetryAttempts: 2,
      MaximumEventAgeInSeconds: 6 * 3600,
      DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': [queue.id, 'Arn'] } } },
    });
  });

  it('has an encrypted, TLS-only DLQ keeping messages 14 days', () => {
    assert.equal(queue.resource.Properties.SqsManagedSseEnabled, true);
    assert.equal(queue.resource.Properties.MessageRetentionPeriod, 14 * 86400);
    template.hasResourceProperties('AWS::SQS::QueuePolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ]),
      },
    });
  });

  it('invokes the function when a visit object is created under the prefix', () => {
    template.hasResourceProperties('Custom::S3BucketNotifications', {
      BucketName: imported(exports.visitsBucketName),
      Managed: false,
      NotificationConfiguration: {
        LambdaFunctionConfigurations: [
          {
            Events: ['s3:ObjectCreated:*'],
            Filter: { Key: { FilterRules: [{ Name: 'prefix', Value: 'visits/' }] } },
            LambdaFunctionArn: { 'Fn::GetAtt': [sessionizer.id, 'Arn'] },
          },
        ],
      },
    });
    template.hasResourceProperties('AWS::Lambda::Permission', {
      Action: 'lambda:InvokeFunction',
      Principal: 's3.amazonaws.com',
      FunctionName: { 'Fn::GetAtt': [sessionizer.id, 'Arn'] },
      SourceArn: s3Arn(exports.visitsBucketName),
    });
  });

  it('runs the function every 5 minutes with the standard Scheduled Event', () => {
    const { resource } = only(template, 'AWS::Events::Rule');
    assert.equal(resource.Properties.ScheduleExpression, 'rate(5 minutes)');
    const [target, ...more] = resource.Properties.Targets;
    assert.equal(more.length, 0);
    assert.deepEqual(target.Arn, { 'Fn::GetAtt': [sessionizer.id, 'Arn'] });
    // No Input: the function receives EventBridge's own event, detail-type "Scheduled Event".
    assert.equal(target.Input, undefined);
    assert.equal(target.InputTransformer, undefined);
    assert.deepEqual(target.DeadLetterConfig, { Arn: { 'Fn::GetAtt': [queue.id, 'Arn'] } });
    assert.equal(target.RetryPolicy.MaximumRetryAttempts, 2);
    template.hasResourceProperties('AWS::Lambda::Permission', {
      Principal: 'events.amazonaws.com',
      SourceArn: { 'Fn::GetAtt': [only(template, 'AWS::Events::Rule').id, 'Arn'] },
    });
  });
});

describe('pipeline stack: alarms and dashboard', () => {
  it('alarms on function errors, dead letters and watermark lag', () => {
    template.resourceCountIs('AWS::CloudWatch::Alarm', 3);
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'AWS/Lambda',
      MetricName: 'Errors',
      Dimensions: [{ Name: 'FunctionName', Value: { Ref: sessionizer.id } }],
      Statistic: 'Sum',
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
    });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'AWS/SQS',
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Threshold: 0,
      ComparisonOperator: 'GreaterThanThreshold',
    });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
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

  it('notifies an encrypted SNS topic', () => {
    const topic = only(template, 'AWS::SNS::Topic');
    assert.ok(topic.resource.Properties.KmsMasterKeyId);
    template.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
    for (const alarm of Object.values(template.findResources('AWS::CloudWatch::Alarm') as Resources)) {
      assert.deepEqual(alarm.Properties.AlarmActions, [{ Ref: topic.id }]);
    }
    template.resourceCountIs('AWS::SNS::Subscription', 0);
  });

  it('shows the function metrics and every custom metric on the dashboard', () => {
    const body = JSON.stringify(
      only(template, 'AWS::CloudWatch::Dashboard').resource.Properties.DashboardBody,
    );
    for (const name of [...COUNTER_METRICS, WATERMARK_LAG_METRIC]) {
      assert.ok(body.includes(`\\"${METRICS_NAMESPACE}\\",\\"${name}\\"`), `${name} missing`);
    }
    for (const name of ['Invocations', 'Errors', 'Throttles', 'Duration', 'ConcurrentExecutions']) {
      assert.ok(body.includes(`\\"AWS/Lambda\\",\\"${name}\\"`), `${name} missing`);
    }
    for (const name of [
      'VisitsProcessed',
      'SessionsClosed',
      'LateVisits',
      'RejectedRecords',
      'Duplicates',
      'StateWriteConflicts',
    ]) {
      assert.ok((COUNTER_METRICS as readonly string[]).includes(name), name);
    }
  });
});

describe('pipeline stack: settings reach the resources', () => {
  const { pipelineTemplate: custom } = synth({
    sessionGap: '30m',
    allowedLateness: '5m',
    maxSessionDuration: '4h',
    idleTimeout: '1h',
    scheduleRateMinutes: 15,
    visitsPrefix: 'in/',
    visitsSuffix: '.jsonl.gz',
    memorySizeMb: 2048,
    timeoutSeconds: 600,
    reservedConcurrency: 20,
    logRetentionDays: 90,
    maxEventAge: '1h',
    watermarkLagAlarm: '90m',
    alarmEmail: 'ops@example.com',
  });

  it('passes durations, prefix and sizes to the function', () => {
    custom.hasResourceProperties('AWS::Lambda::Function', {
      MemorySize: 2048,
      Timeout: 600,
      ReservedConcurrentExecutions: 20,
      Environment: {
        Variables: Match.objectLike({
          [ENV.gap]: '30m',
          [ENV.allowedLateness]: '5m',
          [ENV.maxSessionDuration]: '4h',
          [ENV.idleTimeout]: '1h',
          [ENV.visitsPrefix]: 'in/',
        }),
      },
    });
    custom.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 90 });
    custom.hasResourceProperties('AWS::Lambda::EventInvokeConfig', { MaximumEventAgeInSeconds: 3600 });
  });

  it('filters the notification on prefix and suffix, and scopes IAM to the prefix', () => {
    custom.hasResourceProperties('Custom::S3BucketNotifications', {
      NotificationConfiguration: {
        LambdaFunctionConfigurations: [
          Match.objectLike({
            Filter: {
              Key: {
                FilterRules: [
                  { Name: 'suffix', Value: '.jsonl.gz' },
                  { Name: 'prefix', Value: 'in/' },
                ],
              },
            },
          }),
        ],
      },
    });
    const statements = iamStatements(custom).map((s) => s.statement);
    const list = statements.find((s) => asList(s.Action).includes('s3:ListBucket'));
    assert.deepEqual(list?.Condition, { StringLike: { 's3:prefix': ['in/*'] } });
  });

  it('sets the schedule, the lag threshold and the e-mail subscription', () => {
    custom.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'rate(15 minutes)' });
    custom.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: WATERMARK_LAG_METRIC,
      Threshold: 5400,
    });
    custom.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: 'ops@example.com',
    });
  });
});
