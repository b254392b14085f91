/**
 * `sessionizer query`: SQL over the outputs with an in-memory DuckDB. The views `sessions`, `late_visits` and
 * `rejected` read the JSON Lines objects of a folder laid out like the output bucket (`<prefix>dt=YYYY-MM-DD/*`),
 * with the columns, order and types of the Glue tables (both come from lambdas/core/schema.ts) and `dt` last.
 * The Athena named queries of infra/queries.ts run unchanged: Trino functions DuckDB lacks are added as macros.
 */
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import type { LocalStackOptions } from '../infra/local/stack.ts';
import { SAVED_QUERIES, type SavedQuery } from '../infra/queries.ts';
import {
  type ColumnType,
  type Dataset,
  LATE_VISITS,
  PARTITION_COLUMN,
  REJECTED,
  SESSIONS,
  TIMESTAMP_FORMAT,
} from '../lambdas/core/schema.ts';
import { withStack } from './local.ts';
import { copyOutputs } from './replay.ts';
import { formatTable } from './table.ts';

// biome-ignore lint/suspicious/noExplicitAny: the datasets have different record types
export const QUERY_DATASETS: readonly Dataset<any>[] = [SESSIONS, LATE_VISITS, REJECTED];

/** DuckDB type of a schema column type (what `DESCRIBE` prints for it). */
export function duckType(t: ColumnType): string {
  if (typeof t === 'string') {
    const scalar: Record<string, string> = {
      string: 'VARCHAR',
      timestamp: 'TIMESTAMP',
      bigint: 'BIGINT',
      int: 'INTEGER',
    };
    const d = scalar[t];
    if (d === undefined) throw new Error(`no DuckDB type for column type ${t}`);
    return d;
  }
  if (t.kind === 'array') return `${duckType(t.of)}[]`;
  return `STRUCT(${t.fields.map((f) => `${quoteIdent(f.name)} ${duckType(f.type)}`).join(', ')})`;
}

/**
 * A Java date pattern (the JSON SerDe's `timestamp.formats`) as a DuckDB strptime format, for the letters an
 * ISO-8601 pattern uses: `yyyy-MM-dd'T'HH:mm:ss.SSS'Z'` -> `%Y-%m-%dT%H:%M:%S.%gZ`.
 */
export function strptimeFormat(javaPattern: string): string {
  const letters: Record<string, string> = {
    yyyy: '%Y',
    MM: '%m',
    dd: '%d',
    HH: '%H',
    mm: '%M',
    ss: '%S',
    SSS: '%g',
  };
  let out = '';
  let i = 0;
  while (i < javaPattern.length) {
    const c = javaPattern[i]!;
    if (c === "'") {
      const end = javaPattern.indexOf("'", i + 1);
      if (end < 0) throw new Error(`unterminated quote in date pattern ${javaPattern}`);
      const literal = javaPattern.slice(i + 1, end);
      out += literal === '' ? "'" : literal.replaceAll('%', '%%');
      i = end + 1;
    } else if (/[A-Za-z]/.test(c)) {
      let j = i;
      while (javaPattern[j] === c) j++;
      const token = javaPattern.slice(i, j);
      const f = letters[token];
      if (f === undefined) throw new Error(`unsupported date pattern letters "${token}" in ${javaPattern}`);
      out += f;
      i = j;
    } else {
      out += c === '%' ? '%%' : c;
      i++;
    }
  }
  return out;
}

/**
 * What makes Athena (Trino) SQL run unchanged on DuckDB: macros for the Trino functions DuckDB names differently,
 * and Trino's integer division (`7 / 2` is 3). Array subscripts are 1-based in both, `visited_pages[1].page` works
 * as it is.
 */
export const TRINO_COMPAT: readonly string[] = [
  'SET integer_division = true',
  'CREATE MACRO approx_percentile(x, p) AS approx_quantile(x, p)',
  'CREATE MACRO approx_distinct(x) AS approx_count_distinct(x)',
];

export const quoteIdent = (name: string): string => `"${name.replaceAll('"', '""')}"`;
const quoteString = (s: string): string => `'${s.replaceAll("'", "''")}'`;

/** The JSON Lines files of a dataset in `dir`: `<dir>/<prefix>dt=<value>/<file>`, hidden files left out. */
export async function partitionFiles<R>(dir: string, dataset: Dataset<R>): Promise<string[]> {
  const base = join(dir, dataset.prefix);
  const files: string[] = [];
  let partitions: string[];
  try {
    partitions = (await readdir(base, { withFileTypes: true }))
      .filter((e) => e.isDirectory() && e.name.startsWith(`${PARTITION_COLUMN}=`))
      .map((e) => e.name)
      .sort();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  for (const p of partitions) {
    for (const e of await readdir(join(base, p), { withFileTypes: true })) {
      if (e.isFile() && !e.name.startsWith('.')) files.push(join(base, p, e.name));
    }
  }
  return files.sort();
}

/** The `CREATE VIEW` of a dataset over `files` (an empty list gives a view with no rows and the same columns). */
export function viewSql<R>(dataset: Dataset<R>, files: readonly string[]): string {
  const view = quoteIdent(dataset.name);
  const dt = quoteIdent(PARTITION_COLUMN);
  if (files.length === 0) {
    const columns = dataset.columns.map((c) => `CAST(NULL AS ${duckType(c.type)}) AS ${quoteIdent(c.name)}`);
    return `CREATE OR REPLACE VIEW ${view} AS SELECT ${columns.join(', ')}, CAST(NULL AS VARCHAR) AS ${dt} WHERE false`;
  }
  const columns = dataset.columns
    .map((c) => `${quoteString(c.name)}: ${quoteString(duckType(c.type))}`)
    .join(', ');
  // the explicit SELECT keeps the schema's order and drops any other `key=value` folder of the path
  return `CREATE OR REPLACE VIEW ${view} AS SELECT ${dataset.columns.map((c) => quoteIdent(c.name)).join(', ')}, ${dt}
FROM read_json([${files.map(quoteString).join(', ')}],
  format = 'newline_delimited',
  columns = {${columns}},
  timestampformat = ${quoteString(strptimeFormat(TIMESTAMP_FORMAT))},
  hive_partitioning = true,
  hive_types = {${quoteString(PARTITION_COLUMN)}: 'VARCHAR'},
  maximum_object_size = 268435456)`;
}

/** A value as JSON can carry it: BigInt as a number (a string past 2^53), times as ISO-8601 strings. */
export type Plain = null | boolean | number | string | Plain[] | { [key: string]: Plain };

export function toPlain(value: unknown): Plain {
  if (value === null || value === undefined) return null;
  if (typeof value === 'bigint') {
    return value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= BigInt(Number.MIN_SAFE_INTEGER)
      ? Number(value)
      : value.toString();
  }
  if (typeof value === 'number') return Number.isFinite(value) ? value : String(value);
  if (typeof value === 'string' || typeof value === 'boolean') return value;
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
  if (value instanceof Uint8Array) return Buffer.from(value).toString('base64');
  if (Array.isArray(value)) return value.map(toPlain);
  if (typeof value === 'object') {
    const out: { [key: string]: Plain } = {};
    for (const [k, v] of Object.entries(value)) out[k] = toPlain(v);
    return out;
  }
  return String(value);
}

export interface QueryResult {
  readonly columns: readonly string[];
  /** DuckDB types of the columns, e.g. `BIGINT`, `TIMESTAMP`. */
  readonly types: readonly string[];
  /** Rows as arrays of {@link Plain} values, in column order. */
  readonly values: readonly (readonly Plain[])[];
  /** Rows as objects keyed by column name (a repeated name gets a `_2`, `_3`... suffix). */
  readonly rows: readonly Record<string, Plain>[];
}

export interface Outputs {
  /** The folder the views read. */
  readonly dir: string;
  /** Runs SQL (Athena SQL included, see {@link TRINO_COMPAT}); the last statement's rows. */
  runQuery(sql: string): Promise<QueryResult>;
  /** Runs a query of {@link SAVED_QUERIES} by name. */
  runSaved(name: string): Promise<QueryResult>;
  close(): Promise<void>;
}

/** Where the outputs are: a folder (a replay `--out`), or the local stack's output bucket (copied to a temp folder). */
export type OutputSource = string | { readonly dir: string } | { readonly stack: LocalStackOptions };

/** Unique names for the row objects. */
function objectKeys(columns: readonly string[]): string[] {
  const seen = new Map<string, number>();
  return columns.map((c) => {
    const n = (seen.get(c) ?? 0) + 1;
    seen.set(c, n);
    return n === 1 ? c : `${c}_${n}`;
  });
}

export function findSaved(name: string): SavedQuery {
  const saved = SAVED_QUERIES.find((q) => q.name === name);
  if (!saved)
    throw new Error(
      `no saved query "${name}": expected one of ${SAVED_QUERIES.map((q) => q.name).join(', ')}`,
    );
  return saved;
}

async function open(dir: string, cleanup: () => Promise<void>): Promise<Outputs> {
  const info = await stat(dir).catch(() => undefined);
  if (!info?.isDirectory()) {
    await cleanup();
    throw new Error(`no such folder: ${dir}`);
  }
  // nothing is ever downloaded: the JSON reader is built in, and known extensions are neither installed nor loaded
  const instance = await DuckDBInstance.create(':memory:', {
    autoinstall_known_extensions: 'false',
    autoload_known_extensions: 'false',
    allow_community_extensions: 'false',
  });
  let connection: DuckDBConnection | undefined;
  try {
    connection = await instance.connect();
    await connection.run("SET TimeZone = 'UTC'");
    for (const statement of TRINO_COMPAT) await connection.run(statement);
    for (const dataset of QUERY_DATASETS)
      await connection.run(viewSql(dataset, await partitionFiles(dir, dataset)));
  } catch (error) {
    connection?.closeSync();
    instance.closeSync();
    await cleanup();
    throw error;
  }
  const conn = connection;
  const runQuery = async (sql: string): Promise<QueryResult> => {
    const reader = await conn.runAndReadAll(sql);
    const columns = reader.columnNames();
    const keys = objectKeys(columns);
    const values = reader.getRowsJS().map((r) => r.map(toPlain));
    return {
      columns,
      types: reader.columnTypes().map((t) => t.toString()),
      values,
      rows: values.map((r) => Object.fromEntries(keys.map((k, i) => [k, r[i] ?? null]))),
    };
  };
  let closed = false;
  return {
    dir,
    runQuery,
    runSaved: (name) => runQuery(findSaved(name).sql),
    close: async () => {
      if (closed) return;
      closed = true;
      conn.closeSync();
      instance.closeSync();
      await cleanup();
    },
  };
}

/** Opens a DuckDB database with the views `sessions`, `late_visits` and `rejected` over the outputs of `source`. */
export async function openOutputs(source: OutputSource): Promise<Outputs> {
  if (typeof source === 'string') return open(resolve(source), async () => {});
  if ('dir' in source) return open(resolve(source.dir), async () => {});
  const dir = await mkdtemp(join(tmpdir(), 'sessionizer-query-'));
  const cleanup = () => rm(dir, { recursive: true, force: true });
  try {
    await withStack({ ...source.stack, notifications: false }, (stack) => copyOutputs(stack, dir));
  } catch (error) {
    await cleanup();
    throw error;
  }
  return open(dir, cleanup);
}

/** Runs `use` on the outputs of `source`, then closes them. */
export async function withOutputs<T>(
  source: OutputSource,
  use: (outputs: Outputs) => Promise<T>,
): Promise<T> {
  const outputs = await openOutputs(source);
  try {
    return await use(outputs);
  } finally {
    await outputs.close();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Output formats

export type OutputFormat = 'table' | 'json' | 'csv';

/** An array of row objects, BigInt as numbers and times as ISO-8601 strings. */
export function formatJson(result: QueryResult): string {
  return JSON.stringify(result.rows, null, 2);
}

/** One CSV field (RFC 4180): quoted when it holds a comma, a quote, CR or LF; quotes doubled. Null is empty. */
export function csvField(value: Plain): string {
  if (value === null) return '';
  const s = typeof value === 'object' ? JSON.stringify(value) : String(value);
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

/** CSV with a header row, CRLF line ends (RFC 4180). */
export function formatCsv(result: QueryResult): string {
  const lines = [result.columns, ...result.values].map((r) => r.map((v) => csvField(v)).join(','));
  return `${lines.join('\r\n')}\r\n`;
}

export function formatResult(result: QueryResult, format: OutputFormat): string {
  if (format === 'json') return `${formatJson(result)}\n`;
  if (format === 'csv') return formatCsv(result);
  return `${formatTable(result.columns, result.values)}\n`;
}

export function formatSavedList(): string {
  return `${formatTable(
    ['name', 'description'],
    SAVED_QUERIES.map((q) => [q.name, q.description]),
    100,
  )}\n`;
}

export interface QueryCommandOptions {
  readonly dir?: string;
  readonly saved?: string;
  readonly list?: boolean;
  readonly json?: boolean;
  readonly csv?: boolean;
}

/** The `query` command: the text to print. Without `--dir`, reads the local stack started with `stack`. */
export async function queryCommand(
  sql: string | undefined,
  options: QueryCommandOptions,
  stack: LocalStackOptions,
): Promise<string> {
  if (options.json && options.csv) throw new Error('--json and --csv: choose one');
  if (options.list) {
    if (sql !== undefined || options.saved !== undefined)
      throw new Error('--list takes no SQL and no --saved');
    return formatSavedList();
  }
  if (sql !== undefined && options.saved !== undefined)
    throw new Error('give either SQL or --saved NAME, not both');
  if (sql === undefined && options.saved === undefined) {
    throw new Error(
      'missing SQL: sessionizer query "SELECT ..." (views sessions, late_visits, rejected), or --saved NAME, or --list',
    );
  }
  const text = sql ?? findSaved(options.saved!).sql;
  const format: OutputFormat = options.json ? 'json' : options.csv ? 'csv' : 'table';
  const source: OutputSource = options.dir !== undefined ? { dir: options.dir } : { stack };
  return withOutputs(source, async (outputs) => formatResult(await outputs.runQuery(text), format));
}
