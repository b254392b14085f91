/**
 * The sample events under events/, loaded for tests (and as the shapes the handler accepts). One typed loader,
 * {@link loadEvent}, returns a fresh copy of a sample with the bucket, key, ETag or id overridden. Keys are given
 * decoded (as stored in S3) and written into the event URL-encoded, as S3 and EventBridge deliver them.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeS3EventKey } from '../../infra/local/s3-events.ts';

const EVENTS_DIR = join(import.meta.dirname, '..', '..', 'events');

export interface S3NotificationRecord {
  eventVersion?: string;
  eventSource?: string;
  eventName: string;
  s3: {
    bucket: { name: string; arn?: string };
    object: { key: string; size?: number; eTag?: string; sequencer?: string };
  };
  [other: string]: unknown;
}

export interface S3NotificationEvent {
  Records: S3NotificationRecord[];
}

export interface S3TestEvent {
  Service: string;
  Event: 's3:TestEvent';
  Bucket: string;
  [other: string]: unknown;
}

export interface EventBridgeObjectCreated {
  version: string;
  id?: string;
  'detail-type': 'Object Created';
  source: 'aws.s3';
  detail: {
    bucket: { name: string };
    object: { key?: string; size?: number; etag?: string; sequencer?: string };
    [other: string]: unknown;
  };
  [other: string]: unknown;
}

export interface ScheduledEvent {
  version: string;
  id?: string;
  'detail-type': 'Scheduled Event';
  source: 'aws.events';
  time: string;
  detail: Record<string, never>;
  [other: string]: unknown;
}

export interface FlushEvent {
  action: 'flush';
  id?: string;
}

export interface SqsRecord {
  messageId: string;
  receiptHandle?: string;
  body: string;
  eventSource: 'aws:sqs';
  [other: string]: unknown;
}

export interface SqsEvent {
  Records: SqsRecord[];
}

/** Every sample file (name without `.json`) and the type of its content. */
export interface SampleEvents {
  's3-put': S3NotificationEvent;
  's3-removed': S3NotificationEvent;
  's3-test-event': S3TestEvent;
  'eventbridge-object-created': EventBridgeObjectCreated;
  'eventbridge-object-created-without-key': EventBridgeObjectCreated;
  scheduled: ScheduledEvent;
  'scheduled-without-id': ScheduledEvent;
  flush: FlushEvent;
  /** Invalid: not an event the handler knows. */
  unknown: Record<string, unknown>;
  /** An SQS batch of one message whose body is an S3 notification (here with no records). */
  'sqs-message': SqsEvent;
}

export type SampleEventName = keyof SampleEvents;

export interface EventOverrides {
  /** Bucket of an S3 notification or EventBridge Object Created event (every record). */
  readonly bucket?: string;
  /** Object key as stored in S3 (decoded); written URL-encoded into the event. */
  readonly key?: string;
  /** Object key exactly as it should appear in the event (already encoded). Wins over `key`. */
  readonly encodedKey?: string;
  /** ETag of the object; `null` removes it from the event. */
  readonly etag?: string | null;
  /** Id of a scheduled or flush event. */
  readonly id?: string;
}

/** A fresh copy of a sample event with the overrides applied. */
export function loadEvent<N extends SampleEventName>(
  name: N,
  overrides: EventOverrides = {},
): SampleEvents[N] {
  const event = JSON.parse(readFileSync(join(EVENTS_DIR, `${name}.json`), 'utf8')) as SampleEvents[N];
  const record = event as Record<string, unknown>;
  const key =
    overrides.encodedKey ?? (overrides.key === undefined ? undefined : encodeS3EventKey(overrides.key));
  if (Array.isArray(record.Records)) {
    for (const r of record.Records as Partial<S3NotificationRecord>[]) {
      if (!r.s3) continue;
      if (overrides.bucket !== undefined) r.s3.bucket.name = overrides.bucket;
      if (key !== undefined) r.s3.object.key = key;
      if (overrides.etag === null) delete r.s3.object.eTag;
      else if (overrides.etag !== undefined) r.s3.object.eTag = overrides.etag;
    }
  }
  if (record['detail-type'] === 'Object Created') {
    const detail = (event as EventBridgeObjectCreated).detail;
    if (overrides.bucket !== undefined) detail.bucket.name = overrides.bucket;
    if (key !== undefined) detail.object.key = key;
    if (overrides.etag === null) delete detail.object.etag;
    else if (overrides.etag !== undefined) detail.object.etag = overrides.etag;
  }
  if (
    overrides.id !== undefined &&
    (record['detail-type'] === 'Scheduled Event' || record.action === 'flush')
  ) {
    record.id = overrides.id;
  }
  return event;
}

/** An S3 notification (ObjectCreated:Put) for one object, from the s3-put sample. */
export function s3Put(bucket: string, key: string, etag?: string): S3NotificationEvent {
  return loadEvent('s3-put', { bucket, key, etag: etag ?? null });
}

let messages = 0;

/** An SQS batch, as the event source mapping delivers it: one message per body (an event, JSON-encoded). */
export function sqsBatch(...bodies: unknown[]): SqsEvent {
  const sample = loadEvent('sqs-message');
  const template = sample.Records[0]!;
  return {
    Records: bodies.map((body) => ({
      ...template,
      messageId: `message-${++messages}`,
      body: typeof body === 'string' ? body : JSON.stringify(body),
    })),
  };
}

/** An SQS batch of one S3 notification (ObjectCreated:Put) per object. */
export function s3Batch(bucket: string, objects: readonly { key: string; etag?: string }[]): SqsEvent {
  return sqsBatch(...objects.map((o) => s3Put(bucket, o.key, o.etag)));
}

/** A scheduled event with the given id. */
export function scheduled(id: string): ScheduledEvent {
  return loadEvent('scheduled', { id });
}

/** A flush event with the given id. */
export function flush(id: string): FlushEvent {
  return loadEvent('flush', { id });
}
