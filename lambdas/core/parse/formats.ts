/** Input formats, told by the object's name (`.jsonl`, `.csv`, `.gz`) or by its first bytes. */

export type InputFormat = 'jsonl' | 'csv';

/** The two bytes every gzip stream starts with. */
export const GZIP_MAGIC_0 = 0x1f;
export const GZIP_MAGIC_1 = 0x8b;

/** Format and gzip implied by an object name, `undefined` where the name does not say. */
export function formatFromName(name: string): { format?: InputFormat; gzip: boolean } {
  let lower = name.toLowerCase();
  const gzip = lower.endsWith('.gz');
  if (gzip) lower = lower.slice(0, -3);
  if (lower.endsWith('.csv')) return { format: 'csv', gzip };
  if (lower.endsWith('.jsonl') || lower.endsWith('.json') || lower.endsWith('.ndjson'))
    return { format: 'jsonl', gzip };
  return { gzip };
}
