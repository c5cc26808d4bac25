// What the bucket sees of the pipeline's bounds: bytes of PUTs and of ranged GETs in flight at
// once, counted where the requests leave the store (not by the pipeline's own gauges), stay
// under the configured limits, and a wider limit does let more go at once, so the bound is
// what holds them. Also: a ranged read filled into one buffer is exact, short or long as the
// server answered, and the pipeline starts the full collections its limit asks for.
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { BlobReaderOptions } from '../../../core/snapshot/blob-reader.js';
import type { ChunkerParams } from '../../../core/snapshot/chunker.js';
import { BlobDecoder, type DecodeJob } from '../../../core/snapshot/decoder.js';
import type { ObjectStore } from '../../../core/snapshot/object-store.js';
import { PACK_TARGET_SIZE } from '../../../core/snapshot/pack.js';
import { type PipelineLimits, SnapshotStore } from '../../../core/snapshot/store.js';
import { DirectoryTarget, directorySource } from '../../../core/snapshot/tree.js';
import { describeTree } from '../../support/snapshot-store.js';
import { useTestStore } from '../../support/use-test-store.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const CHUNKER: ChunkerParams = { min: 64 * KiB, avg: 256 * KiB, max: 1 * MiB };

const ts = useTestStore();
const { fresh } = ts;

/** Bytes in flight, now and at most, of pack PUTs and of ranged GETs. */
interface InFlight {
  puts: number;
  maxPuts: number;
  putBytes: number;
  maxPutBytes: number;
  gets: number;
  maxGets: number;
  getBytes: number;
  maxGetBytes: number;
}

/** The real bucket, slowed, with what is in flight counted at the door. */
function countingObjects(delayMs: number): { objects: ObjectStore; seen: InFlight } {
  const real = ts.deps().objects;
  const seen: InFlight = {
    puts: 0,
    maxPuts: 0,
    putBytes: 0,
    maxPutBytes: 0,
    gets: 0,
    maxGets: 0,
    getBytes: 0,
    maxGetBytes: 0,
  };
  const objects: ObjectStore = {
    location: real.location,
    put: async (key, bytes, options) => {
      if (!key.startsWith('snapshots/packs/')) return real.put(key, bytes, options);
      seen.puts++;
      seen.putBytes += bytes.length;
      seen.maxPuts = Math.max(seen.maxPuts, seen.puts);
      seen.maxPutBytes = Math.max(seen.maxPutBytes, seen.putBytes);
      try {
        // Slow, so that without the bound finished packs would pile up behind it.
        await new Promise((r) => setTimeout(r, delayMs));
        return await real.put(key, bytes, options);
      } finally {
        seen.puts--;
        seen.putBytes -= bytes.length;
      }
    },
    get: (key) => real.get(key),
    getRange: async (key, offset, length) => {
      seen.gets++;
      seen.getBytes += length;
      seen.maxGets = Math.max(seen.maxGets, seen.gets);
      seen.maxGetBytes = Math.max(seen.maxGetBytes, seen.getBytes);
      try {
        await new Promise((r) => setTimeout(r, delayMs / 3));
        return await real.getRange(key, offset, length);
      } finally {
        seen.gets--;
        seen.getBytes -= length;
      }
    },
    head: (key) => real.head(key),
    list: (prefix) => real.list(prefix),
    delete: (keys) => real.delete(keys),
  };
  return { objects, seen };
}

async function incompressibleTree(root: string, sizes: readonly number[]): Promise<void> {
  await fs.mkdir(join(root, 'data'), { recursive: true });
  for (const [i, size] of sizes.entries()) await fs.writeFile(join(root, 'data', `f${i}`), randomBytes(size));
  // Small files read whole: their chunks are views of the read.
  await fs.mkdir(join(root, 'etc'), { recursive: true });
  for (let i = 0; i < 40; i++)
    await fs.writeFile(join(root, 'etc', `c${i}.conf`), `option${i}=${'v'.repeat(i * 50)}\n`);
}

const open = (objects: ObjectStore, limits: Partial<PipelineLimits>) =>
  SnapshotStore.open({ ...ts.deps(), objects }, { chunker: CHUNKER, limits });

describe('snapshot memory bounds, as the bucket sees them', () => {
  it('never has more pack bytes uploading or ranged-read bytes in flight than the limits allow', async () => {
    const src = fresh('tight');
    await incompressibleTree(src, [24 * MiB, 20 * MiB]);
    const { objects, seen } = countingObjects(250);
    // One pack's worth of uploads, a 2 MiB read window: both far below what the tree would
    // put in flight unbounded.
    const limits = { uploadBytes: PACK_TARGET_SIZE, restoreBytes: 2 * MiB, restoreReads: 4 };
    const store = await open(objects, limits);
    const record = await store.create(directorySource(src), { host: 'tight' });
    expect(record.stats.storedBytes).toBeGreaterThan(2 * PACK_TARGET_SIZE);
    // A pack is at most its target plus one blob (a chunk and its seal): one such at a time.
    expect(seen.maxPuts).toBe(1);
    expect(seen.maxPutBytes).toBeLessThanOrEqual(PACK_TARGET_SIZE + CHUNKER.max + 4 * KiB);

    const out = fresh('tight-out');
    const stats = await store.restore(record, new DirectoryTarget(out));
    expect(stats.failed).toEqual([]);
    expect(await describeTree(out)).toEqual(await describeTree(src));
    // Sealed bytes in flight stay within the window (a read also counts what it decodes to,
    // so the sealed part alone is at most the window).
    expect(seen.maxGetBytes).toBeGreaterThan(0);
    expect(seen.maxGetBytes).toBeLessThanOrEqual(limits.restoreBytes);
    expect(seen.maxGets).toBeLessThanOrEqual(limits.restoreReads);
  });

  it('lets more go at once when the limits are wider, still within them', async () => {
    const src = fresh('wide');
    await incompressibleTree(src, [40 * MiB]);
    const { objects, seen } = countingObjects(250);
    const limits = {
      uploadBytes: 2 * PACK_TARGET_SIZE + 2 * MiB,
      restoreBytes: 24 * MiB,
      restoreReads: 3,
    };
    const store = await open(objects, limits);
    const record = await store.create(directorySource(src), { host: 'wide' });
    expect(seen.maxPuts).toBe(2);
    expect(seen.maxPutBytes).toBeLessThanOrEqual(limits.uploadBytes);
    const out = fresh('wide-out');
    expect((await store.restore(record, new DirectoryTarget(out))).failed).toEqual([]);
    expect(await describeTree(out)).toEqual(await describeTree(src));
    expect(seen.maxGets).toBeGreaterThan(1);
    expect(seen.maxGets).toBeLessThanOrEqual(limits.restoreReads);
    expect(seen.maxGetBytes).toBeGreaterThan(limits.restoreBytes / 4);
    expect(seen.maxGetBytes).toBeLessThanOrEqual(limits.restoreBytes);
  });

  it('starts a full collection after every collectBytes of chunks, in snapshot and restore', async () => {
    const src = fresh('collect');
    await incompressibleTree(src, [6 * MiB]);
    // Reads of 1 MiB at most (half the window): several, each past the collection's limit.
    const store = await open(ts.deps().objects, { collectBytes: 1 * MiB, restoreBytes: 2 * MiB });
    const record = await store.create(directorySource(src), { host: 'collect' });
    // One per MiB of chunks, wherever the chunk boundaries fall.
    expect(store.lastPipeline.collections).toBe(6);
    const out = fresh('collect-out');
    expect((await store.restore(record, new DirectoryTarget(out))).failed).toEqual([]);
    expect(await describeTree(out)).toEqual(await describeTree(src));
    expect(store.lastReader.collections).toBeGreaterThanOrEqual(5);
    // A reader told its own pace (the restore onto a host takes a quarter of the store's rate)
    // prompts that many instead: one per 3 MiB of the 6 MiB file.
    const file = (await store.manifest(record)).entries.find((e) => e.type === 'file' && (e.size ?? 0) > 0);
    if (file === undefined) throw new Error('the tree has a file');
    const paced = store.blobReader([{ index: 0, entry: file }], { lend: true, collectBytes: 3 * MiB });
    let read = 0;
    for await (const piece of paced.content(0)) read += piece.length;
    expect(read).toBe(6 * MiB);
    expect(paced.gauge.collections).toBeGreaterThanOrEqual(1);
    expect(paced.gauge.collections).toBeLessThanOrEqual(2);

    // Left to V8 alone, the pipeline starts none.
    const alone = await open(ts.deps().objects, { collectBytes: Number.MAX_SAFE_INTEGER });
    await alone.create(directorySource(src), { host: 'collect-alone', rehash: true });
    expect(alone.lastPipeline.collections).toBe(0);
  });

  it('reads a range into one buffer of exactly the bytes the bucket returned', async () => {
    const objects = ts.deps().objects;
    const bytes = randomBytes(3 * MiB + 17);
    await objects.put('snapshots/test/range', bytes);
    const mid = await objects.getRange('snapshots/test/range', MiB + 5, MiB + 3);
    expect(Buffer.from(mid).equals(bytes.subarray(MiB + 5, 2 * MiB + 8))).toBe(true);
    // Past the end, the server gives what there is: the read is short, not padded.
    const tail = await objects.getRange('snapshots/test/range', 3 * MiB, MiB);
    expect(tail.length).toBe(17);
    expect(Buffer.from(tail).equals(bytes.subarray(3 * MiB))).toBe(true);
    const whole = await objects.get('snapshots/test/range');
    expect(Buffer.from(whole).equals(bytes)).toBe(true);
  });

  it('reads a range into the buffer it is given, and into one of its own when that is too small', async () => {
    const objects = ts.deps().objects;
    const bytes = randomBytes(2 * MiB);
    await objects.put('snapshots/test/into', bytes);
    const into = new Uint8Array(new SharedArrayBuffer(MiB + 64), 32, MiB + 8);
    const got = await objects.getRange('snapshots/test/into', 100, MiB, into);
    expect(got.buffer).toBe(into.buffer);
    expect(got.byteOffset).toBe(32);
    expect(Buffer.from(got).equals(bytes.subarray(100, 100 + MiB))).toBe(true);
    const small = new Uint8Array(10);
    const own = await objects.getRange('snapshots/test/into', 0, 1000, small);
    expect(own.buffer).not.toBe(small.buffer);
    expect(Buffer.from(own).equals(bytes.subarray(0, 1000))).toBe(true);
  });
});

describe('the restore window', () => {
  const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

  async function readerOver(name: string, options: BlobReaderOptions) {
    const src = fresh(name);
    await incompressibleTree(src, [3 * MiB, 2 * MiB, MiB]);
    // A window of 1 MiB: every region of it is given out many times over.
    const store = await open(ts.deps().objects, { restoreBytes: MiB });
    const record = await store.create(directorySource(src), { host: name });
    const manifest = await store.manifest(record);
    const files = manifest.entries
      .filter((e) => e.type === 'file' && (e.chunks?.length ?? 0) > 0)
      .map((entry, index) => ({ index, entry }));
    const reader = store.blobReader(files, options);
    return { src, files, reader };
  }

  it('gives a consumer that keeps its chunks copies that stay as they were while the window moves on', async () => {
    const { src, files, reader } = await readerOver('window-copies', {});
    const kept: Uint8Array[][] = [];
    for (const { index } of files) {
      const pieces: Uint8Array[] = [];
      for await (const chunk of reader.content(index)) pieces.push(chunk);
      kept.push(pieces);
    }
    // Only now compared: the window has since held other reads' bytes.
    for (const [i, { entry }] of files.entries())
      expect(sha(Buffer.concat(kept[i] as Uint8Array[])), entry.path).toBe(
        sha(await fs.readFile(join(src, entry.path))),
      );
    expect(reader.gauge.heldBytes).toBe(0);
  });

  it('fails the content of a read whose decoding thread stops under it, rather than waiting', async () => {
    class Stopping extends BlobDecoder {
      override decode(job: DecodeJob) {
        const answer = super.decode(job);
        void this.stop();
        return answer;
      }
    }
    const decoder = new Stopping();
    const { files, reader } = await readerOver('window-stopped', { lend: true, decoder });
    const read = async () => {
      for await (const _ of reader.content((files[0] as { index: number }).index));
    };
    await expect(read()).rejects.toThrow(/the blob decoder failed: the blob decoder was stopped/);
    // What the failed file held is given back: the others still read, from another thread.
    for (const { index } of files.slice(1)) reader.release(index);
    expect(reader.gauge.heldBytes).toBe(0);
  });
});
