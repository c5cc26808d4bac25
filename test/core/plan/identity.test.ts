import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { diff } from '../../../core/delta/diff.js';
import {
  DERIVED_FILES,
  IDENTITY_FIELDS,
  IDENTITY_FILES,
  identityValues,
  isIdentityFile,
  translateIdentity,
} from '../../../core/plan/identity.js';
import { canonicalSpec } from '../../../core/profile/collections.js';
import { Profile, type ProfileSpec } from '../../../core/profile/schema.js';
import { canonicalProfileArb, profilePairArb } from '../../support/arbitraries.js';
import { bareTarget, file, hash, webSource } from './fixtures.js';

const ethernet = (name: string, mac: string, addresses: string[]) => ({
  name,
  type: 'ethernet' as const,
  mac,
  addresses,
});

/** The spec without the identity fields, to compare what must follow the source. */
function withoutIdentity(spec: ProfileSpec): unknown {
  const { hostname: _h, ...os } = spec.os;
  return {
    ...spec,
    os,
    network: { ...spec.network, interfaces: [], routes: [], dns: undefined },
    storage: undefined,
    security: { ...spec.security, sshKeys: [] },
    configuration: {
      ...spec.configuration,
      files: spec.configuration.files.filter((f) => !isIdentityFile(f.path)),
    },
  };
}

describe('IDENTITY.md', () => {
  const doc = readFileSync(new URL('../../../core/plan/IDENTITY.md', import.meta.url), 'utf8');
  const rows = (marker: string) => {
    const block = doc.split(`<!-- ${marker}:start -->`)[1]?.split(`<!-- ${marker}:end -->`)[0] ?? '';
    return block.split('\n').filter((l) => l.startsWith('| `'));
  };

  it('lists exactly the identity fields the code translates, in its order', () => {
    expect(rows('identity-fields')).toEqual(IDENTITY_FIELDS.map((f) => `| \`${f.field}\` | ${f.rule} |`));
  });

  it('lists exactly the identity files the code keeps, in its order', () => {
    expect(rows('identity-files')).toEqual(IDENTITY_FILES.map((f) => `| \`${f.pattern}\` | ${f.holds} |`));
  });

  it('lists exactly the files written by other sections, in its order', () => {
    expect(rows('derived-files')).toEqual(DERIVED_FILES.map((f) => `| \`${f.pattern}\` | ${f.from} |`));
  });
});

describe('isIdentityFile', () => {
  it('matches host keys, machine-id, hostname, hosts, network configuration and leases', () => {
    for (const path of [
      '/etc/hostname',
      '/etc/hosts',
      '/etc/machine-id',
      '/var/lib/dbus/machine-id',
      '/etc/ssh/ssh_host_rsa_key',
      '/etc/ssh/ssh_host_ed25519_key-cert.pub',
      '/etc/netplan/50-cloud-init.yaml',
      '/etc/sysconfig/network-scripts/ifcfg-eth0',
      '/var/lib/dhcp/dhclient.eth0.leases',
      '/run/systemd/netif/leases/2',
      '/etc//hostname',
      '/etc/ssh/ssh_host_rsa_key/',
    ]) {
      expect(isIdentityFile(path), path).toBe(true);
    }
  });

  it('does not match near misses', () => {
    for (const path of [
      '/etc/hostname.bak',
      '/etc/hosts.allow',
      '/etc/ssh/sshd_config',
      '/etc/ssh/ssh_host_keys/x',
      '/etc/netplan',
      '/etc/nginx/nginx.conf',
      '/srv/etc/hostname',
    ]) {
      expect(isIdentityFile(path), path).toBe(false);
    }
  });
});

describe('translateIdentity', () => {
  it("keeps the target's hostname, interfaces, addresses, MACs and identity files, and follows the source in everything else", () => {
    const source = webSource();
    const target = bareTarget();
    const { profile } = translateIdentity(source, target);
    const spec = profile.spec;

    expect(spec.os.hostname).toBe('clone-1');
    expect(spec.os.kernel).toBe(source.spec.os.kernel);
    // ens5 (the source's) matches eth0 (the target's) by position: the target's name, MAC and
    // address; the source's MTU.
    expect(spec.network.interfaces).toEqual([
      { ...ethernet('eth0', '52:54:00:12:34:56', ['10.0.0.3/24']), mtu: 9001, state: 'up' },
      { name: 'lo', type: 'loopback', addresses: ['127.0.0.1/8', '::1/128'], state: 'up' },
    ]);
    const files = new Map(spec.configuration.files.map((f) => [f.path, f]));
    for (const path of [
      '/etc/hostname',
      '/etc/machine-id',
      '/etc/hosts',
      '/etc/ssh/ssh_host_ed25519_key',
      '/etc/ssh/ssh_host_ed25519_key.pub',
    ]) {
      expect(files.get(path)?.hash, path).toBe(hash('b'));
    }
    // The source's static network configuration names its own address: not carried over.
    expect(files.has('/etc/netplan/50-cloud-init.yaml')).toBe(false);
    // A file that is not identity is the source's, even where the target has its own.
    expect(files.get('/etc/ssh/sshd_config')?.hash).toBe(
      source.spec.configuration.files.find((f) => f.path === '/etc/ssh/sshd_config')?.hash,
    );
    expect(withoutIdentity(spec)).toEqual(withoutIdentity(canonicalSpec(source.spec)));
    expect(profile.metadata).toEqual(source.metadata);
    expect(profile.observed).toBeUndefined();
  });

  it("maps a route through the source's gateway to the target's gateway and interface", () => {
    const { profile, unresolved } = translateIdentity(webSource(), bareTarget());
    // Source: default via 172.31.16.1 dev ens5 metric 100, and the connected 172.31.16.0/20.
    expect(profile.spec.network.routes).toEqual([
      { destination: '10.0.0.0/24', interface: 'eth0' },
      { destination: 'default', gateway: '10.0.0.1', interface: 'eth0', metric: 100 },
    ]);
    expect(unresolved.filter((u) => u.field.startsWith('spec.network'))).toEqual([]);
  });

  it('keeps a gateway that lies in the target subnet as well, and copies routes through other gateways', () => {
    const source = bareTarget({
      os: bareTarget().spec.os,
      network: {
        interfaces: [ethernet('eth0', '02:00:00:00:00:09', ['10.0.0.9/24'])],
        routes: [
          { destination: 'default', gateway: '10.0.0.1', interface: 'eth0' },
          { destination: '10.9.0.0/16', gateway: '10.0.0.254' },
          { destination: '192.168.7.0/24', gateway: '172.16.0.1' },
        ],
      },
    });
    const { profile, unresolved } = translateIdentity(source, bareTarget());
    expect(unresolved).toEqual([]);
    expect(profile.spec.network.routes.map((r) => `${r.destination} ${r.gateway ?? '-'}`)).toEqual([
      '10.0.0.0/24 -',
      '10.9.0.0/16 10.0.0.254',
      '192.168.7.0/24 172.16.0.1',
      'default 10.0.0.1',
    ]);
  });

  it('lists a route it cannot map as unresolved, with the reason, and leaves it out', () => {
    const source = webSource();
    const noGateway = bareTarget({
      network: {
        interfaces: [ethernet('eth0', '52:54:00:12:34:56', ['10.0.0.3/24'])],
        routes: [{ destination: '10.0.0.0/24', interface: 'eth0' }],
      },
    });
    const { profile, unresolved } = translateIdentity(source, noGateway);
    expect(profile.spec.network.routes).toEqual([{ destination: '10.0.0.0/24', interface: 'eth0' }]);
    expect(unresolved).toContainEqual({
      kind: 'identity',
      field: 'spec.network.routes[1]',
      reason:
        'route "main default 172.31.16.1 ens5 100": gateway 172.31.16.1 is in the source\'s own subnet 172.31.20.15/20 ("ens5"); the target\'s subnet 10.0.0.3/24 ("eth0") has no gateway its routes go through, and is not of the same size to place it at the same position',
    });
  });

  it('places a gateway (and a name server at it) at the same position of a target link of the same size that names no gateway', () => {
    const link = (address: string) =>
      bareTarget({
        network: {
          interfaces: [ethernet('eth0', '52:54:00:12:34:56', [address])],
          routes: [],
          dns: { nameservers: [address.replace(/\.\d+\/30$/, '.1'), '9.9.9.9'] },
        },
      });
    const source = Profile.parse({
      ...link('10.213.0.2/30'),
      spec: {
        ...link('10.213.0.2/30').spec,
        network: {
          ...link('10.213.0.2/30').spec.network,
          routes: [{ destination: '192.0.2.0/24', gateway: '10.213.0.1', interface: 'eth0' }],
        },
      },
    });
    const { profile, unresolved } = translateIdentity(source, link('10.213.0.18/30'));
    expect(unresolved).toEqual([]);
    expect(profile.spec.network.routes).toContainEqual({
      destination: '192.0.2.0/24',
      gateway: '10.213.0.17',
      interface: 'eth0',
    });
    expect(profile.spec.network.dns?.nameservers).toEqual(['10.213.0.17', '9.9.9.9']);
    // A name server at another address of the source's own link has no counterpart.
    const other = Profile.parse({
      ...source,
      spec: { ...source.spec, network: { ...source.spec.network, dns: { nameservers: ['10.213.0.3'] } } },
    });
    expect(translateIdentity(other, link('10.213.0.18/30')).unresolved.map((u) => u.field)).toEqual([
      'spec.network.dns.nameservers[0]',
    ]);
  });

  it("keeps the target's account files, resolver file, storage and SSH keys, and adds the source's keys", () => {
    const key = (user: string, n: string) => ({
      user,
      type: 'ssh-ed25519',
      fingerprint: `SHA256:${n.repeat(43)}`,
    });
    const source = webSource();
    const withKeys = Profile.parse({
      ...source,
      spec: { ...source.spec, security: { ...source.spec.security, sshKeys: [key('root', 'A')] } },
    });
    const target = bareTarget({
      security: { sshKeys: [key('root', 'B')] },
      configuration: { files: [file('/etc/shadow', 'b'), file('/etc/resolv.conf', 'b')] },
    });
    const { profile } = translateIdentity(withKeys, target);
    expect(profile.spec.security.sshKeys.map((k) => k.fingerprint).sort()).toEqual([
      key('root', 'A').fingerprint,
      key('root', 'B').fingerprint,
    ]);
    expect(profile.spec.storage).toEqual(target.spec.storage);
    const files = new Map(profile.spec.configuration.files.map((f) => [f.path, f]));
    expect(files.get('/etc/shadow')?.hash).toBe(hash('b'));
    expect(files.get('/etc/resolv.conf')?.hash).toBe(hash('b'));
  });

  it('lists a source interface with no counterpart, and the routes through it, as unresolved', () => {
    const source = bareTarget({
      network: {
        interfaces: [
          ethernet('eth0', '02:00:00:00:00:01', ['10.0.0.9/24']),
          ethernet('eth1', '02:00:00:00:00:02', ['192.168.5.9/24']),
        ],
        routes: [
          { destination: '10.0.0.0/8', gateway: '192.168.5.1' },
          { destination: '172.20.0.0/16', interface: 'eth1' },
        ],
      },
    });
    const target = bareTarget({
      network: {
        interfaces: [ethernet('eth0', '52:54:00:12:34:56', ['10.0.0.3/24'])],
        routes: [{ destination: 'default', gateway: '10.0.0.1' }],
      },
    });
    const { profile, unresolved } = translateIdentity(source, target);
    expect(profile.spec.network.interfaces.map((i) => i.name)).toEqual(['eth0']);
    expect(profile.spec.network.routes).toEqual([]);
    expect(unresolved.map((u) => u.field)).toEqual([
      'spec.network.interfaces[1]',
      'spec.network.routes[0]',
      'spec.network.routes[1]',
    ]);
    expect(unresolved[0]?.reason).toMatch(/interface "eth1" has no counterpart on the target/);
    expect(unresolved[1]?.reason).toMatch(
      /gateway 192\.168\.5\.1 is in the source's own subnet 192\.168\.5\.9\/24 \("eth1"\), which has no counterpart/,
    );
    expect(unresolved[2]?.reason).toMatch(/goes through interface "eth1", which has no counterpart/);
  });

  it('shows names from the profiles escaped in its reasons', () => {
    const source = bareTarget({
      network: {
        interfaces: [
          ethernet('eth0', '02:00:00:00:00:01', ['10.0.0.9/24']),
          ethernet('x\u001b[2Jy', '02:00:00:00:00:02', []),
        ],
      },
    });
    const { unresolved } = translateIdentity(source, bareTarget());
    expect(unresolved[0]?.reason).toMatch(/^interface "x\\x1b\[2Jy" has no counterpart/);
    expect(unresolved[0]?.reason).not.toContain('\u001b');
  });

  it("lists a second gateway of the source's subnet as unresolved: nothing says which of the target's it is", () => {
    const source = bareTarget({
      network: {
        interfaces: [ethernet('ens5', '02:00:00:00:00:01', ['172.31.20.15/20'])],
        routes: [
          { destination: 'default', gateway: '172.31.16.1' },
          { destination: '10.50.0.0/16', gateway: '172.31.16.9' },
        ],
      },
    });
    const { profile, unresolved } = translateIdentity(source, bareTarget());
    expect(profile.spec.network.routes.map((r) => r.destination)).toEqual(['10.0.0.0/24', 'default']);
    expect(unresolved).toHaveLength(1);
    expect(unresolved[0]?.reason).toMatch(/not its main gateway there \(172\.31\.16\.1\)/);
  });

  it("says so when the source's /etc/hosts differs from the target's", () => {
    const { unresolved } = translateIdentity(webSource(), bareTarget());
    expect(unresolved).toEqual([
      expect.objectContaining({ kind: 'identity', reason: expect.stringMatching(/^\/etc\/hosts differs/) }),
    ]);
  });

  it('never gives the target an identity value that came from the source', () => {
    const identityFile = fc.record({
      path: fc.constantFrom('/etc/hostname', '/etc/machine-id', '/etc/ssh/ssh_host_rsa_key', '/etc/hosts'),
      hash: fc.constantFrom(hash('1'), hash('2')),
    });
    const withIdentityFiles = (p: Profile, files: { path: string; hash: string }[]) =>
      Profile.parse({
        ...p,
        spec: {
          ...p.spec,
          configuration: {
            ...p.spec.configuration,
            files: [
              ...p.spec.configuration.files.filter((f) => !files.some((g) => g.path === f.path)),
              ...files,
            ],
          },
        },
      });
    const files = fc.uniqueArray(identityFile, { selector: (f) => f.path, maxLength: 4 });
    fc.assert(
      fc.property(profilePairArb, files, files, ([a, b], fa, fb) => {
        const source = withIdentityFiles(a, fa);
        const baseline = withIdentityFiles(b, fb);
        const { profile } = translateIdentity(source, baseline);
        const allowed = identityValues(baseline);
        for (const value of identityValues(profile)) expect(allowed).toContain(value);
        expect(withoutIdentity(profile.spec)).toEqual(withoutIdentity(canonicalSpec(source.spec)));
      }),
      { numRuns: 200 },
    );
  });

  it('translates a host onto itself into itself: its plan changes nothing', () => {
    fc.assert(
      fc.property(canonicalProfileArb, (p) => {
        const { profile, unresolved } = translateIdentity(p, p);
        expect(unresolved).toEqual([]);
        expect(diff(p, profile).changes).toEqual([]);
      }),
      { numRuns: 200 },
    );
  });
});
