/** The expiry queue (a calendar queue of one-minute buckets) against a model: a list of (key, id). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ExpiryQueue } from '../../lambdas/core/expiry-queue.ts';

const MINUTE = 60_000;

type Op = { kind: 'push'; key: number } | { kind: 'take'; step: number; requeue: boolean };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant('push' as const),
    key: fc.integer({ min: -5 * MINUTE, max: 300 * MINUTE }),
  }),
  fc.record({
    kind: fc.constant('take' as const),
    // small steps, steps of whole buckets, and jumps far ahead (past many empty buckets)
    step: fc.oneof(
      fc.integer({ min: 0, max: 3 * MINUTE }),
      fc.constantFrom(MINUTE, 2 * MINUTE),
      fc.constant(100_000 * MINUTE),
    ),
    requeue: fc.boolean(),
  }),
);

describe('the expiry queue of a shard (calendar queue)', () => {
  it('takes every entry below the watermark exactly once, and nothing else (property)', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 150 }), (ops) => {
        const index = new ExpiryQueue<number>();
        let model: { key: number; id: number }[] = [];
        let watermark = -10 * MINUTE;
        let next = 0;
        for (const op of ops) {
          if (op.kind === 'push') {
            index.push(op.key, next);
            model.push({ key: op.key, id: next++ });
            continue;
          }
          watermark += op.step;
          const taken: [number, number][] = [];
          const due = model.filter((e) => e.key < watermark);
          model = model.filter((e) => e.key >= watermark);
          index.takeDue(watermark, (id, key) => {
            taken.push([key, id]);
            if (op.requeue) {
              // as closing does for a session not due: an entry at or above the watermark, taken later
              const key = watermark + (id % 3) * MINUTE;
              index.push(key, next);
              model.push({ key, id: next++ });
            }
          });

          const byKeyThenId = (a: [number, number], b: [number, number]): number =>
            a[0] - b[0] || a[1] - b[1];
          assert.deepEqual(
            taken.sort(byKeyThenId),
            due.map((e): [number, number] => [e.key, e.id]).sort(byKeyThenId),
          );
        }
        // whatever is left comes out once the watermark passes it all
        const rest: number[] = [];
        index.takeDue(Number.MAX_SAFE_INTEGER, (id) => rest.push(id));
        assert.deepEqual(
          rest.sort((a, b) => a - b),
          model.map((e) => e.id).sort((a, b) => a - b),
        );
      }),
      { numRuns: 300 },
    );
  });
});
