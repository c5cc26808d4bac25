// Real Linux test hosts (test/hosts/README.md): each one is a writable layer over
// a cached Debian root filesystem, a network namespace with its own address, and a real
// sshd.
//
// A host's first process is sshd itself, started as
//   ip netns exec NS  unshare --uts --ipc --mount --pid --fork  chroot ROOT  sshd -D
// so the host has its own hostname, mount table, process list (ps inside shows only the
// host's processes) and network stack. Killing that process ends every process of the
// host and with them its mounts (proc, sys, /run, devpts live only in the host's mount
// namespace); what outlives it — the namespace name, the veth pair, the directory — is
// removed by destroy(), by the exit handler, or by cleanupStale() in the next run.
//
// The host cannot reach anything: its only route is its /30 link to the control machine,
// which does not forward. Packages are installed from the control machine's side
// (installPackages), and the host's /proc/sys is read-only except net.*, which is per
// network namespace, so a test cannot change the control machine's kernel settings.
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  existsSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { shellQuote } from '../../core/transport/shell.js';
import {
  CONFINED,
  type CommandResult,
  isAlive,
  killQuietly,
  run,
  runOk,
  runSync,
  startTime,
  systemEnv,
  waitGoneSync,
  withLock,
} from './process.js';
import { aptInstall, ensureRootfs, ensureTools } from './rootfs.js';
import { netnsList, netnsPids, removeTree } from './teardown.js';

export type ExecResult = CommandResult;

export interface ExecOptions {
  /** Written to the command's standard input. */
  readonly input?: string;
  readonly timeoutMs?: number;
  /** Added to the command's environment (PATH, HOME=/root and LANG=C.UTF-8 are set). */
  readonly env?: Readonly<Record<string, string>>;
}

export interface HostOptions {
  /** Lower-case letters, digits and dashes; unique within the run. */
  readonly name: string;
  /** An IPv4 address in 10.213.0.0/16 ending in .1 or .2 of its /30; chosen when absent. */
  readonly address?: string;
  /** The host's own hostname; its name when absent. */
  readonly hostname?: string;
  /** Debian packages baked into a cached root filesystem of their own, beyond BASE_PACKAGES. */
  readonly packages?: readonly string[];
  /**
   * The host's ed25519 host key (OpenSSH private key and its public line) instead of a generated
   * one, as a cloud's provisioning gives a VM the key its creator chose.
   */
  readonly ed25519HostKey?: { readonly privateKey: string; readonly publicKey: string };
  /** Runs once sshd answers; a failure destroys the host and rejects createHost. */
  readonly setup?: (host: TestHost) => Promise<void>;
}

export interface TestHost {
  readonly name: string;
  readonly hostname: string;
  readonly address: string;
  /** The control machine's address on the host's link. */
  readonly gateway: string;
  readonly prefixLength: 30;
  /** The host's interface name (the control machine's end is a `pv…` veth). */
  readonly interface: 'eth0';
  readonly port: 22;
  readonly user: 'root';
  /** An ed25519 key authorised for root, one per run, OpenSSH format, mode 0600. */
  readonly privateKeyPath: string;
  readonly privateKey: string;
  readonly publicKey: string;
  /** `SHA256:…` of the host's ed25519 host key, as `ssh-keygen -lf` prints it. */
  readonly hostKeyFingerprint: string;
  /** The host's public host keys (rsa, ecdsa, ed25519), one `type base64 comment` line each. */
  readonly hostKeys: readonly string[];
  /** known_hosts lines pinning the host keys to the address. */
  readonly knownHosts: string;
  /** The host's root filesystem as the control machine sees it (an overlay on the cached one). */
  readonly root: string;
  readonly netns: string;
  /** The control machine's end of the host's link (a veth interface). */
  readonly veth: string;
  /** The host's first process (sshd) in the control machine's process namespace. */
  readonly pid: number;
  /** Milliseconds spent in each step of createHost (`rootfs` includes starting the run). */
  readonly timings: Readonly<Record<'rootfs' | 'layout' | 'network' | 'keys' | 'sshd' | 'total', number>>;
  /**
   * Runs `sh -c command` inside the host: its network, mount, UTS, IPC and process
   * namespaces and its root, as root, as a command over SSH would (without a login shell).
   */
  exec(command: string, options?: ExecOptions): Promise<ExecResult>;
  /** exec that returns standard output and throws on a non-zero exit. */
  run(command: string, options?: ExecOptions): Promise<string>;
  /** Writes a file inside the host (paths resolve inside it, symlinks included). */
  writeFile(path: string, content: string, mode?: number): Promise<void>;
  readFile(path: string): Promise<string>;
  /**
   * apt-get install inside the host's root filesystem. The host has no route out, so apt
   * runs in the control machine's network namespace, chrooted into the host's files, with
   * package scripts kept from starting daemons (policy-rc.d); start services with exec.
   */
  installPackages(names: readonly string[]): Promise<void>;
  destroy(): Promise<void>;
}

/** Where hosts live during a run: one directory per run, one per host below it. */
export function hostsBase(): string {
  return process.env.PERSONA_HOSTS_DIR ?? '/tmp/persona-hosts';
}

const NETWORK = [10, 213] as const;
const RUN_ID = /^[0-9a-f]{8}$/;
const NAME = /^[a-z][a-z0-9-]{0,23}$/;
const INTERFACE = 'eth0';

interface RunState {
  readonly id: string;
  readonly dir: string;
  readonly privateKeyPath: string;
  readonly privateKey: string;
  readonly publicKey: string;
}

interface HostRecord {
  readonly name: string;
  readonly netns: string;
  readonly veth: string;
  readonly dir: string;
  child?: ChildProcess;
  pid?: number;
  destroyed: boolean;
}

let current: Promise<RunState> | undefined;
let currentId: string | undefined;
const hosts = new Map<string, HostRecord>();

function runState(): Promise<RunState> {
  if (!current) {
    current = startRun();
    current.catch(() => {
      current = undefined;
    });
  }
  return current;
}

async function startRun(): Promise<RunState> {
  if (process.getuid?.() !== 0) {
    throw new Error('test hosts need root: they are network namespaces, mounts and a real sshd');
  }
  await ensureTools({
    ip: 'iproute2',
    'ssh-keygen': 'openssh-client',
    ssh: 'openssh-client',
    nsenter: 'util-linux',
    flock: 'util-linux',
  });
  mkdirSync(hostsBase(), { recursive: true });
  cleanupStale();
  const id = randomBytes(4).toString('hex');
  const dir = join(hostsBase(), id);
  mkdirSync(dir, { mode: 0o700 });
  // Written before any namespace exists, so that a parallel run's cleanupStale() sees this
  // run as alive from its first namespace on.
  writeFileSync(join(dir, 'owner'), JSON.stringify({ pid: process.pid, start: startTime(process.pid) }));
  currentId = id;
  registerExitHandlers();
  const privateKeyPath = join(dir, 'id_ed25519');
  await runOk('ssh-keygen', [
    '-q',
    '-t',
    'ed25519',
    '-N',
    '',
    '-C',
    `persona-test-${id}`,
    '-f',
    privateKeyPath,
  ]);
  return {
    id,
    dir,
    privateKeyPath,
    privateKey: readFileSync(privateKeyPath, 'utf8'),
    publicKey: readFileSync(`${privateKeyPath}.pub`, 'utf8').trim(),
  };
}

export async function createHost(options: HostOptions): Promise<TestHost> {
  const { name } = options;
  if (!NAME.test(name)) throw new Error(`host name ${JSON.stringify(name)} must match ${NAME}`);
  if (hosts.has(name)) throw new Error(`host ${name} already exists in this run`);
  const started = Date.now();
  const runInfo = await runState();
  const netns = `persona-${runInfo.id}-${name}`;
  const record: HostRecord = {
    name,
    netns,
    // Interface names are at most 15 characters.
    veth: `pv${createHash('sha256').update(netns).digest('hex').slice(0, 10)}`,
    dir: join(runInfo.dir, name),
    destroyed: false,
  };
  hosts.set(name, record);
  try {
    const hostname = options.hostname ?? name;
    const root = join(record.dir, 'root');
    const rootfs = await ensureRootfs(options.packages ?? []);
    const tRootfs = Date.now();

    mkdirSync(record.dir, { mode: 0o700 });
    await layRootfs(rootfs, record.dir);
    const tCopy = Date.now();

    const link = await withLock(join(hostsBase(), '.network.lock'), () =>
      createLink(record, options.address),
    );
    const tNetwork = Date.now();

    writeInside(root, 'etc/hostname', `${hostname}\n`);
    writeInside(
      root,
      'etc/hosts',
      `127.0.0.1\tlocalhost\n${link.address}\t${hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n`,
    );
    writeInside(root, 'etc/machine-id', `${randomBytes(16).toString('hex')}\n`, 0o444);
    // Queries go to the control machine's end of the link, where nothing answers: a host
    // resolves nothing and reaches nothing beyond its own link.
    writeInside(root, 'etc/resolv.conf', `nameserver ${link.gateway}\n`);
    writeInside(
      root,
      'etc/ssh/sshd_config.d/persona-test.conf',
      `ListenAddress ${link.address}\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n`,
    );
    writeInside(root, 'root/.ssh/authorized_keys', `${runInfo.publicKey}\n`, 0o600);
    const hostKeys = await Promise.all(
      (['rsa', 'ecdsa', 'ed25519'] as const).map(async (type) => {
        const file = join(root, `etc/ssh/ssh_host_${type}_key`);
        const given = type === 'ed25519' ? options.ed25519HostKey : undefined;
        if (given) {
          writeInside(root, `etc/ssh/ssh_host_${type}_key`, given.privateKey, 0o600);
          writeInside(root, `etc/ssh/ssh_host_${type}_key.pub`, `${given.publicKey.trim()}\n`);
          return given.publicKey.trim();
        }
        await runOk('ssh-keygen', ['-q', '-t', type, '-N', '', '-C', `root@${hostname}`, '-f', file]);
        return readFileSync(`${file}.pub`, 'utf8').trim();
      }),
    );
    const fingerprint = (
      await runOk('ssh-keygen', ['-lf', join(root, 'etc/ssh/ssh_host_ed25519_key.pub')])
    ).split(' ')[1];
    if (!fingerprint?.startsWith('SHA256:')) throw new Error(`no fingerprint for ${name}'s host key`);
    const tKeys = Date.now();

    await startSshd(record, root, hostname, link.address);
    const tSshd = Date.now();

    const pid = record.pid as number;
    const exec = (command: string, opts: ExecOptions = {}) =>
      run(
        'setpriv',
        [
          ...CONFINED,
          'nsenter',
          `--target=${pid}`,
          '--net',
          '--mount',
          '--uts',
          '--ipc',
          '--pid',
          '--root',
          '--wd',
          '--',
          '/bin/sh',
          '-c',
          command,
        ],
        {
          env: systemEnv({ ...opts.env }),
          timeoutMs: opts.timeoutMs ?? 300_000,
          ...(opts.input === undefined ? {} : { input: opts.input }),
        },
      );
    const runInHost = async (command: string, opts: ExecOptions = {}) => {
      const result = await exec(command, opts);
      if (result.exitCode !== 0) {
        throw new Error(
          `${name}: ${command} exited ${result.exitCode}: ${result.stderr.trim() || result.stdout}`,
        );
      }
      return result.stdout;
    };
    const host: TestHost = {
      name,
      hostname,
      address: link.address,
      gateway: link.gateway,
      prefixLength: 30,
      interface: INTERFACE,
      port: 22,
      user: 'root',
      privateKeyPath: runInfo.privateKeyPath,
      privateKey: runInfo.privateKey,
      publicKey: runInfo.publicKey,
      hostKeyFingerprint: fingerprint,
      hostKeys,
      knownHosts: hostKeys
        .map((line) => `${link.address} ${line.split(' ').slice(0, 2).join(' ')}\n`)
        .join(''),
      root,
      netns,
      veth: record.veth,
      pid,
      timings: {
        rootfs: tRootfs - started,
        layout: tCopy - tRootfs,
        network: tNetwork - tCopy,
        keys: tKeys - tNetwork,
        sshd: tSshd - tKeys,
        total: tSshd - started,
      },
      exec,
      run: runInHost,
      async writeFile(path, content, mode = 0o644) {
        const q = shellQuote(path);
        await runInHost(
          `mkdir -p -- "$(dirname -- ${q})" && cat > ${q} && chmod -- ${mode.toString(8)} ${q}`,
          {
            input: content,
          },
        );
      },
      readFile: (path) => runInHost(`cat -- ${shellQuote(path)}`),
      installPackages: (names) => aptInstall(root, hostname, names),
      destroy: () => destroyRecord(record),
    };
    if (options.setup) await options.setup(host);
    return host;
  } catch (error) {
    teardown(record);
    throw error;
  }
}

/**
 * Gives the host its own writable copy of the cached root filesystem at `dir/root`: an
 * overlay whose upper layer takes the host's changes (instant, and a few MB per host; a
 * full copy of 200 MB took 1 to 15 s on a throttled disk), or a copy where overlayfs is
 * not available. The cache itself is never written after it is complete.
 */
async function layRootfs(rootfs: string, dir: string): Promise<void> {
  const root = join(dir, 'root');
  for (const sub of ['upper', 'work', 'root']) mkdirSync(join(dir, sub));
  const overlay = await run('mount', [
    '-t',
    'overlay',
    'overlay',
    '-o',
    `lowerdir=${rootfs},upperdir=${join(dir, 'upper')},workdir=${join(dir, 'work')}`,
    root,
  ]);
  if (overlay.exitCode === 0) return;
  await runOk('cp', ['-a', '--reflink=auto', `${rootfs}/.`, root]);
}

interface Link {
  readonly address: string;
  readonly gateway: string;
}

/** Picks the host's /30 and makes the namespace and the veth pair (under the network lock). */
async function createLink(record: HostRecord, requested: string | undefined): Promise<Link> {
  const taken = occupied();
  let block: number | undefined;
  let hostOffset = 2;
  if (requested !== undefined) {
    const ip = parseIp(requested);
    const offset = ip === undefined ? 0 : ip & 3;
    if (
      ip === undefined ||
      ip >>> 16 !== ((NETWORK[0] << 8) | NETWORK[1]) ||
      (offset !== 1 && offset !== 2)
    ) {
      throw new Error(
        `address ${requested} must be in ${NETWORK.join('.')}.0.0/16 and end in .1 or .2 of its /30`,
      );
    }
    block = ip - offset;
    hostOffset = offset;
    if (taken(block)) throw new Error(`address ${requested} is already in use on this machine`);
  } else {
    const first = ((NETWORK[0] << 24) | (NETWORK[1] << 16)) >>> 0;
    for (let b = first; b < first + 65536; b += 4) {
      if (!taken(b)) {
        block = b;
        break;
      }
    }
    if (block === undefined) throw new Error('no free /30 left for a test host');
  }
  const address = formatIp(block + hostOffset);
  const gateway = formatIp(block + 3 - hostOffset);
  const { netns, veth } = record;
  await runOk('ip', ['netns', 'add', netns]);
  await runOk('ip', ['link', 'add', veth, 'type', 'veth', 'peer', 'name', INTERFACE, 'netns', netns]);
  await runOk('ip', ['addr', 'add', `${gateway}/30`, 'dev', veth]);
  await runOk('ip', ['link', 'set', veth, 'up']);
  await runOk('ip', ['-n', netns, 'addr', 'add', `${address}/30`, 'dev', INTERFACE]);
  await runOk('ip', ['-n', netns, 'link', 'set', INTERFACE, 'up']);
  await runOk('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
  return { address, gateway };
}

/** A test for /30 blocks that overlap an address or a route the control machine already has. */
function occupied(): (block: number) => boolean {
  const ranges: Array<[number, number]> = [];
  const add = (cidr: string) => {
    const [ip, bits = '32'] = cidr.split('/');
    const start = ip === undefined ? undefined : parseIp(ip);
    const len = Number(bits);
    if (start === undefined || !(len >= 0 && len <= 32)) return;
    const size = 2 ** (32 - len);
    const base = Math.floor(start / size) * size;
    ranges.push([base, base + size - 1]);
  };
  for (const line of runSync('ip', ['-4', '-o', 'addr', 'show']).stdout.split('\n')) {
    const m = line.match(/\binet\s+(\d+\.\d+\.\d+\.\d+)/);
    if (m?.[1]) add(m[1]);
  }
  const types = new Set(['local', 'broadcast', 'unicast', 'blackhole', 'unreachable', 'prohibit', 'throw']);
  for (const line of runSync('ip', ['-4', 'route', 'show', 'table', 'all']).stdout.split('\n')) {
    const words = line.trim().split(/\s+/);
    const dest = types.has(words[0] ?? '') ? words[1] : words[0];
    if (dest && dest !== 'default') add(dest);
  }
  return (block) => ranges.some(([lo, hi]) => lo <= block + 3 && block <= hi);
}

function parseIp(text: string): number | undefined {
  const parts = text.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) return undefined;
  return parts.reduce((n, p) => n * 256 + p, 0);
}

function formatIp(n: number): string {
  return [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.');
}

const INIT = `R=$1; H=$2
hostname "$H"
mount -t proc -o nosuid,nodev,noexec proc "$R/proc"
mount --bind "$R/proc/sys" "$R/proc/sys"
mount --bind "$R/proc/sys/net" "$R/proc/sys/net"
mount -o remount,bind,ro "$R/proc/sys"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$R/sys"
mount -t tmpfs -o nosuid,nodev,mode=755 tmpfs "$R/run"
mkdir -p "$R/run/sshd" "$R/run/lock" "$R/dev/pts" "$R/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts "$R/dev/pts"
[ -e "$R/dev/ptmx" ] || : > "$R/dev/ptmx"
mount --bind "$R/dev/pts/ptmx" "$R/dev/ptmx"
mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs "$R/dev/shm"
exec chroot "$R" /usr/sbin/sshd -D -e`;

async function startSshd(record: HostRecord, root: string, hostname: string, address: string): Promise<void> {
  const logPath = join(record.dir, 'sshd.log');
  const log = openSync(logPath, 'a');
  const child = spawn(
    'setpriv',
    [
      // The host dies with the process that made it, even when that one is killed...
      '--pdeathsig',
      'KILL',
      '--',
      'ip',
      'netns',
      'exec',
      record.netns,
      'unshare',
      '--uts',
      '--ipc',
      '--mount',
      '--pid',
      '--propagation',
      'private',
      // ...and with unshare, the host's first process takes every other one along.
      '--kill-child',
      '--',
      'setpriv',
      ...CONFINED,
      'sh',
      '-euc',
      INIT,
      'init',
      root,
      hostname,
    ],
    { detached: true, stdio: ['ignore', log, log], env: systemEnv() },
  );
  closeSync(log);
  child.unref();
  record.child = child;
  const deadline = Date.now() + 30_000;
  const failed = () =>
    new Error(`sshd of ${record.name} did not start:\n${readFileSync(logPath, 'utf8').slice(-4000)}`);
  while (record.pid === undefined) {
    if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) throw failed();
    const pid = child.pid === undefined ? undefined : firstChild(child.pid);
    if (pid !== undefined) record.pid = pid;
    else await delay(10);
  }
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) throw failed();
    if (await answersSsh(address)) return;
    await delay(25);
  }
}

function firstChild(pid: number): number | undefined {
  try {
    const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
    return children ? Number(children.split(' ')[0]) : undefined;
  } catch {
    return undefined;
  }
}

/** Whether sshd accepts a TCP connection on the address and sends its banner. */
function answersSsh(address: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: address, port: 22, timeout: 1000 });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('data', (data) => done(data.toString().startsWith('SSH-')));
    socket.once('error', () => done(false));
    socket.once('timeout', () => done(false));
  });
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Writes a file of a root filesystem from the control machine, refusing a path through a
 * symlink: an absolute link would resolve against the control machine's own root.
 */
function writeInside(root: string, relative: string, content: string, mode = 0o644): void {
  let path = root;
  for (const part of relative.split('/')) {
    path = join(path, part);
    if (existsSync(path) && lstatSync(path).isSymbolicLink()) {
      throw new Error(`${relative} in ${root} goes through a symlink`);
    }
  }
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, content);
  chmodSync(path, mode);
}

async function destroyRecord(record: HostRecord): Promise<void> {
  const child = record.child;
  teardown(record);
  if (child && child.exitCode === null && child.signalCode === null) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 5000);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

/** Ends a host's processes and removes its namespace, veth pair and files. Idempotent. */
function teardown(record: HostRecord): void {
  if (record.destroyed) return;
  record.destroyed = true;
  const pids: number[] = [];
  if (record.child?.pid !== undefined) {
    killQuietly(-record.child.pid);
    pids.push(record.child.pid);
  }
  if (record.pid !== undefined) {
    killQuietly(record.pid);
    pids.push(record.pid);
  }
  // Processes that joined the namespace some other way (ip netns exec) are not in the
  // host's process namespace and outlive its first process.
  const strays = netnsPids(record.netns);
  for (const pid of strays) killQuietly(pid);
  waitGoneSync([...pids, ...strays], 5000);
  runSync('ip', ['link', 'del', record.veth]);
  if (netnsList().includes(record.netns)) runSync('ip', ['netns', 'del', record.netns]);
  removeTree(record.dir);
  hosts.delete(record.name);
}

/** Destroys every host of this run and removes the run's directory (its key included). */
export async function destroyAllHosts(): Promise<void> {
  const records = [...hosts.values()];
  await Promise.all(records.map(destroyRecord));
  endRun();
}

function endRun(): void {
  for (const record of [...hosts.values()]) teardown(record);
  if (currentId !== undefined) removeTree(join(hostsBase(), currentId));
  current = undefined;
  currentId = undefined;
}

let handlersRegistered = false;

function registerExitHandlers(): void {
  if (handlersRegistered) return;
  handlersRegistered = true;
  process.on('exit', () => {
    try {
      endRun();
    } catch {
      // Nothing more can be done at exit; the next run's cleanupStale() finishes the job.
    }
  });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = () => {
      try {
        endRun();
      } finally {
        process.removeListener(signal, onSignal);
        // Die of the signal as if no handler were there, unless someone else handles it.
        if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
      }
    };
    process.on(signal, onSignal);
  }
}

function runAlive(id: string): boolean {
  if (id === currentId) return true;
  try {
    const owner = JSON.parse(readFileSync(join(hostsBase(), id, 'owner'), 'utf8')) as {
      pid: number;
      start: string;
    };
    return isAlive(owner.pid) && startTime(owner.pid) === owner.start;
  } catch {
    return false;
  }
}

export interface StaleReport {
  readonly namespaces: readonly string[];
  readonly directories: readonly string[];
}

/**
 * Removes what runs that are no longer alive left behind (a run killed with SIGKILL, a
 * crashed machine): their namespaces with any process still in them, their mounts and
 * directories. Runs of live processes (parallel test files) are left alone. createHost
 * calls it once per run.
 */
export function cleanupStale(): StaleReport {
  const namespaces: string[] = [];
  const directories: string[] = [];
  for (const netns of netnsList()) {
    const id = netns.match(/^persona-([0-9a-f]{8})-/)?.[1];
    if (id === undefined || runAlive(id)) continue;
    const pids = netnsPids(netns);
    for (const pid of pids) killQuietly(pid);
    waitGoneSync(pids, 5000);
    runSync('ip', ['netns', 'del', netns]);
    namespaces.push(netns);
  }
  const base = hostsBase();
  if (existsSync(base)) {
    for (const entry of readdirSync(base)) {
      if (!RUN_ID.test(entry) || runAlive(entry)) continue;
      removeTree(join(base, entry));
      directories.push(entry);
    }
  }
  return { namespaces, directories };
}
