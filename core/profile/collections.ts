// How each keyed collection of a ProfileSpec is identified. Uniqueness checks (a profile may
// not list the same package twice), canonical ordering and diff all use this one table.
import type { ProfileSpec } from './schema.js';

type Entry<
  P extends keyof ProfileSpec,
  C extends string | undefined = undefined,
> = C extends keyof ProfileSpec[P]
  ? ProfileSpec[P][C] extends readonly (infer E)[]
    ? E
    : never
  : ProfileSpec[P] extends readonly (infer E)[]
    ? E
    : never;

export interface CollectionDescriptor<E = unknown> {
  /** Path from spec to the array, e.g. ['network', 'routes']. */
  readonly path: readonly [keyof ProfileSpec] | readonly [keyof ProfileSpec, string];
  /** What the entries are called in messages. */
  readonly noun: string;
  readonly key: (entry: E) => string;
  /**
   * Ordered collections keep the author's order because it means something (modules load in
   * that order, start commands run in that order). The rest are sorted by key so that two
   * profiles that say the same thing are equal and hash the same.
   */
  readonly ordered: boolean;
}

const describe = <E>(d: CollectionDescriptor<E>): CollectionDescriptor<unknown> =>
  d as CollectionDescriptor<unknown>;

type Route = Entry<'network', 'routes'>;
export const routeKey = (r: Route): string =>
  [r.table ?? 'main', r.destination, r.gateway ?? '-', r.interface ?? '-', r.metric ?? '-'].join(' ');

export const COLLECTIONS = {
  packages: describe<Entry<'packages'>>({
    path: ['packages'],
    noun: 'package',
    key: (p) => `${p.manager}:${p.name}`,
    ordered: false,
  }),
  services: describe<Entry<'services'>>({
    path: ['services'],
    noun: 'service',
    key: (s) => s.name,
    ordered: false,
  }),
  interfaces: describe<Entry<'network', 'interfaces'>>({
    path: ['network', 'interfaces'],
    noun: 'interface',
    key: (i) => i.name,
    ordered: false,
  }),
  routes: describe<Route>({ path: ['network', 'routes'], noun: 'route', key: routeKey, ordered: false }),
  volumes: describe<Entry<'storage', 'volumes'>>({
    path: ['storage', 'volumes'],
    noun: 'volume',
    key: (v) => v.name,
    ordered: false,
  }),
  filesystems: describe<Entry<'storage', 'filesystems'>>({
    path: ['storage', 'filesystems'],
    noun: 'filesystem',
    key: (f) => f.device,
    ordered: false,
  }),
  // Sorted by target, a parent mount point always comes before the mounts beneath it.
  mounts: describe<Entry<'storage', 'mounts'>>({
    path: ['storage', 'mounts'],
    noun: 'mount',
    key: (m) => m.target,
    ordered: false,
  }),
  cgroups: describe<Entry<'resources', 'cgroups'>>({
    path: ['resources', 'cgroups'],
    noun: 'cgroup limit',
    key: (c) => c.path,
    ordered: false,
  }),
  runtimeDependencies: describe<Entry<'runtimeDependencies'>>({
    path: ['runtimeDependencies'],
    noun: 'runtime dependency',
    key: (d) => `${d.type}:${d.name}`,
    ordered: false,
  }),
  env: describe<Entry<'configuration', 'env'>>({
    path: ['configuration', 'env'],
    noun: 'environment variable',
    key: (e) => (e.scope === undefined ? e.name : `${e.scope}:${e.name}`),
    ordered: false,
  }),
  files: describe<Entry<'configuration', 'files'>>({
    path: ['configuration', 'files'],
    noun: 'file',
    key: (f) => f.path,
    ordered: false,
  }),
  kernelModules: describe<Entry<'kernelModules'>>({
    path: ['kernelModules'],
    noun: 'kernel module',
    key: (m) => m.name,
    ordered: true,
  }),
  users: describe<Entry<'security', 'users'>>({
    path: ['security', 'users'],
    noun: 'user',
    key: (u) => u.name,
    ordered: false,
  }),
  groups: describe<Entry<'security', 'groups'>>({
    path: ['security', 'groups'],
    noun: 'group',
    key: (g) => g.name,
    ordered: false,
  }),
  sudoers: describe<Entry<'security', 'sudoers'>>({
    path: ['security', 'sudoers'],
    noun: 'sudo rule',
    key: (s) => s.principal,
    ordered: false,
  }),
  sshKeys: describe<Entry<'security', 'sshKeys'>>({
    path: ['security', 'sshKeys'],
    noun: 'SSH key',
    key: (k) => `${k.user}:${k.fingerprint}`,
    ordered: false,
  }),
  agents: describe<Entry<'monitoring', 'agents'>>({
    path: ['monitoring', 'agents'],
    noun: 'monitoring agent',
    key: (a) => a.name,
    ordered: false,
  }),
  thresholds: describe<Entry<'monitoring', 'thresholds'>>({
    path: ['monitoring', 'thresholds'],
    noun: 'threshold',
    key: (t) => `${t.metric} ${t.comparison}`,
    ordered: false,
  }),
  processes: describe<Entry<'processes'>>({
    path: ['processes'],
    noun: 'process',
    key: (p) => p.name,
    ordered: false,
  }),
  startCommands: describe<Entry<'application', 'startCommands'>>({
    path: ['application', 'startCommands'],
    noun: 'start command',
    key: (c) => c.name,
    ordered: true,
  }),
  healthChecks: describe<Entry<'application', 'healthChecks'>>({
    path: ['application', 'healthChecks'],
    noun: 'health check',
    key: (h) => h.name,
    ordered: false,
  }),
} as const;

export type CollectionName = keyof typeof COLLECTIONS;

/** The array a descriptor points at, read from a spec (or a partial one). */
export function entriesOf(spec: unknown, d: CollectionDescriptor): readonly unknown[] {
  let node: unknown = spec;
  for (const segment of d.path) {
    if (node === null || typeof node !== 'object') return [];
    node = (node as Record<string, unknown>)[segment];
  }
  return Array.isArray(node) ? node : [];
}

export interface DuplicateKey {
  readonly path: readonly (string | number)[];
  readonly message: string;
}

/** Every entry whose key an earlier entry of the same collection already has. */
export function duplicateKeys(spec: ProfileSpec): DuplicateKey[] {
  const found: DuplicateKey[] = [];
  for (const d of Object.values(COLLECTIONS)) {
    const seen = new Map<string, number>();
    entriesOf(spec, d).forEach((entry, index) => {
      // The spec may be otherwise invalid here (the check runs alongside the field checks).
      if (entry === null || typeof entry !== 'object') return;
      const key = d.key(entry);
      const first = seen.get(key);
      if (first === undefined) {
        seen.set(key, index);
      } else {
        found.push({
          path: [...d.path, index],
          message: `duplicate ${d.noun} "${key}" (first listed at index ${first})`,
        });
      }
    });
  }
  return found;
}

const byKey =
  (key: (e: unknown) => string) =>
  (a: unknown, b: unknown): number => {
    const ka = key(a);
    const kb = key(b);
    return ka < kb ? -1 : ka > kb ? 1 : 0;
  };

/**
 * The canonical form of a spec: unordered collections sorted by key, sysctl and other maps
 * by key. Two specs that describe the same host have the same canonical form.
 */
export function canonicalSpec(spec: ProfileSpec): ProfileSpec {
  // Copied only along the paths sorted here (sortObjectKeys copies the rest): a deep clone of a
  // large host's spec was most of the time of every plan.
  const copy: Record<string, unknown> = { ...(spec as unknown as Record<string, unknown>) };
  for (const d of Object.values(COLLECTIONS)) {
    if (d.ordered) continue;
    const [head, tail] = d.path;
    if (tail === undefined) {
      const list = copy[head];
      if (Array.isArray(list)) copy[head] = [...list].sort(byKey(d.key));
      continue;
    }
    const parent = copy[head];
    if (parent === null || typeof parent !== 'object' || Array.isArray(parent)) continue;
    const list = (parent as Record<string, unknown>)[tail];
    if (Array.isArray(list)) copy[head] = { ...parent, [tail]: [...list].sort(byKey(d.key)) };
  }
  return sortObjectKeys(copy) as unknown as ProfileSpec;
}

/** Plain objects with their keys in sorted order, arrays kept as they are. */
export function sortObjectKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortObjectKeys);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[k];
      if (v !== undefined) out[k] = sortObjectKeys(v);
    }
    return out;
  }
  return value;
}
