/**
 * What the deployed handler writes, run in a process of its own as Lambda runs it: Powertools JSON log lines
 * carrying the request id, at the level the environment sets, and embedded-metric-format lines in the `Sessionizer`
 * namespace with no dimensions (what the alarms and the dashboard read), plus the cold-start metric once.
 */

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { localEnv } from '../../bin/run.js';
import type { LocalStack } from '../../infra/local/stack.ts';
import { METRICS } from '../../lambdas/telemetry.ts';
import { s3Batch } from '../helpers/events.ts';
import { jsonl, putObject, startTestStack } from '../helpers/local.ts';

const CHILD = fileURLToPath(new URL('../helpers/handler-child.ts', import.meta.url));

type Line = Record<string, unknown> & {
  _aws?: { CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string }[] }[] };
};

/** The JSON lines the handler writes (stdout and stderr) for `events`, invoked one after the other. */
async function run(stack: LocalStack, events: unknown[], env: Record<string, string> = {}): Promise<Line[]> {
  const { stdout, stderr } = await promisify(execFile)(
    process.execPath,
    [CHILD, JSON.stringify(events)],
    // Lambda sets the initialization type; Powertools counts a cold start only for on-demand containers
    {
      env: localEnv({ ...process.env, ...stack.env, AWS_LAMBDA_INITIALIZATION_TYPE: 'on-demand', ...env }),
      maxBuffer: 16 * 1024 * 1024,
    },
  );
  return `${stdout}\n${stderr}`
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Line);
}

const metricNames = (lines: Line[]) =>
  lines.flatMap((l) => (l._aws?.CloudWatchMetrics ?? []).flatMap((d) => d.Metrics.map((m) => m.Name)));

describe("the deployed handler's logs and metrics (Powertools)", () => {
  let stack: LocalStack;
  let batch: unknown;
  before(async () => {
    stack = await startTestStack({ notifications: false });
    const key = 'visits/telemetry.jsonl';
    const etag = await putObject(stack, key, jsonl([['t', Date.now() - 3_600_000, 'a.html']]));
    batch = s3Batch(stack.config.visitsBucket, [{ key, etag }]);
  });
  after(() => stack.stop());

  it('writes the request id on every log line, dimensionless metrics in the Sessionizer namespace, one cold start', async () => {
    const lines = await run(stack, [batch, { action: 'flush', id: 'telemetry' }], {
      POWERTOOLS_LOG_LEVEL: 'INFO',
    });

    const logs = lines.filter((l) => l._aws === undefined);
    assert.ok(logs.length >= 2, 'log lines of both invocations');
    for (const l of logs) assert.match(String(l.function_request_id), /^req-[12]$/, JSON.stringify(l));
    const directives = lines.flatMap((l) => l._aws?.CloudWatchMetrics ?? []);
    const pipeline = directives.filter((d) => d.Metrics.some((m) => m.Name === 'SessionsClosed'));
    assert.equal(pipeline.length, 2, 'one metrics line per invocation');
    for (const d of pipeline) {
      assert.deepEqual(d.Dimensions, [[]], 'no dimensions: what the alarms read');
      assert.equal(d.Namespace, 'Sessionizer');
      for (const m of d.Metrics) assert.ok(m.Name in METRICS, m.Name);
    }
    assert.equal(metricNames(lines).filter((n) => n === 'ColdStart').length, 1, 'a cold start, once');
  });

  it('takes its log level from the environment (POWERTOOLS_LOG_LEVEL)', async () => {
    const lines = await run(stack, [{ action: 'flush', id: 'quiet' }], { POWERTOOLS_LOG_LEVEL: 'ERROR' });

    assert.deepEqual(
      lines.filter((l) => l._aws === undefined),
      [],
    );
    assert.ok(
      metricNames(lines).includes('SessionsClosed'),
      'metrics are not logs: they are written whatever the level',
    );
  });
});
