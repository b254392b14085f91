/**
 * CDK CLI entry (cdk.json "app"). Settings come from cdk.json's context and `-c name=value`; see infra/settings.ts.
 * Stacks are environment-agnostic: `npm run synth` needs no AWS credentials and no Docker (esbuild bundles locally).
 */
import { App } from 'aws-cdk-lib';
import { addSessionizer } from './sessionizer-app.ts';
import { SettingsError } from './setting-values.ts';

const app = new App();
try {
  addSessionizer(app);
  app.synth();
} catch (error) {
  if (!(error instanceof SettingsError)) throw error;
  // A settings mistake is the user's, not a bug: the message alone, no stack trace.
  console.error(`invalid setting: ${error.message}`);
  process.exitCode = 1;
}
