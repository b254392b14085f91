/** JSON Lines: one JSON object a line; the common lines read by the byte scanner, any other by `JSON.parse`. */
import type { ParsedChunk, RecordParser } from './chunk.ts';
import { JsonLineScanner } from './json-scanner.ts';
import { cutRaw, inRange, isBlank, toVisit, type VisitTimeRange } from './records.ts';
import type { RecentStrings } from './strings.ts';

export class JsonLinesParser implements RecordParser {
  private readonly scanner: JsonLineScanner;

  constructor(
    private readonly sourceObject: string,
    private readonly range: VisitTimeRange | undefined,
    strings: RecentStrings,
  ) {
    this.scanner = new JsonLineScanner(strings);
  }

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
    const visit = this.scanner.visit(b, start, end, lineNo);
    if (visit === undefined) return false;
    if (!inRange(visit.t, this.range)) return false; // the general path rejects
    out.visits.push(visit);
    return true;
  }

  end(): void {}

  private reject(out: ParsedChunk, line: number, reason: string, text: string): void {
    out.rejected.push({ sourceObject: this.sourceObject, line, reason, raw: cutRaw(text) });
  }
}
