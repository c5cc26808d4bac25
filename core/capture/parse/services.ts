// Services: systemd units, OpenRC or SysV init scripts, with whether each runs and starts at
// boot, and the hash of its unit file (whose content is in the snapshot).
import type { z } from 'zod';
import { Service } from '../../profile/schema.js';
import { lines, partWith } from '../sections.js';
import type { ParseContext } from './context.js';

type ServiceInput = z.input<typeof Service>;

// Unit file states that say the unit is installed to be switched on or off by an administrator.
// static, indirect, generated, transient and alias units follow from others and are listed only
// while they run; masked units are left out (the schema has no way to say "masked").
const LISTED_STATES = new Set(['enabled', 'enabled-runtime', 'disabled', 'linked', 'linked-runtime']);
const ENABLED_STATES = new Set(['enabled', 'enabled-runtime', 'linked', 'linked-runtime']);
const ACTIVE = new Set(['active', 'reloading', 'activating']);

export interface ServiceInputs {
  /** Names (comm) of running processes, for init scripts that leave no pid file. */
  readonly runningCommands: ReadonlySet<string>;
  /** Content hash of a configuration file (for /etc/init.d scripts), from the files section. */
  readonly fileHash: (path: string) => string | undefined;
  /**
   * The hash a unit file may show, given its SHA-256 (ParsedFiles.protect): a unit under /etc
   * with `Environment=DB_PASSWORD=...` in it shows a keyed hash, or none. Absent: as computed.
   */
  readonly protect?: (path: string, sha256: string) => string | undefined;
}

export function parseServices(ctx: ParseContext, inputs: ServiceInputs): ServiceInput[] {
  const section = ctx.section('services');
  if (!section) return [];
  let found: ServiceInput[] = [];
  if (partWith(section, 'systemd')) found = systemd(ctx, inputs);
  else if (partWith(section, 'openrc')) found = initScripts(ctx, 'openrc', inputs);
  else if (partWith(section, 'sysvinit')) found = initScripts(ctx, 'sysvinit', inputs);
  return ctx.keep('services', Service, found, (s) => s.name, 'service');
}

function systemd(ctx: ParseContext, inputs: ServiceInputs): ServiceInput[] {
  const section = ctx.sections.get('services');
  const active = new Map<string, boolean>();
  for (const line of lines(partWith(section, 'systemd units')?.text ?? '')) {
    const [unit, load, state] = line
      .replace(/^[●*]\s*/, '')
      .trim()
      .split(/\s+/);
    if (!unit?.endsWith('.service') || load === 'not-found' || state === undefined) continue;
    active.set(unit, ACTIVE.has(state));
  }
  const fileState = new Map<string, string>();
  for (const line of lines(partWith(section, 'systemd unit-files')?.text ?? '')) {
    const [unit, state] = line.trim().split(/\s+/);
    if (unit?.endsWith('.service') && state) fileState.set(unit, state);
  }
  // The first directory listed wins: /etc overrides /run overrides /usr/lib, as in systemd.
  const unitHash = new Map<string, string>();
  for (const line of lines(partWith(section, 'systemd unit-hashes')?.text ?? '')) {
    const m = /^([0-9a-f]{64}) [ *](.*\/)?([^/]+)$/.exec(line);
    if (!m?.[1] || !m[3] || unitHash.has(m[3])) continue;
    const sha256 = `sha256:${m[1]}`;
    const shown = inputs.protect === undefined ? sha256 : inputs.protect(`${m[2] ?? ''}${m[3]}`, sha256);
    // A unit whose hash may not be shown still wins over the copies further down the list.
    unitHash.set(m[3], shown ?? '');
  }

  const names = new Set<string>();
  for (const [unit, state] of fileState)
    if (LISTED_STATES.has(state) && !unit.endsWith('@.service')) names.add(unit);
  for (const [unit, running] of active) if (running) names.add(unit);

  const out: ServiceInput[] = [];
  for (const unit of names) {
    // An instance (getty@tty1.service) takes its file state and unit file from its template.
    const template = unit.includes('@') ? unit.replace(/@[^.]*\.service$/, '@.service') : unit;
    const state = fileState.get(unit) ?? fileState.get(template);
    const hash = (unitHash.get(unit) ?? unitHash.get(template)) || undefined;
    out.push({
      name: unit.slice(0, -'.service'.length),
      manager: 'systemd',
      state: active.get(unit) === true ? 'running' : 'stopped',
      enabled: state !== undefined && ENABLED_STATES.has(state),
      ...(hash === undefined ? {} : { unitHash: hash }),
    });
  }
  return out;
}

/**
 * Whether a SysV service runs, when it left no pid file: a process named like it (ssh → sshd,
 * postgresql → postgres, dbus → dbus-daemon). A heuristic; services with pid files do not need it.
 */
export function runsAsProcess(service: string, commands: ReadonlySet<string>): boolean {
  const name = service.replace(/\.sh$/, '');
  for (const comm of commands) {
    if (comm === name || comm === `${name}d`) return true;
    if (
      name.length >= 3 &&
      comm.startsWith(name) &&
      /^[-_.]?(d|daemon|server)?$/.test(comm.slice(name.length))
    )
      return true;
    if (comm.length >= 4 && name.startsWith(comm) && name.length - comm.length <= 2) return true;
  }
  return false;
}

function initScripts(
  ctx: ParseContext,
  manager: 'openrc' | 'sysvinit',
  inputs: ServiceInputs,
): ServiceInput[] {
  const section = ctx.sections.get('services');
  const out: ServiceInput[] = [];
  for (const line of lines(partWith(section, manager)?.text ?? '')) {
    const [name, enabled, running] = line.split('\t');
    if (!name || enabled === undefined || running === undefined) continue;
    const state =
      running === '1' || (running === '-' && runsAsProcess(name, inputs.runningCommands))
        ? 'running'
        : 'stopped';
    const hash = inputs.fileHash(`/etc/init.d/${name}`);
    out.push({
      name,
      manager,
      state,
      enabled: enabled === '1',
      ...(hash === undefined ? {} : { unitHash: hash }),
    });
  }
  return out;
}
