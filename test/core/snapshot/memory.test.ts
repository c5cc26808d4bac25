// What a prompted collection is: V8 marks and collects after it, and the buffer that prompts it
// costs the process no resident memory (its pages are never written).
import { constants, PerformanceObserver } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { CollectionPacer, promptCollection } from '../../../core/snapshot/memory.js';

const MiB = 1024 * 1024;

/** Major collections that end within `ms` of `act`. */
async function majorsAfter(act: () => void, ms: number): Promise<number> {
  let majors = 0;
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries())
      if ((e as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR)
        majors++;
  });
  observer.observe({ entryTypes: ['gc'] });
  act();
  // Some allocation and turns of the event loop, as a pipeline gives V8 to finish marking in.
  const deadline = Date.now() + ms;
  const keep: unknown[] = [];
  while (majors === 0 && Date.now() < deadline) {
    keep.push(new Array(256).fill({}));
    if (keep.length > 64) keep.length = 0;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  // The observer reports on a later turn.
  await new Promise((resolve) => setImmediate(resolve));
  observer.disconnect();
  return majors;
}

describe('promptCollection', () => {
  it('is followed by a full collection', async () => {
    expect(await majorsAfter(promptCollection, 5000)).toBeGreaterThan(0);
  });

  it('does not make the process resident in what it allocates', () => {
    const before = process.memoryUsage().rss;
    for (let i = 0; i < 4; i++) promptCollection();
    // Four buffers of 96 MiB: filled, they would add 384 MiB.
    expect(process.memoryUsage().rss - before).toBeLessThan(16 * MiB);
  });
});

describe('CollectionPacer', () => {
  it('prompts a collection per `every` bytes dropped, at most one a drop, the rest carried', () => {
    const pacer = new CollectionPacer(10);
    for (const n of [3, 3, 3, 3]) pacer.dropped(n);
    expect(pacer.started).toBe(1);
    // 2 carried: 11 passes the mark once, 1 carried, then one large drop prompts one collection.
    pacer.dropped(9);
    expect(pacer.started).toBe(2);
    pacer.dropped(25);
    expect(pacer.started).toBe(3);
    // 16 carried from the large drop: the next mark is 4 bytes away, not 10.
    pacer.dropped(4);
    expect(pacer.started).toBe(4);
  });
});
