/**
 * The fast path of a JSON Lines record, straight from the line's bytes: a flat JSON object of printable ASCII
 * strings without escapes, plain numbers, `true`, `false` and `null`, which is what nearly every line is. It gives
 * the visit exactly as `JSON.parse` then `toVisit` would, or undefined for anything else (escapes, non-ASCII text,
 * nested values, invalid JSON, an invalid visit): the general path then reads the line and gives the identical visit
 * or the rejection with its reason. Duplicate keys: the last one wins, as in `JSON.parse`.
 */
import { parseIsoBytes, parseVisitTime } from '../time.ts';
import type { Visit } from '../types.ts';
import { MAX_PAGE_BYTES, MAX_USER_ID_BYTES } from './records.ts';
import { HASH_START, hashStep, notBlank, type RecentStrings, timeField } from './strings.ts';

// Field names as bytes, with their closing quote.
const USER_ID = [...Buffer.from('user_id"')];
const VISIT_TIME = [...Buffer.from('visit_time"')];
const PAGE = [...Buffer.from('page"')];
/** Length of the usual `visit_time` text, `2026-02-15T17:05:34.432Z`. */
const ISO_LENGTH = 24;

/** Which of the three fields a member is (0: another one, read over). */
const OTHER = 0;
const USER = 1;
const TIME = 2;
const PAGE_KEY = 3;

/** How a field's value was found: absent, a string `b[from..to)`, a number, or (the time) read already. */
const ABSENT = 0;
const STRING = 1;
const NUMBER = 2;
const READ = 3;

/** Whether `b[start..end)` starts with the bytes `key`. */
function isKey(b: Buffer, start: number, key: readonly number[], end: number): boolean {
  if (start + key.length > end) return false;
  for (let i = 0; i < key.length; i++) if (b[start + i] !== key[i]) return false;
  return true;
}

/** The index of the first byte at or after `i` that is not a space, tab or CR (`end` if none). */
function skipSpace(b: Buffer, i: number, end: number): number {
  let c: number;
  while (i < end && ((c = b[i]!) === 32 || c === 9 || c === 13)) i++;
  return i;
}

/** Reads lines of one parse; what it found on the line being read is kept in its fields. */
export class JsonLineScanner {
  private userKind = ABSENT;
  private userFrom = 0;
  private userTo = 0;
  private userNum = 0;
  private userHash = 0;
  private timeKind = ABSENT;
  private timeFrom = 0;
  private timeTo = 0;
  private timeNum = 0;
  private pageFrom = -1;
  private pageTo = -1;
  private pageHash = 0;

  constructor(private readonly strings: RecentStrings) {}

  /** The visit of the line `b[start..end)`, or undefined when the general path must read it. */
  visit(b: Buffer, start: number, end: number, line: number): Visit | undefined {
    this.userKind = ABSENT;
    this.timeKind = ABSENT;
    this.pageFrom = -1;
    let i = skipSpace(b, start, end);
    if (i >= end || b[i] !== 123) return undefined; // '{'
    i++;
    for (;;) {
      i = this.member(b, skipSpace(b, i, end), end);
      if (i < 0) return undefined;
      i = skipSpace(b, i, end);
      if (i >= end) return undefined;
      const c = b[i++]!;
      if (c === 125) break; // '}'
      if (c !== 44) return undefined; // ','
    }
    if (skipSpace(b, i, end) !== end) return undefined;
    return this.build(b, line);
  }

  /** Reads one `"name": value` from `i`; returns the index after it, or -1 for the general path. */
  private member(b: Buffer, i: number, end: number): number {
    if (i >= end || b[i] !== 34) return -1; // '"' of a key ('{}' has no user_id: general path)
    i++;
    // the three field names, matched in place with their closing quote; any other name is read over
    let key = OTHER;
    let c = b[i]!;
    if (c === 117 && isKey(b, i, USER_ID, end)) {
      key = USER;
      i += USER_ID.length;
    } else if (c === 118 && isKey(b, i, VISIT_TIME, end)) {
      key = TIME;
      i += VISIT_TIME.length;
    } else if (c === 112 && isKey(b, i, PAGE, end)) {
      key = PAGE_KEY;
      i += PAGE.length;
    } else {
      while (i < end && (c = b[i]!) !== 34) {
        if (c === 92 || c < 32 || c > 126) return -1;
        i++;
      }
      if (i >= end) return -1;
      i++;
    }
    i = skipSpace(b, i, end);
    if (i >= end || b[i] !== 58) return -1; // ':'
    i = skipSpace(b, i + 1, end);
    if (i >= end) return -1;
    c = b[i]!;
    if (c === 34) return this.string(b, i + 1, end, key);
    if (c === 45 || (c >= 48 && c <= 57)) return this.number(b, i, end, key);
    return key === OTHER ? literal(b, i, end) : -1; // true, false, null: never a visit's field
  }

  /** Reads a string value starting at `from` (after its quote). */
  private string(b: Buffer, from: number, end: number, key: number): number {
    // the common visit_time, 24 characters (2026-02-15T17:05:34.432Z): read in place, in one pass
    if (key === TIME && from + ISO_LENGTH < end && b[from + ISO_LENGTH] === 34) {
      const t = parseIsoBytes(b, from, from + ISO_LENGTH);
      if (!Number.isNaN(t)) {
        // the ISO reader checked every byte: no quote, escape or control character inside
        this.timeKind = READ;
        this.timeNum = t;
        return from + ISO_LENGTH + 1;
      }
    }
    let i = from;
    let h = HASH_START;
    let c: number;
    while (i < end && (c = b[i]!) !== 34) {
      if (c === 92 || c < 32 || c > 126) return -1;
      h = hashStep(h, c);
      i++;
    }
    if (i >= end) return -1;
    if (key === USER) {
      this.userKind = STRING;
      this.userFrom = from;
      this.userTo = i;
      this.userHash = h;
    } else if (key === TIME) {
      this.timeKind = STRING;
      this.timeFrom = from;
      this.timeTo = i;
    } else if (key === PAGE_KEY) {
      this.pageFrom = from;
      this.pageTo = i;
      this.pageHash = h;
    }
    return i + 1;
  }

  /** Reads a number, `-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`, from `i`. */
  private number(b: Buffer, i: number, end: number, key: number): number {
    const negative = b[i] === 45;
    if (negative && ++i >= end) return -1;
    let c = b[i]!;
    const intFrom = i;
    let value = 0;
    if (c === 48) i++;
    else if (c >= 49 && c <= 57) {
      while (i < end && (c = b[i]!) >= 48 && c <= 57) {
        value = value * 10 + (c - 48);
        i++;
      }
    } else return -1;
    let plain = i - intFrom <= 15; // an integer of at most 15 digits is exact as summed above
    if (i < end && b[i] === 46) {
      plain = false;
      const from = ++i;
      while (i < end && (c = b[i]!) >= 48 && c <= 57) i++;
      if (i === from) return -1;
    }
    if (i < end && ((c = b[i]!) === 101 || c === 69)) {
      plain = false;
      if (++i < end && ((c = b[i]!) === 43 || c === 45)) i++;
      const from = i;
      while (i < end && (c = b[i]!) >= 48 && c <= 57) i++;
      if (i === from) return -1;
    }
    if (key === OTHER) return i;
    if (!plain || key === PAGE_KEY) return -1;
    if (key === USER) {
      this.userKind = NUMBER;
      this.userNum = negative ? -value : value;
    } else {
      this.timeKind = NUMBER;
      this.timeNum = negative ? -value : value;
    }
    return i;
  }

  /** The visit of the fields found, or undefined when one is missing or invalid. */
  private build(b: Buffer, line: number): Visit | undefined {
    let userId: string;
    if (this.userKind === STRING) {
      const { userFrom, userTo } = this;
      // ASCII here, so bytes = characters; over the limit: the general path rejects with the reason
      if (userTo - userFrom > MAX_USER_ID_BYTES || !notBlank(b, userFrom, userTo)) return undefined;
      userId = this.strings.user(b, userFrom, userTo, this.userHash);
    } else if (this.userKind === NUMBER) {
      userId = this.strings.number(this.userNum); // a safe integer: at most 15 digits
    } else {
      return undefined;
    }
    const kind = this.timeKind;
    const t =
      kind === READ
        ? this.timeNum
        : kind === STRING
          ? timeField(b, this.timeFrom, this.timeTo)
          : kind === NUMBER
            ? parseVisitTime(this.timeNum)
            : Number.NaN;
    if (Number.isNaN(t)) return undefined;
    const { pageFrom, pageTo } = this;
    if (pageFrom < 0 || !notBlank(b, pageFrom, pageTo) || pageTo - pageFrom > MAX_PAGE_BYTES)
      return undefined;
    return { userId, t, page: this.strings.page(b, pageFrom, pageTo, this.pageHash), line };
  }
}

/** Reads `true`, `false` or `null` at `i`; returns the index after it, or -1. */
function literal(b: Buffer, i: number, end: number): number {
  const c = b[i];
  if (c === 116 && end - i >= 4 && b[i + 1] === 114 && b[i + 2] === 117 && b[i + 3] === 101) return i + 4;
  if (
    c === 102 &&
    end - i >= 5 &&
    b[i + 1] === 97 &&
    b[i + 2] === 108 &&
    b[i + 3] === 115 &&
    b[i + 4] === 101
  )
    return i + 5;
  if (c === 110 && end - i >= 4 && b[i + 1] === 117 && b[i + 2] === 108 && b[i + 3] === 108) return i + 4;
  return -1; // object, array or invalid
}
