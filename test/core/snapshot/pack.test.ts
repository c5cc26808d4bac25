import { createHash, randomBytes } from 'node:crypto';
import { constants, createZstdCompress, zstdCompressSync, zstdDecompressSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CorruptionError } from '../../../core/snapshot/errors.js';
import { chunkId, deriveKeys, generateMasterKey } from '../../../core/snapshot/keys.js';
import {
  decodeBlob,
  decodeBlobAsync,
  encodeBlob,
  encodeBlobAsync,
  type FinishedPack,
  type IndexBlob,
  PACK_TARGET_SIZE,
  PackWriter,
  packKey,
  readPackHeader,
  sealedJson,
  verifyPackId,
} from '../../../core/snapshot/pack.js';
import { open, seal } from '../../../core/snapshot/seal.js';

const keys = deriveKeys(generateMasterKey(), 'test-store');
const otherKeys = deriveKeys(generateMasterKey(), 'test-store');
const OBJECT = 'snapshots/packs/00/00';

function thrownBy(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  return undefined;
}

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));
const repeat = (unit: Uint8Array, times: number) => Buffer.concat(Array.from({ length: times }, () => unit));
const text = (s: string) => Buffer.from(s, 'utf8');

function packOf(chunks: readonly Uint8Array[]): FinishedPack {
  const writer = new PackWriter(keys);
  for (const chunk of chunks) writer.add(chunkId(keys.idKey, chunk), chunk);
  return writer.finish();
}

const blobOf = (pack: FinishedPack, blob: IndexBlob) =>
  pack.bytes.subarray(blob.offset, blob.offset + blob.length);

describe('encodeBlob', () => {
  it('compresses a compressible chunk with zstd and says so in the flag byte', () => {
    const chunk = repeat(text('server_name example.org;\n'), 200);
    const id = chunkId(keys.idKey, chunk);

    const blob = encodeBlob(keys, chunk, id);

    expect(blob).toMatchObject({ rawLength: chunk.length, compressed: true });
    const plaintext = open(keys.sealKey, blob.sealed, `blob:${id}`, { objectKey: OBJECT });
    expect(plaintext[0]).toBe(1);
    expect(same(zstdDecompressSync(plaintext.subarray(1)), chunk)).toBe(true);
  });

  it('stores random data as is, with flag 0', () => {
    const chunk = randomBytes(4096);
    const id = chunkId(keys.idKey, chunk);

    const blob = encodeBlob(keys, chunk, id);

    expect(blob.compressed).toBe(false);
    const plaintext = open(keys.sealKey, blob.sealed, `blob:${id}`, { objectKey: OBJECT });
    expect(plaintext[0]).toBe(0);
    expect(same(plaintext.subarray(1), chunk)).toBe(true);
  });

  it('keeps compression only when it saves at least 1/16 of the chunk', () => {
    const zstdLength = (b: Uint8Array) =>
      zstdCompressSync(b, { params: { [constants.ZSTD_c_compressionLevel]: 3 } }).length;
    const noise = randomBytes(4096);
    const slightly = Buffer.concat([noise, Buffer.alloc(200)]);
    const enough = Buffer.concat([noise, Buffer.alloc(600)]);
    // The premise: zstd saves something on both, less than 1/16 on the first, more on the second.
    expect(zstdLength(slightly)).toBeLessThan(slightly.length);
    expect(16 * (slightly.length - zstdLength(slightly))).toBeLessThan(slightly.length);
    expect(16 * (enough.length - zstdLength(enough))).toBeGreaterThanOrEqual(enough.length);

    expect(encodeBlob(keys, slightly, chunkId(keys.idKey, slightly)).compressed).toBe(false);
    expect(encodeBlob(keys, enough, chunkId(keys.idKey, enough)).compressed).toBe(true);
  });

  it('stores an empty chunk as a flag byte alone', () => {
    const empty = new Uint8Array(0);
    const id = chunkId(keys.idKey, empty);

    const blob = encodeBlob(keys, empty, id);

    expect(blob).toMatchObject({ rawLength: 0, compressed: false });
    expect(blob.sealed).toHaveLength(1 + 28);
    expect(decodeBlob(keys, blob.sealed, id, OBJECT)).toHaveLength(0);
  });
});

describe('decodeBlob', () => {
  it('refuses a blob read under another id, naming the object and that id', () => {
    const chunk = text('a');
    const blob = encodeBlob(keys, chunk, chunkId(keys.idKey, chunk));
    const wrongId = chunkId(keys.idKey, text('b'));

    const error = thrownBy(() => decodeBlob(keys, blob.sealed, wrongId, OBJECT));

    expect(error).toBeInstanceOf(CorruptionError);
    expect(error).toMatchObject({ objectKey: OBJECT, chunkId: wrongId });
    expect(String(error)).toContain(`${OBJECT} chunk ${wrongId}: authentication failed`);
  });

  it('refuses a blob whose content does not hash to the id it was sealed under', () => {
    const wrongId = chunkId(keys.idKey, text('something else'));
    const blob = encodeBlob(keys, text('content'), wrongId);

    const error = thrownBy(() => decodeBlob(keys, blob.sealed, wrongId, OBJECT));

    expect(error).toBeInstanceOf(CorruptionError);
    expect(String(error)).toContain(`chunk ${wrongId}: content does not match its id`);
  });

  it('refuses a blob sealed under another store key', () => {
    const chunk = text('content');
    const id = chunkId(keys.idKey, chunk);

    expect(() => decodeBlob(otherKeys, encodeBlob(keys, chunk, id).sealed, id, OBJECT)).toThrow(
      CorruptionError,
    );
  });

  it('refuses an unknown flag and a compressed payload that does not decompress', () => {
    const id = chunkId(keys.idKey, text('x'));

    expect(() =>
      decodeBlob(keys, seal(keys.sealKey, Buffer.from([7, 0x78]), `blob:${id}`), id, OBJECT),
    ).toThrow(/unknown blob flag 7/);
    expect(() =>
      decodeBlob(keys, seal(keys.sealKey, Buffer.from([1, 1, 2, 3]), `blob:${id}`), id, OBJECT),
    ).toThrow(/does not decompress/);
    expect(() => decodeBlob(keys, seal(keys.sealKey, new Uint8Array(0), `blob:${id}`), id, OBJECT)).toThrow(
      /no flag byte/,
    );
  });
});

const chunkArbitrary = fc.oneof(
  fc.constant(new Uint8Array(0)),
  fc.uint8Array({ minLength: 1, maxLength: 3000 }),
  fc
    .tuple(fc.uint8Array({ minLength: 1, maxLength: 24 }), fc.integer({ min: 1, max: 300 }))
    .map(([unit, times]) => new Uint8Array(repeat(unit, times))),
);

describe('PackWriter', () => {
  it('writes packs whose header, blobs and name read back to the chunks put in', () => {
    fc.assert(
      fc.property(fc.array(chunkArbitrary, { minLength: 1, maxLength: 12 }), (chunks) => {
        const pack = packOf(chunks);

        verifyPackId(pack.bytes, pack.id, pack.key);
        expect(pack.id).toBe(sha256(pack.bytes));
        expect(pack.key).toBe(`snapshots/packs/${pack.id.slice(0, 2)}/${pack.id}`);
        const header = readPackHeader(keys, pack.bytes, pack.key);
        expect(header).toEqual(pack.blobs);
        const distinct = new Map(chunks.map((c) => [chunkId(keys.idKey, c), c]));
        expect(header.map((b) => b.id)).toEqual([...distinct.keys()]);
        for (const blob of header) {
          const chunk = decodeBlob(keys, blobOf(pack, blob), blob.id, pack.key);
          expect(same(chunk, distinct.get(blob.id) ?? new Uint8Array(1))).toBe(true);
          expect(blob.rawLength).toBe(chunk.length);
        }
      }),
      { numRuns: 60 },
    );
  });

  it('lays blobs end to end from offset 0, then the sealed header, then its length as uint32 LE', () => {
    const pack = packOf([text('one'), randomBytes(100), repeat(text('ab'), 500)]);
    const bytes = Buffer.from(pack.bytes);

    let offset = 0;
    for (const blob of pack.blobs) {
      expect(blob.offset).toBe(offset);
      offset += blob.length;
    }
    const headerLength = bytes.readUInt32LE(bytes.length - 4);
    expect(offset + headerLength + 4).toBe(bytes.length);
    const header = open(
      keys.sealKey,
      bytes.subarray(offset, offset + headerLength),
      `pack:${sha256(bytes.subarray(0, offset))}`,
      { objectKey: pack.key },
    );
    expect(JSON.parse(zstdDecompressSync(header).toString('utf8'))).toEqual(pack.blobs);
  });

  it('stores a chunk added twice once, and reports its size and count as it goes', () => {
    const writer = new PackWriter(keys);
    const chunk = randomBytes(64);
    const id = chunkId(keys.idKey, chunk);

    writer.add(id, chunk);
    const size = writer.size;
    writer.add(id, chunk);

    expect(writer.has(id)).toBe(true);
    expect(writer.count).toBe(1);
    expect(writer.size).toBe(size);
    expect(size).toBe(64 + 1 + 28);
    expect(writer.finish().blobs).toHaveLength(1);
  });

  it('makes one pack per writer, and no empty pack', () => {
    const writer = new PackWriter(keys);
    expect(() => writer.finish()).toThrow(/at least one blob/);
    writer.add(chunkId(keys.idKey, text('x')), text('x'));
    writer.finish();

    expect(() => writer.finish()).toThrow(/finished/);
    expect(() => writer.add(chunkId(keys.idKey, text('y')), text('y'))).toThrow(/finished/);
    expect(PACK_TARGET_SIZE).toBe(16 * 1024 * 1024);
  });

  it('refuses an id that is not 64 hex digits', () => {
    expect(() => new PackWriter(keys).add('not-an-id', text('x'))).toThrow(RangeError);
  });
});

describe('reading a damaged pack', () => {
  const chunks = [text('alpha '.repeat(30)), randomBytes(40), new Uint8Array(0)];
  const pack = packOf(chunks);
  const dataEnd = pack.bytes.length - 4 - Buffer.from(pack.bytes).readUInt32LE(pack.bytes.length - 4);
  const regionOf = (i: number) => (i < dataEnd ? 'blob' : i < pack.bytes.length - 4 ? 'header' : 'trailer');

  it('refuses a flipped byte in any region — blob, header, length trailer — naming the pack, and the chunk for blob damage', () => {
    const seen = new Set<string>();
    for (let i = 0; i < pack.bytes.length; i++) {
      const damaged = Uint8Array.from(pack.bytes);
      damaged[i] = (damaged[i] ?? 0) ^ 0x20;
      seen.add(regionOf(i));

      expect(() => verifyPackId(damaged, pack.id, pack.key), `byte ${i}`).toThrow(CorruptionError);
      const headerError = thrownBy(() => readPackHeader(keys, damaged, pack.key));
      expect(headerError, `byte ${i} (${regionOf(i)})`).toBeInstanceOf(CorruptionError);
      expect(headerError).toMatchObject({ objectKey: pack.key });

      const hit = pack.blobs.find((b) => i >= b.offset && i < b.offset + b.length);
      if (hit) {
        // A restore reads blobs through the index, not the header: the damage surfaces on that blob.
        const blobError = thrownBy(() =>
          decodeBlob(keys, blobOf({ ...pack, bytes: damaged }, hit), hit.id, pack.key),
        );
        expect(blobError, `byte ${i}`).toBeInstanceOf(CorruptionError);
        expect(blobError).toMatchObject({ objectKey: pack.key, chunkId: hit.id });
        expect(String(blobError)).toContain(`${pack.key} chunk ${hit.id}`);
        for (const other of pack.blobs.filter((b) => b !== hit))
          expect(() =>
            decodeBlob(keys, blobOf({ ...pack, bytes: damaged }, other), other.id, pack.key),
          ).not.toThrow();
      }
    }
    expect([...seen]).toEqual(['blob', 'header', 'trailer']);
  });

  it('names a header length that does not fit the pack', () => {
    const damaged = Buffer.from(pack.bytes);
    damaged.writeUInt32LE(0xffffffff, damaged.length - 4);

    expect(() => readPackHeader(keys, damaged, pack.key)).toThrow(
      `${pack.key}: header length 4294967295 does not fit in a pack of ${damaged.length} bytes`,
    );
  });

  it('refuses a pack too short to hold a header, and every truncation', () => {
    expect(() => readPackHeader(keys, new Uint8Array(3), pack.key)).toThrow(/too short to hold a header/);
    for (let length = 0; length < pack.bytes.length; length++)
      expect(() => readPackHeader(keys, pack.bytes.subarray(0, length), pack.key)).toThrow(CorruptionError);
  });

  it('refuses a header moved onto the data of another pack', () => {
    const other = packOf([text('beta '.repeat(30)), randomBytes(40), new Uint8Array(0)]);
    const otherDataEnd = other.blobs.reduce((end, b) => Math.max(end, b.offset + b.length), 0);
    const spliced = Buffer.concat([other.bytes.subarray(0, otherDataEnd), pack.bytes.subarray(dataEnd)]);

    expect(() => readPackHeader(keys, spliced, pack.key)).toThrow(/authentication failed/);
  });

  it('refuses a pack read with another store key', () => {
    expect(() => readPackHeader(otherKeys, pack.bytes, pack.key)).toThrow(CorruptionError);
  });

  it('refuses an authentic header that places a blob outside the data part', () => {
    const data = new Uint8Array(40);
    const id = chunkId(keys.idKey, text('x'));
    const header = seal(
      keys.sealKey,
      sealedJson([{ id, offset: 20, length: 30, rawLength: 1, compressed: false }]),
      `pack:${sha256(data)}`,
    );
    const trailer = Buffer.alloc(4);
    trailer.writeUInt32LE(header.length);

    expect(() => readPackHeader(keys, Buffer.concat([data, header, trailer]), OBJECT)).toThrow(
      `${OBJECT} chunk ${id}: header places the blob at 20+30, past the data part's 40 bytes`,
    );
  });

  it('refuses an authentic header that is not a blob list', () => {
    const header = seal(keys.sealKey, sealedJson({ not: 'a list' }), `pack:${sha256(new Uint8Array(0))}`);
    const trailer = Buffer.alloc(4);
    trailer.writeUInt32LE(header.length);

    expect(() => readPackHeader(keys, Buffer.concat([header, trailer]), OBJECT)).toThrow(
      /header does not have the expected shape/,
    );
  });
});

describe('verifyPackId', () => {
  it('names the pack whose bytes do not hash to its id', () => {
    const pack = packOf([text('x')]);
    const otherId = sha256(text('other'));

    expect(() => verifyPackId(pack.bytes, otherId, packKey(otherId))).toThrow(
      `${packKey(otherId)}: SHA-256 of the pack is ${pack.id}, not its id ${otherId}`,
    );
  });
});

describe('packKey', () => {
  it('files a pack under the first two hex digits of its id', () => {
    const id = sha256(text('x'));

    expect(packKey(id)).toBe(`snapshots/packs/${id.slice(0, 2)}/${id}`);
    expect(() => packKey('../etc')).toThrow(RangeError);
  });
});

describe('blobs on the thread pool', () => {
  const chunks = [
    new Uint8Array(0),
    text('x'),
    repeat(text('compressible line\n'), 4000),
    randomBytes(300_000),
    Buffer.concat([randomBytes(1000), Buffer.alloc(200_000)]),
  ];

  it('reads blobs the synchronous encoder wrote (existing snapshots), and writes blobs it reads', async () => {
    for (const chunk of chunks) {
      const id = chunkId(keys.idKey, chunk);
      const old = encodeBlob(keys, chunk, id);
      expect(same(await decodeBlobAsync(keys, old.sealed, id, OBJECT), chunk)).toBe(true);
      const fresh = await encodeBlobAsync(keys, chunk, id);
      expect(fresh.compressed).toBe(old.compressed);
      expect(fresh.rawLength).toBe(chunk.length);
      expect(same(decodeBlob(keys, fresh.sealed, id, OBJECT), chunk)).toBe(true);
    }
  });

  it('reads blobs whose frames do not record their size (written as a stream, then flushed, by earlier versions)', async () => {
    const chunk = repeat(text('a line of a unit file\n'), 3000);
    const id = chunkId(keys.idKey, chunk);
    const stream = createZstdCompress({ params: { [constants.ZSTD_c_compressionLevel]: 3 } });
    const parts: Buffer[] = [];
    stream.on('data', (d: Buffer) => parts.push(d));
    await new Promise<void>((resolve) => {
      stream.write(chunk);
      stream.flush(constants.ZSTD_e_end, () => resolve());
    });
    stream.destroy();
    const frame = Buffer.concat(parts);
    // Frame header descriptor: bits 6-7 give the size of the content size field, 0 without
    // the single-segment bit (5) meaning none.
    const descriptor = frame[4] as number;
    expect(descriptor >> 6 === 0 && (descriptor & 0x20) === 0).toBe(true);
    const sealed = seal(keys.sealKey, Buffer.concat([Buffer.from([1]), frame]), `blob:${id}`);
    expect(same(await decodeBlobAsync(keys, sealed, id, OBJECT, chunk.length), chunk)).toBe(true);
    expect(same(decodeBlob(keys, sealed, id, OBJECT), chunk)).toBe(true);
    // What this version writes records the size: zstd knew it before it started.
    const fresh = open(keys.sealKey, (await encodeBlobAsync(keys, chunk, id)).sealed, `blob:${id}`, {
      objectKey: OBJECT,
    });
    const freshDescriptor = fresh[5] as number;
    expect(freshDescriptor >> 6 !== 0 || (freshDescriptor & 0x20) !== 0).toBe(true);
  });

  it('makes every chunk a frame of its own, however many go through one compression context at once', async () => {
    const many = Array.from({ length: 40 }, (_, i) => repeat(text(`line ${i} of a config\n`), 50 + i * 37));
    const blobs = await Promise.all(many.map((c) => encodeBlobAsync(keys, c, chunkId(keys.idKey, c))));
    for (const [i, blob] of blobs.entries()) {
      expect(blob.compressed).toBe(true);
      expect(
        same(
          decodeBlob(keys, blob.sealed, chunkId(keys.idKey, many[i] as Uint8Array), OBJECT),
          many[i] as Uint8Array,
        ),
      ).toBe(true);
    }
  });

  it('refuses a damaged blob or a wrong id as the synchronous decoder does, naming object and chunk', async () => {
    const chunk = repeat(text('abc'), 1000);
    const id = chunkId(keys.idKey, chunk);
    const blob = encodeBlob(keys, chunk, id);
    const damaged = Buffer.from(blob.sealed);
    damaged[20] = (damaged[20] as number) ^ 1;
    await expect(decodeBlobAsync(keys, damaged, id, OBJECT)).rejects.toMatchObject({
      name: 'CorruptionError',
      objectKey: OBJECT,
      chunkId: id,
      reason: 'authentication failed (the bytes were altered)',
    });
    const wrongId = chunkId(keys.idKey, text('other'));
    const misnamed = encodeBlob(keys, chunk, wrongId);
    await expect(decodeBlobAsync(keys, misnamed.sealed, wrongId, OBJECT)).rejects.toMatchObject({
      reason: 'content does not match its id',
    });
    const badFlag = seal(keys.sealKey, Buffer.from([1, 1, 2, 3]), `blob:${id}`);
    await expect(decodeBlobAsync(keys, badFlag, id, OBJECT)).rejects.toMatchObject({
      reason: 'compressed payload does not decompress',
    });
    // A frame cut short (sealed as such by a faulty writer) is refused, and leaves no
    // decompression context in the middle of a frame for the blobs after it.
    const frame = zstdCompressSync(chunk);
    const cut = seal(
      keys.sealKey,
      Buffer.concat([Buffer.from([1]), frame.subarray(0, frame.length - 6)]),
      `blob:${id}`,
    );
    for (let i = 0; i < 4; i++)
      await expect(decodeBlobAsync(keys, cut, id, OBJECT, chunk.length)).rejects.toMatchObject({
        reason: 'compressed payload does not decompress',
      });
    const whole = await Promise.all(
      Array.from({ length: 6 }, () => decodeBlobAsync(keys, blob.sealed, id, OBJECT, chunk.length)),
    );
    for (const c of whole) expect(same(c, chunk)).toBe(true);
  });

  it('lays a pack out in a given buffer as the writer without one does, and goes on past it for a larger blob', () => {
    const small = [text('one'), randomBytes(5000), repeat(text('ab'), 500)];
    const buffer = new Uint8Array(64 * 1024);
    const inBuffer = new PackWriter(keys, buffer);
    for (const c of small) inBuffer.add(chunkId(keys.idKey, c), c);
    const pack = inBuffer.finish();
    expect(pack.bytes.buffer).toBe(buffer.buffer);
    verifyPackId(pack.bytes, pack.id, pack.key);
    expect(readPackHeader(keys, pack.bytes, pack.key)).toEqual(pack.blobs);

    const large = randomBytes(100 * 1024);
    const overflowing = new PackWriter(keys, buffer);
    expect(overflowing.fits(large.length + 29)).toBe(true);
    overflowing.add(chunkId(keys.idKey, large), large);
    expect(overflowing.fits(10)).toBe(false);
    const big = overflowing.finish();
    verifyPackId(big.bytes, big.id, big.key);
    const [blob] = readPackHeader(keys, big.bytes, big.key);
    expect(
      same(decodeBlob(keys, blobOf(big, blob as IndexBlob), chunkId(keys.idKey, large), big.key), large),
    ).toBe(true);
  });
});
