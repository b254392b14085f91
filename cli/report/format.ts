/** How the report writes numbers, durations and times. */
import { DAY, HOUR, MINUTE, SECOND } from './data.ts';

const num = (v: number): string => (Number.isInteger(v) ? String(v) : v.toFixed(1).replace(/\.0$/, ''));

/** `0`, `45s`, `5m`, `1h30m`, `2d`. */
export function formatDurationShort(ms: number): string {
  if (ms === 0) return '0';
  if (ms < MINUTE) return `${num(ms / SECOND)}s`;
  if (ms < HOUR)
    return ms % MINUTE === 0
      ? `${ms / MINUTE}m`
      : `${Math.floor(ms / MINUTE)}m${num((ms % MINUTE) / SECOND)}s`;
  if (ms < DAY)
    return ms % HOUR === 0
      ? `${ms / HOUR}h`
      : `${Math.floor(ms / HOUR)}h${Math.round((ms % HOUR) / MINUTE)}m`;
  return ms % DAY === 0 ? `${ms / DAY}d` : `${Math.floor(ms / DAY)}d${Math.round((ms % DAY) / HOUR)}h`;
}

export const fmtInt = (v: number): string => v.toLocaleString('en-US');

export const pct = (v: number): string => `${(v * 100).toFixed(v > 0 && v < 0.001 ? 3 : 1)}%`;

/** A bucket's start: the date for a day, `YYYY-MM-DD HH:00 UTC` for an hour. */
export const utc = (t: number, step: number): string =>
  step >= DAY
    ? new Date(t).toISOString().slice(0, 10)
    : `${new Date(t).toISOString().slice(0, 13).replace('T', ' ')}:00 UTC`;
