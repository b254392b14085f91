/**
 * Typed errors of the adapters. SDK errors are translated here, at the boundary: a conditional-check failure
 * becomes a {@link ConflictError}, a missing object a {@link ObjectNotFoundError}; anything else is wrapped in a
 * {@link StoreError} that keeps the SDK error as `cause` and tells whether a retry may help.
 */

export class SessionizerError extends Error {
  override readonly name: string = 'SessionizerError';
}

/** A conditional write lost a race (optimistic concurrency): re-read and retry. */
export class ConflictError extends SessionizerError {
  override readonly name = 'ConflictError';
  constructor(
    message: string,
    readonly key: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** The S3 object is gone (deleted between its event and the read), or changed (ETag no longer matches). */
export class ObjectNotFoundError extends SessionizerError {
  override readonly name = 'ObjectNotFoundError';
  constructor(
    message: string,
    readonly reason: 'deleted' | 'changed',
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** Another invocation holds the object's lease: the event is retried later (and is a no-op once that one is done). */
export class ObjectBusyError extends SessionizerError {
  override readonly name = 'ObjectBusyError';
}

/** Any other S3 or DynamoDB failure, after the SDK's own retries. */
export class StoreError extends SessionizerError {
  override readonly name = 'StoreError';
  constructor(
    message: string,
    readonly retryable: boolean,
    readonly statusCode: number | undefined,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** Some objects of a scheduled catch-up failed (the rest, and the closing, went on). */
export class CatchUpError extends SessionizerError {
  override readonly name = 'CatchUpError';
}

/** An event the handler does not know. Not retryable. */
export class UnknownEventError extends SessionizerError {
  override readonly name = 'UnknownEventError';
}

interface SdkErrorShape {
  name?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
  $retryable?: unknown;
  Code?: string;
}

/** Translates an SDK error into one of ours. `what` says which call failed (bucket/key or table item). */
export function translateAwsError(error: unknown, what: string): Error {
  if (error instanceof SessionizerError) return error;
  const e = (error ?? {}) as SdkErrorShape;
  const name = e.name ?? e.Code ?? 'Error';
  const status = e.$metadata?.httpStatusCode;
  if (name === 'ConditionalCheckFailedException') {
    return new ConflictError(`conditional write failed on ${what}`, what, { cause: error });
  }
  if (name === 'NoSuchKey' || name === 'NotFound' || (status === 404 && what.startsWith('s3://'))) {
    return new ObjectNotFoundError(`${what} does not exist`, 'deleted', { cause: error });
  }
  if (name === 'PreconditionFailed' || status === 412) {
    return new ObjectNotFoundError(`${what} changed since its event (ETag differs)`, 'changed', {
      cause: error,
    });
  }
  const retryable = e.$retryable !== undefined || status === undefined || status >= 500 || status === 429;
  return new StoreError(`${what}: ${name}: ${e.message ?? 'unknown error'}`, retryable, status, {
    cause: error,
  });
}
