/**
 * Visit times (docs/design.md, section 2): ISO-8601 with `T` or a space, an offset, `Z` or no zone (UTC), any number of
 * fractional digits (truncated to ms), or epoch milliseconds as a number or a string of digits.
 * Hand-written for speed: this runs once per input line.
 */

const MS_PER_DAY = 86_400_000;

/** Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
export function daysFromCivil(y: number, m: number, d: number): number {
  const yy = m <= 2 ? y - 1 : y;
  const era = Math.floor(yy / 400);
  const yoe = yy - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146_097 + doe - 719_468;
}

function daysInMonth(y: number, m: number): number {
  if (m === 2) return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0 ? 29 : 28;
  return m === 4 || m === 6 || m === 9 || m === 11 ? 30 : 31;
}

/** Reads `n` decimal digits of `b` at `i` (all before `end`), or -1 when any is missing or not a digit. */
function digits(b: Uint8Array, i: number, n: number, end: number): number {
  if (i + n > end) return -1;
  let v = 0;
  for (let k = 0; k < n; k++) {
    const c = b[i + k]! - 48;
    if (c < 0 || c > 9) return -1;
    v = v * 10 + c;
  }
  return v;
}

/** Accepted range: years 0000 to 9999, so every time prints as a four-digit-year ISO string. */
const MIN_TIME = -62_167_219_200_000; // 0000-01-01T00:00:00.000Z
const MAX_TIME = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
const inRange = (t: number): boolean => t >= MIN_TIME && t <= MAX_TIME;

/** The last valid date read, and its midnight in epoch ms: the times of a file mostly share their date. */
let lastYear = -1;
let lastMonth = -1;
let lastDay = -1;
let lastDayMs = 0;

/**
 * Parses an ISO-8601 date-time held as ASCII bytes `b[start..end)` (a field of an input line, read in place);
 * returns epoch ms, or NaN when it is not one. The one implementation: {@link parseIsoTime} reads strings through it.
 */
export function parseIsoBytes(b: Uint8Array, start: number, end: number): number {
  if (end - start < 16) return Number.NaN;
  const y = digits(b, start, 4, end);
  if (y < 0 || b[start + 4] !== 45 || b[start + 7] !== 45) return Number.NaN;
  const mo = digits(b, start + 5, 2, end);
  const d = digits(b, start + 8, 2, end);
  const sep = b[start + 10];
  if (sep !== 84 && sep !== 32 && sep !== 116) return Number.NaN; // 'T', ' ', 't'
  const h = digits(b, start + 11, 2, end);
  if (b[start + 13] !== 58) return Number.NaN;
  const mi = digits(b, start + 14, 2, end);
  if (h < 0 || h > 23 || mi < 0 || mi > 59) return Number.NaN;
  let dayMs: number;
  if (y === lastYear && mo === lastMonth && d === lastDay) {
    dayMs = lastDayMs;
  } else {
    if (mo < 1 || mo > 12 || d < 1 || d > daysInMonth(y, mo)) return Number.NaN;
    dayMs = daysFromCivil(y, mo, d) * MS_PER_DAY;
    lastYear = y;
    lastMonth = mo;
    lastDay = d;
    lastDayMs = dayMs;
  }
  let i = start + 16;
  let sec = 0;
  let ms = 0;
  if (i < end && b[i] === 58) {
    sec = digits(b, i + 1, 2, end);
    if (sec < 0 || sec > 59) return Number.NaN;
    i += 3;
    const c = b[i];
    if (i < end && (c === 46 || c === 44)) {
      // fraction: any number of digits, truncated to milliseconds
      i++;
      const from = i;
      while (i < end) {
        const dc = b[i]! - 48;
        if (dc < 0 || dc > 9) break;
        if (i - from < 3) ms = ms * 10 + dc;
        i++;
      }
      const len = i - from;
      if (len === 0) return Number.NaN;
      if (len === 1) ms *= 100;
      else if (len === 2) ms *= 10;
    }
  }
  let offsetMin = 0;
  if (i < end) {
    const c = b[i];
    if ((c === 90 || c === 122) && i === end - 1) {
      // 'Z' or 'z'
    } else if (c === 43 || c === 45) {
      const oh = digits(b, i + 1, 2, end);
      let om = 0;
      const rest = end - (i + 3);
      if (rest === 0) om = 0;
      else if (rest === 3 && b[i + 3] === 58) om = digits(b, i + 4, 2, end);
      else if (rest === 2) om = digits(b, i + 3, 2, end);
      else return Number.NaN;
      if (oh < 0 || oh > 23 || om < 0 || om > 59) return Number.NaN;
      offsetMin = (oh * 60 + om) * (c === 43 ? 1 : -1);
    } else {
      return Number.NaN;
    }
  }
  const t = dayMs + ((h * 60 + mi - offsetMin) * 60 + sec) * 1000 + ms;
  return inRange(t) ? t : Number.NaN;
}

const scratch = new Uint8Array(64);

/** Parses an ISO-8601 date-time string; returns epoch ms, or NaN when it is not one. */
export function parseIsoTime(s: string): number {
  const n = s.length;
  if (n < 16) return Number.NaN;
  const b = n <= scratch.length ? scratch : new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c > 0x7f) return Number.NaN; // every position of a valid time is an ASCII character
    b[i] = c;
  }
  return parseIsoBytes(b, 0, n);
}

/**
 * Parses a `visit_time` value as found in a record (JSON value or CSV cell).
 * Returns epoch ms, or NaN when the value is not a valid time.
 */
export function parseVisitTime(value: unknown): number {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return Number.NaN;
    const t = Math.trunc(value);
    return inRange(t) ? t : Number.NaN;
  }
  if (typeof value !== 'string') return Number.NaN;
  const s =
    value.length > 0 && (value.charCodeAt(0) === 32 || value.charCodeAt(value.length - 1) === 32)
      ? value.trim()
      : value;
  if (s.length >= 16 && s.charCodeAt(4) === 45) return parseIsoTime(s);
  if (s.length === 0 || s.length > 16) return Number.NaN;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return Number.NaN;
  }
  const t = Number(s);
  return inRange(t) ? t : Number.NaN;
}

let cachedDay = Number.NaN;
let cachedPrefix = '';

function pad2(n: number): string {
  return n < 10 ? `0${n}` : `${n}`;
}

/** `HH:MM:` of every minute of a day, `SS.` of every second, `mmmZ` of every millisecond: formatIso is lookups. */
const HOUR_MINUTE: string[] = [];
for (let m = 0; m < 1440; m++) HOUR_MINUTE.push(`${pad2(Math.floor(m / 60))}:${pad2(m % 60)}:`);
const SECOND: string[] = [];
for (let sec = 0; sec < 60; sec++) SECOND.push(`${pad2(sec)}.`);
const MILLI_Z: string[] = [];
for (let ms = 0; ms < 1000; ms++) MILLI_Z.push(`${ms < 10 ? '00' : ms < 100 ? '0' : ''}${ms}Z`);

/** Formats epoch ms as ISO-8601 UTC with milliseconds (`2026-02-15T17:05:34.432Z`). */
export function formatIso(t: number): string {
  const day = Math.floor(t / MS_PER_DAY);
  if (day !== cachedDay) {
    // prefix first: a time out of Date's range throws here, and must not leave the cache half-updated
    cachedPrefix = new Date(day * MS_PER_DAY).toISOString().slice(0, 11);
    cachedDay = day;
  }
  let rem = t - day * MS_PER_DAY;
  if (Number.isInteger(rem)) {
    const minute = Math.floor(rem / 60_000);
    rem -= minute * 60_000;
    const sec = Math.floor(rem / 1000);
    return cachedPrefix + HOUR_MINUTE[minute]! + SECOND[sec]! + MILLI_Z[rem - sec * 1000]!;
  }
  // not a whole millisecond: the general formatting
  const ms = rem % 1000;
  rem = (rem - ms) / 1000;
  const sec = rem % 60;
  rem = (rem - sec) / 60;
  const min = rem % 60;
  const hour = (rem - min) / 60;
  const msText = ms < 10 ? `00${ms}` : ms < 100 ? `0${ms}` : `${ms}`;
  return `${cachedPrefix}${pad2(hour)}:${pad2(min)}:${pad2(sec)}.${msText}Z`;
}

let writtenDay = Number.NaN;
const writtenPrefix = new Uint8Array(11);

/**
 * Writes {@link formatIso}`(t)` as 24 ASCII bytes into `b` at `at` and returns the end, or returns -1 (writing
 * nothing) when `t` is not a whole millisecond of the years 0000 to 9999: then use formatIso. `b` needs 24 bytes of
 * room at `at`.
 */
export function writeIso(t: number, b: Uint8Array, at: number): number {
  if (!Number.isInteger(t) || t < MIN_TIME || t > MAX_TIME) return -1;
  const day = Math.floor(t / MS_PER_DAY);
  if (day !== writtenDay) {
    const iso = new Date(day * MS_PER_DAY).toISOString();
    for (let k = 0; k < 11; k++) writtenPrefix[k] = iso.charCodeAt(k);
    writtenDay = day;
  }
  for (let k = 0; k < 11; k++) b[at + k] = writtenPrefix[k]!;
  let rem = t - day * MS_PER_DAY;
  const hour = Math.floor(rem / 3_600_000);
  rem -= hour * 3_600_000;
  const min = Math.floor(rem / 60_000);
  rem -= min * 60_000;
  const sec = Math.floor(rem / 1000);
  const ms = rem - sec * 1000;
  b[at + 11] = 48 + Math.floor(hour / 10);
  b[at + 12] = 48 + (hour % 10);
  b[at + 13] = 58; // ':'
  b[at + 14] = 48 + Math.floor(min / 10);
  b[at + 15] = 48 + (min % 10);
  b[at + 16] = 58;
  b[at + 17] = 48 + Math.floor(sec / 10);
  b[at + 18] = 48 + (sec % 10);
  b[at + 19] = 46; // '.'
  b[at + 20] = 48 + Math.floor(ms / 100);
  b[at + 21] = 48 + (Math.floor(ms / 10) % 10);
  b[at + 22] = 48 + (ms % 10);
  b[at + 23] = 90; // 'Z'
  return at + 24;
}

/** The UTC date (`YYYY-MM-DD`) of epoch ms: the `dt` partition value. */
export function utcDate(t: number): string {
  return formatIso(t).slice(0, 10);
}
