/**
 * The Glue database and one table per output dataset. Columns come from lambdas/core/schema.ts, the same
 * definition the writer uses, so the table and the JSON cannot drift apart. Partitions are projected (no crawler,
 * no MSCK REPAIR): `dt` is a date from the Unix epoch to the last day a visit can be dated (the function rejects
 * visit times before the epoch, or later than its clock plus the allowed future skew).
 */
import { Stack } from 'aws-cdk-lib';
import * as glue from 'aws-cdk-lib/aws-glue';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { EARLIEST_VISIT_TIME } from '../../lambdas/core/parse/index.ts';
import {
  type Dataset,
  glueColumns,
  LATE_VISITS,
  PARTITION_COLUMN,
  REJECTED,
  SESSIONS,
  TIMESTAMP_FORMAT,
} from '../../lambdas/core/schema.ts';
import { utcDate } from '../../lambdas/core/time.ts';

/** Hive's JSON SerDe: reads `timestamp` columns with the `timestamp.formats` pattern (Athena supports it). */
export const JSON_SERDE = 'org.apache.hive.hcatalog.data.JsonSerDe';
export const INPUT_FORMAT = 'org.apache.hadoop.mapred.TextInputFormat';
export const OUTPUT_FORMAT = 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat';

/** First day partition projection enumerates: the day of the earliest visit time the function accepts. */
export const PROJECTION_START = utcDate(EARLIEST_VISIT_TIME);

/** The end of the projection: today plus the days a visit may be dated ahead of the clock (at least one, UTC). */
export function projectionEnd(maxFutureSkewMs: number): string {
  return `NOW+${Math.max(1, Math.ceil(maxFutureSkewMs / 86_400_000))}DAYS`;
}

// biome-ignore lint/suspicious/noExplicitAny: the datasets have different record types
export const DATASETS: readonly Dataset<any>[] = [SESSIONS, LATE_VISITS, REJECTED];

export interface GlueTablesProps {
  /** Glue database name: lower-case letters, digits and `_`. */
  readonly databaseName: string;
  /** The bucket the function writes `<dataset.prefix>dt=YYYY-MM-DD/` objects to. */
  readonly outputBucket: s3.IBucket;
  /** How far ahead of the clock a visit may be dated: the projection reaches as many days past today. */
  readonly maxFutureSkewMs: number;
}

export class GlueTables extends Construct {
  readonly database: glue.CfnDatabase;
  readonly databaseName: string;
  /** Tables by dataset name (`sessions`, `late_visits`, `rejected`). */
  readonly tables: ReadonlyMap<string, glue.CfnTable>;

  constructor(scope: Construct, id: string, props: GlueTablesProps) {
    super(scope, id);
    if (!/^[a-z][a-z0-9_]{0,254}$/.test(props.databaseName)) {
      throw new Error(
        `databaseName: expected lower-case letters, digits or "_", got ${JSON.stringify(props.databaseName)}`,
      );
    }
    this.databaseName = props.databaseName;
    const catalogId = Stack.of(this).account;

    this.database = new glue.CfnDatabase(this, 'Database', {
      catalogId,
      databaseInput: {
        name: props.databaseName,
        description: 'Sessionizer outputs: closed sessions, late visits, rejected records',
      },
    });

    const tables = new Map<string, glue.CfnTable>();
    for (const dataset of DATASETS) {
      const location = `s3://${props.outputBucket.bucketName}/${dataset.prefix}`;
      const table = new glue.CfnTable(this, tableId(dataset.name), {
        catalogId,
        databaseName: props.databaseName,
        tableInput: {
          name: dataset.name,
          description: dataset.description,
          tableType: 'EXTERNAL_TABLE',
          parameters: {
            EXTERNAL: 'TRUE',
            classification: 'json',
            'projection.enabled': 'true',
            [`projection.${PARTITION_COLUMN}.type`]: 'date',
            [`projection.${PARTITION_COLUMN}.format`]: 'yyyy-MM-dd',
            [`projection.${PARTITION_COLUMN}.range`]: `${PROJECTION_START},${projectionEnd(props.maxFutureSkewMs)}`,
            [`projection.${PARTITION_COLUMN}.interval`]: '1',
            [`projection.${PARTITION_COLUMN}.interval.unit`]: 'DAYS',
            'storage.location.template': `${location}${PARTITION_COLUMN}=\${${PARTITION_COLUMN}}/`,
          },
          partitionKeys: [
            { name: PARTITION_COLUMN, type: 'string', comment: 'UTC date, YYYY-MM-DD (from the key)' },
          ],
          storageDescriptor: {
            location,
            inputFormat: INPUT_FORMAT,
            outputFormat: OUTPUT_FORMAT,
            compressed: false,
            serdeInfo: {
              serializationLibrary: JSON_SERDE,
              parameters: { 'timestamp.formats': TIMESTAMP_FORMAT },
            },
            columns: glueColumns(dataset),
          },
        },
      });
      table.addResourceDependency(this.database);
      tables.set(dataset.name, table);
    }
    this.tables = tables;
  }
}

/** `late_visits` -> `LateVisitsTable`: construct IDs are part of the contract, keep them stable. */
function tableId(name: string): string {
  return `${name
    .split('_')
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join('')}Table`;
}
