// A hand-written RHEL 9 web and database server on EC2: rpm and dnf, systemd, nftables,
// cgroup v2 limits, LUKS under LVM, kernel modules, users with passwords, sudo rules, SSH keys.
import { describe, expect, it } from 'vitest';
import { build, fixture, reasons } from './helpers.js';

const built = build(fixture('rhel-9'), ['nginx']);
const spec = built.valid.spec;
const observed = built.valid.observed;

describe('buildProfile on an rpm host with systemd (RHEL 9 on EC2)', () => {
  it('reads os-release, uname and the time zone link', () => {
    expect(spec.os).toEqual({
      family: 'linux',
      distribution: 'rhel',
      version: '9.3',
      kernel: '5.14.0-362.8.1.el9_3.x86_64',
      arch: 'x86_64',
      hostname: 'web-rhel',
      timezone: 'Europe/Paris',
      locale: 'en_US.UTF-8',
    });
  });

  it('names the instance type, region, zone and AMI from DMI and cloud-init data', () => {
    expect(spec.instance).toEqual({
      platform: 'aws',
      size: 'm6i.large',
      region: 'eu-west-1',
      zone: 'eu-west-1b',
    });
    expect(spec.baseImage).toEqual({ ref: 'ami-0fedcba9876543210', platform: 'aws' });
  });

  it('lists rpm packages under dnf, side-by-side kernels by version, and no signing keys', () => {
    expect(spec.packages.every((p) => p.manager === 'dnf')).toBe(true);
    expect(spec.packages.map((p) => p.name)).toEqual([
      'amazon-cloudwatch-agent',
      'bash',
      'cronie',
      'kernel',
      'kernel-5.14.0-284.30.1.el9_2',
      'nftables',
      'nginx',
      'openssh-server',
      'postgresql-server',
    ]);
    expect(spec.packages.find((p) => p.name === 'nginx')).toEqual({
      name: 'nginx',
      version: '1:1.20.1-14.el9_2.1',
      manager: 'dnf',
      arch: 'x86_64',
    });
  });

  it('lists systemd services that are installed or running, with the unit file that wins', () => {
    const byName = new Map(spec.services.map((s) => [s.name, s]));
    expect([...byName.keys()]).toEqual([
      'amazon-cloudwatch-agent',
      'batch',
      'crond',
      'getty@tty1',
      'kdump',
      'nginx',
      'postgresql',
      'sshd',
      'systemd-journald',
    ]);
    expect(byName.get('kdump')).toEqual({
      name: 'kdump',
      manager: 'systemd',
      state: 'stopped',
      enabled: false,
    });
    // A static unit that runs is listed, but it is not "enabled".
    expect(byName.get('systemd-journald')).toMatchObject({ state: 'running', enabled: false });
    // An instance takes its state and unit file from its template.
    expect(byName.get('getty@tty1')).toMatchObject({
      state: 'running',
      enabled: true,
      unitHash: expect.stringMatching(/^sha256:/),
    });
    // /etc/systemd/system overrides the vendor unit.
    const nginx = byName.get('nginx');
    const sshd = byName.get('sshd');
    expect(nginx?.unitHash).not.toBe(sshd?.unitHash);
    expect(nginx?.unitHash).toBe('sha256:8f627ab002992447f29697c1a076211d1ccdb53bb943c5a96e70b467aec2d0b4');
  });

  it('reads interfaces, routes in every table but the kernel’s own, nftables and resolv.conf', () => {
    expect(spec.network.interfaces).toEqual([
      {
        name: 'ens5',
        type: 'ethernet',
        mac: '0a:1b:2c:3d:4e:5f',
        mtu: 9001,
        addresses: ['172.31.20.15/20'],
        state: 'up',
      },
      {
        name: 'lo',
        type: 'loopback',
        mac: '00:00:00:00:00:00',
        mtu: 65536,
        addresses: ['127.0.0.1/8', '::1/128'],
        state: 'up',
      },
      { name: 'wg0', type: 'tunnel', mtu: 1420, addresses: ['10.8.0.1/24'], state: 'up' },
    ]);
    expect(spec.network.routes).toEqual([
      { destination: '10.50.0.0/16', gateway: '10.8.0.2', interface: 'wg0', table: '100' },
      { destination: '10.8.0.0/24', interface: 'wg0' },
      { destination: '172.31.16.0/20', interface: 'ens5', metric: 100 },
      { destination: 'default', gateway: '172.31.16.1', interface: 'ens5', metric: 100 },
    ]);
    expect(spec.network.firewall?.backend).toBe('nftables');
    expect(spec.network.firewall?.ruleset).toContain('tcp dport { 22, 80, 443 } accept');
    expect(spec.network.dns).toEqual({
      nameservers: ['172.31.0.2'],
      search: ['eu-west-1.compute.internal'],
      options: ['timeout:2', 'attempts:3'],
    });
  });

  it('reads volumes by their EBS id, filesystems down through LUKS and LVM, and real mounts only', () => {
    expect(spec.storage.volumes).toEqual([
      { name: 'vol-0a1b2c3d4e5f60718', device: '/dev/nvme0n1', sizeBytes: 21474836480, type: 'nvme' },
      {
        name: 'vol-0fedcba987654321a',
        device: '/dev/nvme1n1',
        sizeBytes: 107374182400,
        type: 'nvme',
        encryption: { enabled: true },
      },
    ]);
    expect(spec.storage.filesystems.map((f) => [f.device, f.type])).toEqual([
      ['/dev/mapper/data-pg', 'ext4'],
      ['/dev/mapper/luks-data', 'LVM2_member'],
      ['/dev/nvme0n1p1', 'xfs'],
      ['/dev/nvme1n1', 'crypto_LUKS'],
      ['/dev/zram0', 'swap'],
    ]);
    expect(spec.storage.mounts.map((m) => m.target)).toEqual([
      '/',
      '/mnt/shared data',
      '/tmp',
      '/var/lib/pgsql',
    ]);
  });

  it('reads cgroup limits that differ from the defaults, and each process’s share of them', () => {
    expect(spec.resources.cgroups).toEqual([
      { path: '/system.slice/batch.service', pidsMax: 64 },
      { path: '/system.slice/nginx.service', cpuMax: '50000 100000', cpuWeight: 200, memoryMax: 536870912 },
      { path: '/system.slice/postgresql.service', memoryMax: 4294967296, ioWeight: 500 },
    ]);
    const procs = new Map(spec.processes.map((p) => [p.name, p]));
    expect(procs.get('nginx')).toMatchObject({
      cpuQuotaPercent: 50,
      memoryLimitBytes: 536870912,
      ioClass: 'best-effort',
    });
    expect(procs.get('postgresql')).toMatchObject({ memoryLimitBytes: 4294967296, user: 'postgres' });
    expect(procs.get('batch')).toMatchObject({ nice: 10, ioClass: 'idle', cpuAffinity: [1], user: 'batch' });
    expect(spec.resources.cpu).toEqual({ count: 2, model: 'Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz' });
    expect(spec.resources.memory).toEqual({ bytes: 8192000000, swapBytes: 2147479552 });
    // The declared application's I/O class stands for the host's.
    expect(spec.resources.io).toEqual({ class: 'best-effort', priority: 2 });
  });

  it('names each service’s processes once, masks secrets in command lines, skips zombies', () => {
    expect(spec.processes.map((p) => p.name)).toEqual([
      'amazon-cloudwatch-agent',
      'batch',
      'chronyd',
      'crond',
      'nginx',
      'postgresql',
      'sshd',
      'systemd',
    ]);
    expect(spec.processes.find((p) => p.name === 'batch')?.command).toBe(
      '/usr/local/bin/reportgen --db-password=<redacted> --full',
    );
    expect(built.json).not.toContain('fixture-cli-password');
  });

  it('takes the environment of the oldest process of the application, secrets by reference', () => {
    const env = spec.configuration.env.filter((e) => e.scope === 'nginx');
    expect(env.map((e) => e.name)).toEqual(['BACKEND_URL', 'BANNER', 'NGINX_ENV', 'PATH', 'UPSTREAM_TOKEN']);
    expect(env.find((e) => e.name === 'BANNER')?.value).toBe('line one\nline two');
    expect(env.find((e) => e.name === 'BACKEND_URL')).toMatchObject({
      sensitive: true,
      secretRef: { key: 'web-rhel/env/nginx/BACKEND_URL' },
    });
    expect(
      spec.configuration.env.filter((e) => e.scope === '/etc/environment').map((e) => [e.name, e.value]),
    ).toEqual([
      ['EDITOR', 'vim'],
      ['LANG', 'en_US.UTF-8'],
    ]);
    expect(reasons(built, 'environ')).toEqual([
      '1 environment variable left out as invalid: nginx:bad-name (name: expected an environment variable name)',
    ]);
    expect(built.json).not.toContain('fixture-upstream-token');
    expect(built.json).not.toContain('fixture-url-secret');
  });

  it('keeps private keys and password files out by name and by content', () => {
    const files = new Map(spec.configuration.files.map((f) => [f.path, f]));
    for (const path of [
      '/etc/shadow',
      '/etc/pki/tls/private/web.key',
      '/etc/nginx/tls/bundle.pem',
      '/etc/app/db-password.txt',
    ]) {
      expect(files.get(path), path).toMatchObject({ sensitive: true, secretRef: { provider: 'local' } });
      expect(files.get(path)?.hash, path).toBeUndefined();
    }
    expect(files.get('/etc/pki/tls/certs/web.crt')?.hash).toMatch(/^sha256:/);
    expect(files.get('/usr/local/sbin/suid-tool')?.mode).toBe('4755');
    expect(files.get('/etc/localtime')).toEqual({
      path: '/etc/localtime',
      type: 'symlink',
      target: '../usr/share/zoneinfo/Europe/Paris',
      owner: 'root',
      group: 'root',
    });
    expect(files.get('/etc/odd\\name')?.hash).toMatch(/^sha256:/);
    expect(files.has('/etc/huge.bin')).toBe(false);
    expect(reasons(built, 'hashes')[0]).toMatch(
      /^1 file left out without a content hash .*: \/etc\/huge\.bin$/,
    );
  });

  it('keeps configuration sysctls, and size-derived ones only when a sysctl.d file sets them', () => {
    expect(spec.configuration.sysctl).toEqual({
      'net.core.somaxconn': '4096',
      'net.ipv4.conf.all.rp_filter': '1',
      'net.ipv4.conf.ens5/100.rp_filter': '2',
      'net.ipv4.ip_forward': '1',
      'net.ipv4.tcp_rmem': '4096 131072 6291456',
      'vm.swappiness': '10',
    });
    expect(reasons(built, 'sysctl')).toEqual([
      '1 key with names a Profile cannot hold left out: kernel.numa_balancing_promote_rate_limit_MBps',
      'net.ipv4.tcp_congestion_control is set in a sysctl.d file but the running kernel has no such key',
    ]);
  });

  it('lists kernel modules in the order they were loaded, with their parameters', () => {
    expect(spec.kernelModules).toEqual([
      { name: 'xfs', parameters: { debug: 'N' } },
      { name: 'wireguard', parameters: {} },
      { name: 'nf_conntrack', parameters: { hashsize: '65536', acct: '0' } },
      { name: 'nft_chain_nat', parameters: {} },
    ]);
  });

  it('describes users and their password state, with the hashes only in the secrets', () => {
    const users = new Map(spec.security.users.map((u) => [u.name, u]));
    expect(users.get('alice')).toEqual({
      name: 'alice',
      uid: 1000,
      gid: 1000,
      home: '/home/alice',
      shell: '/bin/bash',
      groups: ['wheel', 'deploy'],
      system: false,
      locked: false,
      passwordRef: { provider: 'local', key: 'web-rhel/password/alice' },
    });
    expect(users.get('bob')).toMatchObject({ locked: true, passwordRef: { key: 'web-rhel/password/bob' } });
    expect(users.get('nginx')).toMatchObject({ locked: true, system: true });
    expect(users.get('nginx')?.passwordRef).toBeUndefined();
    expect(users.get('batch')).toMatchObject({ locked: false });
    expect(users.get('batch')?.passwordRef).toBeUndefined();
    expect(users.get('nobody')?.system).toBe(true);
    expect(built.json).not.toMatch(/\$6\$|\$y\$/);
    expect(built.secrets.find((s) => s.source === 'bob')).toMatchObject({
      kind: 'password-hash',
      value: '$6$lockedsalt$BobLockedFakeHashForTests',
    });
  });

  it('groups sudo rules by principal, joining continued lines and leaving out defaults and aliases', () => {
    expect(spec.security.sudoers).toEqual([
      { principal: '%deploy', rules: ['ALL=(postgres) NOPASSWD: PG'] },
      { principal: '%wheel', rules: ['ALL=(ALL) ALL'] },
      {
        principal: 'deploy',
        rules: ['ALL=(root) NOPASSWD: /usr/bin/systemctl restart nginx, /usr/bin/systemctl reload nginx'],
      },
      { principal: 'root', rules: ['ALL=(ALL) ALL'] },
    ]);
  });

  it('fingerprints authorized keys as ssh-keygen does, and keeps the key lines as references', () => {
    expect(spec.security.sshKeys.map((k) => [k.user, k.type, k.fingerprint, k.comment])).toEqual([
      ['alice', 'ssh-ed25519', 'SHA256:9QEleKG/ucQyeyVvjiDqH3pBuORyz+kiNDg00TVVwII', 'deploy@ci'],
      ['alice', 'ecdsa-sha2-nistp256', 'SHA256:C7ggHZQn4T7dGcozCyUQ2LF/dC3mB05N6x7LSspFl/g', 'ops@laptop'],
    ]);
    expect(
      built.secrets.find((s) => s.kind === 'ssh-public-key' && s.value?.startsWith('from=')),
    ).toBeDefined();
    expect(reasons(built, 'sshkeys')).toEqual([
      'a line of /home/alice/.ssh/authorized_keys is not a public key',
    ]);
  });

  it('recognises the CloudWatch agent by its package, with its configuration hash', () => {
    expect(spec.monitoring.agents).toEqual([
      {
        name: 'amazon-cloudwatch-agent',
        version: '1.300032.2-1',
        configHash: expect.stringMatching(/^sha256:[0-9a-f]{64}$/),
      },
    ]);
  });

  it('derives the application’s start command and health checks from its master process', () => {
    expect(spec.application.startCommands).toEqual([
      { name: 'nginx', command: 'nginx: master process /usr/sbin/nginx', user: 'root' },
    ]);
    expect(spec.application.healthChecks.map((h) => h.name)).toEqual([
      'nginx-running',
      'nginx-tcp-443',
      'nginx-tcp-80',
    ]);
  });

  it('observes sockets, connections and rates with the capture’s own CPU time taken out', () => {
    expect(observed?.listening).toEqual([
      { protocol: 'tcp', address: '0.0.0.0', port: 80, process: 'nginx' },
      { protocol: 'tcp', address: '0.0.0.0', port: 443, process: 'nginx' },
      { protocol: 'tcp', address: '0.0.0.0', port: 22, process: 'sshd' },
      { protocol: 'tcp', address: '127.0.0.1', port: 5432, process: 'postgres' },
      { protocol: 'tcp6', address: '::', port: 22, process: 'sshd' },
      { protocol: 'udp', address: '127.0.0.1', port: 323, process: 'chronyd' },
      { protocol: 'unix', address: '/run/postgresql/.s.PGSQL.5432', process: 'postgres' },
    ]);
    expect(observed?.connections.map((c) => c.state)).toEqual([
      'ESTABLISHED',
      'ESTABLISHED',
      'ESTABLISHED',
      'ESTABLISHED',
      'TIME_WAIT',
    ]);
    expect(observed?.usage).toEqual({
      application: { activeSessions: 2 },
      data: [
        { type: 'logs', bytes: 52428800, files: 120 },
        { type: 'database', bytes: 53687091200, files: 2000 },
        { type: 'web', bytes: 40960, files: 10 },
        { type: 'containers', bytes: 1000000, files: 5000 },
      ],
      window: { seconds: 1.5, source: 'capture' },
      network: { rxBytesPerSecond: 1000000, txBytesPerSecond: 2000000, connections: 4 },
      // (210 busy ticks - 38 of the capture's own) / 300 ticks; 750 operations / 1.5 s.
      performance: {
        cpuUtilization: 0.5733,
        memoryUtilization: 0.75,
        loadAverage: [1.2, 0.9, 0.7],
        diskIops: 500,
      },
    });
    expect(reasons(built, 'du')).toEqual([
      'the walk of /var/lib/containers was cut short by its time limit: its size and file count are lower bounds',
    ]);
  });

  it('scores it as a web server and a database', () => {
    const traits = observed?.traitVector?.traits ?? {};
    expect(traits['web-serving']).toBe(1);
    expect(traits.database).toBe(1);
    expect(traits['latency-sensitive']).toBe(0.8);
  });
});
