// A newcomer's clone, end to end: a Debian web host captured over SSH is planned onto a bare
// host with no route out, cloned through the `persona` command and the clone workflow (the ASL
// executed by the embedded runtime), validated against its source, and captured again to show
// it is the source but for its identity. A clone that fails part-way leaves its target exactly
// as it was and ends ROLLED_BACK.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Operation } from '../../core/operation/schema.js';
import { createHost, destroyAllHosts, type TestHost } from '../hosts/harness.js';
import { setUpWebHost } from '../hosts/software.js';
import { runPersona } from '../support/cli.js';
import { eventsWith, startTestPersona, type TestPersona } from '../support/local.js';

let api: TestPersona;
let web: TestHost;
let bare: TestHost;
let broken: TestHost;

const persona = (...args: string[]) => runPersona(api, ...args);

const PAGE = '<h1>shop</h1>\n';
const SECRET = 'hunter2-in-the-clone';

const fetchPage = async (host: TestHost) =>
  (await host.exec(`curl -s --max-time 5 http://${host.address}/`)).stdout;

beforeAll(async () => {
  api = await startTestPersona();
  [web, bare, broken] = await Promise.all([
    createHost({
      name: 'cweb',
      hostname: 'web-a',
      setup: (h) => setUpWebHost(h, { page: PAGE, secret: SECRET }),
    }),
    createHost({ name: 'cbare', hostname: 'bare-b' }),
    createHost({ name: 'cbroken', hostname: 'broken-c' }),
  ]);
  const captured = await persona(
    'capture',
    `ssh://root@${web.address}`,
    '--key',
    web.privateKeyPath,
    '--name',
    'web',
    '--accept-new-host-key',
    '--path',
    '/var/www/persona',
  );
  expect(captured.code, captured.stderr).toBe(0);
}, 900_000);

afterAll(async () => {
  await destroyAllHosts();
  await api?.stop();
}, 120_000);

const operation = async (id: string) => (await api.call('GET', `/operations/${id}`)).body as Operation;
const lastOperation = async () => {
  const list = await api.call('GET', '/operations?kind=clone&limit=1');
  return list.body.items[0] as Operation;
};

describe('persona plan', () => {
  it('prints the Delta and the package resolution, saves the plan, and changes nothing on the target', async () => {
    const before = (await bare.exec('ls -la /etc /var/www 2>&1; dpkg -l | wc -l')).stdout;
    const planFile = join(api.dataDir, 'plan.json');
    const r = await persona(
      'plan',
      'web',
      '--to',
      `ssh://root@${bare.address}`,
      '--key',
      bare.privateKeyPath,
      '--target-name',
      'bare',
      '--accept-new-host-key',
      '--save',
      planFile,
    );
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.stdout).toMatch(/plan web version 1 onto bare/);
    expect(r.stdout).toMatch(/package\.install/);
    expect(r.stdout).toMatch(/nginx-light/);
    const plan = JSON.parse(readFileSync(planFile, 'utf8'));
    expect(plan.kind).toBe('Plan');
    expect(plan.delta.changes.map((c: { kind: string }) => c.kind)).toEqual(
      expect.arrayContaining(['package.install', 'user.add', 'sysctl.set', 'firewall.replace', 'route.add']),
    );
    // Identity is translated: nothing of the source's hostname or address is planned onto the target.
    expect(JSON.stringify(plan.delta)).not.toContain(web.address);
    expect((await bare.exec('ls -la /etc /var/www 2>&1; dpkg -l | wc -l')).stdout).toBe(before);
    const op = await lastOperation();
    expect(op.status).toBe('SUCCEEDED');
    expect(op.steps.map((s) => s.name)).toEqual(['validate', 'provision', 'baseline', 'plan']);
  }, 300_000);
});

describe('persona clone', () => {
  it('applies the saved plan, starts the application, validates it against the source and records the clone', async () => {
    const r = await persona('clone', 'web', '--to', 'host:bare', '--plan', join(api.dataDir, 'plan.json'));
    const op = await lastOperation();
    expect(op.status, `${r.stderr}\n${r.stdout}\n${JSON.stringify(op.error)}`).toBe('SUCCEEDED');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/validation passed/);
    expect(op.steps.every((s) => s.status === 'SUCCEEDED')).toBe(true);
    // The clone serves what the source serves, from its own address.
    expect(await fetchPage(bare)).toBe(PAGE);
    expect((await bare.exec('id -u shop')).stdout.trim()).toBe('1001');
    expect((await bare.exec('sysctl -n net.ipv4.ip_forward')).stdout.trim()).toBe('1');
    expect((await bare.exec('nft list ruleset')).stdout).toContain('tcp dport 9100 drop');
    expect((await bare.exec('ip route show 192.0.2.0/24')).stdout).toContain('192.0.2.0/24');
    expect((await bare.exec('hostname')).stdout.trim()).toBe('bare-b');
    // Captured again, the clone is the source but for the documented identity fields.
    expect(op.result?.differences, JSON.stringify(op.result)).toBe(0);
    const report = await api.call('GET', `/operations/${op.id}/documents/report`);
    expect(report.body.verdict).toBe('passed');
    expect(await eventsWith(api, 'Clone Succeeded')).toContain('"Clone Succeeded"');
    // The sealed environment file arrived whole, with its owner and mode; its value is nowhere
    // in the operation, its documents, the journal or any DynamoDB item.
    expect((await bare.exec('cat /etc/default/shop-api')).stdout).toContain(`DB_PASSWORD=${SECRET}`);
    expect((await bare.exec('stat -c %a:%U /etc/default/shop-api')).stdout.trim()).toBe(
      (await web.exec('stat -c %a:%U /etc/default/shop-api')).stdout.trim(),
    );
    for (const document of ['plan', 'report']) {
      const d = await api.call('GET', `/operations/${op.id}/documents/${document}`);
      expect(JSON.stringify(d.body)).not.toContain(SECRET);
    }
    expect(JSON.stringify(op)).not.toContain(SECRET);
    const dynamo = readFileSync(join(api.dataDir, 'dynamodb', 'shared-local-instance.db'));
    expect(dynamo.includes(SECRET)).toBe(false);
  }, 300_000);

  it('applies nothing a second time: the plan onto the clone is empty', async () => {
    const r = await persona('plan', 'web', '--to', 'host:bare');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/ 0 changes/);
    // The clone's state fingerprint is what its Record saw: planned from that capture.
    const planned = await lastOperation();
    expect(planned.steps.find((s) => s.name === 'baseline')?.detail).toMatch(/reused \d+/);
  }, 300_000);

  it('captures the clone again once its state moved, and plans what moved back', async () => {
    const mode = (await bare.exec('stat -c %a /etc/nginx/nginx.conf')).stdout.trim();
    await bare.run('chmod 0600 /etc/nginx/nginx.conf');
    const r = await persona('plan', 'web', '--to', 'host:bare');
    expect(r.code, r.stderr).toBe(0);
    const planned = await lastOperation();
    expect(planned.steps.find((s) => s.name === 'baseline')?.detail).not.toMatch(/reused/);
    expect(r.stdout).toMatch(/ 1 changes/);
    expect(r.stdout).toMatch(/file\.write/);
    await bare.run(`chmod ${mode} /etc/nginx/nginx.conf`);
  }, 300_000);

  it('refuses a saved plan once the target has changed since it was made', async () => {
    const planFile = join(api.dataDir, 'plan-broken.json');
    const planned = await persona(
      'plan',
      'web',
      '--to',
      `ssh://root@${broken.address}`,
      '--key',
      broken.privateKeyPath,
      '--target-name',
      'broken',
      '--accept-new-host-key',
      '--save',
      planFile,
    );
    expect(planned.code, planned.stderr).toBe(0);
    await broken.run('sysctl -w net.ipv4.ip_default_ttl=99 >/dev/null');
    const r = await persona('clone', 'web', '--to', 'host:broken', '--plan', planFile);
    expect(r.code).not.toBe(0);
    const op = await lastOperation();
    expect(op.status).toBe('ROLLED_BACK');
    expect(op.error?.step).toBe('plan');
    expect(op.error?.message).toMatch(/changed since the plan was made/);
    await broken.run('sysctl -w net.ipv4.ip_default_ttl=64 >/dev/null');
  }, 300_000);

  it('rolls back a clone whose change fails half-way: the target ends exactly as it was', async () => {
    // A directory where the source has a file: the file Change fails after many have landed.
    await broken.run('mkdir -p /etc/default/shop-api/in-the-way');
    const before = await broken.exec(
      'dpkg -l | sort | md5sum; getent passwd | md5sum; nft list ruleset | md5sum; ip route | md5sum; sysctl -n net.ipv4.ip_forward; ls -la /var/www 2>&1 | md5sum',
    );
    const r = await persona('clone', 'web', '--to', 'host:broken');
    expect(r.code).not.toBe(0);
    const op = await lastOperation();
    expect(op.status, JSON.stringify(op.error)).toBe('ROLLED_BACK');
    expect(op.error?.step).toBe('apply');
    expect(op.error?.message).toContain('/etc/default/shop-api');
    const rollback = (await api.call('GET', `/operations/${op.id}/documents/rollback`)).body;
    expect(rollback.verified, JSON.stringify(rollback)).toBe(true);
    expect(rollback.reverted).toBeGreaterThan(0);
    const after = await broken.exec(
      'dpkg -l | sort | md5sum; getent passwd | md5sum; nft list ruleset | md5sum; ip route | md5sum; sysctl -n net.ipv4.ip_forward; ls -la /var/www 2>&1 | md5sum',
    );
    expect(after.stdout).toBe(before.stdout);
    expect(await eventsWith(api, 'Clone Rolled Back')).toContain('"Clone Rolled Back"');
    await broken.run('rm -rf /etc/default/shop-api');
  }, 300_000);

  it('plans on a machine taken from a pool and gives it back', async () => {
    const added = await persona('pools', 'add', 'lab', 'broken');
    expect(added.code, added.stderr).toBe(0);
    const r = await persona('plan', 'web', '--to', 'pool:lab');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/plan web version 1 onto broken/);
    const pool = await api.call('GET', '/pools/lab/machines');
    expect(pool.body.items).toEqual([expect.objectContaining({ machine: 'broken', state: 'free' })]);
  }, 300_000);

  it('lists clones and shows each one with its steps', async () => {
    const r = await persona('operations', 'list', '--kind', 'clone');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/ROLLED_BACK/);
    expect(r.stdout).toMatch(/SUCCEEDED/);
    const op = await operation((await lastOperation()).id);
    expect(op.kind).toBe('clone');
  }, 300_000);
});
