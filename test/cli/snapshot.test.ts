import { execFile, spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runPersona } from '../support/cli.js';
import { startTestPersona, type TestPersona } from '../support/local.js';
import { bytesFrom, describeTree } from '../support/snapshot-store.js';

const exec = promisify(execFile);
let api: TestPersona;

const persona = (...args: string[]) => runPersona(api, ...args);

beforeAll(async () => {
  api = await startTestPersona();
});

afterAll(async () => {
  await api?.stop();
});

describe('persona snapshot', () => {
  it('snapshots a directory twice, the second costing only its changes, and restores either', async () => {
    const src = join(api.dataDir, 'tree');
    mkdirSync(join(src, 'etc'), { recursive: true });
    await fs.writeFile(join(src, 'etc/app.conf'), 'port = 8080\n');
    await fs.writeFile(join(src, 'big.bin'), bytesFrom(3, 2 * 1024 * 1024));
    const first = await persona('snapshot', 'create', src, '--host', 'web-a');
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/web-a snapshot 1: 2 files, 2\.0 MiB — 2\.0 MiB new/);
    const v1 = await describeTree(src);

    await fs.writeFile(join(src, 'etc/app.conf'), 'port = 9090\n');
    const second = await persona(
      '--json',
      'snapshot',
      'create',
      src,
      '--host',
      'web-a',
      '--profile',
      'web@2',
    );
    const record = JSON.parse(second.stdout);
    expect(record.version).toBe(2);
    expect(record.stats.newBytes).toBe(12);
    expect(record.profile).toEqual({ name: 'web', version: 2 });

    const list = await persona('snapshot', 'list', '--host', 'web-a');
    expect(list.stdout).toMatch(/^VERSION\s+CREATED\s+FILES\s+SIZE\s+NEW\s+STORED/);
    expect(list.stdout.trim().split('\n')).toHaveLength(3);

    const diff = await persona('snapshot', 'diff', '--host', 'web-a', '1', '2');
    expect(diff.stdout).toMatch(/~ etc\/app\.conf/);
    expect(diff.stdout).toMatch(/0 added, 0 removed, 1 changed/);

    const out = join(api.dataDir, 'restored');
    const restore = await persona('snapshot', 'restore', '--host', 'web-a', out, '1');
    expect(restore.code).toBe(0);
    expect(await describeTree(out)).toEqual(v1);
    const incremental = await persona('snapshot', 'restore', '--host', 'web-a', out, '--incremental');
    expect(incremental.stdout).toMatch(/1 written/);
    expect(await describeTree(out)).toEqual(await describeTree(src));

    const check = await persona('snapshot', 'check', '--read-data');
    expect(check.code).toBe(0);
    expect(check.stdout).toMatch(/no problems: 2 snapshots/);

    const shown = await api.call('GET', '/hosts/web-a/snapshots');
    expect(shown.status).toBe(200);
    expect(shown.body.items.map((r: { version: number }) => r.version)).toEqual([1, 2]);
    const one = await api.call('GET', '/hosts/web-a/snapshots/2');
    expect(one.body).toMatchObject({ host: 'web-a', version: 2, stats: { files: 2 } });
    expect((await api.call('GET', '/hosts/web-a/snapshots/9')).status).toBe(404);
    expect((await api.call('GET', '/hosts/bad host/snapshots')).status).toBe(400);
  });

  it('exports a snapshot as a tar stream and takes one in', async () => {
    const src = join(api.dataDir, 'tarred');
    mkdirSync(join(src, 'srv'), { recursive: true });
    await fs.writeFile(join(src, 'srv/index.html'), '<h1>shop</h1>\n');
    await fs.symlink('index.html', join(src, 'srv/home.html'));
    const tarball = join(api.dataDir, 'in.tar');
    await exec('tar', ['--format=pax', '-cf', tarball, '-C', src, '.']);
    const created = await persona('snapshot', 'create', '--tar', tarball, '--host', 'from-tar');
    expect(created.code).toBe(0);

    const out = join(api.dataDir, 'untarred');
    mkdirSync(out);
    const exported = spawn(process.execPath, ['cli/bin.js', 'snapshot', 'export', '--host', 'from-tar'], {
      env: { ...process.env, PERSONA_DATA: api.dataDir },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const untar = spawn('tar', ['-xpf', '-', '-C', out], { stdio: ['pipe', 'inherit', 'inherit'] });
    exported.stdout.pipe(untar.stdin);
    expect(await new Promise((r) => untar.once('exit', r))).toBe(0);
    expect(await describeTree(out)).toEqual(await describeTree(src));
  });

  it('forgets by retention policy, collects garbage, and explains what is wrong', async () => {
    const src = join(api.dataDir, 'retained');
    mkdirSync(src);
    for (let i = 0; i < 3; i++) {
      await fs.writeFile(join(src, 'data'), bytesFrom(40 + i, 300_000));
      await persona('snapshot', 'create', src, '--host', 'retained');
    }
    const forget = await persona('--json', 'snapshot', 'forget', '--host', 'retained', '--keep-last', '1');
    expect(JSON.parse(forget.stdout)).toEqual({ kept: [3], removed: [1, 2] });
    const gc = await persona('--json', 'snapshot', 'gc');
    expect(JSON.parse(gc.stdout).packsDeleted).toBeGreaterThanOrEqual(2);
    expect(JSON.parse(gc.stdout).listingsDeleted).toBeGreaterThanOrEqual(1);
    // Nothing is left to collect, and the summary names each kind of object.
    expect((await persona('snapshot', 'gc')).stdout).toMatch(
      /deleted 0 packs \(.*\), 0 manifests, 0 listing chunks; kept \d+ packs/,
    );
    expect((await persona('snapshot', 'check', '--read-data')).code).toBe(0);

    expect((await persona('snapshot', 'forget', '--host', 'retained')).code).toBe(3);
    const missing = await persona('snapshot', 'show', '--host', 'nobody');
    expect(missing.code).toBe(4);
    expect(missing.stderr).toMatch(/host nobody has no snapshots/);
    expect((await persona('snapshot', 'create', src, '--host', 'bad host!')).code).toBe(3);
  });
});
