// package.install, package.upgrade and package.remove for apt/dpkg hosts, through the
// resolver: the Change's version is resolved against the target (core/resolver), and what the
// target's repositories cannot give — all of it, on a target with no route out — is fetched on
// the control side into Persona's package store and delivered over the transport. Removal is
// `apt-get remove`, refused when apt would take other packages with it (their revert is not
// this Change's). Before anything changes, the version the host has is made sure of in the
// store, so that revert can reinstall exactly it with the target offline; a package the Change
// installed where there was none is purged again (removed, when its configuration files were
// on the host before).
import type { Change } from '../../delta/changes.js';
import { InvalidInputError, NotFoundError } from '../../errors.js';
import type { Package } from '../../profile/schema.js';
import { apt, dpkgQueryCommand, parseDpkgQuery } from '../../resolver/apt.js';
import { deliverPackages, type Fetcher, fetchIntoStore } from '../../resolver/deliver.js';
import { commandFailed, type PackageSpec } from '../../resolver/manager.js';
import { assertResolvable, type MirrorLike, resolvePackages } from '../../resolver/resolve.js';
import type { PackageStore, StoredPackage } from '../../resolver/store.js';
import { displayValue, sh } from '../../transport/shell.js';
import type { Transport } from '../../transport/transport.js';
import { HostStateConflictError } from '../errors.js';
import { changed, type Executor, runOk, unchanged, unresolved } from './executor.js';

/** Where packages come from: Persona's store, and the mirror the control side reaches. */
export interface PackageSource {
  readonly store: PackageStore;
  readonly mirror?: MirrorLike & Fetcher;
  /** `offline` for targets with no route out (their lists may still name mirrors). Default `use`. */
  readonly targetRepositories?: 'use' | 'offline';
}

type PackageChange = Extract<Change, { section: 'packages' }>;

const APT_ENV = { DEBIAN_FRONTEND: 'noninteractive' } as const;

/** The package of the Change, its name and version checked by dpkg's grammar. */
function packageChange(change: Change): { c: PackageChange; pkg: Package; at: 'to' | 'from' } {
  if (change.section !== 'packages') throw new TypeError(`${change.kind} is not a package change`);
  const at = change.kind === 'package.remove' ? 'from' : 'to';
  const pkg = change[at];
  if (pkg === null) throw new TypeError(`${change.kind} carries no package`);
  if (pkg.manager === 'apt' || pkg.manager === 'dpkg') {
    apt.checkName(pkg.name, `${at}.name`);
    apt.checkVersion(pkg.version, `${at}.version`);
    if (pkg.arch !== undefined) apt.checkArch(pkg.arch, `${at}.arch`);
    if (pkg.name.includes(':')) {
      throw new InvalidInputError(`package ${displayValue(pkg.name)}: give its architecture as arch`, [
        { path: `${at}.name`, message: 'names an architecture; use the arch field' },
      ]);
    }
  }
  return { c: change, pkg, at };
}

/** What dpkg says of the package: the installed version, or whether its configuration files remain. */
interface DpkgState {
  readonly installed: PackageSpec | null;
  /** Removed but not purged: `rc`. */
  readonly configFiles: boolean;
}

async function dpkgState(transport: Transport, name: string): Promise<DpkgState> {
  const result = await transport.run(dpkgQueryCommand([name]));
  // 1: dpkg knows no such package, which is an answer.
  if (result.exitCode !== 0 && result.exitCode !== 1) throw commandFailed(transport, 'dpkg-query', result);
  const installed = parseDpkgQuery(result.stdout);
  const configFiles = result.stdout
    .split('\n')
    .some((l) => l.split('\t')[0] === name && (l.split('\t')[3] ?? '').slice(1, 2) === 'c');
  return { installed: installed.find((i) => i.name === name) ?? null, configFiles };
}

interface PackagePrior {
  readonly before: DpkgState;
  /** The store's copy of the version that was installed, which revert reinstalls. */
  readonly kept?: StoredPackage;
}

/** Makes sure the store holds the version, fetching it from the mirror when it does not. */
async function keepInStore(source: PackageSource, spec: PackageSpec): Promise<StoredPackage> {
  const versions = await source.store.versions('deb', spec.name);
  const have = versions.find((v) => v.version === spec.version && (v.arch === spec.arch || v.arch === 'all'));
  if (have) return have;
  if (source.mirror) {
    try {
      const { bytes, record } = await source.mirror.fetch(spec);
      return await source.store.put('deb', { ...spec, arch: record.arch }, bytes, record.sha256);
    } catch (cause) {
      throw new NotFoundError(
        `${spec.name} ${spec.version} (${spec.arch}), which the host has, could not be kept in ${source.store.location}, so a revert could not reinstall it: nothing was changed (${cause instanceof Error ? cause.message : String(cause)})`,
        `${spec.name}=${spec.version}`,
        { cause },
      );
    }
  }
  throw new NotFoundError(
    `${spec.name} ${spec.version} (${spec.arch}), which the host has, is not in ${source.store.location} and no mirror was given, so a revert could not reinstall it: nothing was changed`,
    `${spec.name}=${spec.version}`,
  );
}

/** The packages `apt-get remove` would take away, as its simulation says. */
async function wouldRemove(transport: Transport, name: string): Promise<string[]> {
  const { stdout } = await runOk(
    transport,
    `simulating the removal of ${name}`,
    sh`apt-get -s -q remove -- ${name}`,
  );
  return stdout
    .split('\n')
    .map((l) => /^Remv (\S+)/.exec(l)?.[1]?.split(':')[0])
    .filter((n): n is string => n !== undefined);
}

async function removePackage(transport: Transport, name: string, purge: boolean): Promise<void> {
  const others = (await wouldRemove(transport, name)).filter((n) => n !== name);
  if (others.length > 0) {
    throw new HostStateConflictError(
      `removing ${name} would also remove ${others.join(', ')}, which depend on it: nothing was removed`,
      'package.remove',
      name,
    );
  }
  const command = purge ? sh`apt-get purge -y -q -- ${name}` : sh`apt-get remove -y -q -- ${name}`;
  const result = await transport.run(command, { env: APT_ENV, timeoutMs: 600_000 });
  if (result.exitCode !== 0) throw commandFailed(transport, command, result);
}

/** Installs exactly the stored version from the store, over the transport. */
async function installStored(
  transport: Transport,
  source: PackageSource,
  entry: StoredPackage,
): Promise<void> {
  await deliverPackages(transport, 'deb', source.store, [entry]);
}

/** An executor for apt/dpkg packages that takes what it installs from `source`. */
export function packageExecutor(source: PackageSource): Executor {
  return {
    kinds: ['package.install', 'package.upgrade', 'package.remove'],

    async prepare(ctx, change) {
      const { c, pkg } = packageChange(change);
      if (pkg.manager !== 'apt' && pkg.manager !== 'dpkg')
        return { before: { installed: null, configFiles: false } };
      const before = await dpkgState(ctx.transport, pkg.name);
      const differs =
        before.installed !== null &&
        (c.kind === 'package.remove' || before.installed.version !== pkg.version);
      const prior: PackagePrior = {
        before,
        ...(differs && before.installed !== null
          ? { kept: await keepInStore(source, before.installed) }
          : {}),
      };
      return prior;
    },

    async apply(ctx, change) {
      const { c, pkg } = packageChange(change);
      if (pkg.manager !== 'apt' && pkg.manager !== 'dpkg') {
        return unresolved(`${pkg.name}: ${pkg.manager} packages are not installed by the apt executor`);
      }
      const now = await dpkgState(ctx.transport, pkg.name);
      if (c.kind === 'package.remove') {
        if (now.installed === null) return unchanged(`${pkg.name} is not installed`);
        await removePackage(ctx.transport, pkg.name, false);
        return changed(`${pkg.name} ${now.installed.version} removed`);
      }
      const [resolution] = await resolvePackages(
        [pkg],
        { target: ctx.transport, store: source.store, ...(source.mirror ? { mirror: source.mirror } : {}) },
        { targetRepositories: source.targetRepositories ?? 'use', family: 'deb' },
      );
      if (resolution === undefined) throw new TypeError('no resolution');
      assertResolvable([resolution]);
      if (resolution.status === 'installed')
        return unchanged(`${pkg.name} ${resolution.spec.version} is installed`);
      if (resolution.status === 'unresolvable') throw new TypeError('unresolvable after assertResolvable');
      // The nearest version, installed by an earlier apply: the same resolution finds it again.
      if (now.installed?.version === resolution.spec.version) {
        return unchanged(
          `${pkg.name} ${resolution.spec.version} is installed (${resolution.reason ?? 'nearest'})`,
        );
      }
      if (resolution.source === 'repository') {
        const command = sh`apt-get install -y -q --no-install-recommends --allow-downgrades -- ${`${pkg.name}=${resolution.spec.version}`}`;
        const result = await ctx.transport.run(command, { env: APT_ENV, timeoutMs: 600_000 });
        if (result.exitCode !== 0) throw commandFailed(ctx.transport, command, result);
      } else {
        const entries = await fetchIntoStore([resolution], {
          store: source.store,
          ...(source.mirror ? { mirror: source.mirror } : {}),
          family: 'deb',
        });
        await deliverPackages(ctx.transport, 'deb', source.store, entries);
      }
      const from = now.installed === null ? '' : ` (was ${now.installed.version})`;
      const why = resolution.status === 'nearest' ? `; ${resolution.reason}` : '';
      return changed(
        `${pkg.name} ${resolution.spec.version} installed from ${resolution.source}${from}${why}`,
      );
    },

    async revert(ctx, change, priorValue) {
      const { pkg } = packageChange(change);
      if (pkg.manager !== 'apt' && pkg.manager !== 'dpkg') return unchanged(`${pkg.name} was not changed`);
      const prior = priorValue as PackagePrior;
      const now = await dpkgState(ctx.transport, pkg.name);
      const was = prior.before.installed;
      if (was === null) {
        if (now.installed === null) return unchanged(`${pkg.name} is not installed, as before`);
        await removePackage(ctx.transport, pkg.name, !prior.before.configFiles);
        return changed(`${pkg.name} ${now.installed.version} removed again`);
      }
      if (now.installed?.version === was.version)
        return unchanged(`${pkg.name} ${was.version} is installed, as before`);
      if (prior.kept === undefined) {
        throw new HostStateConflictError(
          `no copy of ${pkg.name} ${was.version} was kept`,
          change.kind,
          pkg.name,
        );
      }
      // The prior is a journal document: the stored entry is read back from the store itself.
      const entry = await source.store.find('deb', {
        name: was.name,
        version: was.version,
        arch: prior.kept.arch,
      });
      if (entry === undefined || entry.sha256 !== prior.kept.sha256) {
        throw new NotFoundError(
          `${was.name} ${was.version} is no longer in ${source.store.location} as it was kept`,
          `${was.name}=${was.version}`,
        );
      }
      await installStored(ctx.transport, source, entry);
      return changed(`${pkg.name} ${was.version} reinstalled`);
    },
  };
}
