/**
 * The stateless stack: the function and everything that invokes or watches it (S3 notification to the ingest
 * queue, the queue's event source mapping, schedule, dead-letter queues), the Glue tables and Athena workgroup over
 * the outputs, alarms and dashboard. It can be replaced or deleted without touching the data in the storage stack.
 */
import { CfnOutput, Duration, Fn, RemovalPolicy, Stack, type StackProps, Validations } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as destinations from 'aws-cdk-lib/aws-lambda-destinations';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import { ENV } from '../lambdas/config.ts';
import { AthenaWorkgroup } from './constructs/athena-workgroup.ts';
import { GlueTables } from './constructs/glue-tables.ts';
import { IngestQueue } from './constructs/ingest-queue.ts';
import { Monitoring } from './constructs/monitoring.ts';
import { SessionizerFunction } from './constructs/sessionizer-function.ts';
import { durationEnv, type Settings } from './settings.ts';
import type { StorageExports } from './storage-stack.ts';

export interface PipelineStackProps extends StackProps {
  readonly settings: Settings;
  /** Export names of the storage stack's buckets and table. */
  readonly storage: StorageExports;
  /** Pre-built function code instead of the esbuild bundle (see SessionizerFunctionProps.code). */
  readonly functionCode?: lambda.Code;
}

/** Lambda retries a failed asynchronous invocation this many times before it goes to the dead-letter queue. */
export const ASYNC_RETRY_ATTEMPTS = 2;

/**
 * The ingest queue's visibility timeout: six times the function timeout, as AWS recommends for an SQS event
 * source (room for Lambda's retries when the function is throttled), plus the batching window, during which the
 * batch's first messages are already received.
 */
export function ingestVisibilityTimeout(settings: Settings): Duration {
  return Duration.seconds(6 * settings.timeoutSeconds + settings.queueBatchingWindowSeconds);
}

export class PipelineStack extends Stack {
  readonly sessionizer: SessionizerFunction;
  /** S3 notifications of new visit objects, consumed by the function, and their dead-letter queue. */
  readonly ingest: IngestQueue;
  /** Scheduled runs and flushes (asynchronous invocations) that failed every retry. */
  readonly deadLetterQueue: sqs.Queue;
  readonly scheduleRule: events.Rule;
  readonly glue: GlueTables;
  readonly athena: AthenaWorkgroup;
  readonly monitoring: Monitoring;
  /** The storage stack's resources, imported by export name. */
  readonly visitsBucket: s3.IBucket;
  readonly outputBucket: s3.IBucket;
  readonly athenaResultsBucket: s3.IBucket;
  readonly table: dynamodb.ITable;

  constructor(scope: Construct, id: string, props: PipelineStackProps) {
    super(scope, id, props);
    const { settings } = props;
    const removalPolicy = settings.removalPolicy === 'destroy' ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN;

    // Imported references: a notification added to an imported bucket is written by this stack, and only this
    // notification (any other the bucket has is kept). Adding it to the storage stack's bucket object would put the
    // notification there, pointing at this stack's function: a dependency cycle between the stacks.
    this.visitsBucket = s3.Bucket.fromBucketName(
      this,
      'VisitsBucket',
      Fn.importValue(props.storage.visitsBucketName),
    );
    this.outputBucket = s3.Bucket.fromBucketName(
      this,
      'OutputBucket',
      Fn.importValue(props.storage.outputBucketName),
    );
    this.athenaResultsBucket = s3.Bucket.fromBucketName(
      this,
      'AthenaResultsBucket',
      Fn.importValue(props.storage.athenaResultsBucketName),
    );
    this.table = dynamodb.Table.fromTableName(this, 'StateTable', Fn.importValue(props.storage.tableName));

    this.sessionizer = this.addFunction(settings, removalPolicy, props.functionCode);
    this.deadLetterQueue = this.addDeadLetterQueue(settings);
    this.ingest = this.addIngest(settings);
    this.scheduleRule = this.addSchedule(settings);

    const databaseName = settings.pipelineName.replaceAll('-', '_');
    this.glue = new GlueTables(this, 'Glue', {
      databaseName,
      outputBucket: this.outputBucket,
      maxFutureSkewMs: settings.maxFutureSkewMs,
    });
    this.athena = new AthenaWorkgroup(this, 'Athena', {
      workgroupName: settings.pipelineName,
      resultsBucket: this.athenaResultsBucket,
      databaseName,
    });

    this.monitoring = new Monitoring(this, 'Monitoring', {
      name: settings.pipelineName,
      function: this.sessionizer.function,
      deadLetterQueue: this.deadLetterQueue,
      ingestQueue: this.ingest.queue,
      ingestDeadLetterQueue: this.ingest.deadLetterQueue,
      watermarkLagThreshold: Duration.seconds(settings.watermarkLagAlarmMs / 1000),
      queueAgeThreshold: Duration.seconds(settings.queueAgeAlarmSeconds),
      logLagThreshold: settings.logLagAlarm,
      ...(settings.alarmEmail !== null ? { alarmEmail: settings.alarmEmail } : {}),
      removalPolicy,
    });

    this.addOutputs(settings.pipelineName, databaseName);
  }

  /** The function, its settings as environment, and its access to the visits, the outputs and the state. */
  private addFunction(
    settings: Settings,
    removalPolicy: RemovalPolicy,
    code: lambda.Code | undefined,
  ): SessionizerFunction {
    const sessionizer = new SessionizerFunction(this, 'Sessionizer', {
      memorySizeMb: settings.memorySizeMb,
      timeoutSeconds: settings.timeoutSeconds,
      ...(settings.reservedConcurrency !== null ? { reservedConcurrency: settings.reservedConcurrency } : {}),
      logRetention: settings.logRetentionDays,
      logRemovalPolicy: removalPolicy,
      environment: {
        [ENV.gap]: durationEnv(settings.sessionGapMs),
        [ENV.allowedLateness]: durationEnv(settings.allowedLatenessMs),
        [ENV.maxSessionDuration]: durationEnv(settings.maxSessionDurationMs),
        [ENV.maxSessionVisits]:
          settings.maxSessionVisits === null ? 'off' : String(settings.maxSessionVisits),
        [ENV.maxFutureSkew]: durationEnv(settings.maxFutureSkewMs),
        [ENV.visitsSuffix]: settings.visitsSuffix,
        [ENV.idleTimeout]: durationEnv(settings.idleTimeoutMs),
        [ENV.shards]: String(settings.shards),
      },
      ...(code ? { code } : {}),
    });
    sessionizer.bindVisitsBucket(this.visitsBucket, settings.visitsPrefix);
    sessionizer.bindOutputBucket(this.outputBucket);
    sessionizer.bindStateTable(this.table);
    return sessionizer;
  }

  /**
   * Asynchronous invocations (the schedule, a flush) that fail every retry land in this queue, with the original
   * event and the error, for a replay.
   */
  private addDeadLetterQueue(settings: Settings): sqs.Queue {
    const deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    Validations.of(deadLetterQueue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason:
        'This queue is itself the dead-letter destination (Lambda on-failure destination of asynchronous invocations ' +
        "and the schedule target's DLQ); a queue behind it would receive nothing, since nothing consumes it.",
    });
    this.sessionizer.function.configureAsyncInvoke({
      retryAttempts: ASYNC_RETRY_ATTEMPTS,
      maxEventAge: Duration.seconds(settings.maxEventAgeMs / 1000),
      onFailure: new destinations.SqsDestination(deadLetterQueue),
    });
    return deadLetterQueue;
  }

  /**
   * New visit objects: S3 -> ingest queue -> the function, in batches. The handler reports the messages it could
   * not process (batchItemFailures); only those come back, and after INGEST_MAX_RECEIVE_COUNT receives they move
   * to the ingest queue's dead-letter queue.
   */
  private addIngest(settings: Settings): IngestQueue {
    const filter: s3.NotificationKeyFilter = {
      ...(settings.visitsPrefix !== '' ? { prefix: settings.visitsPrefix } : {}),
      ...(settings.visitsSuffix !== '' ? { suffix: settings.visitsSuffix } : {}),
    };
    const filters = Object.keys(filter).length > 0 ? [filter] : [];
    const ingest = new IngestQueue(this, 'Ingest', { visibilityTimeout: ingestVisibilityTimeout(settings) });
    ingest.subscribe(this.visitsBucket, ...filters);
    acknowledgeNotificationsHandler(this);
    this.sessionizer.function.addEventSource(
      new SqsEventSource(ingest.queue, {
        batchSize: settings.queueBatchSize,
        maxBatchingWindow: Duration.seconds(settings.queueBatchingWindowSeconds),
        maxConcurrency: settings.queueMaxConcurrency,
        reportBatchItemFailures: true,
      }),
    );
    return ingest;
  }

  /**
   * The function receives EventBridge's standard "Scheduled Event" (detail-type "Scheduled Event", source
   * "aws.events"): the catch-up and closing run.
   */
  private addSchedule(settings: Settings): events.Rule {
    return new events.Rule(this, 'Schedule', {
      description: 'Sessionizer catch-up and closing run',
      schedule: events.Schedule.rate(Duration.minutes(settings.scheduleRateMinutes)),
      targets: [
        new targets.LambdaFunction(this.sessionizer.function, {
          deadLetterQueue: this.deadLetterQueue,
          retryAttempts: ASYNC_RETRY_ATTEMPTS,
          maxEventAge: Duration.hours(1),
        }),
      ],
    });
  }

  /** What operators need at hand (README: flush, redrive, Athena). */
  private addOutputs(workgroupName: string, databaseName: string): void {
    new CfnOutput(this, 'FunctionName', {
      value: this.sessionizer.function.functionName,
      description: 'Invoke with {"action":"flush"}',
    });
    new CfnOutput(this, 'DeadLetterQueueUrl', {
      value: this.deadLetterQueue.queueUrl,
      description:
        'Scheduled runs and flushes that failed every retry (their requestPayload is the original event)',
    });
    new CfnOutput(this, 'IngestQueueUrl', {
      value: this.ingest.queue.queueUrl,
      description: 'S3 notifications of new visit objects, waiting for the function',
    });
    new CfnOutput(this, 'IngestDeadLetterQueueUrl', {
      value: this.ingest.deadLetterQueue.queueUrl,
      description: 'S3 notifications that failed every receive (redrive them to the ingest queue)',
    });
    new CfnOutput(this, 'AthenaWorkgroup', {
      value: workgroupName,
      description: 'Run the named queries here',
    });
    new CfnOutput(this, 'GlueDatabase', {
      value: databaseName,
      description: 'Tables sessions, late_visits, rejected',
    });
  }
}

/**
 * CDK's bucket-notifications handler (a singleton Lambda it adds to the stack) has the basic execution managed
 * policy, which is not configurable. (Its s3:PutBucketNotification statement is scoped to the visits bucket.)
 */
function acknowledgeNotificationsHandler(stack: Stack): void {
  const handler = stack.node.tryFindChild('BucketNotificationsHandler050a0587b7544547bf325f094a3db834');
  if (!handler) return;
  Validations.of(handler).acknowledge({
    id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
    reason:
      "CDK's BucketNotificationsHandler custom resource role: AWSLambdaBasicExecutionRole only lets it write its " +
      'own logs, it runs only during deployments, and CDK offers no way to replace the policy.',
  });
}
