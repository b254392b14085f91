import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type CfnTemplate,
  localResourcesFromTemplate,
  synthesizeTemplates,
  TemplateShapeError,
} from '../../infra/local/from-template.ts';
import { TABLE_KEYS } from '../../infra/storage-stack.ts';
import { TTL_ATTRIBUTE } from '../../lambdas/adapters/state-items.ts';
import { ENV } from '../../lambdas/config.ts';
import type { Json } from './fixtures.ts';

const templates = synthesizeTemplates();
const local = localResourcesFromTemplate([templates.storage, templates.pipeline], {
  tableName: 'sessionizer-local',
});
const tableOf = (t: CfnTemplate) =>
  Object.values(t.Resources ?? {}).find((r) => r.Type === 'AWS::DynamoDB::Table')!.Properties as Record<
    string,
    Json
  >;

describe('synthesizeTemplates', () => {
  it('returns both stacks, the table in storage and the function in the pipeline', () => {
    const types = (t: CfnTemplate) => new Set(Object.values(t.Resources ?? {}).map((r) => r.Type));
    assert.ok(types(templates.storage).has('AWS::DynamoDB::Table'));
    assert.ok(types(templates.pipeline).has('AWS::Lambda::Function'));
    assert.ok(!types(templates.pipeline).has('AWS::DynamoDB::Table'));
  });

  it('applies context over cdk.json', () => {
    const custom = synthesizeTemplates({ context: { sessionGap: '25m', shards: 4 }, nag: false });
    const env = localResourcesFromTemplate([custom.storage, custom.pipeline], { tableName: 't' }).environment;
    assert.equal(env[ENV.gap], '25m');
    assert.equal(env[ENV.shards], '4');
  });
});

describe('localResourcesFromTemplate', () => {
  it('gives the same key schema and attributes as the template, and no index', () => {
    const table = tableOf(templates.storage);
    assert.equal(local.createTable.TableName, 'sessionizer-local');
    assert.deepEqual(local.createTable.KeySchema, table.KeySchema);
    assert.deepEqual(local.createTable.AttributeDefinitions, table.AttributeDefinitions);
    assert.equal(table.GlobalSecondaryIndexes, undefined);
    assert.equal(local.createTable.GlobalSecondaryIndexes, undefined);
    assert.equal(local.createTable.LocalSecondaryIndexes, undefined);
    assert.equal(local.createTable.BillingMode, 'PAY_PER_REQUEST');
    assert.equal(local.createTable.ProvisionedThroughput, undefined);
  });

  it('matches the items the state store writes: string pk and sk, TTL on ttl', () => {
    assert.deepEqual(local.createTable.KeySchema, [
      { AttributeName: TABLE_KEYS.partitionKey, KeyType: 'HASH' },
      { AttributeName: TABLE_KEYS.sortKey, KeyType: 'RANGE' },
    ]);
    assert.deepEqual(local.createTable.AttributeDefinitions, [
      { AttributeName: TABLE_KEYS.partitionKey, AttributeType: 'S' },
      { AttributeName: TABLE_KEYS.sortKey, AttributeType: 'S' },
    ]);
    assert.equal(local.timeToLiveAttribute, TTL_ATTRIBUTE);
  });

  it('still reads a secondary index when a template has one', () => {
    // arrange
    const storage = JSON.parse(JSON.stringify(templates.storage)) as { Resources: Record<string, Json> };
    for (const r of Object.values(storage.Resources)) {
      if (r.Type !== 'AWS::DynamoDB::Table') continue;
      r.Properties.AttributeDefinitions.push({ AttributeName: 'g', AttributeType: 'N' });
      r.Properties.GlobalSecondaryIndexes = [
        {
          IndexName: 'by-g',
          KeySchema: [{ AttributeName: 'g', KeyType: 'HASH' }],
          Projection: { ProjectionType: 'KEYS_ONLY' },
        },
      ];
    }

    // act
    const { createTable } = localResourcesFromTemplate([storage, templates.pipeline], { tableName: 'x' });

    // assert
    assert.deepEqual(createTable.GlobalSecondaryIndexes, [
      {
        IndexName: 'by-g',
        KeySchema: [{ AttributeName: 'g', KeyType: 'HASH' }],
        Projection: { ProjectionType: 'KEYS_ONLY' },
      },
    ]);
  });

  it('lists the environment the function is deployed with, literal settings included', () => {
    for (const name of [
      ENV.visitsBucket,
      ENV.visitsPrefix,
      ENV.outputBucket,
      ENV.table,
      ENV.gap,
      ENV.allowedLateness,
      ENV.maxSessionDuration,
      ENV.idleTimeout,
      ENV.shards,
    ]) {
      assert.ok(local.environmentVariableNames.includes(name), name);
    }
    assert.equal(local.environment[ENV.gap], '40m');
    assert.equal(local.environment[ENV.shards], '16');
    assert.equal(local.environment[ENV.visitsPrefix], 'visits/');
    assert.equal(local.environment[ENV.table], null, 'a reference to fill in locally');
    assert.equal(local.environment[ENV.visitsBucket], null);
  });

  it('reads a single template too (e.g. a cdk.out file), after a JSON round trip', () => {
    const storageOnly = JSON.parse(JSON.stringify(templates.storage)) as CfnTemplate;
    const both = JSON.parse(
      JSON.stringify({
        ...templates.pipeline,
        Resources: {
          ...templates.storage.Resources,
          ...templates.pipeline.Resources,
        },
      }),
    ) as CfnTemplate;
    assert.deepEqual(localResourcesFromTemplate(both, { tableName: 'sessionizer-local' }), local);
    assert.throws(
      () => localResourcesFromTemplate(storageOnly, { tableName: 'x' }),
      (e: unknown) =>
        e instanceof TemplateShapeError &&
        /with SESSIONIZER_TABLE in its environment, found 0/.test(e.message),
    );
  });

  it('fails clearly when the template has no table', () => {
    assert.throws(
      () => localResourcesFromTemplate(templates.pipeline, { tableName: 'x' }),
      (e: unknown) =>
        e instanceof TemplateShapeError &&
        e.message === 'expected one AWS::DynamoDB::Table in the templates, found 0',
    );
  });

  it('fails clearly on a provisioned table', () => {
    const storage = JSON.parse(JSON.stringify(templates.storage)) as { Resources: Record<string, Json> };
    for (const r of Object.values(storage.Resources))
      if (r.Type === 'AWS::DynamoDB::Table') r.Properties.BillingMode = 'PROVISIONED';
    assert.throws(
      () => localResourcesFromTemplate([storage, templates.pipeline], { tableName: 'x' }),
      /expected BillingMode PAY_PER_REQUEST, got "PROVISIONED"/,
    );
  });
});
