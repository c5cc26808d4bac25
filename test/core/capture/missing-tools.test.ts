// The recorded Debian host as it would look with tools or files missing: each variant still
// gives a valid Profile, and what could not be read is an unknown with its reason.
import { describe, expect, it } from 'vitest';
import { IncompleteCaptureError } from '../../../core/capture/errors.js';
import { FIXTURE_PROCESS } from './fixtures/record.js';
import { build, fixture, reasons, withoutSection, withSection } from './helpers.js';

const debian = fixture('debian-12');

describe('buildProfile when the host lacks tools', () => {
  it('records a host without any package manager as having unknown packages', () => {
    const built = build(
      withSection(debian, 'packages', {
        missing: ['no package manager found (dpkg-query, rpm, apk)'],
        status: 127,
      }),
    );
    expect(built.valid.spec.packages).toEqual([]);
    expect(reasons(built, 'packages')).toEqual(['no package manager found (dpkg-query, rpm, apk)']);
  });

  it('falls back to /sys/class/net and /proc/net/route without ip', () => {
    const built = build(
      withSection(
        withSection(debian, 'interfaces', {
          missing: ['ip not found: interfaces read from /sys/class/net, without addresses'],
          parts: [['sysfs', 'eth0\t02:FC:00:00:00:01\t1400\tup\nlo\t00:00:00:00:00:00\t65536\tunknown\n']],
        }),
        'routes',
        {
          missing: ['ip not found: IPv4 routes read from /proc/net/route'],
          parts: [
            [
              'proc',
              'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n' +
                'eth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n' +
                'eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n',
            ],
          ],
        },
      ),
    );
    expect(built.valid.spec.network.interfaces).toEqual([
      { name: 'eth0', type: 'other', mac: '02:fc:00:00:00:01', mtu: 1400, addresses: [], state: 'up' },
      { name: 'lo', type: 'loopback', mac: '00:00:00:00:00:00', mtu: 65536, addresses: [], state: 'up' },
    ]);
    expect(built.valid.spec.network.routes).toEqual([
      { destination: '192.0.2.0/24', interface: 'eth0' },
      { destination: 'default', gateway: '192.0.2.1', interface: 'eth0', metric: 100 },
    ]);
    expect(reasons(built, 'interfaces')).toEqual([
      'ip not found: interfaces read from /sys/class/net, without addresses',
    ]);
    expect(reasons(built, 'routes')).toEqual(['ip not found: IPv4 routes read from /proc/net/route']);
  });

  it('takes iptables-save output where nft is absent', () => {
    const built = build(
      withSection(debian, 'firewall', {
        parts: [['iptables', '*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp --dport 22 -j ACCEPT\nCOMMIT\n']],
      }),
    );
    expect(built.valid.spec.network.firewall).toEqual({
      backend: 'iptables',
      ruleset: '*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp --dport 22 -j ACCEPT\nCOMMIT\n',
    });
    expect(reasons(built, 'firewall')).toEqual([]);
  });

  it('calls an empty nftables ruleset no firewall, not an unknown one', () => {
    const built = build(withSection(debian, 'firewall', { parts: [['nftables', '']] }));
    expect(built.valid.spec.network.firewall).toEqual({ backend: 'none', ruleset: '' });
  });

  it('reads /proc/net/tcp6 addresses without ss', () => {
    const head =
      '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n';
    const built = build(
      withSection(debian, 'sockets', {
        missing: ['ss not found: sockets read from /proc/net, without process names'],
        parts: [
          [
            'proc tcp6',
            `${head}   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n` +
              `   1: 0000000000000000FFFF00000100007F:1F90 0000000000000000FFFF00000100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0\n`,
          ],
        ],
      }),
    );
    expect(built.valid.observed?.listening).toEqual([{ protocol: 'tcp6', address: '::1', port: 8080 }]);
    expect(built.valid.observed?.connections).toEqual([
      {
        protocol: 'tcp6',
        local: '[::ffff:7f00:1]:8080',
        remote: '[::ffff:7f00:1]:54321',
        state: 'ESTABLISHED',
      },
    ]);
  });

  it('leaves password states unknown when /etc/shadow cannot be read', () => {
    const built = build(
      withSection(debian, 'shadow', {
        missing: ['cannot read /etc/shadow (capture as root): password states unknown'],
        status: 1,
      }),
    );
    expect(
      built.valid.spec.security.users.every((u) => u.locked === undefined && u.passwordRef === undefined),
    ).toBe(true);
    expect(reasons(built, 'shadow')).toEqual([
      'cannot read /etc/shadow (capture as root): password states unknown',
    ]);
  });

  it('leaves files out, and says how many, when the host has no sha256sum', () => {
    const built = build(
      withSection(debian, 'hashes', {
        missing: ['sha256sum not found: configuration files have no content hash'],
        status: 127,
      }),
    );
    const files = built.valid.spec.configuration.files;
    expect(files.filter((f) => f.type === 'file' && f.sensitive !== true)).toEqual([]);
    expect(files.filter((f) => f.type === 'directory').length).toBeGreaterThan(100);
    expect(reasons(built, 'hashes')[0]).toBe('sha256sum not found: configuration files have no content hash');
    expect(reasons(built, 'hashes')[1]).toMatch(/^\d+ files left out without a content hash/);
  });

  it('names a declared application process that is not running', () => {
    const built = build(debian, [FIXTURE_PROCESS, 'nginx']);
    expect(reasons(built, 'environ')).toEqual([
      'application process "nginx" is not running: its environment is unknown',
    ]);
    expect(built.valid.spec.application.startCommands.map((c) => c.name)).toEqual([FIXTURE_PROCESS]);
  });

  it('says when no application was declared, so no environment was read', () => {
    const built = build(withSection(debian, 'environ', { parts: [['file /etc/environment', '']] }));
    expect(built.valid.spec.configuration.env).toEqual([]);
    expect(reasons(built, 'environ')).toEqual([
      'no application processes were declared, so no process environment was read',
    ]);
  });

  it('names a section an older script did not print', () => {
    const built = build(withoutSection(debian, 'cgroups'));
    expect(reasons(built, 'cgroups')).toEqual(['the capture output has no such section']);
    expect(built.valid.spec.resources.cgroups).toEqual([]);
  });

  it('leaves usage rates unknown without a pair of samples', () => {
    const built = build(withoutSection(debian, 'sample-end'));
    expect(built.valid.observed?.usage?.network).toBeUndefined();
    expect(built.valid.observed?.usage?.performance?.cpuUtilization).toBeUndefined();
    expect(reasons(built, 'usage')).toContain(
      'no usable pair of /proc samples: CPU, disk and network rates are unknown',
    );
    const traits = Object.values(built.valid.observed?.traitVector?.traits ?? {});
    expect(traits.every((t) => t >= 0 && t <= 1)).toBe(true);
  });

  it('falls back to the distribution’s release file without os-release', () => {
    const built = build(
      withSection(debian, 'release', {
        missing: ['no /etc/os-release'],
        status: 1,
        parts: [['/etc/alpine-release', '3.19.0\n']],
      }),
    );
    expect(built.valid.spec.os).toMatchObject({ distribution: 'alpine', version: '3.19.0' });
    expect(reasons(built, 'release')).toEqual(['no /etc/os-release']);
  });

  it('refuses a host whose architecture a Profile cannot describe', () => {
    const mips = withSection(debian, 'os', { body: 'kernel=5.10.0\nmachine=mips64\nhostname=router\n' });
    expect(() => build(mips)).toThrow(/architecture mips64 is not one a Profile can describe/);
  });

  it('refuses to build from output whose os section is missing', () => {
    expect(() => build(withoutSection(debian, 'os'))).toThrow(IncompleteCaptureError);
  });
});
