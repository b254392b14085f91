/**
 * Builds the sessionizer app: the storage and pipeline stacks, settings from context, cdk-nag's AWS Solutions
 * checks. Used by infra/app.ts (the CDK CLI entry) and in-process by tests and the local stack.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { App, type Stage, Validations } from 'aws-cdk-lib';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import { AwsSolutionsChecks } from 'cdk-nag';
import { PipelineStack } from './pipeline-stack.ts';
import { type Settings, settingsFromContext } from './settings.ts';
import { StorageStack } from './storage-stack.ts';

export interface Sessionizer {
  readonly settings: Settings;
  readonly storage: StorageStack;
  readonly pipeline: PipelineStack;
}

export interface AddSessionizerOptions {
  /** Pre-built function code instead of the esbuild bundle. @default - bundle lambdas/sessionizer.ts */
  readonly functionCode?: lambda.Code;
  /** Run cdk-nag's AWS Solutions checks at synth (they fail the synth on an unacknowledged finding). @default true */
  readonly nag?: boolean;
}

/** Adds both stacks to `app`, with settings read and validated from its context. */
export function addSessionizer(app: Stage, options: AddSessionizerOptions = {}): Sessionizer {
  const settings = settingsFromContext(app.node);
  const tags = { application: settings.pipelineName };
  const storage = new StorageStack(app, 'Storage', {
    stackName: `${settings.pipelineName}-storage`,
    description: 'Sessionizer data: visits, outputs, Athena results, access logs, state table',
    terminationProtection: settings.removalPolicy === 'retain',
    tags,
    settings,
  });
  const pipeline = new PipelineStack(app, 'Pipeline', {
    stackName: `${settings.pipelineName}-pipeline`,
    description: 'Sessionizer function, triggers, DLQ, Glue tables, Athena workgroup, alarms, dashboard',
    tags,
    settings,
    storage: storage.exports,
    ...(options.functionCode ? { functionCode: options.functionCode } : {}),
  });
  pipeline.addStackDependency(storage, 'imports the buckets and the table by export name');
  if (options.nag ?? true) Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
  return { settings, storage, pipeline };
}

export const CDK_JSON = fileURLToPath(new URL('../cdk.json', import.meta.url));

/** The `context` of cdk.json: feature flags and setting defaults, as the CDK CLI would pass them. */
export function cdkJsonContext(): Record<string, unknown> {
  const json = JSON.parse(readFileSync(CDK_JSON, 'utf8')) as { context?: Record<string, unknown> };
  return json.context ?? {};
}

export interface CreateAppOptions extends AddSessionizerOptions {
  /** Context over cdk.json's (settings such as `sessionGap`, feature flags). */
  readonly context?: Record<string, unknown>;
  /** Cloud assembly directory. @default - a fresh temporary directory */
  readonly outdir?: string;
}

/** A new app with cdk.json's context, as `cdk synth` builds it, without the CLI. */
export function createApp(options: CreateAppOptions = {}): Sessionizer & { readonly app: App } {
  const app = new App({
    context: { ...cdkJsonContext(), ...options.context },
    ...(options.outdir ? { outdir: options.outdir } : {}),
  });
  return { app, ...addSessionizer(app, options) };
}
