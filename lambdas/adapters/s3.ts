/** S3 object reader (as a stream) and writer, over an injected S3Client. The only S3 code of the pipeline. */
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { ObjectNotFoundError, translateAwsError } from './errors.ts';

export interface ObjectInfo {
  readonly key: string;
  readonly etag: string;
  readonly size: number;
  readonly lastModified: Date | undefined;
}

export interface OpenedObject {
  readonly body: AsyncIterable<Uint8Array>;
  readonly etag: string;
  /** The version read, on a versioned bucket. */
  readonly versionId: string | undefined;
  readonly size: number | undefined;
  /** True when S3 says the body is gzip (`Content-Encoding: gzip`). */
  readonly gzipEncoded: boolean;
  /** Releases the connection when the body will not be read. */
  close(): void;
}

/** Counts of requests made, by kind, for the benchmark's cost model. */
export interface S3RequestCounts {
  get: number;
  put: number;
  list: number;
  /** Deletes (free on S3). */
  delete: number;
}

/** Strips the quotes S3 puts around ETags. */
export function normalizeEtag(etag: string | undefined): string {
  return (etag ?? '').replace(/^"+|"+$/g, '');
}

export class S3ObjectStore {
  readonly requests: S3RequestCounts = { get: 0, put: 0, list: 0, delete: 0 };

  constructor(private readonly client: S3Client) {}

  /**
   * Opens an object as a byte stream: the given version, or the current one. With `etag` (and no version), fails
   * with ObjectNotFoundError('changed') if the current object's ETag differs.
   */
  async open(
    bucket: string,
    key: string,
    version: { etag?: string; versionId?: string } = {},
  ): Promise<OpenedObject> {
    this.requests.get++;
    const { etag, versionId } = version;
    try {
      const out = await this.client.send(
        new GetObjectCommand({
          Bucket: bucket,
          Key: key,
          ...(versionId ? { VersionId: versionId } : etag ? { IfMatch: `"${etag}"` } : {}),
        }),
      );
      const body = out.Body as (AsyncIterable<Uint8Array> & { destroy?: () => void }) | undefined;
      return {
        body: body ?? (async function* () {})(),
        close: () => body?.destroy?.(),
        etag: normalizeEtag(out.ETag),
        versionId: out.VersionId,
        size: out.ContentLength,
        gzipEncoded: (out.ContentEncoding ?? '').toLowerCase().includes('gzip'),
      };
    } catch (error) {
      throw translateAwsError(error, `s3://${bucket}/${key}`);
    }
  }

  /** Whether an object exists (HEAD; needs only s3:GetObject). */
  async exists(bucket: string, key: string): Promise<boolean> {
    this.requests.get++;
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      return true;
    } catch (error) {
      const translated = translateAwsError(error, `s3://${bucket}/${key}`);
      if (translated instanceof ObjectNotFoundError) return false;
      throw translated;
    }
  }

  /** An object's version (the current one by default; HEAD needs only s3:GetObject), or undefined when gone. */
  async head(
    bucket: string,
    key: string,
    versionId?: string,
  ): Promise<{ etag: string; versionId: string | undefined } | undefined> {
    this.requests.get++;
    try {
      const out = await this.client.send(
        new HeadObjectCommand({ Bucket: bucket, Key: key, ...(versionId ? { VersionId: versionId } : {}) }),
      );
      return { etag: normalizeEtag(out.ETag), versionId: out.VersionId };
    } catch (error) {
      const translated = translateAwsError(error, `s3://${bucket}/${key}`);
      if (translated instanceof ObjectNotFoundError) return undefined;
      throw translated;
    }
  }

  /** Reads a whole (small) object. */
  async getBytes(bucket: string, key: string): Promise<Buffer> {
    const opened = await this.open(bucket, key);
    const parts: Buffer[] = [];
    for await (const chunk of opened.body) parts.push(Buffer.from(chunk));
    return Buffer.concat(parts);
  }

  /** Reads a whole (small) object as text. */
  async getText(bucket: string, key: string): Promise<string> {
    return (await this.getBytes(bucket, key)).toString('utf8');
  }

  /** Writes an object; the same key and content twice is the same object (deterministic keys make retries safe). */
  async put(
    bucket: string,
    key: string,
    body: string | Uint8Array,
    contentType = 'application/x-ndjson',
  ): Promise<void> {
    this.requests.put++;
    try {
      await this.client.send(
        new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: contentType }),
      );
    } catch (error) {
      throw translateAwsError(error, `s3://${bucket}/${key}`);
    }
  }

  /** Deletes an object (the current version; gone already is fine). */
  async delete(bucket: string, key: string): Promise<void> {
    this.requests.delete++;
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    } catch (error) {
      throw translateAwsError(error, `s3://${bucket}/${key}`);
    }
  }

  /** One page of a listing in key order, starting after `startAfter`. */
  async list(
    bucket: string,
    prefix: string,
    startAfter: string | undefined,
    maxKeys = 1000,
  ): Promise<{ objects: ObjectInfo[]; truncated: boolean }> {
    this.requests.list++;
    try {
      const out = await this.client.send(
        new ListObjectsV2Command({
          Bucket: bucket,
          Prefix: prefix,
          MaxKeys: maxKeys,
          ...(startAfter ? { StartAfter: startAfter } : {}),
        }),
      );
      const objects = (out.Contents ?? []).map((o) => ({
        key: o.Key ?? '',
        etag: normalizeEtag(o.ETag),
        size: o.Size ?? 0,
        lastModified: o.LastModified,
      }));
      return { objects, truncated: out.IsTruncated === true };
    } catch (error) {
      throw translateAwsError(error, `s3://${bucket}/${prefix}`);
    }
  }

  /** Every object under a prefix, in key order. */
  async listAll(bucket: string, prefix: string): Promise<ObjectInfo[]> {
    const all: ObjectInfo[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await this.list(bucket, prefix, after);
      all.push(...page.objects);
      if (!page.truncated || page.objects.length === 0) return all;
      after = page.objects[page.objects.length - 1]!.key;
    }
  }
}
