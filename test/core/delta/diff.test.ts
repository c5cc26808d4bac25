import { describe, expect, it } from 'vitest';
import { applyDelta, revertDelta } from '../../../core/delta/apply.js';
import { diff } from '../../../core/delta/diff.js';
import { nginx, profile } from './fixtures.js';

const service = (state: 'running' | 'stopped', enabled: boolean) => ({
  name: 'nginx',
  manager: 'systemd' as const,
  state,
  enabled,
});

describe('diff', () => {
  it('turns a version change of a package into one package.upgrade carrying both entries', () => {
    const delta = diff(profile({ packages: [nginx('1.24.0')] }), profile({ packages: [nginx('1.26.0')] }));

    expect(delta.changes).toEqual([
      {
        kind: 'package.upgrade',
        section: 'packages',
        key: 'apt:nginx',
        from: nginx('1.24.0'),
        to: nginx('1.26.0'),
        disruptive: false,
      },
    ]);
  });

  it('calls a downgrade a package.upgrade too, from the newer version to the older', () => {
    const delta = diff(profile({ packages: [nginx('1.26.0')] }), profile({ packages: [nginx('1.24.0')] }));

    expect(delta.changes.map((c) => [c.kind, c.from, c.to])).toEqual([
      ['package.upgrade', nginx('1.26.0'), nginx('1.24.0')],
    ]);
  });

  it('splits starting and enabling a service into enable then start, each from the state the other left', () => {
    const delta = diff(
      profile({ services: [service('stopped', false)] }),
      profile({ services: [service('running', true)] }),
    );

    expect(delta.changes).toEqual([
      {
        kind: 'service.enable',
        section: 'services',
        key: 'nginx',
        from: service('stopped', false),
        to: service('stopped', true),
        disruptive: false,
      },
      {
        kind: 'service.start',
        section: 'services',
        key: 'nginx',
        from: service('stopped', true),
        to: service('running', true),
        disruptive: false,
      },
    ]);
  });

  it('installs the package before adding, enabling and starting its new service', () => {
    const delta = diff(
      profile(),
      profile({ packages: [nginx('1.26.0')], services: [service('running', true)] }),
    );

    expect(delta.changes.map((c) => c.kind)).toEqual([
      'package.install',
      'service.add',
      'service.enable',
      'service.start',
    ]);
    expect(delta.changes[1]?.to).toEqual(service('stopped', false));
  });

  it('stops, disables and removes a service before removing its package', () => {
    const delta = diff(
      profile({ packages: [nginx('1.26.0')], services: [service('running', true)] }),
      profile(),
    );

    expect(delta.changes.map((c) => c.kind)).toEqual([
      'service.stop',
      'service.disable',
      'service.remove',
      'package.remove',
    ]);
    expect(delta.changes[2]?.from).toEqual(service('stopped', false));
  });

  it('unloads and reloads a kernel module whose parameters change, at its place in the load order', () => {
    const from = profile({
      kernelModules: [
        { name: 'overlay' },
        { name: 'loop', parameters: { max_loop: '8' } },
        { name: 'dummy' },
      ],
    });
    const to = profile({
      kernelModules: [
        { name: 'overlay' },
        { name: 'loop', parameters: { max_loop: '64' } },
        { name: 'dummy' },
      ],
    });

    const delta = diff(from, to);

    expect(delta.changes).toEqual([
      {
        kind: 'kmod.unload',
        section: 'kernelModules',
        key: 'loop',
        from: { name: 'loop', parameters: { max_loop: '8' } },
        to: null,
        disruptive: true,
        after: 'overlay',
      },
      {
        kind: 'kmod.load',
        section: 'kernelModules',
        key: 'loop',
        from: null,
        to: { name: 'loop', parameters: { max_loop: '64' } },
        disruptive: false,
        after: 'overlay',
      },
    ]);
    expect(applyDelta(from, delta).spec.kernelModules).toEqual(to.spec.kernelModules);
    expect(revertDelta(applyDelta(from, delta), delta).spec.kernelModules).toEqual(from.spec.kernelModules);
  });

  it('keeps the longest run of modules loaded and moves the others', () => {
    const names = (...ns: string[]) => ns.map((name) => ({ name }));
    const from = profile({ kernelModules: names('a', 'b', 'c', 'd') });
    const to = profile({ kernelModules: names('d', 'a', 'b', 'c') });

    const delta = diff(from, to);

    expect(delta.changes.map((c) => [c.kind, c.key, 'after' in c ? c.after : undefined])).toEqual([
      ['kmod.unload', 'd', 'c'],
      ['kmod.load', 'd', null],
    ]);
    expect(applyDelta(from, delta).spec.kernelModules.map((m) => m.name)).toEqual(['d', 'a', 'b', 'c']);
  });

  it('unsets sysctl keys that go and sets those that come or change, each carrying the old value', () => {
    const delta = diff(
      profile({ configuration: { sysctl: { 'vm.swappiness': '60', 'net.ipv4.ip_forward': '0' } } }),
      profile({ configuration: { sysctl: { 'vm.swappiness': '10', 'fs.file-max': '65536' } } }),
    );

    expect(delta.changes.map((c) => [c.kind, c.key, c.from, c.to])).toEqual([
      ['sysctl.unset', 'net.ipv4.ip_forward', '0', null],
      ['sysctl.set', 'fs.file-max', null, '65536'],
      ['sysctl.set', 'vm.swappiness', '60', '10'],
    ]);
  });

  it('turns a changed route into the removal of the old route and the addition of the new one', () => {
    const old = { destination: 'default', gateway: '10.0.0.1', interface: 'eth0' };
    const next = { destination: 'default', gateway: '10.0.0.254', interface: 'eth0' };

    const delta = diff(profile({ network: { routes: [old] } }), profile({ network: { routes: [next] } }));

    expect(delta.changes.map((c) => [c.kind, c.key, c.from, c.to])).toEqual([
      ['route.remove', 'main default 10.0.0.1 eth0 -', old, null],
      ['route.add', 'main default 10.0.0.254 eth0 -', null, next],
    ]);
  });

  it('finds nothing to do when only observed data and metadata differ', () => {
    const captured = profile(
      { packages: [nginx('1.26.0')] },
      {
        metadata: { name: 'web-1', description: 'captured' },
        observed: { listening: [{ protocol: 'tcp', address: '0.0.0.0', port: 80 }] },
      },
    );
    const approved = profile({ packages: [nginx('1.26.0')] }, { metadata: { name: 'web-2' } });

    const delta = diff(captured, approved);

    expect(delta.changes).toEqual([]);
    expect(delta.summary).toEqual({ changes: 0, disruptive: 0, byKind: {} });
    expect(delta.from).toEqual({ name: 'web-1' });
    expect(delta.to).toEqual({ name: 'web-2' });
  });

  it('counts changes by kind and counts the disruptive ones', () => {
    const delta = diff(
      profile({ kernelModules: [{ name: 'loop' }], packages: [nginx('1.24.0')] }),
      profile({
        os: {
          family: 'linux',
          distribution: 'debian',
          version: '13',
          kernel: '6.12.0-1-amd64',
          arch: 'x86_64',
        },
        packages: [nginx('1.26.0'), { name: 'curl', version: '8.0.0', manager: 'apt' }],
      }),
    );

    expect(delta.summary).toEqual({
      changes: 4,
      disruptive: 2,
      byKind: { 'os.replace': 1, 'kmod.unload': 1, 'package.install': 1, 'package.upgrade': 1 },
    });
  });

  it('names the profile versions it was asked to', () => {
    const delta = diff(profile(), profile(), {
      from: { name: 'web-1', version: 3 },
      to: { name: 'web-1', version: 4 },
    });

    expect([delta.from, delta.to]).toEqual([
      { name: 'web-1', version: 3 },
      { name: 'web-1', version: 4 },
    ]);
  });
});
