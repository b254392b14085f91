/** Small seeded visit files for pipeline tests: a few users, minutes apart, some late, duplicated and bad lines. */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { seededRandom } from '../../infra/local/faults.ts';

export const MIN = 60_000;
export const BASE = Date.UTC(2026, 1, 15, 17, 0, 0);

export interface TestFiles {
  readonly paths: string[];
  /** Every valid visit by (file basename, line). */
  readonly valid: Map<string, { userId: string; t: number; page: string }>;
  readonly badLines: number;
}

/** Writes `files` JSONL files of `lines` lines each into `dir`; time moves forward file by file, with disorder. */
export async function writeTestFiles(
  dir: string,
  name: string,
  options: { files: number; lines: number; users: number; seed: number },
): Promise<TestFiles> {
  const random = seededRandom(options.seed);
  const users = Array.from({ length: options.users }, (_, i) => (i % 3 === 0 ? i : `user ${i}`));
  const paths: string[] = [];
  const valid = new Map<string, { userId: string; t: number; page: string }>();
  let badLines = 0;
  for (let f = 0; f < options.files; f++) {
    const lines: string[] = [];
    for (let n = 1; n <= options.lines; n++) {
      if (random() < 0.03) {
        lines.push('{"user_id": "broken"');
        badLines++;
        continue;
      }
      const user = users[Math.floor(random() * users.length)]!;
      const t = BASE + Math.floor((f * 30 + random() * 50) * MIN) + Math.floor(random() * 1000);
      const page = `page_${Math.floor(random() * 5)}.html`;
      const file = `${name}-${f}.jsonl`;
      valid.set(`${file}:${n}`, { userId: String(user), t, page });
      lines.push(JSON.stringify({ user_id: user, visit_time: new Date(t).toISOString(), page }));
      if (random() < 0.05 && n < options.lines) {
        // an exact duplicate on the next line
        n++;
        valid.set(`${file}:${n}`, { userId: String(user), t, page });
        lines.push(JSON.stringify({ user_id: user, visit_time: new Date(t).toISOString(), page }));
      }
    }
    const path = join(dir, `${name}-${f}.jsonl`);
    await writeFile(path, `${lines.join('\n')}\n`);
    paths.push(path);
  }
  return { paths, valid, badLines };
}
