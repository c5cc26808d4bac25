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
import { changed, type Executor, type ExecutorContext, runOk, unchanged, unresolved } from './executor.js';

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
  /**
   * Packages of the same Delta installed with this one (packages that depend on one another
   * configure together), each with what the host had of it: revert puts all of them back.
   */
  readonly companions?: readonly {
    readonly pkg: Package;
    readonly before: DpkgState;
    readonly kept?: StoredPackage;
  }[];
}

const isApt = (pkg: Package) => pkg.manager === 'apt' || pkg.manager === 'dpkg';

/** The apt packages the later Changes of the Delta install or upgrade: they go in with this one. */
function companionsOf(ctx: ExecutorContext, change: Change): Package[] {
  if (change.kind !== 'package.install' && change.kind !== 'package.upgrade') return [];
  const out: Package[] = [];
  for (const later of ctx.following ?? []) {
    if (later.kind !== 'package.install' && later.kind !== 'package.upgrade') continue;
    const { pkg } = packageChange(later);
    if (isApt(pkg) && !out.some((p) => p.name === pkg.name)) out.push(pkg);
  }
  return out;
}

/** What the host had of a package, and a copy of an installed version that will be replaced. */
async function priorOf(
  ctx: ExecutorContext,
  source: PackageSource,
  pkg: Package,
  removing: boolean,
): Promise<{ before: DpkgState; kept?: StoredPackage }> {
  const before = await dpkgState(ctx.transport, pkg.name);
  const differs = before.installed !== null && (removing || before.installed.version !== pkg.version);
  return {
    before,
    ...(differs && before.installed !== null ? { kept: await keepInStore(source, before.installed) } : {}),
  };
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

/** Removes packages together (they may depend on one another), refusing to take others with them. */
async function removePackages(
  transport: Transport,
  packages: readonly { readonly name: string; readonly purge: boolean }[],
): Promise<void> {
  if (packages.length === 1) {
    const [only] = packages;
    if (only) await removePackage(transport, only.name, only.purge);
    return;
  }
  const names = packages.map((p) => p.name);
  const { stdout } = await runOk(
    transport,
    `simulating the removal of ${names.join(', ')}`,
    sh`apt-get -s -q remove -- ${names}`,
  );
  const others = stdout
    .split('\n')
    .map((l) => /^Remv (\S+)/.exec(l)?.[1]?.split(':')[0])
    .filter((n): n is string => n !== undefined && !names.includes(n));
  if (others.length > 0) {
    throw new HostStateConflictError(
      `removing ${names.join(', ')} would also remove ${others.join(', ')}, which depend on them: nothing was removed`,
      'package.remove',
      names.join(','),
    );
  }
  // apt's `name+`/`name-` suffixes are not used: each package is named alone after `--`.
  const purge = packages.filter((p) => p.purge).map((p) => p.name);
  const keep = packages.filter((p) => !p.purge).map((p) => p.name);
  for (const [verb, list] of [
    ['purge', purge],
    ['remove', keep],
  ] as const) {
    if (list.length === 0) continue;
    const command =
      verb === 'purge' ? sh`apt-get purge -y -q -- ${list}` : sh`apt-get remove -y -q -- ${list}`;
    const result = await transport.run(command, { env: APT_ENV, timeoutMs: 600_000 });
    if (result.exitCode !== 0) throw commandFailed(transport, command, result);
  }
}

/** An executor for apt/dpkg packages that takes what it installs from `source`. */
export function packageExecutor(source: PackageSource): Executor {
  return {
    kinds: ['package.install', 'package.upgrade', 'package.remove'],

    async prepare(ctx, change) {
      const { c, pkg } = packageChange(change);
      if (!isApt(pkg)) return { before: { installed: null, configFiles: false } };
      const own = await priorOf(ctx, source, pkg, c.kind === 'package.remove');
      const companions = [];
      for (const other of companionsOf(ctx, change))
        companions.push({ pkg: other, ...(await priorOf(ctx, source, other, false)) });
      const prior: PackagePrior = { ...own, ...(companions.length > 0 ? { companions } : {}) };
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
      // This package and the later ones of the Delta it may need, resolved and installed together.
      const companions = companionsOf(ctx, change);
      const resolutions = await resolvePackages(
        [pkg, ...companions],
        { target: ctx.transport, store: source.store, ...(source.mirror ? { mirror: source.mirror } : {}) },
        { targetRepositories: source.targetRepositories ?? 'use', family: 'deb' },
      );
      const resolution = resolutions[0];
      if (resolution === undefined) throw new TypeError('no resolution');
      assertResolvable(resolutions);
      if (resolution.status === 'unresolvable') throw new TypeError('unresolvable after assertResolvable');
      const wanted: Exclude<(typeof resolutions)[number], { status: 'unresolvable' }>[] = [];
      for (const r of resolutions) {
        if (r.status === 'unresolvable' || r.status === 'installed') continue;
        // The nearest version, installed by an earlier apply: the same resolution finds it again.
        const have = r === resolution ? now : await dpkgState(ctx.transport, r.package.name);
        if (have.installed?.version !== r.spec.version) wanted.push(r);
      }
      if (!wanted.includes(resolution as (typeof wanted)[number])) {
        return unchanged(
          resolution.status === 'installed'
            ? `${pkg.name} ${resolution.spec.version} is installed`
            : `${pkg.name} ${resolution.spec.version} is installed (${resolution.reason ?? 'nearest'})`,
        );
      }
      const fromRepositories = wanted.filter((r) => r.status !== 'installed' && r.source === 'repository');
      if (fromRepositories.length > 0) {
        const specs = fromRepositories.map((r) => `${r.package.name}=${r.spec.version}`);
        const command = sh`apt-get install -y -q --no-install-recommends --allow-downgrades -- ${specs}`;
        const result = await ctx.transport.run(command, { env: APT_ENV, timeoutMs: 600_000 });
        if (result.exitCode !== 0) throw commandFailed(ctx.transport, command, result);
      }
      const fromStore = wanted.filter((r) => r.status !== 'installed' && r.source !== 'repository');
      if (fromStore.length > 0) {
        const entries = await fetchIntoStore(fromStore, {
          store: source.store,
          ...(source.mirror ? { mirror: source.mirror } : {}),
          family: 'deb',
        });
        await deliverPackages(ctx.transport, 'deb', source.store, entries);
      }
      const from = now.installed === null ? '' : ` (was ${now.installed.version})`;
      const why = resolution.status === 'nearest' ? `; ${resolution.reason}` : '';
      const others = wanted.filter((r) => r !== resolution).map((r) => r.package.name);
      const along =
        others.length === 0 ? '' : `; with ${others.length} more of this plan: ${others.join(', ')}`;
      return changed(
        `${pkg.name} ${resolution.spec.version} installed from ${resolution.status === 'installed' ? 'the host' : resolution.source}${from}${why}${along}`,
      );
    },

    async revert(ctx, change, priorValue) {
      const { pkg } = packageChange(change);
      if (!isApt(pkg)) return unchanged(`${pkg.name} was not changed`);
      const prior = priorValue as PackagePrior;
      const all = [
        { pkg, before: prior.before, ...(prior.kept ? { kept: prior.kept } : {}) },
        ...(prior.companions ?? []),
      ];
      const remove: { name: string; purge: boolean }[] = [];
      const reinstall: StoredPackage[] = [];
      const said: string[] = [];
      for (const p of all) {
        const now = await dpkgState(ctx.transport, p.pkg.name);
        const was = p.before.installed;
        if (was === null) {
          if (now.installed !== null) {
            remove.push({ name: p.pkg.name, purge: !p.before.configFiles });
            said.push(`${p.pkg.name} ${now.installed.version} removed again`);
          }
          continue;
        }
        if (now.installed?.version === was.version) continue;
        if (p.kept === undefined)
          throw new HostStateConflictError(
            `no copy of ${p.pkg.name} ${was.version} was kept`,
            change.kind,
            p.pkg.name,
          );
        // The prior is a journal document: the stored entry is read back from the store itself.
        const entry = await source.store.find('deb', {
          name: was.name,
          version: was.version,
          arch: p.kept.arch,
        });
        if (entry === undefined || entry.sha256 !== p.kept.sha256) {
          throw new NotFoundError(
            `${was.name} ${was.version} is no longer in ${source.store.location} as it was kept`,
            `${was.name}=${was.version}`,
          );
        }
        reinstall.push(entry);
        said.push(`${p.pkg.name} ${was.version} reinstalled`);
      }
      if (remove.length > 0) await removePackages(ctx.transport, remove);
      if (reinstall.length > 0) await deliverPackages(ctx.transport, 'deb', source.store, reinstall);
      if (said.length === 0) return unchanged(`${pkg.name} is as it was before`);
      return changed(said.join('; '));
    },
  };
}
