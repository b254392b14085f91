/**
 * cdk-nag 3 runs as a CDK validation plugin (`Validations.of(app).addPlugins(new AwsSolutionsChecks(app))`): its
 * findings are not annotations but a validation report, and an unacknowledged error fails `app.synth()`. So the
 * tests synthesize (the plugin must pass), then run the same checks directly to see warnings too, and check that
 * every acknowledgment is specific, reasoned and still matches a finding.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type App, Validations } from 'aws-cdk-lib';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { createApp } from '../../infra/sessionizer-app.ts';
import { PLACEHOLDER_CODE } from './fixtures.ts';

interface Acknowledgment {
  readonly path: string;
  readonly id: string;
  readonly reason: string;
}

function acknowledgments(root: IConstruct): Acknowledgment[] {
  const out: Acknowledgment[] = [];
  for (const c of root.node.findAll()) {
    for (const entry of c.node.metadata) {
      if (entry.type !== Validations.ACKNOWLEDGED_RULES_METADATA_KEY) continue;
      for (const [id, reason] of Object.entries(entry.data as Record<string, string>)) {
        out.push({ path: c.node.path, id: id.replace(/^annotation::/i, ''), reason });
      }
    }
  }
  return out;
}

/** Runs the AWS Solutions checks over `app`, recording which acknowledged rule IDs suppressed a finding. */
function check(app: App) {
  const checks = new AwsSolutionsChecks(undefined, { verbose: true });
  const used = new Set<string>();
  // isAcknowledged is private in the types only; wrap it to see which acknowledgments are in use.
  const target = checks as unknown as { isAcknowledged: (node: IConstruct, ruleId: string) => boolean };
  const original = target.isAcknowledged.bind(checks);
  target.isAcknowledged = (node, ruleId) => {
    const acknowledged = original(node, ruleId);
    if (acknowledged) used.add(ruleId);
    return acknowledged;
  };
  const report = checks.validateScope(app);
  const findings = report.violations.flatMap((v) =>
    v.violatingResources.map((r) => `${v.severity} ${v.ruleName} at ${r.constructPath}`),
  );
  return { findings, used };
}

for (const [label, context] of [
  ['default settings', {}],
  [
    'removalPolicy destroy, no prefix, e-mail, small batches',
    {
      removalPolicy: 'destroy',
      deletionProtection: false,
      visitsPrefix: '',
      alarmEmail: 'ops@example.com',
      reservedConcurrency: 5,
      queueBatchSize: 10,
      queueBatchingWindow: '0s',
    },
  ],
] as const) {
  describe(`cdk-nag AwsSolutions (${label})`, () => {
    const { app } = createApp({ functionCode: PLACEHOLDER_CODE, context });
    // Throws "Validation failed" if the plugin reports an unacknowledged error.
    app.synth();
    const { findings, used } = check(app);

    it('synthesizes with the AwsSolutions plugin and has no unacknowledged finding, error or warning', () => {
      assert.deepEqual(findings, []);
    });

    it('acknowledges IAM5 only for the object prefixes the function reads or writes', () => {
      const wildcards = acknowledgments(app)
        .filter((a) => a.id.startsWith('AwsSolutions-IAM5'))
        .map((a) => /:s3:::(.*)\]$/.exec(a.id)?.[1] ?? a.id)
        .sort();
      const visits = (context as { visitsPrefix?: string }).visitsPrefix ?? 'visits/';
      const output = (prefix: string) => `sessionizer:output-bucket-name/${prefix}*`;
      assert.deepEqual(
        wildcards,
        [
          `sessionizer:visits-bucket-name/${visits}*`,
          output('sessions/'),
          output('late-visits/'),
          output('rejected/'),
          output('_sessionizer/staging/'),
          output('_sessionizer/state/'),
        ].sort(),
      );
    });

    it('acknowledges only specific findings, each with a written reason', () => {
      const acks = acknowledgments(app).filter((a) => a.id.startsWith('AwsSolutions-'));
      assert.ok(acks.length > 0);
      for (const a of acks) {
        assert.ok(a.reason.length >= 60, `${a.id} at ${a.path}: reason too short: ${a.reason}`);
        // IAM5 is acknowledged per resource, never for the whole rule.
        if (a.id.startsWith('AwsSolutions-IAM5')) assert.match(a.id, /^AwsSolutions-IAM5\[Resource::.+\]$/);
        assert.ok(!a.id.includes('Action::'), `wildcard action acknowledged: ${a.id}`);
      }
    });

    it('has no stale acknowledgment: each one suppresses a real finding', () => {
      const stale = acknowledgments(app)
        .filter((a) => a.id.startsWith('AwsSolutions-') && !used.has(a.id))
        .map((a) => `${a.id} at ${a.path}`);
      assert.deepEqual(stale, []);
    });
  });
}

describe('cdk-nag is wired into the app', () => {
  it('fails the synth when a resource breaks an AwsSolutions rule', () => {
    const { app, pipeline } = createApp({ functionCode: PLACEHOLDER_CODE });
    new sqs.Queue(pipeline, 'UnencryptedQueue', { encryption: sqs.QueueEncryption.UNENCRYPTED });
    assert.throws(() => app.synth(), /Validation failed/);
  });

  it('can be turned off for in-process template reads', () => {
    const { app, pipeline } = createApp({ functionCode: PLACEHOLDER_CODE, nag: false });
    new sqs.Queue(pipeline, 'UnencryptedQueue', { encryption: sqs.QueueEncryption.UNENCRYPTED });
    assert.doesNotThrow(() => app.synth());
  });
});
