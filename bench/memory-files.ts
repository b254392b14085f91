/**
 * The large objects of the memory runs, written to disk as a stream (a few MiB in memory at a time), and the sessions
 * one batch of them followed by a flush must give. Visits come from the workload generator (bench/workload.ts
 * sessions, no late visits, no duplicates) in chunks of at most a million, each chunk its own users, each line padded
 * with an ignored `payload` field to reach the object's size: ~2 KB lines make the wide object, ~100-byte lines the
 * short one.
 */
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { writeIso } from '../lambdas/core/time.ts';
import { DEFAULT_SESSION_CONFIG } from '../lambdas/core/types.ts';
import { mulberry32 } from './random.ts';
import type { SessionRow } from './sessions.ts';
import { generateVisits, userIdOf, type VisitTable } from './workload.ts';

export interface BigFileOptions {
  readonly visits: number;
  readonly users: number;
  readonly seed: number;
  /** Target size of the object in bytes. */
  readonly bytes: number;
  /** Keep every expected session (to compare them row by row), not only their count. */
  readonly keepRows?: boolean;
  /** Told the fraction written so far. */
  readonly onProgress?: (fraction: number) => void;
}

export interface BigFile {
  readonly path: string;
  readonly bytes: number;
  readonly visits: number;
  readonly users: number;
  /** The sessions a batch of the whole object and a flush give: their number, and the rows with `keepRows`. */
  readonly expectedSessions: number;
  readonly expectedRows: SessionRow[] | undefined;
}

/** Most visits generated at once (each chunk has its own users). */
const CHUNK_VISITS = 1_000_000;

/**
 * The sessions of one batch of these visits followed by a flush (DESIGN section 2: the batch sessionization of the
 * distinct visits; one batch has no late visit): per user, sorted by time then page, cut where a gap exceeds 40 min.
 * User `u` of the table is user `u + userOffset` of the object.
 */
export function expectedSessions(
  table: VisitTable,
  userOffset = 0,
  gapMs = DEFAULT_SESSION_CONFIG.gapMs,
): SessionRow[] {
  const byUser = new Map<number, { t: number; page: string }[]>();
  for (let i = 0; i < table.count; i++) {
    const u = table.user[i]!;
    let list = byUser.get(u);
    if (list === undefined) byUser.set(u, (list = []));
    list.push({ t: table.time[i]!, page: `page_${table.page[i]!}.html` });
  }
  const out: SessionRow[] = [];
  for (const [u, list] of byUser) {
    const userId = String(userIdOf(u + userOffset));
    list.sort((a, b) => a.t - b.t || (a.page < b.page ? -1 : a.page > b.page ? 1 : 0));
    let start = 0;
    let count = 0;
    for (let i = 0; i <= list.length; i++) {
      const v = list[i];
      const prev = list[i - 1];
      if (v !== undefined && prev !== undefined && v.t === prev.t && v.page === prev.page) continue; // duplicate
      if (prev !== undefined && count > 0 && (v === undefined || v.t - prev.t > gapMs)) {
        out.push({ userId, start: list[start]!.t, end: prev.t, visitCount: count });
        count = 0;
      }
      if (v === undefined) break;
      if (count === 0) start = i;
      count++;
    }
  }
  return out;
}

/**
 * The number of sessions of {@link expectedSessions}, without building them: per user, times sorted, gaps counted
 * (one native sort of user and time packed into one number; the workload has no duplicates here).
 */
export function countSessions(table: VisitTable, gapMs = DEFAULT_SESSION_CONFIG.gapMs): number {
  const keys = new Float64Array(table.count);
  for (let i = 0; i < table.count; i++) keys[i] = table.user[i]! * 2 ** 33 + (table.time[i]! - table.minTime);
  keys.sort();
  let sessions = 0;
  for (let i = 0; i < keys.length; i++) {
    const user = Math.floor(keys[i]! / 2 ** 33);
    if (i === 0 || user !== Math.floor(keys[i - 1]! / 2 ** 33) || keys[i]! - keys[i - 1]! > gapMs) sessions++;
  }
  return sessions;
}

/** Bytes of one block written to the file at once. */
const BLOCK = 4 << 20;
const ascii = (text: string): Buffer => Buffer.from(text, 'latin1');
const PARTS = {
  user: ascii('{"user_id":'),
  time: ascii(',"visit_time":"'),
  page: ascii('","page":"page_'),
  payload: ascii('.html","payload":"'),
  end: ascii('"}\n'),
  endPage: ascii('.html"}\n'),
};

/**
 * Writes visit lines as bytes into blocks (no string per line: ten million lines are written in seconds), each block
 * written to the file once full; `drained` waits for the stream when it is behind.
 */
function lineWriter(path: string, padding: Buffer) {
  const out = createWriteStream(path);
  let block = Buffer.allocUnsafe(BLOCK + 64 * 1024 + padding.length);
  let pos = 0;
  let written = 0;
  let full = false;
  const put = (b: Buffer): void => {
    pos += b.copy(block, pos);
  };
  const flush = (): void => {
    written += pos;
    if (!out.write(block.subarray(0, pos))) full = true;
    block = Buffer.allocUnsafe(block.length);
    pos = 0;
  };
  return {
    /** One line: `user` is the user_id's JSON text, `pad` the payload's length (none when 0). */
    line(user: string, t: number, page: number, pad: number, from: number): void {
      put(PARTS.user);
      pos += block.write(user, pos, 'latin1');
      put(PARTS.time);
      pos = writeIso(t, block, pos);
      put(PARTS.page);
      pos += block.write(String(page), pos, 'latin1');
      if (pad > 0) {
        put(PARTS.payload);
        pos += padding.copy(block, pos, from, from + pad);
        put(PARTS.end);
      } else put(PARTS.endPage);
      if (pos >= BLOCK) flush();
    },
    async drained(): Promise<void> {
      if (!full) return;
      full = false;
      await once(out, 'drain');
    },
    async end(): Promise<number> {
      flush();
      out.end();
      await once(out, 'finish');
      return written;
    },
  };
}

/** Writes the object; see the module comment. */
export async function writeBigFile(path: string, options: BigFileOptions): Promise<BigFile> {
  const chunks = Math.max(1, Math.ceil(options.visits / CHUNK_VISITS));
  const usersPerChunk = Math.max(1, Math.floor(options.users / chunks));
  const lineBytes = Math.floor(options.bytes / options.visits);
  const rand = mulberry32(options.seed ^ 0x5eed);
  const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ;/().,_-';
  const text = Array.from(
    { length: lineBytes + 4096 },
    () => alphabet[Math.floor(rand() * alphabet.length)],
  ).join('');
  const out = lineWriter(path, ascii(text));
  // the line without a payload: {"user_id":…,"visit_time":"<24>","page":"page_<n>.html"} and a newline
  const bare = (user: string, page: number): number => 73 + user.length + String(page).length;
  const rows: SessionRow[] | undefined = options.keepRows ? [] : undefined;
  let expected = 0;
  let n = 0;
  for (let c = 0; c < chunks; c++) {
    const table = generateVisits({
      visits: Math.round(((c + 1) * options.visits) / chunks) - Math.round((c * options.visits) / chunks),
      users: usersPerChunk,
      files: 1,
      seed: options.seed + c,
      lateFraction: 0,
      duplicateFraction: 0,
    });
    if (rows) {
      const sessions = expectedSessions(table, c * usersPerChunk);
      expected += sessions.length;
      for (const s of sessions) rows.push(s);
    } else expected += countSessions(table);
    // time order (ties by arrival), so the chunk reads like a log
    const order = Int32Array.from({ length: table.count }, (_, i) => i).sort(
      (a, b) => table.time[a]! - table.time[b]! || a - b,
    );
    for (const i of order) {
      const id = userIdOf(table.user[i]! + c * usersPerChunk);
      const user = typeof id === 'number' ? String(id) : JSON.stringify(id);
      const page = table.page[i]!;
      const pad = Math.max(0, lineBytes - bare(user, page) - 13); // 13: `,"payload":""`
      out.line(user, table.time[i]!, page, pad, (n++ * 131) % 4096);
      if ((n & 0xffff) === 0) await out.drained();
    }
    options.onProgress?.((c + 1) / chunks);
  }
  const bytes = await out.end();
  return {
    path,
    bytes,
    visits: options.visits,
    users: usersPerChunk * chunks,
    expectedSessions: expected,
    expectedRows: rows,
  };
}
