// The dependency resolver: every package of a Profile, against the target's package manager, to
// an exact artifact. The captured version where it can be had (already installed, in the
// target's repositories, in Persona's package store, or on the mirror the control machine
// reaches), else the nearest version by the manager's own ordering with the reason, else
// unresolvable with the reason. A plan holding an unresolvable package fails before any change
// (assertResolvable), naming every such package.
import { InvalidInputError, type Issue, isPersonaError, PersonaError } from '../errors.js';
import type { Package } from '../profile/schema.js';
import { displayValue } from '../transport/shell.js';
import type { Transport } from '../transport/transport.js';
import { apt } from './apt.js';
import { dnf } from './dnf.js';
import type { Available, Family, ManagerDriver, PackageSpec } from './manager.js';
import { commandFailed, targetFamily } from './manager.js';

export { targetFamily };

import type { PackageIndex } from './store.js';

export const DRIVERS: Readonly<Record<Family, ManagerDriver>> = { deb: apt, rpm: dnf };

export const familyOfManager = (manager: Package['manager']): Family | undefined =>
  Object.values(DRIVERS).find((d) => d.managers.includes(manager))?.family;

/** Where an artifact comes from, in the order the resolver prefers them. */
export const SOURCES = ['repository', 'store', 'mirror'] as const;
export type Source = (typeof SOURCES)[number];

const SOURCE_WORDS: Record<Source, string> = {
  repository: "the target's repositories",
  store: "Persona's package store",
  mirror: "the control machine's mirror",
};

interface Common {
  readonly package: Package;
  /** Where the package is in the input: `packages[3]`. */
  readonly field: string;
}

export type Resolution =
  | (Common & { readonly status: 'installed'; readonly spec: PackageSpec })
  | (Common & {
      readonly status: 'exact' | 'nearest';
      readonly spec: PackageSpec;
      readonly source: Source;
      /** The repository, the store's location or the mirror, as their manager names them. */
      readonly origin: string;
      /** What the target has now, when it has another version. */
      readonly installed?: string;
      /** Why not the captured version (nearest only). */
      readonly reason?: string;
    })
  | (Common & { readonly status: 'unresolvable'; readonly reason: string });

export interface MirrorLike {
  readonly family: Family;
  available(names: readonly string[]): Promise<readonly Available[]>;
}

export interface ResolveDeps {
  readonly target: Transport;
  readonly store?: PackageIndex;
  /** The control machine's view of the distribution's mirror (AptMirror). */
  readonly mirror?: MirrorLike;
}

export interface ResolveOptions {
  /**
   * `offline`: the target's repositories are not asked. For targets with no route out, whose
   * package lists may still name mirrors they cannot reach. Default `use`.
   */
  readonly targetRepositories?: 'use' | 'offline';
  /** Accept the nearest version when the captured one cannot be had. Default true. */
  readonly nearest?: boolean;
  /** The target's family, when the caller knows it; found on the target otherwise. */
  readonly family?: Family;
}

/** Some packages of the plan cannot be had in any version: nothing was changed. */
export class UnresolvablePackagesError extends PersonaError {
  readonly code = 'CONFLICT';
  constructor(readonly unresolved: readonly Extract<Resolution, { status: 'unresolvable' }>[]) {
    super(
      `${unresolved.length} package${unresolved.length === 1 ? '' : 's'} cannot be resolved, so the plan changes nothing: ${unresolved
        .map((r) => `${displayValue(r.package.name)} ${displayValue(r.package.version)} (${r.reason})`)
        .join('; ')}`,
    );
    this.name = 'UnresolvablePackagesError';
  }
  get issues(): Issue[] {
    return this.unresolved.map((r) => ({ path: r.field, message: r.reason }));
  }
}

export function assertResolvable(resolutions: readonly Resolution[]): void {
  const unresolved = resolutions.filter((r) => r.status === 'unresolvable');
  if (unresolved.length > 0) throw new UnresolvablePackagesError(unresolved);
}

interface Checked {
  readonly index: number;
  readonly pkg: Package;
  readonly name: string;
  readonly version: string;
  readonly arch: string | undefined;
}

/**
 * Checks every apt/dpkg and rpm/dnf/yum package against its family's grammar, and refuses the
 * whole input naming every bad field: a name or version off the grammar never reaches a host.
 */
export function checkPackages(packages: readonly Package[], field = 'packages'): void {
  const issues: Issue[] = [];
  packages.forEach((pkg, i) => {
    const family = familyOfManager(pkg.manager);
    if (!family) return;
    const driver = DRIVERS[family];
    const at = `${field}[${i}]`;
    for (const [key, check] of [
      ['name', () => driver.checkName(pkg.name, `${at}.name`)],
      ['version', () => driver.checkVersion(pkg.version, `${at}.version`)],
      ['arch', () => pkg.arch !== undefined && driver.checkArch(pkg.arch, `${at}.arch`)],
    ] as const) {
      try {
        check();
      } catch (e) {
        if (!(e instanceof InvalidInputError)) throw e;
        issues.push(...(e.issues.length > 0 ? e.issues : [{ path: `${at}.${key}`, message: e.message }]));
      }
    }
  });
  if (issues.length > 0) {
    throw new InvalidInputError(
      `${issues.length} package field${issues.length === 1 ? '' : 's'} not of the package manager's grammar: ${issues
        .map((i) => i.path)
        .join(', ')}`,
      issues,
    );
  }
}

/**
 * Resolves the packages on the target. Reads only: nothing on the target or in the store
 * changes. Bad names or versions are refused (InvalidInputError naming each field) before any
 * command is sent.
 */
export async function resolvePackages(
  packages: readonly Package[],
  deps: ResolveDeps,
  options: ResolveOptions = {},
): Promise<Resolution[]> {
  checkPackages(packages);
  const family = options.family ?? (await targetFamily(deps.target));
  const unresolvable = (pkg: Package, index: number, reason: string): Resolution => ({
    status: 'unresolvable',
    package: pkg,
    field: `packages[${index}]`,
    reason,
  });
  if (!family) {
    return packages.map((p, i) => unresolvable(p, i, `${deps.target.target} has neither dpkg nor rpm`));
  }
  const driver = DRIVERS[family];
  const results: (Resolution | undefined)[] = [];
  const mine: Checked[] = [];
  packages.forEach((pkg, index) => {
    const own = familyOfManager(pkg.manager);
    if (own !== family) {
      results[index] = unresolvable(
        pkg,
        index,
        own
          ? `a ${own}-family package (${pkg.manager}), and ${deps.target.target} has ${family === 'deb' ? 'dpkg' : 'rpm'}`
          : `${pkg.manager} packages are not resolved against a system package manager`,
      );
      return;
    }
    const { name, arch } = driver.checkName(pkg.name, `packages[${index}].name`);
    mine.push({ index, pkg, name, version: pkg.version, arch: pkg.arch ?? arch });
  });
  if (mine.length > 0) {
    const native = await nativeArch(deps.target, driver);
    const names = [...new Set(mine.map((m) => m.name))].sort();
    const useRepositories = (options.targetRepositories ?? 'use') === 'use';
    const { mirror: control, store } = deps;
    const [installed, repository, mirror, storedAll] = await Promise.all([
      inBatches(names, (some) => driver.installed(deps.target, some)),
      useRepositories ? inBatches(names, (some) => driver.available(deps.target, some)) : [],
      control && control.family === family ? inBatches(names, (some) => control.available(some)) : [],
      store ? store.versionsOf(family, names) : [],
    ]);
    // The index is a document in a bucket: an entry off the grammar is no candidate.
    const stored = storedAll.filter((s) => isValid(() => driver.checkVersion(s.version, 'version')));
    const candidates: Candidate[] = [
      ...repository.map((a) => ({ ...a, source: 'repository' as const })),
      ...stored.map((s) => ({
        name: s.name,
        version: s.version,
        arch: s.arch,
        origin: deps.store?.location ?? '',
        source: 'store' as const,
      })),
      ...mirror.map((a) => ({ ...a, source: 'mirror' as const })),
    ];
    const looked = [
      ...(useRepositories ? [SOURCE_WORDS.repository] : []),
      ...(deps.store ? [SOURCE_WORDS.store] : []),
      ...(deps.mirror && deps.mirror.family === family ? [SOURCE_WORDS.mirror] : []),
    ];
    for (const m of mine) {
      results[m.index] = resolveOne(
        m,
        driver,
        native,
        installed,
        candidates,
        looked,
        options.nearest ?? true,
      );
    }
  }
  return results.map((r, i) => r ?? unresolvable(packages[i] as Package, i, 'not resolved'));
}

// Command lines stay far below the longest a host runs (COMMAND_MAX_BYTES) however many
// packages a Profile has.
const BATCH = 500;

async function inBatches<T>(
  names: readonly string[],
  ask: (some: readonly string[]) => Promise<readonly T[]>,
) {
  const out: T[] = [];
  for (let i = 0; i < names.length; i += BATCH) out.push(...(await ask(names.slice(i, i + BATCH))));
  return out;
}

const isValid = (check: () => unknown): boolean => {
  try {
    check();
    return true;
  } catch {
    return false;
  }
};

interface Candidate extends Available {
  readonly source: Source;
}

async function nativeArch(target: Transport, driver: ManagerDriver): Promise<string> {
  const result = await target.run(driver.nativeArchCommand);
  const arch = result.stdout.trim();
  if (result.exitCode !== 0) throw commandFailed(target, driver.nativeArchCommand, result);
  try {
    return driver.checkArch(arch, 'native architecture');
  } catch (cause) {
    if (isPersonaError(cause)) throw commandFailed(target, driver.nativeArchCommand, result);
    throw cause;
  }
}

function resolveOne(
  m: Checked,
  driver: ManagerDriver,
  native: string,
  installed: readonly PackageSpec[],
  candidates: readonly Candidate[],
  looked: readonly string[],
  allowNearest: boolean,
): Resolution {
  const field = `packages[${m.index}]`;
  const wantedArch = m.arch ?? native;
  // A package for any architecture (all, noarch) installs anywhere; and a repository lists an
  // arch-independent package under the native architecture's index.
  const fits = (arch: string) =>
    arch === wantedArch ||
    arch === driver.neutralArch ||
    (wantedArch === driver.neutralArch && arch === native);
  const same = (a: string, b: string) => driver.compare(a, b) === 0;
  const here = installed.filter((i) => i.name === m.name && fits(i.arch));
  const current = here.find((i) => same(i.version, m.version));
  if (current) return { status: 'installed', package: m.pkg, field, spec: current };
  const other = here[0]?.version;
  const mineOnly = candidates.filter((c) => c.name === m.name && fits(c.arch));
  const pick = (version: string) =>
    [...mineOnly.filter((c) => same(c.version, version))].sort(
      (a, b) => SOURCES.indexOf(a.source) - SOURCES.indexOf(b.source),
    )[0];
  const exact = pick(m.version);
  const base = (c: Candidate) => ({
    package: m.pkg,
    field,
    spec: { name: m.name, version: c.version, arch: c.arch },
    source: c.source,
    origin: c.origin,
    ...(other === undefined ? {} : { installed: other }),
  });
  if (exact) return { status: 'exact', ...base(exact) };
  const where = looked.length > 0 ? looked.join(', ') : 'nowhere (no source was given)';
  const versions = [...new Set(mineOnly.map((c) => c.version))].sort(driver.compare);
  if (versions.length === 0) {
    return {
      status: 'unresolvable',
      package: m.pkg,
      field,
      reason: `no version of ${m.name} for ${wantedArch} in ${where}`,
    };
  }
  if (!allowNearest) {
    return {
      status: 'unresolvable',
      package: m.pkg,
      field,
      reason: `${m.version} is not in ${where}, which have ${versions.join(', ')}; nearest versions are not accepted`,
    };
  }
  // Newer before older: the nearest newer version is the captured one plus fixes (a patch
  // release, a rebuild), where an older one would take fixes away.
  const newer = versions.find((v) => driver.compare(v, m.version) > 0);
  const chosen = newer ?? (versions.at(-1) as string);
  const candidate = pick(chosen) as Candidate;
  return {
    status: 'nearest',
    ...base(candidate),
    reason: `${m.version} is not in ${where}; ${chosen} is the nearest ${newer ? 'newer' : 'older'} version, ${driver.distance(m.version, chosen)} (of ${versions.join(', ')})`,
  };
}
