// What dpkg and apt say about packages, on a target or on the control machine, and the commands
// that ask them. Every name and version reaches a command line through `sh`, after `--`, and
// only once it passed the Debian grammar (debian.ts); what comes back is parsed as data.
import { createHash } from 'node:crypto';
import { sh } from '../transport/shell.js';
import type { Transport } from '../transport/transport.js';
import {
  checkDebianArch,
  checkDebianName,
  compareDebianVersions,
  isDebianVersion,
  parseDebianVersion,
} from './debian.js';
import {
  type Available,
  commandFailed,
  type Installed,
  type ManagerDriver,
  type PackageSpec,
  PackageVerificationError,
} from './manager.js';

/** `dpkg-query -W` of the names: one line per package dpkg knows, found or not. */
export const dpkgQueryCommand = (names: readonly string[]): string =>
  sh`dpkg-query -W -f='\${Package}\t\${Version}\t\${Architecture}\t\${db:Status-Abbrev}\n' -- ${names}`;

/**
 * Lines of `dpkg-query -W` as dpkgQueryCommand asks for them. Only installed packages count
 * (status `?i`); lines that are not of the grammar (a host could print anything) are dropped.
 */
export function parseDpkgQuery(stdout: string): Installed[] {
  const out: Installed[] = [];
  for (const line of stdout.split('\n')) {
    const [name = '', version = '', arch = '', status = ''] = line.split('\t');
    if (status[1] !== 'i' || !isDebianVersion(version) || !isName(name) || !isArch(arch)) continue;
    out.push({ name, version, arch });
  }
  return out;
}

export const aptMadisonCommand = (names: readonly string[]): string => sh`apt-cache madison -- ${names}`;

/**
 * `apt-cache madison` lines: `name | version | origin suite/component arch Packages`. Source
 * package lines (`Sources`) are not installable and are dropped.
 */
export function parseMadison(stdout: string): Available[] {
  const out: Available[] = [];
  for (const line of stdout.split('\n')) {
    const fields = line.split('|').map((f) => f.trim());
    if (fields.length !== 3) continue;
    const [name = '', version = '', origin = ''] = fields;
    const words = origin.split(/\s+/);
    if (words.at(-1) !== 'Packages') continue;
    const arch = words.at(-2) ?? '';
    if (!isName(name) || !isDebianVersion(version) || !isArch(arch)) continue;
    out.push({ name, version, arch, origin: words.slice(0, -2).join(' ') });
  }
  return out;
}

/** The index record of one version: what `apt-get download` must produce, byte for byte. */
export interface AptRecord {
  readonly name: string;
  readonly version: string;
  readonly arch: string;
  readonly sha256: string;
  readonly size: number;
}

export const aptShowCommand = (spec: string): string => sh`apt-cache show --no-all-versions -- ${spec}`;

/** The first stanza of `apt-cache show`, or undefined when it lacks what verification needs. */
export function parseAptShow(stdout: string): AptRecord | undefined {
  const stanza = stdout.split(/\n\s*\n/)[0] ?? '';
  const field = (key: string) => new RegExp(`^${key}: *(.*)$`, 'm').exec(stanza)?.[1]?.trim();
  const name = field('Package') ?? '';
  const version = field('Version') ?? '';
  const arch = field('Architecture') ?? '';
  const sha256 = field('SHA256') ?? '';
  const size = Number(field('Size'));
  if (!isName(name) || !isDebianVersion(version) || !isArch(arch)) return undefined;
  if (!/^[0-9a-f]{64}$/.test(sha256) || !Number.isSafeInteger(size) || size <= 0) return undefined;
  return { name, version, arch, sha256, size };
}

const isName = (value: string) => {
  try {
    checkDebianName(value, 'name');
    return !value.includes(':');
  } catch {
    return false;
  }
};
const isArch = (value: string) => /^[a-z0-9][a-z0-9-]*$/.test(value) && value.length <= 64;

/** The apt spelling of a version of a package for one architecture: `name:arch=version`. */
export function aptSpec(spec: PackageSpec, nativeArch: string): string {
  const qualified = spec.arch === nativeArch || spec.arch === 'all' ? spec.name : `${spec.name}:${spec.arch}`;
  return `${qualified}=${spec.version}`;
}

// Existing configuration files stay as they are (the snapshot restores the captured ones), and
// nothing asks a question: there is no terminal to answer it.
const CONFFILES = '-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold';

/**
 * Installs the files together, so that packages depending on each other all configure. apt-get
 * where the target has it, with an empty source list of its own in `dir`: apt then knows no
 * repository, checks every dependency against what is installed and the files alone, and
 * refuses before dpkg unpacks anything when one is missing, where `dpkg -i` would leave the
 * package unpacked and unconfigured (and apt with its repositories would fetch what the plan
 * did not name). dpkg alone on a host without apt.
 */
export const debInstallCommand = (dir: string, files: readonly string[]): string =>
  [
    'if command -v apt-get >/dev/null 2>&1; then',
    `  ${sh`mkdir -p -- ${`${dir}/sources.list.d`}`} && ${sh`touch -- ${`${dir}/sources.list`}`} &&`,
    `  ${sh`apt-get install -y -q --allow-downgrades -o ${`Dir::Etc::SourceList=${dir}/sources.list`} -o ${`Dir::Etc::SourceParts=${dir}/sources.list.d`}`} ${CONFFILES} ${sh`-- ${files}`}`,
    'else',
    `  ${sh`dpkg --force-confdef --force-confold -i -- ${files}`}`,
    'fi',
  ].join('\n');

export const apt: ManagerDriver = {
  family: 'deb',
  managers: ['apt', 'dpkg'],
  extension: 'deb',
  neutralArch: 'all',
  checkName: (value, field) => checkDebianName(value, field),
  checkVersion: (value, field) => {
    parseDebianVersion(value, field);
    return value;
  },
  checkArch: checkDebianArch,
  compare: compareDebianVersions,
  distance: (a, b) => {
    const [va, vb] = [parseDebianVersion(a), parseDebianVersion(b)];
    if (va.epoch !== vb.epoch) return 'another epoch';
    return va.upstream === vb.upstream
      ? 'the same upstream version, another Debian revision'
      : 'another upstream version';
  },
  nativeArchCommand: 'dpkg --print-architecture',
  async installed(transport, names) {
    const result = await transport.run(dpkgQueryCommand(names));
    // 1: some of the names are unknown to dpkg, which is an answer, not a failure.
    if (result.exitCode !== 0 && result.exitCode !== 1) throw commandFailed(transport, 'dpkg-query', result);
    return parseDpkgQuery(result.stdout);
  },
  async available(transport, names) {
    const result = await transport.run(aptMadisonCommand(names));
    if (result.exitCode !== 0) throw commandFailed(transport, 'apt-cache madison', result);
    return parseMadison(result.stdout);
  },
  installCommand: debInstallCommand,
  installEnv: { DEBIAN_FRONTEND: 'noninteractive' },
};

/**
 * Debian's mirror as the control machine's apt reaches it: what versions it has, and a verified
 * copy of one of them. The control machine is a Transport (usually LocalTransport), so the same
 * code could fetch through another host that reaches the mirror.
 */
export class AptMirror {
  readonly family = 'deb' as const;
  private native: Promise<string> | undefined;

  constructor(private readonly control: Transport) {}

  async available(names: readonly string[]): Promise<Available[]> {
    return apt.available(this.control, names);
  }

  private nativeArch(): Promise<string> {
    this.native ??= this.control.run(apt.nativeArchCommand).then((r) => {
      const arch = r.stdout.trim();
      if (r.exitCode !== 0 || !isArch(arch))
        throw commandFailed(this.control, 'dpkg --print-architecture', r);
      return arch;
    });
    return this.native;
  }

  /**
   * Downloads the version into a temporary directory of the control machine and returns its
   * bytes, verified as apt verifies them: the SHA-256 and size the Packages index gives
   * (`apt-cache show`), and the package's own control fields naming that package and version.
   */
  async fetch(spec: PackageSpec): Promise<{ readonly bytes: Uint8Array; readonly record: AptRecord }> {
    // A saved plan is a document: its specs pass the grammar again before reaching a command.
    checkDebianName(spec.name, 'spec.name');
    parseDebianVersion(spec.version, 'spec.version');
    checkDebianArch(spec.arch, 'spec.arch');
    const wanted = aptSpec(spec, await this.nativeArch());
    const shown = await this.control.run(aptShowCommand(wanted));
    const record = shown.exitCode === 0 ? parseAptShow(shown.stdout) : undefined;
    if (!record) throw commandFailed(this.control, `apt-cache show ${wanted}`, shown);
    const made = await this.control.run('mktemp -d');
    const dir = made.stdout.trim();
    if (made.exitCode !== 0 || !dir.startsWith('/')) throw commandFailed(this.control, 'mktemp -d', made);
    try {
      const download = await this.control.run(
        `cd ${sh`${dir}`} && ${sh`apt-get download -q -- ${wanted}`} >&2 && ls -1`,
        { timeoutMs: 300_000 },
      );
      const files = download.stdout.split('\n').filter(Boolean);
      if (
        download.exitCode !== 0 ||
        files.length !== 1 ||
        !/^[A-Za-z0-9_.+~%-]+\.deb$/.test(files[0] ?? '')
      ) {
        throw commandFailed(this.control, `apt-get download ${wanted}`, download);
      }
      const file = `${dir}/${files[0]}`;
      const bytes = await this.control.getFile(file);
      const sha256 = createHash('sha256').update(bytes).digest('hex');
      if (sha256 !== record.sha256 || bytes.length !== record.size) {
        throw new PackageVerificationError(
          `${wanted} from ${this.control.target} has SHA-256 ${sha256} (${bytes.length} bytes); the Packages index says ${record.sha256} (${record.size} bytes)`,
          spec.name,
        );
      }
      const fields = await this.control.run(sh`dpkg-deb -f -- ${file} Package Version Architecture`);
      const control = Object.fromEntries(
        fields.stdout
          .split('\n')
          .map((l) => /^(\w+): (.*)$/.exec(l))
          .filter((m) => m !== null)
          .map((m) => [m[1], m[2]]),
      );
      if (
        fields.exitCode !== 0 ||
        control.Package !== spec.name ||
        control.Version !== spec.version ||
        control.Architecture !== record.arch
      ) {
        throw new PackageVerificationError(
          `${wanted} downloaded from ${this.control.target} is not that package: its control fields say ${JSON.stringify(control)}`,
          spec.name,
        );
      }
      return { bytes, record };
    } finally {
      await this.control.run(sh`rm -rf -- ${dir}`).catch(() => undefined);
    }
  }
}
