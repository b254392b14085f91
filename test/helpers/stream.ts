/**
 * Byte-stream helpers for parser tests: turn strings/Buffers into the async iterable the parser reads, split bytes
 * into chunks, and collect everything the parser yields.
 */
import { type ParsedChunk, type ParseOptions, parseVisits } from '../../lambdas/core/parse/index.ts';
import type { Rejected, Visit } from '../../lambdas/core/types.ts';

export type Part = string | Uint8Array;

/** Bytes of a part (strings as UTF-8). */
export function bytesOf(part: Part): Buffer {
  return typeof part === 'string' ? Buffer.from(part, 'utf8') : Buffer.from(part);
}

/** An async byte source yielding each part as one chunk, in order. */
export async function* streamOf(...parts: Part[]): AsyncGenerator<Uint8Array> {
  for (const part of parts) yield bytesOf(part);
}

/** Splits `bytes` at the given offsets (sorted, deduplicated, clamped); equal offsets give no empty chunks. */
export function splitAt(bytes: Uint8Array, offsets: readonly number[]): Buffer[] {
  const cuts = [...new Set(offsets.map((o) => Math.max(0, Math.min(bytes.length, o))))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let from = 0;
  for (const cut of [...cuts, bytes.length]) {
    if (cut > from) out.push(Buffer.from(bytes.subarray(from, cut)));
    from = Math.max(from, cut);
  }
  return out;
}

/** Splits `bytes` into chunks of `size` bytes (the last may be shorter). */
export function chunksOf(bytes: Uint8Array, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) out.push(Buffer.from(bytes.subarray(i, i + size)));
  return out;
}

export interface Collected {
  readonly visits: Visit[];
  readonly rejected: Rejected[];
  /** What each step of the parser yielded, in order. */
  readonly chunks: ParsedChunk[];
}

/** Runs the parser over a byte source and gathers every visit and rejected record, in order. */
export async function collect(source: AsyncIterable<Uint8Array>, options: ParseOptions): Promise<Collected> {
  const visits: Visit[] = [];
  const rejected: Rejected[] = [];
  const chunks: ParsedChunk[] = [];
  for await (const chunk of parseVisits(source, options)) {
    chunks.push(chunk);
    visits.push(...chunk.visits);
    rejected.push(...chunk.rejected);
  }
  return { visits, rejected, chunks };
}

/** Parses the concatenation of `parts` (each part one chunk) from an object named `sourceObject`. */
export function parseParts(sourceObject: string, ...parts: Part[]): Promise<Collected> {
  return collect(streamOf(...parts), { sourceObject });
}
