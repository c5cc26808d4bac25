// The blobs of one ranged read decoded together (decodeBlobsAsync): the same chunks, and the
// same verdicts, as decoding each blob on its own, a damaged blob failing alone and by its id.
import { randomBytes } from 'node:crypto';
import { zstdCompressSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { chunkId, deriveKeys, generateMasterKey } from '../../../core/snapshot/keys.js';
import { decodeBlobsAsync, encodeBlobAsync } from '../../../core/snapshot/pack.js';
import { seal } from '../../../core/snapshot/seal.js';

const keys = deriveKeys(generateMasterKey(), 'test-store');
const OBJECT = 'snapshots/packs/00/00';
const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));
const lines = (i: number, n: number) => Buffer.from(`line ${i} of a unit file\n`.repeat(n));

async function blobsOf(chunks: readonly Uint8Array[]) {
  return Promise.all(
    chunks.map(async (chunk) => {
      const id = chunkId(keys.idKey, chunk);
      const blob = await encodeBlobAsync(keys, chunk, id);
      return { sealed: Buffer.from(blob.sealed), id, rawLength: chunk.length, compressed: blob.compressed };
    }),
  );
}

const settle = (ps: readonly Promise<Uint8Array>[]) => Promise.allSettled(ps);

describe('decoding the blobs of one read together', () => {
  it('gives each blob its chunk, compressed and stored ones mixed, across the stream’s output pieces', async () => {
    // Small and large compressible chunks (output pieces are 1 MiB: some chunks straddle two)
    // and incompressible ones stored as they are.
    const chunks = [
      ...Array.from({ length: 30 }, (_, i) => lines(i, 20 + i * 300)),
      randomBytes(5000),
      lines(99, 120_000),
      randomBytes(70_000),
      lines(100, 3),
      Buffer.alloc(0),
    ];
    const blobs = await blobsOf(chunks);
    expect(blobs.filter((b) => b.compressed).length).toBeGreaterThan(30);
    expect(blobs.some((b) => !b.compressed)).toBe(true);
    const decoded = await Promise.all(decodeBlobsAsync(keys, blobs, OBJECT));
    expect(decoded.length).toBe(chunks.length);
    for (const [i, chunk] of chunks.entries()) expect(same(decoded[i] as Uint8Array, chunk)).toBe(true);
  });

  it('fails only the blob whose bytes were altered, naming its chunk', async () => {
    const chunks = Array.from({ length: 12 }, (_, i) => lines(i, 100 + i));
    const blobs = await blobsOf(chunks);
    const bad = blobs[5] as (typeof blobs)[number];
    bad.sealed[20] = (bad.sealed[20] as number) ^ 1;
    const results = await settle(decodeBlobsAsync(keys, blobs, OBJECT));
    for (const [i, r] of results.entries()) {
      if (i === 5) {
        expect(r.status).toBe('rejected');
        expect((r as PromiseRejectedResult).reason).toMatchObject({
          name: 'CorruptionError',
          objectKey: OBJECT,
          chunkId: bad.id,
        });
      } else
        expect(same((r as PromiseFulfilledResult<Uint8Array>).value, chunks[i] as Uint8Array)).toBe(true);
    }
  });

  it('fails only the blob whose frame is not the chunk it is filed under, whatever its size says', async () => {
    // Sealed with the key, so that it authenticates: a frame of other content, one that
    // decompresses to the recorded size but is not the chunk, and one that does not decompress.
    const chunks = Array.from({ length: 9 }, (_, i) => lines(i, 200 + i));
    const blobs = await blobsOf(chunks);
    const forge = (i: number, payload: Uint8Array) => {
      const b = blobs[i] as (typeof blobs)[number];
      b.sealed = Buffer.from(seal(keys.sealKey, Buffer.concat([Buffer.from([1]), payload]), `blob:${b.id}`));
    };
    forge(2, zstdCompressSync(lines(50, 7)));
    forge(4, zstdCompressSync(Buffer.alloc((chunks[4] as Buffer).length, 0x61)));
    forge(6, Buffer.from('not a zstd frame at all'));
    const results = await settle(decodeBlobsAsync(keys, blobs, OBJECT));
    const reasons = results.map((r) =>
      r.status === 'rejected' ? (r.reason as { reason: string }).reason : 'ok',
    );
    expect(reasons).toEqual([
      'ok',
      'ok',
      'compressed payload does not decompress',
      'ok',
      'content does not match its id',
      'ok',
      'compressed payload does not decompress',
      'ok',
      'ok',
    ]);
    for (const i of [0, 1, 3, 5, 7, 8])
      expect(same((results[i] as PromiseFulfilledResult<Uint8Array>).value, chunks[i] as Uint8Array)).toBe(
        true,
      );
  });
});
