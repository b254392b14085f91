/**
 * The outbox of a commit (docs/design.md, "Outbox"): the sessions it closed and the late visits it found, written
 * after the commit under keys made of (state, shard, version), split by `dt`. Content and keys follow from the
 * commit alone, so a retry, or another invocation recovering an unpublished commit, writes the same bytes under
 * the same keys, and an attempt that lost its commit writes nothing.
 */

import type { S3ObjectStore } from '../adapters/s3.ts';
import {
  type Dataset,
  LATE_VISITS,
  latePartition,
  partition,
  SESSIONS,
  sessionPartition,
  toJsonLine,
} from '../core/schema.ts';
import type { ClosedSession, LateVisit } from '../core/types.ts';

/** Most bytes of one output object (bounds memory); a commit writing more writes several, numbered. */
export const BYTES_PER_OUTPUT = 16 * 1024 * 1024;

export interface CommitOutputs {
  readonly closed: readonly ClosedSession[];
  readonly late: readonly LateVisit[];
}

/** The name of one output object of a commit. */
export function outputKey(
  prefix: string,
  dt: string,
  stateId: string,
  shard: number,
  version: number,
  part: number,
): string {
  const s = String(shard).padStart(3, '0');
  const v = String(version).padStart(10, '0');
  return `${prefix}dt=${dt}/${stateId}-s${s}-v${v}-${part}.jsonl`;
}

export class Outbox {
  constructor(
    private readonly objects: S3ObjectStore,
    private readonly bucket: string,
    private readonly stateId: string,
  ) {}

  /** Writes a commit's outputs; returns the number of objects written. */
  async publish(shard: number, version: number, outputs: CommitOutputs): Promise<number> {
    let written = 0;
    written += await this.write(SESSIONS, outputs.closed, sessionPartition, shard, version);
    written += await this.write(LATE_VISITS, outputs.late, latePartition, shard, version);
    return written;
  }

  private async write<R>(
    dataset: Dataset<R>,
    records: readonly R[],
    dtOf: (r: R) => string,
    shard: number,
    version: number,
  ): Promise<number> {
    let written = 0;
    for (const [dt, list] of partition(records, dtOf)) {
      let lines: string[] = [];
      let bytes = 0;
      let part = 0;
      const put = async (): Promise<void> => {
        const key = outputKey(dataset.prefix, dt, this.stateId, shard, version, part++);
        await this.objects.put(this.bucket, key, lines.join(''));
        written++;
        lines = [];
        bytes = 0;
      };
      for (const r of list) {
        const line = toJsonLine(dataset, r);
        if (bytes > 0 && bytes + line.length > BYTES_PER_OUTPUT) await put();
        lines.push(line);
        bytes += line.length;
      }
      if (lines.length > 0) await put();
    }
    return written;
  }
}
