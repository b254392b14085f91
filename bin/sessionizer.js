#!/usr/bin/env node
// The `sessionizer` command: the TypeScript CLI, run with the local Node flags and environment (bin/run.js).
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runNode } from './run.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
process.exit(runNode([join(root, 'cli', 'main.ts'), ...process.argv.slice(2)]));
