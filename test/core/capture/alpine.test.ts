// A hand-written Alpine container on arm64: busybox everywhere (no find -printf, no ss, no
// lsblk, no ionice, ip without JSON, ps without pcpu), apk, OpenRC, iptables, musl, a cgroup
// limit on the whole container, and no root access to /etc/shadow.
import { describe, expect, it } from 'vitest';
import { build, fixture, reasons } from './helpers.js';

const built = build(fixture('alpine-3'), ['node']);
const spec = built.valid.spec;
const observed = built.valid.observed;

describe('buildProfile on a busybox host (Alpine, apk, OpenRC)', () => {
  it('reads the distribution and maps the architecture', () => {
    expect(spec.os).toEqual({
      family: 'linux',
      distribution: 'alpine',
      version: '3.20.1',
      kernel: '6.6.31-0-virt',
      arch: 'aarch64',
      hostname: 'edge-1',
    });
  });

  it('splits apk’s name-version-release into name and version', () => {
    expect(spec.packages.map((p) => [p.name, p.version])).toEqual([
      ['busybox', '1.36.1-r29'],
      ['ca-certificates-bundle', '20240705-r0'],
      ['iptables', '1.8.10-r3'],
      ['musl', '1.2.5-r0'],
      ['nginx', '1.26.1-r0'],
      ['nodejs', '20.15.1-r0'],
      ['openrc', '0.54-r1'],
      ['py3-yaml', '6.0.1-r3'],
    ]);
    expect(spec.packages.every((p) => p.manager === 'apk')).toBe(true);
  });

  it('describes OpenRC services from runlevels and started markers', () => {
    expect(spec.services).toEqual([
      { name: 'crond', manager: 'openrc', state: 'stopped', enabled: true },
      { name: 'local', manager: 'openrc', state: 'stopped', enabled: false },
      { name: 'nginx', manager: 'openrc', state: 'running', enabled: true },
      { name: 'sshd', manager: 'openrc', state: 'running', enabled: true },
    ]);
  });

  it('reads `ip addr` and `ip route` text when ip cannot print JSON', () => {
    expect(spec.network.interfaces).toEqual([
      {
        name: 'eth0',
        type: 'ethernet',
        mac: '02:42:ac:11:00:02',
        mtu: 1500,
        addresses: ['172.17.0.2/16'],
        state: 'up',
      },
      {
        name: 'lo',
        type: 'loopback',
        mac: '00:00:00:00:00:00',
        mtu: 65536,
        addresses: ['127.0.0.1/8'],
        state: 'up',
      },
    ]);
    expect(spec.network.routes).toEqual([
      { destination: '172.17.0.0/16', interface: 'eth0' },
      { destination: 'default', gateway: '172.17.0.1', interface: 'eth0' },
    ]);
  });

  it('keeps an iptables ruleset without the timestamps iptables-save adds', () => {
    expect(spec.network.firewall).toEqual({
      backend: 'iptables',
      ruleset:
        '*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [10:600]\n-A INPUT -i lo -j ACCEPT\n-A INPUT -p tcp -m tcp --dport 80 -j ACCEPT\nCOMMIT\n',
    });
    expect(spec.network.dns).toEqual({ nameservers: ['1.1.1.1', 'fe80::1'], search: ['lan'], options: [] });
  });

  it('reads sockets from /proc/net without ss, and says their processes are unknown', () => {
    expect(observed?.listening).toEqual([
      { protocol: 'tcp', address: '0.0.0.0', port: 80 },
      { protocol: 'tcp', address: '127.0.0.1', port: 3000 },
      { protocol: 'tcp6', address: '::', port: 22 },
      { protocol: 'udp', address: '0.0.0.0', port: 68 },
    ]);
    expect(observed?.connections).toEqual([
      { protocol: 'tcp', local: '172.17.0.2:80', remote: '172.17.0.5:50000', state: 'ESTABLISHED' },
    ]);
    expect(reasons(built, 'sockets')).toEqual([
      'ss not found: sockets read from /proc/net, without process names',
      'sockets read from /proc/net: the processes that own them are unknown',
    ]);
    // Without owners, sockets cannot be attributed to the application.
    expect(observed?.usage?.application).toBeUndefined();
  });

  it('reads volumes from /proc/partitions without lsblk, and the mounted device as a filesystem', () => {
    expect(spec.storage.volumes).toEqual([{ name: 'vda', device: '/dev/vda', sizeBytes: 10737418240 }]);
    expect(spec.storage.filesystems).toEqual([{ device: '/dev/vda', type: 'ext4', sizeBytes: 10501771264 }]);
    expect(spec.storage.mounts.map((m) => m.target)).toEqual(['/', '/data', '/etc/hosts']);
    expect(reasons(built, 'block')).toEqual(['lsblk not found: volumes read from /proc/partitions']);
  });

  it('reads the container’s own CPU and memory limit as the host’s quota', () => {
    expect(spec.resources.cpu).toEqual({ count: 4, quotaMillicores: 2000 });
    expect(spec.resources.cgroups).toEqual([{ path: '/', cpuMax: '200000 100000', memoryMax: 1073741824 }]);
    expect(spec.processes.find((p) => p.name === 'node')).toMatchObject({
      cpuQuotaPercent: 200,
      memoryLimitBytes: 1073741824,
    });
    expect(reasons(built, 'ionice')).toEqual(['ionice not found: I/O priorities unknown']);
  });

  it('lists files through stat when find cannot print, with credential files by reference', () => {
    const files = new Map(spec.configuration.files.map((f) => [f.path, f]));
    expect(files.get('/etc/hostname')).toMatchObject({
      type: 'file',
      mode: '0644',
      size: 7,
      hash: expect.stringMatching(/^sha256:/),
    });
    expect(files.get('/etc/motd')).toMatchObject({ type: 'file', size: 0 });
    expect(files.get('/etc/mtab')).toEqual({
      path: '/etc/mtab',
      type: 'symlink',
      target: '/proc/mounts',
      owner: 'root',
      group: 'root',
    });
    expect(files.get('/srv/app/.env')).toMatchObject({
      sensitive: true,
      secretRef: { key: 'edge-1/file/srv/app/.env' },
    });
    expect(files.get('/etc/shadow')).toMatchObject({ sensitive: true, group: 'shadow' });
  });

  it('reads musl and libraries from the library directories when there is no ldconfig cache', () => {
    expect(spec.runtimeDependencies).toEqual([
      { type: 'language', name: 'node', version: '20.15.1', path: '/usr/bin/node', manager: 'apk' },
      { type: 'library', name: 'libssl.so.3', version: '3', path: '/usr/lib/libssl.so.3', manager: 'apk' },
      {
        type: 'library',
        name: 'libstdc++.so.6',
        version: '6',
        path: '/usr/lib/libstdc++.so.6',
        manager: 'apk',
      },
      { type: 'library', name: 'libz.so.1', version: '1', path: '/lib/libz.so.1', manager: 'apk' },
      { type: 'library', name: 'musl', version: '1.2.5' },
    ]);
  });

  it('describes users without a password state when /etc/shadow is unreadable, and says so', () => {
    expect(spec.security.users.map((u) => [u.name, u.locked, u.passwordRef])).toEqual([
      ['nginx', undefined, undefined],
      ['node', undefined, undefined],
      ['root', undefined, undefined],
    ]);
    expect(spec.security.users.find((u) => u.name === 'node')?.groups).toEqual(['www-data']);
    expect(reasons(built, 'shadow')).toEqual([
      'cannot read /etc/shadow (capture as root): password states unknown',
    ]);
    expect(reasons(built, 'modules')).toEqual([
      'no /proc/modules: the kernel has no loadable module support, or hides it from this host',
    ]);
  });

  it('reads busybox ps, and the application’s environment with its token by reference', () => {
    expect(spec.processes.map((p) => [p.name, p.user, p.command])).toEqual([
      ['init', 'root', '/sbin/init'],
      ['nginx', 'root', 'nginx: master process /usr/sbin/nginx -c /etc/nginx/nginx.conf'],
      ['node', 'node', 'node /srv/app/server.js --port 3000'],
    ]);
    expect(spec.configuration.env).toEqual([
      {
        name: 'API_TOKEN',
        scope: 'node',
        sensitive: true,
        secretRef: { provider: 'local', key: 'edge-1/env/node/API_TOKEN' },
      },
      { name: 'NODE_ENV', scope: 'node', value: 'production' },
      { name: 'PORT', scope: 'node', value: '3000' },
    ]);
    expect(built.json).not.toContain('fixture-alpine-token');
  });

  it('counts the data footprint from du’s KiB when find cannot print sizes', () => {
    expect(observed?.usage?.data).toEqual([
      { type: 'logs', bytes: 2097152, files: 42 },
      { type: 'web', bytes: 102400, files: 10 },
      { type: 'application', bytes: 5242880, files: 200 },
    ]);
    expect(observed?.usage?.performance?.cpuUtilization).toBe(0.224);
  });
});
