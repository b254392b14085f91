/**
 * The value parsers of the deployment settings (settings.ts): each takes a setting's name and its raw value (from
 * CDK context, so numbers and booleans may be strings) and returns it validated, or throws a SettingsError whose
 * message names the setting and says what was expected.
 */
import { formatDuration, parseDuration } from '../lambdas/core/duration.ts';

export class SettingsError extends Error {
  override readonly name = 'SettingsError';
}

export const fail = (message: string): never => {
  throw new SettingsError(message);
};

export function duration(name: string, value: unknown): number {
  if (typeof value !== 'string' && typeof value !== 'number') {
    return fail(`${name}: expected a duration such as "40m", got ${JSON.stringify(value)}`);
  }
  try {
    return parseDuration(value, name);
  } catch (error) {
    return fail((error as Error).message);
  }
}

export function positiveDuration(name: string, value: unknown): number {
  const ms = duration(name, value);
  if (ms <= 0) fail(`${name}: must be a positive duration, got ${JSON.stringify(value)}`);
  return ms;
}

export function durationOrOff(name: string, value: unknown): number | null {
  if (typeof value === 'string' && value.trim().toLowerCase() === 'off') return null;
  const ms = duration(name, value);
  if (ms <= 0) fail(`${name}: must be a positive duration or "off", got ${JSON.stringify(value)}`);
  return ms;
}

export const secondsText = (seconds: number): string =>
  seconds === 0 ? '0s' : formatDuration(seconds * 1000);

/** A duration in whole seconds from `min` to `max` seconds. */
export function wholeSeconds(name: string, value: unknown, min: number, max: number): number {
  const ms = duration(name, value);
  if (ms % 1000 !== 0 || ms < min * 1000 || ms > max * 1000) {
    fail(
      `${name}: expected whole seconds from ${secondsText(min)} to ${secondsText(max)}, got ${JSON.stringify(value)}`,
    );
  }
  return ms / 1000;
}

export function integer(name: string, value: unknown, min: number, max: number): number {
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
    return fail(`${name}: expected an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return n;
}

export function boolean(name: string, value: unknown): boolean {
  if (value === true || value === 'true') return true;
  if (value === false || value === 'false') return false;
  return fail(`${name}: expected true or false, got ${JSON.stringify(value)}`);
}

export function text(name: string, value: unknown): string {
  if (typeof value !== 'string') return fail(`${name}: expected a string, got ${JSON.stringify(value)}`);
  return value;
}

export function keyPrefix(name: string, value: unknown): string {
  const prefix = text(name, value);
  if (prefix !== '' && (!prefix.endsWith('/') || prefix.startsWith('/') || prefix.includes('*'))) {
    fail(
      `${name}: expected "" or a key prefix ending in "/" with no leading "/" or "*", got ${JSON.stringify(prefix)}`,
    );
  }
  return prefix;
}
