// The S3 object store's uploads as they go on the wire: a put is signed with the payload hash
// its caller gives (a pack is named by the SHA-256 of its bytes, and hashing 16 MiB again cost
// the snapshot's main thread), or with the one the SDK computes; a malformed hash is refused
// before any request; and every pack a snapshot uploads carries the SHA-256 of exactly its bytes.
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ObjectStore, S3_CHECKSUMS, S3ObjectStore } from '../../../core/snapshot/object-store.js';
import { SnapshotStore } from '../../../core/snapshot/store.js';
import { DirectoryTarget, directorySource } from '../../../core/snapshot/tree.js';
import { LOCAL_CREDENTIALS, LOCAL_REGION } from '../../../local/stand-ins.js';
import { describeTree } from '../../support/snapshot-store.js';
import { useTestStore } from '../../support/use-test-store.js';

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

interface Received {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

/** A bucket on loopback that answers every request 200 and keeps what it was sent. */
let server: Server;
const received: Received[] = [];
let objects: S3ObjectStore;

beforeAll(async () => {
  server = createServer((req, res) => {
    const pieces: Buffer[] = [];
    req.on('data', (p: Buffer) => pieces.push(p));
    req.on('end', () => {
      received.push({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(pieces),
      });
      res.writeHead(200, { etag: '"0"' }).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const s3 = new S3Client({
    endpoint: `http://127.0.0.1:${port}`,
    region: LOCAL_REGION,
    credentials: LOCAL_CREDENTIALS,
    forcePathStyle: true,
    ...S3_CHECKSUMS,
  });
  objects = new S3ObjectStore(s3, 'bucket');
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

describe('S3ObjectStore.put on the wire', () => {
  it('signs with the SHA-256 the SDK computes of the bytes when none is given', async () => {
    received.length = 0;
    const bytes = randomBytes(70_000);
    await objects.put('a/one', bytes);
    expect(received).toHaveLength(1);
    expect(received[0]?.method).toBe('PUT');
    expect(received[0]?.body.equals(bytes)).toBe(true);
    expect(received[0]?.headers['x-amz-content-sha256']).toBe(sha256(bytes));
    expect(received[0]?.headers.authorization).toContain('x-amz-content-sha256');
  });

  it('signs with the SHA-256 it is given, as given, without hashing the bytes again', async () => {
    received.length = 0;
    const bytes = randomBytes(70_000);
    await objects.put('a/two', bytes, { sha256: sha256(bytes) });
    expect(received[0]?.headers['x-amz-content-sha256']).toBe(sha256(bytes));
    expect(received[0]?.body.equals(bytes)).toBe(true);
    // What the caller says is what is signed: S3 itself refuses bytes that do not match it, so
    // the value sent is the caller's, not one computed here (this loopback bucket checks nothing).
    const other = sha256(Buffer.from('other bytes'));
    await objects.put('a/three', bytes, { sha256: other });
    expect(received[1]?.headers['x-amz-content-sha256']).toBe(other);
  });

  it('refuses a payload hash that is not 64 lowercase hex digits, naming it, before any request', async () => {
    received.length = 0;
    for (const bad of ['', 'UNSIGNED-PAYLOAD', 'AB'.repeat(32), `${'a'.repeat(63)}\n`, 'a'.repeat(65)]) {
      await expect(objects.put('a/bad', Buffer.from('x'), { sha256: bad })).rejects.toThrow(
        /^sha256 must be/,
      );
    }
    expect(received).toEqual([]);
  });
});

describe('a snapshot’s pack uploads', () => {
  const ts = useTestStore();

  it('name each pack by the SHA-256 of exactly the bytes sent, and give the bucket that hash', async () => {
    const real = ts.deps().objects;
    const packs: { key: string; bytes: Uint8Array; hash: string | undefined }[] = [];
    const recording: ObjectStore = {
      location: real.location,
      put: (key, bytes, options) => {
        if (key.startsWith('snapshots/packs/'))
          packs.push({ key, bytes: Uint8Array.from(bytes), hash: options?.sha256 });
        return real.put(key, bytes, options);
      },
      get: (key) => real.get(key),
      getRange: (key, offset, length, into) => real.getRange(key, offset, length, into),
      head: (key) => real.head(key),
      list: (prefix) => real.list(prefix),
      delete: (keys) => real.delete(keys),
    };
    const src = ts.fresh('src');
    await fs.mkdir(join(src, 'data'));
    // Incompressible, so that the tree makes more than one pack.
    for (let i = 0; i < 3; i++) await fs.writeFile(join(src, 'data', `f${i}`), randomBytes(9 * 1024 * 1024));
    await fs.writeFile(join(src, 'small.conf'), 'listen 8080\n');
    const store = await SnapshotStore.open({ ...ts.deps(), objects: recording });
    const record = await store.create(directorySource(src), { host: 'hashed' });
    expect(packs.length).toBeGreaterThan(1);
    for (const pack of packs) {
      expect(pack.hash).toBe(sha256(pack.bytes));
      expect(pack.key.endsWith(`/${pack.hash}`)).toBe(true);
    }
    // The bucket took them so: the snapshot restores whole.
    const out = ts.fresh('out');
    expect((await store.restore(record, new DirectoryTarget(out))).failed).toEqual([]);
    expect(await describeTree(out)).toEqual(await describeTree(src));
  });
});
