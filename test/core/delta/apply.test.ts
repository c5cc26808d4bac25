import { describe, expect, it } from 'vitest';
import { applyDelta, DeltaConflictError, invert, revertDelta } from '../../../core/delta/apply.js';
import { Delta } from '../../../core/delta/changes.js';
import { diff } from '../../../core/delta/diff.js';
import { PersonaError } from '../../../core/errors.js';
import { nginx, profile } from './fixtures.js';

function thrownBy(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  return undefined;
}

describe('applyDelta', () => {
  it('refuses a delta made for another base with a DeltaConflictError naming the change', () => {
    const delta = diff(profile({ packages: [nginx('1.24.0')] }), profile({ packages: [nginx('1.26.0')] }));
    const other = profile({ packages: [nginx('1.22.0')] });

    const error = thrownBy(() => applyDelta(other, delta));

    expect(error).toBeInstanceOf(DeltaConflictError);
    expect(error).toBeInstanceOf(PersonaError);
    expect(error).toMatchObject({
      code: 'DELTA_CONFLICT',
      kind: 'package.upgrade',
      key: 'apt:nginx',
      index: 0,
    });
    expect(String(error)).toMatch(/package\.upgrade "apt:nginx"/);
  });

  it('refuses to load a kernel module after one that is not loaded', () => {
    const delta = diff(
      profile({ kernelModules: [{ name: 'overlay' }] }),
      profile({ kernelModules: [{ name: 'overlay' }, { name: 'loop' }] }),
    );

    expect(() => applyDelta(profile(), delta)).toThrow(/kmod\.load "loop".*overlay/);
  });

  it('changes nothing when the same delta is applied a second time', () => {
    const from = profile({ services: [{ name: 'nginx', state: 'stopped', enabled: false }] });
    const to = profile({ services: [{ name: 'nginx', state: 'running', enabled: true }] });
    const delta = diff(from, to);

    const once = applyDelta(from, delta);

    expect(applyDelta(once, delta)).toEqual(once);
  });

  it('finishes a delta that was interrupted half-way when applied again from the start', () => {
    const from = profile();
    const to = profile({
      packages: [nginx('1.26.0')],
      services: [{ name: 'nginx', state: 'running', enabled: true }],
    });
    const delta = diff(from, to);
    const halfway = applyDelta(from, { ...delta, changes: delta.changes.slice(0, 2) });

    expect(applyDelta(halfway, delta).spec).toEqual(applyDelta(from, delta).spec);
  });

  it('leaves the profile it is given untouched and returns its spec in canonical order', () => {
    const from = profile({ packages: [nginx('1.24.0'), { name: 'curl', version: '8.0.0', manager: 'apt' }] });
    const before = structuredClone(from);

    const result = applyDelta(from, diff(from, profile({ packages: [nginx('1.26.0')] })));

    expect(from).toEqual(before);
    expect(result.spec.packages).toEqual([nginx('1.26.0')]);
  });
});

describe('revertDelta', () => {
  it('puts an unloaded kernel module back where it was in the load order', () => {
    const from = profile({ kernelModules: [{ name: 'overlay' }, { name: 'loop' }, { name: 'dummy' }] });
    const to = profile({ kernelModules: [{ name: 'overlay' }, { name: 'dummy' }] });
    const delta = diff(from, to);

    const reverted = revertDelta(applyDelta(from, delta), delta);

    expect(reverted.spec.kernelModules.map((m) => m.name)).toEqual(['overlay', 'loop', 'dummy']);
  });

  it('restores sysctl values that were changed or unset', () => {
    const from = profile({
      configuration: { sysctl: { 'vm.swappiness': '60', 'net.ipv4.ip_forward': '0' } },
    });
    const to = profile({ configuration: { sysctl: { 'vm.swappiness': '10' } } });
    const delta = diff(from, to);

    expect(revertDelta(applyDelta(from, delta), delta).spec.configuration.sysctl).toEqual(
      from.spec.configuration.sysctl,
    );
  });
});

describe('invert', () => {
  it('swaps from and to, reverses the order and uses the kinds that undo each change', () => {
    const delta = diff(
      profile({
        configuration: { env: [{ name: 'LANG', value: 'C' }] },
        services: [{ name: 'nginx', state: 'stopped', enabled: false }],
      }),
      profile({
        configuration: {
          env: [
            { name: 'LANG', value: 'C.UTF-8' },
            { name: 'APP_ENV', value: 'production' },
          ],
        },
        services: [{ name: 'nginx', state: 'running', enabled: true }],
      }),
    );

    const inverse = invert(delta);

    expect(delta.changes.map((c) => `${c.kind} ${c.key}`)).toEqual([
      'env.set APP_ENV',
      'env.set LANG',
      'service.enable nginx',
      'service.start nginx',
    ]);
    expect(inverse.changes.map((c) => `${c.kind} ${c.key}`)).toEqual([
      'service.stop nginx',
      'service.disable nginx',
      'env.set LANG',
      'env.unset APP_ENV',
    ]);
    expect(inverse.changes[3]).toMatchObject({ from: { name: 'APP_ENV', value: 'production' }, to: null });
    expect([inverse.from, inverse.to]).toEqual([delta.to, delta.from]);
  });

  it('marks the unload that undoes a load as disruptive and keeps where the module sat', () => {
    const delta = diff(profile(), profile({ kernelModules: [{ name: 'loop' }] }));

    expect(invert(delta).changes).toEqual([
      {
        kind: 'kmod.unload',
        section: 'kernelModules',
        key: 'loop',
        from: { name: 'loop', parameters: {} },
        to: null,
        disruptive: true,
        after: null,
      },
    ]);
    expect(invert(delta).summary).toEqual({ changes: 1, disruptive: 1, byKind: { 'kmod.unload': 1 } });
  });
});

describe('Delta schema', () => {
  const change = {
    kind: 'package.install',
    section: 'packages',
    key: 'apt:nginx',
    from: null,
    to: nginx('1.26.0'),
    disruptive: false,
  };
  const delta = (c: unknown) => ({
    from: { name: 'a' },
    to: { name: 'b' },
    changes: [c],
    summary: { changes: 1, disruptive: 0, byKind: {} },
  });

  it('accepts a well-formed change', () => {
    expect(Delta.safeParse(delta(change)).success).toBe(true);
  });

  it('refuses an install that starts from an existing entry', () => {
    expect(Delta.safeParse(delta({ ...change, from: nginx('1.24.0') })).error?.issues[0]?.message).toMatch(
      /from must be null/,
    );
  });

  it('refuses a change whose entry does not carry its key', () => {
    expect(Delta.safeParse(delta({ ...change, key: 'apt:curl' })).error?.issues[0]?.message).toMatch(
      /apt:nginx/,
    );
  });

  it('refuses a kind that belongs to another section', () => {
    expect(Delta.safeParse(delta({ ...change, kind: 'service.add' })).success).toBe(false);
  });

  it('refuses a clear value for a variable that looks like a secret', () => {
    const secret = {
      kind: 'env.set',
      section: 'env',
      key: 'DB_PASSWORD',
      from: null,
      to: { name: 'DB_PASSWORD', value: 'hunter2' },
      disruptive: false,
    };
    expect(Delta.safeParse(delta(secret)).success).toBe(false);
  });
});
