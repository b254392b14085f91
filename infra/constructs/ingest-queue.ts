/**
 * The ingest queue: S3 object-created notifications of the visits bucket wait here until the function's event
 * source mapping takes them in batches. Messages that fail `INGEST_MAX_RECEIVE_COUNT` times move to the queue's own
 * dead-letter queue. Both queues are encrypted with SQS-managed keys (S3 can publish to them without a KMS key
 * policy) and refuse requests without TLS.
 */
import { Duration, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

/** Days the ingest queue keeps a message nobody took (the SQS default). */
export const INGEST_RETENTION_DAYS = 4;
/** Receives of a message (each one a failed or throttled attempt) before it moves to the dead-letter queue. */
export const INGEST_MAX_RECEIVE_COUNT = 5;
/** Days the dead-letter queue keeps a message: the SQS maximum, longer than the ingest queue's retention. */
export const INGEST_DEAD_LETTER_RETENTION_DAYS = 14;

export interface IngestQueueProps {
  /**
   * How long a received message stays hidden before it may be received again: long enough for the function to
   * finish a batch, with room for Lambda's own retries when the function is throttled.
   */
  readonly visibilityTimeout: Duration;
}

export class IngestQueue extends Construct {
  readonly queue: sqs.Queue;
  readonly deadLetterQueue: sqs.Queue;

  constructor(scope: Construct, id: string, props: IngestQueueProps) {
    super(scope, id);
    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(INGEST_DEAD_LETTER_RETENTION_DAYS),
    });
    this.queue = new sqs.Queue(this, 'Queue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(INGEST_RETENTION_DAYS),
      visibilityTimeout: props.visibilityTimeout,
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: INGEST_MAX_RECEIVE_COUNT },
    });
  }

  /** Sends `bucket`'s object-created notifications for keys matching `filters` to the ingest queue. */
  subscribe(bucket: s3.IBucket, ...filters: s3.NotificationKeyFilter[]): void {
    bucket.addEventNotification(
      s3.EventType.OBJECT_CREATED,
      new AccountBucketQueueDestination(this.queue),
      ...filters,
    );
  }
}

/**
 * Like `aws-s3-notifications`' SqsDestination, narrower: S3 may only `sqs:SendMessage` (not also read the queue's
 * attributes and URL), and only for the given bucket of this account (`aws:SourceAccount` besides
 * `aws:SourceArn`, as AWS recommends, since a bucket ARN names no account).
 */
class AccountBucketQueueDestination implements s3.IBucketNotificationDestination {
  constructor(private readonly queue: sqs.IQueue) {}

  bind(_scope: Construct, bucket: s3.IBucketRef): s3.BucketNotificationDestinationConfig {
    this.queue.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'AllowObjectCreatedNotifications',
        principals: [new iam.ServicePrincipal('s3.amazonaws.com')],
        actions: ['sqs:SendMessage'],
        resources: [this.queue.queueArn],
        conditions: {
          ArnLike: { 'aws:SourceArn': bucket.bucketRef.bucketArn },
          StringEquals: { 'aws:SourceAccount': Stack.of(this.queue).account },
        },
      }),
    );
    // The queue's policy (a child of the queue) must exist before S3 checks that it may publish.
    return {
      arn: this.queue.queueArn,
      type: s3.BucketNotificationDestinationType.QUEUE,
      dependencies: [this.queue],
    };
  }
}
