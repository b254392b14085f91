/** Reading a folder of JSON Lines outputs (as `replay --out` writes them). */
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';

/** Every file under `dir` (recursively) as relative path -> content, sorted by path. */
export async function readTree(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (d: string): Promise<void> => {
    let entries: import('node:fs').Dirent[];
    try {
      entries = await readdir(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else out.set(relative(dir, p), await readFile(p, 'utf8'));
    }
  };
  await walk(dir);
  return new Map([...out].sort(([a], [b]) => (a < b ? -1 : 1)));
}

/** All JSON lines of the files whose path starts with `prefix`. */
export function linesUnder(tree: Map<string, string>, prefix: string): string[] {
  return [...tree]
    .filter(([path]) => path.startsWith(prefix))
    .flatMap(([, text]) => text.split('\n').filter((l) => l !== ''));
}

/**
 * The lines of an output folder grouped by dataset and partition (`sessions/dt=2026-02-15`), each group sorted:
 * outputs compared as sets of records, whatever objects they were written in.
 */
export function linesByPartition(tree: Map<string, string>): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const [path, text] of tree) {
    const [dataset, dt] = path.split('/');
    const key = `${dataset}/${dt}`;
    const list = out.get(key) ?? [];
    for (const line of text.split('\n')) if (line !== '') list.push(line);
    out.set(key, list);
  }
  for (const list of out.values()) list.sort();
  return new Map([...out].sort(([a], [b]) => (a < b ? -1 : 1)));
}
