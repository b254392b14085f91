/**
 * The ingest queue of the local stack, with the behaviour of SQS under a Lambda event source mapping: messages are
 * handed to the handler in batches (up to `batchSize`, gathered for at most `windowMs`), by at most
 * `maxConcurrency` invocations at once; a message the handler reports in `batchItemFailures`, or every message of an
 * invocation that failed, comes back; after `maxReceiveCount` receives it goes to the dead-letter list. Unlike a
 * standard SQS queue, which keeps order only as best it can, messages that come back go to the front, after a short
 * visibility timeout: with one invocation at a time, objects are logged in the order they were sent.
 */
import { randomUUID } from 'node:crypto';

export interface QueueOptions {
  /** Messages per invocation. @default 10 */
  readonly batchSize?: number;
  /** How long the first message of a batch waits for others. @default 0 */
  readonly windowMs?: number;
  /** Invocations at once. @default 1 */
  readonly maxConcurrency?: number;
  /** Receives before a message goes to the dead-letter list. @default 5 */
  readonly maxReceiveCount?: number;
  /** Delay before a failed message is visible again. @default 5 ms */
  readonly visibilityTimeoutMs?: number;
}

export interface QueueMessage {
  readonly messageId: string;
  readonly body: string;
  receiveCount: number;
}

export interface DeadLetter {
  readonly message: QueueMessage;
  readonly error: Error;
}

/** What an invocation over a batch returned: the ids of the messages that failed. */
export type BatchInvoker = (
  event: { Records: Record<string, unknown>[] },
  worker: number,
) => Promise<{ batchItemFailures?: { itemIdentifier: string }[] }>;

export class LocalQueue {
  private readonly visible: QueueMessage[] = [];
  /** Messages in invocations that have not returned, and those invocations. */
  private inFlight = 0;
  private running = 0;
  private waiting = 0;
  private readonly idleWaiters: (() => void)[] = [];
  private timer: NodeJS.Timeout | undefined;
  readonly deadLetters: DeadLetter[] = [];
  /** Messages sent, invocations made, and those that failed as a whole. */
  sent = 0;
  invocations = 0;
  failedInvocations = 0;
  private readonly batchSize: number;
  private readonly windowMs: number;
  private readonly maxConcurrency: number;
  private readonly maxReceiveCount: number;
  private readonly visibilityTimeoutMs: number;
  private readonly workers: boolean[];
  private paused = false;
  /** Groups of failed messages waiting for their visibility timeout. */
  private held = 0;

  constructor(
    private readonly invoke: BatchInvoker,
    options: QueueOptions = {},
  ) {
    this.batchSize = options.batchSize ?? 10;
    this.windowMs = options.windowMs ?? 0;
    this.maxConcurrency = options.maxConcurrency ?? 1;
    this.maxReceiveCount = options.maxReceiveCount ?? 5;
    this.visibilityTimeoutMs = options.visibilityTimeoutMs ?? 5;
    this.workers = new Array(this.maxConcurrency).fill(false);
  }

  /** Messages waiting, in flight or coming back. */
  get depth(): number {
    return this.visible.length + this.inFlight + this.waiting;
  }

  /** Holds deliveries (messages queue up) until {@link resume}. */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.schedule();
  }

  send(body: string): string {
    const message: QueueMessage = { messageId: randomUUID(), body, receiveCount: 0 };
    this.sent++;
    this.visible.push(message);
    this.schedule();
    return message.messageId;
  }

  /** Resolves once no message is waiting, in flight or coming back. */
  idle(): Promise<void> {
    if (this.depth === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private schedule(): void {
    // while failed messages wait to come back to the front, nothing behind them starts (that keeps the order)
    if (this.paused || this.held > 0 || this.timer !== undefined || this.visible.length === 0) return;
    if (this.running >= this.maxConcurrency) return;
    const wait = this.visible.length >= this.batchSize ? 0 : this.windowMs;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.dispatch();
    }, wait);
  }

  private dispatch(): void {
    while (!this.paused && this.held === 0 && this.visible.length > 0 && this.running < this.maxConcurrency) {
      const batch = this.visible.splice(0, this.batchSize);
      const worker = this.workers.indexOf(false);
      this.workers[worker] = true;
      this.running++;
      this.inFlight += batch.length;
      void this.run(batch, worker);
    }
  }

  private async run(batch: QueueMessage[], worker: number): Promise<void> {
    for (const m of batch) m.receiveCount++;
    const records = batch.map((m) => ({
      messageId: m.messageId,
      receiptHandle: m.messageId,
      body: m.body,
      attributes: { ApproximateReceiveCount: String(m.receiveCount) },
      messageAttributes: {},
      md5OfBody: '',
      eventSource: 'aws:sqs',
      eventSourceARN: 'arn:aws:sqs:local:000000000000:sessionizer-ingest',
      awsRegion: 'local',
    }));
    let failed: Set<string>;
    let error: Error | undefined;
    this.invocations++;
    try {
      const out = await this.invoke({ Records: records }, worker);
      failed = new Set((out.batchItemFailures ?? []).map((f) => f.itemIdentifier));
      if (failed.size > 0) error = new Error(`reported failed by the handler`);
    } catch (e) {
      this.failedInvocations++;
      error = e as Error;
      failed = new Set(batch.map((m) => m.messageId));
    }
    this.workers[worker] = false;
    this.running--;
    this.inFlight -= batch.length;
    const back: QueueMessage[] = [];
    for (const m of batch.filter((x) => failed.has(x.messageId))) {
      if (m.receiveCount >= this.maxReceiveCount)
        this.deadLetters.push({ message: m, error: error ?? new Error('failed') });
      else back.push(m);
    }
    if (back.length > 0) {
      this.waiting += back.length;
      this.held++;
      setTimeout(
        () => {
          this.waiting -= back.length;
          this.held--;
          this.visible.unshift(...back);
          this.schedule();
          this.settle();
        },
        this.visibilityTimeoutMs * 2 ** Math.min(8, (back[0]?.receiveCount ?? 1) - 1),
      );
    }
    this.schedule();
    this.settle();
  }

  private settle(): void {
    if (this.depth > 0) return;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }
}
