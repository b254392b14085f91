/**
 * Streaming visit parser (DESIGN section 2): JSON Lines or CSV with a header row, optionally gzip-compressed, read
 * from a byte stream. Valid visits and rejected records come out incrementally, one chunk of the input at a time,
 * so memory stays bounded by the chunk size and the longest accepted line (1 MiB), not by the file.
 */
import { isUtf8 } from 'node:buffer';
import { pipeline, Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { parse as parseCsvRecord } from 'csv-parse/sync';
import { parseVisitTime } from './time.ts';
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
  if (lower.endsWith('.jsonl') || lower.endsWith('.json') || lower.endsWith('.ndjson')) return { format: 'jsonl', gzip };
  return { gzip };
}

/** Decodes at most `MAX_RAW_BYTES` of a line as text, cut on a character boundary. */
export function rawText(bytes: Uint8Array): string {
  if (bytes.length <= MAX_RAW_BYTES) return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('utf8');
  let end = MAX_RAW_BYTES;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--; // do not cut a multi-byte character
  return Buffer.from(bytes.buffer, bytes.byteOffset, end).toString('utf8');
}

function cutRaw(text: string): string {
  if (text.length * 3 <= MAX_RAW_BYTES) return text;
  return rawText(Buffer.from(text, 'utf8'));
}

/** Turns a parsed record (JSON object, or CSV row by header) into a visit, or the reason it is not one. */
export function toVisit(record: Record<string, unknown>, line: number): Visit | string {
  const rawUser = record.user_id;
  let userId: string;
  if (typeof rawUser === 'string') {
    if (rawUser.trim().length === 0) return rawUser.length === 0 ? 'empty user_id' : 'blank user_id';
    userId = rawUser;
  } else if (typeof rawUser === 'number' && Number.isFinite(rawUser)) {
    // decimal, never exponent notation: 1e21 is "1000000000000000000000"
    userId = Number.isInteger(rawUser) ? BigInt(rawUser).toString() : String(rawUser);
  } else {
    return rawUser === undefined ? 'missing user_id' : `invalid user_id ${shortJson(rawUser)}: expected a non-empty string or a number`;
  }
  const rawTime = record.visit_time;
  if (rawTime === undefined || rawTime === null) return 'missing visit_time';
  const t = parseVisitTime(rawTime);
  if (Number.isNaN(t)) {
    return `invalid visit_time ${shortJson(rawTime)}: expected ISO-8601 (T or space, offset, Z or none) or epoch milliseconds`;
  }
  const page = record.page;
  if (typeof page !== 'string') {
    return page === undefined ? 'missing page' : `invalid page ${shortJson(page)}: expected a non-empty string`;
  }
  if (page.trim().length === 0) return page.length === 0 ? 'empty page' : 'blank page';
  return { userId, t, page, line };
}

function shortJson(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** Parser of one record's text; pushes into `out`. The CSV one keeps header state. */
interface RecordParser {
  /** One physical line (without its ending). A CSV line may only start a record that later lines finish. */
  line(text: string, lineNo: number, out: ParsedChunk): void;
  /** End of input. */
  end(out: ParsedChunk): void;
}

class JsonLinesParser implements RecordParser {
  constructor(private readonly sourceObject: string) {}

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
    const visit = toVisit(value as Record<string, unknown>, lineNo);
    if (typeof visit === 'string') this.reject(out, lineNo, visit, text);
    else out.visits.push(visit);
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
        const rows = parseCsvRecord(text, { relax_column_count: true, skip_empty_lines: false }) as string[][];
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
    const visit = toVisit(record, lineNo);
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
    throw error instanceof SourceReadError ? error : new SourceReadError((error as Error).message, { cause: error });
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
      ? new CsvParser(options.sourceObject, maxLineBytes)
      : new JsonLinesParser(options.sourceObject);
  };

  const splitter = new LineSplitter(maxLineBytes);
  let out = emptyChunk();
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

  constructor(private readonly maxLineBytes: number) {}

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

  end(onLine: (text: string, lineNo: number) => void, onBad: (lineNo: number, reason: string, raw: string) => void): void {
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

  private finishOversize(totalBytes: number, onBad: (lineNo: number, reason: string, raw: string) => void): void {
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
      onBad(this.lineNo, `line longer than ${this.maxLineBytes} bytes (${end - start} bytes)`, rawText(buf.subarray(start, end)));
      return;
    }
    const text = buf.toString('utf8', start, end);
    if (text.indexOf('\uFFFD') >= 0 && !isUtf8(buf.subarray(start, end))) {
      onBad(this.lineNo, 'invalid UTF-8', rawText(buf.subarray(start, end)));
      return;
    }
    onLine(text, this.lineNo);
  }
}
