/**
 * Core and DuckDB head to head, in turns, in a process of their own (started by bench/versus.ts):
 *
 *   node --import tsx bench/head-to-head.ts <rounds> <file.jsonl>...
 *
 * Each round runs one core pass over the files (bench/core.ts runPass: parse + sessionize + closing on one core, the
 * output stage timed apart) and then one run of the DuckDB SQL over the same files (bench/duckdb.ts: the query until
 * its result is in DuckDB's memory; the conversion of the result rows into JavaScript values timed apart), then the
 * same SQL by DuckDB limited to one thread, for a comparison core for core (the target is against DuckDB's default
 * threads). In turns, so that all see the same machine: on a shared host the speed drifts by 10-20% from minute to
 * minute. In a process of its own, with nothing else loaded: in the bench's main process, whose heap holds the AWS
 * SDK, the handler's state and esbuild, every major garbage collection of the core has far more to mark, and the core
 * ran about 25% slower.
 *
 * Prints one JSON line: the seconds of each round for each, DuckDB's threads and version, and the conservation
 * problems of the core's passes (none when it holds).
 */
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { conservationErrors, runPass } from './core.ts';
import { openDuckDb } from './duckdb.ts';
import type { WorkloadFile } from './workload.ts';

export interface HeadToHead {
  readonly coreSeconds: number[];
  readonly duckdbSeconds: number[];
  /** Per round, DuckDB's conversion of its result rows into JavaScript values (not in `duckdbSeconds`). */
  readonly duckdbToJsSeconds: number[];
  /** Per round, the same SQL by DuckDB on one thread: the comparison core for core. */
  readonly duckdbOneThreadSeconds: number[];
  readonly duckdbThreads: number;
  readonly duckdbVersion: string;
  readonly errors: string[];
}

/** Data lines of a JSON Lines file: its newlines (the workload ends every line with one). */
function lineCount(bytes: Buffer): number {
  let n = 0;
  for (let i = bytes.indexOf(10); i >= 0; i = bytes.indexOf(10, i + 1)) n++;
  return n;
}

async function main(): Promise<void> {
  const [roundsText, ...paths] = process.argv.slice(2);
  const rounds = Number(roundsText);
  if (!Number.isSafeInteger(rounds) || rounds < 1 || paths.length === 0) {
    throw new Error('usage: head-to-head.ts <rounds> <file.jsonl>...');
  }
  const files: WorkloadFile[] = [];
  for (const path of paths) {
    const bytes = await readFile(path);
    files.push({ name: basename(path), bytes, records: lineCount(bytes) });
  }
  const db = await openDuckDb(paths);
  const single = await openDuckDb(paths, 1);
  const result: HeadToHead = {
    coreSeconds: [],
    duckdbSeconds: [],
    duckdbToJsSeconds: [],
    duckdbOneThreadSeconds: [],
    duckdbThreads: db.threads,
    duckdbVersion: db.version,
    errors: [],
  };
  try {
    // warm-up: the JIT for the core, the page cache and DuckDB's own start for the SQL
    await runPass(files.slice(0, Math.max(1, Math.ceil(files.length / 5))));
    await db.run();
    await single.run();
    for (let i = 0; i < rounds; i++) {
      const pass = await runPass(files);
      result.errors.push(...conservationErrors(`round ${i + 1}`, pass));
      result.coreSeconds.push(pass.seconds);
      const duck = await db.run();
      result.duckdbSeconds.push(duck.seconds);
      result.duckdbToJsSeconds.push(duck.toJsSeconds);
      const one = await single.run();
      result.duckdbOneThreadSeconds.push(one.seconds);
      process.stderr.write(
        `  round ${i + 1}: core ${pass.seconds.toFixed(3)} s, DuckDB ${duck.seconds.toFixed(3)} s (+ ${duck.toJsSeconds.toFixed(3)} s to JavaScript), DuckDB on one thread ${one.seconds.toFixed(3)} s\n`,
      );
    }
  } finally {
    db.close();
    single.close();
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

try {
  await main();
} catch (error) {
  process.stderr.write(`head-to-head: ${(error as Error).message}\n`);
  process.exitCode = 2;
}
