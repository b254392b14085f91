/**
 * A staged segment: the valid visits of a run of an input object's records, split by shard, as one binary object
 * (docs/design.md, "Staging"). Any invocation applying a shard reads its own section of it, so an object is parsed
 * once whoever applies it. Layout: magic, shard count, the end offset of each section, then the sections, each a
 * deflated list of (user, time, page, line) with its own string table.
 */
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { ByteReader, ByteWriter, CorruptDataError, StringTable, tableString } from './binary.ts';
import type { Visit } from './types.ts';

const MAGIC = 0x53_5a_47_31; // 'SZG1'

function encodeSection(visits: readonly Visit[]): Buffer {
  const strings = new StringTable();
  const body = new ByteWriter(64 + visits.length * 8);
  body.uint(visits.length);
  let t = 0;
  let line = 0;
  for (const v of visits) {
    body.uint(strings.id(v.userId));
    body.int(v.t - t);
    body.uint(strings.id(v.page));
    body.int(v.line - line);
    t = v.t;
    line = v.line;
  }
  const head = new ByteWriter(64 + strings.list.length * 16);
  strings.write(head);
  return deflateRawSync(Buffer.concat([head.finish(), body.finish()]), { level: 1 });
}

function decodeSection(bytes: Uint8Array): Visit[] {
  const r = new ByteReader(inflateRawSync(bytes));
  const strings = StringTable.read(r);
  const n = r.uint();
  const out: Visit[] = new Array(n);
  let t = 0;
  let line = 0;
  for (let i = 0; i < n; i++) {
    const userId = tableString(strings, r.uint());
    t += r.int();
    const page = tableString(strings, r.uint());
    line += r.int();
    out[i] = { userId, t, page, line };
  }
  return out;
}

/** One segment's visits, already split by shard, as bytes. */
export function encodeSegment(byShard: readonly (readonly Visit[])[]): Buffer {
  const sections = byShard.map((visits) => (visits.length === 0 ? Buffer.alloc(0) : encodeSection(visits)));
  const header = Buffer.alloc(8 + 4 * sections.length);
  header.writeUInt32BE(MAGIC, 0);
  header.writeUInt32BE(sections.length, 4);
  let end = 0;
  for (const [i, s] of sections.entries()) {
    end += s.length;
    header.writeUInt32BE(end, 8 + 4 * i);
  }
  return Buffer.concat([header, ...sections]);
}

/** The visits of one shard in an encoded segment. */
export function decodeSegmentShard(bytes: Uint8Array, shard: number): Visit[] {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b.length < 8 || b.readUInt32BE(0) !== MAGIC) throw new CorruptDataError('staged segment: bad magic');
  const shards = b.readUInt32BE(4);
  if (shard >= shards) throw new CorruptDataError(`staged segment: no shard ${shard} of ${shards}`);
  const data = 8 + 4 * shards;
  const start = shard === 0 ? 0 : b.readUInt32BE(8 + 4 * (shard - 1));
  const end = b.readUInt32BE(8 + 4 * shard);
  if (data + end > b.length) throw new CorruptDataError('staged segment: truncated');
  return end === start ? [] : decodeSection(b.subarray(data + start, data + end));
}

/** Shard count an encoded segment was split into. */
export function segmentShards(bytes: Uint8Array): number {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b.length < 8 || b.readUInt32BE(0) !== MAGIC) throw new CorruptDataError('staged segment: bad magic');
  return b.readUInt32BE(4);
}
