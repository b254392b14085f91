import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { JSON_SERDE, PROJECTION_START, projectionEnd } from '../../infra/constructs/glue-tables.ts';
import { SAVED_QUERIES } from '../../infra/queries.ts';
import { storageExportNames } from '../../infra/storage-stack.ts';
import { EARLIEST_VISIT_TIME } from '../../lambdas/core/parse/index.ts';
import {
  type ColumnType,
  type Dataset,
  glueColumns,
  LATE_VISITS,
  PARTITION_COLUMN,
  REJECTED,
  SESSIONS,
  TIMESTAMP_FORMAT,
  toRecord,
} from '../../lambdas/core/schema.ts';
import { utcDate } from '../../lambdas/core/time.ts';
import type { ClosedSession, LateVisit } from '../../lambdas/core/types.ts';
import { type Json, only, type Resources, synth } from './fixtures.ts';

const { pipelineTemplate: template } = synth();
const tables = Object.values(template.findResources('AWS::Glue::Table') as Resources).map(
  (t) => t.Properties,
);
const tableOf = (name: string) => {
  const found = tables.find((t) => t.TableInput.Name === name);
  assert.ok(found, `no Glue table ${name}`);
  return found;
};
const DATASETS: Dataset<Json>[] = [SESSIONS, LATE_VISITS, REJECTED];
const outputBucket = { 'Fn::ImportValue': storageExportNames('sessionizer').outputBucketName };

/**
 * A regular expression for the text a Java DateTimeFormatter/Joda pattern produces: letter runs are numeric
 * fields of that many digits (`yyyy`, `MM`, `SSS`), `'...'` is a literal, anything else stands for itself.
 */
function regexOfJavaPattern(pattern: string): RegExp {
  let out = '';
  let i = 0;
  while (i < pattern.length) {
    const c = pattern[i]!;
    if (c === "'") {
      const end = pattern.indexOf("'", i + 1);
      assert.ok(end > i, 'unterminated quote');
      out += pattern.slice(i + 1, end).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      i = end + 1;
    } else if (/[A-Za-z]/.test(c)) {
      let n = 1;
      while (pattern[i + n] === c) n++;
      assert.ok('yMdHmsS'.includes(c), `unsupported pattern letter ${c}`);
      out += `\\d{${n}}`;
      i += n;
    } else {
      out += c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      i++;
    }
  }
  return new RegExp(`^${out}$`);
}

/** Every value of a `timestamp` column in a record built by toRecord, nested ones included. */
function timestampValues(type: ColumnType, value: unknown): unknown[] {
  if (type === 'timestamp') return [value];
  if (typeof type === 'string') return [];
  if (type.kind === 'array') return (value as unknown[]).flatMap((v) => timestampValues(type.of, v));
  return type.fields.flatMap((f) => timestampValues(f.type, (value as Record<string, unknown>)[f.name]));
}

describe('glue tables', () => {
  it('has one database and a table per output dataset', () => {
    template.hasResourceProperties('AWS::Glue::Database', {
      CatalogId: { Ref: 'AWS::AccountId' },
      DatabaseInput: { Name: 'sessionizer' },
    });
    assert.deepEqual(tables.map((t) => t.TableInput.Name).sort(), ['late_visits', 'rejected', 'sessions']);
    for (const t of tables) assert.equal(t.DatabaseName, 'sessionizer');
  });

  it('has exactly the columns of the schema the writer uses', () => {
    for (const dataset of DATASETS) {
      const expected = glueColumns(dataset).map((c) => ({ Name: c.name, Type: c.type, Comment: c.comment }));
      assert.deepEqual(tableOf(dataset.name).TableInput.StorageDescriptor.Columns, expected, dataset.name);
    }
  });

  it('reads JSON Lines with the Hive JSON SerDe, under the dataset prefix', () => {
    for (const dataset of DATASETS) {
      const input = tableOf(dataset.name).TableInput;
      assert.equal(input.TableType, 'EXTERNAL_TABLE');
      assert.equal(input.StorageDescriptor.SerdeInfo.SerializationLibrary, JSON_SERDE);
      assert.equal(JSON_SERDE, 'org.apache.hive.hcatalog.data.JsonSerDe');
      assert.equal(input.StorageDescriptor.InputFormat, 'org.apache.hadoop.mapred.TextInputFormat');
      assert.deepEqual(input.StorageDescriptor.Location, {
        'Fn::Join': ['', ['s3://', outputBucket, `/${dataset.prefix}`]],
      });
      assert.deepEqual(input.PartitionKeys, [
        { Name: PARTITION_COLUMN, Type: 'string', Comment: 'UTC date, YYYY-MM-DD (from the key)' },
      ]);
    }
  });

  it('projects dt partitions by day from the Unix epoch to tomorrow (a visit may be dated up to an hour ahead)', () => {
    for (const dataset of DATASETS) {
      const params = tableOf(dataset.name).TableInput.Parameters;
      assert.equal(params['projection.enabled'], 'true');
      assert.equal(params['projection.dt.type'], 'date');
      assert.equal(params['projection.dt.format'], 'yyyy-MM-dd');
      assert.equal(params['projection.dt.range'], '1970-01-01,NOW+1DAYS');
      assert.equal(params['projection.dt.interval'], '1');
      assert.equal(params['projection.dt.interval.unit'], 'DAYS');
      assert.deepEqual(params['storage.location.template'], {
        'Fn::Join': ['', ['s3://', outputBucket, `/${dataset.prefix}dt=\${dt}/`]],
      });
    }
  });

  it("covers every dt the writer can write: from the parser's earliest visit time to the clock plus the skew", () => {
    // the earliest day is that of the earliest visit time the pipeline accepts
    assert.equal(PROJECTION_START, utcDate(EARLIEST_VISIT_TIME));
    // the last: a visit dated maxFutureSkew ahead of a clock just before UTC midnight falls that many days later
    for (const [skew, days] of [
      [0, 1],
      [60 * 60_000, 1],
      [24 * 3_600_000, 1],
      [36 * 3_600_000, 2],
      [7 * 86_400_000, 7],
    ] as const) {
      const clock = Date.UTC(2026, 1, 15, 23, 59, 59, 999);
      const latestDay = Date.parse(utcDate(clock + skew));
      const today = Date.parse(utcDate(clock));
      assert.ok((latestDay - today) / 86_400_000 <= days, `skew ${skew} ms reaches ${utcDate(clock + skew)}`);
      assert.equal(projectionEnd(skew), `NOW+${days}DAYS`);
    }
  });

  it("gives the SerDe the writer's timestamp format, and the writer's timestamps match it", () => {
    for (const dataset of DATASETS) {
      assert.equal(
        tableOf(dataset.name).TableInput.StorageDescriptor.SerdeInfo.Parameters['timestamp.formats'],
        TIMESTAMP_FORMAT,
      );
    }
    const pattern = regexOfJavaPattern(TIMESTAMP_FORMAT);
    assert.equal(pattern.source, '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}\\.\\d{3}Z$');

    const t0 = Date.UTC(2026, 1, 15, 17, 5, 34, 432);
    const session: ClosedSession = {
      userId: '1',
      start: t0,
      end: t0 + 72_668,
      visits: [
        { t: t0, page: 'page_1.html' },
        { t: t0 + 1_000, page: 'page_2.html' },
        { t: t0 + 72_668, page: 'page_3.html' },
      ],
    };
    const late: LateVisit = {
      userId: '7',
      t: Date.UTC(2026, 0, 1, 0, 0, 0, 0),
      page: 'p',
      sourceObject: 's3://b/k',
      sourceLine: 3,
      watermark: Date.UTC(2026, 0, 1, 0, 15, 0, 5),
    };
    const records: [Dataset<Json>, unknown][] = [
      [SESSIONS, session],
      [LATE_VISITS, late],
    ];
    let checked = 0;
    for (const [dataset, record] of records) {
      const row = toRecord(dataset, record);
      for (const column of dataset.columns) {
        for (const value of timestampValues(column.type, row[column.name])) {
          assert.equal(typeof value, 'string', `${dataset.name}.${column.name}`);
          assert.match(value as string, pattern, `${dataset.name}.${column.name}`);
          assert.equal(new Date(value as string).toISOString(), value, 'UTC with milliseconds, round-trips');
          checked++;
        }
      }
    }
    assert.equal(checked, 2 + 3 + 2, 'start/end, three visit times, visit time and watermark');
    assert.equal(toRecord(SESSIONS, session).start_time, '2026-02-15T17:05:34.432Z');
  });
});

describe('athena workgroup', () => {
  it('enforces encrypted results in the results bucket', () => {
    template.hasResourceProperties('AWS::Athena::WorkGroup', {
      Name: 'sessionizer',
      WorkGroupConfiguration: {
        EnforceWorkGroupConfiguration: true,
        ResultConfiguration: {
          OutputLocation: {
            'Fn::Join': [
              '',
              [
                's3://',
                { 'Fn::ImportValue': storageExportNames('sessionizer').athenaResultsBucketName },
                '/results/',
              ],
            ],
          },
          EncryptionConfiguration: { EncryptionOption: 'SSE_S3' },
        },
      },
    });
  });

  it('saves the queries of infra/queries.ts in the workgroup and database', () => {
    const workgroup = only(template, 'AWS::Athena::WorkGroup').id;
    const named = Object.values(template.findResources('AWS::Athena::NamedQuery') as Resources).map(
      (q) => q.Properties,
    );
    assert.deepEqual(
      named.map((q) => ({ name: q.Name, description: q.Description, sql: q.QueryString })),
      SAVED_QUERIES.map((q) => ({ name: q.name, description: q.description, sql: q.sql })),
    );
    for (const q of named) {
      assert.equal(q.Database, 'sessionizer');
      assert.deepEqual(q.WorkGroup, { Ref: workgroup });
    }
  });

  it('has the four analyses, over the Glue tables and their columns', () => {
    const sql = Object.fromEntries(SAVED_QUERIES.map((q) => [q.name, q.sql]));
    assert.match(sql['sessions-per-day']!, /FROM sessions\s+GROUP BY dt/);
    assert.match(sql['session-duration']!, /avg\(duration_ms\)/);
    assert.match(sql['session-duration']!, /approx_percentile\(duration_ms, 0\.95\)/);
    assert.match(sql['top-entry-pages']!, /visited_pages\[1\]\.page/);
    assert.match(sql['late-visit-ratio']!, /FROM late_visits/);
    assert.match(sql['late-visit-ratio']!, /sum\(visit_count\)/);
    const known = new Set([...DATASETS.flatMap((d) => d.columns.map((c) => c.name)), PARTITION_COLUMN]);
    for (const column of ['user_id', 'visit_count', 'duration_ms', 'visited_pages'])
      assert.ok(known.has(column));
  });
});
