import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  glueColumns,
  LATE_VISITS,
  latePartition,
  PARTITION_COLUMN,
  partition,
  REJECTED,
  SESSIONS,
  sessionId,
  sessionPartition,
  toJsonLine,
  toRecord,
} from '../../lambdas/core/schema.ts';
import type { ClosedSession, LateVisit, Rejected } from '../../lambdas/core/types.ts';

const at = (d: number, h: number, m: number, s: number, ms: number): number =>
  Date.UTC(2026, 1, d, h, m, s, ms);

/** User 1 of the seed walkthrough: the example of docs/design.md, section 3. */
const SESSION: ClosedSession = {
  userId: '1',
  start: at(15, 17, 5, 34, 432),
  end: at(15, 17, 6, 47, 100),
  visits: [
    { t: at(15, 17, 5, 34, 432), page: 'page_1.html' },
    { t: at(15, 17, 5, 34, 532), page: 'page_2.html' },
    { t: at(15, 17, 6, 46, 900), page: 'page_3.html' },
    { t: at(15, 17, 6, 47, 100), page: 'page_4.html' },
  ],
};

const LATE: LateVisit = {
  userId: '42',
  t: at(15, 16, 0, 0, 5),
  page: 'late.html',
  sourceObject: 's3://visits/2026/02/15/part-3.jsonl',
  sourceLine: 17,
  watermark: at(15, 16, 51, 47, 100),
};

const REJECT: Rejected = {
  sourceObject: 's3://visits/x.jsonl',
  line: 3,
  reason: 'invalid JSON',
  raw: '{oops',
};
const OBJECT_REJECT: Rejected = {
  sourceObject: 's3://visits/x.jsonl.gz',
  line: null,
  reason: 'cannot read object: invalid gzip data',
  raw: '',
};

describe('sessions output', () => {
  it('has exactly the keys of the design, in order', () => {
    assert.deepEqual(Object.keys(toRecord(SESSIONS, SESSION)), [
      'session_id',
      'user_id',
      'start_time',
      'end_time',
      'duration_ms',
      'visit_count',
      'visited_pages',
    ]);
  });

  it('writes the example line of the design: ISO UTC times, duration, count and visited pages', () => {
    const id = sessionId('1', SESSION.start);

    const line = toJsonLine(SESSIONS, SESSION);

    assert.equal(
      line,
      `{"session_id":"${id}","user_id":"1","start_time":"2026-02-15T17:05:34.432Z",` +
        `"end_time":"2026-02-15T17:06:47.100Z","duration_ms":72668,"visit_count":4,"visited_pages":[` +
        `{"page":"page_1.html","visit_time":"2026-02-15T17:05:34.432Z"},` +
        `{"page":"page_2.html","visit_time":"2026-02-15T17:05:34.532Z"},` +
        `{"page":"page_3.html","visit_time":"2026-02-15T17:06:46.900Z"},` +
        `{"page":"page_4.html","visit_time":"2026-02-15T17:06:47.100Z"}]}\n`,
    );
  });

  it('writes one line that parses back to the record', () => {
    const line = toJsonLine(SESSIONS, SESSION);

    assert.ok(line.endsWith('\n'));
    assert.equal(line.indexOf('\n'), line.length - 1);
    assert.deepEqual(JSON.parse(line), toRecord(SESSIONS, SESSION));
  });

  it('writes a single-visit session with duration 0', () => {
    const single: ClosedSession = { userId: 'u', start: 0, end: 0, visits: [{ t: 0, page: 'p' }] };

    const record = JSON.parse(toJsonLine(SESSIONS, single));

    assert.equal(record.start_time, '1970-01-01T00:00:00.000Z');
    assert.equal(record.duration_ms, 0);
    assert.equal(record.visit_count, 1);
  });

  it('escapes quotes, backslashes, control characters and lone surrogates like JSON.stringify', () => {
    const tricky: ClosedSession = {
      userId: 'a"b\\c\u0000\n',
      start: SESSION.start,
      end: SESSION.start,
      visits: [{ t: SESSION.start, page: '\u2028"\ud800x\udfff😀\t' }],
    };

    const line = toJsonLine(SESSIONS, tricky);

    assert.equal(line, `${JSON.stringify(toRecord(SESSIONS, tricky))}\n`);
    assert.equal(line.indexOf('\n'), line.length - 1);
    const back = JSON.parse(line);
    assert.equal(back.user_id, tricky.userId);
    assert.equal(back.visited_pages[0].page, tricky.visits[0]!.page);
  });

  it('writes any session as JSON.stringify would, with the values built independently', () => {
    const text = fc.string({
      unit: fc.oneof(
        fc.constantFrom('"', '\\', '\n', '\u0000', '\u001f', '\u2028', '\ud800', '\udc00', '/', 'a'),
        fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
      ),
      maxLength: 12,
    });
    const sessionArb = fc
      .record({
        userId: text,
        times: fc.array(fc.integer({ min: 0, max: Date.UTC(2100, 0, 1) }), { minLength: 1, maxLength: 5 }),
        pages: fc.array(text, { minLength: 5, maxLength: 5 }),
      })
      .map(({ userId, times, pages }) => {
        const sorted = [...times].sort((a, b) => a - b);
        return {
          userId,
          start: sorted[0]!,
          end: sorted[sorted.length - 1]!,
          visits: sorted.map((t, i) => ({ t, page: pages[i]! })),
        };
      });
    fc.assert(
      fc.property(sessionArb, (s) => {
        const line = toJsonLine(SESSIONS, s);

        assert.equal(line, `${JSON.stringify(toRecord(SESSIONS, s))}\n`);
        assert.deepEqual(JSON.parse(line), {
          session_id: sessionId(s.userId, s.start),
          user_id: s.userId,
          start_time: new Date(s.start).toISOString(),
          end_time: new Date(s.end).toISOString(),
          duration_ms: s.end - s.start,
          visit_count: s.visits.length,
          visited_pages: s.visits.map((v) => ({ page: v.page, visit_time: new Date(v.t).toISOString() })),
        });
      }),
      { numRuns: 500 },
    );
  });
});

describe('session_id', () => {
  it('is the same for the same user and start, whatever the rest of the session', () => {
    const grown: ClosedSession = { ...SESSION, end: SESSION.end + 1000, visits: [...SESSION.visits] };

    assert.equal(toRecord(SESSIONS, grown).session_id, toRecord(SESSIONS, SESSION).session_id);
    assert.equal(sessionId('1', SESSION.start), sessionId('1', SESSION.start));
  });

  it('differs for a different start or a different user', () => {
    const base = sessionId('1', SESSION.start);

    assert.notEqual(sessionId('1', SESSION.start + 1), base);
    assert.notEqual(sessionId('2', SESSION.start), base);
  });

  it('does not confuse a user id ending in digits with the start time', () => {
    assert.notEqual(sessionId('1', 23), sessionId('12', 3));
  });

  it('gives distinct ids to distinct (user, start) pairs', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.tuple(fc.string({ maxLength: 4 }), fc.integer({ min: 0, max: 1e13 })), {
          selector: ([u, t]) => `${JSON.stringify(u)}|${t}`,
          maxLength: 30,
        }),
        (pairs) => {
          const ids = new Set(pairs.map(([u, t]) => sessionId(u, t)));
          assert.equal(ids.size, pairs.length);
        },
      ),
    );
  });
});

describe('late-visits output', () => {
  it('has the keys of the design in order, ISO UTC times and a string user_id', () => {
    const line = toJsonLine(LATE_VISITS, LATE);

    assert.equal(
      line,
      '{"user_id":"42","visit_time":"2026-02-15T16:00:00.005Z","page":"late.html",' +
        '"source_object":"s3://visits/2026/02/15/part-3.jsonl","source_line":17,' +
        '"watermark":"2026-02-15T16:51:47.100Z"}\n',
    );
    assert.deepEqual(Object.keys(toRecord(LATE_VISITS, LATE)), [
      'user_id',
      'visit_time',
      'page',
      'source_object',
      'source_line',
      'watermark',
    ]);
  });
});

describe('rejected output', () => {
  it('has the keys of the design in order', () => {
    assert.equal(
      toJsonLine(REJECTED, REJECT),
      '{"source_object":"s3://visits/x.jsonl","source_line":3,"reason":"invalid JSON","raw":"{oops"}\n',
    );
  });

  it('writes source_line null (not left out) for a whole object', () => {
    const line = toJsonLine(REJECTED, OBJECT_REJECT);

    assert.deepEqual(Object.keys(JSON.parse(line)), ['source_object', 'source_line', 'reason', 'raw']);
    assert.equal(JSON.parse(line).source_line, null);
  });

  it('keeps a raw line with newlines and quotes on one output line', () => {
    const r: Rejected = { ...REJECT, raw: '1,"a\nb",c\r' };

    const line = toJsonLine(REJECTED, r);

    assert.equal(line.indexOf('\n'), line.length - 1);
    assert.equal(JSON.parse(line).raw, r.raw);
  });
});

describe('Glue columns', () => {
  it('gives the sessions table Hive types, with the nested visited_pages type', () => {
    assert.deepEqual(
      glueColumns(SESSIONS).map((c) => [c.name, c.type]),
      [
        ['session_id', 'string'],
        ['user_id', 'string'],
        ['start_time', 'timestamp'],
        ['end_time', 'timestamp'],
        ['duration_ms', 'bigint'],
        ['visit_count', 'int'],
        ['visited_pages', 'array<struct<page:string,visit_time:timestamp>>'],
      ],
    );
  });

  it('gives the late-visits and rejected tables Hive types', () => {
    assert.deepEqual(
      glueColumns(LATE_VISITS).map((c) => [c.name, c.type]),
      [
        ['user_id', 'string'],
        ['visit_time', 'timestamp'],
        ['page', 'string'],
        ['source_object', 'string'],
        ['source_line', 'bigint'],
        ['watermark', 'timestamp'],
      ],
    );
    assert.deepEqual(
      glueColumns(REJECTED).map((c) => [c.name, c.type]),
      [
        ['source_object', 'string'],
        ['source_line', 'bigint'],
        ['reason', 'string'],
        ['raw', 'string'],
      ],
    );
  });

  it('names the same columns as the JSON keys written, without the partition column', () => {
    const cases: [string[], Record<string, unknown>][] = [
      [glueColumns(SESSIONS).map((c) => c.name), JSON.parse(toJsonLine(SESSIONS, SESSION))],
      [glueColumns(LATE_VISITS).map((c) => c.name), JSON.parse(toJsonLine(LATE_VISITS, LATE))],
      [glueColumns(REJECTED).map((c) => c.name), JSON.parse(toJsonLine(REJECTED, REJECT))],
    ];
    for (const [names, record] of cases) {
      assert.deepEqual(names, Object.keys(record));
      assert.ok(!names.includes(PARTITION_COLUMN));
    }
    assert.equal(PARTITION_COLUMN, 'dt');
  });

  it('documents every column', () => {
    for (const c of [...glueColumns(SESSIONS), ...glueColumns(LATE_VISITS), ...glueColumns(REJECTED)]) {
      assert.ok(c.comment.length > 0, c.name);
    }
  });

  it('uses the prefixes of the design', () => {
    assert.deepEqual(
      [SESSIONS.prefix, LATE_VISITS.prefix, REJECTED.prefix],
      ['sessions/', 'late-visits/', 'rejected/'],
    );
  });
});

describe('partitions', () => {
  it('puts a session under the UTC date of its start, even when it ends the next day', () => {
    const overMidnight: ClosedSession = {
      userId: 'u',
      start: at(15, 23, 50, 0, 0),
      end: at(16, 0, 20, 0, 0),
      visits: [
        { t: at(15, 23, 50, 0, 0), page: 'a' },
        { t: at(16, 0, 20, 0, 0), page: 'b' },
      ],
    };

    assert.equal(sessionPartition(overMidnight), '2026-02-15');
  });

  it('uses the UTC date at the last and first millisecond of a day', () => {
    const s = (start: number): ClosedSession => ({
      userId: 'u',
      start,
      end: start,
      visits: [{ t: start, page: 'a' }],
    });

    assert.equal(sessionPartition(s(at(16, 0, 0, 0, 0) - 1)), '2026-02-15');
    assert.equal(sessionPartition(s(at(16, 0, 0, 0, 0))), '2026-02-16');
  });

  it('puts a late visit under the UTC date of its visit time, not of the watermark', () => {
    const v: LateVisit = { ...LATE, t: at(14, 23, 59, 59, 999), watermark: at(15, 0, 30, 0, 0) };

    assert.equal(latePartition(v), '2026-02-14');
  });

  it('groups records by partition, keeping their order', () => {
    const a = { ...LATE, page: 'a', t: at(15, 1, 0, 0, 0) };
    const b = { ...LATE, page: 'b', t: at(16, 1, 0, 0, 0) };
    const c = { ...LATE, page: 'c', t: at(15, 2, 0, 0, 0) };

    const groups = partition([a, b, c], latePartition);

    assert.deepEqual(
      [...groups].map(([dt, records]) => [dt, records.map((r) => r.page)]),
      [
        ['2026-02-15', ['a', 'c']],
        ['2026-02-16', ['b']],
      ],
    );
  });
});
