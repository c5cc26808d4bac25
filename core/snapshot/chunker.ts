// Content-defined chunking: FastCDC with normalized chunking, level 2 (Xia et al., 2016), as
// FORMAT.md "Chunking" specifies. A chunk boundary depends only on the 32 bytes before it and
// on its distance from the previous boundary, so an insertion or deletion moves the
// boundaries next to it and leaves the rest of a file's chunks, and their ids, unchanged.
import { createHash } from 'node:crypto';

export interface ChunkerParams {
  /** No chunk is shorter, except the last one of a stream. */
  readonly min: number;
  /** The target size: a power of two. */
  readonly avg: number;
  /** No chunk is longer: a cut is forced here. */
  readonly max: number;
}

export const DEFAULT_CHUNKER: ChunkerParams = { min: 256 * 1024, avg: 1024 * 1024, max: 4 * 1024 * 1024 };

/** Bytes of key material a gear table is made of: 256 little-endian uint32. */
export const GEAR_SEED_BYTES = 1024;

// The gear hash shifts one bit left per byte, so after 32 bytes a byte has left the 32-bit
// word: the hash is a function of the last WINDOW bytes only.
const WINDOW = 32;
// Normalization level 2: the mask has two bits more than log2(avg) before the average size
// and two fewer after it, which narrows the spread of chunk sizes around avg.
const NORMALIZATION = 2;

const MIN_MIN = 2 * WINDOW;
const MIN_AVG_BITS = 8;
const MAX_AVG_BITS = 28;
/** The largest chunk any chunker parameters allow. */
export const MAX_CHUNK_BYTES = 2 ** 30;
const MAX_MAX = MAX_CHUNK_BYTES;

/**
 * Throws a RangeError naming the first parameter that is unusable: sizes are integers,
 * `min` ≥ 64 (room for the hash window), `min` < `avg` < `max` ≤ 1 GiB, and `avg` is a
 * power of two between 256 B and 256 MiB.
 */
export function validateChunkerParams(params: ChunkerParams): void {
  const { min, avg, max } = params;
  for (const [name, value] of [
    ['min', min],
    ['avg', avg],
    ['max', max],
  ] as const) {
    if (!Number.isSafeInteger(value) || value <= 0) {
      throw new RangeError(`chunker ${name} must be a positive integer, got ${value}`);
    }
  }
  if (min < MIN_MIN) throw new RangeError(`chunker min must be at least ${MIN_MIN} bytes, got ${min}`);
  const bits = Math.log2(avg);
  if (!Number.isInteger(bits) || bits < MIN_AVG_BITS || bits > MAX_AVG_BITS) {
    throw new RangeError(
      `chunker avg must be a power of two from 2^${MIN_AVG_BITS} to 2^${MAX_AVG_BITS}, got ${avg}`,
    );
  }
  if (!(min < avg)) throw new RangeError(`chunker min (${min}) must be below avg (${avg})`);
  if (!(avg < max)) throw new RangeError(`chunker max (${max}) must be above avg (${avg})`);
  if (max > MAX_MAX) throw new RangeError(`chunker max must be at most ${MAX_MAX} bytes, got ${max}`);
}

/** The gear table made of the first 1024 bytes of `seed` (FORMAT.md: HKDF "persona/v1 gear"). */
export function gearTable(seed: Uint8Array): Uint32Array {
  if (seed.length < GEAR_SEED_BYTES) {
    throw new RangeError(`a gear table needs ${GEAR_SEED_BYTES} bytes of key material, got ${seed.length}`);
  }
  const view = new DataView(seed.buffer, seed.byteOffset, GEAR_SEED_BYTES);
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) table[i] = view.getUint32(4 * i, true);
  return table;
}

/**
 * A fixed, public gear table (SHA-256 in counter mode over a constant label), for tests and
 * tools that work without a store key. A store uses the keyed table of FORMAT.md instead:
 * with a public table, chunk boundaries would reveal which known files a host holds.
 */
export const DEFAULT_GEAR: Uint32Array = gearTable(
  counterModeSha256('persona/v1 default gear', GEAR_SEED_BYTES),
);

function counterModeSha256(label: string, length: number): Uint8Array {
  const out = new Uint8Array(length);
  const counter = new Uint8Array(4);
  for (let block = 0, offset = 0; offset < length; block++, offset += 32) {
    new DataView(counter.buffer).setUint32(0, block, true);
    const digest = createHash('sha256').update(label).update(counter).digest();
    out.set(digest.subarray(0, Math.min(32, length - offset)), offset);
  }
  return out;
}

// A mask of the `bits` highest bits of the 32-bit word, as an int32. The low bits of a gear
// hash depend on the last few bytes only (bit k on the last k + 1), the high ones on the
// whole window: the FastCDC paper pads its masks with zeros for that reason, so that the
// cut condition does not look at a handful of bytes. In a 32-bit hash with ~22 mask bits
// there is no room to pad, and the top bits are the ones with the widest windows; they
// also nest (the looser mask is part of the stricter one), so a cut the strict mask makes
// is also one the loose mask would make.
function highMask(bits: number): number {
  return (0xffffffff << (32 - bits)) | 0;
}

// The hash after the last byte findCut scanned, when it found no cut: a second result
// without allocating an object per call.
const scanState = new Int32Array(1);

// Reading the input four bytes at a time through a Uint32Array takes the byte order of the
// platform; on a big-endian one the word loop is skipped and bytes are read one by one.
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
const NO_WORDS = new Uint32Array(0);

// The index just past the first byte of data[from, end) at which the hash, continued from
// `h`, has none of the `mask` bits set; -1 if there is none. `words` views the same bytes
// as 32-bit words starting at data index `shift`, the first one aligned to 4 in the
// underlying buffer. One 32-bit load per four bytes instead of four byte loads (each with
// its bounds check) roughly doubles the speed of this loop in V8, which does not unroll or
// vectorize it by itself.
function findCut(
  data: Uint8Array,
  words: Uint32Array,
  shift: number,
  gear: Int32Array,
  mask: number,
  from: number,
  end: number,
  h: number,
): number {
  let i = from;
  const aligned = Math.min(end, shift + ((i - shift + 3) & ~3));
  for (; i < aligned; i++) {
    h = ((h << 1) + (gear[data[i] as number] as number)) | 0;
    if ((h & mask) === 0) return i + 1;
  }
  const wordEnd = Math.min((end - shift) >> 2, words.length);
  for (let w = (i - shift) >> 2; w < wordEnd; w++) {
    const v = words[w] as number;
    const at = shift + 4 * w;
    h = ((h << 1) + (gear[v & 0xff] as number)) | 0;
    if ((h & mask) === 0) return at + 1;
    h = ((h << 1) + (gear[(v >>> 8) & 0xff] as number)) | 0;
    if ((h & mask) === 0) return at + 2;
    h = ((h << 1) + (gear[(v >>> 16) & 0xff] as number)) | 0;
    if ((h & mask) === 0) return at + 3;
    h = ((h << 1) + (gear[v >>> 24] as number)) | 0;
    if ((h & mask) === 0) return at + 4;
  }
  for (i = Math.max(i, shift + 4 * wordEnd); i < end; i++) {
    h = ((h << 1) + (gear[data[i] as number] as number)) | 0;
    if ((h & mask) === 0) return i + 1;
  }
  scanState[0] = h;
  return -1;
}

// The whole of `data` as one stream, chunks as views into it: for chunkBuffer, kept out of
// the class's public surface.
let scanWhole: (chunker: Chunker, data: Uint8Array) => Uint8Array[];

/**
 * Cuts a stream of bytes into content-defined chunks. The boundaries depend only on the
 * bytes, never on how they are split into the buffers given to `push`.
 *
 * Every chunk returned by `push` and `finish` is a fresh, exactly sized Uint8Array: it does
 * not share memory with the pushed buffers nor with later chunks, so callers may reuse their
 * read buffers and keep the chunks as long as they like.
 */
export class Chunker {
  readonly params: ChunkerParams;
  readonly #gear: Int32Array;
  readonly #maskS: number;
  readonly #maskL: number;
  #hash = 0;
  // The current chunk's bytes from earlier pushes. It grows on demand rather than starting
  // at `max`: a store makes one Chunker per file, and most files are small.
  #staged: Uint8Array | undefined;
  #stagedLength = 0;

  constructor(params: ChunkerParams = DEFAULT_CHUNKER, gear: Uint32Array = DEFAULT_GEAR) {
    validateChunkerParams(params);
    if (gear.length !== 256) throw new RangeError(`a gear table has 256 entries, got ${gear.length}`);
    this.params = { min: params.min, avg: params.avg, max: params.max };
    // Signed view of the same table: int32 values keep the hot loop in integer arithmetic
    // (a uint32 above 2^31 would make V8 fall back to doubles).
    // A copy, too: boundaries must not move if the caller's table changes later.
    this.#gear = new Int32Array(gear);
    const bits = Math.log2(params.avg);
    this.#maskS = highMask(bits + NORMALIZATION);
    this.#maskL = highMask(bits - NORMALIZATION);
  }

  /** Consumes `data` and returns the chunks it completes (possibly none). */
  push(data: Uint8Array): Uint8Array[] {
    return this.#scan(data, true, false);
  }

  /**
   * `push`, except that a chunk lying wholly inside `data` is a view of it rather than a copy:
   * for a caller that keeps `data` unchanged for as long as it uses those chunks. A chunk that
   * began in an earlier push is still a fresh buffer.
   */
  pushViews(data: Uint8Array): Uint8Array[] {
    return this.#scan(data, false, false);
  }

  /** Returns the last chunk (shorter than `min` possibly), if any bytes are left, and resets. */
  finish(): Uint8Array[] {
    const staged = this.#staged;
    const length = this.#stagedLength;
    this.#stagedLength = 0;
    this.#hash = 0;
    if (!staged || length === 0) return [];
    // A small file pushed in one piece is staged in a buffer of its exact size: hand that
    // buffer over rather than copy it.
    if (staged.length !== length) return [staged.slice(0, length)];
    this.#staged = undefined;
    return [staged];
  }

  /**
   * Scans `data` as the continuation of the current chunk. `copy` false returns views into
   * `data` for chunks that lie wholly inside it; `last` ends the stream with `data`.
   * Chunk positions are kept in `data` coordinates: `base` is where the current chunk starts,
   * negative while its first bytes are the staged ones.
   */
  #scan(data: Uint8Array, copy: boolean, last: boolean): Uint8Array[] {
    const chunks: Uint8Array[] = [];
    const { min, avg, max } = this.params;
    const gear = this.#gear;
    const maskS = this.#maskS;
    const maskL = this.#maskL;
    const length = data.length;
    let h = this.#hash;
    let base = -this.#stagedLength;
    let i = 0;
    const shift = (4 - (data.byteOffset & 3)) & 3;
    const wordCount = LITTLE_ENDIAN ? (length - shift) >> 2 : 0;
    const words = wordCount > 0 ? new Uint32Array(data.buffer, data.byteOffset + shift, wordCount) : NO_WORDS;
    for (;;) {
      // Cut-point skipping: no cut comes before `min`, and only the WINDOW bytes before a
      // position decide a cut there, so the bytes before `min - WINDOW` are never hashed.
      // Hashing from there on (rather than from `min`, as the paper does) makes the hash at
      // every tested position a function of a full window.
      const warm = base + min - WINDOW;
      if (i < warm) i = warm;
      if (i >= length) break;
      let end = Math.min(length, base + min - 1);
      for (; i < end; i++) h = ((h << 1) + (gear[data[i] as number] as number)) | 0;
      if (i >= length) break;

      // Below the average size the stricter mask, then the looser one, then a forced cut.
      let cut = -1;
      end = Math.min(length, base + avg - 1);
      if (i < end) {
        cut = findCut(data, words, shift, gear, maskS, i, end, h);
        h = scanState[0] as number;
        i = end;
      }
      if (cut < 0) {
        end = Math.min(length, base + max);
        if (i < end) {
          cut = findCut(data, words, shift, gear, maskL, i, end, h);
          h = scanState[0] as number;
          i = end;
        }
        if (cut < 0) {
          if (i < base + max) break;
          cut = i;
        }
      }
      chunks.push(this.#take(data, base, cut, copy));
      base = cut;
      i = cut;
      h = 0;
    }

    const from = Math.max(base, 0);
    if (last) {
      if (from < length) chunks.push(this.#take(data, base, length, copy));
      this.#hash = 0;
    } else {
      if (from < length) this.#stage(data.subarray(from, length));
      this.#hash = h;
    }
    return chunks;
  }

  #stage(bytes: Uint8Array): void {
    const length = this.#stagedLength;
    const needed = length + bytes.length;
    let staged = this.#staged;
    if (!staged || staged.length < needed) {
      // Doubling keeps the copies linear; `needed` never exceeds `max`, which cuts first.
      const grown = new Uint8Array(Math.min(this.params.max, Math.max(needed, 2 * (staged?.length ?? 0))));
      if (staged) grown.set(staged.subarray(0, length));
      this.#staged = staged = grown;
    }
    staged.set(bytes, length);
    this.#stagedLength = needed;
  }

  // The chunk [base, end) of `data`, with the staged bytes in front when base < 0.
  #take(data: Uint8Array, base: number, end: number, copy: boolean): Uint8Array {
    if (base >= 0) return copy ? data.slice(base, end) : data.subarray(base, end);
    const staged = this.#stagedLength;
    const chunk = new Uint8Array(staged + end);
    chunk.set((this.#staged as Uint8Array).subarray(0, staged));
    chunk.set(data.subarray(0, end), staged);
    this.#stagedLength = 0;
    return chunk;
  }

  static {
    scanWhole = (chunker, data) => chunker.#scan(data, false, true);
  }
}

/**
 * Cuts a whole buffer into chunks. The chunks are views into `data` (no copy): they stay
 * valid as long as `data` is not modified. Empty input gives no chunks.
 */
export function chunkBuffer(
  data: Uint8Array,
  params: ChunkerParams = DEFAULT_CHUNKER,
  gear: Uint32Array = DEFAULT_GEAR,
): Uint8Array[] {
  return scanWhole(new Chunker(params, gear), data);
}

/** Cuts an async stream of buffers into chunks, each a fresh buffer (see Chunker). */
export async function* chunkStream(
  source: AsyncIterable<Uint8Array>,
  params: ChunkerParams = DEFAULT_CHUNKER,
  gear: Uint32Array = DEFAULT_GEAR,
): AsyncGenerator<Uint8Array> {
  const chunker = new Chunker(params, gear);
  for await (const data of source) yield* chunker.push(data);
  yield* chunker.finish();
}
