/**
 * Every environment variable the sessionizer reads, read and validated once. Resource names have no defaults:
 * a missing one fails at once with a message naming the variable.
 */
import { parseDuration } from './core/duration.ts';
import { MAX_SHARDS } from './core/shards.ts';
import {
  DEFAULT_MAX_SESSION_VISITS,
  DEFAULT_SESSION_CONFIG,
  MAX_SESSION_VISITS_LIMIT,
  type SessionConfig,
} from './core/types.ts';

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Names of the environment variables, shared with the CDK stack and the local stack. */
export const ENV = {
  visitsBucket: 'SESSIONIZER_VISITS_BUCKET',
  visitsPrefix: 'SESSIONIZER_VISITS_PREFIX',
  outputBucket: 'SESSIONIZER_OUTPUT_BUCKET',
  table: 'SESSIONIZER_TABLE',
  gap: 'SESSIONIZER_GAP',
  allowedLateness: 'SESSIONIZER_ALLOWED_LATENESS',
  maxSessionDuration: 'SESSIONIZER_MAX_SESSION_DURATION',
  maxSessionVisits: 'SESSIONIZER_MAX_SESSION_VISITS',
  maxFutureSkew: 'SESSIONIZER_MAX_FUTURE_SKEW',
  visitsSuffix: 'SESSIONIZER_VISITS_SUFFIX',
  idleTimeout: 'SESSIONIZER_IDLE_TIMEOUT',
  shards: 'SESSIONIZER_SHARDS',
  catchUpMaxObjects: 'SESSIONIZER_CATCHUP_MAX_OBJECTS',
  segmentLines: 'SESSIONIZER_SEGMENT_LINES',
  s3Endpoint: 'SESSIONIZER_S3_ENDPOINT',
  dynamodbEndpoint: 'SESSIONIZER_DYNAMODB_ENDPOINT',
  region: 'AWS_REGION',
} as const;

export interface Config {
  readonly visitsBucket: string;
  /** Key prefix of visit objects in the visits bucket (catch-up lists it). */
  readonly visitsPrefix: string;
  /** Key suffix of visit objects (`''`: any): catch-up skips other keys, as the notification filter does. */
  readonly visitsSuffix: string;
  /** Bucket for `sessions/`, `late-visits/` and `rejected/`. */
  readonly outputBucket: string;
  readonly table: string;
  readonly session: SessionConfig;
  /**
   * How far a visit_time may be ahead of the processing clock: a later one is a rejected record, so that one bad
   * clock cannot move the watermark and close everything early.
   */
  readonly maxFutureSkewMs: number;
  /** Idle advance: wall-clock time without a batch after which a scheduled run advances the watermark. */
  readonly idleTimeoutMs: number | null;
  /** Shards users hash into: the unit of commit and parallelism, fixed for the life of the state. */
  readonly shards: number;
  /** Most objects one scheduled catch-up run processes (the rest resume from the cursor next run). */
  readonly catchUpMaxObjects: number;
  /** Lines of an input object per staged segment: bounds the memory of reading one object. */
  readonly segmentLines: number;
  readonly s3Endpoint?: string;
  readonly dynamodbEndpoint?: string;
  readonly region: string;
}

type Env = Readonly<Record<string, string | undefined>>;

function required(env: Env, name: string): string {
  const value = env[name];
  if (value === undefined || value.trim() === '') {
    throw new ConfigError(`Environment variable ${name} is required`);
  }
  return value.trim();
}

function optional(env: Env, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

function duration(env: Env, name: string, fallback: number): number {
  const value = optional(env, name);
  if (value === undefined) return fallback;
  try {
    return parseDuration(value, name);
  } catch (error) {
    throw new ConfigError((error as Error).message);
  }
}

/** A duration that may be `off` (or unset): null. */
function optionalDuration(env: Env, name: string): number | null {
  const value = optional(env, name);
  if (value === undefined || value.toLowerCase() === 'off') return null;
  const ms = duration(env, name, 0);
  if (ms <= 0)
    throw new ConfigError(`${name}: must be a positive duration or "off", got ${JSON.stringify(value)}`);
  return ms;
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const value = optional(env, name);
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(`${name}: expected an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return n;
}

/** An integer that may be `off`: null. */
function optionalInteger(env: Env, name: string, fallback: number, min: number, max: number): number | null {
  const value = optional(env, name);
  if (value !== undefined && value.toLowerCase() === 'off') return null;
  return integer(env, name, fallback, min, max);
}

function prefix(env: Env, name: string, fallback: string): string {
  const value = optional(env, name) ?? fallback;
  return value === '' || value.endsWith('/') ? value : `${value}/`;
}

/** Reads and validates the configuration. Throws {@link ConfigError} naming the first bad variable. */
export function loadConfig(env: Env = process.env): Config {
  const gapMs = duration(env, ENV.gap, DEFAULT_SESSION_CONFIG.gapMs);
  if (gapMs <= 0) throw new ConfigError(`${ENV.gap}: must be a positive duration`);
  const s3Endpoint = optional(env, ENV.s3Endpoint);
  const dynamodbEndpoint = optional(env, ENV.dynamodbEndpoint);
  return {
    visitsBucket: required(env, ENV.visitsBucket),
    visitsPrefix: prefix(env, ENV.visitsPrefix, 'visits/'),
    visitsSuffix: optional(env, ENV.visitsSuffix) ?? '',
    outputBucket: required(env, ENV.outputBucket),
    table: required(env, ENV.table),
    session: {
      gapMs,
      allowedLatenessMs: duration(env, ENV.allowedLateness, DEFAULT_SESSION_CONFIG.allowedLatenessMs),
      maxSessionDurationMs: optionalDuration(env, ENV.maxSessionDuration),
      maxSessionVisits: optionalInteger(
        env,
        ENV.maxSessionVisits,
        DEFAULT_MAX_SESSION_VISITS,
        1,
        MAX_SESSION_VISITS_LIMIT,
      ),
    },
    maxFutureSkewMs: duration(env, ENV.maxFutureSkew, 60 * 60_000),
    idleTimeoutMs: optionalDuration(env, ENV.idleTimeout),
    shards: integer(env, ENV.shards, 16, 1, MAX_SHARDS),
    catchUpMaxObjects: integer(env, ENV.catchUpMaxObjects, 1000, 1, 1_000_000),
    segmentLines: integer(env, ENV.segmentLines, 200_000, 1, 100_000_000),
    ...(s3Endpoint ? { s3Endpoint } : {}),
    ...(dynamodbEndpoint ? { dynamodbEndpoint } : {}),
    region: optional(env, ENV.region) ?? 'us-east-1',
  };
}
