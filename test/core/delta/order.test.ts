// The order of a Delta is one a real host can follow. Checked on generated pairs: the layer
// rule itself, and concrete dependencies it exists for.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Change, ChangeKind, Delta } from '../../../core/delta/changes.js';
import { SECTIONS } from '../../../core/delta/changes.js';
import { diff, LAYER_ORDER } from '../../../core/delta/diff.js';
import { profilePairArb } from '../../support/arbitraries.js';

const RUNS = { numRuns: 200 };

const isTeardown = (c: Change) => c.to === null || c.kind === 'service.stop' || c.kind === 'service.disable';

const indexesOf = (delta: Delta, kinds: readonly ChangeKind[]) =>
  delta.changes.flatMap((c, i) => (kinds.includes(c.kind) ? [i] : []));

/** Every change of the first kinds comes before every change of the second kinds. */
function expectBefore(delta: Delta, first: readonly ChangeKind[], then: readonly ChangeKind[]): void {
  const last = Math.max(-1, ...indexesOf(delta, first));
  const next = Math.min(delta.changes.length, ...indexesOf(delta, then));
  expect(last, `${first.join('/')} after ${then.join('/')}`).toBeLessThan(next);
}

const layerOf = (c: Change) => LAYER_ORDER.indexOf(c.section);

const property = (check: (delta: Delta, names: { from: string[]; to: string[] }) => void) =>
  fc.assert(
    fc.property(profilePairArb, ([a, b]) => {
      check(diff(a, b), {
        from: a.spec.kernelModules.map((m) => m.name),
        to: b.spec.kernelModules.map((m) => m.name),
      });
    }),
    RUNS,
  );

describe('diff order', () => {
  it('has one layer for every section', () => {
    expect([...LAYER_ORDER].sort()).toEqual([...SECTIONS].sort());
  });

  it('tears everything down before building anything up', () => {
    property((delta) => {
      const phases = delta.changes.map((c) => (isTeardown(c) ? 0 : 1));
      expect(phases).toEqual(phases.toSorted());
    });
  });

  it('tears down bottom-up through the layers and builds top-down', () => {
    property((delta) => {
      const teardown = delta.changes.filter(isTeardown).map(layerOf);
      const build = delta.changes.filter((c) => !isTeardown(c)).map(layerOf);
      expect(teardown).toEqual(teardown.toSorted((x, y) => y - x));
      expect(build).toEqual(build.toSorted((x, y) => x - y));
    });
  });

  it('adds groups and users before writing files, and deletes files before removing users and groups', () => {
    property((delta) => {
      expectBefore(delta, ['group.add', 'user.add', 'user.modify'], ['file.write']);
      expectBefore(delta, ['file.delete'], ['user.remove', 'group.remove']);
      expectBefore(delta, ['group.add'], ['user.add']);
    });
  });

  it('starts services after their packages, runtimes and files, and stops them before those go', () => {
    property((delta) => {
      const provide: ChangeKind[] = [
        'package.install',
        'package.upgrade',
        'runtime.install',
        'file.write',
        'env.set',
      ];
      expectBefore(delta, provide, ['service.add', 'service.enable', 'service.start']);
      expectBefore(
        delta,
        ['service.stop', 'service.disable', 'service.remove'],
        ['package.remove', 'file.delete'],
      );
    });
  });

  it('builds storage volume first and tears it down mount first, deepest mount first', () => {
    property((delta) => {
      expectBefore(delta, ['mount.remove'], ['filesystem.remove', 'volume.detach']);
      expectBefore(delta, ['filesystem.remove'], ['volume.detach']);
      expectBefore(delta, ['volume.attach'], ['filesystem.create', 'mount.add']);
      expectBefore(delta, ['filesystem.create'], ['mount.add']);
      const removed = delta.changes.filter((c) => c.kind === 'mount.remove').map((c) => c.key);
      expect(removed).toEqual(removed.toSorted().toReversed());
    });
  });

  it('unloads kernel modules in reverse load order before loading any, and loads them in the target order', () => {
    property((delta, names) => {
      expectBefore(delta, ['kmod.unload'], ['kmod.load']);
      const unloaded = delta.changes.filter((c) => c.kind === 'kmod.unload').map((c) => c.key);
      const loaded = delta.changes.filter((c) => c.kind === 'kmod.load').map((c) => c.key);
      expect(unloaded).toEqual(names.from.filter((n) => unloaded.includes(n)).toReversed());
      expect(loaded).toEqual(names.to.filter((n) => loaded.includes(n)));
    });
  });
});
