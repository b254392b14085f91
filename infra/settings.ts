/**
 * Deployment settings: read from CDK context (cdk.json `context`, or `cdk synth -c sessionGap=30m`) or passed as
 * props, validated once at synth. A bad value fails the synth at once with a lowercase message that names the
 * setting and says what was expected.
 *
 * Durations use the function's own parser (`40m`, `90s`, `2h`, `1d`), so the stack accepts exactly what the
 * Lambda will accept from its environment. Numbers carry their unit in the name (`timeoutSeconds`).
 */
import { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { Node } from 'constructs';
import { formatDuration } from '../lambdas/core/duration.ts';
import { MAX_SHARDS } from '../lambdas/core/shards.ts';
import { DEFAULT_MAX_SESSION_VISITS, MAX_SESSION_VISITS_LIMIT } from '../lambdas/core/types.ts';
import { INGEST_RETENTION_DAYS } from './constructs/ingest-queue.ts';
import {
  boolean,
  duration,
  durationOrOff,
  fail,
  integer,
  keyPrefix,
  positiveDuration,
  secondsText,
  text,
  wholeSeconds,
} from './setting-values.ts';

/** Settings as written by a user: every field optional, numbers and booleans may be strings (from `-c`). */
export interface SettingsInput {
  /** Lower-case name used for the Glue database, the Athena workgroup, the dashboard and the stack names. */
  readonly pipelineName?: string;
  /** Inactivity gap that ends a session. @default '40m' */
  readonly sessionGap?: string | number;
  /** How far the watermark trails the newest visit. @default '15m' */
  readonly allowedLateness?: string | number;
  /** Longest session before a visit starts a new one, or `off`. @default 'off' */
  readonly maxSessionDuration?: string | number;
  /** Most visits in one session (the next visit starts a new one), or `off`. @default 50000 */
  readonly maxSessionVisits?: string | number;
  /** How far a visit_time may be ahead of the function's clock; a later one is a rejected record. @default '1h' */
  readonly maxFutureSkew?: string | number;
  /** Wall-clock time without a batch after which a scheduled run advances the watermark, or `off`. @default 'off' */
  readonly idleTimeout?: string | number;
  /** Shards users hash into (`SESSIONIZER_SHARDS`), 1 to 256; fixed for the life of the state. @default 16 */
  readonly shards?: string | number;
  /** Minutes between scheduled catch-up/closing runs. @default 5 */
  readonly scheduleRateMinutes?: string | number;
  /** Key prefix of visit objects (notification filter and read permission). @default 'visits/' */
  readonly visitsPrefix?: string;
  /** Key suffix filter of the object-created notification, `''` for none. @default '' */
  readonly visitsSuffix?: string;
  /** @default 1024 */
  readonly memorySizeMb?: string | number;
  /** @default 300 */
  readonly timeoutSeconds?: string | number;
  /** Reserved concurrency of the function, or `off` (unreserved). @default 'off' */
  readonly reservedConcurrency?: string | number;
  /** Most messages of the ingest queue in one invocation, 1 to 10000. @default 100 */
  readonly queueBatchSize?: string | number;
  /** How long Lambda gathers messages into a batch, 0s to 5m (at least 1s for a batch size over 10). @default '20s' */
  readonly queueBatchingWindow?: string | number;
  /** Most concurrent invocations the ingest queue makes, 2 to 1000. @default 4 */
  readonly queueMaxConcurrency?: string | number;
  /** Retention of the function's log group, one of CloudWatch's allowed values. @default 30 */
  readonly logRetentionDays?: string | number;
  /** How long Lambda keeps retrying an asynchronous event before it goes to the DLQ. @default '6h' */
  readonly maxEventAge?: string | number;
  /** Watermark lag (wall clock minus watermark) above which the lag alarm fires. @default '2h' */
  readonly watermarkLagAlarm?: string | number;
  /** Age of the ingest queue's oldest message above which the queue-age alarm fires. @default '30m' */
  readonly queueAgeAlarm?: string | number;
  /** Log entries the furthest-behind shard still has to apply above which the log-lag alarm fires. @default 1000 */
  readonly logLagAlarm?: string | number;
  /** Days before Athena query results are deleted. @default 30 */
  readonly athenaResultsExpirationDays?: string | number;
  /** Days before S3 server access logs are deleted. @default 365 */
  readonly accessLogsExpirationDays?: string | number;
  /** Days before staged data (`_sessionizer/staging/` in the output bucket) is deleted. @default 30 */
  readonly stagingExpirationDays?: string | number;
  /** What happens to buckets, table and log group when the stack is deleted: `retain` or `destroy`. @default 'retain' */
  readonly removalPolicy?: string;
  /** DynamoDB deletion protection. @default true */
  readonly deletionProtection?: string | boolean;
  /** E-mail address subscribed to the alarm topic, `''` for none. @default '' */
  readonly alarmEmail?: string;
}

/** Validated settings, durations in milliseconds (`null` = off). */
export interface Settings {
  readonly pipelineName: string;
  readonly sessionGapMs: number;
  readonly allowedLatenessMs: number;
  readonly maxSessionDurationMs: number | null;
  readonly maxSessionVisits: number | null;
  readonly maxFutureSkewMs: number;
  readonly idleTimeoutMs: number | null;
  readonly shards: number;
  readonly scheduleRateMinutes: number;
  readonly visitsPrefix: string;
  readonly visitsSuffix: string;
  readonly memorySizeMb: number;
  readonly timeoutSeconds: number;
  readonly reservedConcurrency: number | null;
  readonly queueBatchSize: number;
  readonly queueBatchingWindowSeconds: number;
  readonly queueMaxConcurrency: number;
  readonly logRetentionDays: RetentionDays;
  readonly maxEventAgeMs: number;
  readonly watermarkLagAlarmMs: number;
  readonly queueAgeAlarmSeconds: number;
  /** Log entries (objects). */
  readonly logLagAlarm: number;
  readonly athenaResultsExpirationDays: number;
  readonly accessLogsExpirationDays: number;
  readonly stagingExpirationDays: number;
  readonly removalPolicy: 'retain' | 'destroy';
  readonly deletionProtection: boolean;
  readonly alarmEmail: string | null;
}

/** Defaults, also written to cdk.json's `context` (a test keeps the two equal). */
export const DEFAULT_SETTINGS = {
  pipelineName: 'sessionizer',
  sessionGap: '40m',
  allowedLateness: '15m',
  maxSessionDuration: 'off',
  maxSessionVisits: DEFAULT_MAX_SESSION_VISITS,
  maxFutureSkew: '1h',
  idleTimeout: 'off',
  shards: 16,
  scheduleRateMinutes: 5,
  visitsPrefix: 'visits/',
  visitsSuffix: '',
  memorySizeMb: 1024,
  timeoutSeconds: 300,
  reservedConcurrency: 'off',
  queueBatchSize: 100,
  queueBatchingWindow: '20s',
  queueMaxConcurrency: 4,
  logRetentionDays: 30,
  maxEventAge: '6h',
  watermarkLagAlarm: '2h',
  queueAgeAlarm: '30m',
  logLagAlarm: 1000,
  athenaResultsExpirationDays: 30,
  accessLogsExpirationDays: 365,
  stagingExpirationDays: 30,
  removalPolicy: 'retain',
  deletionProtection: true,
  alarmEmail: '',
} as const satisfies Required<SettingsInput>;

export type SettingName = keyof typeof DEFAULT_SETTINGS;
export const SETTING_NAMES = Object.keys(DEFAULT_SETTINGS) as SettingName[];

const RETENTION_DAYS = new Set<number>(
  Object.values(RetentionDays).filter((v): v is number => typeof v === 'number'),
);

type RawSettings = Record<SettingName, unknown>;

/**
 * Validates settings and fills in defaults. Unknown names fail, so a typo is never silently ignored.
 * Throws {@link SettingsError} naming the first bad setting.
 */
export function resolveSettings(input: SettingsInput = {}): Settings {
  for (const key of Object.keys(input)) {
    if (!(SETTING_NAMES as string[]).includes(key)) {
      fail(`unknown setting ${JSON.stringify(key)}; known settings: ${SETTING_NAMES.join(', ')}`);
    }
  }
  const raw = { ...DEFAULT_SETTINGS, ...stripUndefined(input) } as RawSettings;

  // Checked in this order (the first bad setting is the one named); the result's keys keep it too.
  const pipelineName = pipelineNameSetting(raw);
  const sessionRules = sessionRuleSettings(raw);
  const triggers = triggerSettings(raw);
  const functionAndQueue = functionAndQueueSettings(raw);
  const alarms = alarmSettings(
    raw,
    sessionRules.allowedLatenessMs,
    functionAndQueue.queueBatchingWindowSeconds,
  );
  const storage = storageSettings(raw);
  const alarmEmail = text('alarmEmail', raw.alarmEmail).trim();
  if (alarmEmail !== '' && !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(alarmEmail)) {
    fail(`alarmEmail: expected an e-mail address or "", got ${JSON.stringify(alarmEmail)}`);
  }

  return {
    pipelineName,
    ...sessionRules,
    ...triggers,
    ...functionAndQueue,
    ...alarms,
    ...storage,
    alarmEmail: alarmEmail === '' ? null : alarmEmail,
  };
}

function pipelineNameSetting(raw: RawSettings): string {
  const pipelineName = text('pipelineName', raw.pipelineName);
  if (!/^[a-z][a-z0-9-]{0,29}$/.test(pipelineName) || pipelineName.endsWith('-')) {
    fail(
      `pipelineName: expected 1 to 30 lower-case letters, digits or "-", starting with a letter, ` +
        `got ${JSON.stringify(pipelineName)}`,
    );
  }
  return pipelineName;
}

/** How visits make sessions, and how the state is sharded. */
function sessionRuleSettings(raw: RawSettings) {
  const sessionGapMs = positiveDuration('sessionGap', raw.sessionGap);
  const allowedLatenessMs = duration('allowedLateness', raw.allowedLateness);
  const maxSessionDurationMs = durationOrOff('maxSessionDuration', raw.maxSessionDuration);
  const maxSessionVisits =
    raw.maxSessionVisits === 'off'
      ? null
      : integer('maxSessionVisits', raw.maxSessionVisits, 1, MAX_SESSION_VISITS_LIMIT);
  const maxFutureSkewMs = duration('maxFutureSkew', raw.maxFutureSkew);
  if (maxFutureSkewMs > 7 * 86_400_000) {
    fail(
      `maxFutureSkew: expected at most 7d (Athena projects a day for each), got ${JSON.stringify(raw.maxFutureSkew)}`,
    );
  }
  const idleTimeoutMs = durationOrOff('idleTimeout', raw.idleTimeout);
  const shards = integer('shards', raw.shards, 1, MAX_SHARDS);
  return {
    sessionGapMs,
    allowedLatenessMs,
    maxSessionDurationMs,
    maxSessionVisits,
    maxFutureSkewMs,
    idleTimeoutMs,
    shards,
  };
}

/** What invokes the function: the schedule, and the visit objects whose upload notifies it. */
function triggerSettings(raw: RawSettings) {
  const scheduleRateMinutes = integer('scheduleRateMinutes', raw.scheduleRateMinutes, 1, 1440);
  const visitsPrefix = keyPrefix('visitsPrefix', raw.visitsPrefix);
  const visitsSuffix = text('visitsSuffix', raw.visitsSuffix);
  if (visitsSuffix.includes('*'))
    fail(`visitsSuffix: expected a plain key suffix, got ${JSON.stringify(visitsSuffix)}`);
  return { scheduleRateMinutes, visitsPrefix, visitsSuffix };
}

/** The function's size and concurrency, the ingest queue's batching, logs and asynchronous retries. */
function functionAndQueueSettings(raw: RawSettings) {
  const memorySizeMb = integer('memorySizeMb', raw.memorySizeMb, 128, 10_240);
  const timeoutSeconds = integer('timeoutSeconds', raw.timeoutSeconds, 1, 900);
  const reservedConcurrency =
    raw.reservedConcurrency === 'off'
      ? null
      : integer('reservedConcurrency', raw.reservedConcurrency, 1, 10_000);
  const queueBatchSize = integer('queueBatchSize', raw.queueBatchSize, 1, 10_000);
  const queueBatchingWindowSeconds = wholeSeconds('queueBatchingWindow', raw.queueBatchingWindow, 0, 300);
  if (queueBatchSize > 10 && queueBatchingWindowSeconds === 0) {
    fail(
      `queueBatchingWindow: must be at least 1s when queueBatchSize is over 10 (Lambda gathers more than 10 ` +
        `messages only within a batching window), got ${JSON.stringify(raw.queueBatchingWindow)}`,
    );
  }
  const queueMaxConcurrency = integer('queueMaxConcurrency', raw.queueMaxConcurrency, 2, 1000);
  if (reservedConcurrency !== null && queueMaxConcurrency > reservedConcurrency) {
    fail(
      `queueMaxConcurrency: must not exceed reservedConcurrency (${reservedConcurrency}): the queue would be ` +
        `throttled, and every throttled receive counts toward sending a message to the dead-letter queue; ` +
        `got ${JSON.stringify(raw.queueMaxConcurrency)}`,
    );
  }
  const logRetentionDays = integer('logRetentionDays', raw.logRetentionDays, 1, 9999);
  if (!RETENTION_DAYS.has(logRetentionDays)) {
    fail(
      `logRetentionDays: expected one of ${[...RETENTION_DAYS].sort((a, b) => a - b).join(', ')}, ` +
        `got ${JSON.stringify(raw.logRetentionDays)}`,
    );
  }
  const maxEventAgeMs = duration('maxEventAge', raw.maxEventAge);
  if (maxEventAgeMs < 60_000 || maxEventAgeMs > 6 * 3_600_000 || maxEventAgeMs % 1000 !== 0) {
    fail(`maxEventAge: expected whole seconds from 60s to 6h, got ${JSON.stringify(raw.maxEventAge)}`);
  }
  return {
    memorySizeMb,
    timeoutSeconds,
    reservedConcurrency,
    queueBatchSize,
    queueBatchingWindowSeconds,
    queueMaxConcurrency,
    logRetentionDays: logRetentionDays as RetentionDays,
    maxEventAgeMs,
  };
}

/** Alarm thresholds; each must lie beyond what the pipeline does by design (lateness, batching window). */
function alarmSettings(raw: RawSettings, allowedLatenessMs: number, queueBatchingWindowSeconds: number) {
  const watermarkLagAlarmMs = positiveDuration('watermarkLagAlarm', raw.watermarkLagAlarm);
  if (watermarkLagAlarmMs <= allowedLatenessMs) {
    fail(
      `watermarkLagAlarm: must be longer than allowedLateness (${formatDuration(allowedLatenessMs)}), since the ` +
        `watermark always trails the newest visit by allowedLateness; got ${JSON.stringify(raw.watermarkLagAlarm)}`,
    );
  }
  const queueAgeAlarmSeconds = wholeSeconds(
    'queueAgeAlarm',
    raw.queueAgeAlarm,
    1,
    INGEST_RETENTION_DAYS * 86_400,
  );
  if (queueAgeAlarmSeconds <= queueBatchingWindowSeconds) {
    fail(
      `queueAgeAlarm: must be longer than queueBatchingWindow (${secondsText(queueBatchingWindowSeconds)}), ` +
        `since messages wait that long for a batch; got ${JSON.stringify(raw.queueAgeAlarm)}`,
    );
  }
  const logLagAlarm = integer('logLagAlarm', raw.logLagAlarm, 1, 1_000_000);
  return { watermarkLagAlarmMs, queueAgeAlarmSeconds, logLagAlarm };
}

/** Expiration of stored objects, and what happens to the data when the stacks are deleted. */
function storageSettings(raw: RawSettings) {
  const athenaResultsExpirationDays = integer(
    'athenaResultsExpirationDays',
    raw.athenaResultsExpirationDays,
    1,
    3650,
  );
  const accessLogsExpirationDays = integer('accessLogsExpirationDays', raw.accessLogsExpirationDays, 1, 3650);
  const stagingExpirationDays = integer('stagingExpirationDays', raw.stagingExpirationDays, 1, 3650);
  const removalPolicy = text('removalPolicy', raw.removalPolicy);
  if (removalPolicy !== 'retain' && removalPolicy !== 'destroy') {
    fail(`removalPolicy: expected "retain" or "destroy", got ${JSON.stringify(removalPolicy)}`);
  }
  const deletionProtection = boolean('deletionProtection', raw.deletionProtection);
  if (removalPolicy === 'destroy' && deletionProtection) {
    fail(
      'deletionProtection: must be false when removalPolicy is "destroy" (the table could not be deleted)',
    );
  }
  return {
    athenaResultsExpirationDays,
    accessLogsExpirationDays,
    stagingExpirationDays,
    removalPolicy: removalPolicy as 'retain' | 'destroy',
    deletionProtection,
  };
}

function stripUndefined(input: SettingsInput): Partial<Record<SettingName, unknown>> {
  return Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined));
}

/**
 * Reads the settings from CDK context. Context keys without `:` or `/` are ours (CDK's own keys and feature flags
 * all contain one), so an unknown one, e.g. a misspelt `sesionGap`, fails instead of being ignored.
 */
export function settingsFromContext(node: Node): Settings {
  const context = node.getAllContext();
  const input: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(context)) {
    if (key.includes(':') || key.includes('/')) continue;
    input[key] = value;
  }
  return resolveSettings(input as SettingsInput);
}

/** A duration setting as the function's environment variable: `40m`, or `off`. */
export const durationEnv = (ms: number | null): string => (ms === null ? 'off' : formatDuration(ms));
