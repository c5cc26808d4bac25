// Persona's package store on the S3-protocol server: content-addressed blobs, a small index,
// and every read checked against the hash, so damaged bytes never reach a target.
import { createHash } from 'node:crypto';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dpkgQueryCommand } from '../../../core/resolver/apt.js';
import { fetchIntoStore } from '../../../core/resolver/deliver.js';
import { PackageVerificationError } from '../../../core/resolver/manager.js';
import { resolvePackages } from '../../../core/resolver/resolve.js';
import { PackageStore } from '../../../core/resolver/store.js';
import { S3ObjectStore } from '../../../core/snapshot/object-store.js';
import { bytesFrom, startTestStore, type TestStore } from '../../support/snapshot-store.js';
import { type Answer, RecordedTransport } from './recorded.js';

let stand: TestStore;
let objects: S3ObjectStore;

beforeAll(async () => {
  stand = await startTestStore();
  objects = new S3ObjectStore(stand.s3, stand.bucket);
});

afterAll(async () => {
  await stand?.stop();
});

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const spec = { name: 'tree', version: '2.1.0-1', arch: 'amd64' };

describe('the package store', () => {
  it('keeps a package by its SHA-256 and finds it by name, version and architecture', async () => {
    const store = new PackageStore(objects, 'one/');
    const bytes = bytesFrom(1, 5000);
    const entry = await store.put('deb', spec, bytes, sha(bytes));
    expect(entry).toMatchObject({ ...spec, family: 'deb', sha256: sha(bytes), size: 5000 });
    expect(await objects.head(`one/blobs/${sha(bytes)}`)).toMatchObject({ size: 5000 });
    expect(await store.find('deb', spec)).toEqual(entry);
    expect(await store.find('deb', { ...spec, arch: 'i386' })).toBeUndefined();
    expect(await store.find('rpm', spec)).toBeUndefined();
    expect(Buffer.from(await store.read(entry)).equals(bytes)).toBe(true);
    // The same bytes again: one blob, the entry rewritten.
    await store.put('deb', spec, bytes, sha(bytes));
    const blobs = [];
    for await (const o of objects.list('one/blobs/')) blobs.push(o.key);
    expect(blobs).toEqual([`one/blobs/${sha(bytes)}`]);
  });

  it('keeps versions with epochs, tildes and plus signs apart, and a name is not a prefix of another', async () => {
    const store = new PackageStore(objects, 'two/');
    for (const [name, version] of [
      ['libc6', '2.36-9+deb12u7'],
      ['libc6', '1:2.36-9~bpo1'],
      ['libc6-dev', '2.36-9+deb12u7'],
    ] as const) {
      const bytes = bytesFrom(version.length + name.length, 100);
      await store.put('deb', { name, version, arch: 'amd64' }, bytes, sha(bytes));
    }
    expect((await store.versions('deb', 'libc6')).map((e) => e.version).sort()).toEqual([
      '1:2.36-9~bpo1',
      '2.36-9+deb12u7',
    ]);
    // Several names at once: one listing, only their entries.
    expect(
      (await store.versionsOf('deb', ['libc6-dev', 'libc6', 'zlib1g'])).map((e) => e.name).sort(),
    ).toEqual(['libc6', 'libc6', 'libc6-dev']);
  });

  it('refuses bytes that do not hash to what the index says, and records nothing', async () => {
    const store = new PackageStore(objects, 'three/');
    const bytes = bytesFrom(2, 100);
    await expect(store.put('deb', spec, bytes, 'f'.repeat(64))).rejects.toBeInstanceOf(
      PackageVerificationError,
    );
    const keys = [];
    for await (const o of objects.list('three/')) keys.push(o.key);
    expect(keys).toEqual([]);
  });

  it('refuses to hand out a stored package whose bytes were altered', async () => {
    const store = new PackageStore(objects, 'four/');
    const bytes = bytesFrom(3, 100);
    const entry = await store.put('deb', spec, bytes, sha(bytes));
    const altered = Buffer.from(bytes);
    altered[50] = (altered[50] ?? 0) ^ 1;
    await stand.s3.send(
      new PutObjectCommand({ Bucket: stand.bucket, Key: `four/blobs/${entry.sha256}`, Body: altered }),
    );
    await expect(store.read(entry)).rejects.toMatchObject({
      code: 'CORRUPT',
      message: expect.stringContaining('stored tree 2.1.0-1 (amd64)'),
    });
  });

  it('skips index entries that are not of the index format', async () => {
    const store = new PackageStore(objects, 'five/');
    await objects.put(
      'five/index/deb/tree/junk.json',
      new TextEncoder().encode('{"name":"tree","version":"$(id)"}'),
    );
    await objects.put('five/index/deb/tree/bad.json', new TextEncoder().encode('not json'));
    expect(await store.versions('deb', 'tree')).toEqual([]);
  });

  it('lets a target resolve a version the mirror has dropped, from the store alone', async () => {
    const store = new PackageStore(objects, 'six/');
    const bytes = bytesFrom(4, 100);
    await store.put('deb', spec, bytes, sha(bytes));
    const host = new RecordedTransport(
      new Map<string, Answer>([
        ['dpkg --print-architecture', { stdout: 'amd64\n' }],
        [dpkgQueryCommand(['tree']), { exitCode: 1 }],
      ]),
    );
    const mirror = { family: 'deb' as const, available: async () => [] };
    const [tree] = await resolvePackages(
      [{ name: 'tree', version: '2.1.0-1', manager: 'apt' }],
      { target: host, store, mirror },
      { family: 'deb', targetRepositories: 'offline' },
    );
    expect(tree).toMatchObject({ status: 'exact', source: 'store', spec });
  });

  it('says which package is missing when a resolved one has left the store and there is no mirror', async () => {
    const store = new PackageStore(objects, 'eight/');
    const resolution = {
      status: 'exact' as const,
      package: { name: 'tree', version: '2.1.0-1', manager: 'apt' as const },
      field: 'packages[0]',
      spec,
      source: 'store' as const,
      origin: store.location,
    };
    await expect(fetchIntoStore([resolution], { store, family: 'deb' })).rejects.toMatchObject({
      code: 'NOT_FOUND',
      message: expect.stringContaining('tree 2.1.0-1 (amd64) is not in'),
    });
  });

  it('takes no candidate from an index entry whose version is off the grammar', async () => {
    const store = new PackageStore(objects, 'seven/');
    const bytes = bytesFrom(5, 100);
    const entry = await store.put('deb', { ...spec, version: '2.1.1-1' }, bytes, sha(bytes));
    await objects.put(
      'seven/index/deb/tree/forged.json',
      new TextEncoder().encode(JSON.stringify({ ...entry, version: '2.1.0-1 $(touch /pwned)' })),
    );
    const host = new RecordedTransport(
      new Map<string, Answer>([
        ['dpkg --print-architecture', { stdout: 'amd64\n' }],
        [dpkgQueryCommand(['tree']), { exitCode: 1 }],
      ]),
    );
    const [tree] = await resolvePackages(
      [{ name: 'tree', version: '2.1.0-1', manager: 'apt' }],
      { target: host, store },
      { family: 'deb', targetRepositories: 'offline' },
    );
    expect(tree).toMatchObject({ status: 'nearest', spec: { version: '2.1.1-1' } });
  });
});
