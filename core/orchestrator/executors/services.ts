// service.start, service.stop and service.enable/disable: through systemd when it runs the
// host, else through `service` and update-rc.d (sysvinit), else recorded as unresolved — a
// host with no init system to ask is not faked. Revert puts the service back in the state it
// was read in before.
// service.add, service.update and service.remove: the unit file or init script itself arrives
// and goes with the package and file Changes around them. Add checks that it is there (and is
// what the Profile hashed); update has systemd read it again; remove stops and disables what
// runs, so that nothing is left running from a unit about to go.
import type { Change } from '../../delta/changes.js';
import { InvalidInputError } from '../../errors.js';
import type { Service } from '../../profile/schema.js';
import { displayValue, sh } from '../../transport/shell.js';
import type { Transport } from '../../transport/transport.js';
import { HostStateConflictError } from '../errors.js';
import { changed, type Executor, probe, runOk, unchanged, unresolved } from './executor.js';

export const INIT_SYSTEMS = ['systemd', 'sysvinit', 'none'] as const;
export type InitSystem = (typeof INIT_SYSTEMS)[number];

// Unit and init script names: never starting with "-", so `service` and update-rc.d, which take
// no `--`, cannot read one as an option.
const SERVICE = /^[A-Za-z0-9_][A-Za-z0-9_.@:-]{0,254}$/;

export async function initSystem(transport: Transport): Promise<InitSystem> {
  const { stdout } = await runOk(
    transport,
    'finding the init system',
    [
      'if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then echo systemd',
      'elif command -v service >/dev/null 2>&1; then echo sysvinit',
      'else echo none; fi',
    ].join('\n'),
  );
  const found = stdout.trim();
  return (INIT_SYSTEMS as readonly string[]).includes(found) ? (found as InitSystem) : 'none';
}

interface ServiceState {
  readonly init: InitSystem;
  readonly running: boolean | null;
  readonly enabled: boolean | null;
}

async function readState(transport: Transport, name: string): Promise<ServiceState> {
  const init = await initSystem(transport);
  if (init === 'none') return { init, running: null, enabled: null };
  if (init === 'systemd') {
    const active = await probe(transport, `checking ${name}`, sh`systemctl is-active --quiet -- ${name}`);
    const enabled = await probe(transport, `checking ${name}`, sh`systemctl is-enabled --quiet -- ${name}`);
    return { init, running: active.exitCode === 0, enabled: enabled.exitCode === 0 };
  }
  const status = await probe(transport, `checking ${name}`, sh`service ${name} status`);
  const links = await probe(
    transport,
    `checking ${name}`,
    sh`n=${name}; for f in /etc/rc[2345].d/S[0-9][0-9]"$n"; do [ -e "$f" ] && exit 0; done; exit 1`,
  );
  return { init, running: status.exitCode === 0, enabled: links.exitCode === 0 };
}

function command(init: InitSystem, name: string, action: 'start' | 'stop' | 'enable' | 'disable'): string {
  if (init === 'systemd') return sh`systemctl ${action} -- ${name}`;
  if (action === 'start' || action === 'stop') return sh`service ${name} ${action}`;
  return sh`update-rc.d ${name} ${action}`;
}

type ServiceChange = Extract<Change, { section: 'services' }>;

function serviceChange(change: Change): ServiceChange {
  if (change.section !== 'services') throw new TypeError(`${change.kind} is not a service change`);
  if (!SERVICE.test(change.key)) {
    throw new InvalidInputError(`service ${displayValue(change.key)} is not a service name`, [
      { path: 'key', message: 'expected letters, digits, "_", ".", "@", ":" or "-", not starting with "-"' },
    ]);
  }
  return change;
}

const STEPS = {
  'service.start': { field: 'running', want: true, action: 'start', undo: 'stop' },
  'service.stop': { field: 'running', want: false, action: 'stop', undo: 'start' },
  'service.enable': { field: 'enabled', want: true, action: 'enable', undo: 'disable' },
  'service.disable': { field: 'enabled', want: false, action: 'disable', undo: 'enable' },
} as const;
type StepKind = keyof typeof STEPS;

function step(c: ServiceChange) {
  const s = STEPS[c.kind as StepKind];
  if (s === undefined) throw new TypeError(`${c.kind} is not handled by the service executor`);
  return s;
}

export const serviceExecutor: Executor = {
  kinds: ['service.start', 'service.stop', 'service.enable', 'service.disable'],

  async prepare(ctx, change) {
    return readState(ctx.transport, serviceChange(change).key);
  },

  async apply(ctx, change) {
    const c = serviceChange(change);
    const s = step(c);
    // Read again rather than taken from prior: an apply finished after a crash finds its work.
    const state = await readState(ctx.transport, c.key);
    if (state.init === 'none')
      return unresolved(`${c.key}: the host has no init system (systemd or service) to ${s.action} it`);
    if (state[s.field] === s.want)
      return unchanged(
        `${c.key} is already ${s.field === 'running' ? (s.want ? 'running' : 'stopped') : s.want ? 'enabled' : 'disabled'}`,
      );
    await runOk(ctx.transport, `${s.action} ${c.key}`, command(state.init, c.key, s.action));
    return changed(`${s.action} ${c.key} (${state.init})`);
  },

  async revert(ctx, change, prior) {
    const c = serviceChange(change);
    const s = step(c);
    const before = prior as ServiceState;
    if (before.init === 'none' || before[s.field] === null) return unchanged(`${c.key} was not changed`);
    const now = await readState(ctx.transport, c.key);
    if (now[s.field] === before[s.field]) return unchanged(`${c.key} is as it was`);
    const action = before[s.field] === s.want ? s.action : s.undo;
    await runOk(ctx.transport, `${action} ${c.key}`, command(now.init, c.key, action));
    return changed(`${action} ${c.key} again`);
  },
};

// Where systemd looks for a unit, first wins: /etc overrides /run overrides the package's copy.
const UNIT_DIRS = [
  '/etc/systemd/system',
  '/run/systemd/system',
  '/usr/local/lib/systemd/system',
  '/usr/lib/systemd/system',
  '/lib/systemd/system',
];

interface UnitFile {
  readonly path: string;
  readonly sha256: string;
}

/** The paths a service's unit (or init script) may be at, in the order its manager reads them. */
export function unitPaths(manager: Service['manager'], name: string): string[] {
  if (manager === 'systemd') {
    // An instance (getty@tty1) runs from its template's file unless it has one of its own.
    const template = name.includes('@') ? name.replace(/@.*$/, '@') : undefined;
    return UNIT_DIRS.flatMap((d) => [
      `${d}/${name}.service`,
      ...(template === undefined ? [] : [`${d}/${template}.service`]),
    ]);
  }
  return [`/etc/init.d/${name}`];
}

/** The first of the unit's paths that is a file on the host, with its SHA-256; null when none is. */
async function findUnit(
  transport: Transport,
  manager: Service['manager'],
  name: string,
): Promise<UnitFile | null> {
  const { stdout } = await runOk(
    transport,
    `looking for the unit of ${name}`,
    sh`for f in ${unitPaths(manager, name)}; do if [ -f "$f" ]; then sha256sum -- "$f"; exit 0; fi; done; exit 0`,
  );
  const m = /^([0-9a-f]{64}) [ *](.*)$/.exec(stdout.trim());
  return m?.[1] && m[2] ? { path: m[2], sha256: `sha256:${m[1]}` } : null;
}

interface UnitCheck {
  readonly problem?: string;
  readonly detail: string;
}

/**
 * Whether the host has the unit the entry names, as the Profile hashed it. A manager this
 * executor cannot drive is returned as a problem (the Change is unresolved); a missing or other
 * unit is a conflict: the package or file Change meant to bring it did not.
 */
async function checkUnit(
  transport: Transport,
  c: ServiceChange,
  entry: Service,
  init: InitSystem,
): Promise<UnitCheck> {
  if (entry.manager !== 'systemd' && entry.manager !== 'sysvinit') {
    return { problem: `${c.key} is run by ${entry.manager}, which Persona does not drive yet`, detail: '' };
  }
  if (init === 'none')
    return { problem: `${c.key}: the host has no init system (systemd or service)`, detail: '' };
  if (entry.manager === 'systemd' && init !== 'systemd') {
    return { problem: `${c.key} is a systemd unit and systemd does not run this host`, detail: '' };
  }
  const unit = await findUnit(transport, entry.manager, c.key);
  if (unit === null) {
    throw new HostStateConflictError(
      `service ${c.key}: no ${entry.manager === 'systemd' ? 'unit file' : 'init script'} on the host (${unitPaths(entry.manager, c.key)[0]}); the package or file Change that brings it must come first`,
      c.kind,
      c.key,
    );
  }
  const hash = entry.unitHash;
  if (hash === undefined) return { detail: `${unit.path} is on the host` };
  // A keyed hash (a unit holding credentials) needs the source's key: presence is what can be checked.
  if (!hash.startsWith('sha256:')) return { detail: `${unit.path} is on the host (its hash is keyed)` };
  if (hash !== unit.sha256) {
    throw new HostStateConflictError(
      `service ${c.key}: ${unit.path} on the host hashes to ${unit.sha256}, not ${hash}`,
      c.kind,
      c.key,
    );
  }
  return { detail: `${unit.path} is on the host, as hashed` };
}

function entryOf(c: ServiceChange): Service {
  const entry = c.to ?? c.from;
  if (entry === null) throw new TypeError(`${c.kind} ${c.key} has neither side`);
  return entry;
}

/** service.add: the unit is there (a package or file Change brought it); nothing else changes. */
export const serviceAddExecutor: Executor = {
  kinds: ['service.add'],

  async prepare() {
    return null;
  },

  async apply(ctx, change) {
    const c = serviceChange(change);
    const init = await initSystem(ctx.transport);
    const check = await checkUnit(ctx.transport, c, entryOf(c), init);
    if (check.problem !== undefined) return unresolved(check.problem);
    return unchanged(`${c.key}: ${check.detail}`);
  },

  async revert(_ctx, change) {
    // The unit goes with the Change that brought it.
    return unchanged(`${serviceChange(change).key} was not changed`);
  },
};

async function needsReload(transport: Transport, name: string): Promise<boolean> {
  const { stdout } = await runOk(
    transport,
    `asking systemd about ${name}`,
    sh`systemctl show --property=NeedDaemonReload --value -- ${`${name}.service`}`,
  );
  return stdout.trim() === 'yes';
}

/**
 * service.update: a new unit (or manager) for a service that stays. Its file came with a file or
 * package Change; systemd reads it again here (revert has it read the old one, put back by then
 * or next). A running service keeps running as it was started: the Change says nothing of a restart.
 */
export const serviceUpdateExecutor: Executor = {
  kinds: ['service.update'],

  async prepare() {
    return null;
  },

  async apply(ctx, change) {
    const c = serviceChange(change);
    const init = await initSystem(ctx.transport);
    const check = await checkUnit(ctx.transport, c, entryOf(c), init);
    if (check.problem !== undefined) return unresolved(check.problem);
    if (init !== 'systemd')
      return unchanged(`${c.key}: ${check.detail}; its init script is read at each start`);
    if (!(await needsReload(ctx.transport, c.key)))
      return unchanged(`${c.key}: ${check.detail}; systemd has read it`);
    await runOk(ctx.transport, 'systemctl daemon-reload', 'systemctl daemon-reload');
    return changed(`${c.key}: ${check.detail}; systemd read it again`);
  },

  async revert(ctx, change) {
    const c = serviceChange(change);
    if ((await initSystem(ctx.transport)) !== 'systemd') return unchanged(`${c.key} was not changed`);
    if (!(await needsReload(ctx.transport, c.key)))
      return unchanged(`${c.key}: systemd reads its unit as it is`);
    await runOk(ctx.transport, 'systemctl daemon-reload', 'systemctl daemon-reload');
    return changed(`${c.key}: systemd read its unit again`);
  },
};

/**
 * service.remove: what still runs or starts at boot from the service is stopped and disabled
 * (the diff stops and disables first, so usually nothing is), and revert starts and enables it
 * again as it was read. The unit file goes with its package or file Change.
 */
export const serviceRemoveExecutor: Executor = {
  kinds: ['service.remove'],

  async prepare(ctx, change) {
    return readState(ctx.transport, serviceChange(change).key);
  },

  async apply(ctx, change) {
    const c = serviceChange(change);
    const state = await readState(ctx.transport, c.key);
    if (state.init === 'none')
      return unresolved(`${c.key}: the host has no init system (systemd or service)`);
    const done: string[] = [];
    if (state.running === true) {
      await runOk(ctx.transport, `stop ${c.key}`, command(state.init, c.key, 'stop'));
      done.push('stopped');
    }
    if (state.enabled === true) {
      await runOk(ctx.transport, `disable ${c.key}`, command(state.init, c.key, 'disable'));
      done.push('disabled');
    }
    return done.length === 0
      ? unchanged(`${c.key} is stopped and disabled; its unit goes with its package or file Change`)
      : changed(`${c.key} ${done.join(' and ')} (${state.init})`);
  },

  async revert(ctx, change, prior) {
    const c = serviceChange(change);
    const before = prior as ServiceState;
    if (before.init === 'none') return unchanged(`${c.key} was not changed`);
    const now = await readState(ctx.transport, c.key);
    const done: string[] = [];
    if (before.enabled === true && now.enabled === false) {
      await runOk(ctx.transport, `enable ${c.key}`, command(now.init, c.key, 'enable'));
      done.push('enabled');
    }
    if (before.running === true && now.running === false) {
      await runOk(ctx.transport, `start ${c.key}`, command(now.init, c.key, 'start'));
      done.push('started');
    }
    return done.length === 0
      ? unchanged(`${c.key} is as it was`)
      : changed(`${c.key} ${done.join(' and ')} again`);
  },
};
