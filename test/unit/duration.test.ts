import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { formatDuration, InvalidDurationError, parseDuration } from '../../lambdas/core/duration.ts';

describe('parseDuration', () => {
  const valid: [string | number, number][] = [
    ['40m', 40 * 60 * 1000],
    ['15m', 15 * 60 * 1000],
    ['90s', 90 * 1000],
    ['2h', 2 * 60 * 60 * 1000],
    ['1d', 24 * 60 * 60 * 1000],
    ['250ms', 250],
    ['0', 0],
    ['2400000', 2_400_000],
    [2_400_000, 2_400_000],
    [0, 0],
  ];
  for (const [input, expected] of valid) {
    it(`reads ${JSON.stringify(input)} as ${expected} ms`, () => {
      assert.equal(parseDuration(input, 'SESSIONIZER_GAP'), expected);
    });
  }

  it('reads a plain digit string as milliseconds, not minutes or seconds', () => {
    assert.equal(parseDuration('1500'), 1500);
  });

  const invalid: [string, string | number][] = [
    ['letters', 'abc'],
    ['a negative duration', '-5m'],
    ['a spelled-out unit', '5 minutes'],
    ['an empty string', ''],
    ['an unknown unit', '5w'],
    ['a unit without a number', 'm'],
    ['NaN', Number.NaN],
    ['a negative number', -1],
    ['Infinity', Number.POSITIVE_INFINITY],
  ];
  for (const [name, input] of invalid) {
    it(`throws InvalidDurationError naming the setting for ${name}`, () => {
      assert.throws(
        () => parseDuration(input, 'SESSIONIZER_GAP'),
        (error: unknown) => {
          assert.ok(error instanceof InvalidDurationError, `got ${String(error)}`);
          assert.equal(error.name, 'InvalidDurationError');
          assert.equal(error.setting, 'SESSIONIZER_GAP');
          assert.equal(error.value, input);
          assert.match(error.message, /SESSIONIZER_GAP/);
          assert.match(error.message, /40m/, 'the message shows an example of a valid value');
          return true;
        },
      );
    });
  }
});

describe('formatDuration', () => {
  it('formats with the largest unit that divides the value', () => {
    assert.equal(formatDuration(40 * 60_000), '40m');
    assert.equal(formatDuration(90_000), '90s');
    assert.equal(formatDuration(7_200_000), '2h');
    assert.equal(formatDuration(86_400_000), '1d');
    assert.equal(formatDuration(1500), '1500ms');
    assert.equal(formatDuration(0), '0ms');
  });

  it('is read back to the same number of milliseconds by parseDuration', () => {
    fc.assert(
      fc.property(fc.nat({ max: 400 * 86_400_000 }), (ms) => {
        assert.equal(parseDuration(formatDuration(ms)), ms);
      }),
      { numRuns: 1000 },
    );
  });
});
