// The laws a Delta obeys, checked on generated pairs of overlapping profiles.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { applyDelta, invert, invertChange, revertDelta } from '../../../core/delta/apply.js';
import {
  CHANGE_KINDS,
  type Change,
  Delta,
  SWITCH_ONLY_KINDS,
  summarize,
} from '../../../core/delta/changes.js';
import { diff } from '../../../core/delta/diff.js';
import { canonicalSpec } from '../../../core/profile/collections.js';
import { Profile } from '../../../core/profile/schema.js';
import { profileArb, profileInputArb, profilePairArb } from '../../support/arbitraries.js';

const RUNS = { numRuns: 200 };

const specOf = (p: Profile) => canonicalSpec(p.spec);
const only = (delta: Delta, change: Change): Delta => ({
  ...delta,
  changes: [change],
  summary: summarize([change]),
});

describe('profile arbitraries', () => {
  it('generate profiles that the Profile schema accepts', () => {
    fc.assert(
      fc.property(profileInputArb, (input) => {
        const result = Profile.safeParse(input);
        expect(result.error?.issues ?? []).toEqual([]);
      }),
      RUNS,
    );
  });

  it('generate pairs whose deltas use every kind of change', () => {
    const seen = new Set(
      fc
        .sample(profilePairArb, { numRuns: 300, seed: 42 })
        .flatMap(([a, b]) => diff(a, b).changes.map((c) => c.kind)),
    );
    expect(CHANGE_KINDS.filter((k) => !seen.has(k) && !SWITCH_ONLY_KINDS.includes(k))).toEqual([]);
  });
});

describe('diff', () => {
  it('gives a delta that turns the first profile into the second', () => {
    fc.assert(
      fc.property(profilePairArb, ([a, b]) => {
        expect(specOf(applyDelta(a, diff(a, b)))).toEqual(specOf(b));
      }),
      RUNS,
    );
  });

  it('finds no change between a profile and itself, whatever the order of its collections', () => {
    fc.assert(
      fc.property(profileArb, (a) => {
        expect(diff(a, a).changes).toEqual([]);
        expect(diff(a, { ...a, spec: specOf(a) }).changes).toEqual([]);
      }),
      RUNS,
    );
  });

  it('ignores differences in observed and metadata', () => {
    fc.assert(
      fc.property(profileArb, profileArb, (a, b) => {
        expect(diff(a, { ...b, spec: a.spec }).changes).toEqual([]);
      }),
      RUNS,
    );
  });

  it('produces deltas that the published Delta schema accepts unchanged', () => {
    fc.assert(
      fc.property(profilePairArb, ([a, b]) => {
        const delta = diff(a, b);
        expect(Delta.parse(delta)).toEqual(delta);
      }),
      RUNS,
    );
  });
});

describe('applyDelta', () => {
  it('changes nothing the second time a delta that moves kernel modules is applied', () => {
    // A module unloaded and loaded again elsewhere (and one whose parameters change): applying
    // the unload again would shift its neighbours, so a second apply leaves the list alone.
    const modules = (list: { name: string; parameters?: Record<string, string> }[]) =>
      Profile.parse({
        apiVersion: 'persona/v1',
        kind: 'Profile',
        metadata: { name: 'web-1' },
        spec: {
          os: { family: 'linux', distribution: 'debian', version: '12', kernel: 'k', arch: 'x86_64' },
          kernelModules: list.map((m) => ({ parameters: {}, ...m })),
        },
      });
    const a = modules([{ name: 'br_netfilter' }, { name: 'overlay' }, { name: 'dummy' }, { name: 'loop' }]);
    const b = modules([
      { name: 'loop' },
      { name: 'overlay', parameters: { numdummies: '1' } },
      { name: 'dummy' },
      { name: 'br_netfilter' },
    ]);
    const delta = diff(a, b);
    const once = applyDelta(a, delta);
    expect(specOf(once)).toEqual(specOf(b));
    expect(specOf(applyDelta(once, delta))).toEqual(specOf(once));
  });

  it('changes nothing the second time the same delta is applied', () => {
    fc.assert(
      fc.property(profilePairArb, ([a, b]) => {
        const delta = diff(a, b);
        const once = applyDelta(a, delta);
        expect(specOf(applyDelta(once, delta))).toEqual(specOf(once));
      }),
      RUNS,
    );
  });
});

describe('revertDelta', () => {
  it('gives back the profile the delta was applied to', () => {
    fc.assert(
      fc.property(profilePairArb, ([a, b]) => {
        const delta = diff(a, b);
        expect(specOf(revertDelta(applyDelta(a, delta), delta))).toEqual(specOf(a));
      }),
      RUNS,
    );
  });

  it('undoes any one change on its own, from what the change carries', () => {
    fc.assert(
      fc.property(profilePairArb, fc.nat(), ([a, b], n) => {
        const delta = diff(a, b);
        fc.pre(delta.changes.length > 0);
        const i = n % delta.changes.length;
        const change = delta.changes[i] as Change;
        const before = applyDelta(a, { ...delta, changes: delta.changes.slice(0, i) });
        const after = applyDelta(before, only(delta, change));
        expect(specOf(after)).not.toEqual(specOf(before));
        expect(specOf(revertDelta(after, only(delta, change)))).toEqual(specOf(before));
      }),
      RUNS,
    );
  });
});

describe('invert', () => {
  it('gives back the delta when applied twice, and turns the second profile back into the first', () => {
    fc.assert(
      fc.property(profilePairArb, ([a, b]) => {
        const delta = diff(a, b);
        expect(invert(invert(delta))).toEqual(delta);
        expect(Delta.parse(invert(delta))).toEqual(invert(delta));
        expect(specOf(applyDelta(b, invert(delta)))).toEqual(specOf(a));
        expect(delta.changes.toReversed().map(invertChange)).toEqual(invert(delta).changes);
      }),
      RUNS,
    );
  });
});
