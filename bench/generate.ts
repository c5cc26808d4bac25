// The documents the benchmark measures: the profile of a big, busy Debian host, and the same
// host a release later. Sizes follow what such hosts really carry (a few thousand packages and
// configuration files, hundreds of users and sysctl keys) so that the figures say something
// about real documents, not about toy ones.
import { looksSensitive, type ProfileInput } from '../core/profile/schema.js';
import { contentHash, fingerprint, type Rng, rng } from './rng.js';

export interface HostSize {
  readonly packages: number;
  readonly services: number;
  readonly files: number;
  readonly env: number;
  readonly sysctl: number;
  readonly kernelModules: number;
  readonly users: number;
  readonly groups: number;
  readonly routes: number;
  readonly mounts: number;
}

export const BIG_HOST: HostSize = {
  packages: 2500,
  services: 150,
  files: 6000,
  env: 400,
  sysctl: 300,
  kernelModules: 60,
  users: 200,
  groups: 150,
  routes: 100,
  mounts: 40,
};

type Spec = ProfileInput['spec'];
type PackageIn = NonNullable<Spec['packages']>[number];
type ServiceIn = NonNullable<Spec['services']>[number];
type FileIn = NonNullable<NonNullable<Spec['configuration']>['files']>[number];
type EnvIn = NonNullable<NonNullable<Spec['configuration']>['env']>[number];
type UserIn = NonNullable<NonNullable<Spec['security']>['users']>[number];
type GroupIn = NonNullable<NonNullable<Spec['security']>['groups']>[number];
type RouteIn = NonNullable<NonNullable<Spec['network']>['routes']>[number];
type ModuleIn = NonNullable<Spec['kernelModules']>[number];
type SecretRefIn = NonNullable<EnvIn['secretRef']>;

const LIB_STEMS = [
  'ssl',
  'curl',
  'xml2',
  'pcre2',
  'z',
  'bz2',
  'lzma',
  'zstd',
  'ffi',
  'gcrypt',
  'gnutls',
  'krb5',
  'ldap',
  'sasl2',
  'systemd',
  'udev',
  'uuid',
  'blkid',
  'mount',
  'selinux',
  'acl',
  'attr',
  'cap',
  'audit',
  'pam',
  'nss',
  'expat',
  'yaml',
  'json-c',
  'jansson',
  'icu',
  'readline',
  'ncurses',
  'tinfo',
  'gmp',
  'mpfr',
  'idn2',
  'unistring',
  'psl',
  'nghttp2',
  'brotli',
  'png',
  'jpeg',
  'tiff',
  'webp',
  'freetype',
  'fontconfig',
  'cairo',
  'pango',
  'glib',
  'dbus',
  'apparmor',
  'seccomp',
  'elf',
  'dw',
  'bpf',
  'sqlite3',
  'pq',
  'mariadb',
  'protobuf',
  'grpc',
  're2',
  'absl',
  'boost-system',
  'boost-thread',
  'event',
  'uv',
  'ev',
  'evdev',
  'archive',
  'magic',
  'gpgme',
  'assuan',
  'ksba',
  'npth',
  'tasn1',
  'p11-kit',
  'hogweed',
  'nettle',
  'sodium',
  'argon2',
  'crypt',
  'xxhash',
  'lz4',
  'snappy',
  'rdkafka',
  'hiredis',
  'memcached',
  'maxminddb',
  'geoip',
  'gd',
  'xslt',
  'exslt',
  'onig',
  'zip',
  'mcrypt',
  'tidy',
  'curl-gnutls',
  'ssh2',
  'rtmp',
  'brotlienc',
  'iptc',
  'exif',
  'heif',
  'avif',
  'dav1d',
  'aom',
  'vpx',
  'x264',
  'opus',
  'vorbis',
  'ogg',
  'flac',
  'sndfile',
  'pulse',
  'asound',
  'drm',
  'gbm',
  'wayland',
  'xkbcommon',
  'x11',
  'xext',
  'xrender',
  'xcb',
  'xau',
  'xdmcp',
  'bsd',
  'md',
  'edit',
  'lmdb',
  'db5.3',
  'gdbm',
  'tokyocabinet',
  'leveldb',
  'rocksdb',
  'jemalloc',
  'tcmalloc',
  'unwind',
  'numa',
  'hwloc',
  'ibverbs',
  'rdmacm',
  'pcap',
  'nl-3',
  'nl-route-3',
  'mnl',
  'nftnl',
  'nftables',
  'iptc-dev',
  'ip4tc',
  'ip6tc',
  'netfilter-conntrack',
  'nfnetlink',
  'kmod',
  'procps',
  'ps',
  'sensors',
  'smartcols',
  'fdisk',
  'parted',
  'lvm2app',
  'devmapper',
  'cryptsetup',
  'keyutils',
  'tirpc',
  'nsl',
  'wrap',
  'gssapi-krb5',
  'com-err',
  'k5crypto',
  'keyutils1',
];
const PREFIXES = ['python3-', 'node-', 'golang-', 'ruby-', 'php8.2-', 'librust-', 'r-cran-', 'fonts-'];
const SUFFIXES = [
  '-dev',
  '-doc',
  '-bin',
  '-common',
  '-utils',
  '-data',
  '-dbg',
  '-perl',
  '-tools',
  '-plugins',
];
const WELL_KNOWN = [
  'nginx',
  'nginx-common',
  'postgresql-15',
  'postgresql-client-15',
  'redis-server',
  'redis-tools',
  'openssh-server',
  'openssh-client',
  'nftables',
  'iproute2',
  'curl',
  'wget',
  'ca-certificates',
  'systemd',
  'systemd-sysv',
  'udev',
  'cron',
  'rsyslog',
  'logrotate',
  'chrony',
  'sudo',
  'vim-tiny',
  'less',
  'git',
  'rsync',
  'jq',
  'unzip',
  'tar',
  'gzip',
  'bzip2',
  'xz-utils',
  'zstd',
  'coreutils',
  'bash',
  'dash',
  'grep',
  'sed',
  'gawk',
  'findutils',
  'procps',
  'psmisc',
  'lsof',
  'strace',
  'tcpdump',
  'htop',
  'iotop',
  'sysstat',
  'amazon-cloudwatch-agent',
  'prometheus-node-exporter',
  'haproxy',
  'keepalived',
  'docker-ce',
  'containerd.io',
  'openjdk-17-jre-headless',
  'python3',
  'python3-pip',
  'nodejs',
  'golang-1.21',
  'gcc-12',
  'g++-12',
  'make',
  'cmake',
  'pkg-config',
  'dpkg',
  'apt',
  'debconf',
  'tzdata',
  'locales',
  'openssl',
  'gnupg',
  'unattended-upgrades',
  'apparmor',
  'auditd',
  'fail2ban',
  'postfix',
  'dnsutils',
  'netcat-openbsd',
  'ethtool',
  'nvme-cli',
  'xfsprogs',
  'e2fsprogs',
  'lvm2',
  'cryptsetup',
  'mdadm',
];

const SERVICE_NAMES = [
  'nginx',
  'postgresql@15-main',
  'redis-server',
  'ssh',
  'cron',
  'rsyslog',
  'chrony',
  'systemd-journald',
  'systemd-logind',
  'systemd-networkd',
  'systemd-resolved',
  'systemd-timesyncd',
  'systemd-udevd',
  'dbus',
  'haproxy',
  'keepalived',
  'docker',
  'containerd',
  'amazon-cloudwatch-agent',
  'prometheus-node-exporter',
  'fail2ban',
  'postfix',
  'auditd',
  'apparmor',
  'unattended-upgrades',
  'nftables',
  'getty@tty1',
  'serial-getty@ttyS0',
  'logrotate',
  'apt-daily',
  'apt-daily-upgrade',
  'fstrim',
  'e2scrub_all',
  'mdmonitor',
  'lvm2-monitor',
  'multipathd',
  'irqbalance',
  'acpid',
  'atd',
  'snmpd',
];
const APP_ROLES = ['api', 'worker', 'scheduler', 'consumer', 'indexer', 'mailer', 'exporter', 'gateway'];
const APP_DOMAINS = [
  'orders',
  'billing',
  'catalog',
  'search',
  'auth',
  'cart',
  'payments',
  'shipping',
  'reviews',
  'media',
  'reports',
  'notify',
  'pricing',
  'stock',
  'loyalty',
  'fraud',
];

const ETC_DIRS = [
  'nginx/conf.d',
  'nginx/sites-available',
  'nginx/snippets',
  'postgresql/15/main/conf.d',
  'redis',
  'ssh/sshd_config.d',
  'systemd/system',
  'systemd/system/multi-user.target.wants',
  'systemd/network',
  'systemd/journald.conf.d',
  'apt/apt.conf.d',
  'apt/sources.list.d',
  'apt/preferences.d',
  'sysctl.d',
  'modprobe.d',
  'security/limits.d',
  'pam.d',
  'sudoers.d',
  'logrotate.d',
  'rsyslog.d',
  'cron.d',
  'cron.daily',
  'default',
  'haproxy/conf.d',
  'keepalived/conf.d',
  'docker',
  'containerd',
  'amazon/amazon-cloudwatch-agent/amazon-cloudwatch-agent.d',
  'prometheus/node-exporter',
  'fail2ban/jail.d',
  'fail2ban/filter.d',
  'postfix',
  'audit/rules.d',
  'apparmor.d',
  'apparmor.d/local',
  'ssl/certs',
  'ca-certificates/update.d',
  'profile.d',
  'udev/rules.d',
  'tmpfiles.d',
  'nftables.d',
  'chrony/conf.d',
  'opt/app',
];
const SRV_DIRS = [
  'config',
  'config/env',
  'config/features',
  'templates/email',
  'templates/pdf',
  'lib',
  'lib/handlers',
  'lib/models',
  'lib/services',
  'lib/util',
  'migrations',
  'public/assets',
  'public/css',
  'public/js',
  'locales',
  'scripts',
  'bin',
  'node_modules/.bin',
  'vendor',
  'certs',
];
const OPT_PRODUCTS = [
  'node-22',
  'aws/amazon-cloudwatch-agent',
  'datadog-agent',
  'vault',
  'consul',
  'elasticsearch',
  'kafka',
  'zookeeper',
  'jdk-17',
  'app-tools',
  'observability/otel-collector',
  'backup/restic',
];
const OPT_SUBDIRS = ['bin', 'etc', 'lib', 'conf', 'share', 'plugins', 'config', 'scripts'];
const EXTENSIONS = [
  '.conf',
  '.yaml',
  '.json',
  '.js',
  '.ts',
  '.sql',
  '.pem',
  '.ini',
  '.toml',
  '.sh',
  '.rules',
  '',
];
const WORDS = [
  'main',
  'default',
  'local',
  'extra',
  'tuning',
  'limits',
  'logging',
  'security',
  'upstream',
  'cache',
  'gzip',
  'ssl',
  'proxy',
  'health',
  'metrics',
  'backup',
  'rotate',
  'retention',
  'queue',
  'pool',
  'workers',
  'timeouts',
  'headers',
  'cors',
  'ratelimit',
  'geo',
  'maps',
  'index',
  'routes',
  'schema',
  'seed',
  'feature',
  'flags',
  'tenant',
  'region',
  'replica',
  'primary',
  'standby',
  'archive',
  'vacuum',
];

const OWNERS = ['root', 'root', 'root', 'root', 'app', 'www-data', 'postgres', 'redis', 'deploy'];
const MODES = ['0644', '0644', '0644', '0640', '0600', '0755', '0750', '0444'];
const SYSTEM_USERS = [
  'root',
  'daemon',
  'bin',
  'sys',
  'sync',
  'games',
  'man',
  'lp',
  'mail',
  'news',
  'uucp',
  'proxy',
  'www-data',
  'backup',
  'list',
  'irc',
  '_apt',
  'nobody',
  'systemd-network',
  'systemd-resolve',
  'systemd-timesync',
  'messagebus',
  'sshd',
  'postgres',
  'redis',
  'haproxy',
  'postfix',
  'chrony',
  'cwagent',
  'node-exporter',
  'app',
  'deploy',
  'tss',
  'uuidd',
  'tcpdump',
];
const FIRST = [
  'ana',
  'ben',
  'chloe',
  'david',
  'emma',
  'felix',
  'grace',
  'hugo',
  'ines',
  'jules',
  'kim',
  'leo',
];
const LAST = [
  'martin',
  'bernard',
  'dubois',
  'thomas',
  'robert',
  'richard',
  'petit',
  'durand',
  'leroy',
  'moreau',
];

const debianVersion = (r: Rng): string => {
  const epoch = r.chance(0.08) ? `${r.int(1, 3)}:` : '';
  const upstream = r.chance(0.15)
    ? `${r.int(2019, 2024)}${String(r.int(1, 12)).padStart(2, '0')}${String(r.int(1, 28)).padStart(2, '0')}`
    : `${r.int(0, 12)}.${r.int(0, 40)}${r.chance(0.7) ? `.${r.int(0, 30)}` : ''}`;
  const revision = r.chance(0.1) ? '' : `-${r.int(1, 9)}`;
  const security = revision !== '' && r.chance(0.25) ? `+deb12u${r.int(1, 6)}` : '';
  return `${epoch}${upstream}${revision}${security}`;
};

/** Upgrades a Debian version the way a point release or a security update does. */
export const bumpVersion = (version: string, r: Rng): string => {
  const security = /\+deb12u(\d+)$/.exec(version);
  if (security) return version.replace(/\+deb12u\d+$/, `+deb12u${Number(security[1]) + 1}`);
  if (r.chance(0.5)) return `${version}+deb12u1`;
  const revision = /-(\d+)$/.exec(version);
  if (revision) return version.replace(/-\d+$/, `-${Number(revision[1]) + 1}`);
  return `${version}.1`;
};

function packageNames(count: number, r: Rng): string[] {
  const names = new Set<string>(WELL_KNOWN.slice(0, Math.min(WELL_KNOWN.length, count)));
  const candidates: string[] = [];
  for (const stem of LIB_STEMS) {
    const so = /\d$/.test(stem) ? `-${r.int(0, 9)}` : String(r.int(0, 9));
    candidates.push(`lib${stem}${so}`, `lib${stem}-dev`, `lib${stem}-doc`, `lib${stem}${so}-dbg`);
    for (const p of PREFIXES) candidates.push(`${p}${stem}`);
    for (const s of SUFFIXES) candidates.push(`${stem}${s}`);
  }
  for (const name of r.sample(candidates, candidates.length)) {
    if (names.size >= count) break;
    names.add(name);
  }
  // More than the stems give: numbered sonames, as several generations of a library do.
  for (let i = 0; names.size < count; i++) names.add(`lib${LIB_STEMS[i % LIB_STEMS.length]}-compat${i}`);
  return [...names];
}

function makePackage(name: string, r: Rng): PackageIn {
  const manager = name === 'amazon-cloudwatch-agent' || name === 'docker-ce' ? 'dpkg' : 'apt';
  const arch = /-(doc|data|common)$|^fonts-|^python3-|^node-|^golang-.*-dev$/.test(name) ? 'all' : 'amd64';
  return { name, version: debianVersion(r), manager, arch, ...(r.chance(0.01) ? { hold: true } : {}) };
}

function serviceNames(count: number): string[] {
  const names = [...SERVICE_NAMES];
  for (let i = 0; names.length < count; i++) {
    const domain = APP_DOMAINS[i % APP_DOMAINS.length] as string;
    const role = APP_ROLES[Math.floor(i / APP_DOMAINS.length) % APP_ROLES.length] as string;
    const shard = Math.floor(i / (APP_DOMAINS.length * APP_ROLES.length));
    names.push(shard === 0 ? `${domain}-${role}` : `${domain}-${role}-${shard}`);
  }
  return names.slice(0, count);
}

function makeService(name: string, r: Rng): ServiceIn {
  const running = r.chance(0.85);
  return {
    name,
    manager: 'systemd',
    state: running ? 'running' : 'stopped',
    enabled: running || r.chance(0.3),
    ...(r.chance(0.8) ? { unitHash: contentHash(`unit ${name} ${r.hex(8)}`) } : {}),
  };
}

const KMS_CIPHERTEXT = Buffer.from('kms-wrapped-data-key-for-bench').toString('base64');

function secretRef(name: string, r: Rng): SecretRefIn {
  const slug = name.toLowerCase().replace(/_/g, '-');
  switch (r.int(0, 3)) {
    case 0:
      return { provider: 'aws-secretsmanager', secretId: `prod/app/${slug}`, jsonKey: 'value' };
    case 1:
      return { provider: 'aws-ssm', parameter: `/prod/app/${slug}`, version: r.int(1, 9) };
    case 2:
      return { provider: 'aws-kms', keyId: 'alias/app-secrets', ciphertext: KMS_CIPHERTEXT };
    default:
      return { provider: 'local', key: slug };
  }
}

function filePaths(count: number, r: Rng, services: readonly string[]): string[] {
  const paths = new Set<string>();
  const word = () => r.pick(WORDS);
  const shares = [0.4, 0.4, 0.2];
  const quota = shares.map((s) => Math.round(s * count));
  while (paths.size < (quota[0] ?? 0)) {
    const dir = r.pick(ETC_DIRS);
    const stem = dir.startsWith('systemd/system') ? `${r.pick(services)}` : `${r.int(10, 99)}-${word()}`;
    const ext = dir.startsWith('systemd/system') ? '.service' : r.pick(EXTENSIONS);
    paths.add(`/etc/${dir}/${stem}${ext}`);
  }
  while (paths.size < (quota[0] ?? 0) + (quota[1] ?? 0)) {
    const domain = r.pick(APP_DOMAINS);
    paths.add(`/srv/app/${domain}/${r.pick(SRV_DIRS)}/${word()}-${word()}${r.pick(EXTENSIONS)}`);
  }
  while (paths.size < count) {
    paths.add(
      `/opt/${r.pick(OPT_PRODUCTS)}/${r.pick(OPT_SUBDIRS)}/${word()}_${r.int(1, 400)}${r.pick(EXTENSIONS)}`,
    );
  }
  return [...paths];
}

function makeFile(path: string, r: Rng): FileIn {
  const owner = path.startsWith('/srv/app/') ? r.pick(['app', 'app', 'deploy', 'www-data']) : r.pick(OWNERS);
  const base = { path, mode: r.pick(MODES), owner, group: owner === 'deploy' ? 'app' : owner };
  if (path.endsWith('.pem') && r.chance(0.5)) {
    return { ...base, mode: '0600', sensitive: true, secretRef: secretRef(path.replace(/\W+/g, '_'), r) };
  }
  const kind = r.next();
  if (kind < 0.03) return { ...base, type: 'symlink', target: `${path}.d/current` };
  if (kind < 0.06) return { ...base, type: 'directory', mode: '0755' };
  return { ...base, hash: contentHash(`${path} ${r.hex(12)}`), size: Math.floor(2 ** (6 + r.next() * 12)) };
}

const ENV_STEMS = [
  'LOG_LEVEL',
  'PORT',
  'HOST',
  'WORKERS',
  'TIMEOUT_MS',
  'POOL_SIZE',
  'CACHE_TTL',
  'FEATURE_FLAGS',
  'REGION',
  'DATABASE_URL',
  'DATABASE_PASSWORD',
  'REDIS_URL',
  'REDIS_PASSWORD',
  'API_KEY',
  'JWT_SECRET',
  'SESSION_SECRET',
  'SENTRY_DSN',
  'OTEL_EXPORTER_ENDPOINT',
  'SMTP_HOST',
  'SMTP_PASSWORD',
  'S3_BUCKET',
  'AWS_ACCESS_KEY_ID',
  'STRIPE_API_KEY',
  'GITHUB_TOKEN',
  'MAX_BODY_BYTES',
  'QUEUE_NAME',
  'BATCH_SIZE',
  'RETRY_LIMIT',
  'TZ',
  'LANG',
];

function makeEnv(count: number, r: Rng, services: readonly string[]): EnvIn[] {
  const out: EnvIn[] = [];
  const seen = new Set<string>();
  while (out.length < count) {
    const scope = r.pick(services);
    const name = r.pick(ENV_STEMS);
    const id = `${scope}:${name}`;
    if (seen.has(id)) continue;
    seen.add(id);
    // A name that looks like a credential must be a reference, as the schema demands.
    if (looksSensitive(name)) out.push({ name, scope, secretRef: secretRef(`${scope}-${name}`, r) });
    else out.push({ name, scope, value: envValue(name, r) });
  }
  return out;
}

function envValue(name: string, r: Rng): string {
  if (name.endsWith('_URL') || name.endsWith('_ENDPOINT') || name === 'SENTRY_DSN')
    return `https://${r.pick(APP_DOMAINS)}.internal.example:${r.int(1024, 9999)}/`;
  if (/PORT|SIZE|LIMIT|TTL|MS|WORKERS|BYTES/.test(name)) return String(r.int(1, 65000));
  if (name === 'LOG_LEVEL') return r.pick(['info', 'warn', 'debug', 'error']);
  return `${r.pick(WORDS)}-${r.int(1, 99)}`;
}

const SYSCTL_IFACES = ['all', 'default', 'lo', 'ens5', 'ens6', 'ens7', 'docker0', 'br0', 'bond0', 'vlan100'];
const SYSCTL_CONF = [
  'rp_filter',
  'accept_redirects',
  'send_redirects',
  'accept_source_route',
  'log_martians',
  'arp_ignore',
  'arp_announce',
  'forwarding',
  'secure_redirects',
  'proxy_arp',
  'arp_filter',
  'bootp_relay',
  'shared_media',
  'promote_secondaries',
  'route_localnet',
];
const SYSCTL_IPV6 = ['accept_ra', 'autoconf', 'disable_ipv6', 'forwarding', 'use_tempaddr', 'accept_dad'];
const SYSCTL_FIXED = [
  'net.core.somaxconn',
  'net.core.netdev_max_backlog',
  'net.core.rmem_max',
  'net.core.wmem_max',
  'net.core.default_qdisc',
  'net.ipv4.tcp_congestion_control',
  'net.ipv4.tcp_fin_timeout',
  'net.ipv4.tcp_keepalive_time',
  'net.ipv4.tcp_max_syn_backlog',
  'net.ipv4.tcp_tw_reuse',
  'net.ipv4.ip_local_port_range',
  'net.ipv4.tcp_rmem',
  'net.ipv4.tcp_wmem',
  'net.netfilter.nf_conntrack_max',
  'vm.swappiness',
  'vm.dirty_ratio',
  'vm.dirty_background_ratio',
  'vm.max_map_count',
  'vm.overcommit_memory',
  'vm.min_free_kbytes',
  'kernel.pid_max',
  'kernel.panic',
  'kernel.kptr_restrict',
  'kernel.dmesg_restrict',
  'kernel.randomize_va_space',
  'kernel.sched_autogroup_enabled',
  'fs.file-max',
  'fs.inotify.max_user_watches',
  'fs.inotify.max_user_instances',
  'fs.aio-max-nr',
];

function makeSysctl(count: number, r: Rng): Record<string, string> {
  const keys = [...SYSCTL_FIXED];
  for (const iface of SYSCTL_IFACES) {
    for (const p of SYSCTL_CONF) keys.push(`net.ipv4.conf.${iface}.${p}`);
    for (const p of SYSCTL_IPV6) keys.push(`net.ipv6.conf.${iface}.${p}`);
    keys.push(`net.ipv4.neigh.${iface}.gc_stale_time`, `net.ipv6.neigh.${iface}.gc_stale_time`);
  }
  for (let i = 0; keys.length < count; i++)
    keys.push(`kernel.sched_domain.cpu${i}.domain0.max_newidle_lb_cost`);
  const out: Record<string, string> = {};
  for (const key of keys.slice(0, count)) out[key] = String(r.pick([0, 1, 2, 1024, 4096, 65535, 262144]));
  return out;
}

const MODULES: readonly (readonly [string, Record<string, string>])[] = [
  ['nf_tables', {}],
  ['nf_conntrack', { hashsize: '262144', expect_hashsize: '4096' }],
  ['nf_defrag_ipv4', {}],
  ['nf_defrag_ipv6', {}],
  ['nft_ct', {}],
  ['nft_chain_nat', {}],
  ['nf_nat', {}],
  ['br_netfilter', {}],
  ['bridge', {}],
  ['overlay', { redirect_dir: 'on', metacopy: 'off' }],
  ['bonding', { mode: '802.3ad', miimon: '100', lacp_rate: 'fast' }],
  ['8021q', {}],
  ['vxlan', { udp_port: '4789' }],
  ['tcp_bbr', {}],
  ['sch_fq', {}],
  ['ena', { rx_queue_size: '4096' }],
  ['ixgbe', { allow_unsupported_sfp: '1' }],
  ['nvme', { poll_queues: '4', io_queue_depth: '1024' }],
  ['nvme_core', { multipath: 'Y' }],
  ['dm_mod', {}],
  ['dm_crypt', {}],
  ['dm_multipath', {}],
  ['raid1', {}],
  ['xfs', {}],
  ['ext4', {}],
  ['btrfs', {}],
  ['fuse', {}],
  ['loop', { max_loop: '64' }],
  ['kvm', {}],
  ['kvm_amd', { nested: '1' }],
  ['vhost_net', { experimental_zcopytx: '1' }],
  ['tun', {}],
  ['veth', {}],
  ['ip_vs', { conn_tab_bits: '20' }],
  ['ip_vs_rr', {}],
  ['ip_vs_wrr', {}],
  ['ipip', {}],
  ['wireguard', {}],
  ['af_packet', {}],
  ['sctp', {}],
  ['msr', {}],
  ['cpuid', {}],
  ['amd64_edac', { report_gart_errors: '1' }],
  ['edac_core', {}],
  ['i2c_piix4', {}],
  ['k10temp', {}],
  ['ipmi_si', { type: 'kcs', ports: '0xca2' }],
  ['ipmi_devintf', {}],
  ['softdog', { soft_margin: '60' }],
  ['iTCO_wdt', {}],
  ['zram', { num_devices: '4' }],
  ['lz4_compress', {}],
  ['crc32c_intel', {}],
  ['aesni_intel', {}],
  ['sha256_ssse3', {}],
  ['ghash_clmulni_intel', {}],
  ['rapl', {}],
  ['intel_rapl_msr', {}],
  ['efi_pstore', {}],
  ['configfs', {}],
];

function makeUsers(count: number, r: Rng): UserIn[] {
  const users: UserIn[] = SYSTEM_USERS.slice(0, count).map((name, i) => ({
    name,
    uid: name === 'root' ? 0 : name === 'nobody' ? 65534 : 100 + i,
    gid: name === 'root' ? 0 : name === 'nobody' ? 65534 : 100 + i,
    home: name === 'root' ? '/root' : `/var/lib/${name}`,
    shell: name === 'root' ? '/bin/bash' : '/usr/sbin/nologin',
    system: true,
    ...(name === 'root'
      ? { passwordRef: { provider: 'aws-ssm' as const, parameter: '/prod/host/root-hash' } }
      : {}),
  }));
  for (let i = 0; users.length < count; i++) {
    const name = `${FIRST[i % FIRST.length]}.${LAST[Math.floor(i / FIRST.length) % LAST.length]}${i >= FIRST.length * LAST.length ? i : ''}`;
    const uid = 2000 + i;
    users.push({
      name,
      uid,
      gid: uid,
      home: `/home/${name}`,
      shell: r.pick(['/bin/bash', '/bin/bash', '/usr/bin/zsh']),
      groups: r.sample(
        ['sudo', 'adm', 'docker', 'app', 'deploy', 'ssl-cert', 'systemd-journal'],
        r.int(0, 3),
      ),
      locked: r.chance(0.1),
      passwordRef: { provider: 'aws-secretsmanager', secretId: `prod/host/users/${name}` },
    });
  }
  return users;
}

function makeGroups(count: number, users: readonly UserIn[], r: Rng): GroupIn[] {
  const shared = [
    'sudo',
    'adm',
    'docker',
    'app',
    'deploy',
    'ssl-cert',
    'systemd-journal',
    'staff',
    'operators',
  ];
  const groups: GroupIn[] = shared.map((name, i) => ({
    name,
    gid: 900 + i,
    members: users.filter((u) => u.groups?.includes(name)).map((u) => u.name),
  }));
  const taken = new Set(shared);
  for (const u of users) {
    if (groups.length >= count) break;
    if (taken.has(u.name)) continue;
    taken.add(u.name);
    groups.push({ name: u.name, gid: u.gid, members: r.chance(0.2) ? [u.name] : [] });
  }
  for (let i = 0; groups.length < count; i++) groups.push({ name: `team-${i}`, gid: 5000 + i, members: [] });
  return groups;
}

function makeRoutes(count: number, r: Rng): RouteIn[] {
  const routes: RouteIn[] = [
    { destination: 'default', gateway: '10.20.0.1', interface: 'ens5', metric: 100 },
    { destination: '10.20.0.0/20', interface: 'ens5' },
  ];
  for (let i = 0; routes.length < count; i++) {
    routes.push({
      destination: `10.${100 + Math.floor(i / 200)}.${i % 200}.0/24`,
      gateway: `10.20.${r.int(0, 15)}.${r.int(2, 254)}`,
      interface: r.pick(['ens5', 'ens6', 'bond0', 'vlan100']),
      metric: r.pick([100, 200, 300]),
      ...(i % 5 === 0 ? { table: 'backend' } : {}),
    });
  }
  return routes;
}

function firewallRuleset(r: Rng): string {
  const lines = [
    'table inet filter {',
    '  chain input {',
    '    type filter hook input priority filter; policy drop;',
  ];
  lines.push('    ct state established,related accept', '    iif "lo" accept');
  for (let i = 0; i < 120; i++) {
    lines.push(
      `    ip saddr 10.${r.int(0, 255)}.${r.int(0, 255)}.0/24 tcp dport ${r.int(1024, 65000)} accept`,
    );
  }
  lines.push('  }', '}');
  return `${lines.join('\n')}\n`;
}

/** The profile of a big application host, as a capture would produce it. */
export function bigHost(seed: number, size: HostSize = BIG_HOST): ProfileInput {
  const r = rng(seed);
  const packages = packageNames(size.packages, r).map((n) => makePackage(n, r));
  const serviceList = serviceNames(size.services);
  const services = serviceList.map((n) => makeService(n, r));
  const files = filePaths(size.files, r, serviceList).map((p) => makeFile(p, r));
  const users = makeUsers(size.users, r);
  const groups = makeGroups(size.groups, users, r);
  const modules: ModuleIn[] = MODULES.slice(0, size.kernelModules).map(([name, parameters]) =>
    Object.keys(parameters).length === 0 ? { name } : { name, parameters: { ...parameters } },
  );
  const interfaces = ['lo', 'ens5', 'ens6', 'ens7', 'bond0', 'vlan100', 'docker0', 'br0'].map((name, i) => ({
    name,
    type:
      name === 'lo'
        ? ('loopback' as const)
        : name.startsWith('bond')
          ? ('bond' as const)
          : name.startsWith('vlan')
            ? ('vlan' as const)
            : name.startsWith('ens')
              ? ('ethernet' as const)
              : ('bridge' as const),
    ...(name === 'lo' ? {} : { mac: `0a:1b:2c:3d:4e:${(0x10 + i).toString(16)}`, mtu: 9001 }),
    addresses: name === 'lo' ? ['127.0.0.1/8', '::1/128'] : [`10.20.${i}.15/20`],
    state: 'up' as const,
  }));
  const mounts = Array.from({ length: size.mounts }, (_, i) =>
    i === 0
      ? { target: '/', source: '/dev/nvme0n1p1', fstype: 'ext4', options: ['rw', 'relatime', 'discard'] }
      : {
          target:
            i < 10 ? `/srv/data/${APP_DOMAINS[i]}` : `/var/lib/containers/vol-${String(i).padStart(3, '0')}`,
          source: i < 10 ? `/dev/mapper/data-${APP_DOMAINS[i]}` : `overlay-${i}`,
          fstype: i < 10 ? 'xfs' : 'overlay',
          options:
            i < 10 ? ['rw', 'noatime', 'nodev', 'nosuid'] : ['rw', 'relatime', `lowerdir=/var/lib/l${i}`],
        },
  );
  return {
    apiVersion: 'persona/v1',
    kind: 'Profile',
    metadata: {
      name: 'shop-core-1',
      description: 'Monolithic shop backend: API, workers, PostgreSQL, Redis, nginx',
      labels: { role: 'backend', team: 'platform', env: 'prod' },
    },
    spec: {
      os: {
        family: 'linux',
        distribution: 'debian',
        version: '12',
        codename: 'bookworm',
        kernel: '6.1.0-27-cloud-amd64',
        arch: 'x86_64',
        hostname: 'shop-core-1',
        timezone: 'Etc/UTC',
        locale: 'C.UTF-8',
      },
      instance: { platform: 'aws', size: 'm7i.4xlarge', region: 'eu-west-1', zone: 'eu-west-1b' },
      baseImage: { ref: 'ami-0f1e2d3c4b5a69788', platform: 'aws' },
      executionFlag: 'Production',
      packages,
      services,
      network: {
        interfaces,
        routes: makeRoutes(size.routes, r),
        firewall: { backend: 'nftables', ruleset: firewallRuleset(r) },
        dns: {
          nameservers: ['10.20.0.2', '10.20.0.3'],
          search: ['eu-west-1.compute.internal'],
          options: ['timeout:2'],
        },
      },
      storage: {
        volumes: Array.from({ length: 10 }, (_, i) => ({
          name: i === 0 ? 'root' : `data-${APP_DOMAINS[i]}`,
          device: `/dev/nvme${i}n1`,
          sizeBytes: (i === 0 ? 50 : 200) * 1024 ** 3,
          type: 'gp3',
          encryption: {
            enabled: true,
            keyRef: { provider: 'aws-kms', keyId: 'alias/ebs', ciphertext: KMS_CIPHERTEXT },
          },
        })),
        filesystems: Array.from({ length: 10 }, (_, i) => ({
          device: i === 0 ? '/dev/nvme0n1p1' : `/dev/mapper/data-${APP_DOMAINS[i]}`,
          type: i === 0 ? 'ext4' : 'xfs',
          uuid: `${r.hex(8)}-${r.hex(4)}-${r.hex(4)}-${r.hex(4)}-${r.hex(12)}`,
          sizeBytes: (i === 0 ? 50 : 200) * 1024 ** 3,
        })),
        mounts,
      },
      resources: {
        cpu: { count: 16, model: 'Intel Xeon Platinum 8488C' },
        memory: { bytes: 64 * 1024 ** 3, swapBytes: 0 },
        io: { class: 'best-effort', priority: 4 },
        bandwidth: { egressMbps: 12500, ingressMbps: 12500 },
        cgroups: serviceList.slice(0, 60).map((s) => ({
          path: `/system.slice/${s}.service`,
          cpuWeight: r.pick([100, 200, 500]),
          memoryMax: r.int(1, 16) * 1024 ** 3,
          pidsMax: r.pick([512, 1024, 4096] as const),
        })),
      },
      runtimeDependencies: [
        { type: 'language', name: 'node', version: '22.11.0', manager: 'tarball', path: '/opt/node-22' },
        { type: 'language', name: 'python', version: '3.11.2', manager: 'apt' },
        {
          type: 'language',
          name: 'openjdk',
          version: '17.0.13',
          manager: 'apt',
          path: '/usr/lib/jvm/java-17',
        },
        ...LIB_STEMS.slice(0, 37).map((stem) => ({
          type: 'library' as const,
          name: `lib${stem}`,
          version: debianVersion(r),
          manager: 'apt',
        })),
      ],
      configuration: {
        env: makeEnv(size.env, r, serviceList.slice(40)),
        files,
        sysctl: makeSysctl(size.sysctl, r),
      },
      kernelModules: modules,
      security: {
        users,
        groups,
        sudoers: ['%sudo', '%operators', 'deploy', 'app'].map((principal) => ({
          principal,
          rules: [`ALL=(root) NOPASSWD: /bin/systemctl restart ${r.pick(serviceList)}`],
        })),
        sshKeys: users
          .filter((u) => !u.system)
          .slice(0, 80)
          .map((u) => ({
            user: u.name,
            type: 'ssh-ed25519',
            fingerprint: fingerprint(`key ${u.name}`),
            comment: `${u.name}@laptop`,
          })),
      },
      monitoring: {
        agents: [
          {
            name: 'amazon-cloudwatch-agent',
            version: '1.300049.1',
            configHash: contentHash('cwagent config'),
          },
          { name: 'prometheus-node-exporter', version: '1.5.0' },
        ],
        thresholds: [
          { metric: 'cpu.utilization', comparison: '>', value: 0.85, durationSeconds: 300 },
          {
            metric: 'memory.utilization',
            comparison: '>',
            value: 0.9,
            durationSeconds: 300,
            severity: 'critical',
          },
          { metric: 'disk.used_percent', comparison: '>=', value: 85, durationSeconds: 600 },
          { metric: 'http.p95_ms', comparison: '>', value: 400, durationSeconds: 120, severity: 'critical' },
        ],
      },
      processes: serviceList.slice(40, 120).map((s) => ({
        name: s,
        command: `/opt/node-22/bin/node /srv/app/${s.split('-')[0]}/bin/${s}.js`,
        user: 'app',
        nice: r.int(-5, 5),
        memoryLimitBytes: r.int(1, 8) * 1024 ** 3,
        cgroup: `/system.slice/${s}.service`,
      })),
      application: {
        name: 'shop',
        paths: ['/srv/app', '/etc/opt/app'],
        startCommands: [
          {
            name: 'migrate',
            command: '/opt/node-22/bin/node /srv/app/orders/migrations/run.js',
            user: 'app',
          },
          { name: 'start', command: 'systemctl start orders-api catalog-api' },
        ],
        healthChecks: [
          { type: 'http', name: 'api', url: 'http://127.0.0.1:8080/healthz', expectBodyContains: 'ok' },
          { type: 'tcp', name: 'postgres', port: 5432 },
          { type: 'process', name: 'nginx', process: 'nginx' },
        ],
      },
    },
    observed: {
      capturedAt: '2026-11-20T09:30:00Z',
      listening: [
        { protocol: 'tcp', address: '0.0.0.0', port: 443, process: 'nginx' },
        { protocol: 'tcp', address: '127.0.0.1', port: 5432, process: 'postgres' },
        { protocol: 'tcp', address: '127.0.0.1', port: 6379, process: 'redis-server' },
      ],
      traitVector: { traits: { 'web-serving': 0.8, 'io-bound': 0.6, 'memory-heavy': 0.7 } },
    },
  };
}

const byName = <T extends { name: string }>(items: T[], name: string): T | undefined =>
  items.find((i) => i.name === name);

/**
 * The same host a release later: a security-update round (≈2% of packages upgraded), a few
 * packages installed and removed, a deployment that rewrites, adds and deletes files, and the
 * tuning and staffing changes that come with it.
 */
export function nextRelease(v1: ProfileInput, seed: number): ProfileInput {
  const r = rng(seed);
  const v2 = structuredClone(v1);
  const spec = v2.spec;
  const packages = spec.packages ?? [];
  const services = spec.services ?? [];
  const configuration = spec.configuration ?? {};
  const files = configuration.files ?? [];
  const env = configuration.env ?? [];
  const sysctl = configuration.sysctl ?? {};
  const security = spec.security ?? {};
  const users = security.users ?? [];
  const groups = security.groups ?? [];
  const network = spec.network ?? {};
  const routes = network.routes ?? [];

  const pkgCount = packages.length;
  const touched = r.sample(
    packages.map((_, i) => i),
    Math.round(pkgCount * 0.02) + 10,
  );
  for (const i of touched.slice(0, Math.round(pkgCount * 0.02))) {
    const p = packages[i] as PackageIn;
    p.version = bumpVersion(p.version, r);
  }
  const removed = new Set(touched.slice(Math.round(pkgCount * 0.02)));
  spec.packages = packages.filter((_, i) => !removed.has(i));
  for (let i = 0; i < 20; i++) spec.packages.push(makePackage(`app-plugin-${i}`, r));

  for (const f of r.sample(files, 150)) {
    if (f.hash !== undefined) {
      f.hash = contentHash(`${f.path} v2 ${r.hex(8)}`);
      f.size = (f.size ?? 0) + r.int(-200, 800) + 200;
    } else {
      f.mode = f.mode === '0755' ? '0750' : '0755';
    }
  }
  const deleted = new Set(r.sample(files, 20).map((f) => f.path));
  configuration.files = files.filter((f) => !deleted.has(f.path));
  for (let i = 0; i < 30; i++) {
    const path = `/srv/app/orders/lib/handlers/release-2-${i}.js`;
    configuration.files.push(makeFile(path, r));
  }

  for (const e of r.sample(
    env.filter((e) => e.value !== undefined),
    12,
  ))
    e.value = `${e.value}-v2`;
  const unset = new Set(r.sample(env, 4));
  configuration.env = env.filter((e) => !unset.has(e));
  configuration.env.push(
    { name: 'FEATURE_NEW_CHECKOUT', value: 'on', scope: 'orders-api' },
    { name: 'PAYMENTS_WEBHOOK_SECRET', scope: 'orders-api', secretRef: secretRef('webhook', r) },
  );

  for (const key of r.sample(Object.keys(sysctl), 12)) sysctl[key] = String(Number(sysctl[key]) * 2 + 1);
  for (const key of r.sample(Object.keys(sysctl), 3)) delete sysctl[key];
  sysctl['net.ipv4.tcp_notsent_lowat'] = '16384';
  sysctl['net.core.busy_poll'] = '50';

  for (const s of r.sample(services, 8)) {
    if (s.state === 'running') s.state = 'stopped';
    else s.enabled = !s.enabled;
  }
  for (const s of r.sample(services, 6)) s.unitHash = contentHash(`unit ${s.name} v2`);
  const goneServices = new Set(r.sample(services.slice(40), 2).map((s) => s.name));
  spec.services = services.filter((s) => !goneServices.has(s.name));
  spec.services.push(
    { name: 'checkout-api', state: 'running', enabled: true, unitHash: contentHash('unit checkout-api') },
    {
      name: 'checkout-worker',
      state: 'running',
      enabled: true,
      unitHash: contentHash('unit checkout-worker'),
    },
  );

  const humans = users.filter((u) => u.system !== true);
  for (const u of r.sample(humans, 6))
    u.groups = [...(u.groups ?? []), 'operators'].filter((g, i, a) => a.indexOf(g) === i);
  const leavers = new Set(r.sample(humans, 2).map((u) => u.name));
  security.users = users.filter((u) => !leavers.has(u.name));
  security.sshKeys = (security.sshKeys ?? []).filter((k) => !leavers.has(k.user));
  security.groups = groups
    .filter((g) => !leavers.has(g.name))
    .map((g) => ({ ...g, members: (g.members ?? []).filter((m) => !leavers.has(m)) }));
  for (const [i, name] of ['nora.blanc', 'omar.faure', 'paul.roux'].entries()) {
    security.users.push({
      name,
      uid: 3000 + i,
      gid: 3000 + i,
      home: `/home/${name}`,
      shell: '/bin/bash',
      groups: ['deploy'],
      passwordRef: { provider: 'aws-secretsmanager', secretId: `prod/host/users/${name}` },
    });
  }
  const operators = byName(security.groups, 'operators');
  if (operators)
    operators.members = [...(operators.members ?? []), ...r.sample(humans, 3).map((u) => u.name)];
  security.groups.push({ name: 'checkout', gid: 6000, members: ['app'] });

  const modules = spec.kernelModules ?? [];
  const conntrack = byName(modules, 'nf_conntrack');
  if (conntrack) conntrack.parameters = { ...conntrack.parameters, hashsize: '524288' };
  const nvme = byName(modules, 'nvme');
  if (nvme) nvme.parameters = { ...nvme.parameters, poll_queues: '8' };
  spec.kernelModules = modules.filter((m) => m.name !== 'ipip');
  spec.kernelModules.push({ name: 'tls' });

  network.routes = routes.filter((_, i) => i !== 10 && i !== 11);
  network.routes.push(
    { destination: '10.250.0.0/24', gateway: '10.20.0.9', interface: 'ens6', metric: 100 },
    { destination: '10.250.1.0/24', gateway: '10.20.0.9', interface: 'ens6', metric: 100 },
  );

  const deps = spec.runtimeDependencies ?? [];
  const node = deps.find((d) => d.name === 'node');
  if (node) node.version = '22.12.0';
  const cgroup = spec.resources?.cgroups?.[0];
  if (cgroup) cgroup.memoryMax = 24 * 1024 ** 3;
  return v2;
}
