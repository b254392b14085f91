#!/usr/bin/env node
// The one place for the Node flags and environment every local command needs: `node bin/run.js ARGS...` runs
// `node ARGS...` with them. `--import tsx` runs the TypeScript sources; `--openssl-legacy-provider` lets s3rver make
// its paged-listing tokens (DES). They travel in NODE_OPTIONS, so processes started from there inherit them.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** NODE_OPTIONS for the local tools, after any the user set. */
const LOCAL_NODE_OPTIONS = '--openssl-legacy-provider --import tsx';

/** The environment of a local command: the SDK's notice that it will need Node 22 from 2027 is silenced. */
export function localEnv(env = process.env) {
  const set = env.NODE_OPTIONS ?? '';
  const options = set.includes(LOCAL_NODE_OPTIONS)
    ? set
    : [set, LOCAL_NODE_OPTIONS].filter(Boolean).join(' ');
  return { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', ...env, NODE_OPTIONS: options };
}

/** Runs `node ...args` with the local flags and environment; returns its exit code. */
export function runNode(args, options = {}) {
  const result = spawnSync(process.execPath, args, { stdio: 'inherit', env: localEnv(), ...options });
  if (result.error) throw result.error;
  return result.status ?? (result.signal ? 1 : 0);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.exit(runNode(process.argv.slice(2)));
