/**
 * The sessionizer Lambda: one construct with fixed good defaults (ARM64, Node 22, ESM bundle with source maps,
 * an explicit log group with retention, its own role with no managed policy) and `bind*` methods that set an
 * environment variable and grant exactly what the handler needs on that resource, nothing more.
 */
import { fileURLToPath } from 'node:url';
import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat, SourceMapMode } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { STATE_PREFIX } from '../../lambdas/adapters/s3-parts.ts';
import { ENV } from '../../lambdas/config.ts';
import { LATE_VISITS, REJECTED, SESSIONS } from '../../lambdas/core/schema.ts';
import { STAGING_PREFIX } from '../../lambdas/pipeline/staging.ts';
import { acknowledgeWildcardResource } from '../nag.ts';

/** The handler source, bundled by esbuild on the synthesizing machine (no Docker). */
export const HANDLER_ENTRY = fileURLToPath(new URL('../../lambdas/sessionizer.ts', import.meta.url));
const PROJECT_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * Defines `require` inside the ESM bundle, for CommonJS dependencies that call it (esbuild otherwise emits a
 * "Dynamic require is not supported" shim that throws at run time).
 */
export const ESM_REQUIRE_BANNER =
  "import { createRequire as sessionizerCreateRequire } from 'node:module'; " +
  'const require = sessionizerCreateRequire(import.meta.url);';

/** DynamoDB actions of the state store (lambdas/adapters/dynamo-store.ts). No Scan, no batch write, no wildcard. */
export const TABLE_ACTIONS = [
  'dynamodb:GetItem',
  'dynamodb:PutItem',
  'dynamodb:UpdateItem',
  'dynamodb:DeleteItem',
  'dynamodb:Query',
  'dynamodb:BatchGetItem',
] as const;

/** The output prefixes the function may write, one per dataset of lambdas/core/schema.ts. */
export const OUTPUT_PREFIXES = [SESSIONS.prefix, LATE_VISITS.prefix, REJECTED.prefix] as const;

export interface SessionizerFunctionProps {
  /** @default 1024 */
  readonly memorySizeMb?: number;
  /** @default 300 */
  readonly timeoutSeconds?: number;
  /** @default - unreserved (shares the account's pool) */
  readonly reservedConcurrency?: number;
  /** @default RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /** Removal policy of the log group. @default RemovalPolicy.RETAIN */
  readonly logRemovalPolicy?: RemovalPolicy;
  /** Session settings and other variables the handler reads (names from lambdas/config.ts ENV). */
  readonly environment?: Readonly<Record<string, string>>;
  /**
   * Pre-built code instead of bundling `lambdas/sessionizer.ts` with esbuild. For template tests and the local
   * stack's in-process synth, where only the template matters.
   * @default - the handler bundled by esbuild (ESM, minified, source maps)
   */
  readonly code?: lambda.Code;
}

export class SessionizerFunction extends Construct {
  readonly function: lambda.Function;
  readonly role: iam.Role;
  readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: SessionizerFunctionProps = {}) {
    super(scope, id);
    const memorySize = props.memorySizeMb ?? 1024;
    const timeoutSeconds = props.timeoutSeconds ?? 300;
    if (!Number.isInteger(memorySize) || memorySize < 128 || memorySize > 10_240) {
      throw new Error(`memorySizeMb: expected an integer from 128 to 10240, got ${memorySize}`);
    }
    if (!Number.isInteger(timeoutSeconds) || timeoutSeconds < 1 || timeoutSeconds > 900) {
      throw new Error(`timeoutSeconds: expected an integer from 1 to 900, got ${timeoutSeconds}`);
    }
    if (
      props.reservedConcurrency !== undefined &&
      !(Number.isInteger(props.reservedConcurrency) && props.reservedConcurrency >= 1)
    ) {
      throw new Error(`reservedConcurrency: expected a positive integer, got ${props.reservedConcurrency}`);
    }

    this.logGroup = new logs.LogGroup(this, 'LogGroup', {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: props.logRemovalPolicy ?? RemovalPolicy.RETAIN,
    });

    // An own role instead of the default one, whose AWSLambdaBasicExecutionRole managed policy allows writing to
    // every log group of the account.
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description:
        'Sessionizer function: read visits, stage and write outputs, read and write its state table',
    });
    this.role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'WriteOwnLogs',
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [this.logGroup.logGroupArn],
      }),
    );

    const common = {
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize,
      timeout: Duration.seconds(timeoutSeconds),
      role: this.role,
      logGroup: this.logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      description: 'Sessionizes visit files into closed sessions (ingest queue, schedule, flush)',
      environment: { NODE_OPTIONS: '--enable-source-maps', ...props.environment },
      ...(props.reservedConcurrency !== undefined
        ? { reservedConcurrentExecutions: props.reservedConcurrency }
        : {}),
    } satisfies Partial<lambda.FunctionProps>;

    this.function = props.code
      ? new lambda.Function(this, 'Function', { ...common, code: props.code, handler: 'index.handler' })
      : new NodejsFunction(this, 'Function', {
          ...common,
          entry: HANDLER_ENTRY,
          handler: 'handler',
          projectRoot: PROJECT_ROOT,
          depsLockFilePath: `${PROJECT_ROOT}package-lock.json`,
          bundling: {
            forceDockerBundling: false,
            format: OutputFormat.ESM,
            target: 'node22',
            mainFields: ['module', 'main'],
            banner: ESM_REQUIRE_BANNER,
            minify: true,
            sourceMap: true,
            sourceMapMode: SourceMapMode.EXTERNAL,
            sourcesContent: false,
            // The SDK is bundled rather than taken from the runtime, so the deployed code runs the exact SDK
            // version the tests ran against.
            bundleAwsSDK: true,
          },
        });

    Validations.of(this.function).acknowledge({
      id: 'AwsSolutions-L1',
      reason:
        'Node.js 22 is the runtime the project targets and tests (esbuild target node22); moving to a newer ' +
        'runtime is a deliberate, tested change rather than an automatic one.',
    });
  }

  /**
   * Reads visit objects under `prefix`, the current version or a given one (GetObject and HeadObject with a
   * VersionId need s3:GetObjectVersion), and lists them for the scheduled catch-up.
   */
  bindVisitsBucket(bucket: s3.IBucket, prefix: string): void {
    this.function.addEnvironment(ENV.visitsBucket, bucket.bucketName);
    this.function.addEnvironment(ENV.visitsPrefix, prefix);
    const objects = bucket.arnForObjects(`${prefix}*`);
    this.role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'ReadVisitObjects',
        actions: ['s3:GetObject', 's3:GetObjectVersion'],
        resources: [objects],
      }),
    );
    this.role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'ListVisitObjects',
        actions: ['s3:ListBucket'],
        resources: [bucket.bucketArn],
        ...(prefix === '' ? {} : { conditions: { StringLike: { 's3:prefix': [`${prefix}*`] } } }),
      }),
    );
    this.acknowledgeObjectWildcards(
      bucket,
      [prefix],
      'reads visit files, whose keys are not known in advance',
    );
  }

  /**
   * Writes the three output datasets, each only under its own prefix; writes and reads its staged data under the
   * staging prefix, and the state's parts under the state prefix (deleting those a compaction replaced). Listing
   * those two prefixes is what makes S3 answer a read of an object that is gone with 404 rather than 403, so the
   * function can stage an object again, or see that a part was compacted away.
   */
  bindOutputBucket(bucket: s3.IBucket): void {
    this.function.addEnvironment(ENV.outputBucket, bucket.bucketName);
    this.role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'WriteOutputs',
        actions: ['s3:PutObject'],
        resources: OUTPUT_PREFIXES.map((p) => bucket.arnForObjects(`${p}*`)),
      }),
    );
    this.role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'ReadWriteStaging',
        actions: ['s3:GetObject', 's3:PutObject'],
        resources: [bucket.arnForObjects(`${STAGING_PREFIX}*`)],
      }),
    );
    this.role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'ReadWriteStateParts',
        actions: ['s3:GetObject', 's3:PutObject', 's3:DeleteObject'],
        resources: [bucket.arnForObjects(`${STATE_PREFIX}*`)],
      }),
    );
    this.role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'ListStagingAndState',
        actions: ['s3:ListBucket'],
        resources: [bucket.bucketArn],
        conditions: { StringLike: { 's3:prefix': [`${STAGING_PREFIX}*`, `${STATE_PREFIX}*`] } },
      }),
    );
    this.acknowledgeObjectWildcards(
      bucket,
      OUTPUT_PREFIXES,
      'writes output objects named by partition and closing (dt=YYYY-MM-DD/<closing id>), only under the ' +
        'sessions/, late-visits/ and rejected/ prefixes',
    );
    this.acknowledgeObjectWildcards(
      bucket,
      [STAGING_PREFIX],
      'stages the parsed visits of each input object as objects named by object id and segment, and reads them ' +
        'back while shards catch up',
    );
    this.acknowledgeObjectWildcards(
      bucket,
      [STATE_PREFIX],
      'keeps the immutable parts of the pending state as objects named by table, shard and a new id per write; ' +
        'deletes the ones a compaction replaced',
    );
  }

  /** Reads and writes the state table (by its exact ARN; the table has no index). */
  bindStateTable(table: dynamodb.ITable): void {
    this.function.addEnvironment(ENV.table, table.tableName);
    this.role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'ReadWriteState',
        actions: [...TABLE_ACTIONS],
        resources: [table.tableArn],
      }),
    );
  }

  private acknowledgeObjectWildcards(bucket: s3.IBucket, prefixes: readonly string[], reason: string): void {
    for (const prefix of prefixes) {
      acknowledgeWildcardResource(
        this.role,
        bucket.arnForObjects(`${prefix}*`),
        `The function ${reason}; the wildcard covers only keys under "${prefix}" of this one bucket.`,
      );
    }
  }
}
