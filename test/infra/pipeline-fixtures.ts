/**
 * The pipeline stack synthesized with cdk.json's settings, and the references its tests compare with: imported
 * storage names, the sessionizer function, the three queues.
 */
import assert from 'node:assert/strict';
import { storageExportNames } from '../../infra/storage-stack.ts';
import { ENV } from '../../lambdas/config.ts';
import { logicalId, type Resources, synth } from './fixtures.ts';

export const { pipelineTemplate: template, pipeline } = synth();
export const queues = {
  ingest: logicalId(pipeline.ingest.queue),
  ingestDeadLetters: logicalId(pipeline.ingest.deadLetterQueue),
  deadLetters: logicalId(pipeline.deadLetterQueue),
};
export const arnOf = (id: string) => ({ 'Fn::GetAtt': [id, 'Arn'] });
export const exports = storageExportNames('sessionizer');
export const imported = (name: string) => ({ 'Fn::ImportValue': name });
export const s3Arn = (exportName: string, suffix = '') => ({
  'Fn::Join': [
    '',
    ['arn:', { Ref: 'AWS::Partition' }, ':s3:::', imported(exportName), ...(suffix ? [suffix] : [])],
  ],
});
/** The sessionizer function: the one with the state table in its environment. */
export const sessionizer = (() => {
  const all = Object.entries(template.findResources('AWS::Lambda::Function') as Resources);
  const found = all.filter(([, r]) => r.Properties.Environment?.Variables?.[ENV.table] !== undefined);
  assert.equal(found.length, 1);
  return { id: found[0]![0], props: found[0]![1].Properties };
})();
