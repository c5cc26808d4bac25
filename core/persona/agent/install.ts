// Installs persona-agent on a host over its Transport (SSH or SSM): the script, its
// configuration and its own credential, root-owned, and a way for the host's init to run it —
// a systemd timer where systemd is PID 1, else a supervisor loop started with setsid (and
// `@reboot` in cron where cron is). Installing again replaces the same files, keeps a
// credential that still verifies for the host, and leaves one supervisor running.
import { readFileSync } from 'node:fs';
import { InvalidInputError } from '../../errors.js';
import { TransportError } from '../../transport/errors.js';
import { displayValue, sh } from '../../transport/shell.js';
import type { Transport } from '../../transport/transport.js';
import type { AgentCredentials } from './credentials.js';

export const AGENT_PATHS = {
  script: '/usr/local/lib/persona-agent/persona-agent.sh',
  libDir: '/usr/local/lib/persona-agent',
  confDir: '/etc/persona-agent',
  config: '/etc/persona-agent/agent.conf',
  credential: '/etc/persona-agent/credential',
  stateDir: '/var/lib/persona-agent',
  log: '/var/log/persona-agent.log',
  pidfile: '/run/persona-agent.pid',
  service: '/etc/systemd/system/persona-agent.service',
  timer: '/etc/systemd/system/persona-agent.timer',
  cron: '/etc/cron.d/persona-agent',
} as const;

export const DEFAULT_AGENT_INTERVAL_SECONDS = 60;

let scriptText: string | undefined;
/** The agent script, read once from beside this module (bundles carry it as a file). */
export function agentScript(): string {
  scriptText ??= readFileSync(new URL('./persona-agent.sh', import.meta.url), 'utf8');
  return scriptText;
}

export interface AgentSettings {
  /** The API the agent calls: the stage URL in AWS, a tunnel's loopback address when embedded. */
  readonly endpoint: string;
  readonly host: string;
  readonly intervalSeconds: number;
}

const HOST = /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/;
// What the agent's own check of the endpoint accepts (persona-agent.sh, read_conf).
const ENDPOINT = /^https?:\/\/[A-Za-z0-9.:/_~%[\]-]+$/;

export function checkSettings(settings: AgentSettings): AgentSettings {
  const issues = [];
  if (!ENDPOINT.test(settings.endpoint) || settings.endpoint.split('//').length > 2) {
    issues.push({
      path: 'endpoint',
      message: `${displayValue(settings.endpoint)} is not an http(s) URL of letters, digits and . : / _ ~ % [ ] -`,
    });
  }
  if (!HOST.test(settings.host)) issues.push({ path: 'host', message: 'not a host name' });
  const s = settings.intervalSeconds;
  if (!Number.isInteger(s) || s < 5 || s > 3600) {
    issues.push({ path: 'intervalSeconds', message: 'expected a whole number of seconds, 5 to 3600' });
  }
  if (issues.length > 0) throw new InvalidInputError('the agent settings are not valid', issues);
  return settings;
}

/** agent.conf: read line by line by the agent, never sourced. */
export function renderConfig(settings: AgentSettings): string {
  checkSettings(settings);
  return [
    '# persona-agent configuration, written by Persona at install',
    `endpoint=${settings.endpoint}`,
    `host=${settings.host}`,
    `interval=${settings.intervalSeconds}`,
    '',
  ].join('\n');
}

/** The systemd units: a oneshot service for one cycle and a timer every interval. */
export function systemdUnits(intervalSeconds: number): { service: string; timer: string } {
  return {
    service: [
      '[Unit]',
      'Description=Persona agent: report metrics and apply host-local persona parameters',
      'After=network-online.target',
      'Wants=network-online.target',
      '',
      '[Service]',
      'Type=oneshot',
      `ExecStart=/bin/sh ${AGENT_PATHS.script} once`,
      `TimeoutStartSec=${Math.max(60, intervalSeconds)}`,
      'NoNewPrivileges=yes',
      'PrivateTmp=yes',
      '',
    ].join('\n'),
    timer: [
      '[Unit]',
      'Description=Run the Persona agent every interval',
      '',
      '[Timer]',
      'OnBootSec=30s',
      `OnUnitActiveSec=${intervalSeconds}s`,
      'AccuracySec=1s',
      '',
      '[Install]',
      'WantedBy=timers.target',
      '',
    ].join('\n'),
  };
}

export interface HostFacts {
  readonly root: boolean;
  readonly init: 'systemd' | 'supervised';
  readonly cron: boolean;
  /** The HTTP client the agent will use: curl, wget, nc (loopback only) or none. */
  readonly http: 'curl' | 'wget' | 'nc' | 'none';
  readonly awk: boolean;
}

const FACTS = [
  'if [ "$(id -u)" = 0 ]; then echo root=yes; else echo root=no; fi',
  // systemd's own test for "booted with systemd" (sd_booted).
  'if [ -d /run/systemd/system ]; then echo init=systemd; else echo init=supervised; fi',
  'if [ -d /etc/cron.d ] && { command -v cron || command -v crond; } >/dev/null 2>&1; then echo cron=yes; else echo cron=no; fi',
  'if command -v curl >/dev/null 2>&1; then echo http=curl; elif command -v wget >/dev/null 2>&1; then echo http=wget; elif command -v nc >/dev/null 2>&1; then echo http=nc; else echo http=none; fi',
  'if command -v awk >/dev/null 2>&1; then echo awk=yes; else echo awk=no; fi',
].join('\n');

export async function hostFacts(transport: Transport): Promise<HostFacts> {
  const out = await runOk(transport, FACTS, 'inspect the host');
  const facts = Object.fromEntries(
    out
      .split('\n')
      .map((l) => l.split('='))
      .filter((p) => p.length === 2),
  ) as Record<string, string>;
  return {
    root: facts.root === 'yes',
    init: facts.init === 'systemd' ? 'systemd' : 'supervised',
    cron: facts.cron === 'yes',
    http: (['curl', 'wget', 'nc'] as const).find((c) => c === facts.http) ?? 'none',
    awk: facts.awk === 'yes',
  };
}

export interface InstallDeps {
  readonly transport: Transport;
  readonly credentials: AgentCredentials;
  readonly now: () => Date;
}

export interface InstallResult {
  readonly credentialId: string;
  /** False when the credential already on the host still verified and was kept. */
  readonly issued: boolean;
  readonly init: HostFacts['init'];
  readonly cron: boolean;
  readonly http: HostFacts['http'];
  /** Credentials of the host revoked because this install replaced them. */
  readonly revoked: readonly string[];
}

export async function installAgent(deps: InstallDeps, settings: AgentSettings): Promise<InstallResult> {
  checkSettings(settings);
  const { transport, credentials } = deps;
  const facts = await hostFacts(transport);
  if (!facts.root) {
    throw new InvalidInputError(
      `the agent is installed as root; ${transport.target} logs in as another user`,
      [{ path: 'host', message: 'the transport must log in as root' }],
    );
  }
  if (!facts.awk) {
    throw new InvalidInputError(`${transport.target} has no awk, which the agent reads /proc with`, [
      { path: 'host', message: 'awk is missing' },
    ]);
  }
  if (
    facts.http === 'none' ||
    (facts.http === 'nc' && !/^http:\/\/(127\.|localhost[:/]|\[::1\])/.test(settings.endpoint))
  ) {
    throw new InvalidInputError(
      `${transport.target} has no HTTP client for ${settings.endpoint}: install curl or wget (nc serves a loopback endpoint only)`,
      [
        {
          path: 'endpoint',
          message: `the host has ${facts.http === 'nc' ? 'only nc' : 'no curl, wget or nc'}`,
        },
      ],
    );
  }

  // A credential the host already holds and that still verifies for it is kept: installing
  // again changes nothing on the host. Otherwise a new one replaces every other of the host.
  const existing = await transport.getFile(AGENT_PATHS.credential).then(
    (bytes) => Buffer.from(bytes).toString('utf8').trim(),
    () => undefined,
  );
  let token: string | undefined;
  let credentialId: string | undefined;
  if (existing !== undefined) {
    const principal = await credentials.verify(existing, deps.now()).catch(() => undefined);
    if (principal?.host === settings.host) {
      token = existing;
      credentialId = principal.id;
    }
  }
  const issued = token === undefined;
  if (token === undefined || credentialId === undefined) {
    const fresh = await credentials.issue(settings.host, deps.now());
    token = fresh.token;
    credentialId = fresh.id;
  }

  const p = AGENT_PATHS;
  await runOk(
    transport,
    [
      'set -e',
      sh`install -d -m 0755 -o root -g root -- ${p.libDir}`,
      sh`install -d -m 0700 -o root -g root -- ${p.confDir} ${p.stateDir}`,
    ].join('\n'),
    'make the agent directories',
  );
  await transport.putFile(p.script, Buffer.from(agentScript()), { mode: 0o755 });
  await transport.putFile(p.config, Buffer.from(renderConfig(settings)), { mode: 0o600 });
  await transport.putFile(p.credential, Buffer.from(`${token}\n`), { mode: 0o600 });
  await runOk(
    transport,
    sh`chown -- root:root ${p.script} ${p.config} ${p.credential}`,
    'own the agent files',
  );

  if (facts.init === 'systemd') {
    const units = systemdUnits(settings.intervalSeconds);
    await transport.putFile(p.service, Buffer.from(units.service), { mode: 0o644 });
    await transport.putFile(p.timer, Buffer.from(units.timer), { mode: 0o644 });
    await runOk(
      transport,
      [
        'set -e',
        'systemctl daemon-reload',
        'systemctl enable persona-agent.timer',
        'systemctl restart persona-agent.timer',
        'systemctl start --no-block persona-agent.service',
      ].join('\n'),
      'start the agent under systemd',
    );
  } else {
    if (facts.cron) {
      await transport.putFile(p.cron, Buffer.from(`@reboot root /bin/sh ${p.script} start\n`), {
        mode: 0o644,
      });
    }
    // stop then start: a re-install runs the new script, and one supervisor only.
    await runOk(
      transport,
      [sh`/bin/sh ${p.script} stop`, sh`/bin/sh ${p.script} start`].join('\n'),
      'start the agent supervisor',
    );
  }
  const revoked = await credentials.revoke(settings.host, deps.now(), { keep: credentialId });
  return { credentialId, issued, init: facts.init, cron: facts.cron, http: facts.http, revoked };
}

/** Stops the agent and removes everything the install wrote. */
export async function uninstallAgent(transport: Transport): Promise<void> {
  const p = AGENT_PATHS;
  await runOk(
    transport,
    [
      sh`if [ -d /run/systemd/system ] && [ -e ${p.timer} ]; then systemctl disable --now persona-agent.timer persona-agent.service || true; fi`,
      sh`if [ -e ${p.script} ]; then /bin/sh ${p.script} stop; fi`,
      sh`rm -f -- ${p.service} ${p.timer} ${p.cron} ${p.pidfile} ${p.log} ${`${p.log}.1`}`,
      sh`rm -rf -- ${p.libDir} ${p.confDir} ${p.stateDir}`,
      'if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi',
    ].join('\n'),
    'remove the agent',
  );
}

async function runOk(transport: Transport, script: string, what: string): Promise<string> {
  const result = await transport.run(script, { timeoutMs: 60_000 });
  if (result.exitCode !== 0) {
    throw new TransportError(
      `cannot ${what} on ${transport.target}: ${result.stderr.trim() || `exit code ${result.exitCode}`}`,
      'failed',
      transport.target,
    );
  }
  return result.stdout;
}
