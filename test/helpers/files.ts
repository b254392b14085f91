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
