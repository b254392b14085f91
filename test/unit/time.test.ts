import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { formatIso, parseIsoTime, parseVisitTime, utcDate } from '../../lambdas/core/time.ts';

/** Independent reference for expected values: the platform's own UTC calendar arithmetic. */
const utc = (y: number, mo: number, d: number, h = 0, mi = 0, s = 0, ms = 0): number =>
  Date.UTC(y, mo - 1, d, h, mi, s, ms);

const T = utc(2026, 2, 15, 17, 5, 34, 432);
const HOUR = 3_600_000;
const MINUTE = 60_000;
const YEAR_1970 = utc(1970, 1, 1);
const YEAR_2101 = utc(2101, 1, 1) - 1;

const pad = (n: number, width: number): string => String(n).padStart(width, '0');

describe('parseVisitTime: ISO-8601', () => {
  it('reads a T-separated time with Z', () => {
    assert.equal(parseVisitTime('2026-02-15T17:05:34.432Z'), T);
  });

  it('reads a space-separated time the same as a T-separated one', () => {
    assert.equal(parseVisitTime('2026-02-15 17:05:34.432Z'), T);
  });

  it('takes a time with no zone as UTC', () => {
    assert.equal(parseVisitTime('2026-02-15T17:05:34.432'), T);
    assert.equal(parseVisitTime('2026-02-15 17:05:34.432'), T);
  });

  it('subtracts a positive +HH:MM offset', () => {
    assert.equal(parseVisitTime('2026-02-15T18:05:34.432+01:00'), T);
  });

  it('adds a negative compact -HHMM offset', () => {
    // 11:35:34.432 at -05:30 is 17:05:34.432 UTC
    assert.equal(parseVisitTime('2026-02-15T11:35:34.432-0530'), T);
  });

  it('reads an hours-only +HH offset', () => {
    assert.equal(parseVisitTime('2026-02-15T18:05:34.432+01'), T);
  });

  it('moves to the previous UTC day when the offset crosses midnight', () => {
    assert.equal(parseVisitTime('2026-03-01T00:30:00+01:00'), utc(2026, 2, 28, 23, 30));
  });

  it('reads a time without seconds', () => {
    assert.equal(parseVisitTime('2026-02-15T17:05Z'), utc(2026, 2, 15, 17, 5));
  });

  it('reads 0 to 9 fractional digits, truncating (never rounding) to milliseconds', () => {
    const cases: [string, number][] = [
      ['2026-02-15T17:05:34Z', 0],
      ['2026-02-15T17:05:34.9Z', 900],
      ['2026-02-15T17:05:34.99Z', 990],
      ['2026-02-15T17:05:34.999Z', 999],
      ['2026-02-15T17:05:34.9999Z', 999],
      ['2026-02-15T17:05:34.99999Z', 999],
      ['2026-02-15T17:05:34.999999Z', 999],
      ['2026-02-15T17:05:34.9999999Z', 999],
      ['2026-02-15T17:05:34.99999999Z', 999],
      ['2026-02-15T17:05:34.999999999Z', 999],
      ['2026-02-15T17:05:34.0015Z', 1],
      ['2026-02-15T17:05:34.050Z', 50],
    ];
    for (const [text, ms] of cases) {
      assert.equal(parseVisitTime(text), utc(2026, 2, 15, 17, 5, 34, ms), text);
    }
  });

  it('truncates a 9-digit fraction with an offset', () => {
    assert.equal(parseVisitTime('2026-02-15 18:05:34.432999999+01:00'), T);
  });

  it('accepts Feb 29 in leap years (2024, 2000)', () => {
    assert.equal(parseVisitTime('2024-02-29T12:00:00Z'), utc(2024, 2, 29, 12));
    assert.equal(parseVisitTime('2000-02-29T12:00:00Z'), utc(2000, 2, 29, 12));
  });

  it('reads the last millisecond of a day and of a year', () => {
    assert.equal(parseVisitTime('2026-02-15T23:59:59.999Z'), utc(2026, 2, 16) - 1);
    assert.equal(parseVisitTime('2025-12-31T23:59:59.999Z'), utc(2026, 1, 1) - 1);
  });
});

describe('parseVisitTime: epoch milliseconds', () => {
  it('takes a number as epoch milliseconds', () => {
    assert.equal(parseVisitTime(1771175134432), T);
  });

  it('truncates the fraction of a number of milliseconds', () => {
    assert.equal(parseVisitTime(1771175134432.9), T);
    assert.equal(parseVisitTime(1771175134432.1), T);
  });

  it('takes a string of digits as epoch milliseconds', () => {
    assert.equal(parseVisitTime('1771175134432'), T);
    assert.equal(parseVisitTime('0'), 0);
  });
});

describe('parseVisitTime: invalid values give NaN', () => {
  const invalid: [string, unknown][] = [
    ['month 13', '2026-13-01T00:00:00Z'],
    ['month 00', '2026-00-10T00:00:00Z'],
    ['day 00', '2026-02-00T00:00:00Z'],
    ['day 32', '2026-01-32T00:00:00Z'],
    ['April 31', '2026-04-31T00:00:00Z'],
    ['Feb 30', '2024-02-30T00:00:00Z'],
    ['Feb 29 on a non-leap year', '2025-02-29T00:00:00Z'],
    ['Feb 29 on a century non-leap year', '1900-02-29T00:00:00Z'],
    ['hour 24', '2026-02-15T24:00:00Z'],
    ['minute 60', '2026-02-15T17:60:00Z'],
    ['second 60', '2026-02-15T17:05:60Z'],
    ['a dot with no fraction digits', '2026-02-15T17:05:34.Z'],
    ['garbage after Z', '2026-02-15T17:05:34.432Zfoo'],
    ['garbage instead of a zone', '2026-02-15T17:05:34.432 UTC'],
    ['an offset hour of 24', '2026-02-15T17:05:34+24:00'],
    ['an offset minute of 60', '2026-02-15T17:05:34+01:60'],
    ['a one-digit offset', '2026-02-15T17:05:34+1'],
    ['a slash date', '2026/02/15T17:05:34Z'],
    ['a bad separator', '2026-02-15X17:05:34Z'],
    ['garbage', 'yesterday at noon'],
    ['empty string', ''],
    ['negative digit string', '-1771175134432'],
    ['digits with a sign', '+1771175134432'],
    ['digits with a decimal point', '1771175134432.5'],
    ['digits with a letter', '17711751344x2'],
    ['true', true],
    ['false', false],
    ['null', null],
    ['undefined', undefined],
    ['an object', { t: 1 }],
    ['an array', [1771175134432]],
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['-Infinity', Number.NEGATIVE_INFINITY],
  ];
  for (const [name, value] of invalid) {
    it(`rejects ${name}`, () => {
      assert.ok(Number.isNaN(parseVisitTime(value)), `${JSON.stringify(value)} -> ${parseVisitTime(value)}`);
    });
  }
});

describe('parseIsoTime', () => {
  it('returns the same as parseVisitTime for an ISO string', () => {
    assert.equal(parseIsoTime('2026-02-15T17:05:34.432Z'), T);
    assert.equal(parseIsoTime('2026-02-15 18:05:34.432+01:00'), T);
  });

  it('returns NaN for a string that is not an ISO date-time', () => {
    assert.ok(Number.isNaN(parseIsoTime('1771175134432')));
    assert.ok(Number.isNaN(parseIsoTime('2026-02-15')));
    assert.ok(Number.isNaN(parseIsoTime('')));
  });

  it('agrees with Date.parse on random valid and invalid calendar dates with offsets and fractions', () => {
    const arbitrary = fc.record({
      y: fc.integer({ min: 1970, max: 2100 }),
      mo: fc.integer({ min: 1, max: 12 }),
      d: fc.integer({ min: 1, max: 31 }),
      h: fc.integer({ min: 0, max: 23 }),
      mi: fc.integer({ min: 0, max: 59 }),
      s: fc.integer({ min: 0, max: 59 }),
      fraction: fc.string({ unit: fc.constantFrom(...'0123456789'), minLength: 1, maxLength: 9 }),
      zone: fc.oneof(
        fc.constant('Z'),
        fc.constant(''),
        fc.record({
          sign: fc.constantFrom('+', '-'),
          oh: fc.integer({ min: 0, max: 23 }),
          om: fc.integer({ min: 0, max: 59 }),
          colon: fc.boolean(),
        }),
      ),
      space: fc.boolean(),
    });
    fc.assert(
      fc.property(arbitrary, ({ y, mo, d, h, mi, s, fraction, zone, space }) => {
        const date = `${pad(y, 4)}-${pad(mo, 2)}-${pad(d, 2)}`;
        const clock = `${pad(h, 2)}:${pad(mi, 2)}:${pad(s, 2)}`;
        const zoneText =
          typeof zone === 'string'
            ? zone
            : `${zone.sign}${pad(zone.oh, 2)}${zone.colon ? ':' : ''}${pad(zone.om, 2)}`;
        const input = `${date}${space ? ' ' : 'T'}${clock}.${fraction}${zoneText}`;
        // Reference: Date.parse of the ECMAScript form (T, exactly 3 fraction digits, +HH:MM or Z).
        const ms3 = fraction.slice(0, 3).padEnd(3, '0');
        const refZone = typeof zone === 'string' ? 'Z' : `${zone.sign}${pad(zone.oh, 2)}:${pad(zone.om, 2)}`;
        const reference = `${date}T${clock}.${ms3}${refZone}`;
        const dayExists = new Date(utc(y, mo, d)).getUTCDate() === d;
        const expected = dayExists ? Date.parse(reference) : Number.NaN;
        const actual = parseIsoTime(input);
        if (Number.isNaN(expected)) return Number.isNaN(actual);
        return actual === expected;
      }),
      { numRuns: 2000 },
    );
  });
});

describe('formatIso and utcDate', () => {
  it('formats epoch ms as ISO-8601 UTC with milliseconds', () => {
    assert.equal(formatIso(T), '2026-02-15T17:05:34.432Z');
    assert.equal(formatIso(0), '1970-01-01T00:00:00.000Z');
    assert.equal(formatIso(utc(2026, 2, 15, 1, 2, 3, 4)), '2026-02-15T01:02:03.004Z');
  });

  it('formats the last millisecond of a day and the first of the next correctly, in either order', () => {
    const midnight = utc(2026, 3, 1);
    assert.equal(formatIso(midnight - 1), '2026-02-28T23:59:59.999Z');
    assert.equal(formatIso(midnight), '2026-03-01T00:00:00.000Z');
    assert.equal(formatIso(midnight - 1), '2026-02-28T23:59:59.999Z');
  });

  it('formats times before 1970', () => {
    assert.equal(formatIso(-1), '1969-12-31T23:59:59.999Z');
    assert.equal(formatIso(utc(1900, 2, 28, 12)), '1900-02-28T12:00:00.000Z');
  });

  it('gives the UTC date of a time, not the local one', () => {
    assert.equal(utcDate(T), '2026-02-15');
    assert.equal(utcDate(utc(2026, 2, 15) - 1), '2026-02-14');
    assert.equal(utcDate(parseVisitTime('2026-02-16T00:30:00+01:00')), '2026-02-15');
  });

  it('matches Date.prototype.toISOString and round-trips through parseVisitTime for 1970..2100', () => {
    fc.assert(
      fc.property(fc.integer({ min: YEAR_1970, max: YEAR_2101 }), (t) => {
        const text = formatIso(t);
        assert.equal(text, new Date(t).toISOString());
        assert.equal(parseVisitTime(text), t);
        assert.equal(parseIsoTime(text), t);
        assert.equal(utcDate(t), new Date(t).toISOString().slice(0, 10));
      }),
      { numRuns: 5000 },
    );
  });

  it('matches toISOString on interleaved times of many different days (no stale day cache)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: YEAR_1970, max: YEAR_2101 }), { minLength: 2, maxLength: 20 }),
        (ts) => {
          for (const t of ts) assert.equal(formatIso(t), new Date(t).toISOString());
        },
      ),
    );
  });

  it('round-trips times shifted by any offset within a day of the source', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: YEAR_1970 + 86_400_000, max: YEAR_2101 - 86_400_000 }),
        fc.integer({ min: -23 * 60 - 59, max: 23 * 60 + 59 }),
        (t, offsetMinutes) => {
          // Write the UTC instant t as local time at the offset, then parse it back.
          const local = new Date(t + offsetMinutes * MINUTE).toISOString().slice(0, 23);
          const sign = offsetMinutes < 0 ? '-' : '+';
          const abs = Math.abs(offsetMinutes);
          const text = `${local}${sign}${pad(Math.floor(abs / 60), 2)}:${pad(abs % 60, 2)}`;
          assert.equal(parseVisitTime(text), t, text);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('keeps one hour between the same wall time at +01:00 and +00:00', () => {
    assert.equal(
      parseVisitTime('2026-02-15T17:00:00+00:00') - parseVisitTime('2026-02-15T17:00:00+01:00'),
      HOUR,
    );
  });
});
