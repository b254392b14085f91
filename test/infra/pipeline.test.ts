import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Match } from 'aws-cdk-lib/assertions';
import { LOG_LAG_METRIC, WATERMARK_LAG_METRIC } from '../../infra/metrics.ts';
import { STATE_PREFIX } from '../../lambdas/adapters/s3-parts.ts';
import { ENV } from '../../lambdas/config.ts';
import { LATE_VISITS, REJECTED, SESSIONS } from '../../lambdas/core/schema.ts';
import { STAGING_PREFIX } from '../../lambdas/pipeline/staging.ts';
import { asList, iamStatements, type Json, logicalId, only, type Resources, synth } from './fixtures.ts';
import { arnOf, exports, imported, queues, s3Arn, sessionizer, template } from './pipeline-fixtures.ts';

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
      [ENV.maxSessionVisits]: '50000',
      [ENV.maxFutureSkew]: '1h',
      [ENV.idleTimeout]: 'off',
      [ENV.shards]: '16',
      [ENV.visitsBucket]: imported(exports.visitsBucketName),
      [ENV.visitsPrefix]: 'visits/',
      [ENV.visitsSuffix]: '',
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
  const resourcesOf = (list: Record<string, Json>[]) =>
    list
      .flatMap((s) => asList<Json>(s.Resource))
      .map((r) => JSON.stringify(r))
      .sort();
  const json = (list: Json[]) => list.map((r) => JSON.stringify(r)).sort();
  const visitObjects = s3Arn(exports.visitsBucketName, '/visits/*');
  const staged = s3Arn(exports.outputBucketName, `/${STAGING_PREFIX}*`);
  const parts = s3Arn(exports.outputBucketName, `/${STATE_PREFIX}*`);

  it('allows no wildcard action anywhere in the stack', () => {
    for (const { policy, statement } of statements) {
      if (statement.Effect !== 'Allow') continue;
      for (const action of asList<string>(statement.Action))
        assert.ok(!action.includes('*'), `${policy}: ${action}`);
    }
  });

  it('reads visit objects, current or by version id, only under the visits prefix', () => {
    // act
    const [read, ...more] = granting('s3:GetObjectVersion');

    // assert
    assert.equal(more.length, 0);
    assert.deepEqual(asList(read!.Action), ['s3:GetObject', 's3:GetObjectVersion']);
    assert.deepEqual(read!.Resource, visitObjects);
  });

  it('gets objects only under the visits prefix, the staging prefix and the state prefix', () => {
    assert.deepEqual(resourcesOf(granting('s3:GetObject')), json([visitObjects, staged, parts]));
  });

  it('deletes objects only under the state prefix (the parts a compaction replaced)', () => {
    assert.deepEqual(resourcesOf(granting('s3:DeleteObject')), json([parts]));
  });

  it('lists the visits bucket only under the visits prefix and the output bucket only under staging and state', () => {
    // act
    const lists = granting('s3:ListBucket').map((s) => ({ resource: s.Resource, condition: s.Condition }));

    // assert
    assert.deepEqual(
      json(lists),
      json([
        {
          resource: s3Arn(exports.visitsBucketName),
          condition: { StringLike: { 's3:prefix': ['visits/*'] } },
        },
        {
          resource: s3Arn(exports.outputBucketName),
          condition: { StringLike: { 's3:prefix': [`${STAGING_PREFIX}*`, `${STATE_PREFIX}*`] } },
        },
      ]),
    );
  });

  it('puts objects only under sessions/, late-visits/, rejected/, the staging and the state prefix of the output bucket', () => {
    // act
    const puts = own.filter(
      (s) => s.Effect === 'Allow' && asList<string>(s.Action).some((a) => a.startsWith('s3:Put')),
    );

    // assert
    const allowed = ['s3:PutObject', 's3:GetObject', 's3:DeleteObject'];
    assert.ok(puts.every((s) => asList<string>(s.Action).every((a) => allowed.includes(a))));
    const outputs = [SESSIONS, LATE_VISITS, REJECTED].map((d) =>
      s3Arn(exports.outputBucketName, `/${d.prefix}*`),
    );
    assert.deepEqual(resourcesOf(puts), json([...outputs, staged, parts]));
  });

  it('reads and writes staged data with one statement on the staging prefix', () => {
    const stagingStatements = own.filter((s) => JSON.stringify(s.Resource) === JSON.stringify(staged));
    assert.equal(stagingStatements.length, 1);
    assert.deepEqual(asList(stagingStatements[0]!.Action), ['s3:GetObject', 's3:PutObject']);
  });

  it('uses the state table by exact ARN, with the state store actions only (no index, no batch write)', () => {
    // act
    const dynamo = own.filter((s) => asList<string>(s.Action).some((a) => a.startsWith('dynamodb:')));

    // assert
    assert.equal(dynamo.length, 1);
    assert.deepEqual(asList<string>(dynamo[0]!.Action).sort(), [
      'dynamodb:BatchGetItem',
      'dynamodb:DeleteItem',
      'dynamodb:GetItem',
      'dynamodb:PutItem',
      'dynamodb:Query',
      'dynamodb:UpdateItem',
    ]);
    const resources = asList<Json>(dynamo[0]!.Resource).map((r) => JSON.stringify(r));
    assert.equal(resources.length, 1);
    assert.ok(resources[0]!.includes(exports.tableName));
    assert.ok(
      resources[0]!.endsWith(`":table/",{"Fn::ImportValue":"${exports.tableName}"}]]}`),
      resources[0],
    );
  });

  it('writes only to its own log group, consumes only the ingest queue and sends failures only to its DLQ', () => {
    // arrange
    const services = new Set(own.flatMap((s) => asList<string>(s.Action).map((a) => a.split(':')[0])));
    const sqs = own.filter((s) => asList<string>(s.Action).some((a) => a.startsWith('sqs:')));
    const actionsOn = (id: string) =>
      sqs
        .filter((s) => JSON.stringify(s.Resource) === JSON.stringify(arnOf(id)))
        .flatMap((s) => asList<string>(s.Action))
        .sort();

    // assert
    assert.deepEqual([...services].sort(), ['dynamodb', 'logs', 's3', 'sqs']);
    const logs = own.filter((s) => asList<string>(s.Action).some((a) => a.startsWith('logs:')));
    assert.deepEqual(
      logs.map((s) => s.Resource),
      [arnOf(only(template, 'AWS::Logs::LogGroup').id)],
    );
    assert.deepEqual(
      json(sqs.map((s) => s.Resource)),
      json([arnOf(queues.ingest), arnOf(queues.deadLetters)]),
    );
    assert.deepEqual(actionsOn(queues.ingest), [
      'sqs:ChangeMessageVisibility',
      'sqs:DeleteMessage',
      'sqs:GetQueueAttributes',
      'sqs:GetQueueUrl',
      'sqs:ReceiveMessage',
    ]);
    assert.ok(actionsOn(queues.deadLetters).includes('sqs:SendMessage'));
    assert.ok(!actionsOn(queues.deadLetters).includes('sqs:ReceiveMessage'));
  });
});

describe('pipeline stack: schedule and dead letters', () => {
  it('retries asynchronous invocations twice, then sends them to the DLQ', () => {
    template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
      FunctionName: { Ref: sessionizer.id },
      MaximumRetryAttempts: 2,
      MaximumEventAgeInSeconds: 6 * 3600,
      DestinationConfig: { OnFailure: { Destination: arnOf(queues.deadLetters) } },
    });
  });

  it('keeps dead letters of asynchronous invocations 14 days', () => {
    const props = (template.findResources('AWS::SQS::Queue') as Resources)[queues.deadLetters]!.Properties;
    assert.equal(props.MessageRetentionPeriod, 14 * 86400);
    assert.equal(props.RedrivePolicy, undefined);
  });

  it('runs the function every 5 minutes with the standard Scheduled Event', () => {
    const { id, resource } = only(template, 'AWS::Events::Rule');
    assert.equal(resource.Properties.ScheduleExpression, 'rate(5 minutes)');
    const [target, ...more] = resource.Properties.Targets;
    assert.equal(more.length, 0);
    assert.deepEqual(target.Arn, arnOf(sessionizer.id));
    // No Input: the function receives EventBridge's own event, detail-type "Scheduled Event".
    assert.equal(target.Input, undefined);
    assert.equal(target.InputTransformer, undefined);
    assert.deepEqual(target.DeadLetterConfig, { Arn: arnOf(queues.deadLetters) });
    assert.equal(target.RetryPolicy.MaximumRetryAttempts, 2);
    template.hasResourceProperties('AWS::Lambda::Permission', {
      Principal: 'events.amazonaws.com',
      SourceArn: arnOf(id),
    });
  });
});

describe('pipeline stack: settings reach the resources', () => {
  const { pipelineTemplate: custom, pipeline: customPipeline } = synth({
    sessionGap: '30m',
    allowedLateness: '5m',
    maxSessionDuration: '4h',
    idleTimeout: '1h',
    shards: 64,
    scheduleRateMinutes: 15,
    visitsPrefix: 'in/',
    visitsSuffix: '.jsonl.gz',
    memorySizeMb: 2048,
    timeoutSeconds: 600,
    reservedConcurrency: 20,
    queueBatchSize: 500,
    queueBatchingWindow: '1m',
    queueMaxConcurrency: 10,
    logRetentionDays: 90,
    maxEventAge: '1h',
    watermarkLagAlarm: '90m',
    queueAgeAlarm: '1h',
    logLagAlarm: 250,
    alarmEmail: 'ops@example.com',
  });

  it('passes durations, shards, prefix and sizes to the function', () => {
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
          [ENV.shards]: '64',
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
        QueueConfigurations: [
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
    const list = statements.find(
      (s) =>
        asList(s.Action).includes('s3:ListBucket') && JSON.stringify(s.Resource).includes('visits-bucket'),
    );
    assert.deepEqual(list?.Condition, { StringLike: { 's3:prefix': ['in/*'] } });
    const read = statements.find((s) => asList(s.Action).includes('s3:GetObjectVersion'));
    assert.deepEqual(read?.Resource, s3Arn(exports.visitsBucketName, '/in/*'));
  });

  it('sets the batch size, batching window, maximum concurrency and the visibility timeout that follows', () => {
    custom.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      BatchSize: 500,
      MaximumBatchingWindowInSeconds: 60,
      ScalingConfig: { MaximumConcurrency: 10 },
    });
    const props = (custom.findResources('AWS::SQS::Queue') as Resources)[
      logicalId(customPipeline.ingest.queue)
    ]!.Properties;
    assert.equal(props.VisibilityTimeout, 6 * 600 + 60);
  });

  it('sets the schedule, the alarm thresholds and the e-mail subscription', () => {
    custom.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'rate(15 minutes)' });
    custom.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: WATERMARK_LAG_METRIC,
      Threshold: 5400,
    });
    custom.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'ApproximateAgeOfOldestMessage',
      Threshold: 3600,
    });
    custom.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: LOG_LAG_METRIC, Threshold: 250 });
    custom.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: 'ops@example.com',
    });
  });
});
