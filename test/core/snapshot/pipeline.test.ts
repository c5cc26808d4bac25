// The snapshot pipeline's bounds and failure paths, on the real stand-ins: what a snapshot or a
// restore holds is bounded by its configuration (counted bytes, not RSS), however large the
// tree, and an upload that fails, a ranged read that comes back short or a damaged blob each
// end as they should, with every restored byte verified.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ChunkerParams } from '../../../core/snapshot/chunker.js';
import type { ObjectStore } from '../../../core/snapshot/object-store.js';
import { PACK_TARGET_SIZE } from '../../../core/snapshot/pack.js';
import { type PipelineLimits, packKeyOf, SnapshotStore } from '../../../core/snapshot/store.js';
import { DirectoryTarget, directorySource } from '../../../core/snapshot/tree.js';
import { describeTree } from '../../support/snapshot-store.js';
import { useTestStore } from '../../support/use-test-store.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const CHUNKER: ChunkerParams = { min: 64 * KiB, avg: 256 * KiB, max: 1 * MiB };

const ts = useTestStore();
const { fresh } = ts;

/** The bucket with some of its calls replaced: the rest go to the S3-protocol server as they are. */
function objectsWith(overrides: Partial<ObjectStore>): ObjectStore {
  const real = ts.deps().objects;
  return {
    location: real.location,
    put: overrides.put ?? ((k, b, o) => real.put(k, b, o)),
    get: overrides.get ?? ((k) => real.get(k)),
    getRange: overrides.getRange ?? ((k, o, l) => real.getRange(k, o, l)),
    head: overrides.head ?? ((k) => real.head(k)),
    list: overrides.list ?? ((p) => real.list(p)),
    delete: overrides.delete ?? ((k) => real.delete(k)),
  };
}

const openWith = (objects: ObjectStore, limits?: Partial<PipelineLimits>) =>
  SnapshotStore.open({ ...ts.deps(), objects }, { chunker: CHUNKER, ...(limits ? { limits } : {}) });

/** Incompressible files of the given sizes, plus a few small ones: what lands in packs as is. */
async function tree(root: string, sizes: readonly number[]): Promise<void> {
  await fs.mkdir(join(root, 'data'), { recursive: true });
  for (const [i, size] of sizes.entries()) await fs.writeFile(join(root, 'data', `f${i}`), randomBytes(size));
  await fs.mkdir(join(root, 'etc'), { recursive: true });
  for (let i = 0; i < 20; i++)
    await fs.writeFile(join(root, 'etc', `c${i}.conf`), `key=${i}\n`.repeat(i * 30));
}

describe('snapshot pipeline', () => {
  it('holds no more than its limits while it ingests and restores a tree many times larger', async () => {
    const src = fresh('bounded');
    // 56 MiB: three and a half packs, 14 times the chunks allowed in encoding at once.
    await tree(src, [20 * MiB, 12 * MiB, 24 * MiB]);
    // Uploads are slow, so that without the bound finished packs would pile up behind them.
    const real = ts.deps().objects;
    const objects = objectsWith({
      put: async (key, bytes, options) => {
        if (key.startsWith('snapshots/packs/')) await new Promise((r) => setTimeout(r, 300));
        return real.put(key, bytes, options);
      },
    });
    const limits = { encodeBytes: 4 * MiB, uploadBytes: 1, restoreBytes: 3 * MiB, restoreReads: 2 };
    const store = await openWith(objects, limits);
    const record = await store.create(directorySource(src), { host: 'bounded' });

    const gauge = store.lastPipeline;
    expect(record.stats.storedBytes).toBeGreaterThan(3 * PACK_TARGET_SIZE);
    // At most one chunk past the encoding limit, one pack uploading (the limit lets one go at a
    // time), and so two pack buffers in all: one filling, one uploading.
    expect(gauge.peakEncodeBytes).toBeGreaterThan(0);
    expect(gauge.peakEncodeBytes).toBeLessThanOrEqual(limits.encodeBytes + CHUNKER.max);
    // One pack: its blobs fill at most its buffer, and its header (their index, a few hundred
    // bytes a blob) and trailer come after them.
    expect(gauge.peakUploadBytes).toBeLessThanOrEqual(PACK_TARGET_SIZE + 64 * 1024);
    expect(gauge.packBuffers).toBeLessThanOrEqual(2);
    // File content is read into one ring sized by the encoding limit, never past it.
    expect(gauge.readBufferBytes).toBe(limits.encodeBytes + 4 * MiB);
    expect(gauge.peakReadBytes).toBeGreaterThan(0);
    expect(gauge.peakReadBytes).toBeLessThanOrEqual(gauge.readBufferBytes);
    expect(gauge.encodeBytes).toBe(0);
    expect(gauge.uploadBytes).toBe(0);

    const out = fresh('bounded-out');
    const stats = await store.restore(record, new DirectoryTarget(out));
    expect(stats.failed).toEqual([]);
    expect(await describeTree(out)).toEqual(await describeTree(src));
    const reader = store.lastReader;
    expect(reader.peakHeldBytes).toBeGreaterThan(0);
    expect(reader.peakHeldBytes).toBeLessThanOrEqual(Math.max(limits.restoreBytes, reader.largestReadBytes));
    // A read is at most half the window, blobs and what they decode to; only a blob larger than that goes alone.
    expect(reader.largestReadBytes).toBeLessThanOrEqual(limits.restoreBytes + CHUNKER.max);
    expect(reader.peakReads).toBeLessThanOrEqual(limits.restoreReads);
    expect(reader.heldBytes).toBe(0);
  });

  it('with more room, keeps several uploads and reads in flight and still within the bytes allowed', async () => {
    const src = fresh('wide');
    await tree(src, [40 * MiB]);
    const real = ts.deps().objects;
    let uploads = 0;
    let mostUploads = 0;
    const objects = objectsWith({
      put: async (key, bytes, options) => {
        uploads++;
        mostUploads = Math.max(mostUploads, uploads);
        try {
          if (key.startsWith('snapshots/packs/')) await new Promise((r) => setTimeout(r, 300));
          return await real.put(key, bytes, options);
        } finally {
          uploads--;
        }
      },
    });
    const limits = { uploadBytes: 2 * PACK_TARGET_SIZE + MiB };
    const store = await openWith(objects, limits);
    const record = await store.create(directorySource(src), { host: 'wide' });
    expect(mostUploads).toBe(2);
    expect(store.lastPipeline.peakUploadBytes).toBeLessThanOrEqual(limits.uploadBytes);
    expect(store.lastPipeline.packBuffers).toBeLessThanOrEqual(3);
    const out = fresh('wide-out');
    expect((await store.restore(record, new DirectoryTarget(out))).failed).toEqual([]);
    expect(await describeTree(out)).toEqual(await describeTree(src));
    expect(store.lastReader.peakReads).toBeGreaterThan(1);
  });

  it('records nothing when an upload fails while other packs are in flight, and leaves nothing running', async () => {
    const src = fresh('upload-fails');
    await tree(src, [18 * MiB, 18 * MiB]);
    const real = ts.deps().objects;
    let packs = 0;
    let afterFailure = 0;
    let failed = false;
    const objects = objectsWith({
      put: async (key, bytes, options) => {
        if (failed) afterFailure++;
        if (key.startsWith('snapshots/packs/') && ++packs === 2) {
          await new Promise((r) => setTimeout(r, 100));
          failed = true;
          throw new Error('connection reset by peer');
        }
        return real.put(key, bytes, options);
      },
    });
    const store = await openWith(objects);
    await expect(store.create(directorySource(src), { host: 'upload-fails' })).rejects.toThrow(
      'connection reset by peer',
    );
    await expect(store.list('upload-fails')).resolves.toEqual([]);
    // The snapshot stopped at the failure: no index or manifest went up after it, and nothing
    // was still encoding or uploading once create() had failed.
    const puts = afterFailure;
    await new Promise((r) => setTimeout(r, 200));
    expect(afterFailure).toBe(puts);
    expect(store.lastPipeline.encodeBytes + store.lastPipeline.uploadBytes).toBeLessThanOrEqual(
      PACK_TARGET_SIZE,
    );

    // The store is fine: the next snapshot of the same tree is whole and restores exactly.
    const again = await openWith(real);
    const record = await again.create(directorySource(src), { host: 'upload-fails' });
    const out = fresh('upload-fails-out');
    expect((await again.restore(record, new DirectoryTarget(out))).failed).toEqual([]);
    expect(await describeTree(out)).toEqual(await describeTree(src));
  });

  it('reads again a ranged read that came back short, and refuses one that stays short naming the pack', async () => {
    const src = fresh('short');
    await tree(src, [3 * MiB]);
    await fs.writeFile(join(src, 'other'), randomBytes(200 * KiB));
    const writer = await openWith(ts.deps().objects);
    const record = await writer.create(directorySource(src), { host: 'short' });
    const manifest = await writer.manifest(record);
    const big = manifest.entries.find((e) => e.path === 'data/f0');
    const at = writer.index.get(big?.chunks?.[1] as string);
    if (!at) throw new Error('the chunk is not in the index');
    const key = packKeyOf(at.packId);
    const real = ts.deps().objects;

    // Once short, then whole: the restore reads again and everything verifies.
    let shortOnce = true;
    const flaky = await openWith(
      objectsWith({
        getRange: async (k, offset, length) => {
          const bytes = await real.getRange(k, offset, length);
          if (k === key && shortOnce && offset <= at.offset && at.offset < offset + length) {
            shortOnce = false;
            return bytes.subarray(0, bytes.length - 100);
          }
          return bytes;
        },
      }),
    );
    const out1 = fresh('short-once');
    expect((await flaky.restore(record, new DirectoryTarget(out1))).failed).toEqual([]);
    expect(shortOnce).toBe(false);
    expect(await describeTree(out1)).toEqual(await describeTree(src));

    // Always short for the read holding f0's second chunk: f0 is not restored, and says why.
    const truncated = await openWith(
      objectsWith({
        getRange: async (k, offset, length) => {
          const bytes = await real.getRange(k, offset, length);
          return k === key && offset <= at.offset && at.offset < offset + length
            ? bytes.subarray(0, bytes.length - 100)
            : bytes;
        },
      }),
    );
    const out2 = fresh('short-always');
    const stats = await truncated.restore(record, new DirectoryTarget(out2));
    const failedPaths = stats.failed.map((f) => f.path);
    expect(failedPaths).toContain('data/f0');
    for (const f of stats.failed) {
      expect(f.damaged).toBe(true);
      expect(f.reason).toContain(key);
      expect(f.reason).toContain('returned');
    }
    await expect(fs.stat(join(out2, 'data/f0'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await fs.readdir(join(out2, 'data'))).filter((n) => n.startsWith('.persona-'))).toEqual([]);
    const restored = (await describeTree(out2)).filter((l) => l.type === 'file');
    const expected = new Map((await describeTree(src)).map((l) => [l.path, l]));
    for (const line of restored) expect(line).toEqual(expected.get(line.path));
  });

  it('refuses a damaged blob read through a ranged read, naming the pack and the chunk, and restores the rest', async () => {
    const src = fresh('damaged');
    await tree(src, [2 * MiB, 2 * MiB]);
    const store = await openWith(ts.deps().objects);
    const record = await store.create(directorySource(src), { host: 'damaged-range' });
    const manifest = await store.manifest(record);
    const victim = manifest.entries.find((e) => e.path === 'data/f1');
    const chunk = victim?.chunks?.[2] as string;
    const at = store.index.get(chunk);
    if (!at) throw new Error('the chunk is not in the index');
    const key = packKeyOf(at.packId);
    const real = ts.deps().objects;
    const damaging = await openWith(
      objectsWith({
        getRange: async (k, offset, length) => {
          const bytes = Buffer.from(await real.getRange(k, offset, length));
          const i = at.offset + 40 - offset;
          if (k === key && i >= 0 && i < bytes.length) bytes[i] = (bytes[i] as number) ^ 0x10;
          return bytes;
        },
      }),
    );
    const out = fresh('damaged-out');
    const stats = await damaging.restore(record, new DirectoryTarget(out));
    expect(stats.failed).toEqual([
      { path: 'data/f1', reason: expect.stringContaining(`${key} chunk ${chunk}`), damaged: true },
    ]);
    const expected = (await describeTree(src)).filter((l) => l.path !== 'data/f1');
    expect(await describeTree(out)).toEqual(expected);
  });

  it('refuses limits that are not positive integers, naming the limit', async () => {
    await expect(SnapshotStore.open(ts.deps(), { limits: { uploadBytes: 0 } })).rejects.toMatchObject({
      code: 'INVALID_INPUT',
      issues: [{ path: 'limits.uploadBytes' }],
    });
  });
});
