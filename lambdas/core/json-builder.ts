/**
 * A JSON line built in bytes: how the output writers of schema.ts avoid concatenating strings.
 */
import { formatIso, writeIso } from './time.ts';

/** `Buffer#latin1Slice` / `utf8Slice`: decode without `toString`'s argument handling. */
type Slices = Buffer & {
  latin1Slice(start: number, end: number): string;
  utf8Slice(start: number, end: number): string;
};

/**
 * Builds one JSON line in bytes and decodes it once at the end: much cheaper than concatenating strings, whose many
 * small pieces must all be flattened again when the lines are joined into an object body. ASCII is copied byte by
 * byte; other text is written as UTF-8 and the line then decoded as such.
 */
export class JsonBuilder {
  private buf = Buffer.alloc(1024) as Slices;
  private n = 0;
  private utf8 = false;

  /** Bytes written so far: a mark for {@link rewind}. */
  get length(): number {
    return this.n;
  }

  /** Drops everything after `mark`. */
  rewind(mark: number): void {
    this.n = mark;
  }

  /** Empties the builder for a new line. */
  reset(): void {
    this.n = 0;
    this.utf8 = false;
  }

  private room(bytes: number): void {
    if (this.n + bytes > this.buf.length) {
      const bigger = Buffer.alloc(Math.max(this.buf.length * 2, this.n + bytes)) as Slices;
      this.buf.copy(bigger, 0, 0, this.n);
      this.buf = bigger;
    }
  }

  /** Appends text that is JSON already (punctuation, keys, numbers, `JSON.stringify` output). */
  text(s: string): void {
    const len = s.length;
    this.room(len);
    const b = this.buf;
    let n = this.n;
    for (let i = 0; i < len; i++) {
      const c = s.charCodeAt(i);
      if (c > 0x7f) {
        const rest = s.slice(i);
        this.n = n;
        this.room(rest.length * 3);
        this.n += this.buf.write(rest, this.n, 'utf8');
        this.utf8 = true;
        return;
      }
      b[n++] = c;
    }
    this.n = n;
  }

  /** Appends `JSON.stringify(s)`. */
  string(s: string): void {
    const len = s.length;
    this.room(len + 2);
    const b = this.buf;
    const mark = this.n;
    let n = mark;
    b[n++] = 34;
    for (let i = 0; i < len; i++) {
      const c = s.charCodeAt(i);
      if (c < 32 || c === 34 || c === 92 || c > 0x7f) {
        // escapes or non-ASCII: JSON.stringify's own text
        this.n = mark;
        this.text(JSON.stringify(s));
        return;
      }
      b[n++] = c;
    }
    b[n++] = 34;
    this.n = n;
  }

  /** Appends `JSON.stringify(formatIso(t))`. */
  time(t: number): void {
    this.room(26);
    const end = writeIso(t, this.buf, this.n + 1);
    if (end < 0) {
      this.text(JSON.stringify(formatIso(t)));
      return;
    }
    this.buf[this.n] = 34;
    this.buf[end] = 34;
    this.n = end + 1;
  }

  /** Appends `JSON.stringify(value)` and returns true, or returns false when that is `undefined`. */
  value(value: unknown): boolean {
    if (typeof value === 'string') {
      this.string(value);
    } else if (typeof value === 'number') {
      this.text(Number.isFinite(value) ? `${value}` : 'null');
    } else {
      const text = JSON.stringify(value);
      if (text === undefined) return false;
      this.text(text);
    }
    return true;
  }

  /** The line built, as a string. */
  finish(): string {
    return this.utf8 ? this.buf.utf8Slice(0, this.n) : this.buf.latin1Slice(0, this.n);
  }
}
