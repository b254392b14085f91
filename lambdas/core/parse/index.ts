/**
 * Streaming visit parser (docs/design.md, section 2): JSON Lines or CSV with a header row, optionally gzip, read
 * from a byte stream. Valid visits and rejected records come out incrementally, one chunk of the input at a time,
 * so memory stays bounded by the chunk size and the longest accepted line (1 MiB), not by the file.
 */
import { pipeline, Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { ParsedChunk, RecordParser } from './chunk.ts';
import { CsvParser } from './csv.ts';
import { formatFromName, GZIP_MAGIC_0, GZIP_MAGIC_1, type InputFormat } from './formats.ts';
import { JsonLinesParser } from './json-lines.ts';
import { LineSplitter } from './lines.ts';
import { isBlank, MAX_LINE_BYTES, type VisitTimeRange } from './records.ts';
import { RecentStrings } from './strings.ts';

export type { ParsedChunk } from './chunk.ts';
export { EARLIEST_VISIT_TIME, type VisitTimeRange } from './records.ts';
export { RecentStrings } from './strings.ts';

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
  /** Strings to share with other parses of the caller (user ids and pages repeat across files). @default its own */
  readonly strings?: RecentStrings;
}

/** Raised by the byte source itself (a network error, say): not the input's fault, so it is not a rejection. */
export class SourceReadError extends Error {
  override readonly name = 'SourceReadError';
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
  const strings = options.strings ?? new RecentStrings();
  const makeParser = (firstText: string): RecordParser => {
    const format = explicitFormat ?? (firstText.trimStart().startsWith('{') ? 'jsonl' : 'csv');
    return format === 'csv'
      ? new CsvParser(options.sourceObject, maxLineBytes, options.visitTimes, strings)
      : new JsonLinesParser(options.sourceObject, options.visitTimes, strings);
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
