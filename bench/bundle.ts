/**
 * The Lambda bundle as CDK builds it (infra/constructs/sessionizer-function.ts: esbuild, ESM, minified, platform
 * node, target node22, main fields module/main, the AWS SDK bundled, the createRequire banner, external source
 * map without sources content), its size, and its module load time in a fresh node process.
 */
import { execFile } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { build } from 'esbuild';
import { ESM_REQUIRE_BANNER, HANDLER_ENTRY } from '../infra/constructs/sessionizer-function.ts';

const run = promisify(execFile);

export interface Bundle {
  /** The bundle file (`index.mjs`, as CDK names an ESM handler). */
  readonly file: string;
  readonly bytes: number;
  readonly mapBytes: number;
  readonly buildSeconds: number;
}

export async function buildBundle(outDir: string): Promise<Bundle> {
  const file = join(outDir, 'index.mjs');
  const started = performance.now();
  await build({
    entryPoints: [HANDLER_ENTRY],
    outfile: file,
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node22',
    mainFields: ['module', 'main'],
    banner: { js: ESM_REQUIRE_BANNER },
    minify: true,
    sourcemap: 'external',
    sourcesContent: false,
    // bundleAwsSDK: true, so nothing is external
    external: [],
    logLevel: 'warning',
  });
  const buildSeconds = (performance.now() - started) / 1000;
  return {
    file,
    bytes: (await stat(file)).size,
    mapBytes: (await stat(`${file}.map`)).size,
    buildSeconds,
  };
}

/**
 * Module load time of the bundle: a fresh node process imports it and prints the elapsed milliseconds (node's own
 * start-up excluded). Median of `runs`.
 */
export async function measureInit(
  file: string,
  runs = 5,
): Promise<{ medianMs: number; samplesMs: number[] }> {
  const url = pathToFileURL(file).href;
  const script =
    'const t0 = performance.now(); ' +
    `const m = await import(${JSON.stringify(url)}); ` +
    "if (typeof m.handler !== 'function') throw new Error('no handler export'); " +
    'process.stdout.write(String(performance.now() - t0));';
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], {
      env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', NODE_OPTIONS: '' },
    });
    samples.push(Number(stdout.trim()));
  }
  const sorted = [...samples].sort((a, b) => a - b);
  return { medianMs: sorted[Math.floor(sorted.length / 2)]!, samplesMs: samples };
}
