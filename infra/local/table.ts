/**
 * The DynamoDB table of the local stack, read from the synthesized CDK template (the same app `cdk deploy` uses),
 * so local and cloud tables cannot drift: same key schema, same attributes. Synthesizing takes about two seconds, so
 * it is done once per process and only when a table has to be created.
 */
import type { CreateTableCommandInput } from '@aws-sdk/client-dynamodb';
import { localResourcesFromTemplate, synthesizeTemplates } from './from-template.ts';

let cached: CreateTableCommandInput | undefined;

export function localTableDefinition(table: string): CreateTableCommandInput {
  cached ??= localResourcesFromTemplate(Object.values(synthesizeTemplates({ bundle: false, nag: false })), {
    tableName: 'template',
  }).createTable as CreateTableCommandInput;
  return { ...cached, TableName: table };
}
