/**
 * The two kinds of state part of a shard, as bytes (docs/design.md, "Parts"): a snapshot (the pending sessions at
 * a version) and a delta (what later log entries did: the visits each added, its late visits, how it closed).
 * Loading a shard is a snapshot followed by its deltas, each step replayed with the same rule that made it; a
 * delta's last steps also give back what its commit closed, which is how an unpublished outbox is recovered.
 * Both are deflated; sizes are those of the encoded bytes.
 */
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { ByteReader, ByteWriter, CorruptDataError, StringTable, tableString } from './binary.ts';
import type { ShardState, StepOutcome, UserSnapshot } from './shard-state.ts';
import type { LateVisit, PageVisit, PendingSession, Visit } from './types.ts';

const SNAPSHOT = 0x53; // 'S'
const DELTA = 0x44; // 'D'
const FORMAT = 1;

/** What a log entry is to a shard: visits to apply, a flush, or a watermark advance with no visits. */
export type StepKind = 'visits' | 'flush' | 'advance';
const KINDS: readonly StepKind[] = ['visits', 'flush', 'advance'];

/** One applied log entry, as a delta records it. */
export interface DeltaStep {
  readonly seq: number;
  readonly kind: StepKind;
  readonly before: number;
  readonly after: number;
  readonly source: string;
  readonly accepted: number;
  readonly duplicates: number;
  /** Per user, the visits added, sorted. */
  readonly added: ReadonlyMap<string, readonly PageVisit[]>;
  readonly late: readonly LateVisit[];
}

function writeVisits(w: ByteWriter, strings: StringTable, visits: readonly PageVisit[]): void {
  w.uint(visits.length);
  let prev = 0;
  for (let i = 0; i < visits.length; i++) {
    const v = visits[i]!;
    if (i === 0) w.int(v.t);
    else w.uint(v.t - prev); // sorted: differences are never negative
    prev = v.t;
    w.uint(strings.id(v.page));
  }
}

function readVisits(r: ByteReader, strings: readonly string[]): PageVisit[] {
  const n = r.uint();
  const out: PageVisit[] = new Array(n);
  let t = 0;
  for (let i = 0; i < n; i++) {
    t = i === 0 ? r.int() : t + r.uint();
    out[i] = { t, page: tableString(strings, r.uint()) };
  }
  return out;
}

/** Header, string table, body: the table is only complete once the body is written. */
function seal(kind: number, strings: StringTable, body: ByteWriter): Buffer {
  const head = new ByteWriter(64 + strings.list.length * 16);
  head.uint(kind);
  head.uint(FORMAT);
  strings.write(head);
  return deflateRawSync(Buffer.concat([head.finish(), body.finish()]));
}

function open(bytes: Uint8Array, kind: number, what: string): { r: ByteReader; strings: string[] } {
  let raw: Buffer;
  try {
    raw = inflateRawSync(bytes);
  } catch (error) {
    throw new CorruptDataError(`${what}: not deflated data (${(error as Error).message})`);
  }
  const r = new ByteReader(raw);
  const got = r.uint();
  if (got !== kind) throw new CorruptDataError(`${what}: expected kind ${kind}, found ${got}`);
  const format = r.uint();
  if (format !== FORMAT) throw new CorruptDataError(`${what}: unknown format ${format}`);
  return { r, strings: StringTable.read(r) };
}

/** The shard's whole pending state, and the watermark it was built to. */
export function encodeSnapshot(state: ShardState): Buffer {
  const strings = new StringTable();
  const body = new ByteWriter(1 << 16);
  body.double(state.watermark);
  const users = [...state.snapshot()];
  body.uint(users.length);
  for (const u of users) {
    body.uint(strings.id(u.user));
    if (u.flushedThrough === undefined) body.uint(0);
    else {
      body.uint(1);
      body.int(u.flushedThrough);
    }
    body.uint(u.sessions.length);
    for (const s of u.sessions) writeVisits(body, strings, s.visits);
  }
  return seal(SNAPSHOT, strings, body);
}

/** Restores a snapshot into `state` (an empty one). */
export function decodeSnapshot(bytes: Uint8Array, state: ShardState): void {
  const { r, strings } = open(bytes, SNAPSHOT, 'snapshot');
  state.watermark = r.double();
  const n = r.uint();
  for (let i = 0; i < n; i++) {
    const user = tableString(strings, r.uint());
    const flushedThrough = r.uint() === 1 ? r.int() : undefined;
    const count = r.uint();
    const sessions: PendingSession[] = [];
    for (let k = 0; k < count; k++) {
      const visits = readVisits(r, strings);
      const first = visits[0];
      const last = visits[visits.length - 1];
      if (first === undefined || last === undefined) throw new CorruptDataError('snapshot: empty session');
      sessions.push({ userId: user, start: first.t, end: last.t, visits });
    }
    const snapshot: UserSnapshot = { user, sessions, flushedThrough };
    state.restore(snapshot);
  }
}

/** The steps of one commit. */
export function encodeDelta(steps: readonly DeltaStep[]): Buffer {
  const strings = new StringTable();
  const body = new ByteWriter(1 << 14);
  body.uint(steps.length);
  for (const step of steps) {
    body.uint(step.seq);
    body.uint(KINDS.indexOf(step.kind));
    body.double(step.before);
    body.double(step.after);
    body.uint(strings.id(step.source));
    body.uint(step.accepted);
    body.uint(step.duplicates);
    body.uint(step.added.size);
    for (const [user, visits] of step.added) {
      body.uint(strings.id(user));
      writeVisits(body, strings, visits);
    }
    body.uint(step.late.length);
    for (const l of step.late) {
      body.uint(strings.id(l.userId));
      body.int(l.t);
      body.uint(strings.id(l.page));
      body.uint(l.sourceLine);
      body.double(l.watermark);
    }
  }
  return seal(DELTA, strings, body);
}

export function decodeDelta(bytes: Uint8Array): DeltaStep[] {
  const { r, strings } = open(bytes, DELTA, 'delta');
  const n = r.uint();
  const steps: DeltaStep[] = [];
  for (let i = 0; i < n; i++) {
    const seq = r.uint();
    const kind = KINDS[r.uint()];
    if (kind === undefined) throw new CorruptDataError('delta: unknown step kind');
    const before = r.double();
    const after = r.double();
    const source = tableString(strings, r.uint());
    const accepted = r.uint();
    const duplicates = r.uint();
    const added = new Map<string, PageVisit[]>();
    const users = r.uint();
    for (let k = 0; k < users; k++) added.set(tableString(strings, r.uint()), readVisits(r, strings));
    const late: LateVisit[] = [];
    const lates = r.uint();
    for (let k = 0; k < lates; k++) {
      const userId = tableString(strings, r.uint());
      const t = r.int();
      const page = tableString(strings, r.uint());
      const sourceLine = r.uint();
      const watermark = r.double();
      late.push({ userId, t, page, sourceObject: source, sourceLine, watermark });
    }
    steps.push({ seq, kind, before, after, source, accepted, duplicates, added, late });
  }
  return steps;
}

/**
 * Replays one recorded step onto a state: its added visits merged (none can be late or a duplicate: they were
 * classified when the step was first applied), then the same closing. Gives back what the step closed, with the
 * late visits it recorded.
 */
export function replayStep(state: ShardState, step: DeltaStep): StepOutcome {
  if (step.kind === 'flush') return state.flush();
  if (step.kind === 'advance' || step.added.size === 0) {
    const out = state.advance(step.after);
    return { ...out, late: step.late as LateVisit[], accepted: step.accepted, duplicates: step.duplicates };
  }
  const visits: Visit[] = [];
  for (const [userId, list] of step.added)
    for (const v of list) visits.push({ userId, t: v.t, page: v.page, line: 0 });
  const out = state.apply(visits, { before: Number.NEGATIVE_INFINITY, after: step.after }, step.source);
  return { ...out, late: step.late as LateVisit[], accepted: step.accepted, duplicates: step.duplicates };
}
