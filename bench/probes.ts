/**
 * Probes on the handler in this process (its methods wrapped here; its code is not changed): where its time goes
 * (the wall time of the pipeline's phases, summed over every handler instance: with shards caught up at once, or
 * several invocations, the sums overlap in time), and the bytes of the state snapshots it writes (compactions).
 */
import { ShardApplier } from '../lambdas/pipeline/apply.ts';
import { Pipeline } from '../lambdas/pipeline/index.ts';
import { Outbox } from '../lambdas/pipeline/outbox.ts';
import { Staging } from '../lambdas/pipeline/staging.ts';
import { StateStore } from '../lambdas/pipeline/state-store.ts';

export interface PhaseTimes {
  /** Ingest of objects into the log (staging included). */
  ingest: number;
  /** Reading, parsing and staging objects (S3 GET, parse, split by shard, segment PUTs). */
  staging: number;
  /** Bringing shards up to the log (flushes included). */
  catchUp: number;
  /** Applying log entries to shard states (reading the staged visits, sessionizing, closing). */
  apply: number;
  /** Writing parts and heads (the commits' DynamoDB writes). */
  commitWrites: number;
  /** Writing the commits' outputs (sessions, late visits) to S3. */
  publish: number;
}

/** State parts written: the encoded bytes of the snapshots (compactions). */
export interface PartsWritten {
  snapshotBytes: number;
}

type AsyncMethod = (this: unknown, ...args: unknown[]) => Promise<unknown>;

const times: PhaseTimes = { ingest: 0, staging: 0, catchUp: 0, apply: 0, commitWrites: 0, publish: 0 };
const parts: PartsWritten = { snapshotBytes: 0 };
let installed = false;

function wrap(proto: object, name: string, phase: keyof PhaseTimes): void {
  const target = proto as Record<string, AsyncMethod>;
  const original = target[name];
  if (typeof original !== 'function') throw new Error(`bench/probes.ts: no method ${name} to wrap`);
  target[name] = async function (this: unknown, ...args: unknown[]) {
    const started = performance.now();
    try {
      return await original.apply(this, args);
    } finally {
      times[phase] += (performance.now() - started) / 1000;
    }
  };
}

/** Counts the snapshot bytes `writePart(shard, kind, version, bytes)` writes. */
function countWrites(): void {
  const proto = StateStore.prototype as unknown as Record<string, AsyncMethod>;
  const writePart = proto.writePart!;
  proto.writePart = function (this: unknown, ...args: unknown[]) {
    if (args[1] === 'snapshot') parts.snapshotBytes += (args[3] as Buffer).length;
    return writePart.apply(this, args);
  };
}

function install(): void {
  if (installed) return;
  installed = true;
  countWrites();
  wrap(Pipeline.prototype, 'ingest', 'ingest');
  wrap(Staging.prototype, 'stage', 'staging');
  wrap(Pipeline.prototype, 'catchUp', 'catchUp');
  wrap(ShardApplier.prototype, 'applyEntry', 'apply');
  wrap(StateStore.prototype, 'writePart', 'commitWrites');
  wrap(StateStore.prototype, 'commit', 'commitWrites');
  wrap(Outbox.prototype, 'publish', 'publish');
}

/** Starts the probes (once per process); returns the running phase times. */
export function timePhases(): PhaseTimes {
  install();
  return times;
}

/** Starts the probes (once per process); returns the running count of snapshot bytes written. */
export function countParts(): PartsWritten {
  install();
  return parts;
}

/** The phase times since `before`. */
export function phasesSince(before: PhaseTimes): PhaseTimes {
  const out = { ...times };
  for (const k of Object.keys(out) as (keyof PhaseTimes)[]) out[k] -= before[k];
  return out;
}
