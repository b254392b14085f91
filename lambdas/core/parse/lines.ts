import { isUtf8 } from 'node:buffer';
import { MAX_RAW_BYTES, rawText } from './records.ts';

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

  /**
   * @param rawLine tried first on each line's bytes (without the ending, within the limit, not yet decoded): returns
   * true when it took the line, which then is not decoded nor given to `onLine`.
   */
  constructor(
    private readonly maxLineBytes: number,
    private readonly rawLine?: (b: Buffer, start: number, end: number, lineNo: number) => boolean,
  ) {}

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

  end(
    onLine: (text: string, lineNo: number) => void,
    onBad: (lineNo: number, reason: string, raw: string) => void,
  ): void {
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

  private finishOversize(
    totalBytes: number,
    onBad: (lineNo: number, reason: string, raw: string) => void,
  ): void {
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
      onBad(
        this.lineNo,
        `line longer than ${this.maxLineBytes} bytes (${end - start} bytes)`,
        rawText(buf.subarray(start, end)),
      );
      return;
    }
    if (this.rawLine?.(buf, start, end, this.lineNo)) return;
    const text = buf.toString('utf8', start, end);
    if (text.indexOf('\uFFFD') >= 0 && !isUtf8(buf.subarray(start, end))) {
      onBad(this.lineNo, 'invalid UTF-8', rawText(buf.subarray(start, end)));
      return;
    }
    onLine(text, this.lineNo);
  }
}
