// The Profile built from the script's real output on a Debian 12 machine (fixtures/record.ts):
// not booted with systemd, no firewall tools, no loadable modules, a stand-in application.
import { describe, expect, it } from 'vitest';
import { parseSections } from '../../../core/capture/sections.js';
import { FIXTURE_APP, FIXTURE_PROCESS, FIXTURE_SECRETS } from './fixtures/record.js';
import { build, CAPTURED_AT, fixture, reasons } from './helpers.js';

const output = fixture('debian-12');
const built = build(output, [FIXTURE_PROCESS]);
const spec = built.valid.spec;

describe('buildProfile on a recorded Debian 12 host', () => {
  it('produces a Profile that validates, stamped with the capture time', () => {
    expect(built.valid.apiVersion).toBe('persona/v1');
    expect(built.valid.metadata.name).toBe('fixture-host');
    expect(built.valid.observed?.capturedAt).toBe(CAPTURED_AT);
  });

  it('reads the distribution from os-release and the kernel and architecture from uname', () => {
    expect(spec.os).toEqual({
      family: 'linux',
      distribution: 'debian',
      version: '12',
      codename: 'bookworm',
      kernel: '6.18.44-fc-v657',
      arch: 'x86_64',
      hostname: 'vm',
      timezone: 'Etc/UTC',
    });
  });

  it('lists every installed dpkg package with its version and architecture', () => {
    const installed = (parseSections(output).get('packages')?.text ?? '')
      .split('\n')
      .filter((l) => /\t.i $/.test(l)).length;
    expect(installed).toBe(734);
    expect(spec.packages).toHaveLength(installed);
    expect(spec.packages.every((p) => p.manager === 'apt')).toBe(true);
    expect(spec.packages.find((p) => p.name === 'passwd')).toEqual({
      name: 'passwd',
      version: '1:4.13+dfsg1-1+deb12u1',
      manager: 'apt',
      arch: 'amd64',
    });
  });

  it('describes init scripts when systemd is not running, with the hash of each script', () => {
    expect(spec.services.map((s) => s.name)).toEqual([
      'dbus',
      'hwclock.sh',
      'postgresql',
      'procps',
      'ssh',
      'x11-common',
    ]);
    expect(spec.services.every((s) => s.manager === 'sysvinit' && s.enabled)).toBe(true);
    const ssh = spec.services.find((s) => s.name === 'ssh');
    const initScript = spec.configuration.files.find((f) => f.path === '/etc/init.d/ssh');
    expect(ssh?.unitHash).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(ssh?.unitHash).toBe(initScript?.hash);
    expect(spec.services.find((s) => s.name === 'postgresql')?.state).toBe('stopped');
  });

  it('takes the application environment, with credentials as references to the secret store', () => {
    const env = Object.fromEntries(spec.configuration.env.map((e) => [e.name, e]));
    expect(env.APP_ENV).toEqual({ name: 'APP_ENV', value: 'production', scope: FIXTURE_PROCESS });
    for (const name of ['DB_PASSWORD', 'STRIPE_API_KEY', 'DATABASE_URL']) {
      expect(env[name]).toEqual({
        name,
        scope: FIXTURE_PROCESS,
        sensitive: true,
        secretRef: { provider: 'local', key: `vm/env/${FIXTURE_PROCESS}/${name}` },
      });
    }
    expect(built.secrets.filter((s) => s.kind === 'env').map((s) => [s.source, s.value])).toEqual(
      Object.entries(FIXTURE_SECRETS).map(([name, value]) => [`${FIXTURE_PROCESS}/${name}`, value]),
    );
  });

  it('never puts a secret value in the Profile or in the unknowns', () => {
    const everything = built.json + JSON.stringify(built.unknowns);
    for (const value of Object.values(FIXTURE_SECRETS)) expect(everything).not.toContain(value);
    expect(everything).not.toContain('fixture-url-password');
  });

  it('lists configuration files with their hashes, and credential files by reference only', () => {
    const files = new Map(spec.configuration.files.map((f) => [f.path, f]));
    expect(files.size).toBeGreaterThan(1000);
    expect(files.get('/etc')).toMatchObject({
      type: 'directory',
      mode: '0755',
      owner: 'root',
      group: 'root',
    });
    expect(files.get('/etc/passwd')).toMatchObject({ type: 'file', hash: expect.stringMatching(/^sha256:/) });
    expect(files.get(`${FIXTURE_APP}/config/app.yaml`)).toMatchObject({ type: 'file', size: 24 });
    expect(files.get(`${FIXTURE_APP}/tls/ca.crt`)?.hash).toMatch(/^sha256:/);
    // By name (.env, shadow, *_key) and by content (a PEM private key under an innocent name).
    for (const path of [
      '/etc/shadow',
      '/etc/gshadow',
      '/etc/ssh/ssh_host_ed25519_key',
      `${FIXTURE_APP}/.env`,
      `${FIXTURE_APP}/tls/server.pem`,
    ]) {
      const file = files.get(path);
      expect(file, path).toMatchObject({
        type: 'file',
        sensitive: true,
        secretRef: { provider: 'local', key: `vm/file${path}` },
      });
      expect(file?.hash, path).toBeUndefined();
      expect(built.secrets.find((s) => s.source === path)).toMatchObject({ kind: 'file' });
    }
    expect(built.secrets.filter((s) => s.kind === 'file').every((s) => s.value === undefined)).toBe(true);
  });

  it('names what this host could not tell, with the reason', () => {
    expect(reasons(built, 'firewall')).toEqual(['neither nft nor iptables-save found']);
    expect(reasons(built, 'modules')).toEqual([
      'no /proc/modules: the kernel has no loadable module support, or hides it from this host',
    ]);
    expect(spec.network.firewall).toBeUndefined();
    expect(spec.kernelModules).toEqual([]);
  });

  it('lists the host’s long-lived processes, not passing commands nor the capture’s own', () => {
    const names = spec.processes.map((p) => p.name);
    expect(names).toEqual(['memfd:sealed-91', 'process_api', FIXTURE_PROCESS, 'sshd']);
    expect(spec.processes.find((p) => p.name === FIXTURE_PROCESS)).toMatchObject({
      command: `${FIXTURE_APP}/bin/${FIXTURE_PROCESS} 3600`,
      user: 'root',
      nice: 0,
    });
  });

  it('describes the declared application: its start command and a health check', () => {
    expect(spec.application.startCommands).toEqual([
      { name: FIXTURE_PROCESS, command: `${FIXTURE_APP}/bin/${FIXTURE_PROCESS} 3600`, user: 'root' },
    ]);
    expect(spec.application.healthChecks).toEqual([
      { type: 'process', name: `${FIXTURE_PROCESS}-running`, process: FIXTURE_PROCESS, minCount: 1 },
    ]);
  });

  it('keeps tunable kernel parameters, not state, secrets or size-derived defaults', () => {
    const sysctl = spec.configuration.sysctl;
    expect(sysctl['net.ipv4.ip_forward']).toMatch(/^[01]$/);
    expect(sysctl['net.ipv4.ip_local_port_range']).toMatch(/^\d+ \d+$/);
    expect(Object.keys(sysctl).filter((k) => k.startsWith('kernel.random.'))).toEqual([]);
    for (const key of [
      'kernel.hostname',
      'kernel.ns_last_pid',
      'fs.file-max',
      'kernel.threads-max',
      'vm.min_free_kbytes',
    ]) {
      expect(sysctl[key], key).toBeUndefined();
    }
    // Size-derived, but a sysctl.d file (systemd's 50-pid-max.conf) names it: kept.
    expect(sysctl['kernel.pid_max']).toBe('32768');
  });

  it('observes listening sockets, connections and usage', () => {
    const observed = built.valid.observed;
    expect(observed?.listening).toContainEqual({ protocol: 'tcp', address: '0.0.0.0', port: 2024 });
    expect(observed?.connections.length).toBeGreaterThan(0);
    expect(observed?.usage?.data.map((d) => d.type)).toEqual(expect.arrayContaining(['logs', 'application']));
    const perf = observed?.usage?.performance;
    expect(perf?.cpuUtilization).toBeGreaterThanOrEqual(0);
    expect(perf?.cpuUtilization).toBeLessThanOrEqual(1);
    expect(perf?.loadAverage).toHaveLength(3);
  });
});
