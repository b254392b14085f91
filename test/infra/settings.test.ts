import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { App } from 'aws-cdk-lib';
import { RetentionDays } from 'aws-cdk-lib/aws-logs';
import { CDK_JSON, createApp } from '../../infra/sessionizer-app.ts';
import {
  DEFAULT_SETTINGS,
  durationEnv,
  resolveSettings,
  SETTING_NAMES,
  SettingsError,
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
    assert.equal(s.idleTimeoutMs, null);
    assert.equal(s.scheduleRateMinutes, 5);
    assert.equal(s.visitsPrefix, 'visits/');
    assert.equal(s.visitsSuffix, '');
    assert.equal(s.reservedConcurrency, null);
    assert.equal(s.logRetentionDays, RetentionDays.ONE_MONTH);
    assert.equal(s.maxEventAgeMs, 6 * 3_600_000);
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
    });
    assert.equal(s.scheduleRateMinutes, 10);
    assert.equal(s.memorySizeMb, 2048);
    assert.equal(s.timeoutSeconds, 60);
    assert.equal(s.reservedConcurrency, 5);
    assert.equal(s.logRetentionDays, 90);
    assert.equal(s.deletionProtection, false);
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
