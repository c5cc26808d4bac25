// service.start, service.stop and service.enable/disable: through systemd when it runs the
// host, else through `service` and update-rc.d (sysvinit), else recorded as unresolved — a
// host with no init system to ask is not faked. Revert puts the service back in the state it
// was read in before.
import type { Change } from '../../delta/changes.js';
import { InvalidInputError } from '../../errors.js';
import { displayValue, sh } from '../../transport/shell.js';
import type { Transport } from '../../transport/transport.js';
import { changed, type Executor, runOk, unchanged, unresolved } from './executor.js';

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
    const active = await transport.run(sh`systemctl is-active --quiet -- ${name}`);
    const enabled = await transport.run(sh`systemctl is-enabled --quiet -- ${name}`);
    return { init, running: active.exitCode === 0, enabled: enabled.exitCode === 0 };
  }
  const status = await transport.run(sh`service ${name} status`);
  const links = await transport.run(
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
