// Getting resolved packages onto a target that may have no route to any repository: what the
// mirror has is fetched on the control side into Persona's package store (verified there), and
// the store's files are put over the transport into a temporary directory of the target,
// checked by hash where they landed, and installed from the files alone.
import { NotFoundError } from '../errors.js';
import { sh } from '../transport/shell.js';
import type { Transport } from '../transport/transport.js';
import type { Family, PackageSpec } from './manager.js';
import { commandFailed, PackageVerificationError } from './manager.js';
import { DRIVERS, type Resolution } from './resolve.js';
import type { PackageStore, StoredPackage } from './store.js';

/** Fetches one version into the store, unless the store has it already. */
export interface Fetcher {
  readonly family: Family;
  fetch(spec: PackageSpec): Promise<{
    readonly bytes: Uint8Array;
    readonly record: { readonly arch: string; readonly sha256: string };
  }>;
}

type Deliverable = Extract<Resolution, { status: 'exact' | 'nearest' }>;

const fromStoreOrMirror = (r: Resolution): r is Deliverable =>
  (r.status === 'exact' || r.status === 'nearest') && (r.source === 'store' || r.source === 'mirror');

/**
 * The store entries of every resolution that comes from the store or the mirror, fetching from
 * the mirror what the store lacks. Resolutions from the target's own repositories and installed
 * packages are not the store's business.
 */
export async function fetchIntoStore(
  resolutions: readonly Resolution[],
  deps: { readonly store: PackageStore; readonly mirror?: Fetcher; readonly family: Family },
): Promise<StoredPackage[]> {
  const out: StoredPackage[] = [];
  for (const r of resolutions.filter(fromStoreOrMirror)) {
    const versions = await deps.store.versionsOf(deps.family, [r.spec.name]);
    const neutral = DRIVERS[deps.family].neutralArch;
    const have = versions.find(
      (v) => v.version === r.spec.version && (v.arch === r.spec.arch || v.arch === neutral),
    );
    if (have) {
      out.push(have);
      continue;
    }
    // Resolved from the store but gone from it since: the mirror may still have it.
    if (!deps.mirror) {
      throw new NotFoundError(
        `${r.spec.name} ${r.spec.version} (${r.spec.arch}) is not in ${deps.store.location}, and no mirror was given to fetch it from`,
        `${r.spec.name}=${r.spec.version}`,
      );
    }
    const { bytes, record } = await deps.mirror.fetch(r.spec);
    out.push(await deps.store.put(deps.family, { ...r.spec, arch: record.arch }, bytes, record.sha256));
  }
  return out;
}

const TEMP_DIR = /^\/[A-Za-z0-9._/-]+$/;

/**
 * Installs the stored packages on the target from their files: each is read from the store
 * (hash checked), put into a fresh temporary directory, hashed again on the target, then all
 * are installed in one command (dpkg -i, or dnf with every repository disabled) so that
 * packages depending on one another configure together. The directory is removed either way.
 */
export async function deliverPackages(
  target: Transport,
  family: Family,
  store: PackageStore,
  entries: readonly StoredPackage[],
): Promise<void> {
  if (entries.length === 0) return;
  const driver = DRIVERS[family];
  const made = await target.run('mktemp -d');
  const dir = made.stdout.trim();
  if (made.exitCode !== 0 || !TEMP_DIR.test(dir)) throw commandFailed(target, 'mktemp -d', made);
  try {
    // Named by hash: nothing from a package's name or version becomes part of a path.
    const files = [...new Set(entries.map((e) => e.sha256))].map((h) => `${dir}/${h}.${driver.extension}`);
    for (const entry of entries) {
      await target.putFile(`${dir}/${entry.sha256}.${driver.extension}`, await store.read(entry), {
        mode: 0o600,
      });
    }
    const sums = await target.run(sh`sha256sum -- ${files}`);
    if (sums.exitCode !== 0) throw commandFailed(target, 'sha256sum', sums);
    const landed = new Map(
      sums.stdout
        .split('\n')
        .map((l) => /^([0-9a-f]{64}) [ *](.+)$/.exec(l))
        .filter((m) => m !== null)
        .map((m) => [m[2], m[1]]),
    );
    for (const entry of entries) {
      const file = `${dir}/${entry.sha256}.${driver.extension}`;
      if (landed.get(file) !== entry.sha256) {
        throw new PackageVerificationError(
          `${entry.name} ${entry.version} arrived on ${target.target} damaged: SHA-256 ${landed.get(file) ?? 'unknown'}, expected ${entry.sha256}`,
          entry.name,
        );
      }
    }
    const command = driver.installCommand(dir, files);
    const install = await target.run(command, {
      env: driver.installEnv,
      timeoutMs: 600_000,
    });
    if (install.exitCode !== 0) throw commandFailed(target, command, install);
  } catch (e) {
    // The failure is what the caller needs to hear, not a clean-up's on a target that may be gone.
    await target.run(sh`rm -rf -- ${dir}`).catch(() => undefined);
    throw e;
  }
  const removed = await target.run(sh`rm -rf -- ${dir}`);
  if (removed.exitCode !== 0) throw commandFailed(target, `rm -rf ${dir}`, removed);
}
