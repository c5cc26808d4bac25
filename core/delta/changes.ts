// A Delta is data: the API publishes this schema (OpenAPI), `plan` prints it, the model-level
// apply/revert walk it, and a host executor walks the same list of Changes. Every Change is
// uniform and self-describing — { kind, section, key, from, to, disruptive } — and `from` is
// the whole entry as it was, so each Change can be undone on its own.
import * as z from 'zod';
import { COLLECTIONS, type CollectionName } from '../profile/collections.js';
import {
  Application,
  BaseImage,
  CgroupLimit,
  ConfigFile,
  Configuration,
  Dns,
  EnvVar,
  ExecutionFlag,
  Filesystem,
  Firewall,
  Group,
  Instance,
  KernelModule,
  MonitoringAgent,
  Mount,
  NetworkInterface,
  OperatingSystem,
  Package,
  ProcessAllocation,
  Resources,
  Route,
  RuntimeDependency,
  Service,
  SshKey,
  StartCommand,
  SudoRule,
  Threshold,
  User,
  Volume,
} from '../profile/schema.js';

/** Every kind of Change, grouped by the part of the spec it touches. */
export const CHANGE_KINDS = [
  'instance.resize',
  'image.replace',
  'os.replace',
  'flag.set',
  'volume.attach',
  'volume.detach',
  'volume.resize',
  'filesystem.create',
  'filesystem.remove',
  'filesystem.modify',
  'mount.add',
  'mount.remove',
  'mount.modify',
  'kmod.load',
  'kmod.unload',
  'sysctl.set',
  'sysctl.unset',
  'interface.add',
  'interface.remove',
  'interface.configure',
  'route.add',
  'route.remove',
  'dns.set',
  'firewall.replace',
  'ingress.set',
  'group.add',
  'group.remove',
  'group.modify',
  'user.add',
  'user.remove',
  'user.modify',
  'sudo.grant',
  'sudo.revoke',
  'sudo.modify',
  'sshkey.authorize',
  'sshkey.revoke',
  'package.install',
  'package.remove',
  'package.upgrade',
  'runtime.install',
  'runtime.remove',
  'runtime.upgrade',
  'file.write',
  'file.delete',
  'env.set',
  'env.unset',
  'resource.resize',
  'cgroup.set',
  'cgroup.unset',
  'bandwidth.set',
  'bandwidth.unset',
  'process.add',
  'process.remove',
  'process.resize',
  'agent.install',
  'agent.remove',
  'agent.update',
  'threshold.set',
  'threshold.unset',
  'service.add',
  'service.remove',
  'service.start',
  'service.stop',
  'service.enable',
  'service.disable',
  'service.update',
  'application.configure',
] as const;
export type ChangeKind = (typeof CHANGE_KINDS)[number];

/**
 * Kinds only a persona switch carries: a Profile holds no per-interface traffic shaping and no
 * firewall table of Persona's own, so no diff of two Profiles makes them.
 */
export const SWITCH_ONLY_KINDS: readonly ChangeKind[] = ['bandwidth.set', 'bandwidth.unset', 'ingress.set'];

/**
 * What a kind does to its entry, which decides which of `from` / `to` may be null:
 * - create:  absent before, present after
 * - delete:  present before, absent after
 * - change:  present before and after
 * - set:     present after; absent or different before (writing a file or a variable is the
 *            same act whether or not it existed)
 * - replace: a singleton, which either side may lack (an instance size, the DNS settings, ...)
 */
export type ChangeEffect = 'create' | 'delete' | 'change' | 'set' | 'replace';

export interface KindInfo {
  readonly effect: ChangeEffect;
  /** The kind that undoes this one. A `set` that overwrote a value is undone by another set. */
  readonly inverse: ChangeKind;
  /**
   * The host restarts, is re-provisioned, or loses something a live revert cannot bring back
   * (data on a detached volume or a reformatted filesystem, a module in use): plan shows it,
   * and policies can require approval for it.
   */
  readonly disruptive: boolean;
}

const info = (effect: ChangeEffect, inverse: ChangeKind, disruptive = false): KindInfo => ({
  effect,
  inverse,
  disruptive,
});

export const KINDS: Readonly<Record<ChangeKind, KindInfo>> = {
  'instance.resize': info('replace', 'instance.resize', true),
  'image.replace': info('replace', 'image.replace', true),
  'os.replace': info('replace', 'os.replace', true),
  'flag.set': info('replace', 'flag.set'),
  'volume.attach': info('create', 'volume.detach'),
  'volume.detach': info('delete', 'volume.attach', true),
  'volume.resize': info('change', 'volume.resize'),
  'filesystem.create': info('create', 'filesystem.remove'),
  'filesystem.remove': info('delete', 'filesystem.create', true),
  'filesystem.modify': info('change', 'filesystem.modify', true),
  'mount.add': info('create', 'mount.remove'),
  'mount.remove': info('delete', 'mount.add'),
  'mount.modify': info('change', 'mount.modify'),
  'kmod.load': info('create', 'kmod.unload'),
  'kmod.unload': info('delete', 'kmod.load', true),
  'sysctl.set': info('set', 'sysctl.unset'),
  'sysctl.unset': info('delete', 'sysctl.set'),
  'interface.add': info('create', 'interface.remove'),
  'interface.remove': info('delete', 'interface.add'),
  'interface.configure': info('change', 'interface.configure'),
  'route.add': info('create', 'route.remove'),
  'route.remove': info('delete', 'route.add'),
  'dns.set': info('replace', 'dns.set'),
  'firewall.replace': info('replace', 'firewall.replace'),
  'ingress.set': info('replace', 'ingress.set'),
  'group.add': info('create', 'group.remove'),
  'group.remove': info('delete', 'group.add'),
  'group.modify': info('change', 'group.modify'),
  'user.add': info('create', 'user.remove'),
  'user.remove': info('delete', 'user.add'),
  'user.modify': info('change', 'user.modify'),
  'sudo.grant': info('create', 'sudo.revoke'),
  'sudo.revoke': info('delete', 'sudo.grant'),
  'sudo.modify': info('change', 'sudo.modify'),
  'sshkey.authorize': info('set', 'sshkey.revoke'),
  'sshkey.revoke': info('delete', 'sshkey.authorize'),
  'package.install': info('create', 'package.remove'),
  'package.remove': info('delete', 'package.install'),
  'package.upgrade': info('change', 'package.upgrade'),
  'runtime.install': info('create', 'runtime.remove'),
  'runtime.remove': info('delete', 'runtime.install'),
  'runtime.upgrade': info('change', 'runtime.upgrade'),
  'file.write': info('set', 'file.delete'),
  'file.delete': info('delete', 'file.write'),
  'env.set': info('set', 'env.unset'),
  'env.unset': info('delete', 'env.set'),
  'resource.resize': info('replace', 'resource.resize'),
  'cgroup.set': info('set', 'cgroup.unset'),
  'cgroup.unset': info('delete', 'cgroup.set'),
  'bandwidth.set': info('set', 'bandwidth.unset'),
  'bandwidth.unset': info('delete', 'bandwidth.set'),
  'process.add': info('create', 'process.remove'),
  'process.remove': info('delete', 'process.add'),
  'process.resize': info('change', 'process.resize'),
  'agent.install': info('create', 'agent.remove'),
  'agent.remove': info('delete', 'agent.install'),
  'agent.update': info('change', 'agent.update'),
  'threshold.set': info('set', 'threshold.unset'),
  'threshold.unset': info('delete', 'threshold.set'),
  'service.add': info('create', 'service.remove'),
  'service.remove': info('delete', 'service.add'),
  'service.start': info('change', 'service.stop'),
  'service.stop': info('change', 'service.start'),
  'service.enable': info('change', 'service.disable'),
  'service.disable': info('change', 'service.enable'),
  'service.update': info('change', 'service.update'),
  'application.configure': info('replace', 'application.configure'),
};

/** The kind that undoes a Change (see KindInfo.inverse). */
export function inverseKind(change: { readonly kind: ChangeKind; readonly from: unknown }): ChangeKind {
  const { effect, inverse } = KINDS[change.kind];
  return effect === 'set' && change.from !== null ? change.kind : inverse;
}

const kindsOf = <P extends string>(prefix: P) =>
  CHANGE_KINDS.filter((k): k is Extract<ChangeKind, `${P}.${string}`> => k.startsWith(`${prefix}.`));

// One variant per section, so that `from` and `to` are typed (and validated) as what that
// section holds and `kind` can only be one of the section's kinds.
const variant = <S extends string, P extends string, V extends z.ZodType>(section: S, prefix: P, value: V) =>
  z.strictObject({
    kind: z.enum(kindsOf(prefix)),
    section: z.literal(section),
    key: z.string().min(1).describe('The entry key; for a singleton, the section name'),
    from: value.nullable().describe('The entry before the change; null when it did not exist'),
    to: value.nullable().describe('The entry after the change; null when it is removed'),
    disruptive: z
      .boolean()
      .describe('Needs a restart or re-provisioning, or loses data a revert cannot restore'),
  });

/** A start command with the environment it ran with (secret values stay references). */
export const ProcessStart = z
  .strictObject({ command: StartCommand, environment: z.array(EnvVar) })
  .meta({ id: 'ProcessStart' });
export type ProcessStart = z.infer<typeof ProcessStart>;

/**
 * An egress rate limit on one interface (tc), as a persona sets it: a host-local parameter the
 * Profile does not hold (a capture does not read traffic shaping), so only persona switches
 * carry it.
 */
export const EgressLimit = z
  .strictObject({
    interface: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,14}$/, 'expected a network interface name such as eth0'),
    egressMbps: z.number().positive().max(400_000),
  })
  .meta({ id: 'EgressLimit' });
export type EgressLimit = z.infer<typeof EgressLimit>;

/**
 * The ports Persona's own firewall table admits (nftables `table inet persona`), beside the
 * host's own ruleset, which it leaves alone. A singleton: null is no such table.
 */
export const IngressTable = z
  .strictObject({
    rules: z.array(
      z.strictObject({
        port: z.number().int().min(1).max(65535),
        protocol: z.enum(['tcp', 'udp']),
        from: z
          .string()
          .regex(/^[0-9a-fA-F:.]+(\/\d{1,3})?$/, 'expected an IP address or CIDR')
          .optional(),
      }),
    ),
    /** Ports admitted whatever the rules say: the transport's own, so a switch never locks Persona out. */
    keep: z.array(z.number().int().min(1).max(65535)).default([]),
  })
  .meta({ id: 'IngressTable' });
export type IngressTable = z.infer<typeof IngressTable>;

const resource = <K extends string, V extends z.ZodType>(key: K, value: V) =>
  variant('resources', 'resource', value).extend({ key: z.literal(key) });

export const Change = z
  .discriminatedUnion('section', [
    variant('instance', 'instance', Instance),
    variant('baseImage', 'image', BaseImage),
    variant('os', 'os', OperatingSystem),
    variant('executionFlag', 'flag', ExecutionFlag),
    variant('volumes', 'volume', Volume),
    variant('filesystems', 'filesystem', Filesystem),
    variant('mounts', 'mount', Mount),
    variant('kernelModules', 'kmod', KernelModule).extend({
      after: z
        .string()
        .nullable()
        .describe(
          'The module this one directly follows in the load order (null: first). A load inserts it there; ' +
            'an unload records where it was, so that undoing it puts it back in the same place.',
        ),
    }),
    variant('sysctl', 'sysctl', z.string()).extend({ key: Configuration.shape.sysctl.unwrap().keyType }),
    variant('interfaces', 'interface', NetworkInterface),
    variant('routes', 'route', Route),
    variant('dns', 'dns', Dns),
    variant('groups', 'group', Group),
    variant('users', 'user', User),
    variant('sudoers', 'sudo', SudoRule),
    variant('sshKeys', 'sshkey', SshKey),
    variant('packages', 'package', Package),
    variant('runtimeDependencies', 'runtime', RuntimeDependency),
    variant('files', 'file', ConfigFile),
    variant('env', 'env', EnvVar),
    variant('firewall', 'firewall', Firewall),
    z.discriminatedUnion('key', [
      resource('cpu', Resources.shape.cpu.unwrap()),
      resource('memory', Resources.shape.memory.unwrap()),
      resource('io', Resources.shape.io.unwrap()),
      resource('bandwidth', Resources.shape.bandwidth.unwrap()),
    ]),
    variant('cgroups', 'cgroup', CgroupLimit),
    variant('bandwidth', 'bandwidth', EgressLimit).extend({
      key: EgressLimit.shape.interface.describe('The interface the limit shapes'),
    }),
    variant('ingress', 'ingress', IngressTable),
    variant('processes', 'process', ProcessAllocation).extend({
      start: ProcessStart.optional().describe(
        'How to start the process where no service runs it: the start command of the same name ' +
          'and the environment scoped to it. The diff fills it from the Profile that has the process.',
      ),
    }),
    variant('agents', 'agent', MonitoringAgent),
    variant('thresholds', 'threshold', Threshold),
    variant('services', 'service', Service),
    variant('application', 'application', Application),
  ])
  .superRefine((change, ctx) => {
    for (const message of shapeProblems(change)) ctx.addIssue({ code: 'custom', message });
  })
  .meta({ id: 'Change', description: 'One step of a Delta; carries what it needs to be reverted.' });
export type Change = z.infer<typeof Change>;
export type Section = Change['section'];

/** Every section, in no particular order (the diff's layer table orders them). */
export const SECTIONS: readonly Section[] = [
  ...new Set(
    Change.options.flatMap((o) =>
      'options' in o ? o.options.map((r) => r.shape.section.value) : [o.shape.section.value],
    ),
  ),
];

/** The sections that hold a keyed collection of the spec; the rest are fields of an object. */
export const LIST_SECTIONS = Object.keys(COLLECTIONS).filter((s): s is CollectionName & Section =>
  (SECTIONS as readonly string[]).includes(s),
);
export type ListSection = (typeof LIST_SECTIONS)[number];
export const isListSection = (s: Section): s is ListSection =>
  (LIST_SECTIONS as readonly string[]).includes(s);

/** Sections that are a single value of the spec, keyed by their own name. */
export const SINGLETON_SECTIONS = [
  'instance',
  'baseImage',
  'os',
  'executionFlag',
  'dns',
  'firewall',
  'ingress',
  'application',
] as const satisfies readonly Section[];
const isSingleton = (s: Section) => (SINGLETON_SECTIONS as readonly Section[]).includes(s);

const SERVICE_STEPS: Partial<Record<ChangeKind, (from: Service, to: Service) => boolean>> = {
  'service.start': (f, t) => f.state === 'stopped' && t.state === 'running',
  'service.stop': (f, t) => f.state === 'running' && t.state === 'stopped',
  'service.enable': (f, t) => !f.enabled && t.enabled,
  'service.disable': (f, t) => f.enabled && !t.enabled,
};

const SIDES: Readonly<Record<ChangeEffect, { from?: 'null' | 'entry'; to?: 'null' | 'entry' }>> = {
  create: { from: 'null', to: 'entry' },
  delete: { from: 'entry', to: 'null' },
  change: { from: 'entry', to: 'entry' },
  set: { to: 'entry' },
  replace: {},
};

// What the per-section schemas cannot say: which side may be null, that the entries carry
// the change's key, and that a service step does what its kind says.
function shapeProblems(change: Change): string[] {
  const problems: string[] = [];
  for (const side of ['from', 'to'] as const) {
    const expected = SIDES[KINDS[change.kind].effect][side];
    if (expected === 'null' && change[side] !== null) problems.push(`${change.kind}: ${side} must be null`);
    if (expected === 'entry' && change[side] === null) {
      problems.push(`${change.kind}: ${side} must be an entry`);
    }
  }
  if (isListSection(change.section)) {
    const key = COLLECTIONS[change.section].key;
    for (const side of [change.from, change.to]) {
      if (side !== null && key(side) !== change.key) {
        problems.push(`${change.kind}: entry key "${key(side)}" is not the change's key "${change.key}"`);
      }
    }
  } else if (isSingleton(change.section) && change.key !== change.section) {
    problems.push(`${change.kind}: the key of a ${change.section} change is "${change.section}"`);
  }
  const step = SERVICE_STEPS[change.kind];
  if (step !== undefined && change.section === 'services' && change.from !== null && change.to !== null) {
    if (!step(change.from, change.to)) problems.push(`${change.kind} does not go between those states`);
  }
  return problems;
}

export const ProfileRef = z
  .strictObject({ name: z.string().min(1), version: z.number().int().positive().optional() })
  .meta({ id: 'ProfileRef' });
export type ProfileRef = z.infer<typeof ProfileRef>;

export const DeltaSummary = z
  .strictObject({
    changes: z.number().int().nonnegative(),
    disruptive: z.number().int().nonnegative(),
    byKind: z.partialRecord(z.enum(CHANGE_KINDS), z.number().int().positive()),
  })
  .meta({ id: 'DeltaSummary' });
export type DeltaSummary = z.infer<typeof DeltaSummary>;

export const Delta = z
  .strictObject({
    from: ProfileRef,
    to: ProfileRef,
    changes: z.array(Change).describe('Applicable in this order; undone in the reverse order'),
    summary: DeltaSummary,
  })
  .meta({ id: 'Delta', description: 'The ordered Changes that turn one Profile into another.' });
export type Delta = z.infer<typeof Delta>;

export function summarize(changes: readonly Change[]): DeltaSummary {
  const counts = new Map<ChangeKind, number>();
  for (const c of changes) counts.set(c.kind, (counts.get(c.kind) ?? 0) + 1);
  const byKind: Partial<Record<ChangeKind, number>> = {};
  // Listed in CHANGE_KINDS order so that equal deltas print and serialise identically.
  for (const kind of CHANGE_KINDS) {
    const n = counts.get(kind);
    if (n !== undefined) byKind[kind] = n;
  }
  return { changes: changes.length, disruptive: changes.filter((c) => c.disruptive).length, byKind };
}
