/**
 * `sessionizer query`: DuckDB views over replay outputs, checked against the Glue table definitions and against the
 * JSON lines in the files (read here independently); the saved Athena queries, the output formats, an empty folder,
 * the local stack as a source and the CLI itself.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { parse as parseCsv } from 'csv-parse/sync';
import {
  csvField,
  formatCsv,
  formatJson,
  formatResult,
  type Outputs,
  openOutputs,
  type QueryResult,
  queryCommand,
  strptimeFormat,
  toPlain,
} from '../../cli/query.ts';
import { replay } from '../../cli/replay.ts';
import { startLocalStack } from '../../infra/local/stack.ts';
import { SAVED_QUERIES } from '../../infra/queries.ts';
import { ENV } from '../../lambdas/config.ts';
import {
  type Dataset,
  glueColumns,
  LATE_VISITS,
  PARTITION_COLUMN,
  REJECTED,
  SESSIONS,
  TIMESTAMP_FORMAT,
} from '../../lambdas/core/schema.ts';
import { linesByDt, NASTY_PAGE, writeVisitFiles } from '../helpers/outputs.ts';

const MIN = 60_000;
const root = fileURLToPath(new URL('../..', import.meta.url));
// biome-ignore lint/suspicious/noExplicitAny: the datasets have different record types
const DATASETS: readonly Dataset<any>[] = [SESSIONS, LATE_VISITS, REJECTED];

/** Hive/Glue type text -> the type DuckDB's DESCRIBE prints (written here independently of cli/query.ts). */
function glueToDuckDb(hive: string): string {
  let i = 0;
  const type = (): string => {
    const word = /^[a-z]+/.exec(hive.slice(i))![0];
    i += word.length;
    if (word === 'array') {
      i++; // <
      const of = type();
      i++; // >
      return `${of}[]`;
    }
    if (word === 'struct') {
      i++; // <
      const fields: string[] = [];
      while (hive[i - 1] !== '>') {
        const name = /^[a-z_0-9]+/.exec(hive.slice(i))![0];
        i += name.length + 1; // name:
        fields.push(`${name} ${type()}`);
        i++; // , or >
      }
      return `STRUCT(${fields.join(', ')})`;
    }
    const scalars: Record<string, string> = {
      string: 'VARCHAR',
      timestamp: 'TIMESTAMP',
      bigint: 'BIGINT',
      int: 'INTEGER',
    };
    assert.ok(scalars[word], `unexpected Glue type ${word}`);
    return scalars[word]!;
  };
  const out = type();
  assert.equal(i, hive.length, `trailing text in ${hive}`);
  return out;
}

const describeView = async (outputs: Outputs, view: string) =>
  (await outputs.runQuery(`DESCRIBE ${view}`)).rows.map((r) => [r.column_name, r.column_type]);

/** A row of a JSON line as the view should give it: every column of the dataset (missing keys null). */
const expectedRow = (dataset: Dataset<unknown>, dt: string, line: Record<string, unknown>) => {
  const row: Record<string, unknown> = {};
  for (const c of dataset.columns) row[c.name] = line[c.name] ?? null;
  row[PARTITION_COLUMN] = dt;
  return row;
};

const byJson = (a: unknown, b: unknown) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1);

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(root, 'bin', 'sessionizer.js'), ...args], { cwd: root });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

let tmp: string;
let out: string;
let outputs: Outputs;
type Lines = Map<string, Record<string, unknown>[]>;
const lines: Record<string, Lines> = {};

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'sessionizer-query-test-'));
  out = join(tmp, 'out');
  const files = await writeVisitFiles(join(tmp, 'in'), { files: 4, users: 40, seed: 11, brokenGzip: true });
  await replay({ files, out, flush: true, gapMs: 10 * MIN });
  for (const d of DATASETS) lines[d.name] = await linesByDt(out, d.prefix);
  outputs = await openOutputs(out);
});

after(async () => {
  await outputs?.close();
  await rm(tmp, { recursive: true, force: true });
});

describe('views over a replay output folder', () => {
  it('the fixture has what the checks need: two session days, late visits, rejections, a whole-object one', () => {
    assert.ok(lines.sessions!.size >= 2, `session partitions: ${[...lines.sessions!.keys()]}`);
    assert.ok([...lines.late_visits!.values()].flat().length > 0);
    const rejected = [...lines.rejected!.values()].flat();
    assert.ok(
      rejected.some((r) => r.source_line === null),
      'a rejection of a whole object',
    );
    assert.ok(rejected.some((r) => typeof r.source_line === 'number'));
  });

  it('have the Glue columns, in order, with the types mapped, and the dt partition last', async () => {
    for (const d of DATASETS) {
      const expected = [
        ...glueColumns(d).map((c) => [c.name, glueToDuckDb(c.type)]),
        [PARTITION_COLUMN, 'VARCHAR'], // the Glue partition key is a string
      ];
      assert.deepEqual(await describeView(outputs, d.name), expected, d.name);
    }
  });

  it('give one row per JSON line, dt from the folder, timestamps, lists of structs and bigints as written', async () => {
    for (const d of DATASETS) {
      const byDt = lines[d.name]!;
      const counts = (
        await outputs.runQuery(`SELECT dt, count(*) AS n FROM ${d.name} GROUP BY dt ORDER BY dt`)
      ).rows;
      assert.deepEqual(
        counts,
        [...byDt].map(([dt, rows]) => ({ dt, n: rows.length })),
        `${d.name}: rows per dt`,
      );
      // the view's rows as plain values (timestamps back to ISO strings) are exactly the JSON lines
      const rows = (await outputs.runQuery(`SELECT * FROM ${d.name}`)).rows;
      const expected = [...byDt].flatMap(([dt, ls]) => ls.map((l) => expectedRow(d, dt, l)));
      assert.equal(rows.length, expected.length);
      assert.deepEqual([...rows].sort(byJson), expected.sort(byJson), d.name);
    }
  });

  it('types work in SQL: timestamp arithmetic, 1-based list subscripts, struct fields', async () => {
    const r = (
      await outputs.runQuery(`SELECT count(*) AS n,
        count(*) FILTER (WHERE epoch_ms(end_time) - epoch_ms(start_time) = duration_ms) AS durations_ok,
        count(*) FILTER (WHERE visited_pages[1].visit_time = start_time) AS first_ok,
        count(*) FILTER (WHERE visited_pages[len(visited_pages)].visit_time = end_time) AS last_ok,
        count(*) FILTER (WHERE len(visited_pages) = visit_count) AS counts_ok,
        count(*) FILTER (WHERE strftime(start_time, '%Y-%m-%d') = dt) AS dt_ok
      FROM sessions`)
    ).rows[0]!;
    assert.ok((r.n as number) > 100);
    for (const k of ['durations_ok', 'first_ok', 'last_ok', 'counts_ok', 'dt_ok']) assert.equal(r[k], r.n, k);
    const late = (
      await outputs.runQuery(`SELECT count(*) AS n FROM late_visits
      WHERE visit_time < watermark AND strftime(visit_time, '%Y-%m-%d') = dt`)
    ).rows[0]!;
    assert.equal(late.n, [...lines.late_visits!.values()].flat().length);
  });
});

describe('the saved Athena queries run unchanged', () => {
  const sessions = () =>
    [...lines.sessions!].flatMap(([dt, ls]) => ls.map((l) => ({ dt, ...l }))) as {
      dt: string;
      user_id: string;
      duration_ms: number;
      visit_count: number;
      visited_pages: { page: string }[];
    }[];
  const days = () => [...lines.sessions!.keys()].sort();

  const checks: Record<string, (result: QueryResult) => void> = {
    'sessions-per-day': (result) => {
      assert.deepEqual(
        result.rows,
        days().map((dt) => {
          const s = sessions().filter((x) => x.dt === dt);
          return {
            dt,
            sessions: s.length,
            users: new Set(s.map((x) => x.user_id)).size,
            visits: s.reduce((a, x) => a + x.visit_count, 0),
          };
        }),
      );
    },
    'session-duration': (result) => {
      assert.deepEqual(result.columns, ['dt', 'sessions', 'avg_duration_s', 'p95_duration_s']);
      assert.deepEqual(
        result.rows.map((r) => r.dt),
        days(),
      );
      for (const r of result.rows) {
        const d = sessions()
          .filter((x) => x.dt === r.dt)
          .map((x) => x.duration_ms)
          .sort((a, b) => a - b);
        assert.equal(r.sessions, d.length);
        const avg = d.reduce((a, x) => a + x, 0) / d.length / 1000;
        assert.ok(Math.abs((r.avg_duration_s as number) - avg) < 0.0006, `avg ${r.avg_duration_s} vs ${avg}`);
        // approx_percentile: between the exact 90th percentile and the maximum
        const p95 = r.p95_duration_s as number;
        const p90 = d[Math.floor(0.9 * (d.length - 1))]! / 1000;
        assert.ok(p95 >= p90 - 0.001 && p95 <= d[d.length - 1]! / 1000 + 0.001, `p95 ${p95}, p90 ${p90}`);
      }
    },
    'top-entry-pages': (result) => {
      const counts = new Map<string, number>();
      for (const s of sessions())
        counts.set(s.visited_pages[0]!.page, (counts.get(s.visited_pages[0]!.page) ?? 0) + 1);
      const expected = [...counts]
        .map(([entry_page, n]) => ({ entry_page, sessions: n }))
        .sort((a, b) => b.sessions - a.sessions || (a.entry_page < b.entry_page ? -1 : 1))
        .slice(0, 20);
      assert.deepEqual(result.rows, expected);
      assert.ok(result.rows.some((r) => r.entry_page === NASTY_PAGE));
    },
    'late-visit-ratio': (result) => {
      const late = lines.late_visits!;
      const all = [...new Set([...days(), ...late.keys()])].sort();
      assert.deepEqual(
        result.rows,
        all.map((dt) => {
          const visits = sessions()
            .filter((x) => x.dt === dt)
            .reduce((a, x) => a + x.visit_count, 0);
          const l = late.get(dt)?.length ?? 0;
          return {
            dt,
            session_visits: visits,
            late_visits: l,
            late_ratio: Math.round((l / (l + visits)) * 1e6) / 1e6,
          };
        }),
      );
      assert.ok(result.rows.some((r) => (r.late_visits as number) > 0));
    },
  };

  it('every saved query has a check here', () => {
    assert.deepEqual(SAVED_QUERIES.map((q) => q.name).sort(), Object.keys(checks).sort());
  });

  for (const q of SAVED_QUERIES) {
    it(`${q.name} gives the numbers counted in the files`, async () => {
      const check = checks[q.name];
      assert.ok(check, `no check for ${q.name}`);
      check(await outputs.runQuery(q.sql));
      assert.deepEqual(await outputs.runSaved(q.name), await outputs.runQuery(q.sql));
    });
  }

  it('Trino compatibility: approx_percentile, approx_distinct, integer division', async () => {
    const r = (
      await outputs.runQuery(`SELECT 7 / 2 AS int_div, 7 / 2.0 AS dec_div,
        approx_percentile(x, 0.5) AS median, approx_distinct(x) AS distinct_n
        FROM range(1, 102) AS t(x)`)
    ).rows[0]!;
    assert.equal(r.int_div, 3);
    assert.equal(r.dec_div, 3.5);
    assert.ok(Math.abs((r.median as number) - 51) <= 1, String(r.median));
    assert.ok(Math.abs((r.distinct_n as number) - 101) <= 5, String(r.distinct_n));
  });

  it('reads timestamps with the SerDe format of the schema', () => {
    assert.equal(strptimeFormat(TIMESTAMP_FORMAT), '%Y-%m-%dT%H:%M:%S.%gZ');
    assert.equal(strptimeFormat("yyyy-MM-dd HH:mm:ss''"), "%Y-%m-%d %H:%M:%S'");
    assert.throws(() => strptimeFormat('yyyy-MM-dd EEE'), /unsupported/);
  });
});

describe('output formats', () => {
  it('--json: an array of row objects, BigInt as numbers, timestamps as ISO strings', async () => {
    const result = await outputs.runQuery(
      `SELECT session_id, start_time, duration_ms, visit_count, visited_pages, count(*) OVER () AS total
       FROM sessions ORDER BY session_id LIMIT 3`,
    );
    const parsed = JSON.parse(formatJson(result)) as Record<string, unknown>[];
    const fromFiles = [...lines.sessions!.values()]
      .flat()
      .sort((a, b) => (String(a.session_id) < String(b.session_id) ? -1 : 1));
    assert.equal(parsed.length, 3);
    parsed.forEach((row, i) => {
      const f = fromFiles[i]!;
      assert.deepEqual(row, {
        session_id: f.session_id,
        start_time: f.start_time,
        duration_ms: f.duration_ms,
        visit_count: f.visit_count,
        visited_pages: f.visited_pages,
        total: fromFiles.length,
      });
      assert.equal(typeof row.total, 'number');
    });
    assert.deepEqual(toPlain(12n), 12);
    assert.deepEqual(toPlain(2n ** 64n), '18446744073709551616');
    assert.deepEqual(toPlain(new Date(Date.UTC(2026, 1, 15, 17, 5, 34, 432))), '2026-02-15T17:05:34.432Z');
    assert.deepEqual(JSON.parse(formatJson(await outputs.runQuery('SELECT 1 AS a WHERE false'))), []);
  });

  it('--csv: RFC 4180 quoting, header row, CRLF, nulls empty, nested values as JSON', async () => {
    const result = await outputs.runQuery(
      `SELECT 'plain' AS a, 'com,ma' AS b, 'say "hi"' AS c, 'two' || chr(10) || 'lines' AS d, NULL AS e, 42::BIGINT AS f,
        TIMESTAMP '2026-02-15 17:05:34.432' AS g, [1, 2] AS h`,
    );
    const text = formatCsv(result);
    assert.equal(
      text,
      'a,b,c,d,e,f,g,h\r\nplain,"com,ma","say ""hi""","two\nlines",,42,2026-02-15T17:05:34.432Z,"[1,2]"\r\n',
    );
    assert.deepEqual(parseCsv(text, { columns: true }), [
      {
        a: 'plain',
        b: 'com,ma',
        c: 'say "hi"',
        d: 'two\nlines',
        e: '',
        f: '42',
        g: '2026-02-15T17:05:34.432Z',
        h: '[1,2]',
      },
    ]);
    assert.equal(csvField('cr\rhere'), '"cr\rhere"');
    // the entry-page saved query, round trip through a CSV parser
    const top = await outputs.runSaved('top-entry-pages');
    const back = parseCsv(formatCsv(top), { columns: true }) as Record<string, string>[];
    assert.deepEqual(
      back.map((r) => [r.entry_page, Number(r.sessions)]),
      top.rows.map((r) => [r.entry_page, r.sessions]),
    );
  });

  it('table: aligned columns, nulls shown', async () => {
    const text = formatResult(
      await outputs.runQuery(`SELECT 'x' AS name, NULL AS nothing, 12::BIGINT AS n`),
      'table',
    );
    assert.equal(
      text,
      '+----+-------+--+\n|name|nothing|n |\n+----+-------+--+\n|x   |null   |12|\n+----+-------+--+\n',
    );
  });
});

describe('sources', () => {
  it('an empty folder: the same columns, no rows, every saved query runs', async () => {
    const empty = join(tmp, 'empty');
    await mkdir(empty);
    const e = await openOutputs(empty);
    try {
      for (const d of DATASETS) {
        assert.deepEqual(await describeView(e, d.name), await describeView(outputs, d.name), d.name);
        assert.deepEqual((await e.runQuery(`SELECT count(*) AS n FROM ${d.name}`)).rows, [{ n: 0 }]);
      }
      for (const q of SAVED_QUERIES) {
        const r = await e.runQuery(q.sql);
        assert.deepEqual(r.rows, [], q.name);
        assert.ok(r.columns.length > 0);
      }
    } finally {
      await e.close();
    }
  });

  it('a folder with sessions only (and an empty partition file): late_visits is empty, the ratio is 0', async () => {
    const partial = join(tmp, 'partial');
    await cp(join(out, 'sessions'), join(partial, 'sessions'), { recursive: true });
    await mkdir(join(partial, 'late-visits', 'dt=2026-02-15'), { recursive: true });
    await writeFile(join(partial, 'late-visits', 'dt=2026-02-15', 'empty.jsonl'), '');
    await writeFile(join(partial, 'sessions', '.DS_Store'), 'not json');
    const p = await openOutputs({ dir: partial });
    try {
      const ratio = await p.runSaved('late-visit-ratio');
      assert.equal(ratio.rows.length, lines.sessions!.size);
      for (const r of ratio.rows) assert.deepEqual([r.late_visits, r.late_ratio], [0, 0]);
      assert.deepEqual(await p.runSaved('sessions-per-day'), await outputs.runSaved('sessions-per-day'));
    } finally {
      await p.close();
    }
  });

  it('a missing folder is an error', async () => {
    await assert.rejects(openOutputs(join(tmp, 'nope')), /no such folder/);
  });

  it('the local stack: the output bucket copied through the S3 API', async () => {
    const home = join(tmp, 'home');
    const file = join(tmp, 'stack-visits.jsonl');
    const visits = [
      { user_id: 'a', visit_time: '2026-02-15T10:00:00.000Z', page: 'home.html' },
      { user_id: 'a', visit_time: '2026-02-15T10:01:00.000Z', page: 'cart.html' },
      { user_id: 'b', visit_time: '2026-02-15T11:00:00.000Z', page: 'search.html' },
    ];
    await writeFile(file, `${visits.map((v) => JSON.stringify(v)).join('\n')}\nnot json\n`);
    const stack = await startLocalStack({ home, inMemory: true, env: { [ENV.gap]: '10m' } });
    try {
      await stack.clients.s3.send(
        new PutObjectCommand({
          Bucket: stack.config.visitsBucket,
          Key: `${stack.config.visitsPrefix}stack-visits.jsonl`,
          Body: await readFile(file),
        }),
      );
      await stack.idle();
      await stack.invokeWithRetries({ action: 'flush', id: 'query-test' });
    } finally {
      await stack.stop();
    }
    const text = await queryCommand(
      'SELECT user_id, visit_count, visited_pages[1].page AS entry, dt FROM sessions ORDER BY user_id',
      { json: true },
      { home, inMemory: true },
    );
    assert.deepEqual(JSON.parse(text), [
      { user_id: 'a', visit_count: 2, entry: 'home.html', dt: '2026-02-15' },
      { user_id: 'b', visit_count: 1, entry: 'search.html', dt: '2026-02-15' },
    ]);
    const rejected = JSON.parse(
      await queryCommand('SELECT raw, source_line FROM rejected', { json: true }, { home, inMemory: true }),
    );
    assert.deepEqual(rejected, [{ raw: 'not json', source_line: 4 }]);
  });
});

describe('the CLI', () => {
  it('query "SQL" --dir --csv, --saved NAME --json, and a usage error', async () => {
    const [count, saved, both] = await Promise.all([
      run(['query', 'select count(*) as n from sessions', '--dir', out, '--csv']),
      run(['query', '--saved', 'sessions-per-day', '--dir', out, '--json']),
      run(['query', 'select 1', '--dir', out, '--json', '--csv']),
    ]);
    const sessionLines = [...lines.sessions!.values()].flat().length;
    assert.equal(count.code, 0, count.stderr);
    assert.equal(count.stdout, `n\r\n${sessionLines}\r\n`);
    assert.equal(saved.code, 0, saved.stderr);
    assert.deepEqual(JSON.parse(saved.stdout), (await outputs.runSaved('sessions-per-day')).rows);
    assert.equal(both.code, 1);
    assert.match(both.stderr, /sessionizer: --json and --csv: choose one/);
  });

  it('--list, and the other usage errors', async () => {
    const list = await queryCommand(undefined, { list: true }, {});
    for (const q of SAVED_QUERIES) assert.ok(list.includes(`|${q.name.padEnd(16)}|${q.description}`), list);
    await assert.rejects(queryCommand(undefined, { dir: out }, {}), /missing SQL/);
    await assert.rejects(queryCommand(undefined, { dir: out, saved: 'nope' }, {}), /no saved query "nope"/);
    await assert.rejects(queryCommand('select 1', { dir: out, saved: 'sessions-per-day' }, {}), /not both/);
    await assert.rejects(queryCommand('select nope from sessions', { dir: out }, {}), /nope/);
  });
});
