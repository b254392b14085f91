import { parse as parseCsvRecord } from 'csv-parse/sync';
import type { ParsedChunk, RecordParser } from './chunk.ts';
import {
  cutRaw,
  inRange,
  isBlank,
  MAX_PAGE_BYTES,
  MAX_USER_ID_BYTES,
  toVisit,
  type VisitTimeRange,
} from './records.ts';
import { notBlank, type RecentStrings, timeField } from './strings.ts';

/**
 * CSV with a header row (RFC 4180). Physical lines are joined while a quoted field is open (an odd number of
 * quotes so far); each record is then parsed by csv-parse. Records without quotes take a plain split on commas,
 * which is what RFC 4180 says they mean.
 */
export class CsvParser implements RecordParser {
  private header: string[] | undefined;
  private index: { user_id: number; visit_time: number; page: number } | undefined;
  private pending = '';
  private pendingLine = 0;

  constructor(
    private readonly sourceObject: string,
    private readonly maxRecordChars: number,
    private readonly range: VisitTimeRange | undefined,
    private readonly strings: RecentStrings,
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
    if (!inRange(t, this.range)) return false; // the general path rejects
    out.visits.push({
      userId: this.strings.user(b, userFrom, userTo),
      t,
      page: this.strings.page(b, pageFrom, pageTo),
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
