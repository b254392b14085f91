/** Duration settings: `40m`, `15m`, `90s`, `2h`, `1d`, `250ms` or a plain number of milliseconds. */

const UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const PATTERN = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/;

export class InvalidDurationError extends Error {
  override readonly name = 'InvalidDurationError';
  constructor(
    readonly setting: string,
    readonly value: unknown,
  ) {
    super(
      `${setting}: invalid duration ${JSON.stringify(value)}; expected a number of milliseconds or a number ` +
        `followed by ms, s, m, h or d (for example 40m, 90s, 2h)`,
    );
  }
}

/**
 * Parses a duration into whole milliseconds. Throws {@link InvalidDurationError} naming `setting` when the value
 * is not a non-negative duration.
 */
export function parseDuration(value: string | number, setting = 'duration'): number {
  if (typeof value === 'number') {
    if (Number.isFinite(value) && value >= 0) return Math.round(value);
    throw new InvalidDurationError(setting, value);
  }
  const match = PATTERN.exec(value);
  if (!match) throw new InvalidDurationError(setting, value);
  const amount = Number(match[1]);
  const unit = UNITS[match[2] ?? 'ms'] ?? 1;
  const ms = Math.round(amount * unit);
  if (!Number.isFinite(ms)) throw new InvalidDurationError(setting, value);
  return ms;
}

/** Formats milliseconds compactly (`40m`, `90s`, `1500ms`), the inverse of {@link parseDuration}. */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1_000],
  ] as const) {
    if (ms !== 0 && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}
