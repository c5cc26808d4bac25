import { createHash, randomBytes } from 'node:crypto';
import { zstdDecompressSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CorruptionError } from '../../../core/snapshot/errors.js';
import { ChunkIndex, decodeIndex, encodeIndex, type IndexPack } from '../../../core/snapshot/index-file.js';
import { chunkId, deriveKeys, generateMasterKey } from '../../../core/snapshot/keys.js';
import { PackWriter, sealedJson } from '../../../core/snapshot/pack.js';
import { open, seal } from '../../../core/snapshot/seal.js';

const keys = deriveKeys(generateMasterKey(), 'test-store');
const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
const hexId = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString('hex'));
const count = fc.nat({ max: 2 ** 32 });

const packArbitrary: fc.Arbitrary<IndexPack> = fc.record({
  id: hexId,
  size: count,
  blobs: fc.array(
    fc.record({ id: hexId, offset: count, length: count, rawLength: count, compressed: fc.boolean() }),
    { maxLength: 8 },
  ),
});

function samplePacks(): IndexPack[] {
  const writer = new PackWriter(keys);
  for (const chunk of [Buffer.from('one'), randomBytes(64), Buffer.from('three '.repeat(40))])
    writer.add(chunkId(keys.idKey, chunk), chunk);
  const pack = writer.finish();
  return [{ id: pack.id, size: pack.bytes.length, blobs: pack.blobs }];
}

describe('encodeIndex and decodeIndex', () => {
  it('round-trip any list of packs, under a key that is the SHA-256 of the sealed bytes', () => {
    fc.assert(
      fc.property(fc.array(packArbitrary, { maxLength: 6 }), (packs) => {
        const { key, bytes } = encodeIndex(keys, packs);

        expect(key).toBe(`snapshots/index/${sha256(bytes)}`);
        expect(decodeIndex(keys, bytes, key)).toEqual({ packs });
      }),
      { numRuns: 100 },
    );
  });

  it('keeps only the fields of the format, whatever else the caller passes', () => {
    const [pack] = samplePacks();
    if (!pack) throw new Error('no pack');
    const widened = { ...pack, extra: 'x', blobs: pack.blobs.map((b) => ({ ...b, more: 1 })) };
    const { key, bytes } = encodeIndex(keys, [widened]);

    const plaintext = open(keys.sealKey, bytes, 'index:', { objectKey: key });

    expect(JSON.parse(zstdDecompressSync(plaintext).toString('utf8'))).toEqual({ packs: [pack] });
  });

  it('refuses bytes that do not hash to their name, naming the index', () => {
    const { key, bytes } = encodeIndex(keys, samplePacks());

    for (const i of [0, 12, bytes.length >> 1, bytes.length - 1]) {
      const damaged = Uint8Array.from(bytes);
      damaged[i] = (damaged[i] ?? 0) ^ 1;

      const error = (() => {
        try {
          decodeIndex(keys, damaged, key);
        } catch (e) {
          return e;
        }
      })();
      expect(error).toBeInstanceOf(CorruptionError);
      expect(error).toMatchObject({ objectKey: key, chunkId: undefined });
      expect(String(error)).toMatch(/SHA-256 of the index is [0-9a-f]{64}, not its name/);
    }
  });

  it('refuses altered bytes stored under their new hash: the seal does not open', () => {
    const { bytes } = encodeIndex(keys, samplePacks());
    const damaged = Uint8Array.from(bytes);
    damaged[40] = (damaged[40] ?? 0) ^ 1;
    const renamed = `snapshots/index/${sha256(damaged)}`;

    expect(() => decodeIndex(keys, damaged, renamed)).toThrow(`${renamed}: authentication failed`);
  });

  it('refuses an object sealed for another role, such as a manifest', () => {
    const bytes = seal(keys.sealKey, sealedJson({ packs: [] }), 'manifest:');

    expect(() => decodeIndex(keys, bytes, `snapshots/index/${sha256(bytes)}`)).toThrow(CorruptionError);
  });

  it('refuses a key that is not an index name', () => {
    const { bytes } = encodeIndex(keys, samplePacks());

    expect(() => decodeIndex(keys, bytes, `snapshots/manifests/${sha256(bytes)}`)).toThrow(
      /not an index name/,
    );
  });

  it('refuses an index of another store', () => {
    const { key, bytes } = encodeIndex(keys, samplePacks());

    expect(() => decodeIndex(deriveKeys(generateMasterKey(), 'test-store'), bytes, key)).toThrow(
      CorruptionError,
    );
  });

  it('refuses an authentic index that does not have the format’s shape', () => {
    const bytes = seal(keys.sealKey, sealedJson({ packs: [{ id: 'zz' }] }), 'index:');

    expect(() => decodeIndex(keys, bytes, `snapshots/index/${sha256(bytes)}`)).toThrow(
      /index does not have the expected shape/,
    );
  });
});

describe('ChunkIndex', () => {
  it('maps each chunk of a decoded index to its pack, offset and lengths', () => {
    const packs = samplePacks();
    const { key, bytes } = encodeIndex(keys, packs);
    const index = new ChunkIndex();

    index.merge(decodeIndex(keys, bytes, key));

    const [pack] = packs;
    expect(index.size).toBe(3);
    for (const blob of pack?.blobs ?? []) {
      expect(index.has(blob.id)).toBe(true);
      expect(index.get(blob.id)).toEqual({
        packId: pack?.id,
        offset: blob.offset,
        length: blob.length,
        rawLength: blob.rawLength,
      });
    }
    expect(index.has('0'.repeat(64))).toBe(false);
    expect(index.get('0'.repeat(64))).toBeUndefined();
  });

  it('keeps the first location of a chunk stored twice', () => {
    const id = 'a'.repeat(64);
    const index = new ChunkIndex();

    index.add(id, { packId: '1'.repeat(64), offset: 0, length: 30, rawLength: 1 });
    index.merge({
      packs: [
        {
          id: '2'.repeat(64),
          size: 100,
          blobs: [{ id, offset: 50, length: 30, rawLength: 1, compressed: false }],
        },
      ],
    });

    expect(index.size).toBe(1);
    expect(index.get(id)?.packId).toBe('1'.repeat(64));
  });
});
