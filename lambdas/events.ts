/**
 * The events the handler accepts, recognised by shape: S3 notifications, EventBridge "Object Created" (S3),
 * EventBridge scheduled events, and the flush event. Anything else is an {@link UnknownEventError}.
 */
import { randomUUID } from 'node:crypto';
import { UnknownEventError } from './adapters/errors.ts';
import type { ObjectRef } from './pipeline.ts';

export type SessionizerEvent =
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

export function classifyEvent(event: unknown): SessionizerEvent {
  if (!isObject(event)) {
    const got = event === null ? 'null' : Array.isArray(event) ? 'an array' : typeof event;
    throw new UnknownEventError(`unknown event: expected a JSON object, got ${got}`);
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
      objects.push({ bucket, key: decodeS3Key(key), ...(etag ? { etag } : {}) });
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
    // AWS documents notification keys as URL-encoded but says nothing of EventBridge ones: take the decoded key,
    // and the key as given if that does not exist
    const decoded = decodeS3Key(key);
    return {
      kind: 'objects',
      objects: [
        { bucket, key: decoded, ...(decoded !== key ? { altKey: key } : {}), ...(etag ? { etag } : {}) },
      ],
    };
  }

  if (detailType === 'Scheduled Event') {
    const id = str(event.id);
    if (!id) throw new UnknownEventError('unknown event: Scheduled Event without an id');
    return { kind: 'scheduled', id };
  }

  if (event.action === 'flush') {
    // without an id, every flush is a new closing run
    return { kind: 'flush', id: str(event.id) ?? randomUUID() };
  }

  const keys = Object.keys(event).slice(0, 8).join(', ');
  throw new UnknownEventError(
    `unknown event with keys [${keys}]: expected an S3 notification, an EventBridge Object Created or ` +
      'Scheduled Event, or {"action":"flush"}',
  );
}
