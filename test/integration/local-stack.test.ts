/** The local stack is made from the synthesized CDK template, so local and cloud cannot drift. */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DescribeTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  type LocalResources,
  localResourcesFromTemplate,
  synthesizeTemplates,
} from '../../infra/local/from-template.ts';
import { encodeS3EventKey, forwardObjectCreated } from '../../infra/local/s3-events.ts';
import { type LocalStack, startLocalStack } from '../../infra/local/stack.ts';
import { ENV } from '../../lambdas/config.ts';

let home: string;
let stack: LocalStack;
/** What the deployed app gives the local stack: read from the templates, synthesized once. */
let deployed: LocalResources;
before(async () => {
  home = await mkdtemp(join(tmpdir(), 'sessionizer-local-'));
  stack = await startLocalStack({ home, inMemory: true, env: {} });
  deployed = localResourcesFromTemplate(Object.values(synthesizeTemplates({ nag: false })), {
    tableName: stack.config.table,
  });
});
after(async () => {
  await stack.stop();
  await rm(home, { recursive: true, force: true });
});

describe('local stack', () => {
  it('creates the table with the key schema and attributes of the synthesized template, and no index', async () => {
    // arrange
    const expected = deployed.createTable;
    const client = new DynamoDBClient({
      endpoint: stack.env[ENV.dynamodbEndpoint],
      region: 'us-east-1',
      credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
    });

    // act
    const { Table } = await client.send(new DescribeTableCommand({ TableName: stack.config.table }));
    client.destroy();

    // assert
    const sortBy = <T extends { AttributeName?: string }>(list: T[] | undefined) =>
      [...(list ?? [])].sort((a, b) => String(a.AttributeName).localeCompare(String(b.AttributeName)));
    assert.deepEqual(Table?.KeySchema, expected.KeySchema);
    assert.deepEqual(sortBy(Table?.AttributeDefinitions), sortBy(expected.AttributeDefinitions));
    assert.equal(expected.GlobalSecondaryIndexes, undefined);
    assert.equal(Table?.GlobalSecondaryIndexes, undefined);
    assert.equal(Table?.LocalSecondaryIndexes, undefined);
  });

  it('sets every environment variable the deployed function gets, under the same names', () => {
    // arrange
    const { environmentVariableNames } = deployed;
    const known = new Set<string>(Object.values(ENV));

    // assert: every SESSIONIZER_* variable of the template is one the config reads, and the required ones are set
    for (const name of environmentVariableNames.filter((n) => n.startsWith('SESSIONIZER_'))) {
      assert.ok(known.has(name), `${name} is read by lambdas/config.ts`);
    }
    for (const name of [ENV.visitsBucket, ENV.outputBucket, ENV.table]) {
      assert.ok(environmentVariableNames.includes(name), `the template sets ${name}`);
      assert.ok(stack.env[name], `the local stack sets ${name}`);
    }
  });

  it('runs with the shard count the function is deployed with by default', () => {
    // arrange
    const { environment } = deployed;

    // assert
    assert.equal(environment[ENV.shards], '16');
    assert.equal(stack.config.shards, Number(environment[ENV.shards]));
  });

  it('encodes event keys as S3 does: spaces as +, other characters percent-encoded, slashes kept', () => {
    assert.equal(encodeS3EventKey('visits/día 1+2.jsonl'), 'visits/d%C3%ADa+1%2B2.jsonl');
  });

  it("forwards only what the deployed notification's filter lets through: the bucket, the prefix and the suffix", () => {
    const s3rver = new EventEmitter();
    const forwarded: string[] = [];
    forwardObjectCreated(s3rver, { bucket: 'visits', prefix: 'visits/', suffix: '.jsonl' }, (key) =>
      forwarded.push(key),
    );
    const created = (bucket: string, key: string, eventName = 'ObjectCreated:Put') =>
      s3rver.emit('event', { Records: [{ eventName, s3: { bucket: { name: bucket }, object: { key } } }] });

    created('visits', 'visits/a.jsonl');
    created('visits', 'visits/_SUCCESS');
    created('visits', 'visits/b.jsonl.tmp');
    created('visits', 'other/c.jsonl');
    created('output', 'visits/d.jsonl');
    created('visits', 'visits/e.jsonl', 'ObjectRemoved:Delete');

    assert.deepEqual(forwarded, ['visits/a.jsonl']);
  });
});
