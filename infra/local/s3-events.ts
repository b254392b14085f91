/**
 * S3 notifications in the local stack: the notification S3 sends for a new object (key URL-encoded as real S3
 * does), s3rver's object events turned into those notifications, and the `If-Match` precondition s3rver lacks.
 */

/** An S3 notification for one object, as S3 sends it (key URL-encoded, ETag without quotes). */
export function s3Notification(bucket: string, key: string, etag: string | undefined): unknown {
  return {
    Records: [
      {
        eventSource: 'aws:s3',
        eventName: 'ObjectCreated:Put',
        s3: {
          bucket: { name: bucket },
          object: { key: encodeS3EventKey(key), ...(etag ? { eTag: etag } : {}) },
        },
      },
    ],
  };
}

/** Encodes a key as S3 notifications do: URL-encoding with `+` for a space, `/` kept. */
export function encodeS3EventKey(key: string): string {
  return key
    .split('/')
    .map((part) => encodeURIComponent(part).replace(/%20/g, '+'))
    .join('/');
}

/** The part of s3rver the local stack listens to: its object events. */
export interface S3rverEvents {
  on(event: string, fn: (e: unknown) => void): void;
}

/**
 * Calls `notify` for each object s3rver creates in `bucket` under `prefix` and ending in `suffix` (the filter of
 * the deployed notification), with its raw key and unquoted ETag (s3rver gives raw keys; real S3 URL-encodes them,
 * which s3Notification does).
 */
export function forwardObjectCreated(
  s3rver: S3rverEvents,
  filter: { bucket: string; prefix: string; suffix: string },
  notify: (key: string, etag?: string) => void,
): void {
  const { bucket, prefix, suffix } = filter;
  s3rver.on('event', (raw: unknown) => {
    const event = raw as {
      Records?: {
        eventName?: string;
        s3?: { bucket?: { name?: string }; object?: { key?: string; eTag?: string } };
      }[];
    };
    const record = event.Records?.[0];
    const name = record?.s3?.bucket?.name;
    const key = record?.s3?.object?.key;
    if (!record?.eventName?.startsWith('ObjectCreated') || name !== bucket || !key) return;
    if (!key.startsWith(prefix) || !key.endsWith(suffix)) return;
    notify(key, record.s3?.object?.eTag?.replace(/"/g, ''));
  });
}

interface KoaContext {
  method: string;
  status: number;
  body: unknown;
  type: string;
  get(header: string): string;
  response: { get(header: string): string };
}

/**
 * s3rver answers a GET with `If-Match` as if the header were absent; real S3 answers 412 PreconditionFailed when the
 * ETag differs (the pipeline relies on it to notice an object overwritten since its event). A Koa middleware in
 * front of s3rver's own adds that.
 */
export function honourIfMatch(server: {
  middleware: ((ctx: KoaContext, next: () => Promise<void>) => Promise<void>)[];
}): void {
  const bare = (etag: string) => etag.replace(/^W\//, '').replace(/"/g, '').trim();
  server.middleware.unshift(async (ctx, next) => {
    const ifMatch = ctx.get('if-match');
    await next();
    if (!ifMatch || ifMatch === '*' || ctx.method !== 'GET' || ctx.status !== 200) return;
    const etag = bare(ctx.response.get('ETag'));
    if (ifMatch.split(',').map(bare).includes(etag)) return;
    (ctx.body as { destroy?: () => void } | undefined)?.destroy?.();
    ctx.status = 412;
    ctx.type = 'application/xml';
    ctx.body =
      '<?xml version="1.0" encoding="UTF-8"?><Error><Code>PreconditionFailed</Code>' +
      '<Message>At least one of the pre-conditions you specified did not hold</Message></Error>';
  });
}
