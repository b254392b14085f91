import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Match } from 'aws-cdk-lib/assertions';
import { storageExportNames, TABLE_KEYS } from '../../infra/storage-stack.ts';
import { STATE_PREFIX } from '../../lambdas/adapters/s3-parts.ts';
import { KEYS, TTL_ATTRIBUTE } from '../../lambdas/adapters/state-items.ts';
import { STAGING_PREFIX } from '../../lambdas/pipeline/staging.ts';
import { asList, type Json, only, type Resources, synth } from './fixtures.ts';

const retained = synth();
const template = retained.storageTemplate;
const buckets = template.findResources('AWS::S3::Bucket') as Resources;
const bucketId = (prefix: string): string => {
  const id = Object.keys(buckets).find((k) => k.startsWith(prefix));
  assert.ok(id, `no bucket ${prefix}`);
  return id;
};

describe('storage stack: buckets', () => {
  it('has the visits, output, Athena results and access-log buckets', () => {
    template.resourceCountIs('AWS::S3::Bucket', 4);
    for (const name of ['VisitsBucket', 'OutputBucket', 'AthenaResultsBucket', 'AccessLogsBucket'])
      bucketId(name);
  });

  it('encrypts every bucket and blocks all public access', () => {
    for (const [id, bucket] of Object.entries(buckets)) {
      const encryption = bucket.Properties.BucketEncryption?.ServerSideEncryptionConfiguration;
      assert.equal(encryption?.[0]?.ServerSideEncryptionByDefault?.SSEAlgorithm, 'AES256', id);
      assert.deepEqual(
        bucket.Properties.PublicAccessBlockConfiguration,
        {
          BlockPublicAcls: true,
          BlockPublicPolicy: true,
          IgnorePublicAcls: true,
          RestrictPublicBuckets: true,
        },
        id,
      );
      assert.deepEqual(
        bucket.Properties.OwnershipControls,
        { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] },
        id,
      );
    }
  });

  it('denies every request without TLS (and below TLS 1.2) on every bucket', () => {
    const policies = template.findResources('AWS::S3::BucketPolicy') as Resources;
    assert.equal(Object.keys(policies).length, 4);
    const covered = new Set<string>();
    for (const policy of Object.values(policies)) {
      const statements: Record<string, Json>[] = policy.Properties.PolicyDocument.Statement;
      const tls = statements.find(
        (s) =>
          s.Effect === 'Deny' &&
          s.Action === 's3:*' &&
          s.Condition?.Bool?.['aws:SecureTransport'] === 'false',
      );
      assert.ok(tls, 'no TLS-only statement');
      assert.deepEqual(tls.Principal, { AWS: '*' });
      assert.ok(
        statements.some(
          (s) => s.Effect === 'Deny' && s.Condition?.NumericLessThan?.['s3:TlsVersion'] === 1.2,
        ),
        'no minimum TLS version',
      );
      covered.add(policy.Properties.Bucket.Ref);
    }
    assert.deepEqual([...covered].sort(), Object.keys(buckets).sort());
  });

  it('logs access to the data buckets in the access-log bucket, which logs nowhere', () => {
    const logs = bucketId('AccessLogsBucket');
    for (const [name, prefix] of [
      ['VisitsBucket', 'visits/'],
      ['OutputBucket', 'output/'],
      ['AthenaResultsBucket', 'athena-results/'],
    ] as const) {
      assert.deepEqual(buckets[bucketId(name)]!.Properties.LoggingConfiguration, {
        DestinationBucketName: { Ref: logs },
        LogFilePrefix: prefix,
      });
    }
    assert.equal(buckets[logs]!.Properties.LoggingConfiguration, undefined);
  });

  it('versions the visits and output buckets, expiring old versions', () => {
    for (const name of ['VisitsBucket', 'OutputBucket']) {
      const props = buckets[bucketId(name)]!.Properties;
      assert.deepEqual(props.VersioningConfiguration, { Status: 'Enabled' });
      assert.ok(
        props.LifecycleConfiguration.Rules.some(
          (r: Json) => r.NoncurrentVersionExpiration?.NoncurrentDays === 30 && r.Status === 'Enabled',
        ),
      );
    }
  });

  it('expires Athena results after 30 days and access logs after 365', () => {
    const expiry = (name: string) =>
      buckets[bucketId(name)]!.Properties.LifecycleConfiguration.Rules.find((r: Json) => r.ExpirationInDays)
        ?.ExpirationInDays;
    assert.equal(expiry('AthenaResultsBucket'), 30);
    assert.equal(expiry('AccessLogsBucket'), 365);
  });

  it('expires staged data in the output bucket after 30 days, and then its delete markers', () => {
    // arrange
    const rules: Json[] = buckets[bucketId('OutputBucket')]!.Properties.LifecycleConfiguration.Rules;

    // act
    const staging = rules.filter((r) => r.Prefix === STAGING_PREFIX);

    // assert
    assert.deepEqual(staging, [
      { Id: 'expire-staging', Prefix: '_sessionizer/staging/', ExpirationInDays: 30, Status: 'Enabled' },
      {
        Id: 'remove-staging-delete-markers',
        Prefix: '_sessionizer/staging/',
        ExpiredObjectDeleteMarker: true,
        Status: 'Enabled',
      },
    ]);
    assert.ok(
      rules.every((r) => r.Prefix === STAGING_PREFIX || r.ExpirationInDays === undefined),
      'no other rule expires current objects (sessions, late visits, rejected records, state parts stay)',
    );
  });

  it("never expires the state's parts, and removes the delete markers of those a compaction deleted", () => {
    const rules: Json[] = buckets[bucketId('OutputBucket')]!.Properties.LifecycleConfiguration.Rules;

    const state = rules.filter((r) => r.Prefix === STATE_PREFIX);

    assert.deepEqual(state, [
      {
        Id: 'remove-state-delete-markers',
        Prefix: '_sessionizer/state/',
        ExpiredObjectDeleteMarker: true,
        Status: 'Enabled',
      },
    ]);
  });

  it('expires staged data after stagingExpirationDays', () => {
    // arrange
    const { storageTemplate: custom } = synth({ stagingExpirationDays: 7 });

    // assert
    custom.hasResourceProperties('AWS::S3::Bucket', {
      LifecycleConfiguration: {
        Rules: Match.arrayWith([
          Match.objectLike({ Id: 'expire-staging', Prefix: STAGING_PREFIX, ExpirationInDays: 7 }),
        ]),
      },
    });
  });

  it('retains every bucket by default', () => {
    for (const [id, bucket] of Object.entries(buckets)) {
      assert.equal(bucket.DeletionPolicy, 'Retain', id);
      assert.equal(bucket.UpdateReplacePolicy, 'Retain', id);
    }
  });
});

describe('storage stack: state table', () => {
  it('keys the table by the pk/sk attributes of every state item', () => {
    for (const key of [KEYS.layout, KEYS.claim('id'), KEYS.cursor, KEYS.head(0)]) {
      assert.deepEqual(Object.keys(key), [TABLE_KEYS.partitionKey, TABLE_KEYS.sortKey]);
    }
  });

  it('has the pk/sk keys of the state items, on demand, with point-in-time recovery and encryption', () => {
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      KeySchema: [
        { AttributeName: TABLE_KEYS.partitionKey, KeyType: 'HASH' },
        { AttributeName: TABLE_KEYS.sortKey, KeyType: 'RANGE' },
      ],
      AttributeDefinitions: [
        { AttributeName: TABLE_KEYS.partitionKey, AttributeType: 'S' },
        { AttributeName: TABLE_KEYS.sortKey, AttributeType: 'S' },
      ],
      BillingMode: 'PAY_PER_REQUEST',
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      // Enabled without a key: the AWS managed key aws/dynamodb.
      SSESpecification: { SSEEnabled: true },
      TimeToLiveSpecification: { AttributeName: TTL_ATTRIBUTE, Enabled: true },
      DeletionProtectionEnabled: true,
    });
  });

  it('has no secondary index and is retained', () => {
    const { resource } = only(template, 'AWS::DynamoDB::Table');
    assert.equal(resource.Properties.GlobalSecondaryIndexes, undefined);
    assert.equal(resource.Properties.LocalSecondaryIndexes, undefined);
    assert.equal(resource.DeletionPolicy, 'Retain');
  });

  it('exports the bucket and table names under stable names', () => {
    const exports = storageExportNames('sessionizer');
    const outputs = template.toJSON().Outputs as Record<string, { Export: { Name: string } }>;
    assert.deepEqual(
      Object.values(outputs)
        .map((o) => o.Export.Name)
        .sort(),
      Object.values(exports).sort(),
    );
  });
});

describe('storage stack: removal settings', () => {
  const { storageTemplate: destroyable, storage } = synth({
    removalPolicy: 'destroy',
    deletionProtection: false,
  });

  it('deletes buckets (emptying them) and the table when removalPolicy is destroy', () => {
    for (const [id, bucket] of Object.entries(destroyable.findResources('AWS::S3::Bucket') as Resources)) {
      assert.equal(bucket.DeletionPolicy, 'Delete', id);
    }
    destroyable.resourceCountIs('Custom::S3AutoDeleteObjects', 4);
    const { resource } = only(destroyable, 'AWS::DynamoDB::Table');
    assert.equal(resource.DeletionPolicy, 'Delete');
    assert.equal(resource.Properties.DeletionProtectionEnabled, false);
    assert.equal(storage.terminationProtection, false);
  });

  it('keeps termination protection on the retained storage stack', () => {
    assert.equal(retained.storage.terminationProtection, true);
  });

  it('has no wildcard action in any bucket policy allow (retained stack)', () => {
    for (const policy of Object.values(template.findResources('AWS::S3::BucketPolicy') as Resources)) {
      for (const s of policy.Properties.PolicyDocument.Statement) {
        if (s.Effect === 'Allow') for (const a of asList<string>(s.Action)) assert.ok(!a.includes('*'), a);
      }
    }
  });
});
