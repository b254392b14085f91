/**
 * The one test that really bundles lambdas/sessionizer.ts, as `cdk synth` does: with the local esbuild, never
 * Docker (CDK_DOCKER points at a script that leaves a mark and fails), into an ESM file that loads in Node.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { ESM_REQUIRE_BANNER } from '../../infra/constructs/sessionizer-function.ts';
import { createApp } from '../../infra/sessionizer-app.ts';
import { ENV } from '../../lambdas/config.ts';
import type { Resources } from './fixtures.ts';

const work = mkdtempSync(join(tmpdir(), 'sessionizer-bundle-'));
const dockerMark = join(work, 'docker-was-called');
const fakeDocker = join(work, 'docker');
writeFileSync(fakeDocker, `#!/bin/sh\necho "$@" >> '${dockerMark}'\nexit 1\n`);
chmodSync(fakeDocker, 0o755);
const previousDocker = process.env.CDK_DOCKER;
process.env.CDK_DOCKER = fakeDocker;

const outdir = join(work, 'cdk.out');
const { app, pipeline } = createApp({ outdir });
const assembly = app.synth();
const template = assembly.getStackArtifact(pipeline.artifactId).template as { Resources: Resources };
const [, fn] = Object.entries(template.Resources).find(
  ([, r]) =>
    r.Type === 'AWS::Lambda::Function' && r.Properties.Environment?.Variables?.[ENV.table] !== undefined,
)!;
// The asset's S3 key is `<hash>.zip`; the staged directory in the cloud assembly is `asset.<hash>`.
const assetDir = join(outdir, `asset.${String(fn.Properties.Code.S3Key).replace(/\.zip$/, '')}`);
const bundle = join(assetDir, 'index.mjs');

after(() => {
  if (previousDocker === undefined) delete process.env.CDK_DOCKER;
  else process.env.CDK_DOCKER = previousDocker;
  rmSync(work, { recursive: true, force: true });
});

describe('function bundling', () => {
  it('bundles with the local esbuild, without Docker', () => {
    assert.ok(existsSync(bundle), `no ${bundle}`);
    assert.equal(existsSync(dockerMark), false, 'docker was called');
  });

  it('writes a minified ESM bundle with a source map and the require banner', () => {
    const code = readFileSync(bundle, 'utf8');
    assert.ok(code.startsWith(ESM_REQUIRE_BANNER), 'banner first');
    assert.match(code, /export\s*\{[^}]*\bas handler\b|export\s*\{[^}]*\bhandler\b/);
    assert.ok(existsSync(`${bundle}.map`), 'no source map');
    const lines = code.split('\n').length;
    assert.ok(code.length / lines > 100, `not minified: ${lines} lines for ${code.length} characters`);
    assert.equal(fn.Properties.Handler, 'index.handler');
    assert.equal(fn.Properties.Runtime, 'nodejs22.x');
  });

  it('loads in Node as an ES module and exports the handler', async () => {
    const module = (await import(pathToFileURL(bundle).href)) as { handler?: unknown };
    assert.equal(typeof module.handler, 'function');
  });
});
