/**
 * Shared helpers of the infra tests: the app synthesized in-process with cdk.json's context, with a placeholder
 * function code so only the bundling test pays for esbuild.
 */
import { type CfnElement, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { Code } from 'aws-cdk-lib/aws-lambda';
import type { IConstruct } from 'constructs';
import { type CreateAppOptions, createApp } from '../../infra/sessionizer-app.ts';

export const PLACEHOLDER_CODE = Code.fromInline('// template tests only');

/** A value read from a synthesized template: untyped JSON, navigated by path in assertions. */
// biome-ignore lint/suspicious/noExplicitAny: templates are untyped JSON
export type Json = any;

/** Resources of a template by logical ID. */
export type Resources = Record<
  string,
  { Type: string; Properties: Record<string, Json>; [key: string]: Json }
>;

export function synth(context: Record<string, unknown> = {}, options: CreateAppOptions = {}) {
  const built = createApp({ functionCode: PLACEHOLDER_CODE, ...options, context });
  const storage = Template.fromStack(built.storage);
  const pipeline = Template.fromStack(built.pipeline);
  return { ...built, storageTemplate: storage, pipelineTemplate: pipeline };
}

/** The single resource of a type (fails the test when there is not exactly one). */
export function only(template: Template, type: string): { id: string; resource: Resources[string] } {
  const found = Object.entries(template.findResources(type) as Resources);
  if (found.length !== 1) throw new Error(`expected one ${type}, found ${found.length}`);
  const [id, resource] = found[0]!;
  return { id, resource };
}

/** The logical ID in its stack's template of a construct's CloudFormation resource (an L2 construct's default child). */
export function logicalId(construct: IConstruct): string {
  const element = (construct.node.defaultChild ?? construct) as CfnElement;
  return Stack.of(construct).resolve(element.logicalId) as string;
}

/** Every IAM policy statement of the template (identity policies and roles' inline policies). */
export function iamStatements(template: Template): { policy: string; statement: Record<string, Json> }[] {
  const out: { policy: string; statement: Record<string, Json> }[] = [];
  for (const [id, r] of Object.entries(template.findResources('AWS::IAM::Policy') as Resources)) {
    for (const s of r.Properties.PolicyDocument.Statement) out.push({ policy: id, statement: s });
  }
  for (const [id, r] of Object.entries(template.findResources('AWS::IAM::Role') as Resources)) {
    for (const p of r.Properties.Policies ?? []) {
      for (const s of p.PolicyDocument.Statement) out.push({ policy: `${id}/${p.PolicyName}`, statement: s });
    }
  }
  return out;
}

export const asList = <T>(v: T | T[] | undefined): T[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
