/**
 * The first minutes of a new user: `npm run demo`, then the commands it suggests, on the same local stack home:
 * `query` finds the demo's three sessions, `status` and `report` describe the same run.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { demo, NEXT_COMMANDS } from '../../cli/demo.ts';
import { withStack } from '../../cli/local.ts';
import { queryCommand } from '../../cli/query.ts';
import { reportCommand } from '../../cli/report.ts';
import { readSummary } from '../../cli/state.ts';

describe('the demo, then the commands it suggests', () => {
  let home: string;
  const printed: string[] = [];
  before(async () => {
    home = await mkdtemp(join(tmpdir(), 'sessionizer-demo-test-'));
    // something left by an earlier run: the demo starts from nothing
    await writeFile(join(home, 'left-over'), 'x');
    await demo({ home, print: (line) => printed.push(line) });
  });
  after(() => rm(home, { recursive: true, force: true }));

  it('says it resets the home, and ends with the next commands to try', async () => {
    assert.match(printed[0]!, /resetting the local stack's home/);
    assert.deepEqual(
      printed.slice(-NEXT_COMMANDS.length),
      NEXT_COMMANDS.map((c) => `  ${c}`),
    );
    await assert.rejects(readFile(join(home, 'left-over')), 'the home was emptied first');
  });

  it('leaves its three sessions for `query`', async () => {
    const out = await queryCommand('SELECT count(*) AS n FROM sessions', { json: true }, { home });

    assert.deepEqual(JSON.parse(out), [{ n: 3 }]);
  });

  it('and `status` and `report` describe the same run: three sessions closed, user 4 pending', async () => {
    const status = await withStack({ home, notifications: false }, (stack) =>
      readSummary(stack.inspect, stack.config),
    );
    const report = await reportCommand({ out: join(home, 'report.html') }, { home });

    assert.deepEqual([status.sessionsClosed, status.pendingSessions, status.objects], [3, 1, 3]);
    assert.equal(report.sessions, 3);
  });
});
