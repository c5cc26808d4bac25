// Gates that hold the code under test at a chosen point until the test lets it go on: how tests
// make "while a snapshot is being written" happen every time instead of by timing.
import type { TreeSource } from '../../core/snapshot/tree.js';

/** A gate a test opens: `reached` resolves when the code under test arrives at it. */
export function gate() {
  let arrive = () => {};
  let open = () => {};
  const reached = new Promise<void>((r) => {
    arrive = r;
  });
  const opened = new Promise<void>((r) => {
    open = r;
  });
  return { reached, opened, arrive: () => arrive(), open: () => open() };
}

/** A tree source that stops before its last entry until the gate opens. */
export function pausedSource(source: TreeSource, g: ReturnType<typeof gate>): TreeSource {
  return {
    root: source.root,
    async *entries() {
      const items = [];
      for await (const item of source.entries()) items.push(item);
      const last = items.pop();
      yield* items;
      g.arrive();
      await g.opened;
      if (last) yield last;
    },
  };
}
