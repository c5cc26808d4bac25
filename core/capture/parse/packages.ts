// Installed packages, from whichever package database the host has: dpkg, rpm or apk.
import type { z } from 'zod';
import { Package } from '../../profile/schema.js';
import { lines } from '../sections.js';
import type { ParseContext } from './context.js';

type PackageInput = z.input<typeof Package>;
type Manager = PackageInput['manager'];

const MANAGERS = new Set<string>(Package.shape.manager.options);

export interface Packages {
  readonly packages: PackageInput[];
  /** The manager that installs system software here (apt, dnf, apk, ...), for runtimes. */
  readonly manager: Manager | undefined;
}

export function parsePackages(ctx: ParseContext): Packages {
  const section = ctx.section('packages');
  const part = section?.parts.find((p) => p.header !== '');
  if (!part) return { packages: [], manager: undefined };
  const [format, declared] = part.header.split(' ');
  const manager = declared !== undefined && MANAGERS.has(declared) ? (declared as Manager) : undefined;
  if (manager === undefined) {
    ctx.unknown('packages', `unrecognised package manager "${part.header}"`);
    return { packages: [], manager: undefined };
  }
  const found: PackageInput[] = [];
  for (const line of lines(part.text)) {
    const entry =
      format === 'dpkg' ? dpkgLine(line, manager) : format === 'rpm' ? rpmLine(line, manager) : apkLine(line);
    if (entry) found.push(entry);
  }
  // The same package twice is an rpm host with two kernels (or two versions of a multilib
  // package) installed side by side: the later ones are named name-version, which is how rpm
  // itself would install them.
  const names = new Set<string>();
  const unique = found.map((p) => {
    if (!names.has(p.name)) {
      names.add(p.name);
      return p;
    }
    return { ...p, name: `${p.name}-${p.version}` };
  });
  return {
    packages: ctx.keep('packages', Package, unique, (p) => `${p.manager}:${p.name}`, 'package'),
    manager,
  };
}

// name, version, architecture, status (e.g. "ii ", "hi ", "rc "). Only installed packages
// (second letter "i") are listed; "rc" packages were removed and only their configuration
// remains. The first letter "h" is a hold.
function dpkgLine(line: string, manager: Manager): PackageInput | undefined {
  const [name, version, arch, status = 'ii'] = line.split('\t');
  if (!name || !version || status[1] !== 'i') return undefined;
  return {
    name,
    version,
    manager,
    ...(arch ? { arch } : {}),
    ...(status[0] === 'h' ? { hold: true } : {}),
  };
}

function rpmLine(line: string, manager: Manager): PackageInput | undefined {
  const [name, version, arch] = line.split('\t');
  // gpg-pubkey entries are imported signing keys, not software.
  if (!name || !version || name === 'gpg-pubkey') return undefined;
  return { name, version, manager, ...(arch && arch !== '(none)' ? { arch } : {}) };
}

// `apk info -v` prints name-version-rN; the version starts at the last dash followed by a digit
// that still leaves a -rN release suffix.
function apkLine(line: string): PackageInput | undefined {
  const m = /^(.+?)-(\d[^-]*-r\d+)$/.exec(line.trim());
  if (!m?.[1] || !m[2]) return undefined;
  return { name: m[1], version: m[2], manager: 'apk' };
}
