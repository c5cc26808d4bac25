// Blobs and packs (FORMAT.md, "Blobs and packs"): a chunk becomes a sealed blob (flag ‖ payload),
// blobs are grouped into packs of about 16 MiB, each closed by its sealed header.

import { createHash } from 'node:crypto';
import {
  constants,
  createZstdCompress,
  createZstdDecompress,
  type ZstdCompress,
  type ZstdDecompress,
  zstdCompressSync,
  zstdDecompressSync,
} from 'node:zlib';
import * as z from 'zod';
import { CorruptionError, type Where } from './errors.js';
import { chunkId, type StoreKeys } from './keys.js';
import { open, SEAL_OVERHEAD, seal, sealPieces } from './seal.js';

/** A pack is closed once its blobs reach this size (the last blob may carry it past). */
export const PACK_TARGET_SIZE = 16 * 1024 * 1024;
export const ZSTD_LEVEL = 3;

const FLAG_STORED = 0;
const FLAG_ZSTD = 1;
const TRAILER_LENGTH = 4;
/** The smallest sealed blob: the flag byte of an empty chunk, sealed. */
const MIN_BLOB_LENGTH = SEAL_OVERHEAD + 1;
const HEX_ID = /^[0-9a-f]{64}$/;

/** Where a blob sits in its pack, as the pack header records it. */
export interface IndexBlob {
  readonly id: string;
  /** Offset of the sealed blob from the start of the pack. */
  readonly offset: number;
  /** Length of the sealed blob. */
  readonly length: number;
  /** Length of the chunk before compression. */
  readonly rawLength: number;
  readonly compressed: boolean;
}

export interface EncodedBlob {
  /** The sealed blob in pieces, laid end to end (a pack copies them into its buffer). */
  readonly pieces: readonly Uint8Array[];
  /** Bytes of the sealed blob. */
  readonly length: number;
  /** The sealed blob as one buffer (joined when asked for). */
  readonly sealed: Uint8Array;
  readonly rawLength: number;
  readonly compressed: boolean;
}

class SealedBlob implements EncodedBlob {
  readonly length: number;

  constructor(
    readonly pieces: readonly Uint8Array[],
    readonly rawLength: number,
    readonly compressed: boolean,
  ) {
    this.length = pieces.reduce((n, p) => n + p.length, 0);
  }

  get sealed(): Uint8Array {
    return this.pieces.length === 1 ? (this.pieces[0] as Uint8Array) : Buffer.concat(this.pieces);
  }
}

export interface FinishedPack {
  /** SHA-256 of `bytes`, 64 hex digits. */
  readonly id: string;
  /** `snapshots/packs/<id[0..2]>/<id>` */
  readonly key: string;
  readonly bytes: Uint8Array;
  readonly blobs: IndexBlob[];
}

export function packKey(id: string): string {
  if (!HEX_ID.test(id))
    throw new RangeError(`a pack id is 64 lowercase hex digits, not ${JSON.stringify(id)}`);
  return `snapshots/packs/${id.slice(0, 2)}/${id}`;
}

/**
 * Seals one chunk as a blob. `id` must be `chunkId(keys.idKey, chunk)`: it is not recomputed here
 * (the caller has just computed it to deduplicate), and every read checks it.
 */
export function encodeBlob(keys: StoreKeys, chunk: Uint8Array, id: string): EncodedBlob {
  checkChunkId(id);
  const packed = zstdCompressSync(chunk, { params: { [constants.ZSTD_c_compressionLevel]: ZSTD_LEVEL } });
  // Compression that saves less than 1/16 costs decompression time on every restore for little
  // space: already-compressed data (archives, images, packages) is stored as is.
  // An empty chunk never qualifies: nothing is saved on nothing.
  const compressed = chunk.length > 0 && 16 * (chunk.length - packed.length) >= chunk.length;
  const payload = compressed ? packed : chunk;
  const plaintext = new Uint8Array(1 + payload.length);
  plaintext[0] = compressed ? FLAG_ZSTD : FLAG_STORED;
  plaintext.set(payload, 1);
  return new SealedBlob([seal(keys.sealKey, plaintext, blobAad(id))], chunk.length, compressed);
}

const ZSTD_OPTIONS = { params: { [constants.ZSTD_c_compressionLevel]: ZSTD_LEVEL } };

/**
 * zstd on libuv's thread pool with its compression contexts kept: each chunk is one whole
 * frame (ended with ZSTD_e_end, so it decompresses on its own, as FORMAT.md says), but the
 * context is not made anew for it. A fresh context per call costs more than compressing a
 * small file does; most files of a host are small.
 *
 * The streams are made with ZSTD_e_end as their flush flag, so that one write is one whole
 * frame: zstd then sees the chunk's size before it starts (a write followed by a flush gave
 * it the data with ZSTD_e_continue, of unknown size, so every frame of a 30 KiB file reset
 * the tables sized for a large input), the frame header records the content size, and each
 * chunk costs one trip to the thread pool instead of two. About a fifth less CPU time for
 * zstd on a root filesystem, and slightly smaller output.
 */
type ZstdStream = ZstdCompress | ZstdDecompress;

class ZstdStreams {
  private readonly idle: ZstdStream[] = [];
  private readonly waiting: ((s: ZstdStream) => void)[] = [];
  private made = 0;

  constructor(
    private readonly size: number,
    private readonly make: () => ZstdStream,
  ) {}

  /** One whole frame through a kept stream: compressed, or decompressed. */
  async run(chunk: Uint8Array, expectedLength?: number): Promise<Buffer> {
    const out = await this.pieces(chunk, expectedLength);
    return out.length === 1 ? (out[0] as Buffer) : Buffer.concat(out);
  }

  /** `run` with the output as the stream gave it, in pieces of at most its chunk size. */
  async pieces(chunk: Uint8Array, expectedLength?: number): Promise<Buffer[]> {
    const stream = await this.take();
    const out: Buffer[] = [];
    const onData = (d: Buffer) => out.push(d);
    let failed: unknown;
    const onError = (e: unknown) => {
      failed ??= e;
    };
    stream.on('data', onData);
    stream.on('error', onError);
    try {
      await new Promise<void>((resolve, reject) => {
        stream.once('error', reject);
        stream.write(chunk, (e) => ((e ?? failed) === undefined ? resolve() : reject(e ?? failed)));
      });
      // A frame that did not end (its output short) would leave the stream inside it: the
      // next frame written would be read as its continuation.
      const length = out.reduce((n, b) => n + b.length, 0);
      if (expectedLength !== undefined && length !== expectedLength)
        throw new Error(`the frame decompressed to ${length} bytes, not ${expectedLength}`);
    } catch (e) {
      // A stream that failed is not given out again.
      stream.off('data', onData);
      stream.off('error', onError);
      stream.destroy();
      this.made--;
      this.wake();
      throw e;
    }
    stream.off('data', onData);
    stream.off('error', onError);
    stream.removeAllListeners('error');
    this.give(stream);
    return out;
  }

  private take(): Promise<ZstdStream> {
    const free = this.idle.pop();
    if (free) return Promise.resolve(free);
    if (this.made < this.size) {
      this.made++;
      return Promise.resolve(this.make());
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private give(stream: ZstdStream): void {
    const next = this.waiting.shift();
    if (next) next(stream);
    else this.idle.push(stream);
  }

  private wake(): void {
    const next = this.waiting.shift();
    if (next) {
      this.made++;
      next(this.make());
    }
  }
}

// libuv's pool has four threads by default; one stays free for file reads and crypto.
const zstdStreams = new ZstdStreams(3, () =>
  createZstdCompress({ ...ZSTD_OPTIONS, chunkSize: 1024 * 1024, flush: constants.ZSTD_e_end }),
);
// Decompression contexts kept too: one made per blob is freed only when the collector finds
// its handle, and the collector does not see that native memory, so a restore of many small
// blobs held hundreds of MiB of them.
const unzstdStreams = new ZstdStreams(3, () =>
  createZstdDecompress({ chunkSize: 1024 * 1024, flush: constants.ZSTD_e_end }),
);

/** `encodeBlob` with compression and sealing on libuv's thread pool: the same blob format. */
export async function encodeBlobAsync(keys: StoreKeys, chunk: Uint8Array, id: string): Promise<EncodedBlob> {
  checkChunkId(id);
  const packed = chunk.length > 0 ? await zstdStreams.run(chunk) : chunk;
  const compressed = chunk.length > 0 && 16 * (chunk.length - packed.length) >= chunk.length;
  const payload = compressed ? packed : chunk;
  // Sealed here, in pieces the pack copies: AES-GCM costs little beside zstd, and every copy
  // of a chunk made and dropped is memory the process holds until the collector runs.
  return new SealedBlob(
    sealPieces(keys.sealKey, [Uint8Array.of(compressed ? FLAG_ZSTD : FLAG_STORED), payload], blobAad(id)),
    chunk.length,
    compressed,
  );
}

/**
 * `decodeBlob` with decompression on libuv's thread pool. Opening and the id's HMAC stay here:
 * they are fast, and Web Crypto would copy every blob in and out to do them elsewhere.
 */
export async function decodeBlobAsync(
  keys: StoreKeys,
  sealed: Uint8Array,
  id: string,
  objectKey: string,
  rawLength?: number,
): Promise<Uint8Array> {
  const where: Where = { objectKey, chunkId: id };
  const plaintext = open(keys.sealKey, sealed, blobAad(id), where);
  if (plaintext.length === 0) throw new CorruptionError(where, 'blob has no flag byte');
  const flag = plaintext[0];
  const payload = plaintext.subarray(1);
  let chunk: Uint8Array;
  if (flag === FLAG_STORED) chunk = payload;
  else if (flag === FLAG_ZSTD) {
    try {
      chunk = await unzstdStreams.run(payload, rawLength);
    } catch (error) {
      throw new CorruptionError(where, 'compressed payload does not decompress', { cause: error });
    }
  } else throw new CorruptionError(where, `unknown blob flag ${flag}`);
  if (chunkId(keys.idKey, chunk) !== id) throw new CorruptionError(where, 'content does not match its id');
  return chunk;
}

/**
 * The chunk a blob holds, verified three ways: the GCM tag (with the chunk id in the AAD), the
 * flag and decompression, and the chunk's HMAC id recomputed from the result.
 */
export function decodeBlob(keys: StoreKeys, sealed: Uint8Array, id: string, objectKey: string): Uint8Array {
  const where: Where = { objectKey, chunkId: id };
  const plaintext = open(keys.sealKey, sealed, blobAad(id), where);
  if (plaintext.length === 0) throw new CorruptionError(where, 'blob has no flag byte');
  const flag = plaintext[0];
  const payload = plaintext.subarray(1);
  let chunk: Uint8Array;
  if (flag === FLAG_STORED) chunk = payload;
  else if (flag === FLAG_ZSTD) {
    try {
      chunk = zstdDecompressSync(payload);
    } catch (error) {
      throw new CorruptionError(where, 'compressed payload does not decompress', { cause: error });
    }
  } else throw new CorruptionError(where, `unknown blob flag ${flag}`);
  if (chunkId(keys.idKey, chunk) !== id) throw new CorruptionError(where, 'content does not match its id');
  return chunk;
}

/**
 * Builds one pack: `blob₁ ‖ … ‖ blobₙ ‖ sealed header ‖ header length (uint32 LE)`. Blobs are
 * sealed before they are added, so memory holds compressed bytes, not chunks. Given a buffer,
 * the pack is laid out in it as blobs come (no copy at the end, and the caller can reuse the
 * buffer once the pack is uploaded); `fits` then says whether a blob still has room. One writer
 * makes one pack; start a new one after `finish`.
 */
export class PackWriter {
  private readonly parts: Uint8Array[] = [];
  private readonly entries: IndexBlob[] = [];
  private readonly ids = new Set<string>();
  // One pass of SHA-256 over the pack: the data part's digest is taken from a copy of the
  // running hash before the header goes in, the pack id from the hash at the end.
  private readonly packHash = createHash('sha256');
  private offset = 0;
  private finished = false;

  constructor(
    private readonly keys: StoreKeys,
    private readonly buffer?: Uint8Array,
  ) {}

  /** Bytes of the blobs added so far (without the header); compare with PACK_TARGET_SIZE. */
  get size(): number {
    return this.offset;
  }

  get count(): number {
    return this.entries.length;
  }

  /** Whether this pack already holds the chunk: identical chunks within one snapshot are stored once. */
  has(id: string): boolean {
    return this.ids.has(id);
  }

  /**
   * Whether a sealed blob of `length` bytes still fits in the writer's buffer. Without a buffer
   * (or for the first blob, which may be larger than any buffer) it always does.
   */
  fits(length: number): boolean {
    return (
      this.buffer === undefined || this.entries.length === 0 || this.offset + length <= this.buffer.length
    );
  }

  /** Adds a chunk under its id; a second chunk with an id already in the pack is not stored again. */
  add(id: string, chunk: Uint8Array): void {
    if (this.ids.has(id)) return;
    this.addEncoded(id, encodeBlob(this.keys, chunk, id));
  }

  /** Adds a blob `encodeBlob` (or `encodeBlobAsync`) made of the chunk `id`. */
  addEncoded(id: string, blob: EncodedBlob): void {
    if (this.finished) throw new Error('this pack is finished; start a new PackWriter');
    if (this.ids.has(id)) return;
    const length = blob.length;
    if (this.buffer !== undefined && this.parts.length === 0 && this.offset + length <= this.buffer.length) {
      let at = this.offset;
      for (const piece of blob.pieces) {
        this.buffer.set(piece, at);
        this.packHash.update(piece);
        at += piece.length;
      }
    } else {
      // Past the buffer (a first blob larger than it): the pack goes on as parts.
      if (this.buffer !== undefined && this.parts.length === 0 && this.offset > 0)
        this.parts.push(this.buffer.subarray(0, this.offset));
      for (const piece of blob.pieces) {
        this.parts.push(piece);
        this.packHash.update(piece);
      }
    }
    this.entries.push({
      id,
      offset: this.offset,
      length,
      rawLength: blob.rawLength,
      compressed: blob.compressed,
    });
    this.ids.add(id);
    this.offset += length;
  }

  finish(): FinishedPack {
    if (this.finished) throw new Error('this pack is finished; start a new PackWriter');
    if (this.entries.length === 0) throw new Error('a pack holds at least one blob');
    this.finished = true;
    const dataSha256 = this.packHash.copy().digest('hex');
    const header = seal(this.keys.sealKey, sealedJson(this.entries), headerAad(dataSha256));
    const trailer = Buffer.alloc(TRAILER_LENGTH);
    trailer.writeUInt32LE(header.length);
    this.packHash.update(header).update(trailer);
    const id = this.packHash.digest('hex');
    const end = this.offset + header.length + TRAILER_LENGTH;
    let bytes: Uint8Array;
    if (this.buffer !== undefined && this.parts.length === 0 && end <= this.buffer.length) {
      this.buffer.set(header, this.offset);
      this.buffer.set(trailer, this.offset + header.length);
      bytes = this.buffer.subarray(0, end);
    } else {
      const parts =
        this.parts.length > 0 ? this.parts : [this.buffer?.subarray(0, this.offset) ?? new Uint8Array()];
      bytes = Buffer.concat([...parts, header, trailer]);
    }
    this.parts.length = 0;
    return { id, key: packKey(id), bytes, blobs: this.entries };
  }
}

/**
 * The blob list of a pack. The header's AAD carries the SHA-256 of the data part, so a header that
 * opens also proves every blob byte intact; a damaged blob makes the header unreadable, and the
 * other blobs stay readable through the index.
 */
export function readPackHeader(keys: StoreKeys, packBytes: Uint8Array, objectKey: string): IndexBlob[] {
  const where: Where = { objectKey };
  const total = packBytes.length;
  if (total < TRAILER_LENGTH + SEAL_OVERHEAD)
    throw new CorruptionError(where, `pack is ${total} bytes, too short to hold a header`);
  const headerLength = Buffer.from(packBytes.buffer, packBytes.byteOffset, total).readUInt32LE(
    total - TRAILER_LENGTH,
  );
  if (headerLength < SEAL_OVERHEAD || headerLength > total - TRAILER_LENGTH)
    throw new CorruptionError(
      where,
      `header length ${headerLength} does not fit in a pack of ${total} bytes`,
    );
  const dataEnd = total - TRAILER_LENGTH - headerLength;
  const plaintext = open(
    keys.sealKey,
    packBytes.subarray(dataEnd, total - TRAILER_LENGTH),
    headerAad(sha256Hex(packBytes.subarray(0, dataEnd))),
    where,
  );
  const blobs = parseSealedJson(plaintext, HeaderSchema, where, 'header');
  for (const blob of blobs) {
    if (blob.offset + blob.length > dataEnd)
      throw new CorruptionError(
        { objectKey, chunkId: blob.id },
        `header places the blob at ${blob.offset}+${blob.length}, past the data part's ${dataEnd} bytes`,
      );
  }
  return blobs;
}

/** A pack's name is the SHA-256 of its bytes: this check needs no key (`persona check`). */
export function verifyPackId(bytes: Uint8Array, id: string, objectKey: string): void {
  const actual = sha256Hex(bytes);
  if (actual !== id)
    throw new CorruptionError({ objectKey }, `SHA-256 of the pack is ${actual}, not its id ${id}`);
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * Parses authenticated JSON. A parse failure after authentication means the writer was wrong (or
 * another format version wrote it): reported as corruption, since the object cannot be used.
 */
/**
 * The plaintext of a header, an index or a manifest: zstd-compressed JSON. Chunk ids are most
 * of it and do not compress, but the field names and offsets around them do (about 3:1).
 */
export function sealedJson(value: unknown): Uint8Array {
  return zstdCompressSync(Buffer.from(JSON.stringify(value), 'utf8'), {
    params: { [constants.ZSTD_c_compressionLevel]: ZSTD_LEVEL },
  });
}

export function parseSealedJson<T>(
  plaintext: Uint8Array,
  schema: z.ZodType<T>,
  where: Where,
  what: string,
): T {
  let json: unknown;
  try {
    json = JSON.parse(zstdDecompressSync(plaintext).toString('utf8'));
  } catch (error) {
    throw new CorruptionError(where, `${what} is not compressed JSON`, { cause: error });
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success)
    throw new CorruptionError(
      where,
      `${what} does not have the expected shape: ${z.prettifyError(parsed.error)}`,
    );
  return parsed.data;
}

const nonNegativeInteger = z.number().int().nonnegative();
export const HexIdSchema = z.string().regex(HEX_ID);

const HeaderSchema = z.array(
  z.object({
    id: HexIdSchema,
    offset: nonNegativeInteger,
    length: nonNegativeInteger.min(MIN_BLOB_LENGTH),
    rawLength: nonNegativeInteger,
    compressed: z.boolean(),
  }),
);

function checkChunkId(id: string): void {
  if (!HEX_ID.test(id))
    throw new RangeError(`a chunk id is 64 lowercase hex digits, not ${JSON.stringify(id)}`);
}

const blobAad = (id: string) => `blob:${id}`;
const headerAad = (dataSha256: string) => `pack:${dataSha256}`;
