/**
 * A record becomes a visit, or the reason it does not (docs/design.md, section 2): the fields and their types, the
 * limits on sizes and on visit times, and the raw text a rejected record keeps.
 */
import { parseVisitTime } from '../time.ts';
import type { Visit } from '../types.ts';

/** Longest accepted line in bytes (longer ones are rejected without being buffered). */
export const MAX_LINE_BYTES = 1024 * 1024;
/** Most bytes of a rejected line kept as its `raw` text. */
export const MAX_RAW_BYTES = 4096;
/** Longest accepted `user_id` (UTF-8 bytes): it is part of the state's keys. */
export const MAX_USER_ID_BYTES = 512;
/** Longest accepted `page` (UTF-8 bytes). */
export const MAX_PAGE_BYTES = 16 * 1024;

function shortJson(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
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

/** Whether a visit time is within the range (always, without one). */
export function inRange(t: number, range: VisitTimeRange | undefined): boolean {
  return range === undefined || (t <= range.latest && t >= range.earliest);
}

/** The reason a visit time is outside the range, or undefined. */
export function outOfRange(t: number, range: VisitTimeRange | undefined): string | undefined {
  if (range === undefined || inRange(t, range)) return undefined;
  if (t > range.latest) {
    return `visit_time ${new Date(t).toISOString()} is after ${new Date(range.latest).toISOString()}, ${range.latestIs}`;
  }
  if (t < range.earliest) {
    return `visit_time ${new Date(t).toISOString()} is before ${new Date(range.earliest).toISOString()}, ${range.earliestIs}`;
  }
  return undefined;
}

/** Decodes at most `MAX_RAW_BYTES` of a line as text, cut on a character boundary. */
export function rawText(bytes: Uint8Array): string {
  if (bytes.length <= MAX_RAW_BYTES)
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('utf8');
  let end = MAX_RAW_BYTES;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--; // do not cut a multi-byte character
  return Buffer.from(bytes.buffer, bytes.byteOffset, end).toString('utf8');
}

export function cutRaw(text: string): string {
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

/** Blank: empty or only spaces and tabs. Blank lines are skipped in both formats (outside CSV quotes). */
export function isBlank(text: string): boolean {
  if (text.length === 0) return true;
  const c = text.charCodeAt(0);
  return (c === 32 || c === 9) && text.trim().length === 0;
}
