// fast-check arbitraries for Profiles that pass Profile.parse. Every section of the spec is
// covered, and key spaces are small on purpose: two generated profiles share packages,
// services, files, modules... so that their diff exercises modifications, not only additions
// and removals.
import fc from 'fast-check';
import { COLLECTIONS, canonicalSpec } from '../../core/profile/collections.js';
import { looksSensitive, Profile, type ProfileInput, type ProfileSpec } from '../../core/profile/schema.js';

const hash = (c: string) => `sha256:${c.repeat(64)}`;
const HASHES = ['a', 'b', 'c'].map(hash);
const FINGERPRINTS = ['A', 'B', 'C'].map((c) => `SHA256:${c.repeat(43)}`);
const USERS = ['root', 'alice', 'bob', 'deploy', 'www-data'] as const;
const GROUPS = ['admin', 'wheel', 'www-data', 'docker'] as const;

const secretRefArb = fc.oneof(
  fc.record(
    {
      provider: fc.constant('aws-secretsmanager'),
      secretId: fc.constantFrom('app/db', 'app/api'),
      jsonKey: fc.constantFrom('password', 'token'),
    },
    { requiredKeys: ['provider', 'secretId'] },
  ),
  fc.record(
    {
      provider: fc.constant('aws-ssm'),
      parameter: fc.constantFrom('/app/token', '/app/key'),
      version: fc.integer({ min: 1, max: 3 }),
    },
    { requiredKeys: ['provider', 'parameter'] },
  ),
  fc.record({
    provider: fc.constant('aws-kms'),
    keyId: fc.constant('alias/app'),
    ciphertext: fc.constantFrom('AQID', 'BAUG'),
  }),
  fc.record({ provider: fc.constant('local'), key: fc.constantFrom('db', 'api') }),
);

const osArb = fc.record(
  {
    family: fc.constant('linux'),
    distribution: fc.constantFrom('debian', 'ubuntu'),
    version: fc.constantFrom('12', '24.04'),
    codename: fc.constantFrom('bookworm', 'noble'),
    kernel: fc.constantFrom('6.1.0-18-amd64', '6.8.0-31-generic'),
    arch: fc.constantFrom('x86_64', 'aarch64'),
    hostname: fc.constantFrom('web-1', 'web-2'),
    timezone: fc.constantFrom('UTC', 'Europe/Paris'),
    locale: fc.constant('C.UTF-8'),
  },
  { requiredKeys: ['family', 'distribution', 'version', 'kernel', 'arch'] },
);

const platformArb = fc.constantFrom('aws', 'azure', 'baremetal', 'local');

const instanceArb = fc.record(
  {
    platform: platformArb,
    size: fc.constantFrom('m7g.large', 't3.micro', 'Standard_D2s_v5'),
    region: fc.constantFrom('eu-west-1', 'westeurope'),
    zone: fc.constantFrom('a', 'b'),
  },
  { requiredKeys: ['platform', 'size'] },
);

const baseImageArb = fc.record(
  {
    ref: fc.constantFrom('ami-0123456789abcdef0', 'debian-12'),
    platform: platformArb,
    digest: fc.constantFrom(...HASHES),
  },
  { requiredKeys: ['ref'] },
);

const packageArb = fc.record(
  {
    name: fc.constantFrom('nginx', 'openssl', 'curl', 'postgresql', 'redis', 'git', 'vim', 'python3'),
    version: fc.constantFrom('1.0.0', '1.2.0', '2.0.0', '2.1.3'),
    manager: fc.constantFrom('apt', 'apt', 'apt', 'pip'),
    arch: fc.constantFrom('amd64', 'arm64'),
    hold: fc.boolean(),
  },
  { requiredKeys: ['name', 'version', 'manager'] },
);

const serviceArb = fc.record(
  {
    name: fc.constantFrom('nginx', 'postgresql', 'redis', 'cron', 'ssh'),
    manager: fc.constantFrom('systemd', 'systemd', 'supervisord'),
    state: fc.constantFrom('running', 'stopped'),
    enabled: fc.boolean(),
    unitHash: fc.constantFrom(...HASHES),
  },
  { requiredKeys: ['name', 'state', 'enabled'] },
);

const interfaceArb = fc.record(
  {
    name: fc.constantFrom('eth0', 'eth1', 'lo', 'br0'),
    type: fc.constantFrom('ethernet', 'loopback', 'bridge'),
    mac: fc.constantFrom('02:00:00:00:00:01', '02:00:00:00:00:02'),
    mtu: fc.constantFrom(1500, 9001),
    addresses: fc.subarray(['10.0.0.5/24', '192.168.1.10/24', 'fe80::1/64']),
    state: fc.constantFrom('up', 'down'),
  },
  { requiredKeys: ['name'] },
);

const routeArb = fc.record(
  {
    destination: fc.constantFrom('default', '10.0.0.0/8', '192.168.1.0/24'),
    gateway: fc.constantFrom('10.0.0.1', '192.168.1.1'),
    interface: fc.constantFrom('eth0', 'eth1'),
    metric: fc.constantFrom(0, 100),
    table: fc.constantFrom('main', '100'),
  },
  { requiredKeys: ['destination'] },
);

const firewallArb = fc.record({
  backend: fc.constantFrom('nftables', 'iptables', 'none'),
  ruleset: fc.constantFrom('', 'table inet filter { }', '*filter\n:INPUT DROP [0:0]\nCOMMIT\n'),
});

const dnsArb = fc.record(
  {
    nameservers: fc.subarray(['1.1.1.1', '8.8.8.8', '10.0.0.2']),
    search: fc.subarray(['example.com', 'internal']),
    options: fc.subarray(['edns0', 'rotate']),
  },
  { requiredKeys: [] },
);

const volumeArb = fc.record(
  {
    name: fc.constantFrom('vol-root', 'vol-data', 'vol-logs'),
    device: fc.constantFrom('/dev/nvme0n1', '/dev/nvme1n1', '/dev/xvdf'),
    sizeBytes: fc.constantFrom(8 * 2 ** 30, 20 * 2 ** 30, 100 * 2 ** 30),
    type: fc.constantFrom('gp3', 'io2', 'Premium_LRS'),
    encryption: fc.record({ enabled: fc.boolean(), keyRef: secretRefArb }, { requiredKeys: ['enabled'] }),
  },
  { requiredKeys: ['name', 'sizeBytes'] },
);

const filesystemArb = fc.record(
  {
    device: fc.constantFrom('/dev/nvme0n1p1', '/dev/nvme1n1', '/dev/xvdf'),
    type: fc.constantFrom('ext4', 'xfs', 'btrfs'),
    uuid: fc.constantFrom('1b2c3d4e', '5f6a7b8c'),
    label: fc.constantFrom('root', 'data'),
    sizeBytes: fc.constantFrom(8 * 2 ** 30, 20 * 2 ** 30),
  },
  { requiredKeys: ['device', 'type'] },
);

const mountArb = fc.record({
  target: fc.constantFrom('/', '/data', '/data/logs', '/var/lib/docker', '/mnt/backup'),
  source: fc.constantFrom('/dev/nvme0n1p1', '/dev/nvme1n1', 'tmpfs', 'nfs.internal:/export'),
  fstype: fc.constantFrom('ext4', 'xfs', 'tmpfs', 'nfs4'),
  options: fc.subarray(['defaults', 'noatime', 'ro', 'nofail']),
});

const cgroupArb = fc.record(
  {
    path: fc.constantFrom('/system.slice/nginx.service', '/system.slice/postgresql.service', '/user.slice'),
    cpuMax: fc.constantFrom('50000 100000', 'max 100000'),
    cpuWeight: fc.constantFrom(100, 500),
    memoryMax: fc.constantFrom(2 ** 30, 'max' as const),
    ioWeight: fc.constantFrom(100, 1000),
    pidsMax: fc.constantFrom(512, 'max' as const),
  },
  { requiredKeys: ['path'] },
);

const resourcesArb = fc.record(
  {
    cpu: fc.record(
      {
        count: fc.constantFrom(1, 2, 4),
        model: fc.constantFrom('Graviton3', 'Xeon'),
        quotaMillicores: fc.constantFrom(500, 2000),
      },
      { requiredKeys: ['count'] },
    ),
    memory: fc.record(
      { bytes: fc.constantFrom(2 ** 30, 4 * 2 ** 30), swapBytes: fc.constantFrom(0, 2 ** 30) },
      { requiredKeys: ['bytes'] },
    ),
    io: fc.record(
      { class: fc.constantFrom('realtime', 'best-effort', 'idle'), priority: fc.integer({ min: 0, max: 7 }) },
      { requiredKeys: ['class'] },
    ),
    bandwidth: fc.record(
      { egressMbps: fc.constantFrom(100, 1000), ingressMbps: fc.constantFrom(100, 1000) },
      { requiredKeys: [] },
    ),
    cgroups: fc.uniqueArray(cgroupArb, { selector: (c) => c.path, maxLength: 3 }),
  },
  { requiredKeys: ['cgroups'] },
);

const runtimeDependencyArb = fc.record(
  {
    type: fc.constantFrom('language', 'library'),
    name: fc.constantFrom('node', 'python', 'openjdk', 'libssl'),
    version: fc.constantFrom('3.11', '3.12', '22.12.0'),
    manager: fc.constantFrom('apt', 'nvm', 'pyenv'),
    path: fc.constantFrom('/usr/bin', '/opt/runtimes'),
  },
  { requiredKeys: ['type', 'name', 'version'] },
);

// A name that looks sensitive must hold a reference, unless the author says `sensitive: false`.
const envVarArb = fc
  .record(
    {
      name: fc.constantFrom('PATH', 'LANG', 'APP_ENV', 'LOG_LEVEL', 'DB_PASSWORD', 'API_TOKEN'),
      scope: fc.constantFrom('nginx', 'app'),
      value: fc.constantFrom('production', 'debug', '/usr/bin:/bin'),
      secretRef: secretRefArb,
      clear: fc.boolean(),
    },
    { requiredKeys: ['name', 'value', 'secretRef', 'clear'] },
  )
  .map(({ name, scope, value, secretRef, clear }) => {
    const where = scope === undefined ? {} : { scope };
    if (!clear) return { name, secretRef, ...where };
    return looksSensitive(name) ? { name, value, sensitive: false, ...where } : { name, value, ...where };
  });

const FILE_PATHS = [
  '/etc/nginx/nginx.conf',
  '/etc/nginx/conf.d',
  '/etc/app/config.yaml',
  '/etc/app/secret.env',
  '/etc/hosts',
  '/etc/motd',
  '/usr/local/bin/app',
  '/var/www/index.html',
  '/etc/ssl/private/app.key',
  '/opt/app/current',
] as const;

const fileArb = fc
  .record(
    {
      path: fc.constantFrom(...FILE_PATHS),
      type: fc.constantFrom('file', 'file', 'directory', 'symlink'),
      hash: fc.constantFrom(...HASHES),
      size: fc.constantFrom(0, 1024),
      mode: fc.constantFrom('0644', '0600', '0755'),
      owner: fc.constantFrom(...USERS),
      group: fc.constantFrom(...GROUPS),
      secret: fc.option(secretRefArb, { nil: undefined }),
    },
    { requiredKeys: ['path', 'type', 'hash', 'secret'] },
  )
  .map(({ type, hash, secret, ...rest }) => {
    if (type === 'directory') return { ...rest, type };
    if (type === 'symlink') return { ...rest, type, target: '/opt/app/releases/1' };
    return secret === undefined
      ? { ...rest, type, hash }
      : { ...rest, type, sensitive: true, secretRef: secret };
  });

const sysctlArb = fc.record(
  {
    'net.ipv4.ip_forward': fc.constantFrom('0', '1'),
    'vm.swappiness': fc.constantFrom('10', '60'),
    'fs.file-max': fc.constantFrom('65536', '1048576'),
    'net.core.somaxconn': fc.constantFrom('128', '4096'),
    'kernel.pid_max': fc.constantFrom('32768', '4194304'),
  },
  { requiredKeys: [] },
);

// Parameters are usually absent, so that two profiles often agree on a module and the diff
// keeps it loaded; when present they make "same name, other parameters" common.
const kernelModuleArb = fc.record({
  name: fc.constantFrom('overlay', 'br_netfilter', 'nf_conntrack', 'loop', 'dummy', 'bonding'),
  parameters: fc.oneof(
    { weight: 3, arbitrary: fc.constant({}) },
    {
      weight: 1,
      arbitrary: fc.record(
        {
          debug: fc.constantFrom('0', '1'),
          max_loop: fc.constantFrom('8', '64'),
          numdummies: fc.constantFrom('1', '2'),
        },
        { requiredKeys: [] },
      ),
    },
  ),
});

const userArb = fc.record(
  {
    name: fc.constantFrom(...USERS),
    uid: fc.constantFrom(0, 1000, 1001),
    gid: fc.constantFrom(0, 100, 1000),
    home: fc.constantFrom('/root', '/home/alice', '/var/www'),
    shell: fc.constantFrom('/bin/bash', '/usr/sbin/nologin'),
    groups: fc.subarray([...GROUPS]),
    system: fc.boolean(),
    locked: fc.boolean(),
    passwordRef: secretRefArb,
  },
  { requiredKeys: ['name', 'uid', 'gid'] },
);

const groupArb = fc.record({
  name: fc.constantFrom(...GROUPS),
  gid: fc.constantFrom(10, 33, 999),
  members: fc.subarray([...USERS]),
});

const sudoRuleArb = fc.record({
  principal: fc.constantFrom('alice', 'deploy', '%admin', '%wheel'),
  rules: fc.subarray(['ALL=(ALL) ALL', 'ALL=(ALL) NOPASSWD: /bin/systemctl', 'ALL=(root) /usr/bin/apt'], {
    minLength: 1,
  }),
});

const sshKeyArb = fc.record(
  {
    user: fc.constantFrom('root', 'alice', 'deploy'),
    type: fc.constantFrom('ssh-ed25519', 'ssh-rsa'),
    fingerprint: fc.constantFrom(...FINGERPRINTS),
    comment: fc.constantFrom('laptop', 'ci'),
    keyRef: secretRefArb,
  },
  { requiredKeys: ['user', 'type', 'fingerprint'] },
);

const agentArb = fc.record(
  {
    name: fc.constantFrom('amazon-cloudwatch-agent', 'node_exporter', 'azuremonitoragent'),
    version: fc.constantFrom('1.300', '1.301'),
    configHash: fc.constantFrom(...HASHES),
  },
  { requiredKeys: ['name'] },
);

const thresholdArb = fc.record({
  metric: fc.constantFrom('cpu.utilization', 'memory.utilization', 'http.p95_ms'),
  comparison: fc.constantFrom('>', '>=', '<', '<='),
  value: fc.constantFrom(0.8, 0.9, 250),
  durationSeconds: fc.constantFrom(60, 300),
  severity: fc.constantFrom('info', 'warning', 'critical'),
});

const processArb = fc.record(
  {
    name: fc.constantFrom('nginx', 'postgres', 'app', 'worker'),
    command: fc.constantFrom('/usr/sbin/nginx', '/usr/bin/app serve', '/usr/bin/app work'),
    user: fc.constantFrom(...USERS),
    nice: fc.integer({ min: -20, max: 19 }),
    ioClass: fc.constantFrom('realtime', 'best-effort', 'idle'),
    cpuAffinity: fc.subarray([0, 1, 2, 3]),
    cpuQuotaPercent: fc.constantFrom(50, 100, 200),
    memoryLimitBytes: fc.constantFrom(2 ** 28, 2 ** 30),
    cgroup: fc.constantFrom('/system.slice/nginx.service', '/app.slice'),
  },
  { requiredKeys: ['name', 'command'] },
);

const startCommandArb = fc.record(
  {
    name: fc.constantFrom('migrate', 'web', 'worker', 'warmup'),
    command: fc.constantFrom('/usr/bin/app migrate', '/usr/bin/app serve', '/usr/bin/app work'),
    workingDirectory: fc.constantFrom('/opt/app', '/srv'),
    user: fc.constantFrom('deploy', 'www-data'),
  },
  { requiredKeys: ['name', 'command'] },
);

const healthCheckArb = fc.oneof(
  fc.record(
    {
      type: fc.constant('http'),
      name: fc.constantFrom('web', 'api'),
      url: fc.constantFrom('http://127.0.0.1:8080/health', 'https://localhost/ready'),
      method: fc.constantFrom('GET', 'HEAD'),
      expectStatus: fc.constantFrom(200, 204),
      expectBodyContains: fc.constant('ok'),
    },
    { requiredKeys: ['type', 'name', 'url'] },
  ),
  fc.record(
    {
      type: fc.constant('tcp'),
      name: fc.constantFrom('db', 'web'),
      port: fc.constantFrom(5432, 8080),
      timeoutMs: fc.constant(1000),
    },
    { requiredKeys: ['type', 'name', 'port'] },
  ),
  fc.record(
    {
      type: fc.constant('command'),
      name: fc.constantFrom('disk', 'api'),
      command: fc.constant('test -w /data'),
    },
    { requiredKeys: ['type', 'name', 'command'] },
  ),
  fc.record(
    {
      type: fc.constant('process'),
      name: fc.constantFrom('worker', 'db'),
      process: fc.constant('app'),
      minCount: fc.constantFrom(1, 2),
    },
    { requiredKeys: ['type', 'name', 'process'] },
  ),
);

const applicationArb = fc.record(
  {
    name: fc.constantFrom('shop', 'blog'),
    paths: fc.subarray(['/opt/app', '/srv/www', '/var/lib/app']),
    startCommands: fc.uniqueArray(startCommandArb, { selector: (c) => c.name, maxLength: 3 }),
    healthChecks: fc.uniqueArray(healthCheckArb, { selector: (h) => h.name, maxLength: 3 }),
  },
  { requiredKeys: ['paths', 'startCommands', 'healthChecks'] },
);

const keyed = <T>(arb: fc.Arbitrary<T>, key: (t: T) => string, maxLength = 5) =>
  fc.uniqueArray(arb, { selector: key, maxLength });

export const specInputArb = fc.record(
  {
    os: osArb,
    instance: instanceArb,
    baseImage: baseImageArb,
    executionFlag: fc.constantFrom('Development', 'Testing', 'Production'),
    packages: keyed(packageArb, (p) => `${p.manager}:${p.name}`, 6),
    services: keyed(serviceArb, (s) => s.name),
    network: fc.record(
      {
        interfaces: keyed(interfaceArb, (i) => i.name, 3),
        routes: keyed(routeArb, (r) => COLLECTIONS.routes.key(r), 3),
        firewall: firewallArb,
        dns: dnsArb,
      },
      { requiredKeys: ['interfaces', 'routes'] },
    ),
    storage: fc.record({
      volumes: keyed(volumeArb, (v) => v.name, 3),
      filesystems: keyed(filesystemArb, (f) => f.device, 3),
      mounts: keyed(mountArb, (m) => m.target, 4),
    }),
    resources: resourcesArb,
    runtimeDependencies: keyed(runtimeDependencyArb, (d) => `${d.type}:${d.name}`, 3),
    configuration: fc.record({
      env: keyed(envVarArb, (e) => (e.scope === undefined ? e.name : `${e.scope}:${e.name}`)),
      files: keyed(fileArb, (f) => f.path),
      sysctl: sysctlArb,
    }),
    kernelModules: keyed(kernelModuleArb, (m) => m.name, 6),
    security: fc.record({
      users: keyed(userArb, (u) => u.name, 4),
      groups: keyed(groupArb, (g) => g.name, 3),
      sudoers: keyed(sudoRuleArb, (s) => s.principal, 3),
      sshKeys: keyed(sshKeyArb, (k) => `${k.user}:${k.fingerprint}`, 3),
    }),
    monitoring: fc.record({
      agents: keyed(agentArb, (a) => a.name, 2),
      thresholds: keyed(thresholdArb, (t) => `${t.metric} ${t.comparison}`, 3),
    }),
    processes: keyed(processArb, (p) => p.name, 3),
    application: applicationArb,
  },
  { requiredKeys: ['os'] },
);

const observedArb = fc.record(
  {
    capturedAt: fc.constantFrom('2025-01-01T00:00:00Z', '2025-06-01T12:00:00Z'),
    listening: fc.subarray([
      { protocol: 'tcp' as const, address: '0.0.0.0', port: 80, process: 'nginx' },
      { protocol: 'tcp' as const, address: '127.0.0.1', port: 5432 },
    ]),
    traitVector: fc.record({
      traits: fc.record({ web: fc.constantFrom(0, 0.5, 1), db: fc.constantFrom(0, 1) }),
    }),
  },
  { requiredKeys: [] },
);

export const profileInputArb: fc.Arbitrary<ProfileInput> = fc.record(
  {
    apiVersion: fc.constant('persona/v1'),
    kind: fc.constant('Profile'),
    metadata: fc.record(
      {
        name: fc.constantFrom('web-1', 'db-1'),
        description: fc.constant('generated'),
        labels: fc.constant({ team: 'ops' }),
      },
      { requiredKeys: ['name'] },
    ),
    spec: specInputArb,
    observed: observedArb,
  },
  { requiredKeys: ['apiVersion', 'kind', 'metadata', 'spec'] },
);

/** Parsed profiles, collections in the order they were generated (not canonical). */
export const profileArb: fc.Arbitrary<Profile> = profileInputArb.map((p) => Profile.parse(p));

/** A profile parsed, with its spec in canonical form. */
export function parseCanonical(input: ProfileInput): Profile {
  const profile = Profile.parse(input);
  return { ...profile, spec: canonicalSpec(profile.spec) };
}

export const canonicalProfileArb: fc.Arbitrary<Profile> = profileInputArb.map(parseCanonical);

type Choice = 'fresh' | 'same' | 'mix';

// The parts of a spec a pair may share. Keyed collections come from COLLECTIONS; the rest are
// single values (and sysctl, a map).
const VALUE_PARTS: readonly (readonly string[])[] = [
  ['os'],
  ['instance'],
  ['baseImage'],
  ['executionFlag'],
  ['network', 'firewall'],
  ['network', 'dns'],
  ['resources', 'cpu'],
  ['resources', 'memory'],
  ['resources', 'io'],
  ['resources', 'bandwidth'],
  ['configuration', 'sysctl'],
  ['application', 'name'],
  ['application', 'paths'],
];
const LIST_PARTS = Object.values(COLLECTIONS);

type Node = Record<string, unknown>;

function parentOf(root: Node, path: readonly string[]): [Node, string] {
  let node = root;
  for (const segment of path.slice(0, -1)) node = node[segment] as Node;
  return [node, path[path.length - 1] as string];
}

function setPart(root: Node, path: readonly string[], value: unknown): void {
  const [parent, field] = parentOf(root, path);
  if (value === undefined) delete parent[field];
  else parent[field] = value;
}

const getPart = (root: Node, path: readonly string[]): unknown => {
  const [parent, field] = parentOf(root, path);
  return parent[field];
};

/**
 * `b` with some parts taken from `a` as they are, and some collections mixed: every other
 * entry of `a` kept, and `b`'s entries whose keys are not among them. Such pairs have entries
 * in common, entries that differ under the same key, and entries on one side only.
 */
function mixSpecs(a: ProfileSpec, b: ProfileSpec, choices: readonly Choice[]): ProfileSpec {
  const out = structuredClone(b) as unknown as Node;
  const from = a as unknown as Node;
  let i = 0;
  for (const path of VALUE_PARTS) {
    const choice = choices[i++];
    const mine = getPart(from, path);
    if (choice === 'same') setPart(out, path, structuredClone(mine));
    else if (choice === 'mix' && path.join('.') === 'configuration.sysctl') {
      const keep = Object.entries(mine as Node).filter((_, n) => n % 2 === 0);
      setPart(out, path, { ...(getPart(out, path) as Node), ...Object.fromEntries(keep) });
    }
  }
  for (const d of LIST_PARTS) {
    const choice = choices[i++];
    const mine = getPart(from, d.path as readonly string[]) as unknown[];
    if (choice === 'same') setPart(out, d.path as readonly string[], structuredClone(mine));
    else if (choice === 'mix') {
      const kept = mine.filter((_, n) => n % 2 === 0);
      const keys = new Set(kept.map(d.key));
      const theirs = (getPart(out, d.path as readonly string[]) as unknown[]).filter(
        (e) => !keys.has(d.key(e)),
      );
      setPart(out, d.path as readonly string[], structuredClone([...kept, ...theirs]));
    }
  }
  return out as unknown as ProfileSpec;
}

/**
 * Two parsed profiles that overlap: some parts identical, some collections sharing entries,
 * the rest independent.
 */
export const profilePairArb: fc.Arbitrary<readonly [Profile, Profile]> = fc
  .tuple(
    profileArb,
    profileArb,
    fc.array(fc.constantFrom<Choice>('fresh', 'same', 'mix'), {
      minLength: VALUE_PARTS.length + LIST_PARTS.length,
      maxLength: VALUE_PARTS.length + LIST_PARTS.length,
    }),
  )
  .map(([a, b, choices]) => [a, Profile.parse({ ...b, spec: mixSpecs(a.spec, b.spec, choices) })] as const);
