/**
 * An Athena workgroup whose settings users cannot override (result location in the results bucket, SSE-S3
 * encrypted results, engine v3), with the saved queries of infra/queries.ts as named queries.
 */
import * as athena from 'aws-cdk-lib/aws-athena';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { SAVED_QUERIES } from '../queries.ts';

export interface AthenaWorkgroupProps {
  readonly workgroupName: string;
  readonly resultsBucket: s3.IBucket;
  /** Database the named queries run in. */
  readonly databaseName: string;
  /** Key prefix of query results in the results bucket. @default 'results/' */
  readonly resultsPrefix?: string;
}

export class AthenaWorkgroup extends Construct {
  readonly workgroup: athena.CfnWorkGroup;
  readonly namedQueries: readonly athena.CfnNamedQuery[];

  constructor(scope: Construct, id: string, props: AthenaWorkgroupProps) {
    super(scope, id);
    const resultsPrefix = props.resultsPrefix ?? 'results/';

    this.workgroup = new athena.CfnWorkGroup(this, 'WorkGroup', {
      name: props.workgroupName,
      description: 'Queries over the sessionizer outputs',
      state: 'ENABLED',
      // Lets CloudFormation delete the workgroup although it holds query history.
      recursiveDeleteOption: true,
      workGroupConfiguration: {
        enforceWorkGroupConfiguration: true,
        publishCloudWatchMetricsEnabled: true,
        engineVersion: { selectedEngineVersion: 'Athena engine version 3' },
        resultConfiguration: {
          outputLocation: `s3://${props.resultsBucket.bucketName}/${resultsPrefix}`,
          encryptionConfiguration: { encryptionOption: 'SSE_S3' },
        },
      },
    });

    this.namedQueries = SAVED_QUERIES.map((q) => {
      const query = new athena.CfnNamedQuery(this, `Query-${q.name}`, {
        name: q.name,
        description: q.description,
        database: props.databaseName,
        workGroup: this.workgroup.ref,
        queryString: q.sql,
      });
      return query;
    });
  }
}
