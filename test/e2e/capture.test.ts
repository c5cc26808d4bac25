// A newcomer's capture, end to end: a real Debian host with its own address, reached over
// SSH, captured by the `persona` command into the embedded runtime.
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHost, destroyAllHosts, type TestHost } from '../hosts/harness.js';
import {
  addNftRule,
  addRoute,
  addUser,
  installNginxSite,
  setSysctl,
  writeEnvironmentFile,
} from '../hosts/software.js';
import { startTestPersona, type TestPersona } from '../support/local.js';

const exec = promisify(execFile);
let api: TestPersona;
let host: TestHost;

async function persona(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, ['cli/bin.js', ...args], {
      env: { ...process.env, PERSONA_ENDPOINT: api.url, PERSONA_DATA: api.dataDir, NO_COLOR: '1' },
      maxBuffer: 64 * 1024 * 1024,
    });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

beforeAll(async () => {
  api = await startTestPersona();
  host = await createHost({
    name: 'web',
    hostname: 'web-a',
    setup: async (h) => {
      await installNginxSite(h, { page: '<h1>shop</h1>\n' });
      await addUser(h, 'shop', { uid: 1001 });
      await writeEnvironmentFile(h, '/etc/default/shop-api', {
        PORT: '8080',
        DB_PASSWORD: 'hunter2-in-a-file',
      });
      await setSysctl(h, 'net.ipv4.ip_forward', 1);
      await addNftRule(h, { rule: 'tcp dport 9100 drop' });
      await addRoute(h, '192.0.2.0/24');
      // The application: a long-running process with a credential in its environment.
      await h.run('cp /bin/sleep /usr/local/bin/shop-api');
      await h.run(
        'cd / && DB_PASSWORD=hunter2-in-env PORT=8080 setsid /usr/local/bin/shop-api 100000 >/dev/null 2>&1 &',
      );
    },
  });
}, 900_000);

afterAll(async () => {
  await destroyAllHosts();
  await api?.stop();
}, 120_000);

describe('persona capture over SSH', () => {
  it('refuses a host it has never seen unless told to record its key', async () => {
    const r = await persona(
      'capture',
      `ssh://root@${host.address}`,
      '--key',
      host.privateKeyPath,
      '--name',
      'web',
    );
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(host.hostKeyFingerprint);
  });

  it('captures what was set up on the host, keeps secrets out, and snapshots its configuration', async () => {
    const r = await persona(
      'capture',
      `ssh://root@${host.address}`,
      '--key',
      host.privateKeyPath,
      '--name',
      'web',
      '--accept-new-host-key',
      '--process',
      'shop-api',
    );
    expect(r.stderr + r.stdout).toMatch(/captured web/);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/os\s+debian 12/);
    expect(r.stdout).toMatch(/listening\s+.*\b80\b/);
    expect(r.stdout).toMatch(/profile\s+web version 1/);

    const { body } = await api.call('GET', '/profiles/web');
    const spec = body.profile.spec;
    expect(spec.os).toMatchObject({ distribution: 'debian', version: '12', hostname: 'web-a' });
    expect(spec.packages.map((p: { name: string }) => p.name)).toEqual(
      expect.arrayContaining(['nginx-light', 'openssh-server']),
    );
    expect(spec.security.users.map((u: { name: string }) => u.name)).toContain('shop');
    expect(spec.configuration.sysctl['net.ipv4.ip_forward']).toBe('1');
    expect(spec.network.firewall.ruleset).toContain('tcp dport 9100 drop');
    expect(spec.network.routes).toEqual(
      expect.arrayContaining([expect.objectContaining({ destination: '192.0.2.0/24' })]),
    );
    expect(spec.configuration.files.map((f: { path: string }) => f.path)).toContain(
      '/etc/nginx/sites-available/persona',
    );
    const env = spec.configuration.env.find((e: { name: string }) => e.name === 'DB_PASSWORD');
    expect(env?.secretRef).toBeDefined();
    expect(env?.value).toBeUndefined();

    // Nothing secret in clear in the Profile, in DynamoDB's data or in the bucket's.
    expect(JSON.stringify(body)).not.toMatch(/hunter2/);
    const dynamo = readFileSync(join(api.dataDir, 'dynamodb', 'shared-local-instance.db'));
    expect(dynamo.includes('hunter2')).toBe(false);

    const snapshots = await api.call('GET', '/hosts/web/snapshots');
    expect(snapshots.body.items).toHaveLength(1);
    expect(snapshots.body.items[0]).toMatchObject({ profile: { name: 'web', version: 1 } });
  });

  it('does not make a new Profile version when the host has not changed', async () => {
    const r = await persona(
      'capture',
      `ssh://root@${host.address}`,
      '--key',
      host.privateKeyPath,
      '--name',
      'web',
      '--process',
      'shop-api',
    );
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/profile\s+web version 1 \(unchanged\)/);
    const versions = await api.call('GET', '/profiles/web/versions');
    expect(versions.body.items).toHaveLength(1);
  });

  it('refuses a host whose key differs from the one recorded, naming both', async () => {
    const file = join(api.dataDir, 'known_hosts.json');
    const pinned = JSON.parse(readFileSync(file, 'utf8'));
    const forged = 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
    for (const k of Object.keys(pinned.hosts)) pinned.hosts[k] = forged;
    writeFileSync(file, JSON.stringify(pinned));
    const r = await persona(
      'capture',
      `ssh://root@${host.address}`,
      '--key',
      host.privateKeyPath,
      '--name',
      'web',
      '--process',
      'shop-api',
    );
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(forged);
    expect(r.stderr).toContain(host.hostKeyFingerprint);
  });
});
