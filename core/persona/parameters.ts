// The Delta of a persona switch. The host's current state is what its baseline read (a state-only
// capture, as a clone's Baseline, plus the tc limits and Persona's firewall table, which a capture
// does not read); the desired state is the host's default (the values personas overwrote, as they
// were before the first of them) with the persona's parameters laid over it. Only what differs
// becomes a Change, so a switch between personas that share a value (an instance size above
// all) does not touch it. Going back to the default (`to: null`) is the same computation with no
// persona laid over: every key a persona ever overwrote goes back to exactly what it was.

import type { z } from 'zod';
import type { Change, EgressLimit, IngressTable } from '../delta/changes.js';
import { KINDS } from '../delta/changes.js';
import { InvalidInputError, type Issue } from '../errors.js';
// The digest the ingress executor writes in the table's comment: how the host's table is compared.
import { NO_TC } from '../orchestrator/executors/bandwidth.js';
import { ingressDigest as ingressDigestOf } from '../orchestrator/executors/ingress.js';
import { COLLECTIONS } from '../profile/collections.js';
import type {
  CgroupLimit as CgroupLimitSchema,
  Package,
  Threshold as ThresholdSchema,
} from '../profile/schema.js';
import { displayValue } from '../transport/shell.js';
import type { PersonaParameters } from './schema.js';

type Limit = z.infer<typeof CgroupLimitSchema>;
type Threshold = z.infer<typeof ThresholdSchema>;
export type ThresholdKey = string;

/** What the host has of one sysctl key: the live value, and whether Persona's file persists it. */
export interface SysctlValue {
  readonly value: string;
  readonly persisted: boolean;
}

/**
 * What the host has of the keys a switch can set. A key absent from a map was not read (no one
 * asked for it); a null value is "none" (no cgroup limit, no egress limit, no package).
 */
export interface HostParameters {
  readonly sysctl: Readonly<Record<string, SysctlValue | null>>;
  readonly cgroups: Readonly<Record<string, Limit | null>>;
  /** null: the interface has the kernel's default qdisc; `other`: a root qdisc of someone else's. */
  readonly bandwidth: Readonly<Record<string, EgressLimit | null | 'other' | 'no-tc'>>;
  /** The digest of Persona's firewall table, null without one; undefined when the host has no nft. */
  readonly ingress?: string | null;
  readonly packages: Readonly<Record<string, Package | null>>;
  readonly instanceSize?: string;
}

/**
 * The host's default: the values personas overwrote, as the baseline read them before the first
 * persona that touched each key. Durable (HOST_PERSONAS_TABLE, sk "default"); it only grows.
 */
export interface DefaultParameters {
  readonly sysctl: Readonly<Record<string, SysctlValue | null>>;
  readonly cgroups: Readonly<Record<string, Limit | null>>;
  readonly bandwidth: Readonly<Record<string, null>>;
  /** Persona's table did not exist before any persona (it is Persona's own). */
  readonly ingress?: null;
  readonly packages: Readonly<Record<string, Package | null>>;
  readonly thresholds: Readonly<Record<ThresholdKey, Threshold | null>>;
  readonly instanceSize?: string;
}

export const EMPTY_DEFAULTS: DefaultParameters = {
  sysctl: {},
  cgroups: {},
  bandwidth: {},
  packages: {},
  thresholds: {},
};

/** What the persona the host has now applied, as the last switch recorded it. */
export interface AppliedParameters {
  readonly ingress?: IngressTable | null;
  readonly thresholds: readonly Threshold[];
  readonly instanceSize?: string;
}

export const thresholdKey = (t: Pick<Threshold, 'metric' | 'comparison'>): ThresholdKey =>
  `${t.metric} ${t.comparison}`;

// --- hostile values -------------------------------------------------------------------------

// The grammars the executors hold values to, checked here first so that a persona that names a
// value no executor would take is refused before anything on the host changes, naming the field.
const SYSCTL_KEY = /^[a-z0-9_]+([./][A-Za-z0-9_-]+)+$/;
const CGROUP_SEGMENT = /^[A-Za-z0-9_@][A-Za-z0-9_.@:-]{0,254}$/;
const INTERFACE = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,14}$/;
const CPU_MAX = /^(max|[1-9][0-9]{0,18})( [1-9][0-9]{0,18})?$/;

function cgroupPathProblem(path: string): string | undefined {
  if (!path.startsWith('/')) return 'expected an absolute cgroup path under /sys/fs/cgroup';
  const segments = path.split('/').filter((s) => s !== '');
  if (segments.length === 0) return 'the root cgroup has no limits of its own';
  const bad = segments.find((s) => s === '.' || s === '..' || !CGROUP_SEGMENT.test(s));
  return bad === undefined
    ? undefined
    : `${displayValue(bad)} is not a cgroup name (letters, digits, "_", ".", "@", ":" or "-"; never "." or "..")`;
}

/**
 * Every problem of the parameters at once, each naming its field (`parameters.sysctl["…"]`):
 * interface names that could be read as an option or hold shell syntax, sysctl keys with "..",
 * "*" or an empty name, cgroup paths that leave /sys/fs/cgroup, control characters in values.
 */
export function parameterIssues(p: PersonaParameters, base = 'parameters'): Issue[] {
  const issues: Issue[] = [];
  const issue = (path: string, message: string) => issues.push({ path: `${base}.${path}`, message });
  for (const [key, value] of Object.entries(p.sysctl)) {
    const at = `sysctl[${JSON.stringify(key)}]`;
    if (!SYSCTL_KEY.test(key) || key.split(/[./]/).some((s) => s === '' || s === '..'))
      issue(at, `${displayValue(key)} is not a sysctl key that can be written (no "..", "*" or empty name)`);
    if (/\p{Cc}/u.test(value)) issue(at, 'the value holds a control character');
  }
  p.cgroups.forEach((c, i) => {
    const problem = cgroupPathProblem(c.path);
    if (problem !== undefined) issue(`cgroups[${i}].path`, problem);
    if (c.cpuMax !== undefined && !CPU_MAX.test(c.cpuMax))
      issue(`cgroups[${i}].cpuMax`, 'expected "max" or a quota in microseconds, then the period');
  });
  const seenPaths = new Set<string>();
  p.cgroups.forEach((c, i) => {
    if (seenPaths.has(c.path)) issue(`cgroups[${i}].path`, `${displayValue(c.path)} is listed twice`);
    seenPaths.add(c.path);
  });
  const seenInterfaces = new Set<string>();
  p.bandwidth.forEach((b, i) => {
    if (!INTERFACE.test(b.interface) || b.interface === '.' || b.interface === '..')
      issue(
        `bandwidth[${i}].interface`,
        `${displayValue(b.interface)} is not a network interface name (at most 15 letters, digits, "_", ".", ":" or "-", starting with a letter or digit)`,
      );
    if (seenInterfaces.has(b.interface)) issue(`bandwidth[${i}].interface`, 'listed twice');
    seenInterfaces.add(b.interface);
  });
  p.packages.forEach((pkg, i) => {
    if (!/^[A-Za-z0-9][A-Za-z0-9+._-]*$/.test(pkg.name))
      issue(`packages[${i}].name`, `${displayValue(pkg.name)} is not a package name`);
    if (!/^[A-Za-z0-9.+:~_-]+$/.test(pkg.version))
      issue(`packages[${i}].version`, `${displayValue(pkg.version)} is not a package version`);
  });
  const size = p.instance?.size;
  [...(size === undefined ? [] : [size]), ...(p.instance?.preferredSizes ?? [])].forEach((s, i) => {
    if (!/^[A-Za-z][A-Za-z0-9_.-]{0,63}$/.test(s))
      issue(
        i === 0 ? 'instance.size' : `instance.preferredSizes[${i - 1}]`,
        `${displayValue(s)} is not an instance size`,
      );
  });
  return issues;
}

/** Throws InvalidInputError naming every bad field; nothing is read from or sent to a host first. */
export function checkParameters(p: PersonaParameters, base = 'parameters'): void {
  const issues = parameterIssues(p, base);
  if (issues.length > 0)
    throw new InvalidInputError(
      `the persona's parameters cannot be applied: ${issues
        .slice(0, 5)
        .map((i) => `${i.path}: ${i.message}`)
        .join('; ')}`,
      issues,
    );
}

/** The keys of the host a persona reads and sets: what a baseline must read. */
export interface ParameterKeys {
  readonly sysctl: readonly string[];
  readonly cgroups: readonly string[];
  readonly interfaces: readonly string[];
  readonly packages: readonly string[];
}

export function keysOf(p: PersonaParameters | undefined, defaults: DefaultParameters): ParameterKeys {
  const union = (a: readonly string[], b: readonly string[]) => [...new Set([...a, ...b])].sort();
  return {
    sysctl: union(Object.keys(p?.sysctl ?? {}), Object.keys(defaults.sysctl)),
    cgroups: union(
      (p?.cgroups ?? []).map((c) => c.path),
      Object.keys(defaults.cgroups),
    ),
    interfaces: union(
      (p?.bandwidth ?? []).map((b) => b.interface),
      Object.keys(defaults.bandwidth),
    ),
    packages: union(
      (p?.packages ?? []).map((x) => x.name),
      Object.keys(defaults.packages),
    ),
  };
}

// --- the default ------------------------------------------------------------------------------

/**
 * The default after this switch: what it held, and the baseline's value of each key the persona
 * overwrites that it did not hold yet. A key the default holds keeps its value: the host's value
 * of it now may be an earlier persona's.
 */
export function extendDefaults(
  defaults: DefaultParameters,
  persona: PersonaParameters,
  host: HostParameters,
  applied: AppliedParameters,
): DefaultParameters {
  const add = <V>(map: Readonly<Record<string, V>>, keys: readonly string[], read: (k: string) => V) => {
    const out: Record<string, V> = { ...map };
    for (const k of keys) if (!Object.hasOwn(out, k)) out[k] = read(k);
    return out;
  };
  const thresholds = add(defaults.thresholds, persona.thresholds.map(thresholdKey), (k) => {
    return applied.thresholds.find((t) => thresholdKey(t) === k) ?? null;
  });
  const size =
    defaults.instanceSize ?? (persona.instance ? (applied.instanceSize ?? host.instanceSize) : undefined);
  return {
    sysctl: add(defaults.sysctl, Object.keys(persona.sysctl), (k) => host.sysctl[k] ?? null),
    cgroups: add(
      defaults.cgroups,
      persona.cgroups.map((c) => c.path),
      (k) => host.cgroups[k] ?? null,
    ),
    bandwidth: add(
      defaults.bandwidth,
      persona.bandwidth.map((b) => b.interface),
      () => null,
    ),
    ...(persona.security?.allowIngress !== undefined || defaults.ingress === null ? { ingress: null } : {}),
    packages: add(
      defaults.packages,
      persona.packages.map((x) => x.name),
      (k) => host.packages[k] ?? null,
    ),
    thresholds,
    ...(size === undefined ? {} : { instanceSize: size }),
  };
}

// --- the plan ------------------------------------------------------------------------------

export interface Unresolved {
  readonly kind: string;
  readonly key: string;
  readonly detail: string;
}

export interface ResizePlan {
  /** The size the host has now, where known: what a rollback resizes back to. */
  readonly from?: string;
  readonly to: string;
  /** Tried in order when the platform has no capacity for `to`. */
  readonly preferred: readonly string[];
}

export interface SwitchPlan {
  readonly changes: readonly Change[];
  readonly resize?: ResizePlan;
  /** What cannot be done; the switch fails before anything changes when there is any. */
  readonly unresolved: readonly Unresolved[];
  /** The parameters as they stand after the switch, for the host's record. */
  readonly applied: AppliedParameters;
}

export interface PlanOptions {
  /** Whether the host's thresholds become CloudWatch alarms (an EC2 host); else recorded only. */
  readonly alarms: boolean;
  /** Whether the host's platform resizes (EC2, Azure); else a size to change is unresolved. */
  readonly resizable: boolean;
  /** The package manager of the host's family, for a package it does not have yet. */
  readonly packageManager: Package['manager'];
  /** Ports Persona's table always admits: the transport's own. */
  readonly keepPorts: readonly number[];
}

const change = (kind: Change['kind'], section: Change['section'], key: string, from: unknown, to: unknown) =>
  ({ kind, section, key, from, to, disruptive: KINDS[kind].disruptive }) as Change;

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

function mergeLimit(current: Limit | null, wanted: Limit): Limit {
  return { ...(current ?? {}), ...wanted } as Limit;
}

/**
 * The Changes that take the host from `host` to the default with `persona` laid over it (the
 * default alone when `persona` is null), in the clone's layer order: sysctl, packages, the
 * persona's firewall table, cgroups, bandwidth, thresholds. The instance size is planned apart:
 * it goes through the platform, before any of them.
 */
export function planSwitch(
  host: HostParameters,
  defaults: DefaultParameters,
  applied: AppliedParameters,
  persona: PersonaParameters | null,
  options: PlanOptions,
): SwitchPlan {
  const changes: Change[] = [];
  const unresolved: Unresolved[] = [];

  // sysctl: the persona's value, else the default's (and its persistence: a key Persona's file
  // did not hold before goes out of it again).
  for (const key of [
    ...new Set([...Object.keys(defaults.sysctl), ...Object.keys(persona?.sysctl ?? {})]),
  ].sort()) {
    const now = host.sysctl[key] ?? null;
    const wanted = persona?.sysctl[key];
    if (now === null) {
      unresolved.push({ kind: 'sysctl.set', key, detail: `the kernel of the host has no ${key}` });
      continue;
    }
    if (wanted !== undefined) {
      if (normal(now.value) !== normal(wanted))
        changes.push(change('sysctl.set', 'sysctl', key, now.value, wanted));
      continue;
    }
    const back = defaults.sysctl[key];
    if (back === null || back === undefined) continue;
    if (normal(now.value) !== normal(back.value))
      changes.push(change('sysctl.set', 'sysctl', key, now.value, back.value));
    if (!back.persisted && (now.persisted || normal(now.value) !== normal(back.value)))
      changes.push(change('sysctl.unset', 'sysctl', key, back.value, null));
  }

  // Packages at exact versions; back to the default, the version the host had (or none).
  for (const name of [
    ...new Set([...Object.keys(defaults.packages), ...(persona?.packages ?? []).map((p) => p.name)]),
  ].sort()) {
    const now = host.packages[name] ?? null;
    const version = persona?.packages.find((p) => p.name === name)?.version;
    const wanted: Package | null | undefined =
      version !== undefined
        ? { ...(now ?? { name, manager: options.packageManager }), version }
        : defaults.packages[name];
    if (wanted === undefined || same(now, wanted)) continue;
    // A package Change is keyed as the Delta keys packages: manager and name.
    const key = COLLECTIONS.packages.key((wanted ?? now) as Package);
    if (now === null && wanted !== null)
      changes.push(change('package.install', 'packages', key, null, wanted));
    else if (now !== null && wanted === null)
      changes.push(change('package.remove', 'packages', key, now, null));
    else if (now !== null && wanted !== null && now.version !== wanted.version)
      changes.push(change('package.upgrade', 'packages', key, now, { ...now, version: wanted.version }));
  }

  // Persona's own firewall table.
  const allow = persona?.security?.allowIngress;
  const table: IngressTable | null | undefined =
    allow !== undefined
      ? {
          rules: allow.map((r) => ({
            port: r.port,
            protocol: r.protocol,
            ...(r.from === undefined ? {} : { from: r.from }),
          })),
          keep: [...options.keepPorts],
        }
      : defaults.ingress === null
        ? null
        : undefined;
  if (table !== undefined) {
    if (host.ingress === undefined && table !== null)
      unresolved.push({
        kind: 'ingress.set',
        key: 'ingress',
        detail: 'the host has no nft for a firewall table of its own',
      });
    else if (host.ingress !== undefined) {
      const current = host.ingress === null ? null : (applied.ingress ?? null);
      const wantedDigest = table === null ? null : ingressDigestOf(table);
      if (host.ingress !== wantedDigest)
        changes.push(change('ingress.set', 'ingress', 'ingress', current, table));
    }
  }

  // cgroups: the persona's fields over what the group has; back to the default, its entry.
  for (const path of [
    ...new Set([...Object.keys(defaults.cgroups), ...(persona?.cgroups ?? []).map((c) => c.path)]),
  ].sort()) {
    const now = host.cgroups[path] ?? null;
    const mine = persona?.cgroups.find((c) => c.path === path);
    const wanted = mine !== undefined ? mergeLimit(now, mine) : defaults.cgroups[path];
    if (wanted === undefined || same(now, wanted)) continue;
    if (wanted === null) {
      if (now !== null) changes.push(change('cgroup.unset', 'cgroups', path, now, null));
    } else changes.push(change('cgroup.set', 'cgroups', path, now, wanted));
  }

  // Egress limits.
  for (const iface of [
    ...new Set([...Object.keys(defaults.bandwidth), ...(persona?.bandwidth ?? []).map((b) => b.interface)]),
  ].sort()) {
    const now = host.bandwidth[iface];
    const mine = persona?.bandwidth.find((b) => b.interface === iface);
    if (now === 'no-tc') {
      if (mine !== undefined) unresolved.push({ kind: 'bandwidth.set', key: iface, detail: NO_TC });
      continue;
    }
    if (now === 'other') {
      if (mine !== undefined)
        unresolved.push({
          kind: 'bandwidth.set',
          key: iface,
          detail: `${iface} has a root qdisc Persona did not put there: it is left alone`,
        });
      continue;
    }
    if (now === undefined) {
      unresolved.push({ kind: 'bandwidth.set', key: iface, detail: `the host has no interface ${iface}` });
      continue;
    }
    const wanted: EgressLimit | null =
      mine !== undefined ? { interface: iface, egressMbps: mine.egressMbps } : null;
    if (same(now, wanted)) continue;
    if (wanted === null) changes.push(change('bandwidth.unset', 'bandwidth', iface, now, null));
    else changes.push(change('bandwidth.set', 'bandwidth', iface, now, wanted));
  }

  // Thresholds: alarms on EC2, recorded only elsewhere.
  const thresholds = persona
    ? [
        ...persona.thresholds,
        ...Object.entries(defaults.thresholds)
          .filter(([k, t]) => t !== null && !persona.thresholds.some((p) => thresholdKey(p) === k))
          .map(([, t]) => t as Threshold),
      ]
    : Object.values(defaults.thresholds).filter((t): t is Threshold => t !== null);
  if (options.alarms) {
    const before = new Map(applied.thresholds.map((t) => [thresholdKey(t), t]));
    const after = new Map(thresholds.map((t) => [thresholdKey(t), t]));
    for (const [k, t] of [...before].sort())
      if (!after.has(k)) changes.push(change('threshold.unset', 'thresholds', k, t, null));
    for (const [k, t] of [...after].sort())
      if (!same(before.get(k), t))
        changes.push(change('threshold.set', 'thresholds', k, before.get(k) ?? null, t));
  }

  // The instance size: only when it differs, so nested windows of personas of one size do not
  // stop and start the instance.
  const currentSize = applied.instanceSize ?? host.instanceSize;
  const wantedSize = persona?.instance?.size ?? defaults.instanceSize;
  let resize: ResizePlan | undefined;
  if (wantedSize !== undefined && wantedSize !== currentSize) {
    if (!options.resizable)
      unresolved.push({
        kind: 'instance.resize',
        key: 'instance',
        detail: `the host's platform cannot resize it to ${wantedSize} (a physical machine keeps its size)`,
      });
    else
      resize = {
        ...(currentSize === undefined ? {} : { from: currentSize }),
        to: wantedSize,
        preferred: (persona?.instance?.preferredSizes ?? []).filter((s) => s !== wantedSize),
      };
  }

  const tableAfter = table === undefined ? (applied.ingress ?? null) : table;
  const sizeAfter = wantedSize ?? currentSize;
  return {
    changes,
    ...(resize === undefined ? {} : { resize }),
    unresolved,
    applied: {
      ingress: tableAfter,
      thresholds,
      ...(sizeAfter === undefined ? {} : { instanceSize: sizeAfter }),
    },
  };
}

const normal = (value: string) => value.trim().split(/\s+/).join(' ');
