/**
 * The DynamoDB table definition for local servers. It is read from the synthesized CDK template when that is
 * available (see from-template.ts), so local and cloud tables cannot drift; this fallback builds the same
 * definition from the shared layout constants.
 */
import type { CreateTableCommandInput } from '@aws-sdk/client-dynamodb';
import { EXPIRY_INDEX, TABLE_KEYS } from '../../lambdas/adapters/table-layout.ts';

export function localTableDefinition(table: string): CreateTableCommandInput {
  return {
    TableName: table,
    BillingMode: 'PAY_PER_REQUEST',
    KeySchema: [
      { AttributeName: TABLE_KEYS.partitionKey, KeyType: 'HASH' },
      { AttributeName: TABLE_KEYS.sortKey, KeyType: 'RANGE' },
    ],
    AttributeDefinitions: [
      { AttributeName: TABLE_KEYS.partitionKey, AttributeType: 'S' },
      { AttributeName: TABLE_KEYS.sortKey, AttributeType: 'S' },
      { AttributeName: EXPIRY_INDEX.partitionKey, AttributeType: 'S' },
      { AttributeName: EXPIRY_INDEX.sortKey, AttributeType: 'N' },
    ],
    GlobalSecondaryIndexes: [
      {
        IndexName: EXPIRY_INDEX.name,
        KeySchema: [
          { AttributeName: EXPIRY_INDEX.partitionKey, KeyType: 'HASH' },
          { AttributeName: EXPIRY_INDEX.sortKey, KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'KEYS_ONLY' },
      },
    ],
  };
}
