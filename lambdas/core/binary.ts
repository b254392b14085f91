/**
 * A small binary encoding for the state's parts and the staged visits: unsigned varints (LEB128, exact up to
 * 2^53), zigzag for signed numbers, IEEE doubles where a value may be infinite, and strings through a table so
 * that each user id and page is written once per part.
 */

/** Appends to a growing buffer. */
export class ByteWriter {
  private buf: Buffer;
  private pos = 0;

  constructor(initial = 4096) {
    this.buf = Buffer.allocUnsafe(initial);
  }

  get length(): number {
    return this.pos;
  }

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  /** An unsigned integer up to 2^53. */
  uint(n: number): void {
    this.room(8);
    const b = this.buf;
    let v = n;
    while (v >= 0x80) {
      b[this.pos++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    b[this.pos++] = v;
  }

  /** A signed integer within ±2^52 (zigzag, then varint). */
  int(n: number): void {
    this.uint(n >= 0 ? n * 2 : -n * 2 - 1);
  }

  /** A double, infinities included. */
  double(n: number): void {
    this.room(8);
    this.buf.writeDoubleLE(n, this.pos);
    this.pos += 8;
  }

  /** A string as its UTF-8 length and bytes. */
  string(s: string): void {
    const n = Buffer.byteLength(s);
    this.uint(n);
    this.room(n);
    this.buf.write(s, this.pos, n, 'utf8');
    this.pos += n;
  }

  bytes(b: Uint8Array): void {
    this.uint(b.length);
    this.room(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  /** The bytes written (a view: copy it before writing more). */
  finish(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}

/** Thrown when bytes do not decode: a part or staged object that is corrupt or of another format. */
export class CorruptDataError extends Error {
  override readonly name = 'CorruptDataError';
}

export class ByteReader {
  private pos = 0;

  constructor(private readonly buf: Uint8Array) {}

  get done(): boolean {
    return this.pos >= this.buf.length;
  }

  uint(): number {
    const b = this.buf;
    let result = 0;
    let scale = 1;
    for (;;) {
      if (this.pos >= b.length) throw new CorruptDataError('truncated varint');
      const byte = b[this.pos++]!;
      result += (byte & 0x7f) * scale;
      if (byte < 0x80) return result;
      scale *= 0x80;
      if (scale > 2 ** 56) throw new CorruptDataError('varint too long');
    }
  }

  int(): number {
    const z = this.uint();
    return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
  }

  double(): number {
    if (this.pos + 8 > this.buf.length) throw new CorruptDataError('truncated double');
    const v = Buffer.from(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength).readDoubleLE(this.pos);
    this.pos += 8;
    return v;
  }

  string(): string {
    const n = this.uint();
    if (this.pos + n > this.buf.length) throw new CorruptDataError('truncated string');
    const s = Buffer.from(this.buf.buffer, this.buf.byteOffset + this.pos, n).toString('utf8');
    this.pos += n;
    return s;
  }

  bytes(): Uint8Array {
    const n = this.uint();
    if (this.pos + n > this.buf.length) throw new CorruptDataError('truncated bytes');
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
}

/** Strings numbered in order of first use, for a part's string table. */
export class StringTable {
  private readonly ids = new Map<string, number>();
  readonly list: string[] = [];

  id(s: string): number {
    let id = this.ids.get(s);
    if (id === undefined) {
      id = this.list.length;
      this.ids.set(s, id);
      this.list.push(s);
    }
    return id;
  }

  write(w: ByteWriter): void {
    w.uint(this.list.length);
    for (const s of this.list) w.string(s);
  }

  static read(r: ByteReader): string[] {
    const n = r.uint();
    const list: string[] = new Array(n);
    for (let i = 0; i < n; i++) list[i] = r.string();
    return list;
  }
}

/** The string at `id` of a table, or a CorruptDataError. */
export function tableString(table: readonly string[], id: number): string {
  const s = table[id];
  if (s === undefined) throw new CorruptDataError(`string ${id} is not in the table of ${table.length}`);
  return s;
}
