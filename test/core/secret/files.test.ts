// Secret files back into a tar stream: where the Profile says they go, with the values it pinned,
// for the snapshot's own host only.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { S3Client } from '@aws-sdk/client-s3';
import tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../../core/errors.js';
import { validateProfile } from '../../../core/profile/io.js';
import type { Profile } from '../../../core/profile/schema.js';
import { addSecretFiles, secretFilesOf } from '../../../core/secret/files.js';
import { SecretResolver } from '../../../core/secret/resolve.js';
import { deriveKeys, generateMasterKey } from '../../../core/snapshot/keys.js';
import { S3ObjectStore } from '../../../core/snapshot/object-store.js';
import { SecretVault } from '../../../core/snapshot/secrets.js';
import { LOCAL_CREDENTIALS, LOCAL_REGION, type StandIns, startStandIns } from '../../../local/stand-ins.js';

let dir: string;
let standIns: StandIns;
let vault: SecretVault;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'persona-secret-files-'));
  standIns = await startStandIns({ dataDir: join(dir, 'data'), tables: [], buckets: ['secrets'] });
  const s3 = new S3Client({
    endpoint: standIns.s3Endpoint,
    region: LOCAL_REGION,
    credentials: LOCAL_CREDENTIALS,
    forcePathStyle: true,
  });
  vault = new SecretVault(new S3ObjectStore(s3, 'secrets'), deriveKeys(generateMasterKey(), 'files-test'));
}, 120_000);

afterAll(async () => {
  await standIns?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function profileWith(files: unknown[]): Promise<Profile> {
  return validateProfile({
    apiVersion: 'persona/v1',
    kind: 'Profile',
    metadata: { name: 'web' },
    spec: {
      os: { family: 'linux', distribution: 'debian', version: '12', kernel: '6.1.0', arch: 'x86_64' },
      configuration: { files },
      security: {
        users: [{ name: 'shop', uid: 1001, gid: 1001 }],
        groups: [{ name: 'ssl-cert', gid: 110 }],
      },
    },
  });
}

async function tarOf(entries: readonly { name: string; body: string }[]): Promise<Readable> {
  const pack = tar.pack();
  for (const e of entries) pack.entry({ name: e.name, mode: 0o644 }, e.body);
  pack.finalize();
  return Readable.from(pack as unknown as AsyncIterable<Buffer>);
}

async function entries(stream: Readable) {
  const extract = tar.extract();
  stream.pipe(extract as unknown as NodeJS.WritableStream);
  const out: { name: string; mode: number; uid: number; gid: number; uname?: string; body: string }[] = [];
  for await (const item of extract) {
    const pieces: Buffer[] = [];
    for await (const p of item) pieces.push(p as Buffer);
    const h = item.header;
    out.push({
      name: h.name,
      mode: h.mode ?? 0,
      uid: h.uid ?? 0,
      gid: h.gid ?? 0,
      ...(h.uname ? { uname: h.uname } : {}),
      body: Buffer.concat(pieces).toString('utf8'),
    });
  }
  return out;
}

const resolver = () => new SecretResolver({ vault: async () => vault });

describe('addSecretFiles', () => {
  it('adds each secret file with its mode, owners and pinned value, in place of a stale copy', async () => {
    const key = await vault.put('web/file/etc/ssl/private/web.key', 'KEY ONE');
    const env = await vault.put('web/file/srv/shop/.env', 'DB_PASSWORD=pinned\n');
    const profile = await profileWith([
      {
        path: '/etc/ssl/private/web.key',
        mode: '0640',
        owner: 'root',
        group: 'ssl-cert',
        sensitive: true,
        secretRef: { provider: 'local', key: 'web/file/etc/ssl/private/web.key', digest: key.digest },
      },
      {
        path: '/srv/shop/.env',
        owner: 'shop',
        sensitive: true,
        secretRef: { provider: 'local', key: 'web/file/srv/shop/.env', digest: env.digest },
      },
    ]);
    const out = new PassThrough();
    const read = entries(out);
    const result = await addSecretFiles(
      await tarOf([
        { name: 'etc/hostname', body: 'web\n' },
        { name: 'etc/ssl/private/web.key', body: 'STALE COPY' },
      ]),
      out,
      { files: secretFilesOf(profile), resolver: resolver(), host: 'web', mtime: new Date(0) },
    );

    expect(result.skipped).toEqual([]);
    expect(await read).toEqual([
      { name: 'etc/hostname', mode: 0o644, uid: 0, gid: 0, body: 'web\n' },
      { name: 'etc/ssl/private/web.key', mode: 0o640, uid: 0, gid: 110, uname: 'root', body: 'KEY ONE' },
      { name: 'srv/shop/.env', mode: 0o600, uid: 1001, gid: 0, uname: 'shop', body: 'DB_PASSWORD=pinned\n' },
    ]);
  });

  it('names the files whose value was never sealed instead of failing the export', async () => {
    const profile = await profileWith([
      {
        path: '/etc/gshadow',
        sensitive: true,
        secretRef: { provider: 'local', key: 'web/file/etc/gshadow' },
      },
    ]);
    const out = new PassThrough();
    const read = entries(out);
    const result = await addSecretFiles(await tarOf([{ name: 'etc/hostname', body: 'web\n' }]), out, {
      files: secretFilesOf(profile),
      resolver: resolver(),
      host: 'web',
      mtime: new Date(0),
    });
    expect(result.skipped).toEqual(['etc/gshadow']);
    expect((await read).map((e) => e.name)).toEqual(['etc/hostname']);
  });

  it("refuses a Profile whose file refers to another host's secret", async () => {
    const theirs = await vault.put('db/file/etc/shadow', 'root:$6$db-host-hash:1:0:99999:7:::');
    const profile = await profileWith([
      {
        path: '/etc/shadow',
        sensitive: true,
        secretRef: { provider: 'local', key: 'db/file/etc/shadow', digest: theirs.digest },
      },
    ]);
    const out = new PassThrough();
    out.resume();
    const error = await addSecretFiles(await tarOf([]), out, {
      files: secretFilesOf(profile),
      resolver: resolver(),
      host: 'web',
      mtime: new Date(0),
    }).catch((e) => e);
    expect(error).toBeInstanceOf(InvalidInputError);
    expect(error.message).toContain('etc/shadow');
  });
});
