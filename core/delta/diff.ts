// diff(current, desired): the Changes that turn one Profile into the other, in an order a real
// host can follow. Only `spec` is compared: `observed` is what a capture saw, never something
// to apply, and metadata names the profiles rather than describing the host.
import { COLLECTIONS, canonicalSpec, entriesOf } from '../profile/collections.js';
import type { KernelModule, Profile, ProfileSpec, Service } from '../profile/schema.js';
import {
  type Change,
  type ChangeKind,
  type Delta,
  KINDS,
  type ListSection,
  type ProcessStart,
  type ProfileRef,
  type Section,
  summarize,
} from './changes.js';
import { type FieldSection, fieldEntries, sameValue } from './sections.js';

/** A section's changes, split by phase: teardown runs bottom-up before any build runs top-down. */
interface Steps {
  readonly teardown: readonly Change[];
  readonly build: readonly Change[];
}

type Differ = (from: ProfileSpec, to: ProfileSpec) => Steps;

interface Layer {
  readonly section: Section;
  readonly diff: Differ;
}

type KindOf<S extends Section> = Extract<Change, { section: S }>['kind'];

function change(
  kind: ChangeKind,
  section: Section,
  key: string,
  from: unknown,
  to: unknown,
  extra: { after?: string | null } = {},
): Change {
  return { kind, section, key, from, to, disruptive: KINDS[kind].disruptive, ...extra } as Change;
}

/**
 * A singleton or map section: a field that appears or changes is set in the build phase; a
 * field that disappears is unset in the teardown phase.
 */
function fields<S extends FieldSection>(section: S, set: KindOf<S>, unset: KindOf<S> = set): Differ {
  return (a, b) => {
    const before = new Map(fieldEntries(a, section));
    const after = new Map(fieldEntries(b, section));
    const teardown = [...before]
      .filter(([key]) => !after.has(key))
      .reverse()
      .map(([key, value]) => change(unset, section, key, value, null));
    const build = [...after]
      .filter(([key, value]) => !sameValue(before.get(key) ?? null, value))
      .map(([key, value]) => change(set, section, key, before.get(key) ?? null, value));
    return { teardown, build };
  };
}

/**
 * A keyed collection. Entries that go are removed in reverse key order (a mount beneath
 * another is unmounted first); entries that come or change are handled in key order. Without
 * a `modify` kind, a changed entry is removed and added again.
 */
function list<S extends ListSection>(
  section: S,
  kinds: { readonly add: KindOf<S>; readonly remove: KindOf<S>; readonly modify?: KindOf<S> },
): Differ {
  const { key } = COLLECTIONS[section];
  return (a, b) => {
    const before = new Map(entriesOf(a, COLLECTIONS[section]).map((e) => [key(e), e]));
    const after = new Map(entriesOf(b, COLLECTIONS[section]).map((e) => [key(e), e]));
    const replaced = (k: string) =>
      kinds.modify === undefined && after.has(k) && !sameValue(before.get(k), after.get(k));
    const teardown = [...before]
      .filter(([k]) => !after.has(k) || replaced(k))
      .reverse()
      .map(([k, e]) => change(kinds.remove, section, k, e, null));
    const build: Change[] = [];
    for (const [k, e] of after) {
      const old = before.get(k);
      if (old === undefined || replaced(k)) {
        build.push(change(kinds.add, section, k, null, e));
      } else if (kinds.modify !== undefined && !sameValue(old, e)) {
        build.push(change(kinds.modify, section, k, old, e));
      }
    }
    return { teardown, build };
  };
}

const sameModule = (x: KernelModule, y: KernelModule) =>
  x.name === y.name && sameValue(x.parameters, y.parameters);

/** Which positions of `a` and `b` a longest common subsequence keeps. */
function commonSubsequence(a: readonly KernelModule[], b: readonly KernelModule[]) {
  // lengths[i][j]: LCS length of a[i..] and b[j..].
  const lengths = Array.from({ length: a.length + 1 }, () => new Array<number>(b.length + 1).fill(0));
  const at = (i: number, j: number) => lengths[i]?.[j] ?? 0;
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      const row = lengths[i] as number[];
      row[j] = sameModule(a[i] as KernelModule, b[j] as KernelModule)
        ? at(i + 1, j + 1) + 1
        : Math.max(at(i + 1, j), at(i, j + 1));
    }
  }
  const keptA = new Set<number>();
  const keptB = new Set<number>();
  for (let i = 0, j = 0; i < a.length && j < b.length; ) {
    if (sameModule(a[i] as KernelModule, b[j] as KernelModule)) {
      keptA.add(i);
      keptB.add(j);
      i++;
      j++;
    } else if (at(i + 1, j) >= at(i, j + 1)) {
      i++;
    } else {
      j++;
    }
  }
  return { keptA, keptB };
}

/**
 * Modules load in order, so the longest common subsequence (same name, same parameters)
 * stays loaded. The others of `from` unload in reverse load order, each recording the module
 * before it so that reverting puts it back there; then the missing ones of `to` load in `to`'s
 * order, each after its predecessor in `to` — already loaded by then, since it is either kept
 * or loaded earlier. A parameter change is an unload and a load.
 */
const kernelModules: Differ = (a, b) => {
  const from = a.kernelModules;
  const to = b.kernelModules;
  const { keptA, keptB } = commonSubsequence(from, to);
  const teardown = from
    .map((m, i) =>
      change('kmod.unload', 'kernelModules', m.name, m, null, { after: from[i - 1]?.name ?? null }),
    )
    .filter((_, i) => !keptA.has(i))
    .reverse();
  const build = to
    .map((m, j) => change('kmod.load', 'kernelModules', m.name, null, m, { after: to[j - 1]?.name ?? null }))
    .filter((_, j) => !keptB.has(j));
  return { teardown, build };
};

/**
 * The start command of the same name as a process (its first 15 characters, as the kernel keeps
 * a name), with the environment scoped to it: what an executor needs to start it where no
 * service does. An added process takes it from the Profile it goes to; a removed one from the
 * Profile it leaves, so that undoing the removal can start it again.
 */
export function processStart(spec: ProfileSpec, name: string): ProcessStart | undefined {
  const command = spec.application.startCommands.find((c) => c.name === name || c.name.slice(0, 15) === name);
  if (command === undefined) return undefined;
  const environment = spec.configuration.env.filter((e) => e.scope === command.name);
  return { command, environment };
}

function withStart(differ: Differ): Differ {
  return (a, b) => {
    const { teardown, build } = differ(a, b);
    const add = (spec: ProfileSpec) => (c: Change) => {
      if (c.section !== 'processes' || c.kind === 'process.resize') return c;
      const start = processStart(spec, c.key);
      return start === undefined ? c : { ...c, start };
    };
    return { teardown: teardown.map(add(a)), build: build.map(add(b)) };
  };
}

type ServiceStep = readonly [KindOf<'services'>, Service | null];

/** The Changes that walk one service from `start` through each step's state in turn. */
function walk(name: string, start: Service | null, path: readonly ServiceStep[]): Change[] {
  let s = start;
  return path.map(([kind, next]) => {
    const c = change(kind, 'services', name, s, next);
    s = next;
    return c;
  });
}

/**
 * A service is brought up in steps — add (present, stopped, disabled), update (unit and
 * manager), enable, start — and taken down in the mirror steps — stop, disable, remove — so
 * that each Change does one thing on the host and carries the whole entry either side of it.
 * Stopping and disabling are teardown: a service stops before the packages and files it uses
 * change or go, and starts only once everything above it is in place.
 */
const services: Differ = (a, b) => {
  const wanted = new Map(b.services.map((s) => [s.name, s]));
  // Where each service that stays stands once the teardown phase is over.
  const settled = new Map<string, Service>();
  const teardown: Change[] = [];
  for (const old of a.services.toReversed()) {
    const target = wanted.get(old.name);
    const path: ServiceStep[] = [];
    let s: Service = old;
    if (s.state === 'running' && target?.state !== 'running') {
      s = { ...s, state: 'stopped' };
      path.push(['service.stop', s]);
    }
    if (s.enabled && target?.enabled !== true) {
      s = { ...s, enabled: false };
      path.push(['service.disable', s]);
    }
    if (target === undefined) path.push(['service.remove', null]);
    else settled.set(old.name, s);
    teardown.push(...walk(old.name, old, path));
  }
  const build: Change[] = [];
  for (const target of b.services) {
    const start = settled.get(target.name) ?? null;
    let s: Service = start ?? { ...target, state: 'stopped', enabled: false };
    const path: ServiceStep[] = start === null ? [['service.add', s]] : [];
    if (!sameValue({ ...s, state: target.state, enabled: target.enabled }, target)) {
      s = { ...target, state: s.state, enabled: s.enabled };
      path.push(['service.update', s]);
    }
    if (!s.enabled && target.enabled) {
      s = { ...s, enabled: true };
      path.push(['service.enable', s]);
    }
    if (s.state === 'stopped' && target.state === 'running') {
      s = { ...s, state: 'running' };
      path.push(['service.start', s]);
    }
    build.push(...walk(target.name, start, path));
  }
  return { teardown, build };
};

// The layers of a host, in the order it is built. Each layer may rely on every layer above it
// being in place: the machine, its image and OS first; storage from the bottom up (volume →
// filesystem → mount); kernel modules (in load order) and sysctl before the network that may
// need them; groups before the users in them, users before the sudo rules and SSH keys that
// name them; packages and runtimes before the files that configure them, files before the
// users' environment that points at them; the firewall once interfaces and software exist;
// resource limits before the monitoring that watches them; services only once everything they
// use is there, then the processes; the application on top; the execution flag last, so that a
// host is not marked Production before it is one.
// Teardown walks the same table bottom-up: services stop before the packages providing them
// are removed, files go before the users owning them, mounts before their filesystems and
// volumes, modules unload in reverse load order.
const LAYERS: readonly Layer[] = [
  { section: 'instance', diff: fields('instance', 'instance.resize') },
  { section: 'baseImage', diff: fields('baseImage', 'image.replace') },
  { section: 'os', diff: fields('os', 'os.replace') },
  {
    section: 'volumes',
    diff: list('volumes', { add: 'volume.attach', remove: 'volume.detach', modify: 'volume.resize' }),
  },
  {
    section: 'filesystems',
    diff: list('filesystems', {
      add: 'filesystem.create',
      remove: 'filesystem.remove',
      modify: 'filesystem.modify',
    }),
  },
  {
    section: 'mounts',
    diff: list('mounts', { add: 'mount.add', remove: 'mount.remove', modify: 'mount.modify' }),
  },
  { section: 'kernelModules', diff: kernelModules },
  { section: 'sysctl', diff: fields('sysctl', 'sysctl.set', 'sysctl.unset') },
  {
    section: 'interfaces',
    diff: list('interfaces', {
      add: 'interface.add',
      remove: 'interface.remove',
      modify: 'interface.configure',
    }),
  },
  // A route's key is every field of it: a different route is a removal and an addition.
  { section: 'routes', diff: list('routes', { add: 'route.add', remove: 'route.remove' }) },
  { section: 'dns', diff: fields('dns', 'dns.set') },
  {
    section: 'groups',
    diff: list('groups', { add: 'group.add', remove: 'group.remove', modify: 'group.modify' }),
  },
  {
    section: 'users',
    diff: list('users', { add: 'user.add', remove: 'user.remove', modify: 'user.modify' }),
  },
  {
    section: 'sudoers',
    diff: list('sudoers', { add: 'sudo.grant', remove: 'sudo.revoke', modify: 'sudo.modify' }),
  },
  {
    section: 'sshKeys',
    diff: list('sshKeys', { add: 'sshkey.authorize', remove: 'sshkey.revoke', modify: 'sshkey.authorize' }),
  },
  {
    section: 'packages',
    diff: list('packages', { add: 'package.install', remove: 'package.remove', modify: 'package.upgrade' }),
  },
  {
    section: 'runtimeDependencies',
    diff: list('runtimeDependencies', {
      add: 'runtime.install',
      remove: 'runtime.remove',
      modify: 'runtime.upgrade',
    }),
  },
  {
    section: 'files',
    diff: list('files', { add: 'file.write', remove: 'file.delete', modify: 'file.write' }),
  },
  { section: 'env', diff: list('env', { add: 'env.set', remove: 'env.unset', modify: 'env.set' }) },
  { section: 'firewall', diff: fields('firewall', 'firewall.replace') },
  // Persona's own table and egress limits: a Profile holds neither, so two Profiles never differ
  // in them; the layers say where a persona switch puts them among the others.
  { section: 'ingress', diff: fields('ingress', 'ingress.set') },
  { section: 'resources', diff: fields('resources', 'resource.resize') },
  {
    section: 'cgroups',
    diff: list('cgroups', { add: 'cgroup.set', remove: 'cgroup.unset', modify: 'cgroup.set' }),
  },
  { section: 'bandwidth', diff: fields('bandwidth', 'bandwidth.set', 'bandwidth.unset') },
  {
    section: 'agents',
    diff: list('agents', { add: 'agent.install', remove: 'agent.remove', modify: 'agent.update' }),
  },
  {
    section: 'thresholds',
    diff: list('thresholds', { add: 'threshold.set', remove: 'threshold.unset', modify: 'threshold.set' }),
  },
  { section: 'services', diff: services },
  // After the services: a process one of them runs is found running rather than started a second
  // time, and an application's own processes start once the services they use are up (and stop
  // before those go).
  {
    section: 'processes',
    diff: withStart(
      list('processes', { add: 'process.add', remove: 'process.remove', modify: 'process.resize' }),
    ),
  },
  { section: 'application', diff: fields('application', 'application.configure') },
  { section: 'executionFlag', diff: fields('executionFlag', 'flag.set') },
];

/** The sections in build order; teardown follows it backwards. */
export const LAYER_ORDER: readonly Section[] = LAYERS.map((l) => l.section);

/** Names (and versions, when known) of the two profiles, for the Delta's `from` and `to`. */
export interface DiffRefs {
  readonly from?: ProfileRef;
  readonly to?: ProfileRef;
}

/**
 * The Delta that turns `from` into `to`: every teardown (removals, stops, unloads) in reverse
 * layer order, then every addition and modification in layer order. Pure and deterministic:
 * profiles that say the same thing in a different order give the same Delta.
 */
export function diff(from: Profile, to: Profile, refs: DiffRefs = {}): Delta {
  const a = canonicalSpec(from.spec);
  const b = canonicalSpec(to.spec);
  const steps = LAYERS.map((layer) => layer.diff(a, b));
  const changes = [...steps.toReversed().flatMap((s) => s.teardown), ...steps.flatMap((s) => s.build)];
  return {
    from: refs.from ?? { name: from.metadata.name },
    to: refs.to ?? { name: to.metadata.name },
    changes,
    summary: summarize(changes),
  };
}
