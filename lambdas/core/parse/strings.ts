/**
 * Strings of the fast paths, read straight from ASCII bytes. A parse shares the user ids and pages decoded lately
 * ({@link RecentStrings}): they repeat within a file and across the files of a batch, and sharing one string per
 * value saves memory and makes comparisons and map look-ups cheap. Strings are immutable, so sharing them is
 * invisible.
 */
import { parseIsoBytes, parseVisitTime } from '../time.ts';

/** `Buffer#latin1Slice`: decodes bytes one to one into a fresh string, the cheapest decoding of ASCII. */
export const latin1 = (b: Buffer, start: number, end: number): string =>
  (b as Buffer & { latin1Slice(start: number, end: number): string }).latin1Slice(start, end);

/** FNV-1a step: the hash of the bytes so far, `h`, with byte `c` added. Start from {@link HASH_START}. */
export const hashStep = (h: number, c: number): number => Math.imul(h ^ c, 0x01000193);
export const HASH_START = 0x811c9dc5 | 0;

/** Hash of the bytes `b[start..end)`. */
function hashOf(b: Buffer, start: number, end: number): number {
  let h = HASH_START;
  for (let i = start; i < end; i++) h = hashStep(h, b[i]!);
  return h;
}

/** Longer strings are not shared (they rarely repeat, and comparing them costs). */
const SHARED_MAX_BYTES = 64;

/**
 * The strings decoded lately, owned by the caller of the parse (the pipeline's staging keeps one for its container:
 * allocating the tables costs as much as parsing a small file), or by the parse when it is given none. Tables
 * direct-mapped by a hash of the bytes, where a collision only costs a fresh string: user ids, pages (apart, so that
 * many users do not crowd out pages), and the text of numeric user ids. Look-ups are synchronous, so parses that
 * interleave never see a half-written slot.
 */
export class RecentStrings {
  private readonly users: (string | undefined)[];
  private readonly pages: (string | undefined)[];
  private readonly numberKeys: Float64Array;
  private readonly numberTexts: string[];

  /** `userSlotsLog2`: 2^n slots for user ids, a quarter as many for pages, four times as many for numbers. */
  constructor(userSlotsLog2 = 14) {
    this.users = new Array<string | undefined>(1 << userSlotsLog2).fill(undefined);
    this.pages = new Array<string | undefined>(1 << Math.max(0, userSlotsLog2 - 2)).fill(undefined);
    this.numberKeys = new Float64Array(1 << (userSlotsLog2 + 2)).fill(Number.NaN);
    this.numberTexts = new Array<string>(1 << (userSlotsLog2 + 2)).fill('');
  }

  /** A user id from ASCII bytes `b[start..end)`; `hash` of those bytes when the caller has it. */
  user(b: Buffer, start: number, end: number, hash = hashOf(b, start, end)): string {
    return shared(this.users, b, start, end, hash);
  }

  /** A page from ASCII bytes `b[start..end)`; `hash` of those bytes when the caller has it. */
  page(b: Buffer, start: number, end: number, hash = hashOf(b, start, end)): string {
    return shared(this.pages, b, start, end, hash);
  }

  /** `String(n)` of a safe integer (the same decimal text as BigInt's), shared with the last one of that number. */
  number(n: number): string {
    const keys = this.numberKeys;
    const texts = this.numberTexts;
    const slot = n & (keys.length - 1);
    if (keys[slot] === n) return texts[slot]!;
    const text = String(n);
    keys[slot] = n;
    texts[slot] = text;
    return text;
  }
}

/** The string of ASCII bytes `b[start..end)`, shared with an earlier equal one when `table` still holds it. */
function shared(table: (string | undefined)[], b: Buffer, start: number, end: number, hash: number): string {
  const len = end - start;
  if (len > SHARED_MAX_BYTES) return latin1(b, start, end);
  const slot = (hash ^ (hash >>> 15) ^ len) & (table.length - 1);
  const known = table[slot];
  if (known !== undefined && known.length === len) {
    let i = 0;
    while (i < len && known.charCodeAt(i) === b[start + i]) i++;
    if (i === len) return known;
  }
  const text = latin1(b, start, end);
  table[slot] = text;
  return text;
}

/**
 * The `visit_time` of a string field held as ASCII bytes `b[start..end)`: `parseVisitTime` of that string, reading an
 * ISO-8601 time in place without building the string.
 */
export function timeField(b: Buffer, start: number, end: number): number {
  if (end - start >= 16 && b[start + 4] === 45 && b[start] !== 32 && b[end - 1] !== 32) {
    return parseIsoBytes(b, start, end);
  }
  return parseVisitTime(latin1(b, start, end));
}

/** Whether ASCII bytes `b[start..end)` hold a character other than a space (they hold no other whitespace). */
export function notBlank(b: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (b[i] !== 32) return true;
  return false;
}
