// The package files both tools install: resolved against the target (which has no route out)
// to the control machine's Debian mirror, fetched into Persona's package store before anything
// is timed, and copied out of the store for Ansible, so both install the same verified .deb
// files. Also the order they install in: the planner lists package Changes by name and the
// package executor delivers one at a time, so a package would come before what it depends on.
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Change } from '../../core/delta/changes.js';
import type { Package } from '../../core/profile/schema.js';
import type { AptMirror } from '../../core/resolver/apt.js';
import { fetchIntoStore } from '../../core/resolver/deliver.js';
import { assertResolvable, resolvePackages } from '../../core/resolver/resolve.js';
import type { PackageStore, StoredPackage } from '../../core/resolver/store.js';
import type { Transport } from '../../core/transport/transport.js';

export interface StagedPackage {
  readonly entry: StoredPackage;
  /** The .deb on the control machine, named by its hash. */
  readonly file: string;
}

type PackageChange = Extract<Change, { section: 'packages' }>;

/** The package an install or upgrade puts on the host. */
const installed = (c: Change): Package | undefined =>
  c.section === 'packages' && c.kind !== 'package.remove' && c.to !== null ? c.to : undefined;
const installs = (c: Change): c is PackageChange & { to: Package } => installed(c) !== undefined;

/** The packages the Changes install, fetched into the store and written out under `dir`. */
export async function stagePackages(
  changes: readonly Change[],
  deps: {
    readonly target: Transport;
    readonly store: PackageStore;
    readonly mirror: AptMirror;
    readonly dir: string;
  },
): Promise<Map<string, StagedPackage>> {
  const wanted: Package[] = changes.filter(installs).map((c) => c.to);
  const staged = new Map<string, StagedPackage>();
  if (wanted.length === 0) return staged;
  const resolutions = await resolvePackages(
    wanted,
    { target: deps.target, store: deps.store, mirror: deps.mirror },
    { targetRepositories: 'offline', family: 'deb' },
  );
  assertResolvable(resolutions);
  const entries = await fetchIntoStore(resolutions, {
    store: deps.store,
    mirror: deps.mirror,
    family: 'deb',
  });
  mkdirSync(deps.dir, { recursive: true });
  for (const entry of entries) {
    const file = join(deps.dir, `${entry.sha256}.deb`);
    writeFileSync(file, await deps.store.read(entry));
    staged.set(entry.name, { entry, file });
  }
  return staged;
}

/** Package names a relation field names (`a (>= 1) | b, c:any` → a, b, c). */
const relationNames = (field: string) =>
  field
    .split(/[,|]/)
    .map((p) => p.trim().split(/[\s(:]/)[0] ?? '')
    .filter((n) => n !== '');

function controlFields(file: string): { depends: string[]; provides: string[] } {
  const run = spawnSync('dpkg-deb', ['-f', '--', file, 'Depends', 'Pre-Depends', 'Provides'], {
    encoding: 'utf8',
  });
  if (run.status !== 0) throw new Error(`dpkg-deb -f ${file}: ${run.stderr.trim()}`);
  const fields = new Map<string, string>();
  for (const line of run.stdout.split('\n')) {
    const m = /^([A-Za-z-]+):\s*(.*)$/.exec(line);
    if (m?.[1] && m[2] !== undefined) fields.set(m[1], m[2]);
  }
  return {
    depends: [
      ...relationNames(fields.get('Depends') ?? ''),
      ...relationNames(fields.get('Pre-Depends') ?? ''),
    ],
    provides: relationNames(fields.get('Provides') ?? ''),
  };
}

/**
 * The staged packages' names, each after the staged packages it depends on (directly or
 * through a name another one provides). Ties and cycles keep the planner's order.
 */
export function dependencyOrder(staged: ReadonlyMap<string, StagedPackage>): string[] {
  const names = [...staged.keys()];
  const fields = new Map(names.map((n) => [n, controlFields((staged.get(n) as StagedPackage).file)]));
  const provider = new Map<string, string>();
  for (const n of names) {
    provider.set(n, n);
    for (const p of fields.get(n)?.provides ?? []) if (!provider.has(p)) provider.set(p, n);
  }
  const order: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (n: string) => {
    if (state.has(n)) return;
    state.set(n, 'visiting');
    for (const d of fields.get(n)?.depends ?? []) {
      const p = provider.get(d);
      if (p !== undefined && p !== n) visit(p);
    }
    state.set(n, 'done');
    order.push(n);
  };
  for (const n of names) visit(n);
  return order;
}

/** The Changes with their package installs in `order`, everything else where it was. */
export function orderPackageChanges(changes: readonly Change[], order: readonly string[]): Change[] {
  const rank = (c: Change) => (installs(c) ? order.indexOf(c.to.name) : -1);
  const sorted = changes.filter(installs).toSorted((a, b) => rank(a) - rank(b));
  let next = 0;
  return changes.map((c) => (installs(c) ? (sorted[next++] as Change) : c));
}
