import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { RecentStrings, SourceReadError } from '../../lambdas/core/parse/index.ts';
import type { Rejected, Visit } from '../../lambdas/core/types.ts';
import { retainedBytes } from '../helpers/memory.ts';
import { bytesOf, chunksOf, collect, type Part, parseParts, splitAt, streamOf } from '../helpers/stream.ts';

const T1 = Date.UTC(2026, 1, 15, 17, 5, 34, 432);
const T2 = Date.UTC(2026, 1, 15, 17, 6, 47, 100);
const T3 = Date.UTC(2026, 1, 15, 18, 9, 18, 0);
const ISO1 = '2026-02-15T17:05:34.432Z';
const ISO2 = '2026-02-15T17:06:47.100Z';
const ISO3 = '2026-02-15T18:09:18.000Z';
const MiB = 1024 * 1024;

const json = (user: unknown, time: unknown, page: unknown, extra: Record<string, unknown> = {}): string =>
  JSON.stringify({ user_id: user, visit_time: time, page, ...extra });

const L1 = json('1', ISO1, 'page_1.html');
const L2 = json('2', ISO2, 'page_2.html');
const L3 = json('3', ISO3, 'page_3.html');

/** The (user, time, page, line) of visits, for compact comparisons. */
const brief = (visits: readonly Visit[]): [string, number, string, number][] =>
  visits.map((v) => [v.userId, v.t, v.page, v.line]);

function onlyRejected(rejected: readonly Rejected[]): Rejected {
  assert.equal(rejected.length, 1, `expected one rejected record, got ${JSON.stringify(rejected)}`);
  return rejected[0]!;
}

describe('parseVisits: JSON Lines', () => {
  it('reads each line into a visit with its 1-based line number and the source object', async () => {
    const { visits, rejected } = await parseParts('s3://in/visits.jsonl', `${L1}\n${L2}\n${L3}\n`);

    assert.deepEqual(rejected, []);
    assert.deepEqual(brief(visits), [
      ['1', T1, 'page_1.html', 1],
      ['2', T2, 'page_2.html', 2],
      ['3', T3, 'page_3.html', 3],
    ]);
  });

  it('writes a numeric user_id as its decimal string', async () => {
    const { visits } = await parseParts('v.jsonl', `${json(42, ISO1, 'a')}\n${json(0, ISO1, 'b')}\n`);

    assert.deepEqual(
      visits.map((v) => v.userId),
      ['42', '0'],
    );
  });

  it('keeps numeric user ids apart that share the low bits of the decoded-id cache', async () => {
    const ids = [1, 65_537, 1, -65_535, 2 ** 40 + 1, 65_537];
    const text = ids.map((id, i) => `${json(id, ISO1, `p${i}`)}\n`).join('');

    const { visits } = await parseParts('v.jsonl', text);

    assert.deepEqual(
      visits.map((v) => v.userId),
      ids.map(String),
    );
  });

  it('ignores extra fields', async () => {
    const { visits, rejected } = await parseParts(
      'v.jsonl',
      `${json('1', ISO1, 'a', { referrer: 'x', n: [1] })}\n`,
    );

    assert.deepEqual(rejected, []);
    assert.deepEqual(brief(visits), [['1', T1, 'a', 1]]);
  });

  it('accepts visit_time as epoch milliseconds, a number or a digit string', async () => {
    const { visits } = await parseParts('v.jsonl', `${json('1', T1, 'a')}\n${json('1', String(T2), 'b')}\n`);

    assert.deepEqual(
      visits.map((v) => v.t),
      [T1, T2],
    );
  });

  it('skips blank lines but keeps counting physical lines', async () => {
    const { visits, rejected } = await parseParts('v.jsonl', `\n${L1}\n\n   \n\t\n${L2}\n\n`);

    assert.deepEqual(rejected, []);
    assert.deepEqual(
      visits.map((v) => v.line),
      [2, 6],
    );
  });

  it('reads CRLF line endings without keeping the CR', async () => {
    const { visits, rejected } = await parseParts('v.jsonl', `${L1}\r\n${L2}\r\n`);

    assert.deepEqual(rejected, []);
    assert.deepEqual(brief(visits), [
      ['1', T1, 'page_1.html', 1],
      ['2', T2, 'page_2.html', 2],
    ]);
  });

  it('skips a UTF-8 byte order mark at the start', async () => {
    const { visits, rejected } = await parseParts('v.jsonl', `\uFEFF${L1}\n${L2}\n`);

    assert.deepEqual(rejected, []);
    assert.deepEqual(
      visits.map((v) => v.line),
      [1, 2],
    );
  });

  it('reads a last line that has no newline', async () => {
    const { visits } = await parseParts('v.jsonl', `${L1}\n${L2}`);

    assert.deepEqual(brief(visits), [
      ['1', T1, 'page_1.html', 1],
      ['2', T2, 'page_2.html', 2],
    ]);
  });

  it('yields nothing for an empty object', async () => {
    const { visits, rejected } = await parseParts('v.jsonl');

    assert.deepEqual(visits, []);
    assert.deepEqual(rejected, []);
  });

  it('rejects a line that is not JSON with its line, reason and raw text, and goes on', async () => {
    const { visits, rejected } = await parseParts('s3://in/v.jsonl', `${L1}\n{"user_id": oops\n${L2}\n`);

    assert.deepEqual(
      visits.map((v) => v.line),
      [1, 3],
    );
    const r = onlyRejected(rejected);
    assert.equal(r.sourceObject, 's3://in/v.jsonl');
    assert.equal(r.line, 2);
    assert.match(r.reason, /JSON/);
    assert.equal(r.raw, '{"user_id": oops');
  });

  it('rejects JSON values that are not objects', async () => {
    const { visits, rejected } = await parseParts('v.jsonl', '[1,2]\n"text"\n42\nnull\n');

    assert.deepEqual(visits, []);
    assert.deepEqual(
      rejected.map((r) => [r.line, r.raw]),
      [
        [1, '[1,2]'],
        [2, '"text"'],
        [3, '42'],
        [4, 'null'],
      ],
    );
  });

  const badFields: [string, string, RegExp][] = [
    ['a missing user_id', JSON.stringify({ visit_time: ISO1, page: 'a' }), /user_id/],
    ['an empty user_id', json('', ISO1, 'a'), /user_id/],
    ['a blank user_id', json('  ', ISO1, 'a'), /user_id/],
    ['a null user_id', json(null, ISO1, 'a'), /user_id/],
    ['a boolean user_id', json(true, ISO1, 'a'), /user_id/],
    ['an object user_id', json({ id: 1 }, ISO1, 'a'), /user_id/],
    ['a missing visit_time', JSON.stringify({ user_id: '1', page: 'a' }), /visit_time/],
    ['a null visit_time', json('1', null, 'a'), /visit_time/],
    ['an unparsable visit_time', json('1', 'yesterday', 'a'), /visit_time/],
    ['an impossible visit_time', json('1', '2025-02-29T00:00:00Z', 'a'), /visit_time/],
    ['a boolean visit_time', json('1', true, 'a'), /visit_time/],
    ['a missing page', JSON.stringify({ user_id: '1', visit_time: ISO1 }), /page/],
    ['an empty page', json('1', ISO1, ''), /page/],
    ['a numeric page', json('1', ISO1, 5), /page/],
  ];
  for (const [name, line, field] of badFields) {
    it(`rejects ${name} with a reason naming the field`, async () => {
      const { visits, rejected } = await parseParts('v.jsonl', `${L1}\n${line}\n`);

      assert.equal(visits.length, 1);
      const r = onlyRejected(rejected);
      assert.equal(r.line, 2);
      assert.match(r.reason, field);
      assert.equal(r.raw, line);
    });
  }

  it('rejects a line that is not valid UTF-8 and reads its neighbours', async () => {
    const bad = Buffer.concat([
      Buffer.from('{"user_id":"'),
      Buffer.from([0xff, 0xfe, 0xc3]),
      Buffer.from('"}'),
    ]);
    const input = Buffer.concat([bytesOf(`${L1}\n`), bad, bytesOf(`\n${L2}\n`)]);

    const { visits, rejected } = await parseParts('v.jsonl', input);

    assert.deepEqual(
      visits.map((v) => v.line),
      [1, 3],
    );
    const r = onlyRejected(rejected);
    assert.equal(r.line, 2);
    assert.match(r.reason, /UTF-8/);
  });

  it('accepts a line that legitimately contains U+FFFD', async () => {
    const { visits, rejected } = await parseParts('v.jsonl', `${json('1', ISO1, 'caf\uFFFD.html')}\n`);

    assert.deepEqual(rejected, []);
    assert.deepEqual(brief(visits), [['1', T1, 'caf\uFFFD.html', 1]]);
  });

  it('reads plain Uint8Array views (not Buffers) with a non-zero byte offset, as web streams give', async () => {
    const backing = new Uint8Array(bytesOf(`XXXX${L1}\n${L2}\nYYYY`));
    const body = backing.subarray(4, backing.length - 4);
    async function* views(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < body.length; i += 7) yield body.subarray(i, i + 7);
    }

    const { visits, rejected } = await collect(views(), { sourceObject: 'v.jsonl' });

    assert.deepEqual(rejected, []);
    assert.deepEqual(brief(visits), [
      ['1', T1, 'page_1.html', 1],
      ['2', T2, 'page_2.html', 2],
    ]);
  });

  it('reads multi-byte characters split across chunks', async () => {
    const input = bytesOf(`${json('ü', ISO1, 'страница-€-😀')}\n`);
    const pieces = chunksOf(input, 1);

    const { visits, rejected } = await collect(streamOf(...pieces), { sourceObject: 'v.jsonl' });

    assert.deepEqual(rejected, []);
    assert.deepEqual(brief(visits), [['ü', T1, 'страница-€-😀', 1]]);
  });
});

describe('parseVisits: raw text of a rejected line', () => {
  it('cuts raw at 4 KiB on a character boundary (3-byte characters)', async () => {
    const line = '€'.repeat(2000); // 6000 bytes, not JSON
    const { rejected } = await parseParts('v.jsonl', `${L1}\n${line}\n`);

    const r = onlyRejected(rejected);
    // 4096 / 3 = 1365 whole characters (4095 bytes); the 1366th would end at byte 4098.
    assert.equal(r.raw, '€'.repeat(1365));
  });

  it('cuts raw at exactly 4096 bytes when a character ends there', async () => {
    const line = `x${'€'.repeat(2000)}`; // 1 + 3 * 1365 = 4096
    const { rejected } = await parseParts('v.jsonl', `${L1}\n${line}\n`);

    assert.equal(onlyRejected(rejected).raw, `x${'€'.repeat(1365)}`);
  });

  it('keeps the whole raw line when it is at most 4 KiB', async () => {
    const line = `{"user_id":"1","visit_time":"bad","page":"${'p'.repeat(4000)}"}`;
    const { rejected } = await parseParts('v.jsonl', `${line}\n`);

    assert.equal(onlyRejected(rejected).raw, line);
  });
});

describe('parseVisits: long lines', () => {
  it('rejects a line over 1 MiB without crashing, and reads the lines before and after', async () => {
    const long = json('9', ISO1, 'é'.repeat(MiB)); // 2 MiB + JSON, a valid visit apart from its size
    const input = bytesOf(`${L1}\n${long}\n${L2}\n`);

    for (const pieces of [[input], chunksOf(input, 64 * 1024), chunksOf(input, 1000)]) {
      const { visits, rejected } = await collect(streamOf(...pieces), { sourceObject: 'v.jsonl' });

      assert.deepEqual(brief(visits), [
        ['1', T1, 'page_1.html', 1],
        ['2', T2, 'page_2.html', 3],
      ]);
      const r = onlyRejected(rejected);
      assert.equal(r.line, 2);
      assert.match(r.reason, /longer than/);
      assert.ok(Buffer.byteLength(r.raw) <= 4096);
      assert.ok(long.startsWith(r.raw), 'raw is the start of the line');
      assert.ok(!r.raw.includes('\uFFFD'), 'raw is not cut inside a character');
      assert.ok(Buffer.byteLength(r.raw) >= 4095, 'raw keeps as much of the line as fits in 4 KiB');
    }
  });

  it('accepts a line of exactly 1 MiB', async () => {
    // the bulk is an extra field (ignored): a page that long would be rejected on its own (page > 16 KiB)
    const head = json('1', ISO1, 'p', { extra: '' });
    const line = json('1', ISO1, 'p', { extra: 'x'.repeat(MiB - Buffer.byteLength(head)) });
    assert.equal(Buffer.byteLength(line), MiB);

    const { visits, rejected } = await collect(
      streamOf(...chunksOf(bytesOf(`${line}\n${L2}\n`), 64 * 1024)),
      {
        sourceObject: 'v.jsonl',
      },
    );

    assert.deepEqual(rejected, []);
    assert.equal(visits.length, 2);
    assert.equal(visits[0]!.page, 'p');
  });

  it('accepts a CRLF line of exactly the limit wherever the chunks are cut', async () => {
    const max = Buffer.byteLength(L1);
    const input = bytesOf(`${L1}\r\n${L2}\r\n`);

    for (let cut = 0; cut <= input.length; cut++) {
      const { visits, rejected } = await collect(streamOf(...splitAt(input, [cut])), {
        sourceObject: 'v.jsonl',
        maxLineBytes: Math.max(max, Buffer.byteLength(L2)),
      });

      assert.deepEqual(rejected, [], `cut at ${cut}`);
      assert.equal(visits.length, 2, `cut at ${cut}`);
    }
  });

  it('rejects a line one byte over the limit wherever the chunks are cut, LF or CRLF', async () => {
    const max = Buffer.byteLength(L1) - 1;
    for (const eol of ['\n', '\r\n']) {
      const input = bytesOf(`${L1}${eol}x${eol}`);
      for (let cut = 0; cut <= input.length; cut++) {
        const { visits, rejected } = await collect(streamOf(...splitAt(input, [cut])), {
          sourceObject: 'v.jsonl',
          maxLineBytes: max,
        });

        assert.deepEqual(visits, []);
        assert.deepEqual(
          rejected.map((r) => [r.line, /longer than/.test(r.reason)]),
          [
            [1, true],
            [2, false],
          ],
          `eol ${JSON.stringify(eol)}, cut at ${cut}`,
        );
      }
    }
  });

  it('reads a 50 MB line in 64 KiB chunks with bounded memory and one rejected record', async () => {
    const chunk = 64 * 1024;
    const lineBytes = 50 * 1000 * 1000;
    const baseline = retainedBytes();
    let peak = 0;
    async function* source(): AsyncGenerator<Uint8Array> {
      yield bytesOf(`${L1}\n{"user_id":"1","page":"`);
      let sent = 0;
      for (let i = 0; sent < lineBytes; i++) {
        const n = Math.min(chunk, lineBytes - sent);
        yield Buffer.alloc(n, 0x61);
        sent += n;
        if (i % 50 === 0) peak = Math.max(peak, retainedBytes() - baseline);
      }
      yield bytesOf(`"}\n${L2}\n`);
    }

    const { visits, rejected } = await collect(source(), { sourceObject: 'v.jsonl' });

    assert.deepEqual(
      visits.map((v) => v.line),
      [1, 3],
    );
    const r = onlyRejected(rejected);
    assert.equal(r.line, 2);
    assert.match(r.reason, /longer than/);
    assert.ok(Buffer.byteLength(r.raw) <= 4096);
    assert.ok(
      peak < 16 * 1000 * 1000,
      `retained memory grew by ${peak} bytes while reading a ${lineBytes}-byte line`,
    );
  });
});

describe('parseVisits: CSV', () => {
  const HEADER = 'user_id,visit_time,page';

  it('reads rows by the header, with physical line numbers (the header is line 1)', async () => {
    const { visits, rejected } = await parseParts(
      'v.csv',
      `${HEADER}\n1,${ISO1},page_1.html\n2,${ISO2},page_2.html\n`,
    );

    assert.deepEqual(rejected, []);
    assert.deepEqual(brief(visits), [
      ['1', T1, 'page_1.html', 2],
      ['2', T2, 'page_2.html', 3],
    ]);
  });

  it('finds the columns by name in any order and ignores extra columns', async () => {
    const { visits } = await parseParts(
      'v.csv',
      `page,referrer,VISIT_TIME,user_id\npage_1.html,x,${ISO1},7\n`,
    );

    assert.deepEqual(brief(visits), [['7', T1, 'page_1.html', 2]]);
  });

  it('reads quoted fields with embedded commas and doubled quotes', async () => {
    const { visits, rejected } = await parseParts(
      'v.csv',
      `${HEADER}\n"1","${ISO1}","a,b.html"\n2,${ISO2},"say ""hi"".html"\n`,
    );

    assert.deepEqual(rejected, []);
    assert.deepEqual(brief(visits), [
      ['1', T1, 'a,b.html', 2],
      ['2', T2, 'say "hi".html', 3],
    ]);
  });

  it('reads a newline inside quotes as part of the field; the record has the line it starts on', async () => {
    const { visits, rejected } = await parseParts(
      'v.csv',
      `${HEADER}\n1,${ISO1},"first\nsecond\n\nfifth"\n2,${ISO2},page_2.html\n`,
    );

    assert.deepEqual(rejected, []);
    assert.deepEqual(brief(visits), [
      ['1', T1, 'first\nsecond\n\nfifth', 2],
      ['2', T2, 'page_2.html', 6],
    ]);
  });

  it('reads CRLF rows and a BOM before the header', async () => {
    const { visits, rejected } = await parseParts(
      'v.csv',
      `\uFEFF${HEADER}\r\n1,${ISO1},page_1.html\r\n2,${ISO2},"page,2"\r\n`,
    );

    assert.deepEqual(rejected, []);
    assert.deepEqual(brief(visits), [
      ['1', T1, 'page_1.html', 2],
      ['2', T2, 'page,2', 3],
    ]);
  });

  it('skips blank lines and reads a last row without newline', async () => {
    const { visits } = await parseParts('v.csv', `\n${HEADER}\n\n1,${ISO1},a\n   \n2,${ISO2},b`);

    assert.deepEqual(
      visits.map((v) => v.line),
      [4, 6],
    );
  });

  it('rejects rows with missing or invalid fields, naming the field, and goes on', async () => {
    const { visits, rejected } = await parseParts(
      'v.csv',
      `${HEADER}\n,${ISO1},a\n1,yesterday,a\n1,${ISO1},\n1,${ISO1}\n3,${ISO3},ok\n`,
    );

    assert.deepEqual(brief(visits), [['3', T3, 'ok', 6]]);
    assert.deepEqual(
      rejected.map((r) => r.line),
      [2, 3, 4, 5],
    );
    assert.match(rejected[0]!.reason, /user_id/);
    assert.match(rejected[1]!.reason, /visit_time/);
    assert.match(rejected[2]!.reason, /page/);
    assert.match(rejected[3]!.reason, /page/);
    assert.equal(rejected[1]!.raw, '1,yesterday,a');
  });

  it('rejects every row when the header lacks a column, naming the column', async () => {
    const { visits, rejected } = await parseParts('v.csv', `user_id,visit_time\n1,${ISO1}\n2,${ISO2}\n`);

    assert.deepEqual(visits, []);
    assert.equal(rejected.length, 2);
    for (const r of rejected) assert.match(r.reason, /page/);
  });

  it('rejects a record whose quote never closes, at the line it starts on', async () => {
    const { visits, rejected } = await parseParts('v.csv', `${HEADER}\n1,${ISO1},a\n2,${ISO2},"open\nmore\n`);

    assert.deepEqual(
      visits.map((v) => v.line),
      [2],
    );
    assert.equal(onlyRejected(rejected).line, 3);
  });
});

describe('parseVisits: gzip', () => {
  const plain = `${L1}\n${L2}\n`;

  it('decompresses by the .gz extension', async () => {
    const { visits, rejected } = await parseParts('s3://in/v.jsonl.gz', gzipSync(plain));

    assert.deepEqual(rejected, []);
    assert.deepEqual(
      visits.map((v) => v.line),
      [1, 2],
    );
  });

  it('decompresses by the gzip magic bytes when the name does not say', async () => {
    const { visits, rejected } = await parseParts('s3://in/v.jsonl', gzipSync(plain));

    assert.deepEqual(rejected, []);
    assert.equal(visits.length, 2);
  });

  it('decompresses gzip CSV', async () => {
    const { visits } = await parseParts('v.csv.gz', gzipSync(`user_id,visit_time,page\n1,${ISO1},"a,b"\n`));

    assert.deepEqual(brief(visits), [['1', T1, 'a,b', 2]]);
  });

  it('detects gzip by magic bytes even when the first chunk holds only one byte', async () => {
    const zipped = gzipSync(plain);

    const { visits, rejected } = await parseParts('v.jsonl', zipped.subarray(0, 1), zipped.subarray(1));

    assert.deepEqual(rejected, []);
    assert.equal(visits.length, 2);
  });

  it('detects gzip when empty chunks come first', async () => {
    const { visits } = await parseParts('v', new Uint8Array(0), new Uint8Array(0), gzipSync(plain));

    assert.equal(visits.length, 2);
  });

  it('gives one rejected record with line null for a .gz object that is not gzip', async () => {
    const { visits, rejected } = await parseParts('s3://in/v.jsonl.gz', plain);

    assert.deepEqual(visits, []);
    const r = onlyRejected(rejected);
    assert.equal(r.line, null);
    assert.equal(r.sourceObject, 's3://in/v.jsonl.gz');
    assert.match(r.reason, /gzip/);
  });

  it('gives one rejected record with line null for truncated gzip data', async () => {
    const zipped = gzipSync(plain);

    const { rejected } = await parseParts('v.jsonl.gz', zipped.subarray(0, zipped.length - 12));

    const nullLine = rejected.filter((r) => r.line === null);
    assert.equal(nullLine.length, 1);
    assert.match(nullLine[0]!.reason, /gzip/);
  });

  it('gives one rejected record with line null for corrupted gzip data', async () => {
    const zipped = Buffer.from(gzipSync(plain.repeat(50)));
    for (let i = 20; i < zipped.length - 8; i++) zipped[i] = zipped[i]! ^ 0x5a;

    const { rejected } = await parseParts('v.jsonl.gz', zipped);

    assert.equal(rejected.filter((r) => r.line === null).length, 1);
  });

  it('throws SourceReadError when the byte source fails, plain or gzip', async () => {
    for (const [name, first] of [
      ['v.jsonl', bytesOf(`${L1}\n`)],
      ['v.jsonl.gz', gzipSync(plain.repeat(100)).subarray(0, 30)],
    ] as const) {
      async function* failing(): AsyncGenerator<Uint8Array> {
        yield first;
        throw new Error('connection reset');
      }
      await assert.rejects(collect(failing(), { sourceObject: name }), (error: unknown) => {
        assert.ok(error instanceof SourceReadError, `${name}: got ${String(error)}`);
        assert.match(error.message, /connection reset/);
        return true;
      });
    }
  });
});

describe('parseVisits: format', () => {
  it('reads .ndjson and .json names as JSON Lines', async () => {
    for (const name of ['v.ndjson', 'v.json', 'V.JSONL']) {
      const { visits } = await parseParts(name, `${L1}\n`);
      assert.equal(visits.length, 1, name);
    }
  });

  it('sniffs JSON Lines when a name without a known extension starts with {', async () => {
    const { visits, rejected } = await parseParts('s3://in/part-0001', `\n  ${L1}\n${L2}\n`);

    assert.deepEqual(rejected, []);
    assert.deepEqual(
      visits.map((v) => v.line),
      [2, 3],
    );
  });

  it('sniffs CSV when a name without a known extension does not start with {', async () => {
    const { visits, rejected } = await parseParts(
      's3://in/visits.txt',
      `user_id,visit_time,page\n1,${ISO1},a\n`,
    );

    assert.deepEqual(rejected, []);
    assert.deepEqual(brief(visits), [['1', T1, 'a', 2]]);
  });

  it('lets an explicit format win over the name', async () => {
    const { visits } = await collect(streamOf(`user_id,visit_time,page\n1,${ISO1},a\n`), {
      sourceObject: 'v.jsonl',
      format: 'csv',
    });

    assert.equal(visits.length, 1);
  });
});

// ---- Chunk boundaries and conservation (properties) ----

interface LineSpec {
  /** Bytes of the line, without its ending. */
  readonly bytes: Buffer;
  readonly kind: 'visit' | 'rejected' | 'blank';
  /** For visits: what the parser must read. */
  readonly expected?: { userId: string; t: number; page: string };
}

const pageChars = fc.constantFrom('a', 'b', 'Z', '9', '/', '.', ' ', 'é', '€', '😀', '"', '\\', ',', '{');
// a page of only spaces is rejected ("blank page"), so generated visits have at least one other character
const pageArb = fc
  .string({ unit: pageChars, minLength: 1, maxLength: 12 })
  .filter((p) => p.trim().length > 0);
const timeArb = fc.integer({ min: Date.UTC(2020, 0, 1), max: Date.UTC(2030, 0, 1) });

const jsonLineArb: fc.Arbitrary<LineSpec> = fc.oneof(
  fc
    .record({
      user: fc.oneof(fc.nat({ max: 10_000 }), fc.string({ unit: pageChars, minLength: 1, maxLength: 5 })),
      t: timeArb,
      page: pageArb,
      epoch: fc.boolean(),
    })
    .filter(({ user }) => typeof user === 'number' || user.trim().length > 0)
    .map(({ user, t, page, epoch }) => ({
      bytes: bytesOf(json(user, epoch ? t : new Date(t).toISOString(), page)),
      kind: 'visit' as const,
      expected: { userId: String(user), t, page },
    })),
  fc
    .string({ unit: pageChars, maxLength: 20 })
    .map((s) => ({ bytes: bytesOf(`not json ${s}`), kind: 'rejected' as const })),
  timeArb.map((t) => ({
    bytes: bytesOf(JSON.stringify({ user_id: 'u', visit_time: new Date(t).toISOString() })),
    kind: 'rejected' as const,
  })),
  fc.constant({
    bytes: Buffer.from([0x7b, 0x22, 0xe2, 0x82, 0x22, 0x7d]), // {"<truncated €>"}
    kind: 'rejected' as const,
  }),
  fc.constantFrom('', ' ', '\t', '  \t ').map((s) => ({ bytes: bytesOf(s), kind: 'blank' as const })),
);

interface Document {
  readonly bytes: Buffer;
  readonly lines: readonly LineSpec[];
}

function documentArb(lineArb: fc.Arbitrary<LineSpec>, header?: string): fc.Arbitrary<Document> {
  return fc
    .record({
      lines: fc.array(lineArb, { minLength: 0, maxLength: 25 }),
      endings: fc.array(fc.constantFrom('\n', '\r\n'), { minLength: 26, maxLength: 26 }),
      lastNewline: fc.boolean(),
      bom: fc.boolean(),
    })
    .map(({ lines, endings, lastNewline, bom }) => {
      const all: LineSpec[] =
        header === undefined ? lines : [{ bytes: bytesOf(header), kind: 'blank' }, ...lines];
      const parts: Buffer[] = bom ? [Buffer.from([0xef, 0xbb, 0xbf])] : [];
      all.forEach((line, i) => {
        parts.push(line.bytes);
        if (i < all.length - 1 || lastNewline) parts.push(bytesOf(endings[i] ?? '\n'));
      });
      return { bytes: Buffer.concat(parts), lines: all };
    });
}

/** Cut points (may repeat, may produce 1-byte chunks) anywhere in a document. */
const cutsArb = fc.array(fc.nat({ max: 1_000_000 }), { maxLength: 30 });

async function parseSplit(
  bytes: Buffer,
  cuts: readonly number[],
  sourceObject: string,
  emptyChunks = false,
  gzip?: boolean,
) {
  const scaled = cuts.map((c) => (bytes.length === 0 ? 0 : c % (bytes.length + 1)));
  const pieces: Part[] = splitAt(bytes, scaled);
  if (emptyChunks) for (let i = pieces.length; i >= 0; i -= 2) pieces.splice(i, 0, new Uint8Array(0));
  const result = await collect(
    streamOf(...pieces),
    gzip === undefined ? { sourceObject } : { sourceObject, gzip },
  );
  return { visits: result.visits, rejected: result.rejected };
}

/** What the parser must produce for a document, derived from how it was built. */
function expectedOf(doc: Document): { visits: [string, number, string, number][]; rejectedLines: number[] } {
  const visits: [string, number, string, number][] = [];
  const rejectedLines: number[] = [];
  doc.lines.forEach((line, i) => {
    if (line.kind === 'visit')
      visits.push([line.expected!.userId, line.expected!.t, line.expected!.page, i + 1]);
    else if (line.kind === 'rejected') rejectedLines.push(i + 1);
  });
  return { visits, rejectedLines };
}

describe('parseVisits: chunk boundaries and conservation (properties)', () => {
  it('JSON Lines: every non-blank line is exactly one visit or one rejected record, at its physical line', async () => {
    await fc.assert(
      fc.asyncProperty(documentArb(jsonLineArb), cutsArb, async (doc, cuts) => {
        const { visits, rejected } = await parseSplit(doc.bytes, cuts, 'v.jsonl');
        const expected = expectedOf(doc);

        assert.deepEqual(brief(visits), expected.visits);
        assert.deepEqual(
          rejected.map((r) => r.line),
          expected.rejectedLines,
        );
      }),
      { numRuns: 300 },
    );
  });

  it('JSON Lines: splitting the same bytes at random points gives identical results', async () => {
    await fc.assert(
      fc.asyncProperty(documentArb(jsonLineArb), cutsArb, fc.boolean(), async (doc, cuts, empties) => {
        const whole = await parseSplit(doc.bytes, [], 'v.jsonl');
        const split = await parseSplit(doc.bytes, cuts, 'v.jsonl', empties);

        assert.deepEqual(split, whole);
      }),
      { numRuns: 300 },
    );
  });

  it('documents parsed one after another with shared strings read as each does alone, even when every slot collides', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(documentArb(jsonLineArb), { minLength: 2, maxLength: 4 }), async (docs) => {
        const shared = new RecentStrings(1);
        for (const doc of docs) {
          const alone = await collect(streamOf(doc.bytes), { sourceObject: 'v.jsonl' });
          const sharing = await collect(streamOf(doc.bytes), { sourceObject: 'v.jsonl', strings: shared });

          assert.deepEqual(sharing.visits, alone.visits);
          assert.deepEqual(sharing.rejected, alone.rejected);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('gzip: splitting the compressed bytes at random points gives the same results as the plain text', async () => {
    await fc.assert(
      fc.asyncProperty(documentArb(jsonLineArb), cutsArb, fc.boolean(), async (doc, cuts, byName) => {
        const name = byName ? 'v.jsonl.gz' : 'v.jsonl';
        const plain = await parseSplit(doc.bytes, [], name, false, false);
        const zipped = await parseSplit(gzipSync(doc.bytes), [1, ...cuts], name);

        assert.deepEqual(zipped, plain);
      }),
      { numRuns: 150 },
    );
  });

  const csvCell = (text: string): string => (/[",\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text);
  const csvPageArb = fc
    .string({
      unit: fc.constantFrom('a', 'é', ',', '"', '\n', ' ', '€', 'x'),
      minLength: 1,
      maxLength: 8,
    })
    .filter((p) => p.trim().length > 0); // a blank page is rejected
  const csvLineArb: fc.Arbitrary<LineSpec> = fc.oneof(
    fc
      .record({ user: fc.nat({ max: 999 }), t: timeArb, page: csvPageArb, quoteAll: fc.boolean() })
      .map(({ user, t, page, quoteAll }) => {
        const cells = [String(user), new Date(t).toISOString(), page];
        const text = cells.map((c) => (quoteAll ? `"${c.replaceAll('"', '""')}"` : csvCell(c))).join(',');
        return { bytes: bytesOf(text), kind: 'visit' as const, expected: { userId: String(user), t, page } };
      }),
    fc.record({ user: fc.nat({ max: 999 }), page: csvPageArb }).map(({ user, page }) => ({
      bytes: bytesOf(`${user},not-a-time,${csvCell(page)}`),
      kind: 'rejected' as const,
    })),
    fc.constantFrom('', ' ').map((s) => ({ bytes: bytesOf(s), kind: 'blank' as const })),
  );

  /** Physical line numbers of CSV records: a quoted newline moves the next record down. */
  function expectedCsv(doc: Document): {
    visits: [string, number, string, number][];
    rejectedLines: number[];
  } {
    const visits: [string, number, string, number][] = [];
    const rejectedLines: number[] = [];
    let physical = 1;
    for (const line of doc.lines) {
      if (line.kind === 'visit')
        visits.push([line.expected!.userId, line.expected!.t, line.expected!.page, physical]);
      else if (line.kind === 'rejected') rejectedLines.push(physical);
      physical += 1 + line.bytes.toString('utf8').split('\n').length - 1;
    }
    return { visits, rejectedLines };
  }

  it('CSV: quoted fields across random chunk boundaries give the expected visits at their physical lines', async () => {
    await fc.assert(
      fc.asyncProperty(documentArb(csvLineArb, 'user_id,visit_time,page'), cutsArb, async (doc, cuts) => {
        const expected = expectedCsv(doc);
        const whole = await parseSplit(doc.bytes, [], 'v.csv');
        const split = await parseSplit(doc.bytes, cuts, 'v.csv');

        assert.deepEqual(brief(split.visits), expected.visits);
        assert.deepEqual(
          split.rejected.map((r) => r.line),
          expected.rejectedLines,
        );
        assert.deepEqual(split, whole);
      }),
      { numRuns: 300 },
    );
  });
});

describe('parseVisits: review fixes', () => {
  it('rejects a user_id over 512 bytes and a page over 16 KiB (they would not fit the state keys and items)', async () => {
    const text = `${json('u'.repeat(513), ISO1, 'p')}\n${json('1', ISO1, 'p'.repeat(16 * 1024 + 1))}\n${L2}\n`;

    const { visits, rejected } = await parseParts('in.jsonl', text);

    assert.deepEqual(
      rejected.map((r) => [r.line, r.reason]),
      [
        [1, 'user_id longer than 512 bytes'],
        [2, 'page longer than 16384 bytes'],
      ],
    );
    assert.deepEqual(brief(visits), [['2', T2, 'page_2.html', 3]]);
  });

  it('rejects only the one CSV record whose unquoted field holds a stray quote; later lines are still read', async () => {
    const csv = `user_id,visit_time,page\n1,${ISO1},pa"ge\n2,${ISO2},page_2.html\n3,${ISO3},page_3.html\n`;

    const { visits, rejected } = await parseParts('in.csv', csv);

    assert.equal(onlyRejected(rejected).line, 2);
    assert.match(onlyRejected(rejected).reason, /CSV/);
    assert.deepEqual(brief(visits), [
      ['2', T2, 'page_2.html', 3],
      ['3', T3, 'page_3.html', 4],
    ]);
  });

  it('writes a numeric user_id as its decimal digits, up to the largest safe integer', async () => {
    const { visits } = await parseParts(
      'in.jsonl',
      [json(9007199254740991, ISO1, 'p'), json(-9007199254740991, ISO1, 'p'), json(0, ISO1, 'p')].join('\n'),
    );

    assert.deepEqual(
      visits.map((v) => v.userId),
      ['9007199254740991', '-9007199254740991', '0'],
    );
  });

  it('rejects numeric user ids beyond 2^53 (they would round into one another), fractions and 1e21', async () => {
    const lines = [
      '{"user_id":12345678901234567891,"visit_time":"2026-02-15T17:05:34.432Z","page":"a"}',
      '{"user_id":12345678901234567892,"visit_time":"2026-02-15T17:05:34.432Z","page":"a"}',
      '{"user_id":9007199254740992,"visit_time":"2026-02-15T17:05:34.432Z","page":"a"}',
      '{"user_id":1.5,"visit_time":"2026-02-15T17:05:34.432Z","page":"a"}',
      '{"user_id":1e21,"visit_time":"2026-02-15T17:05:34.432Z","page":"a"}',
      '{"user_id":"12345678901234567891","visit_time":"2026-02-15T17:05:34.432Z","page":"a"}',
    ];

    const { visits, rejected } = await parseParts('in.jsonl', `${lines.join('\n')}\n`);

    assert.deepEqual(
      visits.map((v) => v.userId),
      ['12345678901234567891'],
      'a string id is taken as it is',
    );
    assert.deepEqual(
      rejected.map((r) => r.line),
      [1, 2, 3, 4, 5],
    );
    for (const r of rejected)
      assert.match(r.reason, /numeric user_id must be an integer from -\(2\^53-1\) to 2\^53-1/);
  });

  it('rejects a visit_time outside the range given, with the bound and what it is, on the fast and general paths', async () => {
    const latest = Date.parse('2026-02-15T18:00:00.000Z');
    const range = {
      earliest: 0,
      latest,
      latestIs: 'the processing clock plus 1h',
      earliestIs: 'the Unix epoch',
    };
    const body = [
      json('u', '2026-02-15T18:00:00.000Z', 'edge'), // exactly the latest: accepted
      json('u', '2026-02-15T18:00:00.001Z', 'ahead'),
      json('u', '2099-01-01T00:00:00Z', 'far'),
      json('u', '1969-12-31T23:59:59.999Z', 'before'),
    ].join('\n');
    for (const fastPath of [true, false]) {
      const { visits, rejected } = await collect(streamOf(body), {
        sourceObject: 'in.jsonl',
        visitTimes: range,
        fastPath,
      });

      assert.deepEqual(
        visits.map((v) => v.page),
        ['edge'],
      );
      assert.deepEqual(
        rejected.map((r) => [r.line, r.reason]),
        [
          [
            2,
            'visit_time 2026-02-15T18:00:00.001Z is after 2026-02-15T18:00:00.000Z, the processing clock plus 1h',
          ],
          [
            3,
            'visit_time 2099-01-01T00:00:00.000Z is after 2026-02-15T18:00:00.000Z, the processing clock plus 1h',
          ],
          [4, 'visit_time 1969-12-31T23:59:59.999Z is before 1970-01-01T00:00:00.000Z, the Unix epoch'],
        ],
      );
    }
  });

  it('rejects a page of only spaces as blank, like a blank user_id', async () => {
    const { visits, rejected } = await parseParts('in.jsonl', json('1', ISO1, '   '));

    assert.deepEqual(visits, []);
    assert.match(onlyRejected(rejected).reason, /blank page/);
  });
});

describe('parseVisits: the byte-level fast path agrees with the general path (property)', () => {
  // pieces that sit just next to what the fast path takes: near-miss names, times of 24 characters that are not
  // valid, escapes, non-ASCII, numbers, duplicate fields, nesting, truncation
  const nameArb = fc.constantFrom(
    'user_id',
    'visit_time',
    'page',
    'user_idx',
    'user_i',
    'visit_tim',
    'visit_times',
    'pag',
    'pages',
    'u',
    'v',
    'p',
    'other',
    'user\\u005fid',
    'vísit',
  );
  const timeTextArb = fc.oneof(
    timeArb.map((t) => new Date(t).toISOString()),
    fc.constantFrom(
      '2026-02-30T10:00:00.000Z',
      '2026-02-15T24:00:00.000Z',
      '2026-02-15T17:05:34.432+',
      '2026-02-15 17:05:34.432Z',
      '2026-02-15T17:05:34.4320',
      '2026-02-15T17:05:34.432z',
      '2026-02-15T17:05:34.43Z ',
      ' 026-02-15T17:05:34.432Z',
      '2026-02-15T17:05:34\\u002e432Z',
      '2026-02-15T17:05:34.432Z"',
      '2026-02-15T17:05:34.432+01:00',
      '1771175134432',
    ),
  );
  const valueArb = fc.oneof(
    timeTextArb.map((t) => `"${t}"`),
    fc.string({ unit: pageChars, maxLength: 8 }).map((s) => JSON.stringify(s)),
    fc.constantFrom('"é"', '"a\\"b"', '"\\n"', '"  "', '""', '"\u0001"'),
    fc.oneof(fc.nat(), fc.integer({ min: -1000, max: 1000 })).map(String),
    fc.constantFrom('1.5', '1e3', '-0', '01', 'true', 'false', 'null', '[]', '{}', '{"a":1}', '"x'),
    timeArb.map(String),
  );
  const fieldArb = fc
    .tuple(nameArb, valueArb, fc.constantFrom('', ' '))
    .map(([n, v, sp]) => `"${n}"${sp}:${sp}${v}`);
  const lineArb = fc.oneof(
    fc.array(fieldArb, { maxLength: 5 }).map((fields) => `{${fields.join(',')}}`),
    fc.tuple(fc.array(fieldArb, { minLength: 1, maxLength: 5 }), fc.nat()).map(([fields, cut]) => {
      const text = `{${fields.join(',')}}`;
      return text.slice(0, cut % (text.length + 1));
    }),
  );

  it('gives the same visits and rejected records with and without it', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(lineArb, { minLength: 1, maxLength: 20 }),
        fc.option(timeArb),
        async (lines, bound) => {
          const bytes = Buffer.from(`${lines.join('\n')}\n`);
          // with a range, some valid times are outside it: both paths must reject them alike
          const visitTimes =
            bound === null
              ? undefined
              : { earliest: bound - 60_000, latest: bound, latestIs: 'l', earliestIs: 'e' };
          const options = { sourceObject: 'v.jsonl', ...(visitTimes ? { visitTimes } : {}) };

          const fast = await collect(streamOf(bytes), options);
          const general = await collect(streamOf(bytes), { ...options, fastPath: false });

          assert.deepEqual(fast.visits, general.visits);
          assert.deepEqual(fast.rejected, general.rejected);
        },
      ),
      { numRuns: 2000 },
    );
  });
});
