/**
 * The events the handler accepts, recognised by shape: SQS batches of S3 notifications (the deployed path), S3
 * notifications and EventBridge "Object Created" events sent to the function directly, EventBridge scheduled
 * events, and the flush event. Anything else is an {@link UnknownEventError}.
 */
import { randomUUID } from 'node:crypto';
import { UnknownEventError } from './adapters/errors.ts';
import type { ObjectRef } from './pipeline/index.ts';

/** One SQS message of a batch (the fields the handler reads). */
export interface QueueMessage {
  readonly messageId: string;
  readonly body: string;
}

export type SessionizerEvent =
  | { readonly kind: 'queue'; readonly messages: QueueMessage[] }
  | { readonly kind: 'objects'; readonly objects: ObjectRef[] }
  | { readonly kind: 'scheduled'; readonly id: string }
  | { readonly kind: 'flush'; readonly id: string }
  | { readonly kind: 'ignored'; readonly reason: string };

/** S3 notification keys are URL-encoded, with `+` for a space. */
export function decodeS3Key(key: string): string {
  try {
    return decodeURIComponent(key.replace(/\+/g, ' '));
  } catch {
    return key; // not valid percent-encoding: S3 never sends that, so take the key as it is
  }
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/** Ids of flushes and scheduled runs: they name log entries and their claims, so they are short and plain. */
const RUN_ID = /^[A-Za-z0-9._:-]{1,128}$/;

function runId(v: unknown, what: string): string {
  const id = str(v);
  if (id === undefined) throw new UnknownEventError(`unknown event: ${what} without an id`);
  if (!RUN_ID.test(id)) {
    throw new UnknownEventError(
      `unknown event: ${what} id ${JSON.stringify(id.length > 40 ? `${id.slice(0, 40)}...` : id)} must be 1 to 128 ` +
        'letters, digits or . _ : -',
    );
  }
  return id;
}

export function classifyEvent(event: unknown): SessionizerEvent {
  if (!isObject(event)) {
    const got = event === null ? 'null' : Array.isArray(event) ? 'an array' : typeof event;
    throw new UnknownEventError(`unknown event: expected a JSON object, got ${got}`);
  }

  if (
    Array.isArray(event.Records) &&
    event.Records.length > 0 &&
    isObject(event.Records[0]) &&
    event.Records[0].eventSource === 'aws:sqs'
  ) {
    const messages: QueueMessage[] = [];
    for (const [i, record] of event.Records.entries()) {
      const messageId = isObject(record) ? str(record.messageId) : undefined;
      if (!isObject(record) || !messageId || typeof record.body !== 'string') {
        throw new UnknownEventError(
          `unknown event: Records[${i}] is not an SQS message with an id and a body`,
        );
      }
      messages.push({ messageId, body: record.body });
    }
    return { kind: 'queue', messages };
  }

  if (Array.isArray(event.Records)) {
    const objects: ObjectRef[] = [];
    for (const [i, record] of event.Records.entries()) {
      if (!isObject(record) || !isObject(record.s3)) {
        throw new UnknownEventError(`unknown event: Records[${i}] is not an S3 notification record`);
      }
      const name = str(record.eventName) ?? '';
      if (!name.startsWith('ObjectCreated')) continue; // removals and others are not batches
      const s3 = record.s3;
      const bucket = isObject(s3.bucket) ? str(s3.bucket.name) : undefined;
      const object = isObject(s3.object) ? s3.object : undefined;
      const key = object ? str(object.key) : undefined;
      if (!bucket || !key)
        throw new UnknownEventError(`unknown event: Records[${i}] has no bucket name or object key`);
      const etag = object ? str(object.eTag) : undefined;
      const versionId = object ? str(object.versionId) : undefined;
      objects.push({
        bucket,
        key: decodeS3Key(key),
        ...(etag ? { etag } : {}),
        ...(versionId ? { versionId } : {}),
      });
    }
    return objects.length > 0
      ? { kind: 'objects', objects }
      : { kind: 'ignored', reason: 'no ObjectCreated records' };
  }

  if (event.Event === 's3:TestEvent') return { kind: 'ignored', reason: 'S3 test event' };

  const detailType = event['detail-type'];
  if (detailType === 'Object Created' && event.source === 'aws.s3' && isObject(event.detail)) {
    const bucket = isObject(event.detail.bucket) ? str(event.detail.bucket.name) : undefined;
    const object = isObject(event.detail.object) ? event.detail.object : undefined;
    const key = object ? str(object.key) : undefined;
    if (!bucket || !key)
      throw new UnknownEventError('unknown event: Object Created event without bucket or key');
    const etag = object ? str(object.etag) : undefined;
    const versionId = object ? str(object['version-id']) : undefined;
    // AWS documents notification keys as URL-encoded but says nothing of EventBridge ones: take the decoded key,
    // and the key as given if that does not exist
    const decoded = decodeS3Key(key);
    return {
      kind: 'objects',
      objects: [
        {
          bucket,
          key: decoded,
          ...(decoded !== key ? { altKey: key } : {}),
          ...(etag ? { etag } : {}),
          ...(versionId ? { versionId } : {}),
        },
      ],
    };
  }

  if (detailType === 'Scheduled Event') return { kind: 'scheduled', id: runId(event.id, 'Scheduled Event') };

  if (event.action === 'flush') {
    return { kind: 'flush', id: event.id === undefined ? randomUUID() : runId(event.id, 'flush') };
  }

  const keys = Object.keys(event).slice(0, 8).join(', ');
  throw new UnknownEventError(
    `unknown event with keys [${keys}]: expected an SQS batch of S3 notifications, an S3 notification, an ` +
      'EventBridge Object Created or Scheduled Event, or {"action":"flush"}',
  );
}

/**
 * The objects of one SQS message: its body is an S3 notification (or S3's test event: no objects). Throws an
 * UnknownEventError naming the message otherwise, so that the message alone fails and goes to the dead-letter queue.
 */
export function objectsOfMessage(message: QueueMessage): ObjectRef[] {
  let body: unknown;
  try {
    body = JSON.parse(message.body);
  } catch {
    throw new UnknownEventError(`SQS message ${message.messageId}: the body is not JSON`);
  }
  let parsed: SessionizerEvent;
  try {
    parsed = classifyEvent(body);
  } catch (error) {
    throw new UnknownEventError(`SQS message ${message.messageId}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  if (parsed.kind === 'objects') return parsed.objects;
  if (parsed.kind === 'ignored') return [];
  throw new UnknownEventError(
    `SQS message ${message.messageId}: expected an S3 notification, got a ${parsed.kind} event`,
  );
}
