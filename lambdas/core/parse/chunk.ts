/** What the parsers produce, and what each parser does with a line. */
import type { Rejected, Visit } from '../types.ts';

/**
 * What one step of parsing produced. Every non-blank data line (CSV: record after the header) ends in exactly one
 * of the two lists, so lines = visits + rejected.
 */
export interface ParsedChunk {
  readonly visits: Visit[];
  readonly rejected: Rejected[];
}

/** Parser of one record's text; pushes into `out`. The CSV one keeps header state. */
export interface RecordParser {
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
