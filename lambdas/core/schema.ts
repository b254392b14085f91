/**
 * The one schema definition of every output (docs/design.md, section 3). The JSON the writer produces and the Glue table
 * columns are both derived from the column lists below, so they cannot drift apart.
 */
import * as crypto from 'node:crypto';
import { JsonBuilder } from './json-builder.ts';
import { formatIso, utcDate } from './time.ts';
import type { ClosedSession, LateVisit, PageVisit, Rejected } from './types.ts';

/** Logical column types; {@link glueType} maps them to Glue/Hive types. Timestamps are ISO-8601 UTC strings. */
export type ColumnType =
  | 'string'
  | 'timestamp'
  | 'bigint'
  | 'int'
  | { readonly kind: 'array'; readonly of: ColumnType }
  | {
      readonly kind: 'struct';
      readonly fields: readonly { readonly name: string; readonly type: ColumnType }[];
    };

export interface Column<R> {
  readonly name: string;
  readonly type: ColumnType;
  readonly comment: string;
  readonly nullable?: boolean;
  readonly value: (record: R) => unknown;
  /**
   * Optional fast path for {@link toJsonLine}: appends exactly `JSON.stringify(value(record))` to `out` without
   * building the value, and returns true; or returns false where that is `undefined` (the key is then left out).
   * Without it, toJsonLine writes `value(record)`.
   */
  readonly write?: (record: R, out: JsonBuilder) => boolean;
}

/** One output dataset: its columns, prefix in the sessions bucket and partition. */
export interface Dataset<R> {
  readonly name: string;
  /** Key prefix under the output bucket, also the Glue table's location (`<prefix>dt=YYYY-MM-DD/`). */
  readonly prefix: string;
  readonly columns: readonly Column<R>[];
  readonly description: string;
}

/** The partition column every dataset has (a string `YYYY-MM-DD`, from the object key, not the JSON). */
export const PARTITION_COLUMN = 'dt';

/** The ISO-8601 UTC format every timestamp column is written in (Java pattern, for the JSON SerDe). */
export const TIMESTAMP_FORMAT = "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'";

/** One-shot hashing (Node 20.12+), much cheaper than a Hash object for short input; same digest. */
const oneShotHash = (
  crypto as { hash?: (algorithm: string, data: string | Uint8Array, encoding: 'hex') => string }
).hash;

/** `${userId}\u0000${start}` as bytes, for an ASCII user id: views of every length, so none is made per call. */
const ID_MAX_BYTES = 128;
const idBytes = Buffer.alloc(ID_MAX_BYTES);
const idViews = Array.from({ length: ID_MAX_BYTES + 1 }, (_, n) => idBytes.subarray(0, n));

/** Writes the id text of an ASCII user id and a whole non-negative start into `idBytes`; its length, or -1. */
function idText(userId: string, start: number): number {
  const n = userId.length;
  if (n > ID_MAX_BYTES - 18 || !Number.isSafeInteger(start) || start < 0) return -1;
  for (let i = 0; i < n; i++) {
    const c = userId.charCodeAt(i);
    if (c > 0x7f) return -1;
    idBytes[i] = c;
  }
  idBytes[n] = 0;
  let digits = 1;
  for (let x = start; x >= 10; x = Math.floor(x / 10)) digits++;
  let x = start;
  for (let i = n + digits; i > n; i--) {
    const q = Math.floor(x / 10);
    idBytes[i] = 48 + (x - q * 10);
    x = q;
  }
  return n + 1 + digits;
}

/** Deterministic session id: the same user and start time always give the same id. */
export function sessionId(userId: string, start: number): string {
  if (oneShotHash !== undefined) {
    const len = idText(userId, start);
    return oneShotHash('sha256', len >= 0 ? idViews[len]! : `${userId}\u0000${start}`, 'hex').slice(0, 32);
  }
  return crypto.createHash('sha256').update(`${userId}\u0000${start}`).digest('hex').slice(0, 32);
}

const visitedPageType: ColumnType = {
  kind: 'struct',
  fields: [
    { name: 'page', type: 'string' },
    { name: 'visit_time', type: 'timestamp' },
  ],
};

function visitedPages(visits: readonly PageVisit[]): { page: string; visit_time: string }[] {
  const out = new Array<{ page: string; visit_time: string }>(visits.length);
  for (let i = 0; i < visits.length; i++) {
    const v = visits[i]!;
    out[i] = { page: v.page, visit_time: formatIso(v.t) };
  }
  return out;
}

/** Appends `JSON.stringify(visitedPages(visits))` without building the objects. */
function writeVisitedPages(visits: readonly PageVisit[], out: JsonBuilder): boolean {
  const mark = out.length;
  out.text('[');
  for (let i = 0; i < visits.length; i++) {
    const v = visits[i]!;
    if (typeof v.page !== 'string') {
      out.rewind(mark);
      return out.value(visitedPages(visits));
    }
    out.text(i === 0 ? '{"page":' : ',{"page":');
    out.string(v.page);
    out.text(',"visit_time":');
    out.time(v.t);
    out.text('}');
  }
  out.text(']');
  return true;
}

/** The function's own data in the output bucket (staged visits, the state's parts), read by no dataset. */
export const INTERNAL_PREFIX = '_sessionizer/';

export const SESSIONS: Dataset<ClosedSession> = {
  name: 'sessions',
  prefix: 'sessions/',
  description: 'Closed user sessions, one JSON object a line, partitioned by the UTC date of start_time.',
  columns: [
    {
      name: 'session_id',
      type: 'string',
      comment: 'sha256(user_id, start) prefix',
      value: (s) => sessionId(s.userId, s.start),
    },
    { name: 'user_id', type: 'string', comment: 'user id as a string', value: (s) => s.userId },
    {
      name: 'start_time',
      type: 'timestamp',
      comment: 'first visit, ISO-8601 UTC',
      value: (s) => formatIso(s.start),
      write: (s, out) => {
        out.time(s.start);
        return true;
      },
    },
    {
      name: 'end_time',
      type: 'timestamp',
      comment: 'last visit, ISO-8601 UTC',
      value: (s) => formatIso(s.end),
      write: (s, out) => {
        out.time(s.end);
        return true;
      },
    },
    {
      name: 'duration_ms',
      type: 'bigint',
      comment: 'end_time - start_time in ms',
      value: (s) => s.end - s.start,
    },
    { name: 'visit_count', type: 'int', comment: 'number of distinct visits', value: (s) => s.visits.length },
    {
      name: 'visited_pages',
      type: { kind: 'array', of: visitedPageType },
      comment: 'visits sorted by visit_time, then page',
      value: (s) => visitedPages(s.visits),
      write: (s, out) => writeVisitedPages(s.visits, out),
    },
  ],
};

export const LATE_VISITS: Dataset<LateVisit> = {
  name: 'late_visits',
  prefix: 'late-visits/',
  description:
    'Visits older than the watermark when they arrived, partitioned by the UTC date of visit_time.',
  columns: [
    { name: 'user_id', type: 'string', comment: 'user id as a string', value: (v) => v.userId },
    { name: 'visit_time', type: 'timestamp', comment: 'ISO-8601 UTC', value: (v) => formatIso(v.t) },
    { name: 'page', type: 'string', comment: 'page visited', value: (v) => v.page },
    {
      name: 'source_object',
      type: 'string',
      comment: 's3://bucket/key of the input',
      value: (v) => v.sourceObject,
    },
    { name: 'source_line', type: 'bigint', comment: '1-based line in the input', value: (v) => v.sourceLine },
    {
      name: 'watermark',
      type: 'timestamp',
      comment: 'watermark the visit was late for',
      value: (v) => formatIso(v.watermark),
    },
  ],
};

export const REJECTED: Dataset<Rejected> = {
  name: 'rejected',
  prefix: 'rejected/',
  description: 'Input lines (or whole objects) that could not be read, partitioned by processing date.',
  columns: [
    {
      name: 'source_object',
      type: 'string',
      comment: 's3://bucket/key of the input',
      value: (r) => r.sourceObject,
    },
    {
      name: 'source_line',
      type: 'bigint',
      comment: '1-based line, null for a whole object',
      nullable: true,
      value: (r) => r.line,
    },
    { name: 'reason', type: 'string', comment: 'why the line was rejected', value: (r) => r.reason },
    { name: 'raw', type: 'string', comment: 'the raw line, cut at 4 KiB', value: (r) => r.raw },
  ],
};

/** Builds the output object of one record, with the dataset's columns in order. */
export function toRecord<R>(dataset: Dataset<R>, record: R): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const c of dataset.columns) out[c.name] = c.value(record);
  return out;
}

/** A dataset's JSON Lines writer: the keys' JSON text computed once, the line built in a {@link JsonBuilder}. */
type LineWriter<R> = (record: R) => string;
const writers = new WeakMap<Dataset<never>, LineWriter<never>>();
/** The builder lines are written with; taken while in use, so a (pathological) nested call gets its own. */
let sharedBuilder: JsonBuilder | undefined = new JsonBuilder();

function lineWriter<R>(dataset: Dataset<R>): LineWriter<R> {
  const names = dataset.columns.map((c) => c.name);
  if (new Set(names).size !== names.length || names.includes('__proto__')) {
    // not a plain record: keep the generic path
    return (record) => `${JSON.stringify(toRecord(dataset, record))}\n`;
  }
  const columns = dataset.columns;
  const firstKeys = names.map((n) => `{${JSON.stringify(n)}:`);
  const nextKeys = names.map((n) => `,${JSON.stringify(n)}:`);
  return (record) => {
    const out = sharedBuilder ?? new JsonBuilder();
    sharedBuilder = undefined;
    try {
      out.reset();
      let empty = true;
      for (let i = 0; i < columns.length; i++) {
        const c = columns[i]!;
        const mark = out.length;
        out.text(empty ? firstKeys[i]! : nextKeys[i]!);
        if (c.write !== undefined ? c.write(record, out) : out.value(c.value(record))) empty = false;
        else out.rewind(mark); // JSON.stringify leaves out undefined values
      }
      out.text(empty ? '{}\n' : '}\n');
      return out.finish();
    } finally {
      sharedBuilder = out;
    }
  };
}

/** One JSON Lines line (with its newline) of a record: `JSON.stringify(toRecord(dataset, record))` and a newline. */
export function toJsonLine<R>(dataset: Dataset<R>, record: R): string {
  let writer = writers.get(dataset as Dataset<never>) as LineWriter<R> | undefined;
  if (writer === undefined) {
    writer = lineWriter(dataset);
    writers.set(dataset as Dataset<never>, writer as LineWriter<never>);
  }
  return writer(record);
}

/** The `dt` partition value of a session (UTC date of its start) and of a late visit (UTC date of the visit). */
export const sessionPartition = (s: ClosedSession): string => utcDate(s.start);
export const latePartition = (v: LateVisit): string => utcDate(v.t);

/** Groups records by partition value, keeping their order. */
export function partition<R>(records: readonly R[], dtOf: (r: R) => string): Map<string, R[]> {
  const out = new Map<string, R[]>();
  for (const r of records) {
    const dt = dtOf(r);
    const list = out.get(dt);
    if (list) list.push(r);
    else out.set(dt, [r]);
  }
  return out;
}

/** Glue/Hive type of a column type. */
export function glueType(t: ColumnType): string {
  if (typeof t === 'string') return t;
  if (t.kind === 'array') return `array<${glueType(t.of)}>`;
  return `struct<${t.fields.map((f) => `${f.name}:${glueType(f.type)}`).join(',')}>`;
}

/** Glue columns (name, type, comment) of a dataset, without the partition column. */
export function glueColumns<R>(dataset: Dataset<R>): { name: string; type: string; comment: string }[] {
  return dataset.columns.map((c) => ({ name: c.name, type: glueType(c.type), comment: c.comment }));
}
