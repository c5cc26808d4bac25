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
import { runPersona } from '../support/cli.js';
import { startTestPersona, type TestPersona } from '../support/local.js';

const exec = promisify(execFile);
let api: TestPersona;
let host: TestHost;

const persona = (...args: string[]) => runPersona(api, ...args);

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

describe('POST /hosts/{host}/capture', () => {
  const waitFor = async (id: string) => {
    for (let i = 0; i < 240; i++) {
      const op = await api.call('GET', `/operations/${id}`);
      if (op.body.status === 'SUCCEEDED' || op.body.status === 'FAILED') return op.body;
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`operation ${id} did not end`);
  };

  /** `persona hosts add --key`: the key is sealed as the host's own secret, the registration refers to it. */
  const registerWithKey = async (registration: Record<string, unknown>, keyFile: string) => {
    const file = join(api.dataDir, `${registration.name}.host.json`);
    writeFileSync(file, JSON.stringify(registration));
    return persona('hosts', 'add', '-f', file, '--key', keyFile);
  };

  it('refuses a registration whose credential names a file on the machine that runs Persona', async () => {
    const r = await api.call('POST', '/hosts', {
      body: {
        name: 'web-file',
        platform: 'baremetal',
        transport: 'ssh',
        address: host.address,
        credentialRef: { provider: 'local', key: `file:${host.privateKeyPath}` },
      },
    });
    expect(r.status).toBe(400);
    expect(r.body.issues[0].path).toBe('credentialRef.key');
  });

  it('runs the capture workflow as an operation with steps and progress', async () => {
    const registered = await registerWithKey(
      {
        name: 'web-api',
        platform: 'baremetal',
        transport: 'ssh',
        address: host.address,
        processes: ['shop-api'],
      },
      host.privateKeyPath,
    );
    expect(registered.code, registered.stderr).toBe(0);
    expect((await api.call('GET', '/hosts/web-api')).body.registration.credentialRef).toMatchObject({
      provider: 'local',
      key: 'web-api/credential/ssh',
    });
    const started = await api.call('POST', '/hosts/web-api/capture', {
      body: { acceptNewHostKey: true },
      headers: { 'idempotency-key': 'capture-web-api-1' },
    });
    expect(started.status).toBe(202);
    // The key names the operation within this host and route; the id is derived from it.
    const id = started.body.id;
    expect(started.headers.get('location')).toBe(`/operations/${id}`);
    const op = await waitFor(id);
    expect(op).toMatchObject({ status: 'SUCCEEDED', percent: 100, kind: 'capture', host: 'web-api' });
    expect(op.steps.map((s: { name: string; status: string }) => `${s.name}:${s.status}`)).toEqual([
      'connect:SUCCEEDED',
      'collect:SUCCEEDED',
      'secrets:SUCCEEDED',
      'profile:SUCCEEDED',
      'snapshot:SUCCEEDED',
    ]);
    expect(op.result.profile).toMatchObject({ name: 'web-api', version: 1, created: true });
    const pinned = await api.call('GET', '/hosts/web-api');
    expect(pinned.body.registration.hostKeyFingerprint).toBe(host.hostKeyFingerprint);

    // The same request again finds the same operation and starts nothing.
    const again = await api.call('POST', '/hosts/web-api/capture', {
      body: { acceptNewHostKey: true },
      headers: { 'idempotency-key': 'capture-web-api-1' },
    });
    expect(again.body).toMatchObject({ id, status: 'SUCCEEDED' });
    expect((await api.call('GET', '/hosts/web-api/snapshots')).body.items).toHaveLength(1);
  });

  it('ends FAILED at the step that failed, with the reason, when the host refuses the key', async () => {
    const keyFile = join(api.dataDir, 'stranger');
    await exec('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', keyFile]);
    await registerWithKey(
      {
        name: 'web-denied',
        platform: 'baremetal',
        transport: 'ssh',
        address: host.address,
        hostKeyFingerprint: host.hostKeyFingerprint,
      },
      keyFile,
    );
    const started = await api.call('POST', '/hosts/web-denied/capture', {
      headers: { 'idempotency-key': 'capture-denied-1' },
    });
    expect(started.status).toBe(202);
    const op = await waitFor(started.body.id);
    expect(op.status).toBe('FAILED');
    expect(op.steps[0]).toMatchObject({ name: 'connect', status: 'FAILED' });
    expect(op.error.message).toMatch(/auth|denied|authentication/i);
    expect(op.steps.slice(1).every((s: { status: string }) => s.status === 'SKIPPED')).toBe(true);
  });

  it('is driven from the CLI: hosts show, hosts capture follows the steps, operations show tells why it failed', async () => {
    const keyFile = join(api.dataDir, 'stranger-cli');
    await exec('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', keyFile]);
    const added = await registerWithKey(
      {
        name: 'web-cli',
        platform: 'baremetal',
        transport: 'ssh',
        address: host.address,
        hostKeyFingerprint: host.hostKeyFingerprint,
      },
      keyFile,
    );
    expect(added.code, added.stderr).toBe(0);
    const shown = await persona('hosts', 'show', 'web-cli');
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain(`address: ${host.address}`);
    expect(shown.stdout).toContain('key: web-cli/credential/ssh');

    const captured = await persona('hosts', 'capture', 'web-cli', '--idempotency-key', 'cli-capture-1');
    expect(captured.code).toBe(1);
    expect(captured.stderr).toMatch(/✗ connect/);
    expect(captured.stdout).toMatch(/capture of web-cli {2}FAILED/);

    const json = await persona('--json', 'hosts', 'capture', 'web-cli', '--idempotency-key', 'cli-capture-1');
    const op = JSON.parse(json.stdout);
    expect(op).toMatchObject({ status: 'FAILED', host: 'web-cli' });
    const again = await persona('operations', 'show', op.id);
    expect(again.code).toBe(1);
    expect(again.stdout).toMatch(/✗ connect/);
    expect(again.stdout).toMatch(/auth|denied|authentication/i);
    expect((await persona('operations', 'show', 'no-such-operation-id')).code).toBe(4);
  });

  it('answers 404 for an unregistered host and 400 naming a bad field', async () => {
    expect((await api.call('POST', '/hosts/nobody/capture', {})).status).toBe(404);
    const bad = await api.call('POST', '/hosts/web-api/capture', { body: { acceptNewHostKey: 'yes' } });
    expect(bad.status).toBe(400);
    expect(bad.body.issues[0].path).toBe('acceptNewHostKey');
    const garbled = await api.call('POST', '/hosts/web-api/capture', { raw: '{"acceptNewHostKey": tru' });
    expect(garbled.status).toBe(400);
    expect(garbled.body.code).toBe('INVALID_INPUT');
  });
});
