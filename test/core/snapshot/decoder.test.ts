// The decoding thread (decoder.ts): every blob of a read decoded into memory shared with it, the
// same chunks and the same verdicts as pack.ts gives for each blob on its own, a damaged blob
// failing alone and by its id; the thread stopped under a job fails the job, not the process;
// the window's regions given and taken back in any order.
import { randomBytes } from 'node:crypto';
import { zstdCompressSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { Arena, BlobDecoder, blobDecoder, decodeFailure } from '../../../core/snapshot/decoder.js';
import type { CorruptionError } from '../../../core/snapshot/errors.js';
import { chunkId, deriveKeys, generateMasterKey } from '../../../core/snapshot/keys.js';
import { decodeBlob, encodeBlobAsync } from '../../../core/snapshot/pack.js';
import { seal } from '../../../core/snapshot/seal.js';

const keys = deriveKeys(generateMasterKey(), 'test-store');
const OBJECT = 'snapshots/packs/00/00';
const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));
const lines = (i: number, n: number) => Buffer.from(`line ${i} of a unit file\n`.repeat(n));

interface TestBlob {
  sealed: Uint8Array;
  readonly id: string;
  readonly rawLength: number;
  readonly compressed?: boolean;
}

async function blobsOf(chunks: readonly Uint8Array[]): Promise<TestBlob[]> {
  return Promise.all(
    chunks.map(async (chunk) => {
      const id = chunkId(keys.idKey, chunk);
      const blob = await encodeBlobAsync(keys, chunk, id);
      return { sealed: Buffer.from(blob.sealed), id, rawLength: chunk.length, compressed: blob.compressed };
    }),
  );
}

type Result = { readonly chunk: Uint8Array } | { readonly error: CorruptionError };

/** The blobs laid end to end in shared memory, as a read holds them, and decoded there. */
async function decodeAll(blobs: readonly TestBlob[], decoder = blobDecoder): Promise<Result[]> {
  const PAD = 7; // regions need not start at 0
  const input = new SharedArrayBuffer(PAD + blobs.reduce((n, b) => n + b.sealed.length, 0));
  const output = new SharedArrayBuffer(PAD + blobs.reduce((n, b) => n + b.rawLength, 0));
  let at = 0;
  let out = 0;
  const placed = blobs.map((b) => {
    new Uint8Array(input, PAD + at, b.sealed.length).set(b.sealed);
    const p = { at, length: b.sealed.length, id: b.id, rawLength: b.rawLength, out };
    at += b.sealed.length;
    out += b.rawLength;
    return p;
  });
  const problems = await decoder.decode({
    input,
    inputOffset: PAD,
    output,
    outputOffset: PAD,
    blobs: placed,
    sealKey: keys.sealKey,
    idKey: keys.idKey,
  });
  return placed.map((p, i) => {
    const problem = problems[i];
    return problem === undefined
      ? { chunk: new Uint8Array(output, PAD + p.out, p.rawLength) }
      : { error: decodeFailure({ objectKey: OBJECT, chunkId: p.id }, problem) };
  });
}

const reasonOf = (r: Result) => ('error' in r ? r.error.reason : 'ok');
const chunkOf = (r: Result) => {
  if ('error' in r) throw r.error;
  return r.chunk;
};

/** What pack.ts says of the same blob alone: the reference the decoder keeps to. */
const alone = (b: TestBlob) => {
  try {
    decodeBlob(keys, b.sealed, b.id, OBJECT);
    return 'ok';
  } catch (e) {
    return (e as CorruptionError).reason;
  }
};

// The thread inflates through one kept zstd context where Node's stream offers its handle, and
// frame by frame where it does not: both give the same chunks and the same verdicts.
describe.each([
  ['one kept zstd context', blobDecoder],
  ['a zstd call per frame', new BlobDecoder({ inflate: 'per-frame' })],
])('decoding the blobs of one read together, with %s', (_, decoder) => {
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
    const decoded = await decodeAll(blobs, decoder);
    expect(decoded.length).toBe(chunks.length);
    for (const [i, chunk] of chunks.entries()) expect(same(chunkOf(decoded[i] as Result), chunk)).toBe(true);
  });

  it('fails only the blob whose bytes were altered, naming its chunk', async () => {
    const chunks = Array.from({ length: 12 }, (_, i) => lines(i, 100 + i));
    const blobs = await blobsOf(chunks);
    const bad = blobs[5] as (typeof blobs)[number];
    bad.sealed[20] = (bad.sealed[20] as number) ^ 1;
    const results = await decodeAll(blobs, decoder);
    for (const [i, r] of results.entries()) {
      if (i === 5) {
        expect('error' in r && r.error).toMatchObject({
          name: 'CorruptionError',
          objectKey: OBJECT,
          chunkId: bad.id,
          reason: 'authentication failed (the bytes were altered)',
        });
      } else expect(same(chunkOf(r), chunks[i] as Uint8Array)).toBe(true);
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
    const results = await decodeAll(blobs, decoder);
    expect(results.map(reasonOf)).toEqual([
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
      expect(same(chunkOf(results[i] as Result), chunks[i] as Uint8Array)).toBe(true);
  });

  it('refuses each kind of damage in the words pack.ts uses for the blob alone', async () => {
    const chunks = Array.from({ length: 8 }, (_, i) => (i % 2 ? randomBytes(3000) : lines(i, 400)));
    const blobs = await blobsOf(chunks);
    const sealWith = (i: number, plaintext: Uint8Array) => {
      const b = blobs[i] as TestBlob;
      b.sealed = Buffer.from(seal(keys.sealKey, plaintext, `blob:${b.id}`));
    };
    (blobs[1] as TestBlob).sealed = randomBytes(20); // shorter than a nonce and a tag
    sealWith(2, new Uint8Array()); // no flag byte
    sealWith(3, Buffer.concat([Buffer.from([7]), chunks[3] as Uint8Array])); // a flag no format has
    sealWith(5, Buffer.concat([Buffer.from([0]), randomBytes(3000)])); // stored, but not the chunk
    // Sealed for another chunk: the AAD names the id, so it does not open here.
    (blobs[6] as TestBlob).sealed = (blobs[0] as TestBlob).sealed;
    const results = await decodeAll(blobs, decoder);
    expect(results.map(reasonOf)).toEqual(blobs.map(alone));
    expect(results.map(reasonOf)).toEqual([
      'ok',
      'sealed object is 20 bytes, shorter than its 28-byte nonce and tag',
      'blob has no flag byte',
      'unknown blob flag 7',
      'ok',
      'content does not match its id',
      'authentication failed (the bytes were altered)',
      'ok',
    ]);
  });

  it('refuses a frame that inflates to less, or more, than its index says, and reads the next', async () => {
    // Sealed with the key: what the index says of the chunk is all that is wrong.
    const chunk = lines(3, 500);
    const id = chunkId(keys.idKey, chunk);
    const filedAs = (rawLength: number, payload: Uint8Array): TestBlob => ({
      sealed: Buffer.from(seal(keys.sealKey, Buffer.concat([Buffer.from([1]), payload]), `blob:${id}`)),
      id,
      rawLength,
    });
    const frame = zstdCompressSync(chunk);
    const [good] = await blobsOf([lines(4, 600)]);
    const results = await decodeAll(
      [
        filedAs(chunk.length + 1, frame),
        filedAs(chunk.length - 1, frame),
        good as TestBlob,
        filedAs(chunk.length, frame),
      ],
      decoder,
    );
    expect(results.map(reasonOf)).toEqual([
      'compressed payload does not decompress',
      'compressed payload does not decompress',
      'ok',
      'ok',
    ]);
    expect(same(chunkOf(results[3] as Result), chunk)).toBe(true);
  });

  it('does not inflate a frame past the size its index gives it', async () => {
    // 64 MiB of zeros in a few KiB, filed as a 4 KiB chunk: refused without being held.
    const id = chunkId(keys.idKey, Buffer.alloc(4096));
    const bomb: TestBlob = {
      sealed: Buffer.from(
        seal(
          keys.sealKey,
          Buffer.concat([Buffer.from([1]), zstdCompressSync(Buffer.alloc(64 * 2 ** 20))]),
          `blob:${id}`,
        ),
      ),
      id,
      rawLength: 4096,
    };
    const [result] = await decodeAll([bomb], decoder);
    expect(reasonOf(result as Result)).toBe('compressed payload does not decompress');
  });
});

describe('the decoding thread', () => {
  it('fails the jobs under way when it stops, and starts again for the next', async () => {
    const decoder = new BlobDecoder();
    const blobs = await blobsOf(Array.from({ length: 200 }, (_, i) => lines(i, 2000)));
    const under = expect(decodeAll(blobs, decoder)).rejects.toThrow(
      /the blob decoder failed: the blob decoder was stopped/,
    );
    await decoder.stop();
    await under;
    const again = await decodeAll(blobs.slice(0, 3), decoder);
    expect(again.map(reasonOf)).toEqual(['ok', 'ok', 'ok']);
    await decoder.stop();
  });

  it('answers for the blobs of a large job in pieces, in order, before the job settles', async () => {
    const chunks = Array.from({ length: 40 }, (_, i) => lines(i, 4000 + i)); // about 100 KiB each
    const blobs = await blobsOf(chunks);
    const input = new SharedArrayBuffer(blobs.reduce((n, b) => n + b.sealed.length, 0));
    const output = new SharedArrayBuffer(chunks.reduce((n, c) => n + c.length, 0));
    let at = 0;
    let out = 0;
    const placed = blobs.map((b) => {
      new Uint8Array(input, at, b.sealed.length).set(b.sealed);
      const p = { at, length: b.sealed.length, id: b.id, rawLength: b.rawLength, out };
      at += b.sealed.length;
      out += b.rawLength;
      return p;
    });
    const answers: { from: number; count: number; settled: boolean }[] = [];
    let settled = false;
    const all = await blobDecoder
      .decode(
        {
          input,
          inputOffset: 0,
          output,
          outputOffset: 0,
          blobs: placed,
          sealKey: keys.sealKey,
          idKey: keys.idKey,
        },
        (from, problems) => {
          answers.push({ from, count: problems.length, settled });
          // What an answer names is in place already.
          for (let k = 0; k < problems.length; k++) {
            const p = placed[from + k] as (typeof placed)[number];
            expect(same(new Uint8Array(output, p.out, p.rawLength), chunks[from + k] as Uint8Array)).toBe(
              true,
            );
          }
        },
      )
      .finally(() => {
        settled = true;
      });
    expect(all).toEqual(blobs.map(() => undefined));
    expect(answers.length).toBeGreaterThan(1);
    expect(answers.every((a) => !a.settled)).toBe(true);
    // Consecutive, from the first blob to the last.
    let next = 0;
    for (const a of answers) {
      expect(a.from).toBe(next);
      next += a.count;
    }
    expect(next).toBe(blobs.length);
  });

  it('fails a job it cannot carry out, and carries out the next', async () => {
    const s = new SharedArrayBuffer(64);
    const job = {
      input: s,
      inputOffset: 0,
      output: s,
      outputOffset: 0,
      // Its sealed bytes said to lie past the end of the memory it was given.
      blobs: [{ at: 60, length: 100, id: 'a'.repeat(64), rawLength: 1, out: 0 }],
      sealKey: keys.sealKey,
      idKey: keys.idKey,
    };
    await expect(blobDecoder.decode(job)).rejects.toThrow(/the blob decoder failed: .*length/i);
    const blobs = await blobsOf([lines(1, 10)]);
    expect((await decodeAll(blobs)).map(reasonOf)).toEqual(['ok']);
  });

  it('does not keep the process alive when idle', async () => {
    const { spawnSync } = await import('node:child_process');
    const { fileURLToPath } = await import('node:url');
    const decoder = fileURLToPath(new URL('../../../core/snapshot/decoder.ts', import.meta.url));
    // A job, then nothing: the process ends by itself, within the time-out.
    const script = `import { blobDecoder } from ${JSON.stringify(decoder)};
      const s = new SharedArrayBuffer(1);
      await blobDecoder.decode({ input: s, inputOffset: 0, output: s, outputOffset: 0, blobs: [], sealKey: new Uint8Array(32), idKey: new Uint8Array(32) });
      console.log('decoded');`;
    const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(run.stdout.trim()).toBe('decoded');
    expect(run.status).toBe(0);
  });
});

describe('the window', () => {
  it('gives out regions and takes them back in any order, joining neighbours', () => {
    const a = new Arena(100);
    const x = a.take(30) as number;
    const y = a.take(30) as number;
    const z = a.take(40) as number;
    expect([x, y, z]).toEqual([0, 30, 60]);
    expect(a.take(1)).toBeUndefined();
    a.give(y, 30);
    expect(a.take(31)).toBeUndefined();
    a.give(x, 30);
    // The two freed neighbours are one region now.
    expect(a.take(60)).toBe(0);
    a.give(0, 60);
    a.give(z, 40);
    expect(a.empty).toBe(true);
    expect(a.take(100)).toBe(0);
  });

  it('refuses a region given back twice or never taken', () => {
    const a = new Arena(64);
    const x = a.take(16) as number;
    a.give(x, 16);
    expect(() => a.give(x, 16)).toThrow(/given back twice or was never taken/);
    expect(() => a.give(60, 8)).toThrow(/given back twice/);
  });
});
