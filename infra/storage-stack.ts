/**
 * The stateful stack: buckets and the state table. It changes rarely and is deployed before (and kept apart from)
 * the pipeline, so replacing or deleting the pipeline never touches data.
 */
import { CfnOutput, Duration, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as s3 from 'aws-cdk-lib/aws-s3';
import type { Construct } from 'constructs';
import { STATE_PREFIX } from '../lambdas/adapters/s3-parts.ts';
import { type KEYS, TTL_ATTRIBUTE } from '../lambdas/adapters/state-items.ts';
import { STAGING_PREFIX } from '../lambdas/pipeline/staging.ts';
import type { Settings } from './settings.ts';

/** The state table's key attributes: every item key of lambdas/adapters/state-items.ts is `{ pk, sk }`. */
export const TABLE_KEYS = {
  partitionKey: 'pk',
  sortKey: 'sk',
} as const satisfies Record<string, keyof typeof KEYS.layout>;

export interface StorageStackProps extends StackProps {
  readonly settings: Settings;
}

/**
 * CloudFormation export names of the storage stack's resources. The pipeline stack imports them by these names
 * (not through CDK's generated `ExportsOutput...` names), so the templates, the IAM findings and the local stack
 * see stable, readable references, and CloudFormation refuses to delete a bucket or the table still in use.
 */
export interface StorageExports {
  readonly visitsBucketName: string;
  readonly outputBucketName: string;
  readonly athenaResultsBucketName: string;
  readonly tableName: string;
}

export function storageExportNames(pipelineName: string): StorageExports {
  return {
    visitsBucketName: `${pipelineName}:visits-bucket-name`,
    outputBucketName: `${pipelineName}:output-bucket-name`,
    athenaResultsBucketName: `${pipelineName}:athena-results-bucket-name`,
    tableName: `${pipelineName}:state-table-name`,
  };
}

export class StorageStack extends Stack {
  /** Server access logs of the three other buckets. */
  readonly accessLogsBucket: s3.Bucket;
  /** Input: visit files under `settings.visitsPrefix`. */
  readonly visitsBucket: s3.Bucket;
  /** Output: `sessions/`, `late-visits/`, `rejected/`, queried by Athena; the function's staged data. */
  readonly outputBucket: s3.Bucket;
  /** Athena query results of the pipeline's workgroup. */
  readonly athenaResultsBucket: s3.Bucket;
  /** The pipeline's state: layout, object claims, log, shard heads and parts (lambdas/adapters/state-items.ts). */
  readonly table: dynamodb.Table;
  /** Export names of the buckets and the table, for the pipeline stack. */
  readonly exports: StorageExports;

  constructor(scope: Construct, id: string, props: StorageStackProps) {
    super(scope, id, props);
    const { settings } = props;
    const destroy = settings.removalPolicy === 'destroy';
    const removalPolicy = destroy ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN;

    const secure = {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      removalPolicy,
      autoDeleteObjects: destroy,
    } satisfies s3.BucketProps;
    const abortUploads: s3.LifecycleRule = {
      id: 'abort-incomplete-uploads',
      abortIncompleteMultipartUploadAfter: Duration.days(7),
    };
    const expireOldVersions: s3.LifecycleRule = {
      id: 'expire-noncurrent-versions',
      noncurrentVersionExpiration: Duration.days(30),
    };

    // S3 server access logs can only be delivered to a bucket with S3-managed keys. This bucket logs nowhere
    // (cdk-nag's S1 accepts a bucket that is itself the log target of the others).
    this.accessLogsBucket = new s3.Bucket(this, 'AccessLogsBucket', {
      ...secure,
      lifecycleRules: [
        abortUploads,
        { id: 'expire-access-logs', expiration: Duration.days(settings.accessLogsExpirationDays) },
      ],
    });

    this.visitsBucket = new s3.Bucket(this, 'VisitsBucket', {
      ...secure,
      versioned: true,
      serverAccessLogsBucket: this.accessLogsBucket,
      serverAccessLogsPrefix: 'visits/',
      lifecycleRules: [abortUploads, expireOldVersions],
    });

    // The output bucket also holds the function's own data under `_sessionizer/` (no dataset reads it): the state's
    // parts, and staged visits. Staged data is read again only when a shard catches up late or after a failure; once it is gone the function
    // stages the object again. Expiring a staged object in this versioned bucket leaves a delete marker, removed
    // once its old version has expired too.
    this.outputBucket = new s3.Bucket(this, 'OutputBucket', {
      ...secure,
      versioned: true,
      serverAccessLogsBucket: this.accessLogsBucket,
      serverAccessLogsPrefix: 'output/',
      lifecycleRules: [
        abortUploads,
        expireOldVersions,
        {
          id: 'expire-staging',
          prefix: STAGING_PREFIX,
          expiration: Duration.days(settings.stagingExpirationDays),
        },
        { id: 'remove-staging-delete-markers', prefix: STAGING_PREFIX, expiredObjectDeleteMarker: true },
        // the state's parts never expire; those a compaction replaced are deleted, and their delete markers go
        { id: 'remove-state-delete-markers', prefix: STATE_PREFIX, expiredObjectDeleteMarker: true },
      ],
    });

    this.athenaResultsBucket = new s3.Bucket(this, 'AthenaResultsBucket', {
      ...secure,
      serverAccessLogsBucket: this.accessLogsBucket,
      serverAccessLogsPrefix: 'athena-results/',
      lifecycleRules: [
        abortUploads,
        { id: 'expire-query-results', expiration: Duration.days(settings.athenaResultsExpirationDays) },
      ],
    });

    this.table = new dynamodb.Table(this, 'StateTable', {
      partitionKey: { name: TABLE_KEYS.partitionKey, type: dynamodb.AttributeType.STRING },
      sortKey: { name: TABLE_KEYS.sortKey, type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      timeToLiveAttribute: TTL_ATTRIBUTE,
      deletionProtection: settings.deletionProtection,
      removalPolicy,
    });

    this.exports = storageExportNames(settings.pipelineName);
    const output = (id: string, value: string, exportName: string, description: string) =>
      new CfnOutput(this, id, { value, exportName, description });
    output(
      'VisitsBucketName',
      this.visitsBucket.bucketName,
      this.exports.visitsBucketName,
      'Upload visit files here',
    );
    output(
      'OutputBucketName',
      this.outputBucket.bucketName,
      this.exports.outputBucketName,
      'Sessions, late visits, rejected',
    );
    output(
      'AthenaResultsBucketName',
      this.athenaResultsBucket.bucketName,
      this.exports.athenaResultsBucketName,
      'Athena query results',
    );
    output('StateTableName', this.table.tableName, this.exports.tableName, 'Sessionizer state');
  }
}
