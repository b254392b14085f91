import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Match } from 'aws-cdk-lib/assertions';
import { asList, type Json, only, type Resources } from './fixtures.ts';
import { arnOf, exports, imported, queues, s3Arn, sessionizer, template } from './pipeline-fixtures.ts';

describe('pipeline stack: ingest queue', () => {
  const queueProps = (id: string) => (template.findResources('AWS::SQS::Queue') as Resources)[id]!.Properties;
  const policyOf = (id: string): Record<string, Json>[] => {
    const policies = Object.values(template.findResources('AWS::SQS::QueuePolicy') as Resources).filter((p) =>
      p.Properties.Queues.some((q: Json) => q.Ref === id),
    );
    assert.equal(policies.length, 1, `one policy for ${id}`);
    return policies[0]!.Properties.PolicyDocument.Statement;
  };

  it('has three queues: ingest, its dead-letter queue, and the dead-letter queue of asynchronous invocations', () => {
    template.resourceCountIs('AWS::SQS::Queue', 3);
  });

  it('encrypts every queue with SQS-managed keys (S3 can publish without a key policy)', () => {
    for (const id of Object.values(queues)) {
      assert.equal(queueProps(id).SqsManagedSseEnabled, true, id);
      assert.equal(queueProps(id).KmsMasterKeyId, undefined, id);
    }
  });

  it('denies every request without TLS on every queue', () => {
    for (const id of Object.values(queues)) {
      assert.ok(
        policyOf(id).some(
          (s) =>
            s.Effect === 'Deny' &&
            s.Action === 'sqs:*' &&
            JSON.stringify(s.Principal) === JSON.stringify({ AWS: '*' }) &&
            s.Condition?.Bool?.['aws:SecureTransport'] === 'false',
        ),
        id,
      );
    }
  });

  it('keeps ingest messages 4 days, hidden for six function timeouts plus the batching window once received', () => {
    const props = queueProps(queues.ingest);
    assert.equal(props.MessageRetentionPeriod, 4 * 86400);
    assert.equal(props.VisibilityTimeout, 6 * 300 + 20);
  });

  it('moves a message to the ingest dead-letter queue after 5 receives, which keeps it 14 days', () => {
    assert.deepEqual(queueProps(queues.ingest).RedrivePolicy, {
      deadLetterTargetArn: arnOf(queues.ingestDeadLetters),
      maxReceiveCount: 5,
    });
    assert.equal(queueProps(queues.ingestDeadLetters).MessageRetentionPeriod, 14 * 86400);
    assert.equal(queueProps(queues.ingestDeadLetters).RedrivePolicy, undefined);
  });

  it('lets only S3, for the visits bucket of this account, send to the ingest queue', () => {
    // act
    const allows = policyOf(queues.ingest).filter((s) => s.Effect === 'Allow');

    // assert
    assert.deepEqual(allows, [
      {
        Sid: 'AllowObjectCreatedNotifications',
        Effect: 'Allow',
        Principal: { Service: 's3.amazonaws.com' },
        Action: 'sqs:SendMessage',
        Resource: arnOf(queues.ingest),
        Condition: {
          ArnLike: { 'aws:SourceArn': s3Arn(exports.visitsBucketName) },
          StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } },
        },
      },
    ]);
  });

  it('sends object-created notifications under the prefix to the ingest queue, not to the function', () => {
    template.hasResourceProperties('Custom::S3BucketNotifications', {
      BucketName: imported(exports.visitsBucketName),
      Managed: false,
      NotificationConfiguration: {
        QueueConfigurations: [
          {
            Events: ['s3:ObjectCreated:*'],
            Filter: { Key: { FilterRules: [{ Name: 'prefix', Value: 'visits/' }] } },
            QueueArn: arnOf(queues.ingest),
          },
        ],
        LambdaFunctionConfigurations: Match.absent(),
      },
    });
    assert.deepEqual(
      Object.values(template.findResources('AWS::Lambda::Permission') as Resources).filter(
        (p) => p.Properties.Principal === 's3.amazonaws.com',
      ),
      [],
    );
  });

  it('configures the notification only once the queue policy lets S3 publish', () => {
    const { resource } = only(template, 'Custom::S3BucketNotifications');
    const policyId = Object.entries(template.findResources('AWS::SQS::QueuePolicy') as Resources).find(
      ([, p]) => p.Properties.Queues.some((q: Json) => q.Ref === queues.ingest),
    )![0];
    assert.ok(asList(resource.DependsOn).includes(policyId));
  });

  it('invokes the function from the ingest queue in batches of 100 within 20 s, at most 4 at a time, with partial failures', () => {
    template.resourceCountIs('AWS::Lambda::EventSourceMapping', 1);
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: arnOf(queues.ingest),
      FunctionName: { Ref: sessionizer.id },
      BatchSize: 100,
      MaximumBatchingWindowInSeconds: 20,
      ScalingConfig: { MaximumConcurrency: 4 },
      FunctionResponseTypes: ['ReportBatchItemFailures'],
    });
  });
});
