// `persona snapshot create --tar` and `persona snapshot restore` facing what goes wrong: a tar
// that failed upstream of the pipe, a hostile tar, a damaged snapshot.
import { execFile } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3ObjectStore } from '../../core/snapshot/object-store.js';
import { LOCAL_BUCKET } from '../../local/runtime.js';
import { LOCAL_CREDENTIALS, LOCAL_REGION } from '../../local/stand-ins.js';
import { plantCanaries } from '../support/canaries.js';
import { type CliResult, runPersona } from '../support/cli.js';
import { tarOf } from '../support/hostile-trees.js';
import { startTestPersona, type TestPersona } from '../support/local.js';
import { bytesFrom } from '../support/snapshot-store.js';

const exec = promisify(execFile);
let api: TestPersona;

const persona = (...args: string[]) => runPersona(api, ...args);

/** `<upstream> | persona …`, as a pipe in a shell runs it. */
async function piped(upstream: string, ...args: string[]): Promise<CliResult> {
  const quoted = args.map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ');
  try {
    const { stdout, stderr } = await exec(
      'sh',
      ['-c', `${upstream} | "${process.execPath}" cli/bin.js ${quoted}`],
      {
        env: { ...process.env, PERSONA_ENDPOINT: api.url, PERSONA_DATA: api.dataDir, NO_COLOR: '1' },
      },
    );
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

async function writeStream(path: string, stream: NodeJS.ReadableStream): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  await fs.writeFile(path, Buffer.concat(chunks));
}

beforeAll(async () => {
  api = await startTestPersona();
});

afterAll(async () => {
  await api?.stop();
});

describe('persona snapshot create --tar', () => {
  it('refuses the empty stream a failed tar upstream leaves, unless --allow-empty', async () => {
    const failed = await piped('false', 'snapshot', 'create', '--tar', '-', '--host', 'upstream');
    expect(failed.code).toBe(3);
    expect(failed.stderr).toMatch(/holds no entries/);
    expect((await persona('snapshot', 'list', '--host', 'upstream')).stdout).toMatch(/has no snapshots/);

    const allowed = await piped(
      'true',
      'snapshot',
      'create',
      '--tar',
      '-',
      '--host',
      'upstream',
      '--allow-empty',
    );
    expect(allowed.code).toBe(0);
    expect(allowed.stdout).toMatch(/upstream snapshot 1: 0 files/);
  });

  it('refuses a hostile tar naming the entry, and a real tar of a tree still goes in', async () => {
    const hostile = join(api.dataDir, 'hostile.tar');
    await writeStream(
      hostile,
      tarOf([
        { name: 'evil', type: 'symlink', target: '/etc' },
        { name: 'evil/cron.d/job', type: 'file', content: '* * * * * root evil\n' },
      ]),
    );
    const refused = await persona('snapshot', 'create', '--tar', hostile, '--host', 'hostile');
    expect(refused.code).toBe(3);
    expect(refused.stderr).toContain(
      'tar entry "evil/cron.d/job" is refused: "evil" is a symlink, not a directory',
    );

    const src = join(api.dataDir, 'tree');
    mkdirSync(join(src, 'etc'), { recursive: true });
    await fs.writeFile(join(src, 'etc/hostname'), 'web-a\n');
    const taken = await piped(
      `tar -cf - -C '${src}' etc`,
      'snapshot',
      'create',
      '--tar',
      '-',
      '--host',
      'tarred',
    );
    expect(taken.code).toBe(0);
    expect(taken.stdout).toMatch(/tarred snapshot 1: 1 files/);
  });
});

describe('persona snapshot restore', () => {
  it('restores what a damaged snapshot still holds, names what it could not, and exits 7', async () => {
    const src = join(api.dataDir, 'damaged');
    mkdirSync(join(src, 'srv'), { recursive: true });
    // In path order bad.bin comes first: its blob starts the pack.
    await fs.writeFile(join(src, 'srv/bad.bin'), bytesFrom(9, 700_000));
    await fs.writeFile(join(src, 'srv/good.txt'), 'still here\n');
    await fs.chmod(join(src, 'srv'), 0o750);
    const objects = new S3ObjectStore(
      new S3Client({
        endpoint: api.s3Endpoint,
        region: LOCAL_REGION,
        credentials: LOCAL_CREDENTIALS,
        forcePathStyle: true,
      }),
      LOCAL_BUCKET,
    );
    const packs = async () => {
      const keys: string[] = [];
      for await (const o of objects.list('snapshots/packs/')) keys.push(o.key);
      return keys;
    };
    const before = new Set(await packs());
    expect((await persona('snapshot', 'create', src, '--host', 'damaged')).code).toBe(0);
    const added = (await packs()).filter((k) => !before.has(k));
    expect(added).toHaveLength(1);
    const key = added[0] as string;
    const bytes = Buffer.from(await objects.get(key));
    bytes[100] = (bytes[100] as number) ^ 0xff;
    await objects.put(key, bytes);

    const c = await plantCanaries(join(api.dataDir, 'restore-here'));
    const restored = await persona('snapshot', 'restore', '--host', 'damaged', c.target);
    expect(restored.code).toBe(7);
    expect(restored.stderr).toMatch(new RegExp(`✗ srv/bad\\.bin: ${key} chunk [0-9a-f]{64}: `));
    expect(restored.stdout).toMatch(/2 written, .*; 1 not restored/);
    expect(await fs.readFile(join(c.target, 'srv/good.txt'), 'utf8')).toBe('still here\n');
    expect(await fs.readdir(join(c.target, 'srv'))).toEqual(['good.txt']);
    expect((await fs.stat(join(c.target, 'srv'))).mode & 0o7777).toBe(0o750);
    expect(c.picture()).toEqual(c.before);

    const asJson = await persona(
      '--json',
      'snapshot',
      'restore',
      '--host',
      'damaged',
      join(api.dataDir, 'again'),
    );
    expect(asJson.code).toBe(7);
    expect(JSON.parse(asJson.stdout).stats.failed).toEqual([
      { path: 'srv/bad.bin', reason: expect.stringContaining(key), damaged: true },
    ]);
  });
});
