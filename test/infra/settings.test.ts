import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { App } from 'aws-cdk-lib';
import { RetentionDays } from 'aws-cdk-lib/aws-logs';
import { CDK_JSON, createApp } from '../../infra/sessionizer-app.ts';
import { SettingsError } from '../../infra/setting-values.ts';
import {
  DEFAULT_SETTINGS,
  durationEnv,
  resolveSettings,
  SETTING_NAMES,
  settingsFromContext,
} from '../../infra/settings.ts';

const fails = (input: Record<string, unknown>, message: RegExp) =>
  assert.throws(
    () => resolveSettings(input as never),
    (error: unknown) => error instanceof SettingsError && message.test(error.message),
  );

describe('settings', () => {
  it('defaults to the design defaults', () => {
    const s = resolveSettings();
    assert.equal(s.sessionGapMs, 40 * 60_000);
    assert.equal(s.allowedLatenessMs, 15 * 60_000);
    assert.equal(s.maxSessionDurationMs, null);
    assert.equal(s.maxSessionVisits, 50_000);
    assert.equal(s.maxFutureSkewMs, 3_600_000);
    assert.equal(s.idleTimeoutMs, null);
    assert.equal(s.shards, 16);
    assert.equal(s.scheduleRateMinutes, 5);
    assert.equal(s.visitsPrefix, 'visits/');
    assert.equal(s.visitsSuffix, '');
    assert.equal(s.reservedConcurrency, null);
    assert.equal(s.queueBatchSize, 100);
    assert.equal(s.queueBatchingWindowSeconds, 20);
    assert.equal(s.queueMaxConcurrency, 4);
    assert.equal(s.logRetentionDays, RetentionDays.ONE_MONTH);
    assert.equal(s.maxEventAgeMs, 6 * 3_600_000);
    assert.equal(s.queueAgeAlarmSeconds, 30 * 60);
    assert.equal(s.logLagAlarm, 1000);
    assert.equal(s.stagingExpirationDays, 30);
    assert.equal(s.removalPolicy, 'retain');
    assert.equal(s.deletionProtection, true);
    assert.equal(s.alarmEmail, null);
  });

  it('cdk.json context holds exactly the default settings', () => {
    const context = (JSON.parse(readFileSync(CDK_JSON, 'utf8')) as { context: Record<string, unknown> })
      .context;
    const ours = Object.fromEntries(
      Object.entries(context).filter(([k]) => !k.includes(':') && !k.includes('/')),
    );
    assert.deepEqual(ours, DEFAULT_SETTINGS);
  });

  it('accepts strings from `cdk synth -c` for numbers and booleans', () => {
    const s = resolveSettings({
      scheduleRateMinutes: '10',
      memorySizeMb: '2048',
      timeoutSeconds: '60',
      reservedConcurrency: '5',
      logRetentionDays: '90',
      deletionProtection: 'false',
      shards: '64',
      queueBatchSize: '500',
      queueMaxConcurrency: '5',
      logLagAlarm: '250',
      stagingExpirationDays: '7',
    });
    assert.equal(s.scheduleRateMinutes, 10);
    assert.equal(s.memorySizeMb, 2048);
    assert.equal(s.timeoutSeconds, 60);
    assert.equal(s.reservedConcurrency, 5);
    assert.equal(s.logRetentionDays, 90);
    assert.equal(s.deletionProtection, false);
    assert.equal(s.shards, 64);
    assert.equal(s.queueBatchSize, 500);
    assert.equal(s.queueMaxConcurrency, 5);
    assert.equal(s.logLagAlarm, 250);
    assert.equal(s.stagingExpirationDays, 7);
  });

  it('reads the queue durations in whole seconds', () => {
    const s = resolveSettings({ queueBatchingWindow: '5m', queueAgeAlarm: '2h' });
    assert.equal(s.queueBatchingWindowSeconds, 300);
    assert.equal(s.queueAgeAlarmSeconds, 7200);
  });

  it('accepts no batching window for batches of at most 10 messages', () => {
    const s = resolveSettings({ queueBatchSize: 10, queueBatchingWindow: '0s' });
    assert.equal(s.queueBatchingWindowSeconds, 0);
  });

  it('accepts a queue concurrency up to the reserved concurrency', () => {
    const s = resolveSettings({ reservedConcurrency: 4, queueMaxConcurrency: 4 });
    assert.equal(s.queueMaxConcurrency, 4);
  });

  it('parses durations with the function’s own parser, and "off"', () => {
    const s = resolveSettings({
      sessionGap: '30m',
      allowedLateness: '90s',
      maxSessionDuration: '4h',
      idleTimeout: 'OFF',
    });
    assert.equal(s.sessionGapMs, 30 * 60_000);
    assert.equal(s.allowedLatenessMs, 90_000);
    assert.equal(s.maxSessionDurationMs, 4 * 3_600_000);
    assert.equal(s.idleTimeoutMs, null);
    assert.equal(durationEnv(s.sessionGapMs), '30m');
    assert.equal(durationEnv(s.idleTimeoutMs), 'off');
  });

  it("fails with a clear message when sessionGap is 'abc'", () => {
    assert.throws(
      () => resolveSettings({ sessionGap: 'abc' }),
      (error: unknown) =>
        error instanceof SettingsError &&
        error.message.startsWith('sessionGap: invalid duration "abc"') &&
        /40m/.test(error.message),
    );
  });

  it('fails when sessionGap is zero', () =>
    fails({ sessionGap: '0m' }, /^sessionGap: must be a positive duration/));
  it('fails when maxSessionDuration is neither a duration nor off', () =>
    fails({ maxSessionDuration: 'never' }, /^maxSessionDuration: invalid duration "never"/));

  it('fails when maxSessionVisits is neither a positive integer nor off', () =>
    fails({ maxSessionVisits: 0 }, /^maxSessionVisits: /));

  it('fails when maxFutureSkew is not a duration, or over 7 days (Athena projects a day each)', () => {
    fails({ maxFutureSkew: 'soon' }, /^maxFutureSkew: invalid duration "soon"/);
    fails({ maxFutureSkew: '8d' }, /^maxFutureSkew: expected at most 7d/);
  });
  it('fails when idleTimeout is zero', () =>
    fails({ idleTimeout: '0' }, /^idleTimeout: must be a positive duration or "off"/));
  it('fails on an unknown setting (a typo is never ignored)', () =>
    fails({ sesionGap: '30m' }, /^unknown setting "sesionGap"; known settings: pipelineName, sessionGap/));
  it('fails when scheduleRateMinutes is not a whole number of minutes', () =>
    fails(
      { scheduleRateMinutes: '2.5' },
      /^scheduleRateMinutes: expected an integer from 1 to 1440, got "2.5"/,
    ));
  it('fails when memorySizeMb is out of range', () =>
    fails({ memorySizeMb: 64 }, /^memorySizeMb: expected an integer from 128 to 10240, got 64/));
  it('fails when timeoutSeconds exceeds the Lambda maximum', () =>
    fails({ timeoutSeconds: 901 }, /^timeoutSeconds: expected an integer from 1 to 900/));
  it('fails when logRetentionDays is not a CloudWatch value', () =>
    fails({ logRetentionDays: 31 }, /^logRetentionDays: expected one of 1, 3, 5, 7, 14, 30, 60/));
  it('fails when the visits prefix does not end in a slash', () =>
    fails({ visitsPrefix: 'visits' }, /^visitsPrefix: expected "" or a key prefix ending in "\/"/));
  it('fails when maxEventAge is outside what Lambda allows', () =>
    fails({ maxEventAge: '7h' }, /^maxEventAge: expected whole seconds from 60s to 6h, got "7h"/));
  it('fails when the lag alarm would always fire', () =>
    fails({ watermarkLagAlarm: '10m' }, /^watermarkLagAlarm: must be longer than allowedLateness \(15m\)/));
  it('fails on an unknown removal policy', () =>
    fails({ removalPolicy: 'snapshot' }, /^removalPolicy: expected "retain" or "destroy", got "snapshot"/));
  it('fails when destroy is asked with deletion protection on', () =>
    fails(
      { removalPolicy: 'destroy' },
      /^deletionProtection: must be false when removalPolicy is "destroy"/,
    ));
  it('fails on a boolean it cannot read', () =>
    fails({ deletionProtection: 'yes' }, /^deletionProtection: expected true or false, got "yes"/));
  it('fails when shards is outside 1 to 256', () =>
    fails({ shards: 257 }, /^shards: expected an integer from 1 to 256, got 257/));
  it('fails when shards is not a whole number', () =>
    fails({ shards: '1.5' }, /^shards: expected an integer from 1 to 256, got "1.5"/));
  it('fails when queueBatchSize exceeds what Lambda allows', () =>
    fails({ queueBatchSize: 10_001 }, /^queueBatchSize: expected an integer from 1 to 10000, got 10001/));
  it('fails when queueBatchingWindow exceeds 5 minutes', () =>
    fails(
      { queueBatchingWindow: '6m' },
      /^queueBatchingWindow: expected whole seconds from 0s to 5m, got "6m"/,
    ));
  it('fails when queueBatchingWindow is not whole seconds', () =>
    fails({ queueBatchingWindow: '1500ms' }, /^queueBatchingWindow: expected whole seconds from 0s to 5m/));
  it('fails when a batch of more than 10 messages has no batching window', () =>
    fails(
      { queueBatchSize: 11, queueBatchingWindow: '0s' },
      /^queueBatchingWindow: must be at least 1s when queueBatchSize is over 10/,
    ));
  it('fails when queueMaxConcurrency is below the SQS minimum of 2', () =>
    fails({ queueMaxConcurrency: 1 }, /^queueMaxConcurrency: expected an integer from 2 to 1000, got 1/));
  it('fails when queueMaxConcurrency exceeds the reserved concurrency', () =>
    fails(
      { reservedConcurrency: 3, queueMaxConcurrency: 4 },
      /^queueMaxConcurrency: must not exceed reservedConcurrency \(3\)/,
    ));
  it('fails when queueAgeAlarm is not a duration', () =>
    fails({ queueAgeAlarm: 'soon' }, /^queueAgeAlarm: invalid duration "soon"/));
  it('fails when queueAgeAlarm exceeds the queue retention', () =>
    fails({ queueAgeAlarm: '5d' }, /^queueAgeAlarm: expected whole seconds from 1s to 4d, got "5d"/));
  it('fails when the queue-age alarm would fire on every batching window', () =>
    fails({ queueAgeAlarm: '20s' }, /^queueAgeAlarm: must be longer than queueBatchingWindow \(20s\)/));
  it('fails when logLagAlarm is zero', () =>
    fails({ logLagAlarm: 0 }, /^logLagAlarm: expected an integer from 1 to 1000000, got 0/));
  it('fails when stagingExpirationDays is zero', () =>
    fails(
      { stagingExpirationDays: '0' },
      /^stagingExpirationDays: expected an integer from 1 to 3650, got "0"/,
    ));
  it('fails on a pipeline name CloudFormation or Glue cannot use', () =>
    fails({ pipelineName: 'My_Pipeline' }, /^pipelineName: expected 1 to 30 lower-case letters/));
  it('fails on a malformed alarm e-mail', () =>
    fails({ alarmEmail: 'ops' }, /^alarmEmail: expected an e-mail address/));

  it('reads settings from CDK context, ignoring CDK’s own keys', () => {
    const app = new App({
      context: { sessionGap: '20m', '@aws-cdk/core:someFlag': true, 'aws:cdk:enable-path-metadata': true },
    });
    assert.equal(settingsFromContext(app.node).sessionGapMs, 20 * 60_000);
    assert.deepEqual(SETTING_NAMES, Object.keys(DEFAULT_SETTINGS));
  });

  it('fails the app build (before any synth) when a context setting is invalid', () => {
    assert.throws(
      () => createApp({ context: { sessionGap: 'abc' } }),
      /^SettingsError: sessionGap: invalid duration "abc"/,
    );
  });
});
