import { spawn } from 'node:child_process';
import * as fs from 'node:fs/promises';
import { join } from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConflictError } from '../../../core/errors.js';
import { S3ObjectStore } from '../../../core/snapshot/object-store.js';
import { DynamoLocks, StoreBusyError } from '../../../core/snapshot/records.js';
import { packKeyOf, SnapshotStore } from '../../../core/snapshot/store.js';
import { tarSource, writeTar } from '../../../core/snapshot/tar.js';
import { DirectoryTarget, directorySource } from '../../../core/snapshot/tree.js';
import { LOCAL_CREDENTIALS, LOCAL_REGION } from '../../../local/stand-ins.js';
import { gate, pausedSource } from '../../support/gates.js';
import { bytesFrom, describeTree } from '../../support/snapshot-store.js';
import { useTestStore } from '../../support/use-test-store.js';

const ts = useTestStore();
const { fresh } = ts;
let store: SnapshotStore;

beforeAll(async () => {
  store = await ts.open();
});

/** A small host-like tree: configuration, an application, logs, links of every kind. */
async function buildTree(root: string, seed = 1): Promise<void> {
  await fs.mkdir(join(root, 'etc/nginx/sites-enabled'), { recursive: true });
  await fs.mkdir(join(root, 'srv/app/lib'), { recursive: true });
  await fs.mkdir(join(root, 'var/log'), { recursive: true });
  await fs.writeFile(join(root, 'etc/nginx/nginx.conf'), 'worker_processes auto;\nevents {}\n');
  await fs.writeFile(join(root, 'etc/hostname'), 'web-a\n');
  await fs.writeFile(join(root, 'etc/empty'), '');
  await fs.writeFile(join(root, 'srv/app/lib/big.bin'), bytesFrom(seed, 3 * 1024 * 1024 + 17));
  await fs.writeFile(join(root, 'srv/app/app.js'), 'console.log("shop")\n'.repeat(500));
  await fs.writeFile(join(root, 'var/log/syslog'), 'boot\n'.repeat(1000));
  await fs.symlink('../sites-available/default', join(root, 'etc/nginx/sites-enabled/default'));
  await fs.link(join(root, 'etc/hostname'), join(root, 'srv/app/hostname-link'));
  await fs.chmod(join(root, 'etc/hostname'), 0o640);
  await fs.chown(join(root, 'srv/app/app.js'), 1001, 1002);
  await fs.chmod(join(root, 'srv/app'), 0o2750);
  // A sparse file: 8 MiB with 64 KiB of data in the middle.
  const sparse = await fs.open(join(root, 'var/disk.img'), 'w');
  await sparse.truncate(8 * 1024 * 1024);
  await sparse.write(bytesFrom(seed + 1, 65536), 0, 65536, 4 * 1024 * 1024);
  await sparse.close();
  await fs.utimes(join(root, 'etc/nginx/nginx.conf'), 1_700_000_000.123456, 1_700_000_000.123456);
}

describe('SnapshotStore', () => {
  it('snapshots a tree and restores it byte for byte with its metadata', async () => {
    const src = fresh('src');
    await buildTree(src);
    const record = await store.create(directorySource(src), { host: 'round-trip' });
    expect(record.version).toBe(1);
    expect(record.stats.files).toBeGreaterThanOrEqual(7);
    const out = fresh('out');
    await store.restore(record, new DirectoryTarget(out));
    expect(await describeTree(out)).toEqual(await describeTree(src));
    expect((await describeTree(out)).find((l) => l.path === 'var/disk.img')?.sparse).toBe(true);
  });

  it('stores only what changed in a second snapshot, and restores either', async () => {
    const src = fresh('delta');
    await buildTree(src, 7);
    const first = await store.create(directorySource(src), { host: 'delta' });
    const v1 = await describeTree(src);
    await fs.appendFile(join(src, 'var/log/syslog'), 'one more line\n');
    await fs.writeFile(join(src, 'etc/motd'), 'welcome\n');
    await fs.rm(join(src, 'etc/empty'));
    const second = await store.create(directorySource(src), { host: 'delta' });
    expect(second.version).toBe(2);
    // The 3 MiB file and everything else unchanged are not stored again.
    expect(second.stats.newBytes).toBeLessThan(20_000);
    expect(second.stats.storedBytes).toBeLessThan(first.stats.storedBytes / 20);

    const d = await store.diff('delta', 1, 2);
    expect(d).toEqual({
      added: ['etc/motd'],
      removed: ['etc/empty'],
      changed: ['var/log/syslog'],
      metadata: expect.any(Array),
    });

    const out1 = fresh('delta-out1');
    await store.restore(first, new DirectoryTarget(out1));
    expect(await describeTree(out1)).toEqual(v1);
    const out2 = fresh('delta-out2');
    await store.restore(second, new DirectoryTarget(out2));
    expect(await describeTree(out2)).toEqual(await describeTree(src));
  });

  it('does not read files the previous snapshot saw unchanged, but catches a change that kept size and mtime', async () => {
    const src = fresh('reuse');
    await buildTree(src, 31);
    await store.create(directorySource(src), { host: 'reuse' });
    // Same size, same mtime, other content: only the inode's ctime tells.
    const conf = join(src, 'etc/nginx/nginx.conf');
    const before = await fs.stat(conf);
    await fs.writeFile(conf, 'worker_processes four;\nevents {}\n'.slice(0, before.size));
    await fs.utimes(conf, before.atime, before.mtime);
    const reads: string[] = [];
    const source = directorySource(src);
    const counting = {
      root: source.root,
      async *entries() {
        for await (const item of source.entries()) {
          const { content, readInto } = item;
          // Either way of reading counts: streamed, or into the store's own memory.
          yield content
            ? {
                ...item,
                content: () => {
                  reads.push(item.entry.path);
                  return content();
                },
                ...(readInto
                  ? {
                      readInto: (buffer: Uint8Array, position: number) => {
                        if (position === 0) reads.push(item.entry.path);
                        return readInto(buffer, position);
                      },
                    }
                  : {}),
              }
            : item;
        }
      },
    };
    const second = await store.create(counting, { host: 'reuse' });
    expect(reads).toEqual(['etc/nginx/nginx.conf']);
    const out = fresh('reuse-out');
    await store.restore(second, new DirectoryTarget(out));
    expect(await describeTree(out)).toEqual(await describeTree(src));
    const forced = await store.create(directorySource(src), { host: 'reuse', rehash: true });
    expect(forced.stats.newChunks).toBe(0);
  });

  it('restores incrementally: only entries that differ are written', async () => {
    const src = fresh('inc');
    await buildTree(src, 11);
    const first = await store.create(directorySource(src), { host: 'inc' });
    await fs.writeFile(join(src, 'etc/hostname'), 'web-b\n');
    await fs.rm(join(src, 'var/log/syslog'));
    const second = await store.create(directorySource(src), { host: 'inc' });

    const target = fresh('inc-target');
    await store.restore(first, new DirectoryTarget(target));
    const existing = await store.scan(directorySource(target));
    const stats = await store.restore(second, new DirectoryTarget(target), { existing, deleteExtra: true });
    // The changed file, and the hard link that shares it.
    expect(stats.written).toBe(2);
    expect(stats.removed).toBe(1);
    expect(await describeTree(target)).toEqual(await describeTree(src));
  });

  it('restores random trees exactly: odd names, empty and large files, links, modes, owners', async () => {
    const name = fc
      .stringMatching(/^[a-zA-Z0-9 ._\-é€🙂'"\\$#]{1,20}$/u)
      .filter((n) => n !== '.' && n !== '..');
    const file = fc.record({
      name,
      size: fc.oneof(
        fc.constant(0),
        fc.integer({ min: 1, max: 4096 }),
        fc.integer({ min: 300_000, max: 1_500_000 }),
      ),
      seed: fc.integer({ min: 1, max: 1_000_000 }),
      mode: fc.constantFrom(0o644, 0o600, 0o755, 0o4755, 0o1777, 0o400),
      uid: fc.integer({ min: 0, max: 70000 }),
      link: fc.constantFrom('none', 'symlink', 'hardlink'),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(file, { selector: (f) => f.name, minLength: 1, maxLength: 12 }),
        async (files) => {
          const src = fresh('prop');
          await fs.mkdir(join(src, 'sub dir'), { recursive: true });
          for (const f of files) {
            const path = join(src, 'sub dir', f.name);
            await fs.writeFile(path, bytesFrom(f.seed, f.size));
            await fs.chown(path, f.uid, f.uid + 1);
            await fs.chmod(path, f.mode);
            if (f.link === 'symlink') await fs.symlink(`sub dir/${f.name}`, join(src, `${f.name}.sym`));
            if (f.link === 'hardlink') await fs.link(path, join(src, `${f.name}.hard`));
          }
          const record = await store.create(directorySource(src), { host: 'property' });
          const out = fresh('prop-out');
          await store.restore(record, new DirectoryTarget(out));
          expect(await describeTree(out)).toEqual(await describeTree(src));
        },
      ),
      { numRuns: 8 },
    );
  });

  it('detects a flipped byte in a pack, names the file, object and chunk, and leaves no partial file', async () => {
    const own = await ts.open();
    const src = fresh('corrupt');
    await fs.writeFile(join(src, 'data.bin'), bytesFrom(99, 700_000));
    const packs = async () => {
      const keys = new Set<string>();
      for await (const o of ts.deps().objects.list('snapshots/packs/')) keys.add(o.key);
      return keys;
    };
    const before = await packs();
    const record = await own.create(directorySource(src), { host: 'corrupt' });
    const manifest = await own.manifest(record);
    const chunk = manifest.entries[0]?.chunks?.[0] as string;
    // The one pack this snapshot added holds its only chunk.
    const key = [...(await packs())].find((k) => !before.has(k)) as string;
    const bytes = Buffer.from(await ts.deps().objects.get(key));
    bytes[100] = (bytes[100] as number) ^ 0xff;
    await ts.deps().objects.put(key, bytes);

    const out = fresh('corrupt-out');
    const stats = await own.restore(record, new DirectoryTarget(out));
    expect(stats.failed).toEqual([
      { path: 'data.bin', reason: expect.stringContaining(`${key} chunk ${chunk}`), damaged: true },
    ]);
    expect(stats.written).toBe(0);
    expect(await fs.readdir(out)).toEqual([]);

    const report = await own.check({ readData: true });
    expect(report.ok).toBe(false);
    expect(report.problems).toEqual(
      expect.arrayContaining([expect.objectContaining({ object: key, chunk })]),
    );
    // Put it back for the tests that follow.
    bytes[100] = (bytes[100] as number) ^ 0xff;
    await ts.deps().objects.put(key, bytes);
    expect((await own.check({ readData: true })).ok).toBe(true);
  });

  it('restores all a damaged snapshot still holds and names, by path, every file it could not', async () => {
    const own = await ts.open();
    const src = fresh('damaged');
    await fs.mkdir(join(src, 'etc/app'), { recursive: true });
    await fs.mkdir(join(src, 'srv'), { recursive: true });
    await fs.writeFile(join(src, 'etc/app/a.conf'), 'a = 1\n');
    await fs.writeFile(join(src, 'etc/app/bad.conf'), bytesFrom(5, 40_000));
    await fs.writeFile(join(src, 'srv/z.bin'), bytesFrom(6, 300_000));
    await fs.link(join(src, 'etc/app/bad.conf'), join(src, 'srv/bad-link'));
    await fs.chmod(join(src, 'etc/app'), 0o750);
    await fs.chmod(join(src, 'srv'), 0o711);
    const record = await own.create(directorySource(src), { host: 'damaged' });
    const bad = (await own.manifest(record)).entries.find((e) => e.path === 'etc/app/bad.conf');
    const chunk = bad?.chunks?.[0] as string;
    // One blob damaged in the middle of a pack that also holds the files around it.
    const at = own.index.get(chunk);
    if (!at) throw new Error('the chunk is not in the index');
    const key = packKeyOf(at.packId);
    const original = Buffer.from(await ts.deps().objects.get(key));
    const damaged = Buffer.from(original);
    damaged[at.offset + 30] = (damaged[at.offset + 30] as number) ^ 0x01;
    await ts.deps().objects.put(key, damaged);
    try {
      const out = fresh('damaged-out');
      const stats = await own.restore(record, new DirectoryTarget(out));
      expect(stats.failed).toEqual([
        { path: 'etc/app/bad.conf', reason: expect.stringContaining(`${key} chunk ${chunk}`), damaged: true },
        { path: 'srv/bad-link', reason: 'its link target etc/app/bad.conf was not restored' },
      ]);
      // Everything else is there as it was, directories with their own modes (not 0700).
      const missing = new Set(['etc/app/bad.conf', 'srv/bad-link']);
      const expected = (await describeTree(src)).filter((l) => !missing.has(l.path));
      expect(await describeTree(out)).toEqual(expected);
      expect((await fs.readdir(join(out, 'etc/app'))).sort()).toEqual(['a.conf']);
    } finally {
      await ts.deps().objects.put(key, original);
    }
  });

  it('restores around a pack missing from the bucket, naming the files that were in it', async () => {
    const own = await ts.open();
    const src = fresh('lost');
    await fs.writeFile(join(src, 'kept'), bytesFrom(70, 1000));
    await own.create(directorySource(src), { host: 'lost' });
    await fs.writeFile(join(src, 'new'), bytesFrom(71, 1000));
    const record = await own.create(directorySource(src), { host: 'lost' });
    const entry = (await own.manifest(record)).entries.find((e) => e.path === 'new');
    const at = own.index.get(entry?.chunks?.[0] as string);
    if (!at) throw new Error('the chunk is not in the index');
    const key = packKeyOf(at.packId);
    const original = await ts.deps().objects.get(key);
    await ts.deps().objects.delete([key]);
    try {
      const out = fresh('lost-out');
      const stats = await own.restore(record, new DirectoryTarget(out));
      expect(stats.failed).toEqual([{ path: 'new', reason: expect.stringContaining(key), damaged: true }]);
      expect(await fs.readFile(join(out, 'kept'))).toEqual(bytesFrom(70, 1000));
      expect(await fs.readdir(out)).toEqual(['kept']);
    } finally {
      await ts.deps().objects.put(key, original);
    }
  });

  it('ends a restore on a failure that is not about one entry, leaving no directory at 0700', async () => {
    const src = fresh('outage');
    await fs.mkdir(join(src, 'etc/app'), { recursive: true });
    await fs.writeFile(join(src, 'etc/app/a.conf'), bytesFrom(80, 5000));
    await fs.chmod(join(src, 'etc/app'), 0o751);
    await fs.chmod(join(src, 'etc'), 0o755);
    const record = await store.create(directorySource(src), { host: 'outage' });
    // The bucket stops answering once the restore reads content.
    const deps = ts.deps();
    const objects = new Proxy(deps.objects, {
      get(target, name, receiver) {
        const value = Reflect.get(target, name, receiver);
        if (name !== 'get' && name !== 'getRange')
          return typeof value === 'function' ? value.bind(target) : value;
        return async (key: string, ...rest: number[]) => {
          if (key.startsWith('snapshots/packs/')) throw new Error('socket hang up');
          return (value as (k: string, ...r: number[]) => Promise<Uint8Array>).call(target, key, ...rest);
        };
      },
    });
    const cut = await SnapshotStore.open({ ...deps, objects });
    const out = fresh('outage-out');
    await expect(cut.restore(record, new DirectoryTarget(out))).rejects.toThrow('socket hang up');
    expect((await fs.stat(join(out, 'etc'))).mode & 0o7777).toBe(0o755);
    expect((await fs.stat(join(out, 'etc/app'))).mode & 0o7777).toBe(0o751);
    expect(await fs.readdir(join(out, 'etc/app'))).toEqual([]);
  });

  it('detects a flipped byte in a manifest and in an index, naming the object', async () => {
    const src = fresh('meta');
    await fs.writeFile(join(src, 'a'), 'a');
    const record = await store.create(directorySource(src), { host: 'meta-corrupt' });
    const objects = ts.deps().objects;
    const original = Buffer.from(await objects.get(record.manifestKey));
    const damaged = Buffer.from(original);
    damaged[damaged.length - 3] = (damaged[damaged.length - 3] as number) ^ 1;
    await objects.put(record.manifestKey, damaged);
    await expect(store.manifest(record)).rejects.toThrow(record.manifestKey);
    await objects.put(record.manifestKey, original);

    const indexKey = record.indexKeys[0] as string;
    const index = Buffer.from(await objects.get(indexKey));
    const flipped = Buffer.from(index);
    flipped[20] = (flipped[20] as number) ^ 1;
    await objects.put(indexKey, flipped);
    await expect(ts.open()).rejects.toThrow(indexKey);
    const report = await store.check();
    expect(report.problems).toEqual(expect.arrayContaining([expect.objectContaining({ object: indexKey })]));
    await objects.put(indexKey, index);
  });

  it('refuses garbage collection while a snapshot is being written, and loses nothing', async () => {
    const src = fresh('busy');
    for (let i = 0; i < 6; i++) await fs.writeFile(join(src, `f${i}`), bytesFrom(500 + i, 2 * 1024 * 1024));
    const paused = gate();
    const writing = store.create(pausedSource(directorySource(src), paused), { host: 'busy' });
    // The writer holds its lock and has read all but its last file.
    await paused.reached;
    const collector = await ts.open();
    await expect(collector.gc()).rejects.toBeInstanceOf(StoreBusyError);
    paused.open();
    const record = await writing;
    const report = await collector.gc();
    expect(report.packsDeleted).toBe(0);
    const out = fresh('busy-out');
    await collector.restore(record, new DirectoryTarget(out));
    expect(await describeTree(out)).toEqual(await describeTree(src));
  });

  it('keeps snapshots a retention policy names, and gc frees the data of the others', async () => {
    const src = fresh('retain');
    const records = [];
    for (let i = 0; i < 4; i++) {
      await fs.writeFile(join(src, 'data'), bytesFrom(1000 + i, 400_000));
      records.push(await store.create(directorySource(src), { host: 'retain' }));
    }
    const result = await store.forget('retain', { keepLast: 2 });
    expect(result).toEqual({ kept: [3, 4], removed: [1, 2] });
    const before = await store.check();
    const gc = await store.gc();
    expect(gc.packsDeleted).toBeGreaterThanOrEqual(2);
    const after = await store.check({ readData: true });
    expect(after.ok).toBe(true);
    expect(after.packs).toBeLessThan(before.packs);
    const out = fresh('retain-out');
    await store.restore(records[3] as (typeof records)[number], new DirectoryTarget(out));
    expect(await describeTree(out)).toEqual(await describeTree(src));
  });

  it('survives a writer killed mid-snapshot: gc removes exactly the packs it left, nothing referenced goes missing', async () => {
    const packs = async () => {
      const keys = new Set<string>();
      for await (const o of ts.deps().objects.list('snapshots/packs/')) keys.add(o.key);
      return keys;
    };
    // Garbage of the tests before goes first, so that what gc removes below is the writer's.
    await store.gc();
    const before = await packs();
    const src = fresh('killed');
    for (let i = 0; i < 12; i++) await fs.writeFile(join(src, `f${i}`), bytesFrom(2000 + i, 3 * 1024 * 1024));
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'test/support/snapshot-child.ts', src, 'killed'],
      {
        env: { ...process.env, ...ts.env, LOCK_TTL_MS: '2000' },
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    // Kill it once its first pack is in the bucket.
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        if (d.toString().includes('uploaded')) resolve();
      });
      child.once('exit', () => reject(new Error('the writer finished before it could be killed')));
    });
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));

    const left = [...(await packs())].filter((k) => !before.has(k));
    expect(left.length).toBeGreaterThanOrEqual(1);

    const next = await ts.open({ lockTtlMs: 2000 });
    expect((await next.check()).ok).toBe(true);
    const record = await next.create(directorySource(src), { host: 'killed' });
    expect(record.version).toBe(1);
    const beforeGc = await packs();
    // Once the killed writer's lock has expired (its ttl and the clock-skew margin), gc
    // removes what it left behind: until then the store is busy.
    let gc: Awaited<ReturnType<SnapshotStore['gc']>> | undefined;
    for (let attempt = 0; !gc; attempt++) {
      gc = await next.gc().catch(async (e: unknown) => {
        if (!(e instanceof StoreBusyError) || attempt > 100) throw e;
        await new Promise((r) => setTimeout(r, 100));
        return undefined;
      });
    }
    const after = await packs();
    // Exactly the dead writer's packs: no index or record named them, and nothing else went.
    expect([...beforeGc].filter((k) => !after.has(k)).sort()).toEqual(left.sort());
    expect(gc.packsDeleted).toBe(left.length);
    const report = await next.check({ readData: true });
    expect(report.ok).toBe(true);
    const out = fresh('killed-out');
    await next.restore(record, new DirectoryTarget(out));
    expect(await describeTree(out)).toEqual(await describeTree(src));
  });
});

describe('creating a store', () => {
  it('lets exactly one of several processes create it, all using the same key', async () => {
    await ts.s3.send(new CreateBucketCommand({ Bucket: 'fresh-store' }));
    const deps = () => {
      const d = ts.deps();
      return { ...d, objects: new S3ObjectStore(ts.s3, 'fresh-store') };
    };
    const stores = await Promise.all([1, 2, 3, 4].map(() => SnapshotStore.open(deps())));
    expect(new Set(stores.map((s) => s.config.storeId)).size).toBe(1);
    const src = fresh('fresh');
    await fs.writeFile(join(src, 'x'), 'x');
    const record = await (stores[1] as SnapshotStore).create(directorySource(src), { host: 'fresh' });
    const out = fresh('fresh-out');
    await (stores[3] as SnapshotStore).restore(record, new DirectoryTarget(out));
    expect(await fs.readFile(join(out, 'x'), 'utf8')).toBe('x');
  });

  it('writes the config with If-None-Match: * so that S3 itself refuses a second one', async () => {
    await ts.s3.send(new CreateBucketCommand({ Bucket: 'conditional-store' }));
    const puts: { path: string; ifNoneMatch: string | undefined }[] = [];
    const s3 = new S3Client({
      endpoint: ts.standIns.s3Endpoint,
      region: LOCAL_REGION,
      credentials: LOCAL_CREDENTIALS,
      forcePathStyle: true,
    });
    // What goes on the wire.
    s3.middlewareStack.add(
      (next) => async (args) => {
        const request = args.request as { method?: string; path?: string; headers?: Record<string, string> };
        if (request.method === 'PUT')
          puts.push({ path: request.path ?? '', ifNoneMatch: request.headers?.['if-none-match'] });
        return next(args);
      },
      { step: 'finalizeRequest', name: 'recordPuts' },
    );
    const own = await SnapshotStore.open({
      ...ts.deps(),
      objects: new S3ObjectStore(s3, 'conditional-store'),
    });
    const src = fresh('conditional');
    await fs.writeFile(join(src, 'x'), 'x');
    await own.create(directorySource(src), { host: 'conditional' });
    expect(puts.filter((p) => p.path.endsWith('/snapshots/config'))).toEqual([
      { path: '/conditional-store/snapshots/config', ifNoneMatch: '*' },
    ]);
    // Packs, indexes and manifests are named by their content: written unconditionally.
    // Listing chunks are written only if absent: another host's listing may hold the same.
    expect(puts.length).toBeGreaterThanOrEqual(4);
    const conditional = puts.filter((p) => p.ifNoneMatch !== undefined).map((p) => p.path);
    expect(conditional.filter((p) => !p.includes('/snapshots/listings/'))).toEqual([
      '/conditional-store/snapshots/config',
    ]);
    expect(conditional.length).toBeGreaterThan(1);
    expect(puts.filter((p) => p.path.includes('/snapshots/packs/') && p.ifNoneMatch !== undefined)).toEqual(
      [],
    );
    s3.destroy();
  });

  it('keeps the first config when two creators both hold a claim, as after a claim taken from one that was only slow', async () => {
    await ts.s3.send(new CreateBucketCommand({ Bucket: 'two-creators' }));
    // The embedded S3-protocol server honours If-None-Match as S3 does: 412 once the key
    // exists, 409 to one of two conditional writes of a key at once.
    {
      const objects = new S3ObjectStore(ts.s3, 'two-creators');
      await objects.put('probe', Buffer.from('first'), { ifAbsent: true });
      await expect(objects.put('probe', Buffer.from('second'), { ifAbsent: true })).rejects.toBeInstanceOf(
        ConflictError,
      );
      expect(Buffer.from(await objects.get('probe')).toString()).toBe('first');
      const racing = await Promise.allSettled(
        [1, 2, 3, 4].map((n) => objects.put('race', Buffer.alloc(256 * 1024, n), { ifAbsent: true })),
      );
      expect(racing.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      for (const r of racing) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(ConflictError);
      // A write without the condition still replaces.
      await objects.put('probe', Buffer.from('third'));
      expect(Buffer.from(await objects.get('probe')).toString()).toBe('third');

      const locks = ts.deps().locks;
      // Every claimant is granted the claim: only the conditional write stands between them.
      const granted = {
        shared: locks.shared.bind(locks),
        exclusive: locks.exclusive.bind(locks),
        claim: async (resource: string) => ({
          resource,
          holder: 'creator',
          throwIfLost: () => {},
          assertHeld: async () => {},
          fence: () => {
            throw new Error('a claim fences nothing');
          },
          release: async () => {},
        }),
      };
      const stores = await Promise.all(
        [1, 2, 3].map(() => SnapshotStore.open({ ...ts.deps(), objects, locks: granted })),
      );
      const stored = JSON.parse(Buffer.from(await objects.get('snapshots/config')).toString()) as {
        storeId: string;
      };
      expect(stores.map((s) => s.config.storeId)).toEqual([stored.storeId, stored.storeId, stored.storeId]);
    }
  });

  it('creates the store once the claim of a creator that died has expired', async () => {
    await ts.s3.send(new CreateBucketCommand({ Bucket: 'dead-creator' }));
    const objects = new S3ObjectStore(ts.s3, 'dead-creator');
    // The dying creator's DynamoDB: its claim goes through, then nothing it sends arrives.
    let sent = 0;
    const dying = new Proxy(ts.ddb, {
      get(target, property, receiver) {
        if (property !== 'send') return Reflect.get(target, property, receiver);
        return (command: Parameters<typeof target.send>[0]) =>
          sent++ === 0 ? target.send(command) : new Promise(() => {});
      },
    });
    const claim = await new DynamoLocks(dying, 'locks', { ttlMs: 500, clockSkewMs: 100 }).claim(
      `${objects.location}/snapshots/config`,
    );
    expect(claim).toBeDefined();
    const own = await SnapshotStore.open({ ...ts.deps({ lockTtlMs: 500, clockSkewMs: 100 }), objects });
    expect((await objects.head('snapshots/config'))?.size).toBeGreaterThan(0);
    const src = fresh('dead-creator');
    await fs.writeFile(join(src, 'x'), 'x');
    const record = await own.create(directorySource(src), { host: 'dead-creator' });
    const out = fresh('dead-creator-out');
    await (await SnapshotStore.open({ ...ts.deps(), objects })).restore(record, new DirectoryTarget(out));
    expect(await fs.readFile(join(out, 'x'), 'utf8')).toBe('x');
  });
});

describe('tar streams', () => {
  const withoutSparse = (lines: Awaited<ReturnType<typeof describeTree>>) =>
    lines.map(({ sparse: _, ...rest }) => rest);

  it('snapshots a tar stream as a host would send it (tar -c) and restores the same tree', async () => {
    const src = fresh('tar-src');
    await buildTree(src, 21);
    const tarProcess = spawn('tar', ['--format=pax', '-cf', '-', '-C', src, '.'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const record = await store.create(tarSource(tarProcess.stdout, src), { host: 'from-tar' });
    const out = fresh('tar-out');
    await store.restore(record, new DirectoryTarget(out));
    expect(withoutSparse(await describeTree(out))).toEqual(withoutSparse(await describeTree(src)));
  });

  it('restores a snapshot as a tar stream that tar -x turns back into the same tree', async () => {
    const src = fresh('tar-export');
    await buildTree(src, 22);
    const record = await store.create(directorySource(src), { host: 'to-tar' });
    const out = fresh('tar-extract');
    const untar = spawn('tar', ['-xpf', '-', '--numeric-owner', '-C', out], {
      stdio: ['pipe', 'inherit', 'inherit'],
    });
    const exited = new Promise<number | null>((r) => untar.once('exit', r));
    await writeTar(store, record, untar.stdin);
    expect(await exited).toBe(0);
    expect(withoutSparse(await describeTree(out))).toEqual(withoutSparse(await describeTree(src)));
  });
});
