/**
 * Visit files with a realistic shape for the query and report tests: many users with short sessions over a day and
 * a half (two `dt` partitions, sessions across midnight), some late visits, duplicates, bad lines, one page name
 * full of HTML and CSV specials, and optionally an object that is not valid gzip (a whole-object rejection).
 */
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { seededRandom } from '../../infra/local/faults.ts';

export const START = Date.UTC(2026, 1, 15, 12, 0, 0);
export const HOUR = 3_600_000;
/** A page name that must be escaped in HTML and quoted in CSV. */
export const NASTY_PAGE = '<img src=x onerror="alert(1)">,x.html';

export interface VisitFileOptions {
  readonly files: number;
  readonly users: number;
  /** Hours of visits per file. @default 6 */
  readonly hoursPerFile?: number;
  readonly seed: number;
  /** Also write `broken.jsonl.gz`, not gzip at all. */
  readonly brokenGzip?: boolean;
}

/** Writes the visit files into `dir`, returning their paths in upload order. */
export async function writeVisitFiles(dir: string, options: VisitFileOptions): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const random = seededRandom(options.seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const hours = options.hoursPerFile ?? 6;
  const entry = [
    'home.html',
    'home.html',
    'home.html',
    'search.html',
    'search.html',
    'product_1.html',
    'blog/post-1.html',
    'landing/promo.html',
  ];
  const inner = [
    'product_1.html',
    'product_2.html',
    'product_3.html',
    'cart.html',
    'checkout.html',
    'search.html',
    'blog/post-2.html',
    'about.html',
  ];
  const user = (u: number): string | number => (u < 0 ? 'nasty' : u % 5 === 0 ? u : `user-${u}`);
  const windows: { t: number; line: string }[][] = [];
  const paths: string[] = [];
  for (let f = 0; f < options.files; f++) {
    const from = START + f * hours * HOUR;
    const lines: { t: number; line: string }[] = [];
    const visit = (u: number, t: number, page: string) =>
      lines.push({
        t,
        line: JSON.stringify({ user_id: user(u), visit_time: new Date(t).toISOString(), page }),
      });
    for (let u = 0; u < options.users; u++) {
      const sessions = random() < 0.3 ? 0 : random() < 0.7 ? 1 : 2;
      for (let s = 0; s < sessions; s++) {
        let t = from + Math.floor(random() * (hours * HOUR - 20 * 60_000));
        let visits = 1;
        while (visits < 40 && random() < 0.75) visits++;
        visit(u, t, pick(entry));
        for (let v = 1; v < visits; v++) {
          t += 20_000 + Math.floor(random() * 5 * 60_000);
          visit(u, t, pick(inner));
        }
      }
    }
    if (f === 1) {
      // a user of its own with one session, starting on the page that needs escaping
      visit(-1, from + HOUR, NASTY_PAGE);
      visit(-1, from + HOUR + 60_000, 'home.html');
    }
    lines.sort((a, b) => a.t - b.t);
    // a little disorder, two exact duplicates, late visits (two windows back), bad lines
    for (let i = 1; i < lines.length; i += 7) [lines[i - 1], lines[i]] = [lines[i]!, lines[i - 1]!];
    if (lines.length > 10) lines.splice(5, 0, lines[3]!, lines[9]!);
    const old = windows[f - 2];
    if (old && old.length > 0)
      for (let k = 0; k < 4; k++) lines.splice(Math.floor(random() * lines.length), 0, pick(old));
    lines.splice(Math.floor(random() * lines.length), 0, { t: 0, line: 'not json at all' });
    lines.splice(Math.floor(random() * lines.length), 0, {
      t: 0,
      line: '{"user_id":"user-1","page":"x.html"}',
    });
    windows.push(lines.filter((l) => l.t > 0));
    const path = join(dir, `visits-${String(f).padStart(2, '0')}.jsonl`);
    await writeFile(path, `${lines.map((l) => l.line).join('\n')}\n`);
    paths.push(path);
  }
  if (options.brokenGzip) {
    const path = join(dir, 'broken.jsonl.gz');
    await writeFile(path, 'this is not gzip\n');
    paths.push(path);
  }
  return paths;
}

/** Every JSON line under `<dir>/<prefix>`, by `dt` folder. */
export async function linesByDt(
  dir: string,
  prefix: string,
): Promise<Map<string, Record<string, unknown>[]>> {
  const out = new Map<string, Record<string, unknown>[]>();
  let parts: string[];
  try {
    parts = await readdir(join(dir, prefix));
  } catch {
    return out;
  }
  for (const part of parts.sort()) {
    const dt = /^dt=(.+)$/.exec(part)?.[1];
    if (dt === undefined) continue;
    const rows: Record<string, unknown>[] = [];
    for (const file of (await readdir(join(dir, prefix, part))).sort()) {
      for (const line of (await readFile(join(dir, prefix, part, file), 'utf8')).split('\n')) {
        if (line !== '') rows.push(JSON.parse(line) as Record<string, unknown>);
      }
    }
    out.set(dt, rows);
  }
  return out;
}
