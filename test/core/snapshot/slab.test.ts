// The ring a snapshot reads file content into: regions come from one buffer, come back once
// closed and no longer held, and the ring never gives out bytes a held region still has.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ReadSlab, type SlabRegion } from '../../../core/snapshot/slab.js';

describe('ReadSlab', () => {
  it('never hands out bytes of a region that is still open or held, and gives all of it back', () => {
    // Operations: take a region of some size, close the oldest open one, or unhold the oldest hold.
    const op = fc.oneof(
      fc.record({ take: fc.integer({ min: 1, max: 40 }), holds: fc.integer({ min: 0, max: 2 }) }),
      fc.constant({ close: true as const }),
      fc.constant({ unhold: true as const }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
        const slab = new ReadSlab(100);
        const open: SlabRegion[] = [];
        const held: SlabRegion[] = [];
        const live = new Set<SlabRegion>();
        const overlaps = (a: SlabRegion, b: SlabRegion) => a.start < b.end && b.start < a.end;
        for (const o of ops) {
          if ('take' in o) {
            const r = slab.take(o.take);
            if (!r) {
              // Refused only while something is still live.
              expect(live.size).toBeGreaterThan(0);
              continue;
            }
            expect(r.view.length).toBe(o.take);
            for (const other of live) expect(overlaps(r, other)).toBe(false);
            live.add(r);
            open.push(r);
            for (let i = 0; i < o.holds; i++) {
              r.holds++;
              held.push(r);
            }
          } else if ('close' in o) {
            const r = open.shift();
            if (r) slab.close(r);
          } else {
            const r = held.shift();
            if (r) slab.unhold(r);
          }
          for (const r of [...live]) if (r.released) live.delete(r);
          for (const r of live) expect(r.closed && r.holds === 0).toBe(false);
        }
        for (const r of open) slab.close(r);
        for (const r of held) slab.unhold(r);
        expect(slab.heldBytes).toBe(0);
        expect(slab.take(100)?.view.length).toBe(100);
      }),
      { numRuns: 300 },
    );
  });

  it('refuses an empty region or one larger than the ring', () => {
    const slab = new ReadSlab(10);
    expect(() => slab.take(0)).toThrow(RangeError);
    expect(() => slab.take(11)).toThrow(RangeError);
  });
});
