// package.install, package.upgrade and package.remove for RHEL-family hosts (rpm, with dnf
// where the host has it), through the resolver as for apt: the Change's version is resolved
// against the target, and what the target's repositories cannot give — all of it, on a target
// with no route out — is fetched on the control side into Persona's package store (RpmMirror)
// and delivered over the transport, installed from the files alone (`dnf install
// --disablerepo='*'`, or `rpm -U --oldpackage` without dnf). Removal is `rpm -e` of exactly
// the installed NEVRA, refused when rpm says other packages need it (dnf remove would take
// them too, and their revert is not this Change's). Before anything changes, the version the
// host has is made sure of in the store, so that revert can reinstall exactly it offline; a
// package the Change installed where there was none is erased again.
//
// A name installed more than once for the Change's architecture (install-only packages such
// as kernel keep several versions side by side) is refused: which of them the Change replaces
// is not something a Profile says.
import type { Change } from '../../delta/changes.js';
import { NotFoundError } from '../../errors.js';
import type { Package } from '../../profile/schema.js';
import { deliverPackages, fetchIntoStore } from '../../resolver/deliver.js';
import { dnf, parseRpmQuery, rpmQueryCommand } from '../../resolver/dnf.js';
import { commandFailed, type PackageSpec } from '../../resolver/manager.js';
import { assertResolvable, resolvePackages } from '../../resolver/resolve.js';
import { checkRpmArch, checkRpmName, compareRpmVersions, parseEvr } from '../../resolver/rpm.js';
import type { StoredPackage } from '../../resolver/store.js';
import { TransportError } from '../../transport/errors.js';
import { describeCommand, sh } from '../../transport/shell.js';
import type { RunResult, Transport } from '../../transport/transport.js';
import { HostStateConflictError } from '../errors.js';
import { changed, type Executor, unchanged, unresolved } from './executor.js';
import type { PackageSource } from './packages.js';

type PackageChange = Extract<Change, { section: 'packages' }>;

const isRpmFamily = (pkg: Package) => (dnf.managers as readonly string[]).includes(pkg.manager);

/** The package of the Change, its name, version and arch checked by the RPM grammar. */
function packageChange(change: Change): { c: PackageChange; pkg: Package } {
  if (change.section !== 'packages') throw new TypeError(`${change.kind} is not a package change`);
  const at = change.kind === 'package.remove' ? 'from' : 'to';
  const pkg = change[at];
  if (pkg === null) throw new TypeError(`${change.kind} carries no package`);
  if (isRpmFamily(pkg)) {
    checkRpmName(pkg.name, `${at}.name`);
    parseEvr(pkg.version, `${at}.version`);
    if (pkg.arch !== undefined) checkRpmArch(pkg.arch, `${at}.arch`);
  }
  return { c: change, pkg };
}

/** `name-version-release.arch`, as `rpm -e` takes one installed package (without the epoch). */
export function nvra(spec: PackageSpec): string {
  const evr = parseEvr(spec.version, 'version');
  return `${checkRpmName(spec.name, 'name')}-${evr.version}-${evr.release ?? ''}.${checkRpmArch(spec.arch, 'arch')}`;
}

/** What rpm says is installed of the package, for the Change's architecture; null when nothing. */
async function rpmState(transport: Transport, pkg: Package): Promise<PackageSpec | null> {
  const result = await transport.run(rpmQueryCommand([pkg.name]));
  // rpm -q exits 1 for a name that is not installed, which is an answer.
  if (result.exitCode !== 0 && !/is not installed/.test(result.stdout)) {
    throw failure(transport, 'rpm -q', result);
  }
  let mine = parseRpmQuery(result.stdout).filter(
    (i) => i.name === pkg.name && (pkg.arch === undefined || i.arch === pkg.arch || i.arch === 'noarch'),
  );
  // Multilib (glibc.x86_64 and glibc.i686): a Change naming no architecture means the host's own,
  // as the resolver reads it.
  if (mine.length > 1 && pkg.arch === undefined) {
    const native = await transport.run(dnf.nativeArchCommand);
    const arch = native.stdout.trim();
    if (native.exitCode !== 0) throw failure(transport, dnf.nativeArchCommand, native);
    mine = mine.filter((i) => i.arch === arch || i.arch === 'noarch');
  }
  if (mine.length > 1) {
    throw new HostStateConflictError(
      `${pkg.name} is installed ${mine.length} times (${mine.map((m) => `${m.version}.${m.arch}`).join(', ')}): which one the Change replaces is not said, and an install-only package (a kernel) is not changed by Persona; nothing was changed`,
      'package',
      pkg.name,
    );
  }
  return mine[0] ?? null;
}

// What rpm and dnf print when another transaction holds the rpm database: nothing was changed,
// and trying again later is the remedy, not a rollback's business to guess.
const LOCKED =
  /can't create transaction lock|Failed to obtain rpm transaction lock|Waiting for process with pid|another app is currently holding the yum lock/i;

/** A failed package command, with rpm's lock named as such. */
function failure(transport: Transport, command: string, result: RunResult): Error {
  // dnf exits 200 for "a problem with acquiring or releasing of locks".
  if (LOCKED.test(result.stdout + result.stderr) || (command.startsWith('dnf ') && result.exitCode === 200)) {
    return new HostStateConflictError(
      `another package transaction holds the rpm database on ${transport.target} (${describeCommand(command, 60)}): nothing was changed; try again once it finished`,
      'package',
      command,
    );
  }
  return commandFailed(transport, command, result);
}

/** The packages rpm says need the one to be erased, from `rpm -e --test`. */
function neededBy(output: string): string[] {
  return [...new Set([...output.matchAll(/is needed by \(installed\) (\S+)/g)].map((m) => m[1] as string))];
}

async function erase(transport: Transport, installed: PackageSpec): Promise<void> {
  const which = nvra(installed);
  const test = await transport.run(sh`rpm -e --test -- ${which}`);
  if (test.exitCode !== 0) {
    const others = neededBy(test.stdout + test.stderr);
    if (others.length > 0) {
      throw new HostStateConflictError(
        `removing ${which} would break ${others.join(', ')}, which need it: nothing was removed`,
        'package.remove',
        installed.name,
      );
    }
    throw failure(transport, `rpm -e --test ${which}`, test);
  }
  const command = sh`rpm -e -- ${which}`;
  const result = await transport.run(command, { timeoutMs: 600_000 });
  if (result.exitCode !== 0) throw failure(transport, command, result);
}

/** Delivers and installs the stored files, rpm's lock told apart from other failures. */
async function install(transport: Transport, source: PackageSource, entries: readonly StoredPackage[]) {
  try {
    await deliverPackages(transport, 'rpm', source.store, entries);
  } catch (e) {
    if (e instanceof TransportError && (LOCKED.test(e.message) || /\bfailed \(exit 200\)/.test(e.message))) {
      throw new HostStateConflictError(
        `another package transaction holds the rpm database on ${transport.target}: nothing was installed; try again once it finished`,
        'package',
        entries.map((x) => x.name).join(' '),
      );
    }
    throw e;
  }
}

interface RpmPrior {
  readonly before: { readonly installed: PackageSpec | null };
  /** The store's copy of the version that was installed, which revert reinstalls. */
  readonly kept?: StoredPackage;
}

async function keepInStore(source: PackageSource, spec: PackageSpec): Promise<StoredPackage> {
  const versions = await source.store.versions('rpm', spec.name);
  const have = versions.find(
    (v) => compareRpmVersions(v.version, spec.version) === 0 && (v.arch === spec.arch || v.arch === 'noarch'),
  );
  if (have) return have;
  const what = `${spec.name} ${spec.version} (${spec.arch}), which the host has,`;
  if (source.mirror && source.mirror.family === 'rpm') {
    try {
      const { bytes, record } = await source.mirror.fetch(spec);
      return await source.store.put('rpm', { ...spec, arch: record.arch }, bytes, record.sha256);
    } catch (cause) {
      throw new NotFoundError(
        `${what} could not be kept in ${source.store.location}, so a revert could not reinstall it: nothing was changed (${cause instanceof Error ? cause.message : String(cause)})`,
        `${spec.name}-${spec.version}`,
        { cause },
      );
    }
  }
  throw new NotFoundError(
    `${what} is not in ${source.store.location} and no rpm mirror was given, so a revert could not reinstall it: nothing was changed`,
    `${spec.name}-${spec.version}`,
  );
}

/** An executor for rpm packages that takes what it installs from `source` (an RpmMirror's store). */
export function rpmPackageExecutor(source: PackageSource): Executor {
  return {
    kinds: ['package.install', 'package.upgrade', 'package.remove'],

    async prepare(ctx, change) {
      const { c, pkg } = packageChange(change);
      if (!isRpmFamily(pkg)) return { before: { installed: null } } satisfies RpmPrior;
      const installed = await rpmState(ctx.transport, pkg);
      const differs =
        installed !== null &&
        (c.kind === 'package.remove' || compareRpmVersions(installed.version, pkg.version) !== 0);
      return {
        before: { installed },
        ...(differs ? { kept: await keepInStore(source, installed) } : {}),
      } satisfies RpmPrior;
    },

    async apply(ctx, change) {
      const { c, pkg } = packageChange(change);
      if (!isRpmFamily(pkg)) {
        return unresolved(`${pkg.name}: ${pkg.manager} packages are not installed by the rpm executor`);
      }
      const now = await rpmState(ctx.transport, pkg);
      if (c.kind === 'package.remove') {
        if (now === null) return unchanged(`${pkg.name} is not installed`);
        await erase(ctx.transport, now);
        return changed(`${pkg.name} ${now.version} removed`);
      }
      const [resolution] = await resolvePackages(
        [pkg],
        { target: ctx.transport, store: source.store, ...(source.mirror ? { mirror: source.mirror } : {}) },
        { targetRepositories: source.targetRepositories ?? 'use', family: 'rpm' },
      );
      if (resolution === undefined) throw new TypeError('no resolution');
      assertResolvable([resolution]);
      if (resolution.status === 'installed')
        return unchanged(`${pkg.name} ${resolution.spec.version} is installed`);
      if (resolution.status === 'unresolvable') throw new TypeError('unresolvable after assertResolvable');
      // The nearest version, installed by an earlier apply: the same resolution finds it again.
      if (now !== null && compareRpmVersions(now.version, resolution.spec.version) === 0) {
        return unchanged(
          `${pkg.name} ${resolution.spec.version} is installed (${resolution.reason ?? 'nearest'})`,
        );
      }
      if (resolution.source === 'repository') {
        // dnf takes `name-[epoch:]version-release.arch` as one exact package.
        const spec = `${resolution.spec.name}-${resolution.spec.version}.${resolution.spec.arch}`;
        const command = sh`dnf install -y -q -- ${spec}`;
        const result = await ctx.transport.run(command, { timeoutMs: 600_000 });
        if (result.exitCode !== 0) throw failure(ctx.transport, command, result);
      } else {
        const entries = await fetchIntoStore([resolution], {
          store: source.store,
          ...(source.mirror ? { mirror: source.mirror } : {}),
          family: 'rpm',
        });
        await install(ctx.transport, source, entries);
      }
      const from = now === null ? '' : ` (was ${now.version})`;
      const why = resolution.status === 'nearest' ? `; ${resolution.reason}` : '';
      return changed(
        `${pkg.name} ${resolution.spec.version} installed from ${resolution.source}${from}${why}`,
      );
    },

    async revert(ctx, change, priorValue) {
      const { pkg } = packageChange(change);
      if (!isRpmFamily(pkg)) return unchanged(`${pkg.name} was not changed`);
      const prior = priorValue as RpmPrior;
      const now = await rpmState(ctx.transport, pkg);
      const was = prior.before.installed;
      if (was === null) {
        if (now === null) return unchanged(`${pkg.name} is not installed, as before`);
        await erase(ctx.transport, now);
        return changed(`${pkg.name} ${now.version} removed again`);
      }
      if (now !== null && now.arch === was.arch && compareRpmVersions(now.version, was.version) === 0)
        return unchanged(`${pkg.name} ${was.version} is installed, as before`);
      if (prior.kept === undefined) {
        throw new HostStateConflictError(
          `no copy of ${pkg.name} ${was.version} was kept`,
          change.kind,
          pkg.name,
        );
      }
      // The prior is a journal document: the stored entry is read back from the store itself.
      const entry = await source.store.find('rpm', {
        name: prior.kept.name,
        version: prior.kept.version,
        arch: prior.kept.arch,
      });
      if (entry === undefined || entry.sha256 !== prior.kept.sha256 || entry.name !== was.name) {
        throw new NotFoundError(
          `${was.name} ${was.version} is no longer in ${source.store.location} as it was kept`,
          `${was.name}-${was.version}`,
        );
      }
      await install(ctx.transport, source, [entry]);
      return changed(`${pkg.name} ${was.version} reinstalled`);
    },
  };
}
