// The Debian root filesystem every test host starts from: debootstrap once per package
// list, cached outside the repository, never written again (each host is an overlay on it);
// and apt working on a root filesystem from the control machine's side.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { shellQuote as quote } from '../../core/transport/shell.js';
import { CONFINED, runOk, withLock } from './process.js';
import { removeTree } from './teardown.js';

export const SUITE = 'bookworm';

/**
 * What `debootstrap --variant=minbase` adds to Debian's required packages: what a small
 * real server has and what capture reads. No init system: the harness starts sshd itself,
 * and a test that wants systemd's unit files passes `packages: ['systemd']`.
 */
export const BASE_PACKAGES = [
  'openssh-server', // the way in (sshd; brings the ssh client and ssh-keygen)
  'iproute2', // ip and ss: interfaces, routes, listening sockets and connections
  'nftables', // nft: the firewall ruleset
  'procps', // ps, sysctl, free, top: processes, kernel parameters, memory
  'kmod', // lsmod, modinfo: kernel modules
  'iputils-ping', // ping: the simplest health check
  'ca-certificates', // what any TLS client on a server relies on
  'curl', // HTTP health checks from inside the host
  'sudo', // sudoers, which capture records
] as const;

/** Bump when the recipe below changes, so that caches built by the old one are not reused. */
const RECIPE = 3;

export function cacheRoot(): string {
  return process.env.PERSONA_ROOTFS_CACHE ?? '/var/cache/persona/test-rootfs';
}

/**
 * The Debian mirror the control machine's own apt uses (so that a machine that can only
 * reach one mirror builds from that one), or PERSONA_DEBIAN_MIRROR.
 */
export function debianMirror(): string {
  if (process.env.PERSONA_DEBIAN_MIRROR) return process.env.PERSONA_DEBIAN_MIRROR;
  const candidates: string[] = [];
  const dir = '/etc/apt/sources.list.d';
  const files = existsSync(dir)
    ? readdirSync(dir)
        .filter((f) => f.endsWith('.sources') || f.endsWith('.list'))
        .map((f) => join(dir, f))
    : [];
  for (const file of ['/etc/apt/sources.list', ...files]) {
    if (!existsSync(file)) continue;
    const text = readFileSync(file, 'utf8');
    if (file.endsWith('.sources')) {
      for (const stanza of text.split(/\n\s*\n/)) {
        const field = (name: string) =>
          stanza
            .match(new RegExp(`^${name}:\\s*(.+)$`, 'mi'))?.[1]
            ?.trim()
            .split(/\s+/) ?? [];
        if (field('Types').includes('deb') && field('Suites').includes(SUITE))
          candidates.push(...field('URIs'));
      }
    } else {
      for (const line of text.split('\n')) {
        const m = line.match(/^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)/);
        if (m?.[1] && m[2] === SUITE) candidates.push(m[1]);
      }
    }
  }
  return candidates.find((uri) => /^https?:\/\//.test(uri)) ?? 'http://deb.debian.org/debian';
}

const built = new Map<string, Promise<string>>();

/**
 * The path of a cached root filesystem with the base packages plus `extra`, building it on
 * first use. Parallel test files wait for one build (flock); an interrupted build has no
 * `.complete` marker and is redone.
 */
export function ensureRootfs(extra: readonly string[] = []): Promise<string> {
  const packages = [...new Set(extra)]
    .filter((p) => !(BASE_PACKAGES as readonly string[]).includes(p))
    .sort();
  const key = packages.join(',');
  let pending = built.get(key);
  if (!pending) {
    pending =
      packages.length === 0
        ? ensureBuilt([], (dir) => debootstrap(dir))
        : ensureRootfs([]).then((base) =>
            ensureBuilt(packages, async (dir) => {
              await runOk('cp', ['-a', '--reflink=auto', base, dir]);
              await configure(dir, packages);
            }),
          );
    pending.catch(() => built.delete(key));
    built.set(key, pending);
  }
  return pending;
}

async function ensureBuilt(extra: readonly string[], build: (dir: string) => Promise<void>): Promise<string> {
  const id = createHash('sha256')
    .update(JSON.stringify({ RECIPE, SUITE, base: [...BASE_PACKAGES].sort(), extra }))
    .digest('hex')
    .slice(0, 16);
  const home = join(cacheRoot(), id);
  const rootfs = join(home, 'rootfs');
  const marker = join(home, '.complete');
  if (existsSync(marker)) return rootfs;
  mkdirSync(home, { recursive: true });
  await withLock(join(home, '.lock'), async () => {
    if (existsSync(marker)) return;
    // A build that was killed part-way: its mounts and files go before the next attempt.
    removeTree(rootfs);
    const started = Date.now();
    await build(rootfs);
    writeFileSync(
      marker,
      `${JSON.stringify({ suite: SUITE, base: BASE_PACKAGES, extra, builtAt: new Date().toISOString(), seconds: (Date.now() - started) / 1000 }, null, 2)}\n`,
    );
  });
  return rootfs;
}

async function debootstrap(dir: string): Promise<void> {
  await ensureTools({ debootstrap: 'debootstrap' });
  const debs = join(cacheRoot(), 'debs');
  mkdirSync(debs, { recursive: true });
  // In namespaces of its own: the proc and sys that debootstrap mounts into the target
  // vanish with it even when it is killed, instead of pinning the directory.
  await runOk(
    'setpriv',
    [
      ...SANDBOX,
      'debootstrap',
      '--variant=minbase',
      `--include=${BASE_PACKAGES.join(',')}`,
      `--cache-dir=${debs}`,
      SUITE,
      dir,
      debianMirror(),
    ],
    { timeoutMs: 1_500_000 },
  );
  await configure(dir, []);
}

/**
 * What every test host's root filesystem needs beyond debootstrap: package lists (so that
 * installs need no `apt-get update`), a policy-rc.d that keeps package scripts from
 * starting daemons (they would run in the control machine's network namespace), no
 * downloaded .debs and no host keys (each host makes its own).
 */
async function configure(dir: string, packages: readonly string[]): Promise<void> {
  writeFileSync(
    join(dir, 'usr/sbin/policy-rc.d'),
    '#!/bin/sh\n# Test hosts run no init system: package scripts must not start daemons.\nexit 101\n',
    { mode: 0o755 },
  );
  // Each host is an overlay on this tree and pays for every file apt rewrites: compressed
  // lists save 50 MB of the tree, and no binary caches save 76 MB that every install
  // would otherwise write into the host's layer.
  writeFileSync(
    join(dir, 'etc/apt/apt.conf.d/90persona-test-host'),
    'Acquire::GzipIndexes "true";\nAcquire::CompressionTypes::Order:: "gz";\nDir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n',
  );
  await inAptSandbox(
    dir,
    `find "$R/var/lib/apt/lists" -maxdepth 1 -type f ! -name lock -delete
chroot "$R" apt-get update -qq
if [ $# -gt 0 ]; then chroot "$R" apt-get install -y -qq --no-install-recommends "$@"; fi
chroot "$R" apt-get clean
rm -f "$R"/etc/ssh/ssh_host_*
mkdir -p "$R/run/sshd" "$R/root/.ssh"
chmod 700 "$R/root/.ssh"`,
    packages,
  );
}

/**
 * setpriv and unshare arguments for apt and dpkg working on a root filesystem from the
 * control machine's side: in the control machine's network namespace (the only one with a
 * way to the mirror), but with mounts, hostname and processes of their own and no right
 * to set the clock or load modules, so that a package script cannot change the machine.
 */
const SANDBOX = [
  // Ends with the process that started it, even when that one is killed.
  '--pdeathsig',
  'KILL',
  ...CONFINED,
  'unshare',
  '--mount',
  '--uts',
  '--ipc',
  '--pid',
  '--kill-child',
  '--propagation',
  'private',
];

/**
 * Runs a shell script (`$R` is the root filesystem, `$@` the arguments) in the sandbox,
 * with /proc mounted (read-only /proc/sys) and the control machine's resolv.conf in the
 * root filesystem for as long as the script runs.
 */
async function inAptSandbox(
  root: string,
  script: string,
  args: readonly string[],
  options: { readonly hostname?: string; readonly mounts?: Readonly<Record<string, string>> } = {},
): Promise<void> {
  const binds = Object.entries(options.mounts ?? {}).map(
    ([inside, outside]) => `mount --bind ${quote(outside)} "$R"${quote(inside)}`,
  );
  await runOk(
    'setpriv',
    [
      ...SANDBOX,
      'sh',
      '-euc',
      `R=$1; shift
${options.hostname === undefined ? '' : `hostname ${quote(options.hostname)}`}
mount -t proc proc "$R/proc"
mount --bind "$R/proc/sys" "$R/proc/sys"
mount -o remount,bind,ro "$R/proc/sys"
[ -f "$R/etc/resolv.conf" ] || : > "$R/etc/resolv.conf"
mount --bind /etc/resolv.conf "$R/etc/resolv.conf"
${binds.join('\n')}
${script}`,
      'apt-sandbox',
      root,
      ...args,
    ],
    { timeoutMs: 1_200_000, env: aptEnv() },
  );
}

/**
 * apt-get install into a test host's root filesystem (see TestHost.installPackages).
 * Downloaded .debs are shared by every host and run (apt checks them against the lists),
 * under a lock because apt refuses a second user of its archive directory.
 */
export async function aptInstall(root: string, hostname: string, names: readonly string[]): Promise<void> {
  if (names.length === 0) return;
  const debs = join(cacheRoot(), 'host-debs');
  mkdirSync(join(debs, 'partial'), { recursive: true });
  await withLock(join(cacheRoot(), 'host-debs.lock'), () =>
    inAptSandbox(
      root,
      `install() { chroot "$R" apt-get install -y -qq --no-install-recommends "$@"; }
# Package lists in the cached root filesystem age: on a miss, refresh them and retry.
install "$@" || { chroot "$R" apt-get update -qq && install "$@"; }`,
      names,
      { hostname, mounts: { '/var/cache/apt/archives': debs } },
    ),
  );
}

export function aptEnv(): NodeJS.ProcessEnv {
  return {
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: '/root',
    LANG: 'C.UTF-8',
    DEBIAN_FRONTEND: 'noninteractive',
    ...Object.fromEntries(
      ['http_proxy', 'https_proxy', 'no_proxy'].flatMap((n) => (process.env[n] ? [[n, process.env[n]]] : [])),
    ),
  };
}

/**
 * Installs the Debian packages that provide missing commands (CI starts from a fresh
 * machine, as root). Maps command → package.
 */
export async function ensureTools(tools: Readonly<Record<string, string>>): Promise<void> {
  const missing: string[] = [];
  for (const [command, pkg] of Object.entries(tools)) {
    const found = await runOk('sh', ['-c', `command -v ${command} || true`]);
    if (!found.trim()) missing.push(pkg);
  }
  if (missing.length === 0) return;
  await withLock('/var/lock/persona-apt.lock', async () => {
    await runOk('apt-get', ['update', '-qq'], { env: aptEnv(), timeoutMs: 600_000 });
    await runOk('apt-get', ['install', '-y', '-qq', ...new Set(missing)], {
      env: aptEnv(),
      timeoutMs: 600_000,
    });
  });
}
