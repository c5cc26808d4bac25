// The content-defined chunker: the laws it keeps on any input (chunks concatenate to the
// input, sizes stay within bounds, boundaries do not depend on how the input is split), the
// statistics it is chosen for (average size, resilience to insertions), and agreement with a
// byte-by-byte reading of the cut rules in FORMAT.md.
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  Chunker,
  type ChunkerParams,
  chunkBuffer,
  chunkStream,
  DEFAULT_CHUNKER,
  DEFAULT_GEAR,
  gearTable,
  validateChunkerParams,
} from '../../../core/snapshot/chunker.js';

// Small sizes keep the tests fast while giving hundreds of chunks per megabyte.
const SMALL: ChunkerParams = { min: 2 * 1024, avg: 8 * 1024, max: 32 * 1024 };
// Tiny sizes make property tests cross many boundaries, forced cuts included, in a few KiB.
const TINY: ChunkerParams = { min: 64, avg: 256, max: 1024 };

/** Deterministic pseudo-random bytes (xorshift32), the same for the same seed. */
function randomBytes(length: number, seed: number): Uint8Array {
  const words = new Uint32Array(Math.ceil(length / 4));
  let x = seed | 0 || 0x9e3779b9;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x;
  }
  return new Uint8Array(words.buffer, 0, length);
}

/** Bytes from a small alphabet, with long runs: cut points are rare, so `max` forces cuts. */
function lowEntropyBytes(length: number, seed: number): Uint8Array {
  const noise = randomBytes(length, seed);
  const out = new Uint8Array(length);
  let value = 0;
  for (let i = 0; i < length; i++) {
    if ((noise[i] as number) < 4) value = (noise[i] as number) * 17;
    out[i] = value;
  }
  return out;
}

const lengths = (chunks: readonly Uint8Array[]) => chunks.map((c) => c.length);
const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

function concat(chunks: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

/**
 * The cut rules read literally: a gear hash rolled from the start of each chunk, tested at
 * every length from `min` on (the stricter mask below `avg`, the looser one from `avg`),
 * a forced cut at `max`. Slow and obviously right, to check the fast scanner against.
 */
function referenceLengths(data: Uint8Array, params: ChunkerParams, gear: Uint32Array): number[] {
  const bits = Math.log2(params.avg);
  const maskS = (0xffffffff << (32 - bits - 2)) >>> 0;
  const maskL = (0xffffffff << (32 - bits + 2)) >>> 0;
  const out: number[] = [];
  for (let start = 0; start < data.length; ) {
    const end = Math.min(data.length, start + params.max);
    let cut = end;
    let h = 0;
    for (let i = start; i < end; i++) {
      h = (h * 2 + (gear[data[i] as number] as number)) >>> 0;
      const length = i + 1 - start;
      if (length < params.min) continue;
      if ((h & (length < params.avg ? maskS : maskL)) >>> 0 === 0) {
        cut = i + 1;
        break;
      }
    }
    out.push(cut - start);
    start = cut;
  }
  return out;
}

/** Pushes `data` in pieces ending at `splits` (sorted, deduplicated by the caller or not). */
function chunkInPieces(data: Uint8Array, splits: readonly number[], params: ChunkerParams): Uint8Array[] {
  const chunker = new Chunker(params, DEFAULT_GEAR);
  const chunks: Uint8Array[] = [];
  let from = 0;
  for (const at of [...splits].sort((a, b) => a - b)) {
    chunks.push(...chunker.push(data.subarray(from, at)));
    from = at;
  }
  chunks.push(...chunker.push(data.subarray(from)));
  chunks.push(...chunker.finish());
  return chunks;
}

const seedArb = fc.integer({ min: 1, max: 0x7fffffff });
const inputArb = fc
  .record({ length: fc.integer({ min: 0, max: 12_000 }), seed: seedArb, lowEntropy: fc.boolean() })
  .map(({ length, seed, lowEntropy }) => (lowEntropy ? lowEntropyBytes : randomBytes)(length, seed));

describe('chunkBuffer', () => {
  it('gives no chunk for empty input', () => {
    expect(chunkBuffer(new Uint8Array(0), SMALL)).toEqual([]);
    expect(chunkBuffer(new Uint8Array(0))).toEqual([]);
  });

  it('keeps input no longer than min as one chunk', () => {
    const data = randomBytes(SMALL.min, 1);
    expect(lengths(chunkBuffer(data, SMALL))).toEqual([SMALL.min]);
    expect(lengths(chunkBuffer(data.subarray(0, 10), SMALL))).toEqual([10]);
  });

  it('returns chunks that concatenate to the input', () => {
    fc.assert(
      fc.property(inputArb, (data) => {
        expect(concat(chunkBuffer(data, TINY))).toEqual(data);
      }),
      { numRuns: 200 },
    );
  });

  it('keeps every chunk within [min, max], except the last, which is at most max', () => {
    fc.assert(
      fc.property(inputArb, (data) => {
        const sizes = lengths(chunkBuffer(data, TINY));
        for (const size of sizes.slice(0, -1)) {
          expect(size).toBeGreaterThanOrEqual(TINY.min);
          expect(size).toBeLessThanOrEqual(TINY.max);
        }
        expect(sizes.at(-1) ?? 0).toBeLessThanOrEqual(TINY.max);
      }),
      { numRuns: 200 },
    );
  });

  it('cuts where the byte-by-byte reading of the rules cuts', () => {
    fc.assert(
      fc.property(inputArb, (data) => {
        expect(lengths(chunkBuffer(data, TINY))).toEqual(referenceLengths(data, TINY, DEFAULT_GEAR));
      }),
      { numRuns: 200 },
    );
    const data = randomBytes(1 << 20, 7);
    expect(lengths(chunkBuffer(data, SMALL))).toEqual(referenceLengths(data, SMALL, DEFAULT_GEAR));
  });

  it('forces cuts at max where the content has no cut point', () => {
    const data = new Uint8Array(10 * TINY.max + 5).fill(0x61);
    const sizes = lengths(chunkBuffer(data, TINY));
    expect(sizes).toEqual(referenceLengths(data, TINY, DEFAULT_GEAR));
    expect(sizes.slice(0, -1).every((s) => s === TINY.max)).toBe(true);
  });

  it('cuts the same input the same way every time, and differently under another gear table', () => {
    const data = randomBytes(1 << 20, 11);
    const first = lengths(chunkBuffer(data, SMALL));
    expect(lengths(chunkBuffer(data.slice(), SMALL))).toEqual(first);
    const otherGear = gearTable(randomBytes(1024, 12));
    expect(lengths(chunkBuffer(data, SMALL, otherGear))).not.toEqual(first);
  });

  it('returns views into the input rather than copies', () => {
    const data = randomBytes(100_000, 13);
    const chunks = chunkBuffer(data, SMALL);
    expect(chunks.length).toBeGreaterThan(1);
    expect(chunks.every((c) => c.buffer === data.buffer)).toBe(true);
  });

  it('makes chunks of about avg on random data', () => {
    const data = randomBytes(8 << 20, 17);
    const sizes = lengths(chunkBuffer(data, SMALL));
    const mean = data.length / sizes.length;
    expect(mean).toBeGreaterThan(0.6 * SMALL.avg);
    expect(mean).toBeLessThan(1.6 * SMALL.avg);
    // Normalized chunking narrows the spread: few chunks are forced at max.
    expect(sizes.filter((s) => s === SMALL.max).length / sizes.length).toBeLessThan(0.01);
  });

  it('keeps most chunks of a 20 MB buffer when a few bytes are inserted near its start', () => {
    const original = randomBytes(20 << 20, 19);
    const edited = concat([original.subarray(0, 1000), randomBytes(7, 20), original.subarray(1000)]);
    const before = new Set(chunkBuffer(original, SMALL).map(sha256));
    const after = chunkBuffer(edited, SMALL).map(sha256);
    const kept = after.filter((id) => before.has(id)).length;
    expect(kept / after.length).toBeGreaterThanOrEqual(0.8);
    // The boundaries resynchronise right after the edit: only its neighbourhood changes.
    expect(after.length - kept).toBeLessThanOrEqual(3);
  });
});

describe('Chunker', () => {
  it('finds the same boundaries however the input is split into pushes', () => {
    const splitsArb = (length: number) => fc.array(fc.integer({ min: 0, max: length }), { maxLength: 40 });
    fc.assert(
      fc.property(
        inputArb.chain((data) => fc.tuple(fc.constant(data), splitsArb(data.length))),
        ([data, splits]) => {
          expect(lengths(chunkInPieces(data, splits, TINY))).toEqual(lengths(chunkBuffer(data, TINY)));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('finds the same boundaries with the default sizes when fed 64 KiB at a time or byte-misaligned', () => {
    const data = randomBytes(12 << 20, 23);
    const whole = lengths(chunkBuffer(data));
    const even = Array.from({ length: data.length / 65536 }, (_, i) => i * 65536);
    const odd = Array.from({ length: 100 }, (_, i) => i * 123_457 + 3);
    expect(lengths(chunkInPieces(data, even, DEFAULT_CHUNKER))).toEqual(whole);
    expect(lengths(chunkInPieces(data, odd, DEFAULT_CHUNKER))).toEqual(whole);
  });

  it('returns chunks that stay intact when the caller reuses its buffer', () => {
    const data = randomBytes(200_000, 29);
    const chunker = new Chunker(SMALL, DEFAULT_GEAR);
    const buffer = new Uint8Array(3000);
    const chunks: Uint8Array[] = [];
    for (let from = 0; from < data.length; from += buffer.length) {
      const piece = data.subarray(from, from + buffer.length);
      buffer.set(piece);
      chunks.push(...chunker.push(buffer.subarray(0, piece.length)));
      buffer.fill(0xee);
    }
    chunks.push(...chunker.finish());
    expect(concat(chunks)).toEqual(data);
    expect(chunks.some((c) => c.buffer === buffer.buffer)).toBe(false);
  });

  it('with pushViews, cuts where push cuts, giving views of the pushed buffer for chunks wholly inside it', () => {
    fc.assert(
      fc.property(
        inputArb.chain((data) =>
          fc.tuple(fc.constant(data), fc.array(fc.integer({ min: 0, max: data.length }), { maxLength: 12 })),
        ),
        ([data, splits]) => {
          const cuts = [...new Set([0, ...splits, data.length])].sort((a, b) => a - b);
          const chunker = new Chunker(TINY, DEFAULT_GEAR);
          const chunks: Uint8Array[] = [];
          let views = 0;
          let pushed = 0;
          for (let i = 0; i + 1 < cuts.length; i++) {
            // Each piece a buffer of its own, as each slab region is.
            const piece = data.slice(cuts[i], cuts[i + 1]);
            for (const c of chunker.pushViews(piece)) {
              if (c.buffer === piece.buffer) views++;
              pushed++;
              chunks.push(c);
            }
          }
          chunks.push(...chunker.finish());
          expect(lengths(chunks)).toEqual(lengths(chunkBuffer(data, TINY)));
          expect(concat(chunks)).toEqual(data);
          // Pushed in one piece, every chunk it completes lies inside it.
          if (cuts.length === 2) expect(views).toBe(pushed);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('keeps a file shorter than min for finish, as one chunk of its own memory', () => {
    const data = randomBytes(SMALL.min - 1, 30);
    const chunker = new Chunker(SMALL, DEFAULT_GEAR);
    expect(chunker.push(data)).toEqual([]);
    const [tail, ...rest] = chunker.finish();
    expect(rest).toEqual([]);
    expect(tail).toEqual(data);
    expect(tail?.buffer).not.toBe(data.buffer);
  });

  it('starts afresh after finish', () => {
    const data = randomBytes(50_000, 31);
    const chunker = new Chunker(SMALL, DEFAULT_GEAR);
    const first = lengths([...chunker.push(data), ...chunker.finish()]);
    const second = lengths([...chunker.push(data), ...chunker.finish()]);
    expect(second).toEqual(first);
    expect(chunker.finish()).toEqual([]);
  });

  it('refuses unusable sizes with a RangeError naming the parameter', () => {
    const bad: [ChunkerParams, RegExp][] = [
      [{ min: 2048, avg: 10_000, max: 32_768 }, /avg must be a power of two/],
      [{ min: 8192, avg: 8192, max: 32_768 }, /min \(8192\) must be below avg/],
      [{ min: 2048, avg: 8192, max: 8192 }, /max \(8192\) must be above avg/],
      [{ min: 16, avg: 256, max: 1024 }, /min must be at least 64/],
      [{ min: 2048.5, avg: 8192, max: 32_768 }, /min must be a positive integer/],
      [{ min: 2048, avg: -8192, max: 32_768 }, /avg must be a positive integer/],
      [{ min: 2048, avg: 8192, max: 2 ** 31 }, /max must be at most/],
      [{ min: 64, avg: 128, max: 1024 }, /avg must be a power of two from/],
    ];
    for (const [params, message] of bad) {
      expect(() => validateChunkerParams(params)).toThrow(RangeError);
      expect(() => new Chunker(params, DEFAULT_GEAR)).toThrow(message);
    }
    expect(() => validateChunkerParams(DEFAULT_CHUNKER)).not.toThrow();
    expect(() => validateChunkerParams(SMALL)).not.toThrow();
  });

  it('refuses a gear table without 256 entries', () => {
    expect(() => new Chunker(SMALL, new Uint32Array(255))).toThrow(/256 entries/);
  });
});

describe('chunkStream', () => {
  it('yields the chunks chunkBuffer finds, from an async stream of buffers', async () => {
    const data = randomBytes(3 << 20, 37);
    async function* source() {
      for (let from = 0; from < data.length; from += 65_536) yield data.subarray(from, from + 65_536);
    }
    const chunks: Uint8Array[] = [];
    for await (const chunk of chunkStream(source(), SMALL, DEFAULT_GEAR)) chunks.push(chunk);
    expect(chunks.map(sha256)).toEqual(chunkBuffer(data, SMALL).map(sha256));
  });

  it('yields nothing for an empty stream', async () => {
    const chunks: Uint8Array[] = [];
    for await (const chunk of chunkStream((async function* () {})())) chunks.push(chunk);
    expect(chunks).toEqual([]);
  });
});

describe('gearTable', () => {
  it('reads 256 little-endian uint32 from the first 1024 bytes of the seed', () => {
    const seed = randomBytes(1100, 41);
    const table = gearTable(seed);
    const view = new DataView(seed.buffer);
    expect(table.length).toBe(256);
    expect(table[0]).toBe(view.getUint32(0, true));
    expect(table[255]).toBe(view.getUint32(1020, true));
  });

  it('refuses fewer than 1024 bytes of key material', () => {
    expect(() => gearTable(new Uint8Array(1023))).toThrow(RangeError);
  });

  it('has a fixed default table of distinct entries', () => {
    expect(DEFAULT_GEAR.length).toBe(256);
    expect(new Set(DEFAULT_GEAR).size).toBe(256);
    // Pinned: changing the default table would move every boundary of the tools that use it.
    expect(sha256(new Uint8Array(DEFAULT_GEAR.buffer, DEFAULT_GEAR.byteOffset, 1024))).toMatchInlineSnapshot(
      `"f163c8a035de7ddf40564a5f61918e916b54a2ee8c9016d76786fafb165ac70e"`,
    );
  });
});
