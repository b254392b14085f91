/**
 * Helpers for cdk-nag acknowledgments (cdk-nag 3: `Validations.of(construct).acknowledge`). Wildcard findings are
 * acknowledged one by one, by the exact resource cdk-nag reports, never by rule.
 */
import { Stack, Validations } from 'aws-cdk-lib';
import { flattenCfnReference } from 'cdk-nag/lib/utils/flatten-cfn-reference.js';
import type { IConstruct } from 'constructs';

/**
 * The resource as cdk-nag names it in a finding (`Resource::<this>`): the value resolved in its stack and
 * flattened the way cdk-nag does (`<Logical.Arn>`, `<AWS::Partition>`, import names as they are).
 */
export function nagResourceName(scope: IConstruct, value: string): string {
  return flattenCfnReference(Stack.of(scope).resolve(value));
}

/** Acknowledges AwsSolutions-IAM5 for one wildcard resource of `scope`'s policies. */
export function acknowledgeWildcardResource(scope: IConstruct, resource: string, reason: string): void {
  Validations.of(scope).acknowledge({
    id: `AwsSolutions-IAM5[Resource::${nagResourceName(scope, resource)}]`,
    reason,
  });
}
