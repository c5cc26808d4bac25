// The Profile: the one source of the types, the JSON Schema for profile files and the
// OpenAPI document. Objects are strict so that a misspelt key is an error, not a silently
// ignored setting.
//
// A Profile has two halves:
//   spec      what can be reproduced on another host; every difference in it is a Change
//   observed  what a capture saw (sockets, connections, usage, the trait vector); it informs
//             morph and validation but is never "applied" to a host
import * as z from 'zod';
import { recordedPathProblem } from '../transport/paths.js';
import { duplicateKeys } from './collections.js';

export const API_VERSION = 'persona/v1';
export const PROFILE_KIND = 'Profile';

const text = z.string().min(1);
const name = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$/, 'expected lower-case letters, digits, ".", "_" or "-"');
// The regex is what the JSON Schema can say; the refinement is the rest of the path grammar
// (core/transport/paths.ts), so no recorded path can turn into an option or a second line.
const absolutePath = z
  .string()
  .regex(/^\/[^\0]*$/, 'expected an absolute path')
  .superRefine((value, ctx) => {
    const problem = value.startsWith('/') ? recordedPathProblem(value) : undefined;
    if (problem !== undefined) ctx.addIssue({ code: 'custom', message: `the path ${problem}` });
  });
const byteCount = z.number().int().nonnegative();
const port = z.number().int().min(0).max(65535);
const contentHash = z
  .string()
  .regex(
    /^(sha256|hmac-sha256):[0-9a-f]{64}$/,
    'expected "sha256:" (or "hmac-sha256:", keyed) followed by 64 lower-case hex digits',
  );
const fileMode = z.string().regex(/^[0-7]{3,4}$/, 'expected an octal mode such as "0644"');
const cidrOrAddress = z.string().regex(/^[0-9a-fA-F:.]+(\/\d{1,3})?$/, 'expected an IP address or CIDR');
const labels = z.record(z.string().min(1).max(128), z.string().max(256));

/** The longest key of a `local` secret reference. */
export const MAX_LOCAL_SECRET_KEY = 1024;

/**
 * Why `key` cannot be the key of a `local` secret reference, or undefined when it can. Keys name
 * entries of the sealed secret store, so nothing that reads like a file path (a leading "/", a
 * "." or ".." segment) or carries control characters is one.
 */
export function localSecretKeyProblem(key: string): string | undefined {
  if (key.length === 0) return 'a secret key is not empty';
  if (key.length > MAX_LOCAL_SECRET_KEY) return `a secret key is at most ${MAX_LOCAL_SECRET_KEY} characters`;
  for (const c of key) {
    const code = c.codePointAt(0) ?? 0;
    if (code < 0x20 || code === 0x7f || c === '\\')
      return 'a secret key has no control characters or backslashes';
  }
  if (key.startsWith('/')) return 'a secret key does not start with "/": it names no file';
  if (key.split('/').some((s) => s === '.' || s === '..'))
    return 'a secret key has no "." or ".." segment: it names no file';
  return undefined;
}

/** Where a sensitive value really lives. The Profile only ever holds the reference. */
export const SecretRef = z
  .discriminatedUnion('provider', [
    z.strictObject({
      provider: z.literal('aws-secretsmanager'),
      secretId: text.describe('Secret name or ARN'),
      jsonKey: text.optional().describe('Key inside a JSON secret'),
      versionId: text.optional(),
    }),
    z.strictObject({
      provider: z.literal('aws-ssm'),
      parameter: text.describe('SecureString parameter name'),
      version: z.number().int().positive().optional(),
    }),
    z.strictObject({
      provider: z.literal('aws-kms'),
      keyId: text,
      ciphertext: z.string().regex(/^[A-Za-z0-9+/]+=*$/, 'expected base64 ciphertext'),
    }),
    z.strictObject({
      provider: z.literal('local'),
      key: text
        .superRefine((k, ctx) => {
          const problem = localSecretKeyProblem(k);
          if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
        })
        .describe(
          "Entry in Persona's own sealed secret store, `<host>/<kind>/<source>`; it names no file and resolves only for that host",
        ),
      digest: z
        .string()
        .regex(/^[0-9a-f]{64}$/, 'expected 64 lower-case hex digits')
        .optional()
        .describe(
          'Keyed digest of the value this Profile version refers to (FORMAT.md, "Secrets"); the value itself is never here',
        ),
    }),
  ])
  .meta({ id: 'SecretRef', description: 'A reference to a secret; never the secret itself.' });
export type SecretRef = z.infer<typeof SecretRef>;

// Names that almost always hold credentials. A value under such a name must be a reference
// unless the author says otherwise with `sensitive: false`. Names are compared in one spelling
// (`dbPassword`, `db-password` and `db.password` all read as DB_PASSWORD), so the same test
// serves environment variables, command-line options and configuration keys. Short words (PASS,
// PWD, AUTH, DSN, KEY) count only as the last word: `PWD` alone is the working directory, and
// AUTH_METHOD says how, not with what.
const SENSITIVE_NAME =
  /(PASSW(OR)?DS?|PASSPHRASES?|SECRETS?|TOKENS?|API_?KEYS?|PRIVATE_?KEYS?|ACCESS_?KEYS?|CREDENTIALS?|WEBHOOKS?|AUTHORIZATION)(_|$)|(^|_)(PASS|PASSWD|PWD|AUTH|DSN)$|_KEY$|^KEY$|(REQUIRE|MASTER|STORE|KEY|DB|ROOT|ADMIN)PASS$|^MASTERAUTH$/;
// A last word that says the value is about a credential, not the credential: a path to it, a
// length, a lifetime, a policy (PASSWORD_MIN_LENGTH, DB_PASSWORD_FILE, TOKEN_TTL).
export const ABOUT_A_SECRET_WORDS = [
  ...['FILE', 'FILES', 'PATH', 'DIR', 'DIRECTORY', 'LENGTH', 'LEN', 'MIN', 'MAX', 'MINLEN', 'MAXLEN'],
  ...['DAYS', 'AGE', 'TTL', 'EXPIRY', 'EXPIRES', 'EXPIRATION', 'LIFETIME', 'TIMEOUT', 'METHOD', 'METHODS'],
  ...['POLICY', 'TYPE', 'MODE', 'ENABLED', 'ENABLE', 'DISABLED', 'REQUIRED', 'ROUNDS', 'ALGORITHM'],
  ...['ENCRYPTION', 'COMPLEXITY', 'HISTORY', 'RETRIES', 'TRIES', 'ATTEMPTS', 'PROMPT', 'HELPER', 'COMMAND'],
  ...['CMD', 'ENDPOINT', 'HOST', 'PORT', 'AUTHENTICATION'],
] as const;
const ABOUT_A_SECRET = new RegExp(`_(${ABOUT_A_SECRET_WORDS.join('|')})$`);
/** A name in the one spelling the patterns above use: upper case, words joined by `_`. */
export const normalizeName = (n: string): string =>
  n
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/[^A-Za-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '')
    .toUpperCase();
export const looksSensitive = (n: string): boolean => {
  const name = normalizeName(n);
  return SENSITIVE_NAME.test(name) && name !== 'PWD' && !ABOUT_A_SECRET.test(name);
};

export const OperatingSystem = z
  .strictObject({
    family: z.literal('linux'),
    distribution: text.describe('debian, ubuntu, rhel, amzn, alpine, ...'),
    version: text,
    codename: text.optional(),
    kernel: text.describe('Kernel release, as uname -r prints it'),
    arch: z.enum(['x86_64', 'aarch64', 'armv7l', 'i686', 'ppc64le', 's390x']),
    hostname: text.optional(),
    timezone: text.optional(),
    locale: text.optional(),
  })
  .meta({ id: 'OperatingSystem' });

export const Instance = z
  .strictObject({
    platform: z.enum(['aws', 'azure', 'baremetal', 'local']),
    size: text.describe('Instance type or VM size, e.g. m7g.large, Standard_D2s_v5'),
    region: text.optional(),
    zone: text.optional(),
  })
  .meta({ id: 'Instance' });

export const BaseImage = z
  .strictObject({
    ref: text.describe('AMI id, Azure image URN, or a distribution release for bare metal'),
    platform: z.enum(['aws', 'azure', 'baremetal', 'local']).optional(),
    digest: text.optional(),
  })
  .meta({ id: 'BaseImage' });

export const ExecutionFlag = z.enum(['Development', 'Testing', 'Production']).meta({ id: 'ExecutionFlag' });

export const Package = z
  .strictObject({
    name: text,
    version: text,
    manager: z.enum(['apt', 'dpkg', 'rpm', 'dnf', 'yum', 'apk', 'zypper', 'snap', 'pip', 'npm', 'gem']),
    arch: text.optional(),
    hold: z.boolean().optional(),
  })
  .meta({ id: 'Package' });

export const Service = z
  .strictObject({
    name: text,
    manager: z.enum(['systemd', 'sysvinit', 'openrc', 'supervisord']).default('systemd'),
    state: z.enum(['running', 'stopped']),
    enabled: z.boolean(),
    unitHash: contentHash.optional().describe('Hash of the unit file, whose content is in the snapshot'),
  })
  .meta({ id: 'Service' });

export const NetworkInterface = z
  .strictObject({
    name: text,
    type: z.enum(['ethernet', 'loopback', 'bridge', 'bond', 'vlan', 'veth', 'tunnel', 'other']).optional(),
    mac: z
      .string()
      .regex(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/, 'expected a lower-case MAC address')
      .optional(),
    mtu: z.number().int().min(68).max(65536).optional(),
    addresses: z.array(cidrOrAddress).default([]),
    state: z.enum(['up', 'down']).default('up'),
  })
  .meta({ id: 'NetworkInterface' });

export const Route = z
  .strictObject({
    destination: z.union([z.literal('default'), cidrOrAddress]),
    gateway: cidrOrAddress.optional(),
    interface: text.optional(),
    metric: z.number().int().nonnegative().optional(),
    table: text.optional(),
  })
  .meta({ id: 'Route' });

export const Firewall = z
  .strictObject({
    backend: z.enum(['nftables', 'iptables', 'none']),
    ruleset: z.string().describe('The full ruleset as `nft list ruleset` or `iptables-save` prints it'),
  })
  .meta({ id: 'Firewall' });

export const Dns = z
  .strictObject({
    nameservers: z.array(cidrOrAddress).default([]),
    search: z.array(text).default([]),
    options: z.array(text).default([]),
  })
  .meta({ id: 'Dns' });

export const Network = z
  .strictObject({
    interfaces: z.array(NetworkInterface).default([]),
    routes: z.array(Route).default([]),
    firewall: Firewall.optional(),
    dns: Dns.optional(),
  })
  .meta({ id: 'Network' });

export const Volume = z
  .strictObject({
    name: text.describe('Stable name of the volume (EBS volume name, Azure disk name, device id)'),
    device: text.optional(),
    sizeBytes: byteCount,
    type: text.optional().describe('gp3, Premium_LRS, nvme, ...'),
    encryption: z
      .strictObject({ enabled: z.boolean(), keyRef: SecretRef.optional() })
      .optional()
      .describe('Encryption at rest; the key is a reference'),
  })
  .meta({ id: 'Volume' });

export const Filesystem = z
  .strictObject({
    device: text,
    type: text.describe('ext4, xfs, btrfs, ...'),
    uuid: text.optional(),
    label: text.optional(),
    sizeBytes: byteCount.optional(),
  })
  .meta({ id: 'Filesystem' });

export const Mount = z
  .strictObject({
    target: absolutePath,
    source: text,
    fstype: text,
    options: z.array(text).default([]),
  })
  .meta({ id: 'Mount' });

export const Storage = z
  .strictObject({
    volumes: z.array(Volume).default([]),
    filesystems: z.array(Filesystem).default([]),
    mounts: z.array(Mount).default([]),
  })
  .meta({ id: 'Storage' });

export const CgroupLimit = z
  .strictObject({
    path: absolutePath.describe('cgroup path, e.g. /system.slice/nginx.service'),
    cpuMax: text.optional().describe('cpu.max, e.g. "50000 100000" or "max 100000"'),
    cpuWeight: z.number().int().min(1).max(10000).optional(),
    memoryMax: z.union([byteCount, z.literal('max')]).optional(),
    ioWeight: z.number().int().min(1).max(10000).optional(),
    pidsMax: z.union([z.number().int().positive(), z.literal('max')]).optional(),
  })
  .meta({ id: 'CgroupLimit' });

export const Resources = z
  .strictObject({
    cpu: z
      .strictObject({
        count: z.number().int().positive(),
        model: text.optional(),
        quotaMillicores: z.number().int().positive().optional(),
      })
      .optional(),
    memory: z.strictObject({ bytes: byteCount, swapBytes: byteCount.optional() }).optional(),
    io: z
      .strictObject({
        class: z.enum(['realtime', 'best-effort', 'idle']),
        priority: z.number().int().min(0).max(7).optional(),
      })
      .optional(),
    bandwidth: z
      .strictObject({
        egressMbps: z.number().positive().optional(),
        ingressMbps: z.number().positive().optional(),
      })
      .optional(),
    cgroups: z.array(CgroupLimit).default([]),
  })
  .meta({ id: 'Resources' });

export const RuntimeDependency = z
  .strictObject({
    type: z.enum(['language', 'library']),
    name: text.describe('node, python, openjdk, libssl, ...'),
    version: text,
    manager: text.optional().describe('How it was installed: apt, nvm, pyenv, sdkman, tarball, ...'),
    path: absolutePath.optional(),
  })
  .meta({ id: 'RuntimeDependency' });

export const EnvVar = z
  .strictObject({
    name: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an environment variable name'),
    value: z.string().optional(),
    secretRef: SecretRef.optional(),
    sensitive: z.boolean().optional(),
    scope: text
      .optional()
      .describe('Where it is set: a service name, /etc/environment, a user; default global'),
  })
  .superRefine((v, ctx) => {
    if ((v.value === undefined) === (v.secretRef === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'give exactly one of value or secretRef', path: ['value'] });
    } else if (
      v.value !== undefined &&
      (v.sensitive === true || (v.sensitive === undefined && looksSensitive(v.name)))
    ) {
      ctx.addIssue({
        code: 'custom',
        path: ['value'],
        message: `${v.name} looks sensitive: give a secretRef instead of a value in clear (or set sensitive: false)`,
      });
    }
  })
  .meta({ id: 'EnvVar' });

export const ConfigFile = z
  .strictObject({
    path: absolutePath,
    type: z.enum(['file', 'directory', 'symlink']).default('file'),
    hash: contentHash
      .optional()
      .describe(
        'Content hash; the content itself is in the snapshot store. "hmac-sha256:" for a file that holds credentials: an HMAC of its SHA-256 under a key of the store, whose content is a sealed secret',
      ),
    size: byteCount.optional(),
    mode: fileMode.optional(),
    owner: text.optional(),
    group: text.optional(),
    target: text.optional().describe('Symlink target'),
    sensitive: z.boolean().optional(),
    secretRef: SecretRef.optional().describe('For sensitive files: where the encrypted content lives'),
  })
  .superRefine((f, ctx) => {
    if (f.type === 'file' && f.hash === undefined && f.secretRef === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['hash'],
        message: 'a file needs its content hash (or a secretRef)',
      });
    }
    if (f.type === 'symlink' && f.target === undefined) {
      ctx.addIssue({ code: 'custom', path: ['target'], message: 'a symlink needs its target' });
    }
    if (f.sensitive === true && f.secretRef === undefined) {
      ctx.addIssue({ code: 'custom', path: ['secretRef'], message: 'a sensitive file needs a secretRef' });
    }
  })
  .meta({ id: 'ConfigFile' });

const sysctlKey = z
  .string()
  .regex(/^[a-z0-9_]+([./][a-z0-9_*-]+)*$/, 'expected a sysctl key such as net.ipv4.ip_forward');

export const Configuration = z
  .strictObject({
    env: z.array(EnvVar).default([]),
    files: z.array(ConfigFile).default([]),
    sysctl: z.record(sysctlKey, z.string()).default({}),
  })
  .meta({ id: 'Configuration' });

export const KernelModule = z
  .strictObject({
    name: z.string().regex(/^[A-Za-z0-9_-]+$/, 'expected a kernel module name'),
    parameters: z.record(z.string().min(1), z.string()).default({}),
  })
  .meta({ id: 'KernelModule', description: 'Listed in load order' });

export const User = z
  .strictObject({
    name: text,
    uid: z.number().int().nonnegative(),
    gid: z.number().int().nonnegative(),
    home: absolutePath.optional(),
    shell: absolutePath.optional(),
    groups: z.array(text).default([]),
    system: z.boolean().optional(),
    locked: z.boolean().optional(),
    passwordRef: SecretRef.optional().describe('The password hash lives here, never in the Profile'),
  })
  .meta({ id: 'User' });

export const Group = z
  .strictObject({
    name: text,
    gid: z.number().int().nonnegative(),
    members: z.array(text).default([]),
  })
  .meta({ id: 'Group' });

export const SudoRule = z
  .strictObject({
    principal: text.describe('A user name or %group'),
    rules: z
      .array(text)
      .min(1)
      .describe('sudoers lines for this principal, e.g. "ALL=(ALL) NOPASSWD: /bin/systemctl"'),
  })
  .meta({ id: 'SudoRule' });

export const SshKey = z
  .strictObject({
    user: text,
    type: text.describe('ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256, ...'),
    fingerprint: z.string().regex(/^SHA256:[A-Za-z0-9+/]{43}$/, 'expected an OpenSSH SHA256 fingerprint'),
    comment: z.string().optional(),
    keyRef: SecretRef.optional().describe('Where the public key body is kept, when it is not inline'),
  })
  .meta({ id: 'SshKey' });

export const Security = z
  .strictObject({
    users: z.array(User).default([]),
    groups: z.array(Group).default([]),
    sudoers: z.array(SudoRule).default([]),
    sshKeys: z.array(SshKey).default([]),
  })
  .meta({ id: 'Security' });

export const MonitoringAgent = z
  .strictObject({
    name: text.describe('amazon-cloudwatch-agent, azuremonitoragent, node_exporter, ...'),
    version: text.optional(),
    configHash: contentHash.optional(),
  })
  .meta({ id: 'MonitoringAgent' });

export const Threshold = z
  .strictObject({
    metric: text.describe('cpu.utilization, memory.utilization, disk.used_percent, http.p95_ms, ...'),
    comparison: z.enum(['>', '>=', '<', '<=']),
    value: z.number(),
    durationSeconds: z.number().int().positive().default(60),
    severity: z.enum(['info', 'warning', 'critical']).default('warning'),
  })
  .meta({ id: 'Threshold' });

export const Monitoring = z
  .strictObject({
    agents: z.array(MonitoringAgent).default([]),
    thresholds: z.array(Threshold).default([]),
  })
  .meta({ id: 'Monitoring' });

export const ProcessAllocation = z
  .strictObject({
    name: text.describe('A stable name for the process, usually its service or executable'),
    command: text,
    user: text.optional(),
    nice: z.number().int().min(-20).max(19).optional(),
    ioClass: z.enum(['realtime', 'best-effort', 'idle']).optional(),
    cpuAffinity: z.array(z.number().int().nonnegative()).optional(),
    cpuQuotaPercent: z.number().positive().optional(),
    memoryLimitBytes: byteCount.optional(),
    cgroup: absolutePath.optional(),
  })
  .meta({ id: 'ProcessAllocation' });

export const HealthCheck = z
  .discriminatedUnion('type', [
    z.strictObject({
      type: z.literal('http'),
      name: text,
      url: z.url(),
      method: z.enum(['GET', 'HEAD', 'POST']).default('GET'),
      expectStatus: z.number().int().min(100).max(599).default(200),
      expectBodyContains: z.string().optional(),
      timeoutMs: z.number().int().positive().default(5000),
    }),
    z.strictObject({
      type: z.literal('tcp'),
      name: text,
      host: text.default('127.0.0.1'),
      port,
      timeoutMs: z.number().int().positive().default(5000),
    }),
    z.strictObject({
      type: z.literal('command'),
      name: text,
      command: text,
      expectExitCode: z.number().int().default(0),
      timeoutMs: z.number().int().positive().default(10000),
    }),
    z.strictObject({
      type: z.literal('process'),
      name: text,
      process: text.describe('Process name that must be running'),
      minCount: z.number().int().positive().default(1),
    }),
  ])
  .meta({ id: 'HealthCheck' });

export const StartCommand = z
  .strictObject({
    name: text,
    command: text,
    workingDirectory: absolutePath.optional(),
    user: text.optional(),
  })
  .meta({ id: 'StartCommand' });

export const Application = z
  .strictObject({
    name: text.optional(),
    paths: z.array(absolutePath).default([]).describe('Application trees whose content goes to the snapshot'),
    startCommands: z.array(StartCommand).default([]).describe('Run in this order'),
    healthChecks: z.array(HealthCheck).default([]),
  })
  .meta({ id: 'Application' });

export const ProfileSpec = z
  .strictObject({
    os: OperatingSystem,
    instance: Instance.optional(),
    baseImage: BaseImage.optional(),
    executionFlag: ExecutionFlag.default('Production'),
    packages: z.array(Package).default([]),
    services: z.array(Service).default([]),
    network: Network.default({ interfaces: [], routes: [] }),
    storage: Storage.default({ volumes: [], filesystems: [], mounts: [] }),
    resources: Resources.default({ cgroups: [] }),
    runtimeDependencies: z.array(RuntimeDependency).default([]),
    configuration: Configuration.default({ env: [], files: [], sysctl: {} }),
    kernelModules: z.array(KernelModule).default([]),
    security: Security.default({ users: [], groups: [], sudoers: [], sshKeys: [] }),
    monitoring: Monitoring.default({ agents: [], thresholds: [] }),
    processes: z.array(ProcessAllocation).default([]),
    application: Application.default({ paths: [], startCommands: [], healthChecks: [] }),
  })
  .superRefine(
    (spec, ctx) => {
      for (const d of duplicateKeys(spec))
        ctx.addIssue({ code: 'custom', path: [...d.path], message: d.message });
    },
    // Runs even when other fields are wrong, so that every problem is reported at once.
    { when: () => true },
  )
  .meta({ id: 'ProfileSpec' });

export const ListeningSocket = z
  .strictObject({
    protocol: z.enum(['tcp', 'udp', 'tcp6', 'udp6', 'unix']),
    address: z.string(),
    port: port.optional(),
    process: text.optional(),
  })
  .meta({ id: 'ListeningSocket' });

export const Connection = z
  .strictObject({
    protocol: z.enum(['tcp', 'udp', 'tcp6', 'udp6']),
    local: text,
    remote: text,
    state: text.describe('ESTABLISHED, TIME_WAIT, ...'),
    process: text.optional(),
  })
  .meta({ id: 'Connection' });

const fraction = z.number().min(0).max(1);

export const Usage = z
  .strictObject({
    application: z
      .strictObject({
        requestsPerSecond: z.number().nonnegative().optional(),
        activeSessions: z.number().int().nonnegative().optional(),
        errorRate: fraction.optional(),
      })
      .optional(),
    data: z
      .array(
        z.strictObject({
          type: text.describe('logs, database, media, code, ...'),
          bytes: byteCount,
          files: byteCount,
        }),
      )
      .default([]),
    window: z
      .strictObject({
        seconds: z.number().positive(),
        source: z.enum(['capture', 'agent']),
      })
      .optional()
      .describe(
        "The two readings the rates (CPU, network, disk) come from: seconds apart, and whose the first was (the capture script's at its start, or persona-agent's last)",
      ),
    network: z
      .strictObject({
        rxBytesPerSecond: z.number().nonnegative(),
        txBytesPerSecond: z.number().nonnegative(),
        connections: z.number().int().nonnegative().optional(),
      })
      .optional(),
    performance: z
      .strictObject({
        cpuUtilization: fraction.optional(),
        memoryUtilization: fraction.optional(),
        loadAverage: z.tuple([z.number(), z.number(), z.number()]).optional(),
        diskIops: z.number().nonnegative().optional(),
        p95LatencyMs: z.number().nonnegative().optional(),
      })
      .optional(),
  })
  .meta({ id: 'Usage' });

export const TraitVector = z
  .strictObject({
    traits: z.record(z.string().min(1), fraction).describe('Trait name → strength in [0, 1]'),
    weights: z.record(z.string().min(1), z.number().nonnegative()).optional(),
    computedAt: z.iso.datetime().optional(),
  })
  .meta({ id: 'TraitVector' });

export const ApplicationTree = z
  .strictObject({
    path: absolutePath,
    reasons: z
      .array(text)
      .min(1)
      .describe('What showed it holds application data: a document root, a working directory, open files'),
    bytes: byteCount.optional().describe('Disk usage when it was captured (du -s)'),
  })
  .meta({ id: 'ApplicationTree' });

export const Observed = z
  .strictObject({
    capturedAt: z.iso.datetime().optional(),
    listening: z.array(ListeningSocket).default([]),
    connections: z.array(Connection).default([]),
    usage: Usage.optional(),
    traitVector: TraitVector.optional(),
    applicationTrees: z
      .array(ApplicationTree)
      .optional()
      .describe('Trees the capture found and added to spec.application.paths, with why'),
  })
  .meta({ id: 'Observed' });

export const ProfileMetadata = z
  .strictObject({
    name,
    description: z.string().max(1024).optional(),
    labels: labels.optional(),
  })
  .meta({ id: 'ProfileMetadata' });

export const Profile = z
  .strictObject({
    apiVersion: z.literal(API_VERSION),
    kind: z.literal(PROFILE_KIND),
    metadata: ProfileMetadata,
    spec: ProfileSpec,
    observed: Observed.optional(),
  })
  .meta({
    id: 'Profile',
    title: 'Persona Profile',
    description: 'A complete description of a host: what it runs, how it is configured, how it behaves.',
  });

/** A Profile as written by a person: defaults not yet filled in. */
export type ProfileInput = z.input<typeof Profile>;
/** A Profile after parsing: every default filled in. */
export type Profile = z.infer<typeof Profile>;
export type ProfileSpec = z.infer<typeof ProfileSpec>;
export type Package = z.infer<typeof Package>;
export type Service = z.infer<typeof Service>;
export type KernelModule = z.infer<typeof KernelModule>;
export type EnvVar = z.infer<typeof EnvVar>;
export type ConfigFile = z.infer<typeof ConfigFile>;
