// What rpm and dnf say about packages on a RHEL-family target, and the commands that ask them.
// Names and versions reach a command line through `sh`, after `--`, once they passed the RPM
// grammar (rpm.ts); what comes back is parsed as data and checked against the same grammar.
import { sh } from '../transport/shell.js';
import type { Available, Installed, ManagerDriver } from './manager.js';
import { commandFailed } from './manager.js';
import { checkRpmArch, checkRpmName, compareRpmVersions, formatEvr, parseEvr, rpmvercmp } from './rpm.js';

// The same spelling as the capture records (`[epoch:]version-release`), so that a version read
// from a target compares with the Profile's as text too.
export const rpmQueryCommand = (names: readonly string[]): string =>
  sh`rpm -q --queryformat '%{NAME}\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\t%{ARCH}\n' -- ${names}`;

/** Lines of rpmQueryCommand; `package x is not installed` and anything off the grammar are dropped. */
export function parseRpmQuery(stdout: string): Installed[] {
  const out: Installed[] = [];
  for (const line of stdout.split('\n')) {
    const [name = '', version = '', arch = ''] = line.split('\t');
    const checked = check(name, version, arch);
    if (checked) out.push(checked);
  }
  return out;
}

export const dnfListCommand = (names: readonly string[]): string =>
  sh`dnf list --showduplicates --available --quiet -- ${names}`;

/**
 * `dnf list --showduplicates` lines: `name.arch  [epoch:]version-release  repo`. dnf wraps a
 * long `name.arch` onto a line of its own with the rest indented below it; headers
 * (`Available Packages`) and installed entries (repo `@System`, `@anaconda`) are dropped.
 */
export function parseDnfList(stdout: string): Available[] {
  const out: Available[] = [];
  const rows: string[][] = [];
  let pending: string | undefined;
  for (const line of stdout.split('\n')) {
    const words = line.trim().split(/\s+/).filter(Boolean);
    if (words.length === 1 && !/^\s/.test(line)) {
      pending = words[0];
      continue;
    }
    if (words.length === 2 && pending !== undefined && /^\s/.test(line)) rows.push([pending, ...words]);
    else if (words.length === 3) rows.push(words);
    pending = undefined;
  }
  for (const [nameArch = '', evr = '', repo = ''] of rows) {
    if (repo.startsWith('@')) continue;
    const dot = nameArch.lastIndexOf('.');
    if (dot <= 0) continue;
    const checked = check(nameArch.slice(0, dot), evr, nameArch.slice(dot + 1));
    if (checked) out.push({ ...checked, origin: repo });
  }
  return out;
}

function check(name: string, version: string, arch: string): Installed | undefined {
  try {
    checkRpmName(name, 'name');
    checkRpmArch(arch, 'arch');
    const evr = parseEvr(version);
    if (evr.release === undefined) return undefined;
    return { name, version: formatEvr(evr), arch };
  } catch {
    return undefined;
  }
}

/** Installs the files alone: no repository is asked, so a target with no route out installs them. */
export const dnfInstallCommand = (files: readonly string[]): string =>
  sh`dnf install -y --disablerepo='*' -- ${files}`;

/**
 * dnf where the target has it (it installs an exact file whatever version is installed, an
 * older one too); rpm alone elsewhere (a minimal image, RHEL 7 without dnf), where
 * `--oldpackage` lets a revert put an older version back. Both take the files together, and
 * both refuse before any change when a dependency is missing from the host and the files.
 */
export const rpmInstallCommand = (_dir: string, files: readonly string[]): string =>
  [
    'if command -v dnf >/dev/null 2>&1; then',
    `  ${dnfInstallCommand(files)}`,
    'else',
    `  ${sh`rpm -U --oldpackage -- ${files}`}`,
    'fi',
  ].join('\n');

export const dnf: ManagerDriver = {
  family: 'rpm',
  managers: ['rpm', 'dnf', 'yum'],
  extension: 'rpm',
  neutralArch: 'noarch',
  checkName: (value, field) => ({ name: checkRpmName(value, field) }),
  checkVersion: (value, field) => {
    parseEvr(value, field);
    return value;
  },
  checkArch: checkRpmArch,
  compare: compareRpmVersions,
  distance: (a, b) => {
    const [va, vb] = [parseEvr(a), parseEvr(b)];
    if (va.epoch !== vb.epoch) return 'another epoch';
    return rpmvercmp(va.version, vb.version) === 0 ? 'the same version, another release' : 'another version';
  },
  nativeArchCommand: "rpm --eval '%{_arch}'",
  async installed(transport, names) {
    const result = await transport.run(rpmQueryCommand(names));
    // rpm -q exits with the number of names that are not installed: that is an answer.
    if (result.exitCode !== 0 && !/is not installed/.test(result.stdout)) {
      throw commandFailed(transport, 'rpm -q', result);
    }
    return parseRpmQuery(result.stdout);
  },
  async available(transport, names) {
    const result = await transport.run(dnfListCommand(names));
    // 127: no dnf at all (rpm alone), so no repository the target could install from.
    if (result.exitCode === 127) return [];
    // 1 with "No matching Packages": none of the names is available, an answer too.
    if (result.exitCode !== 0 && !/No matching Packages/i.test(result.stderr + result.stdout)) {
      throw commandFailed(transport, 'dnf list', result);
    }
    return parseDnfList(result.stdout);
  },
  installCommand: rpmInstallCommand,
  installEnv: {},
};
