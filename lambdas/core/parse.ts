/**
 * Streaming visit parser (DESIGN section 2): JSON Lines or CSV with a header row, optionally gzip-compressed, read
 * from a byte stream. Valid visits and rejected records come out incrementally, one chunk of the input at a time,
 * so memory stays bounded by the chunk size and the longest accepted line (1 MiB), not by the file.
 */
import { isUtf8 } from 'node:buffer';
import { pipeline, Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { parse as parseCsvRecord } from 'csv-parse/sync';
import { parseIsoBytes, parseVisitTime } from './time.ts';
import type { Rejected, Visit } from './types.ts';

export type InputFormat = 'jsonl' | 'csv';

export interface ParseOptions {
  /** Object name (`s3://bucket/key` or a file name): gives the format and gzip by extension, and the records' source. */
  readonly sourceObject: string;
  /** Forces the format; otherwise by extension, else sniffed from the first byte (`{` is JSON Lines). */
  readonly format?: InputFormat;
  /** Forces gzip on or off; otherwise by `.gz` extension or the gzip magic bytes. */
  readonly gzip?: boolean;
  /** Longest accepted line in bytes. @default 1 MiB */
  readonly maxLineBytes?: number;
  /**
   * Read common lines straight from their bytes (default). Off, every line is decoded and read by the general
   * path; the results are the same, which the tests check by comparing both.
   */
  readonly fastPath?: boolean;
  /** Visit times accepted (inclusive); a visit outside is a rejected record. @default any */
  readonly visitTimes?: VisitTimeRange;
}

/** The earliest visit time the pipeline accepts: the Unix epoch, the first day of the output partitions. */
export const EARLIEST_VISIT_TIME = 0;

/** The visit times a parse accepts, and what the bounds are, for the reason of a rejected record. */
export interface VisitTimeRange {
  readonly earliest: number;
  readonly latest: number;
  /** Says what the latest time is (`the processing clock plus 1h`). */
  readonly latestIs: string;
  readonly earliestIs: string;
}

/** The reason a visit time is outside the range, or undefined. */
function outOfRange(t: number, range: VisitTimeRange | undefined): string | undefined {
  if (range === undefined) return undefined;
  if (t > range.latest) {
    return `visit_time ${new Date(t).toISOString()} is after ${new Date(range.latest).toISOString()}, ${range.latestIs}`;
  }
  if (t < range.earliest) {
    return `visit_time ${new Date(t).toISOString()} is before ${new Date(range.earliest).toISOString()}, ${range.earliestIs}`;
  }
  return undefined;
}

/**
 * What one step of parsing produced. Every non-blank data line (CSV: record after the header) ends in exactly one
 * of the two lists, so lines = visits + rejected.
 */
export interface ParsedChunk {
  readonly visits: Visit[];
  readonly rejected: Rejected[];
}

/** Raised by the byte source itself (a network error, say): not the input's fault, so it is not a rejection. */
export class SourceReadError extends Error {
  override readonly name = 'SourceReadError';
}

export const MAX_LINE_BYTES = 1024 * 1024;
export const MAX_RAW_BYTES = 4096;

const GZIP_MAGIC_0 = 0x1f;
const GZIP_MAGIC_1 = 0x8b;

/** Format and gzip implied by an object name, `undefined` where the name does not say. */
export function formatFromName(name: string): { format?: InputFormat; gzip: boolean } {
  let lower = name.toLowerCase();
  const gzip = lower.endsWith('.gz');
  if (gzip) lower = lower.slice(0, -3);
  if (lower.endsWith('.csv')) return { format: 'csv', gzip };
  if (lower.endsWith('.jsonl') || lower.endsWith('.json') || lower.endsWith('.ndjson'))
    return { format: 'jsonl', gzip };
  return { gzip };
}

/** Decodes at most `MAX_RAW_BYTES` of a line as text, cut on a character boundary. */
export function rawText(bytes: Uint8Array): string {
  if (bytes.length <= MAX_RAW_BYTES)
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('utf8');
  let end = MAX_RAW_BYTES;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--; // do not cut a multi-byte character
  return Buffer.from(bytes.buffer, bytes.byteOffset, end).toString('utf8');
}

function cutRaw(text: string): string {
  if (text.length * 3 <= MAX_RAW_BYTES) return text;
  return rawText(Buffer.from(text, 'utf8'));
}

/** Turns a parsed record (JSON object, or CSV row by header) into a visit, or the reason it is not one. */
export function toVisit(
  record: Record<string, unknown>,
  line: number,
  range?: VisitTimeRange,
): Visit | string {
  const rawUser = record.user_id;
  let userId: string;
  if (typeof rawUser === 'string') {
    if (rawUser.trim().length === 0) return rawUser.length === 0 ? 'empty user_id' : 'blank user_id';
    userId = rawUser;
  } else if (typeof rawUser === 'number') {
    // a number beyond 2^53 was rounded when it was read: two ids would become one; so were fractions meant as ids
    if (!Number.isSafeInteger(rawUser)) {
      return `invalid user_id ${shortJson(rawUser)}: a numeric user_id must be an integer from -(2^53-1) to 2^53-1 (write larger ids as strings)`;
    }
    userId = String(rawUser);
  } else {
    return rawUser === undefined
      ? 'missing user_id'
      : `invalid user_id ${shortJson(rawUser)}: expected a non-empty string or a number`;
  }
  const rawTime = record.visit_time;
  if (rawTime === undefined || rawTime === null) return 'missing visit_time';
  const t = parseVisitTime(rawTime);
  if (Number.isNaN(t)) {
    return `invalid visit_time ${shortJson(rawTime)}: expected ISO-8601 (T or space, offset, Z or none) or epoch milliseconds`;
  }
  const outside = outOfRange(t, range);
  if (outside !== undefined) return outside;
  const page = record.page;
  if (typeof page !== 'string') {
    return page === undefined
      ? 'missing page'
      : `invalid page ${shortJson(page)}: expected a non-empty string`;
  }
  if (page.trim().length === 0) return page.length === 0 ? 'empty page' : 'blank page';
  // state keys and items have size limits (a DynamoDB key is at most 1 KiB to 2 KiB, an item 400 KB)
  if (userId.length * 3 > MAX_USER_ID_BYTES && Buffer.byteLength(userId) > MAX_USER_ID_BYTES) {
    return `user_id longer than ${MAX_USER_ID_BYTES} bytes`;
  }
  if (page.length * 3 > MAX_PAGE_BYTES && Buffer.byteLength(page) > MAX_PAGE_BYTES) {
    return `page longer than ${MAX_PAGE_BYTES} bytes`;
  }
  return { userId, t, page, line };
}

/** Longest accepted `user_id` (UTF-8 bytes): it is part of the state's keys. */
export const MAX_USER_ID_BYTES = 512;
/** Longest accepted `page` (UTF-8 bytes). */
export const MAX_PAGE_BYTES = 16 * 1024;

function shortJson(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** `Buffer#latin1Slice`: decodes bytes one to one into a fresh string, the cheapest decoding of ASCII. */
const latin1 = (b: Buffer, start: number, end: number): string =>
  (b as Buffer & { latin1Slice(start: number, end: number): string }).latin1Slice(start, end);

/**
 * Field strings decoded lately, by content: the user ids and pages of a file repeat, and sharing one string per value
 * saves memory and makes comparisons and map look-ups cheap. Direct-mapped by a hash of the bytes; a collision only
 * costs a fresh string. Strings are immutable, so sharing them is invisible.
 */
const INTERN_MAX_BYTES = 64;
/** One table for user ids, one for pages (a power of two slots each), so that many users do not crowd out pages. */
const userStrings: (string | undefined)[] = new Array<string | undefined>(1 << 14).fill(undefined);
const pageStrings: (string | undefined)[] = new Array<string | undefined>(1 << 12).fill(undefined);

/** Numeric user ids decoded lately and their text, direct-mapped by the low bits of the number. */
const numberKeys = new Float64Array(1 << 16).fill(Number.NaN);
const numberTexts: string[] = new Array<string>(1 << 16).fill('');

/** `String(n)` of a safe integer, shared with the earlier string of the same number when the table still holds it. */
function numberText(n: number): string {
  const slot = n & (numberKeys.length - 1);
  if (numberKeys[slot] === n) return numberTexts[slot]!;
  const text = String(n);
  numberKeys[slot] = n;
  numberTexts[slot] = text;
  return text;
}

/** FNV-1a step: the hash of the bytes so far, `h`, with byte `c` added. Start from {@link HASH_START}. */
const hashStep = (h: number, c: number): number => Math.imul(h ^ c, 0x01000193);
const HASH_START = 0x811c9dc5 | 0;

/** Hash of the bytes `b[start..end)` for {@link field}. */
function hashOf(b: Buffer, start: number, end: number): number {
  let h = HASH_START;
  for (let i = start; i < end; i++) h = hashStep(h, b[i]!);
  return h;
}

/**
 * The string of ASCII bytes `b[start..end)`, shared with an earlier equal one when `table` still holds it. `hash` is
 * {@link hashOf} those bytes (callers that scanned them already have it).
 */
function field(
  table: (string | undefined)[],
  b: Buffer,
  start: number,
  end: number,
  hash = hashOf(b, start, end),
): string {
  const len = end - start;
  if (len > INTERN_MAX_BYTES) return latin1(b, start, end);
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
function timeField(b: Buffer, start: number, end: number): number {
  if (end - start >= 16 && b[start + 4] === 45 && b[start] !== 32 && b[end - 1] !== 32) {
    return parseIsoBytes(b, start, end);
  }
  return parseVisitTime(latin1(b, start, end));
}

/** Whether ASCII bytes `b[start..end)` hold a character other than a space (they hold no other whitespace). */
function notBlank(b: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (b[i] !== 32) return true;
  return false;
}

// Field names of the fast path as bytes, with their closing quote.
const USER_ID = [...Buffer.from('user_id"')];
const VISIT_TIME = [...Buffer.from('visit_time"')];
const PAGE = [...Buffer.from('page"')];
/** Length of the usual `visit_time` text, `2026-02-15T17:05:34.432Z`. */
const ISO_LENGTH = 24;

/** Whether `b[start..end)` starts with the bytes `key`. */
function isKey(b: Buffer, start: number, key: readonly number[], end: number): boolean {
  if (start + key.length > end) return false;
  for (let i = 0; i < key.length; i++) if (b[start + i] !== key[i]) return false;
  return true;
}

/**
 * Fast path of a JSON Lines record, straight from the line's bytes `b[start..end)`: a flat JSON object of printable
 * ASCII strings without escapes, plain numbers, `true`, `false` and `null`, which is what nearly every line is.
 * Returns the visit exactly as `JSON.parse` then {@link toVisit} would, or undefined for anything else (escapes,
 * non-ASCII text, nested values, invalid JSON, an invalid visit): the general path then reads the line and gives
 * the identical visit or the rejection with its reason. Duplicate keys: the last one wins, as in `JSON.parse`.
 */
function fastJsonVisit(b: Buffer, start: number, end: number, line: number): Visit | undefined {
  let i = start;
  let c = 0;
  // field values found: kind 0 absent, 1 string b[from..to), 2 number (value), 3 (time) read already (value)
  let userKind = 0;
  let userFrom = 0;
  let userTo = 0;
  let userNum = 0;
  let timeKind = 0;
  let timeFrom = 0;
  let timeTo = 0;
  let timeNum = 0;
  let userHash = 0;
  let pageFrom = -1;
  let pageTo = -1;
  let pageHash = 0;
  while (i < end && ((c = b[i]!) === 32 || c === 9 || c === 13)) i++;
  if (i >= end || c !== 123) return undefined; // '{'
  i++;
  for (;;) {
    while (i < end && ((c = b[i]!) === 32 || c === 9 || c === 13)) i++;
    if (i >= end || c !== 34) return undefined; // '"' of a key ('{}' has no user_id: general path)
    i++;
    // the three field names, matched in place with their closing quote; any other name is scanned over
    let key = 0;
    c = b[i]!;
    if (c === 117 && isKey(b, i, USER_ID, end)) {
      key = 1;
      i += USER_ID.length;
    } else if (c === 118 && isKey(b, i, VISIT_TIME, end)) {
      key = 2;
      i += VISIT_TIME.length;
    } else if (c === 112 && isKey(b, i, PAGE, end)) {
      key = 3;
      i += PAGE.length;
    } else {
      while (i < end && (c = b[i]!) !== 34) {
        if (c === 92 || c < 32 || c > 126) return undefined;
        i++;
      }
      if (i >= end) return undefined;
      i++;
    }
    while (i < end && ((c = b[i]!) === 32 || c === 9 || c === 13)) i++;
    if (i >= end || c !== 58) return undefined; // ':'
    i++;
    while (i < end && ((c = b[i]!) === 32 || c === 9 || c === 13)) i++;
    if (i >= end) return undefined;
    if (c === 34) {
      // string
      const from = ++i;
      // the common visit_time, 24 characters (2026-02-15T17:05:34.432Z): read in place, in one pass
      let taken = false;
      if (key === 2 && from + ISO_LENGTH < end && b[from + ISO_LENGTH] === 34) {
        const t = parseIsoBytes(b, from, from + ISO_LENGTH);
        if (!Number.isNaN(t)) {
          // the ISO reader checked every byte: no quote, escape or control character inside
          timeKind = 3;
          timeNum = t;
          i = from + ISO_LENGTH + 1;
          taken = true;
        }
      }
      if (!taken) {
        let h = HASH_START;
        while (i < end && (c = b[i]!) !== 34) {
          if (c === 92 || c < 32 || c > 126) return undefined;
          h = hashStep(h, c);
          i++;
        }
        if (i >= end) return undefined;
        const to = i++;
        if (key === 1) {
          userKind = 1;
          userFrom = from;
          userTo = to;
          userHash = h;
        } else if (key === 2) {
          timeKind = 1;
          timeFrom = from;
          timeTo = to;
        } else if (key === 3) {
          pageFrom = from;
          pageTo = to;
          pageHash = h;
        }
      }
    } else if (c === 45 || (c >= 48 && c <= 57)) {
      // number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
      const negative = c === 45;
      if (negative && ++i >= end) return undefined;
      c = b[i]!;
      const intFrom = i;
      let value = 0;
      if (c === 48) {
        i++;
      } else if (c >= 49 && c <= 57) {
        while (i < end && (c = b[i]!) >= 48 && c <= 57) {
          value = value * 10 + (c - 48);
          i++;
        }
      } else {
        return undefined;
      }
      let plain = i - intFrom <= 15; // an integer of at most 15 digits is exact as summed above
      if (i < end && b[i] === 46) {
        plain = false;
        const from = ++i;
        while (i < end && (c = b[i]!) >= 48 && c <= 57) i++;
        if (i === from) return undefined;
      }
      if (i < end && ((c = b[i]!) === 101 || c === 69)) {
        plain = false;
        if (++i < end && ((c = b[i]!) === 43 || c === 45)) i++;
        const from = i;
        while (i < end && (c = b[i]!) >= 48 && c <= 57) i++;
        if (i === from) return undefined;
      }
      if (key !== 0) {
        if (!plain || key === 3) return undefined;
        if (key === 1) {
          userKind = 2;
          userNum = negative ? -value : value;
        } else {
          timeKind = 2;
          timeNum = negative ? -value : value;
        }
      }
    } else if (c === 116 && end - i >= 4 && b[i + 1] === 114 && b[i + 2] === 117 && b[i + 3] === 101) {
      if (key !== 0) return undefined; // true
      i += 4;
    } else if (
      c === 102 &&
      end - i >= 5 &&
      b[i + 1] === 97 &&
      b[i + 2] === 108 &&
      b[i + 3] === 115 &&
      b[i + 4] === 101
    ) {
      if (key !== 0) return undefined; // false
      i += 5;
    } else if (c === 110 && end - i >= 4 && b[i + 1] === 117 && b[i + 2] === 108 && b[i + 3] === 108) {
      if (key !== 0) return undefined; // null
      i += 4;
    } else {
      return undefined; // object, array or invalid
    }
    while (i < end && ((c = b[i]!) === 32 || c === 9 || c === 13)) i++;
    if (i >= end) return undefined;
    i++;
    if (c === 125) break; // '}'
    if (c !== 44) return undefined; // ','
  }
  while (i < end && ((c = b[i]!) === 32 || c === 9 || c === 13)) i++;
  if (i !== end) return undefined;

  let userId: string;
  if (userKind === 1) {
    // ASCII here, so bytes = characters; over the limit: the general path rejects with the reason
    if (userTo - userFrom > MAX_USER_ID_BYTES || !notBlank(b, userFrom, userTo)) return undefined;
    userId = field(userStrings, b, userFrom, userTo, userHash);
  } else if (userKind === 2) {
    userId = numberText(userNum); // a safe integer: the same decimal text as BigInt's
  } else {
    return undefined;
  }
  const t =
    timeKind === 3
      ? timeNum
      : timeKind === 1
        ? timeField(b, timeFrom, timeTo)
        : timeKind === 2
          ? parseVisitTime(timeNum)
          : Number.NaN;
  if (Number.isNaN(t)) return undefined;
  if (pageFrom < 0 || !notBlank(b, pageFrom, pageTo)) return undefined;
  // (a numeric user_id has at most 17 characters)
  if (pageTo - pageFrom > MAX_PAGE_BYTES) return undefined;
  return { userId, t, page: field(pageStrings, b, pageFrom, pageTo, pageHash), line };
}

/** Parser of one record's text; pushes into `out`. The CSV one keeps header state. */
interface RecordParser {
  /** One physical line (without its ending). A CSV line may only start a record that later lines finish. */
  line(text: string, lineNo: number, out: ParsedChunk): void;
  /**
   * Fast path of one line from its bytes `b[start..end)` (without its ending, within the length limit): reads the
   * common case in place and returns true, or returns false and leaves the line to {@link line}, which would give
   * the same result.
   */
  fast(b: Buffer, start: number, end: number, lineNo: number, out: ParsedChunk): boolean;
  /** End of input. */
  end(out: ParsedChunk): void;
}

class JsonLinesParser implements RecordParser {
  constructor(
    private readonly sourceObject: string,
    private readonly range: VisitTimeRange | undefined,
  ) {}

  line(text: string, lineNo: number, out: ParsedChunk): void {
    if (isBlank(text)) return;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      this.reject(out, lineNo, `invalid JSON: ${(error as Error).message}`, text);
      return;
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      this.reject(out, lineNo, 'not a JSON object', text);
      return;
    }
    const visit = toVisit(value as Record<string, unknown>, lineNo, this.range);
    if (typeof visit === 'string') this.reject(out, lineNo, visit, text);
    else out.visits.push(visit);
  }

  fast(b: Buffer, start: number, end: number, lineNo: number, out: ParsedChunk): boolean {
    const visit = fastJsonVisit(b, start, end, lineNo);
    if (visit === undefined) return false;
    const range = this.range;
    if (range !== undefined && (visit.t > range.latest || visit.t < range.earliest)) return false; // rejected there
    out.visits.push(visit);
    return true;
  }

  end(): void {}

  private reject(out: ParsedChunk, line: number, reason: string, text: string): void {
    out.rejected.push({ sourceObject: this.sourceObject, line, reason, raw: cutRaw(text) });
  }
}

/**
 * CSV with a header row (RFC 4180). Physical lines are joined while a quoted field is open (an odd number of
 * quotes so far); each record is then parsed by csv-parse. Records without quotes take a plain split on commas,
 * which is what RFC 4180 says they mean.
 */
class CsvParser implements RecordParser {
  private header: string[] | undefined;
  private index: { user_id: number; visit_time: number; page: number } | undefined;
  private pending = '';
  private pendingLine = 0;

  constructor(
    private readonly sourceObject: string,
    private readonly maxRecordChars: number,
    private readonly range: VisitTimeRange | undefined,
  ) {}

  line(text: string, lineNo: number, out: ParsedChunk): void {
    if (this.pendingLine !== 0) {
      this.pending += `\n${text}`;
      if (endsInQuotedField(text, true)) {
        if (this.pending.length > this.maxRecordChars) {
          this.reject(out, this.pendingLine, 'CSV record longer than 1 MiB (unclosed quote?)', this.pending);
          this.pendingLine = 0;
          this.pending = '';
        }
        return;
      }
      const record = this.pending;
      const start = this.pendingLine;
      this.pendingLine = 0;
      this.pending = '';
      this.record(record, start, out);
      return;
    }
    if (isBlank(text)) return; // blank line (only outside quotes)
    if (text.indexOf('"') >= 0 && endsInQuotedField(text, false)) {
      this.pending = text;
      this.pendingLine = lineNo;
      return;
    }
    this.record(text, lineNo, out);
  }

  /** An unquoted data record of printable ASCII with all three columns: split on commas in place. */
  fast(b: Buffer, start: number, end: number, lineNo: number, out: ParsedChunk): boolean {
    const idx = this.index;
    if (idx === undefined || this.pendingLine !== 0) return false;
    const userCol = idx.user_id;
    const timeCol = idx.visit_time;
    const pageCol = idx.page;
    if (userCol < 0 || timeCol < 0 || pageCol < 0) return false;
    let userFrom = -1;
    let userTo = -1;
    let timeFrom = -1;
    let timeTo = -1;
    let pageFrom = -1;
    let pageTo = -1;
    let cell = 0;
    let from = start;
    for (let i = start; ; i++) {
      if (i === end || b[i] === 44) {
        if (cell === userCol) {
          userFrom = from;
          userTo = i;
        } else if (cell === timeCol) {
          timeFrom = from;
          timeTo = i;
        } else if (cell === pageCol) {
          pageFrom = from;
          pageTo = i;
        }
        if (i === end) break;
        cell++;
        from = i + 1;
      } else {
        const c = b[i]!;
        if (c < 32 || c > 126 || c === 34) return false;
      }
    }
    if (userFrom < 0 || timeFrom < 0 || pageFrom < 0) return false;
    if (!notBlank(b, userFrom, userTo) || !notBlank(b, pageFrom, pageTo)) return false;
    if (userTo - userFrom > MAX_USER_ID_BYTES || pageTo - pageFrom > MAX_PAGE_BYTES) return false; // general path rejects
    const t = timeField(b, timeFrom, timeTo);
    if (Number.isNaN(t)) return false;
    const range = this.range;
    if (range !== undefined && (t > range.latest || t < range.earliest)) return false; // the general path rejects
    out.visits.push({
      userId: field(userStrings, b, userFrom, userTo),
      t,
      page: field(pageStrings, b, pageFrom, pageTo),
      line: lineNo,
    });
    return true;
  }

  end(out: ParsedChunk): void {
    if (this.pendingLine !== 0) {
      this.reject(out, this.pendingLine, 'CSV record ends inside a quoted field', this.pending);
      this.pendingLine = 0;
    }
  }

  private record(text: string, lineNo: number, out: ParsedChunk): void {
    let cells: string[];
    if (text.indexOf('"') < 0) {
      cells = text.split(',');
    } else {
      try {
        const rows = parseCsvRecord(text, {
          relax_column_count: true,
          skip_empty_lines: false,
        }) as string[][];
        cells = rows[0] ?? [];
      } catch (error) {
        this.reject(out, lineNo, `invalid CSV: ${(error as Error).message}`, text);
        return;
      }
    }
    if (this.header === undefined) {
      this.header = cells.map((c) => c.trim().toLowerCase());
      this.index = {
        user_id: this.header.indexOf('user_id'),
        visit_time: this.header.indexOf('visit_time'),
        page: this.header.indexOf('page'),
      };
      return;
    }
    const idx = this.index!;
    const record: Record<string, unknown> = {
      user_id: idx.user_id >= 0 ? cells[idx.user_id] : undefined,
      visit_time: idx.visit_time >= 0 ? cells[idx.visit_time] : undefined,
      page: idx.page >= 0 ? cells[idx.page] : undefined,
    };
    const visit = toVisit(record, lineNo, this.range);
    if (typeof visit === 'string') {
      const missing = Object.entries(idx).find(([, i]) => i < 0);
      const reason = missing ? `${visit} (the CSV header has no ${missing[0]} column)` : visit;
      this.reject(out, lineNo, reason, text);
    } else {
      out.visits.push(visit);
    }
  }

  private reject(out: ParsedChunk, line: number, reason: string, text: string): void {
    out.rejected.push({ sourceObject: this.sourceObject, line, reason, raw: cutRaw(text) });
  }
}

/** Blank: empty or only spaces and tabs. Blank lines are skipped in both formats (outside CSV quotes). */
function isBlank(text: string): boolean {
  if (text.length === 0) return true;
  const c = text.charCodeAt(0);
  return (c === 32 || c === 9) && text.trim().length === 0;
}

/**
 * Whether a CSV line ends inside a quoted field (so the record goes on on the next line), per RFC 4180: a quote
 * opens a quoted field only at the start of a field; inside one, `""` is a quote and `"` closes it. A stray quote
 * in the middle of an unquoted field opens nothing (csv-parse then rejects that one record).
 */
function endsInQuotedField(text: string, startInside: boolean): boolean {
  let inside = startInside;
  let fieldStart = !startInside;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inside) {
      if (c === 34) {
        if (text.charCodeAt(i + 1) === 34) i++;
        else inside = false;
      }
    } else if (c === 44) {
      fieldStart = true;
    } else {
      if (c === 34 && fieldStart) inside = true;
      fieldStart = false;
    }
  }
  return inside;
}

/** Wraps a byte source so its own failures are told apart from decompression errors. */
async function* guarded(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  try {
    for await (const chunk of source) yield chunk;
  } catch (error) {
    throw error instanceof SourceReadError
      ? error
      : new SourceReadError((error as Error).message, { cause: error });
  }
}

async function* prepend(first: Uint8Array, rest: AsyncIterator<Uint8Array>): AsyncGenerator<Uint8Array> {
  yield first;
  for (;;) {
    const next = await rest.next();
    if (next.done) return;
    yield next.value;
  }
}

function emptyChunk(): ParsedChunk {
  return { visits: [], rejected: [] };
}

/**
 * Parses visits from a byte stream. Yields one {@link ParsedChunk} per input chunk (after decompression).
 * A stream that is not valid gzip ends in one object-level rejected record (`line` null). Errors of the
 * source itself are thrown as {@link SourceReadError}.
 */
export async function* parseVisits(
  source: AsyncIterable<Uint8Array>,
  options: ParseOptions,
): AsyncGenerator<ParsedChunk> {
  const byName = formatFromName(options.sourceObject);
  const maxLineBytes = options.maxLineBytes ?? MAX_LINE_BYTES;
  const iterator = guarded(source)[Symbol.asyncIterator]();
  let first = await iterator.next();
  while (!first.done && first.value.length === 0) first = await iterator.next();
  if (first.done) return;
  let head = first.value;
  while (head.length < 2) {
    // the gzip magic is two bytes: a one-byte first chunk must not hide it
    const more = await iterator.next();
    if (more.done) break;
    head = Buffer.concat([head, more.value]);
  }
  const gzip = options.gzip ?? (byName.gzip || (head[0] === GZIP_MAGIC_0 && head[1] === GZIP_MAGIC_1));
  let bytes: AsyncIterable<Uint8Array> = prepend(head, iterator);
  // pipeline, not pipe: a failing source must destroy the gunzip stream (pipe leaves it hanging, error unhandled)
  if (gzip) bytes = pipeline(Readable.from(bytes, { objectMode: false }), createGunzip(), () => {});

  let parser: RecordParser | undefined;
  const explicitFormat = options.format ?? byName.format;
  const makeParser = (firstText: string): RecordParser => {
    const format = explicitFormat ?? (firstText.trimStart().startsWith('{') ? 'jsonl' : 'csv');
    return format === 'csv'
      ? new CsvParser(options.sourceObject, maxLineBytes, options.visitTimes)
      : new JsonLinesParser(options.sourceObject, options.visitTimes);
  };

  let out = emptyChunk();
  const splitter = new LineSplitter(
    maxLineBytes,
    options.fastPath === false
      ? undefined
      : (b, start, end, lineNo) => parser?.fast(b, start, end, lineNo, out) === true,
  );
  const sourceObject = options.sourceObject;
  const onLine = (text: string, lineNo: number): void => {
    if (parser === undefined) {
      if (isBlank(text)) return;
      parser = makeParser(text);
    }
    parser.line(text, lineNo, out);
  };
  const onBad = (lineNo: number, reason: string, raw: string): void => {
    out.rejected.push({ sourceObject, line: lineNo, reason, raw });
  };
  try {
    for await (const chunk of bytes) {
      splitter.push(chunk as Uint8Array, onLine, onBad);
      if (out.visits.length > 0 || out.rejected.length > 0) {
        yield out;
        out = emptyChunk();
      }
    }
  } catch (error) {
    if (error instanceof SourceReadError) throw error;
    splitter.reset();
    out.rejected.push({
      sourceObject,
      line: null,
      reason: `cannot read object: ${gzip ? 'invalid gzip data: ' : ''}${(error as Error).message}`,
      raw: '',
    });
    yield out;
    return;
  }
  splitter.end(onLine, onBad);
  parser?.end(out);
  if (out.visits.length > 0 || out.rejected.length > 0) yield out;
}

/**
 * Splits bytes into lines: LF or CRLF endings, a UTF-8 BOM at the start, a last line without newline.
 * Lines longer than the limit are skipped to their end (only the first 4 KiB are kept for the record), so
 * memory stays bounded. Lines that are not valid UTF-8 are reported, not decoded.
 */
export class LineSplitter {
  private carry: Buffer[] = [];
  private carryBytes = 0;
  private oversize = false;
  private oversizeHead: Buffer | undefined;
  private lineNo = 0;
  private atStart = true;

  /**
   * @param rawLine tried first on each line's bytes (without the ending, within the limit, not yet decoded): returns
   * true when it took the line, which then is not decoded nor given to `onLine`.
   */
  constructor(
    private readonly maxLineBytes: number,
    private readonly rawLine?: (b: Buffer, start: number, end: number, lineNo: number) => boolean,
  ) {}

  reset(): void {
    this.carry = [];
    this.carryBytes = 0;
    this.oversize = false;
  }

  push(
    chunk: Uint8Array,
    onLine: (text: string, lineNo: number) => void,
    onBad: (lineNo: number, reason: string, raw: string) => void,
  ): void {
    let buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    if (this.atStart) {
      if (this.carryBytes + buf.length < 3) {
        // too short to tell a BOM yet: keep it
        this.carry.push(buf);
        this.carryBytes += buf.length;
        return;
      }
      this.atStart = false;
      if (this.carryBytes > 0) {
        buf = Buffer.concat([...this.carry, buf]);
        this.carry = [];
        this.carryBytes = 0;
      }
      if (buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf) buf = buf.subarray(3);
    }
    let pos = 0;
    for (;;) {
      const nl = buf.indexOf(10, pos);
      if (nl < 0) break;
      this.lineNo++;
      if (this.oversize) {
        this.finishOversize(this.carryBytes + (nl - pos), onBad);
      } else if (this.carryBytes === 0) {
        this.emit(buf, pos, nl, onLine, onBad);
      } else {
        this.carry.push(buf.subarray(pos, nl));
        const whole = Buffer.concat(this.carry);
        this.carry = [];
        this.carryBytes = 0;
        this.emit(whole, 0, whole.length, onLine, onBad);
      }
      pos = nl + 1;
    }
    if (pos < buf.length) this.keep(buf.subarray(pos));
  }

  end(
    onLine: (text: string, lineNo: number) => void,
    onBad: (lineNo: number, reason: string, raw: string) => void,
  ): void {
    if (this.atStart && this.carryBytes > 0) {
      this.atStart = false;
      const buf = Buffer.concat(this.carry);
      this.carry = [];
      this.carryBytes = 0;
      this.push(buf, onLine, onBad);
    }
    if (this.oversize) {
      this.lineNo++;
      this.finishOversize(this.carryBytes, onBad);
    } else if (this.carryBytes > 0) {
      this.lineNo++;
      const whole = Buffer.concat(this.carry);
      this.carry = [];
      this.carryBytes = 0;
      this.emit(whole, 0, whole.length, onLine, onBad);
    }
  }

  private keep(rest: Buffer): void {
    if (this.oversize) {
      this.carryBytes += rest.length;
      return;
    }
    // copy: the caller's chunk may be reused
    this.carry.push(Buffer.from(rest));
    this.carryBytes += rest.length;
    if (this.carryBytes > this.maxLineBytes + 1) {
      // + 1: the carried bytes may end in the CR of a CRLF, which does not count towards the line's length
      const joined = Buffer.concat(this.carry);
      this.oversizeHead = Buffer.from(joined.subarray(0, MAX_RAW_BYTES + 4));
      this.oversize = true;
      this.carry = [];
    }
  }

  private finishOversize(
    totalBytes: number,
    onBad: (lineNo: number, reason: string, raw: string) => void,
  ): void {
    onBad(
      this.lineNo,
      `line longer than ${this.maxLineBytes} bytes (${totalBytes} bytes)`,
      rawText(this.oversizeHead ?? Buffer.alloc(0)),
    );
    this.oversize = false;
    this.oversizeHead = undefined;
    this.carryBytes = 0;
  }

  private emit(
    buf: Buffer,
    start: number,
    end: number,
    onLine: (text: string, lineNo: number) => void,
    onBad: (lineNo: number, reason: string, raw: string) => void,
  ): void {
    if (end > start && buf[end - 1] === 13) end--; // CRLF
    if (end - start > this.maxLineBytes) {
      onBad(
        this.lineNo,
        `line longer than ${this.maxLineBytes} bytes (${end - start} bytes)`,
        rawText(buf.subarray(start, end)),
      );
      return;
    }
    if (this.rawLine?.(buf, start, end, this.lineNo)) return;
    const text = buf.toString('utf8', start, end);
    if (text.indexOf('\uFFFD') >= 0 && !isUtf8(buf.subarray(start, end))) {
      onBad(this.lineNo, 'invalid UTF-8', rawText(buf.subarray(start, end)));
      return;
    }
    onLine(text, this.lineNo);
  }
}
