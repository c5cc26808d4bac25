import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupStale, createHost, destroyAllHosts, type TestHost } from './harness.js';
import { isAlive } from './process.js';
import {
  addNftRule,
  addRoute,
  addUser,
  installNginxSite,
  setSysctl,
  writeEnvironmentFile,
} from './software.js';
import { mountsUnder, netnsList } from './teardown.js';

const here = dirname(fileURLToPath(import.meta.url));
const scratch = mkdtempSync(join(tmpdir(), 'persona-hosts-test-'));

function ssh(host: TestHost, knownHosts: string, command: string) {
  const file = join(scratch, `known_hosts-${host.name}-${Math.random().toString(36).slice(2)}`);
  writeFileSync(file, knownHosts);
  return spawnSync(
    'ssh',
    [
      '-F',
      'none',
      '-i',
      host.privateKeyPath,
      '-o',
      'IdentitiesOnly=yes',
      '-o',
      'BatchMode=yes',
      '-o',
      'StrictHostKeyChecking=yes',
      '-o',
      `UserKnownHostsFile=${file}`,
      '-o',
      'GlobalKnownHostsFile=/dev/null',
      '-o',
      'ConnectTimeout=10',
      `${host.user}@${host.address}`,
      command,
    ],
    { encoding: 'utf8', timeout: 30_000 },
  );
}

/** Every trace a host could leave on the control machine, empty when it is gone. */
function leftovers(host: TestHost): string[] {
  const found: string[] = [];
  if (netnsList().includes(host.netns)) found.push(`namespace ${host.netns}`);
  if (spawnSync('ip', ['link', 'show', host.veth]).status === 0) found.push(`interface ${host.veth}`);
  const dir = dirname(host.root);
  found.push(...mountsUnder(dir).map((m) => `mount ${m}`));
  if (existsSync(dir)) found.push(`directory ${dir}`);
  if (isAlive(host.pid)) found.push(`process ${host.pid}`);
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      if (readlinkSync(`/proc/${pid}/root`).startsWith(dir)) found.push(`process ${pid} rooted in ${dir}`);
    } catch {
      // Gone meanwhile, or a kernel thread.
    }
  }
  return found;
}

afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('test hosts', () => {
  let a: TestHost;
  let b: TestHost;

  beforeAll(async () => {
    // The first run on a machine builds the root filesystem (about a minute).
    a = await createHost({ name: 'web-a' });
    b = await createHost({ name: 'web-b', hostname: 'db-b.example.test' });
  }, 600_000);

  afterAll(() => destroyAllHosts());

  it('lets root in over SSH with the run key and answers with its own hostname', () => {
    for (const [host, hostname] of [
      [a, 'web-a'],
      [b, 'db-b.example.test'],
    ] as const) {
      const login = ssh(host, host.knownHosts, 'hostname; cat /etc/hostname');
      expect(login.stderr).not.toMatch(/warning/i);
      expect(login.status).toBe(0);
      expect(login.stdout).toBe(`${hostname}\n${hostname}\n`);
    }
    expect(a.address).not.toBe(b.address);
  });

  it('reports the fingerprint of its ed25519 host key and refuses a login pinned to another key', () => {
    expect(a.hostKeyFingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    expect(a.hostKeyFingerprint).not.toBe(b.hostKeyFingerprint);
    const scan = spawnSync('ssh-keygen', ['-lf', '-'], { input: a.hostKeys.join('\n'), encoding: 'utf8' });
    expect(scan.stdout).toContain(a.hostKeyFingerprint);

    const impostor = b.knownHosts.replaceAll(b.address, a.address);
    const login = ssh(a, impostor, 'hostname');
    expect(login.status).toBe(255);
    expect(login.stderr).toMatch(/host key verification failed/i);
    expect(login.stdout).toBe('');
  });

  it("keeps each host's files and processes to itself", async () => {
    await a.writeFile('/root/only-on-a', 'a\n');
    expect(await a.readFile('/root/only-on-a')).toBe('a\n');
    expect((await b.exec('test -e /root/only-on-a')).exitCode).toBe(1);
    expect(existsSync(join(b.root, 'root/only-on-a'))).toBe(false);

    // Each host sees its own processes only, its sshd first.
    const processes = (await a.run('ps -e -o pid=,comm=')).trim().split('\n');
    expect(processes[0]?.trim()).toBe('1 sshd');
    expect(processes.length).toBeLessThan(5);
  });

  it('keeps the control machine read-only from inside, except for its own network parameters', async () => {
    // Each write would set the value the machine already has, should the protection fail.
    const global = await a.exec('sysctl -w vm.swappiness="$(sysctl -n vm.swappiness)"');
    expect(global.stderr).toMatch(/permission denied|read-only/i);
    expect(global.exitCode).not.toBe(0);
    const clock = await a.exec('date -s "@$(date +%s)"');
    expect(clock.stderr).toMatch(/not permitted/i);
    expect(clock.exitCode).not.toBe(0);
    const overSsh = ssh(a, a.knownHosts, 'date -s "@$(date +%s)"');
    expect(overSsh.stderr).toMatch(/not permitted/i);
    expect(overSsh.status).not.toBe(0);
  });

  it('runs the software the helpers set up, inside the host only', async () => {
    const site = await installNginxSite(a, { page: '<h1>persona web-a</h1>\n' });
    await addUser(a, 'deploy', { groups: ['www-data', 'ops'], authorizedKey: a.publicKey });
    const env = await writeEnvironmentFile(a, '/etc/default/persona-app', {
      APP_PORT: '8080',
      GREETING: 'hello world',
    });
    await setSysctl(a, 'net.ipv4.ip_forward', 1);
    await addNftRule(a, { rule: 'tcp dport 8080 drop' });
    await addRoute(a, '198.51.100.0/24');

    const page = await fetch(site.url);
    expect(page.status).toBe(200);
    expect(await page.text()).toBe('<h1>persona web-a</h1>\n');

    expect(await a.run('id deploy')).toMatch(/uid=\d+\(deploy\).*\bwww-data\b.*\bops\b/);
    expect(await a.readFile('/etc/default/persona-app')).toBe(env);
    expect(env).toBe('APP_PORT=8080\nGREETING="hello world"\n');
    expect((await a.run('sysctl -n net.ipv4.ip_forward')).trim()).toBe('1');
    expect(await a.readFile('/etc/sysctl.d/90-persona-test.conf')).toBe('net.ipv4.ip_forward = 1\n');
    expect(await a.run('nft list ruleset')).toMatch(/table inet persona_test[\s\S]*tcp dport 8080 drop/);
    expect(await a.run('ip route show 198.51.100.0/24')).toContain(`via ${a.gateway} dev eth0`);

    // The other host and the control machine are untouched.
    expect((await b.exec('id deploy')).exitCode).not.toBe(0);
    expect((await b.run('sysctl -n net.ipv4.ip_forward')).trim()).toBe('0');
    expect(await b.run('nft list ruleset')).not.toContain('persona_test');
    expect(await b.run('ip route')).not.toContain('198.51.100.0');
    expect((await b.exec('command -v nginx')).exitCode).not.toBe(0);
    expect(spawnSync('ip', ['route', 'show', '198.51.100.0/24'], { encoding: 'utf8' }).stdout).toBe('');
    await expect(fetch(`http://${b.address}/`, { signal: AbortSignal.timeout(5000) })).rejects.toThrow();
  });

  it('refuses a kernel parameter that is not per network namespace', async () => {
    await expect(setSysctl(a, 'vm.swappiness', 10)).rejects.toThrow(/only net\.\*/);
  });

  it('leaves nothing behind once destroyed', async () => {
    const started = Date.now();
    await a.destroy();
    await b.destroy();
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(leftovers(a)).toEqual([]);
    expect(leftovers(b)).toEqual([]);
  });
});

describe('cleanupStale', () => {
  it("removes the host of a run that was killed, and leaves a live run's host alone", async () => {
    const live = await createHost({ name: 'live' });
    const child = spawn(process.execPath, ['--import', 'tsx', join(here, 'fixtures/abandoned-host.ts')], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const line = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('\n')) resolve(out.split('\n')[0] as string);
      });
      child.once('exit', (code) =>
        reject(new Error(`the abandoning run exited ${code} before creating its host`)),
      );
    });
    const abandoned = JSON.parse(line) as Pick<TestHost, 'netns' | 'root' | 'pid' | 'veth'>;
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    expect(netnsList()).toContain(abandoned.netns);

    const report = cleanupStale();

    expect(report.namespaces).toContain(abandoned.netns);
    expect(leftovers(abandoned as TestHost)).toEqual([]);
    expect(existsSync(dirname(dirname(abandoned.root)))).toBe(false);
    expect(report.namespaces).not.toContain(live.netns);
    expect(ssh(live, live.knownHosts, 'hostname').stdout).toBe('live\n');
    await destroyAllHosts();
    expect(leftovers(live)).toEqual([]);
  }, 600_000);
});
