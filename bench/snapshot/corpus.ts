// The corpus of the snapshot benchmark: a Debian root filesystem built once with debootstrap
// (or, where that cannot run, a synthetic tree of the same shape), and the seeded mutations
// that turn one version of it into the next the way a host changes between two snapshots.
import { spawnSync } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import * as fs from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { type Rng, rng } from '../rng.js';

export const CACHE_DIR = process.env.PERSONA_BENCH_CACHE ?? '/var/cache/persona-bench';
const SUITE = 'bookworm';
const DEFAULT_MIRROR = 'http://deb.debian.org/debian';

export interface Corpus {
  readonly dir: string;
  readonly kind: 'debootstrap' | 'synthetic';
  /** How it was made, and why it is synthetic when it is. */
  readonly note: string;
}

const sh = (command: string, args: readonly string[], options: { cwd?: string; input?: Buffer } = {}) =>
  spawnSync(command, args, {
    encoding: 'buffer',
    maxBuffer: 1024 * 1024 * 1024,
    ...(options.cwd ? { cwd: options.cwd } : {}),
    ...(options.input ? { input: options.input } : {}),
  });

const why = (run: ReturnType<typeof sh>) =>
  run.error
    ? run.error.message
    : `exit ${run.status}: ${run.stderr.toString().trim().split('\n').slice(-3).join(' / ')}`;

/**
 * The Debian mirror the machine's apt uses for the main suite: debootstrap and package
 * downloads go there and nowhere else.
 */
export function debianMirror(): string {
  const texts: string[] = [];
  for (const file of ['/etc/apt/sources.list']) if (existsSync(file)) texts.push(readFileSync(file, 'utf8'));
  if (existsSync('/etc/apt/sources.list.d'))
    for (const name of readdirSync('/etc/apt/sources.list.d').sort())
      if (name.endsWith('.sources') || name.endsWith('.list'))
        texts.push(readFileSync(join('/etc/apt/sources.list.d', name), 'utf8'));
  for (const text of texts) {
    // deb822: a stanza whose Suites name the plain suite.
    for (const stanza of text.split(/\n\s*\n/)) {
      const uri = /^URIs:\s*(\S+)/m.exec(stanza)?.[1];
      const suites = /^Suites:\s*(.+)$/m.exec(stanza)?.[1]?.split(/\s+/) ?? [];
      if (uri && suites.includes(SUITE) && /^Types:.*\bdeb\b/m.test(stanza)) return uri.replace(/\/$/, '');
    }
    // One-line format: deb [options] uri suite components
    for (const line of text.split('\n')) {
      const m = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)/.exec(line.trim());
      if (m?.[1] && m[2] === SUITE) return m[1].replace(/\/$/, '');
    }
  }
  return DEFAULT_MIRROR;
}

/** The cached root filesystem, built on first use. */
export function ensureCorpus(log: (line: string) => void): Corpus {
  mkdirSync(CACHE_DIR, { recursive: true });
  const rootfs = join(CACHE_DIR, `${SUITE}-minbase`);
  const mirror = debianMirror();
  // The directory gets its final name only once debootstrap has succeeded: if it exists, it is whole.
  if (existsSync(rootfs))
    return {
      dir: rootfs,
      kind: 'debootstrap',
      note: `\`debootstrap --variant=minbase ${SUITE}\` from ${mirror}, cached in ${rootfs}`,
    };
  let reason: string;
  if (process.getuid?.() !== 0) reason = 'debootstrap needs root';
  else if (sh('debootstrap', ['--version']).error) reason = 'debootstrap is not installed';
  else {
    const partial = `${rootfs}.partial`;
    rmSync(partial, { recursive: true, force: true });
    log(`debootstrap --variant=minbase ${SUITE} ${partial} ${mirror} (once; cached afterwards)`);
    const run = sh('debootstrap', ['--variant=minbase', SUITE, partial, mirror]);
    if (run.status === 0) {
      renameSync(partial, rootfs);
      return {
        dir: rootfs,
        kind: 'debootstrap',
        note: `\`debootstrap --variant=minbase ${SUITE}\` from ${mirror}, built in this run, cached in ${rootfs}`,
      };
    }
    rmSync(partial, { recursive: true, force: true });
    reason = `debootstrap failed (${why(run)})`;
  }
  const synthetic = join(CACHE_DIR, 'synthetic-rootfs');
  if (!existsSync(synthetic)) {
    log(`${reason}: generating a synthetic tree of the same shape instead`);
    const partial = `${synthetic}.partial`;
    rmSync(partial, { recursive: true, force: true });
    syntheticRootfs(partial);
    renameSync(partial, synthetic);
  }
  return {
    dir: synthetic,
    kind: 'synthetic',
    note: `SYNTHETIC corpus (${reason}): many small text files, binaries, a few large libraries and compressed archives, cached in ${synthetic}`,
  };
}

// ---------------------------------------------------------------- packages

/**
 * What each later version installs: real Debian packages that minbase lacks, a few MB each
 * version, as a host gains tools over its life.
 */
export const PACKAGE_GROUPS: readonly (readonly string[])[] = [
  ['less', 'file', 'libmagic1', 'libmagic-mgc', 'nano'],
  ['procps', 'iproute2', 'libbpf1', 'libelf1', 'libmnl0', 'libcap2-bin'],
  ['curl', 'libcurl4', 'libnghttp2-14', 'libssh2-1', 'librtmp1', 'libpsl5', 'ca-certificates'],
  ['openssh-client'],
  ['python3.11-minimal', 'libpython3.11-minimal'],
  ['rsync', 'xz-utils', 'jq', 'libjq1', 'libonig5'],
  ['openssl', 'wget'],
  ['cron', 'logrotate', 'sudo'],
  ['vim-tiny', 'bash-completion', 'iputils-ping', 'netbase'],
];

/**
 * The .deb files of PACKAGE_GROUPS, downloaded once from the Debian mirror with apt (using the
 * machine's package lists, restricted to that mirror); undefined when they cannot be had.
 */
export function ensurePackages(log: (line: string) => void): { debs: string[][]; note: string } | undefined {
  const dir = join(CACHE_DIR, 'debs');
  const have = () => (existsSync(dir) ? readdirSync(dir).filter((n) => n.endsWith('.deb')) : []);
  const wanted = PACKAGE_GROUPS.flat();
  const find = (pkg: string) => have().find((n) => n.startsWith(`${pkg}_`));
  if (wanted.some((p) => !find(p))) {
    if (sh('apt-get', ['--version']).error || sh('dpkg-deb', ['--version']).error) return undefined;
    const mirror = debianMirror();
    const apt = join(CACHE_DIR, 'apt');
    mkdirSync(join(apt, 'parts'), { recursive: true });
    mkdirSync(join(apt, 'cache', 'archives', 'partial'), { recursive: true });
    mkdirSync(dir, { recursive: true });
    const keyring = '/usr/share/keyrings/debian-archive-keyring.gpg';
    writeFileSync(
      join(apt, 'sources.list'),
      `deb ${existsSync(keyring) ? `[signed-by=${keyring}] ` : ''}${mirror} ${SUITE} main\n`,
    );
    const options = [
      '-o',
      `Dir::Etc::SourceList=${join(apt, 'sources.list')}`,
      '-o',
      `Dir::Etc::SourceParts=${join(apt, 'parts')}`,
      '-o',
      `Dir::Cache=${join(apt, 'cache')}`,
      '-o',
      'APT::Sandbox::User=root',
    ];
    const missing = wanted.filter((p) => !find(p));
    log(`apt-get download ${missing.join(' ')} (from ${mirror}; once, cached in ${dir})`);
    let run = sh('apt-get', [...options, 'download', ...missing], { cwd: dir });
    if (run.status !== 0) {
      // No package lists for that mirror on this machine yet: fetch them into the private cache.
      const lists = join(apt, 'lists');
      mkdirSync(join(lists, 'partial'), { recursive: true });
      const own = [...options, '-o', `Dir::State::Lists=${lists}`];
      const update = sh('apt-get', [...own, 'update']);
      run = update.status === 0 ? sh('apt-get', [...own, 'download', ...missing], { cwd: dir }) : update;
    }
    if (run.status !== 0 || wanted.some((p) => !find(p))) {
      log(`could not download the packages (${why(run)}): versions get synthetic packages instead`);
      return undefined;
    }
  }
  return {
    debs: PACKAGE_GROUPS.map((group) => group.map((p) => join(dir, find(p) as string))),
    note: `${wanted.length} real .deb packages from ${debianMirror()}, cached in ${dir}`,
  };
}

// ---------------------------------------------------------------- walking

interface Walked {
  readonly rel: string;
  readonly size: number;
  readonly isFile: boolean;
}

function walkFiles(root: string, under = ''): Walked[] {
  const out: Walked[] = [];
  const visit = (rel: string) => {
    let names: string[];
    try {
      names = readdirSync(join(root, rel)).sort();
    } catch {
      return;
    }
    for (const name of names) {
      const r = rel === '' ? name : `${rel}/${name}`;
      const s = lstatSync(join(root, r));
      if (s.isDirectory()) visit(r);
      else out.push({ rel: r, size: s.size, isFile: s.isFile() });
    }
  };
  visit(under);
  return out;
}

const isText = (bytes: Buffer) => !bytes.subarray(0, 1024).includes(0);
const isElf = (path: string) => {
  try {
    const b = readFileSync(path).subarray(0, 4);
    return b.toString('latin1') === '\x7fELF';
  } catch {
    return false;
  }
};

/** Deterministic pseudo-random bytes: AES-CTR of zeros under a key made of the seed. */
function noise(seed: string, length: number): Buffer {
  const key = createHash('sha256').update(seed).digest();
  return createCipheriv('aes-256-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(length));
}

const WORDS =
  'the of and to in is for on with by at from as be this that are or not default enable disable port host user group file path config value option server client timeout log level error warning info debug cache size limit max min true false yes no allow deny listen address interface route table rule service start stop restart reload'.split(
    ' ',
  );

function text(r: Rng, bytes: number): string {
  const lines: string[] = [];
  let n = 0;
  while (n < bytes) {
    const line =
      r.next() < 0.2
        ? `# ${Array.from({ length: r.int(3, 12) }, () => r.pick(WORDS)).join(' ')}`
        : `${r.pick(WORDS)}_${r.pick(WORDS)} = ${r.next() < 0.5 ? r.int(0, 65535) : r.pick(WORDS)}`;
    lines.push(line);
    n += line.length + 1;
  }
  return `${lines.join('\n')}\n`;
}

// ---------------------------------------------------------------- synthetic corpus

/**
 * A tree shaped like a minimal Debian root filesystem (≈ 220 MB, ≈ 5 000 files): many small
 * text files, binaries that compress about 2:1, a few large libraries, compressed archives
 * that do not compress, symlinks and empty log files.
 */
function syntheticRootfs(root: string): void {
  const r = rng(424242);
  const put = (rel: string, data: string | Buffer) => {
    mkdirSync(dirname(join(root, rel)), { recursive: true });
    writeFileSync(join(root, rel), data);
  };
  // Machine code is neither random nor text: random runs between repeated instruction-like patterns.
  const binary = (seed: string, size: number) => {
    const out = Buffer.alloc(size);
    const raw = noise(seed, size);
    let i = 0;
    while (i < size) {
      const run = Math.min(size - i, 64 + (raw[i] ?? 0) * 4);
      if (((raw[i] ?? 0) & 1) === 0) raw.copy(out, i, i, i + run);
      else for (let j = 0; j < run; j++) out[i + j] = (j * 7 + (raw[i] ?? 0)) & 0xff;
      i += run;
    }
    out.write('\x7fELF', 0, 'latin1');
    return out;
  };
  const packages = Array.from({ length: 110 }, (_, i) => `pkg${i}-${r.pick(WORDS)}`);
  for (const p of packages) {
    for (let i = 0; i < r.int(10, 60); i++)
      put(`usr/share/doc/${p}/file${i}.txt`, text(r, r.int(200, 12000)));
    for (let i = 0; i < r.int(0, 6); i++)
      put(`usr/share/man/man1/${p}-${i}.1.gz`, noise(`${p}m${i}`, r.int(500, 8000)));
  }
  for (let i = 0; i < 700; i++) put(`etc/${r.pick(packages)}/conf${i}.conf`, text(r, r.int(100, 6000)));
  for (let i = 0; i < 650; i++) put(`usr/bin/bin${i}`, binary(`b${i}`, r.int(8_000, 260_000)));
  for (let i = 0; i < 200; i++)
    put(`usr/lib/x86_64-linux-gnu/lib${i}.so.1`, binary(`l${i}`, r.int(20_000, 400_000)));
  for (let i = 0; i < 12; i++)
    put(`usr/lib/x86_64-linux-gnu/libbig${i}.so.3`, binary(`big${i}`, r.int(2_000_000, 6_000_000)));
  for (let i = 0; i < 30; i++)
    put(`var/cache/apt/archives/p${i}.deb`, noise(`deb${i}`, r.int(200_000, 2_000_000)));
  put('var/lib/dpkg/status', text(r, 400_000));
  for (const p of packages) put(`var/lib/dpkg/info/${p}.list`, text(r, r.int(200, 4000)));
  for (const log of ['dpkg.log', 'alternatives.log', 'bootstrap.log']) put(`var/log/${log}`, text(r, 50_000));
  for (let i = 0; i < 600; i++) {
    const link = join(root, `usr/bin/alias${i}`);
    symlinkSync(`bin${r.int(0, 649)}`, link);
  }
  chmodSync(join(root, 'usr/bin/bin0'), 0o4755);
}

// ---------------------------------------------------------------- mutations

export interface MutationSummary {
  installed: string[];
  addedFiles: number;
  addedBytes: number;
  upgraded: number;
  edited: number;
  appendedBytes: number;
  deleted: number;
  touched: number;
  chmodded: number;
  rotated: boolean;
  aptClean: boolean;
}

const stamp = (version: number, minute: number) =>
  `2025-06-${String(version).padStart(2, '0')} 10:${String(minute % 60).padStart(2, '0')}:00`;

function syslogLines(r: Rng, version: number, bytes: number): string {
  const daemons = ['systemd[1]', 'cron[412]', 'sshd[3021]', 'kernel', 'dhclient[377]', 'rsyslogd[301]'];
  const lines: string[] = [];
  let n = 0;
  let second = 0;
  while (n < bytes) {
    second += r.int(0, 20);
    const t = `Jun ${String(version).padStart(2, ' ')} ${String(Math.floor(second / 3600) % 24).padStart(2, '0')}:${String(Math.floor(second / 60) % 60).padStart(2, '0')}:${String(second % 60).padStart(2, '0')}`;
    const line = `${t} host ${r.pick(daemons)}: ${Array.from({ length: r.int(4, 14) }, () => r.pick(WORDS)).join(' ')} id=${r.hex(8)}`;
    lines.push(line);
    n += line.length + 1;
  }
  return `${lines.join('\n')}\n`;
}

async function appendTo(root: string, rel: string, data: string): Promise<number> {
  mkdirSync(dirname(join(root, rel)), { recursive: true });
  await fs.appendFile(join(root, rel), data);
  return Buffer.byteLength(data);
}

/** Installs one .deb the way dpkg leaves it: files, status stanza, file list, md5sums, logs. */
function installDeb(
  root: string,
  deb: string,
  version: number,
  minute: number,
): { files: number; bytes: number; name: string; log: string } {
  const listing = sh('dpkg-deb', ['--fsys-tarfile', deb]);
  if (listing.status !== 0) throw new Error(`cannot read ${deb}: ${why(listing)}`);
  const names = sh('tar', ['-t'], { input: listing.stdout })
    .stdout.toString()
    .split('\n')
    .filter((l) => l.length > 0 && l !== './')
    .map((l) => l.replace(/^\.\//, '').replace(/\/$/, ''));
  const fresh = names.filter((n) => !existsSync(join(root, n)));
  // Through tar so that bookworm's merged /usr (bin -> usr/bin) stays a symlink.
  const run = sh('tar', ['-x', '--keep-directory-symlink', '--no-same-owner', '-C', root], {
    input: listing.stdout,
  });
  if (run.status !== 0) throw new Error(`cannot unpack ${deb}: ${why(run)}`);
  const fields = sh('dpkg-deb', ['-f', deb]).stdout.toString();
  const name = /^Package:\s*(\S+)/m.exec(fields)?.[1] ?? basename(deb);
  const pkgVersion = /^Version:\s*(\S+)/m.exec(fields)?.[1] ?? '0';
  const stanza = fields.replace(/^(Package:.*)$/m, '$1\nStatus: install ok installed').trimEnd();
  const status = join(root, 'var/lib/dpkg/status');
  writeFileSync(status, `${readFileSync(status, 'utf8').trimEnd()}\n\n${stanza}\n`);
  writeFileSync(
    join(root, `var/lib/dpkg/info/${name}.list`),
    `/.\n${names.map((n) => `/${n}`).join('\n')}\n`,
  );
  const md5 = sh('dpkg-deb', ['-I', deb, 'md5sums']);
  if (md5.status === 0) writeFileSync(join(root, `var/lib/dpkg/info/${name}.md5sums`), md5.stdout);
  // apt keeps what it downloaded until `apt-get clean`.
  mkdirSync(join(root, 'var/cache/apt/archives'), { recursive: true });
  copyFileSync(deb, join(root, 'var/cache/apt/archives', basename(deb)));
  let files = 0;
  let bytes = 0;
  for (const n of fresh) {
    const s = lstatSync(join(root, n), { throwIfNoEntry: false });
    if (s?.isFile()) {
      files++;
      bytes += s.size;
    }
  }
  const log =
    `${stamp(version, minute)} install ${name}:amd64 <none> ${pkgVersion}\n` +
    `${stamp(version, minute)} status half-installed ${name}:amd64 ${pkgVersion}\n` +
    `${stamp(version, minute)} status unpacked ${name}:amd64 ${pkgVersion}\n` +
    `${stamp(version, minute + 1)} configure ${name}:amd64 ${pkgVersion} <none>\n` +
    `${stamp(version, minute + 1)} status installed ${name}:amd64 ${pkgVersion}\n`;
  return { files, bytes, name, log };
}

/** Without real packages: a package's worth of binaries made from existing ones, plus docs. */
function installSynthetic(
  root: string,
  r: Rng,
  version: number,
): { files: number; bytes: number; name: string } {
  const name = `bench-tool-${version}`;
  const binaries = walkFiles(root, 'usr/bin').filter((w) => w.isFile && w.size > 20_000);
  let files = 0;
  let bytes = 0;
  for (const [i, source] of r.sample(binaries, 6).entries()) {
    const data = Buffer.from(readFileSync(join(root, source.rel)));
    for (let k = 0; k < 40; k++) data[r.int(0, data.length - 1)] = r.int(0, 255);
    const rel = `usr/lib/${name}/${name}-${i}`;
    mkdirSync(dirname(join(root, rel)), { recursive: true });
    writeFileSync(join(root, rel), data, { mode: 0o755 });
    files++;
    bytes += data.length;
  }
  for (let i = 0; i < 20; i++) {
    const data = text(r, r.int(500, 20_000));
    const rel = `usr/share/doc/${name}/doc${i}.txt`;
    mkdirSync(dirname(join(root, rel)), { recursive: true });
    writeFileSync(join(root, rel), data);
    files++;
    bytes += data.length;
  }
  return { files, bytes, name };
}

/**
 * Turns the tree into its next version, in place (as a host changes between two snapshots, so
 * that unchanged files keep their inode and ctime). Seeded: the same corpus and version give
 * the same changes.
 */
export async function mutate(
  root: string,
  version: number,
  seed: number,
  debs: string[][] | undefined,
): Promise<MutationSummary> {
  const r = rng(seed * 1000 + version);
  const summary: MutationSummary = {
    installed: [],
    addedFiles: 0,
    addedBytes: 0,
    upgraded: 0,
    edited: 0,
    appendedBytes: 0,
    deleted: 0,
    touched: 0,
    chmodded: 0,
    rotated: false,
    aptClean: false,
  };
  const abs = (rel: string) => join(root, rel);

  // 1. Packages installed.
  let dpkgLog = '';
  const group = debs?.[(version - 2) % (debs?.length || 1)];
  if (group) {
    for (const [i, deb] of group.entries()) {
      const done = installDeb(root, deb, version, i * 2);
      summary.installed.push(done.name);
      summary.addedFiles += done.files;
      summary.addedBytes += done.bytes;
      dpkgLog += done.log;
    }
  } else {
    const done = installSynthetic(root, r, version);
    summary.installed.push(done.name);
    summary.addedFiles += done.files;
    summary.addedBytes += done.bytes;
    dpkgLog += `${stamp(version, 0)} install ${done.name}:amd64 <none> 1.0-${version}\n`;
  }
  summary.appendedBytes += await appendTo(root, 'var/log/dpkg.log', dpkgLog);
  summary.appendedBytes += await appendTo(
    root,
    'var/log/apt/history.log',
    `\nStart-Date: ${stamp(version, 0)}\nCommandline: apt-get install ${summary.installed.join(' ')}\n` +
      `Install: ${summary.installed.map((p) => `${p}:amd64`).join(', ')}\nEnd-Date: ${stamp(version, 5)}\n`,
  );

  // 2. Security updates: a couple of shared libraries or binaries rebuilt, which shifts their
  // bytes (insertions) and changes scattered ones; dpkg writes the new file and renames it.
  const elves = walkFiles(root, 'usr/lib/x86_64-linux-gnu')
    .concat(walkFiles(root, 'usr/bin'))
    .filter((w) => w.isFile && w.size > 100_000 && isElf(abs(w.rel)));
  for (const target of r.sample(elves, 2)) {
    let data = Buffer.from(readFileSync(abs(target.rel)));
    for (let k = 0; k < 3; k++) {
      const at = r.int(0, data.length);
      data = Buffer.concat([
        data.subarray(0, at),
        noise(`${target.rel}${version}${k}`, r.int(16, 4096)),
        data.subarray(at),
      ]);
    }
    for (let k = 0; k < 30; k++) data[r.int(0, data.length - 1)] = r.int(0, 255);
    const mode = statSync(abs(target.rel)).mode & 0o7777;
    writeFileSync(`${abs(target.rel)}.dpkg-new`, data, { mode });
    renameSync(`${abs(target.rel)}.dpkg-new`, abs(target.rel));
    summary.upgraded++;
  }

  // 3. Configuration edited in place: a line changed here, a setting appended there.
  const configs = walkFiles(root, 'etc').filter((w) => w.isFile && w.size > 0 && w.size < 64 * 1024);
  for (const c of r.sample(configs, 8)) {
    const bytes = readFileSync(abs(c.rel));
    if (!isText(bytes)) continue;
    const lines = bytes.toString('utf8').split('\n');
    if (r.chance(0.5) && lines.length > 1) {
      const at = r.int(0, lines.length - 2);
      lines[at] = `# changed in version ${version}: ${lines[at] ?? ''}`;
      lines.splice(at + 1, 0, `${r.pick(WORDS)}_${r.pick(WORDS)} = ${r.int(0, 9999)}`);
    } else
      lines.splice(lines.length - 1, 0, `# added in version ${version}`, `${r.pick(WORDS)} = ${r.hex(8)}`);
    writeFileSync(abs(c.rel), lines.join('\n'));
    summary.edited++;
  }
  // debconf rewrites its database on every install.
  const debconf = 'var/cache/debconf/config.dat';
  if (existsSync(abs(debconf))) {
    summary.appendedBytes += await appendTo(
      root,
      debconf,
      summary.installed.map((p) => `Name: ${p}/seen\nTemplate: ${p}/seen\nOwners: ${p}\n\n`).join(''),
    );
    summary.edited++;
  }

  // 4. Logs grow; at version 6 they are rotated, at version 9 the old one is compressed.
  if (version === 6 || version === 9) {
    if (version === 9 && existsSync(abs('var/log/syslog.1'))) {
      writeFileSync(
        abs('var/log/syslog.2.gz'),
        gzipSync(readFileSync(abs('var/log/syslog.1')), { level: 6 }),
      );
      rmSync(abs('var/log/syslog.1'));
    }
    if (existsSync(abs('var/log/syslog'))) renameSync(abs('var/log/syslog'), abs('var/log/syslog.1'));
    summary.rotated = true;
  }
  summary.appendedBytes += await appendTo(
    root,
    'var/log/syslog',
    syslogLines(r, version, r.int(150_000, 400_000)),
  );
  summary.appendedBytes += await appendTo(
    root,
    'var/log/auth.log',
    syslogLines(r, version, r.int(5_000, 20_000)),
  );
  summary.appendedBytes += await appendTo(
    root,
    'var/log/alternatives.log',
    `update-alternatives ${stamp(version, 3)}: run with --install /usr/bin/editor editor /bin/nano 40\n`,
  );

  // 5. Files deleted: documentation and locales trimmed; at version 7, `apt-get clean`.
  const trimmable = walkFiles(root, 'usr/share/doc')
    .concat(walkFiles(root, 'usr/share/man'), walkFiles(root, 'usr/share/locale'))
    .filter((w) => w.isFile);
  for (const d of r.sample(trimmable, 20)) {
    rmSync(abs(d.rel), { force: true });
    summary.deleted++;
  }
  if (version === 7) {
    for (const w of walkFiles(root, 'var/cache/apt/archives'))
      if (w.rel.endsWith('.deb')) {
        rmSync(abs(w.rel));
        summary.deleted++;
      }
    summary.aptClean = true;
  }

  // 6. Metadata only: files touched (same content, new mtime) and permissions changed.
  const all = walkFiles(root).filter((w) => w.isFile);
  const when = new Date(Date.UTC(2025, 5, version, 12, 0, 0));
  for (const t of r.sample(all, 12)) {
    utimesSync(abs(t.rel), when, when);
    summary.touched++;
  }
  for (const t of r.sample(
    configs.filter((c) => existsSync(abs(c.rel))),
    3,
  )) {
    chmodSync(abs(t.rel), (statSync(abs(t.rel)).mode & 0o7777) ^ 0o020);
    summary.chmodded++;
  }
  return summary;
}

// ---------------------------------------------------------------- comparing trees

export interface TreeDigest {
  readonly entries: number;
  readonly files: number;
  readonly dirs: number;
  readonly symlinks: number;
  readonly others: number;
  readonly bytes: number;
  /** Paths, types, sizes, file contents (SHA-256), link targets and device numbers. */
  readonly content: string;
  /** Modes, owners and file/directory mtimes (whole seconds), and which files are hard links. */
  readonly metadata: string;
  /** One line per entry for each digest: what to show when two trees differ. */
  readonly contentLines: string[];
  readonly metadataLines: string[];
}

/** A digest of a tree that restores are compared with. Sockets are left out: no tool keeps them. */
export async function digestTree(root: string): Promise<TreeDigest> {
  const contentLines: string[] = [];
  const metadataLines: string[] = [];
  let files = 0;
  let dirs = 0;
  let symlinks = 0;
  let others = 0;
  let bytes = 0;
  const visit = async (rel: string) => {
    const names = (await fs.readdir(join(root, rel))).sort((a, b) =>
      Buffer.compare(Buffer.from(a), Buffer.from(b)),
    );
    for (const name of names) {
      const r = rel === '' ? name : `${rel}/${name}`;
      const path = join(root, r);
      const s = await fs.lstat(path);
      if (s.isSocket()) continue;
      const meta = `${r}\t${(s.mode & 0o7777).toString(8)}\t${s.uid}:${s.gid}`;
      if (s.isFile()) {
        files++;
        bytes += s.size;
        const hash = createHash('sha256')
          .update(await fs.readFile(path))
          .digest('hex');
        contentLines.push(`${r}\tfile\t${s.size}\t${hash}`);
        metadataLines.push(`${meta}\t${Math.floor(s.mtimeMs / 1000)}\t${s.nlink > 1 ? 'linked' : ''}`);
      } else if (s.isDirectory()) {
        dirs++;
        contentLines.push(`${r}\tdir`);
        metadataLines.push(`${meta}\t${Math.floor(s.mtimeMs / 1000)}`);
        await visit(r);
      } else if (s.isSymbolicLink()) {
        symlinks++;
        contentLines.push(`${r}\tsymlink\t${await fs.readlink(path)}`);
        metadataLines.push(`${r}\tsymlink\t${s.uid}:${s.gid}`);
      } else {
        others++;
        const type = s.isCharacterDevice() ? 'char' : s.isBlockDevice() ? 'block' : 'fifo';
        contentLines.push(`${r}\t${type}\t${s.rdev}`);
        metadataLines.push(`${meta}\t${Math.floor(s.mtimeMs / 1000)}`);
      }
    }
  };
  await visit('');
  // The root's own mode and mtime are the restore target's, not the snapshot's: left out.
  const hash = (lines: string[]) => createHash('sha256').update(lines.join('\n')).digest('hex');
  return {
    entries: contentLines.length,
    files,
    dirs,
    symlinks,
    others,
    bytes,
    content: hash(contentLines),
    metadata: hash(metadataLines),
    contentLines,
    metadataLines,
  };
}

/** The first few lines that differ between two trees' digests, for the report. */
export function firstDifferences(a: readonly string[], b: readonly string[], limit = 3): string[] {
  const left = new Set(a);
  const right = new Set(b);
  const out: string[] = [];
  for (const line of a) if (!right.has(line) && out.length < limit) out.push(`source: ${line}`);
  for (const line of b) if (!left.has(line) && out.length < limit * 2) out.push(`restored: ${line}`);
  return out;
}

/** Concatenated file contents of a tree, in path order, up to `limit` bytes: real data to time kernels on. */
export function sampleData(root: string, limit: number): { data: Buffer; files: Buffer[] } {
  const files: Buffer[] = [];
  let total = 0;
  for (const w of walkFiles(root)) {
    if (!w.isFile || w.size === 0) continue;
    if (total >= limit) break;
    const bytes = readFileSync(join(root, w.rel));
    files.push(bytes);
    total += bytes.length;
  }
  const data = Buffer.alloc(limit);
  let at = 0;
  // Repeated when the tree holds less than `limit`.
  while (at < limit && total > 0)
    for (const f of files) {
      if (at >= limit) break;
      at += f.copy(data, at);
    }
  return { data, files };
}
