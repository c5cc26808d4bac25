// Indexes (FORMAT.md, "Indexes"): after a snapshot's packs are written, one sealed object lists
// where each of its chunks lives. The union of all indexes is the store's ChunkIndex.

import * as z from 'zod';
import { CorruptionError, type Where } from './errors.js';
import type { StoreKeys } from './keys.js';
import { HexIdSchema, type IndexBlob, parseSealedJson, sealedJson, sha256Hex } from './pack.js';
import { open, seal } from './seal.js';

export const INDEX_PREFIX = 'snapshots/index/';
/**
 * The AAD names the role only. The object's name is the SHA-256 of its sealed bytes, checked on
 * every read, and that binds name and content; putting the name in the AAD as well is impossible
 * (the name depends on the sealed bytes, which depend on the AAD).
 */
const INDEX_AAD = 'index:';

export interface IndexPack {
  readonly id: string;
  /** The pack's length in bytes. */
  readonly size: number;
  readonly blobs: IndexBlob[];
}

export interface DecodedIndex {
  readonly packs: IndexPack[];
}

export interface EncodedIndex {
  /** `snapshots/index/<sha256 of bytes>` */
  readonly key: string;
  readonly bytes: Uint8Array;
}

export function encodeIndex(
  keys: StoreKeys,
  packs: readonly { readonly id: string; readonly size: number; readonly blobs: readonly IndexBlob[] }[],
): EncodedIndex {
  // Fields are copied one by one so that whatever else the caller's objects carry stays out.
  const document: DecodedIndex = {
    packs: packs.map((pack) => ({
      id: pack.id,
      size: pack.size,
      blobs: pack.blobs.map((blob) => ({
        id: blob.id,
        offset: blob.offset,
        length: blob.length,
        rawLength: blob.rawLength,
        compressed: blob.compressed,
      })),
    })),
  };
  const bytes = seal(keys.sealKey, sealedJson(document), INDEX_AAD);
  return { key: `${INDEX_PREFIX}${sha256Hex(bytes)}`, bytes };
}

/** Verifies the bytes against their name, then opens and parses them. */
export function decodeIndex(keys: StoreKeys, bytes: Uint8Array, key: string): DecodedIndex {
  const where: Where = { objectKey: key };
  const name = key.startsWith(INDEX_PREFIX) ? key.slice(INDEX_PREFIX.length) : '';
  if (!/^[0-9a-f]{64}$/.test(name))
    throw new CorruptionError(where, `not an index name (expected ${INDEX_PREFIX}<64 hex digits>)`);
  const actual = sha256Hex(bytes);
  if (actual !== name) throw new CorruptionError(where, `SHA-256 of the index is ${actual}, not its name`);
  const plaintext = open(keys.sealKey, bytes, INDEX_AAD, where);
  return parseSealedJson(plaintext, IndexSchema, where, 'index');
}

/** Where a chunk is stored: enough to fetch its blob with one ranged read. */
export interface ChunkLocation {
  readonly packId: string;
  readonly offset: number;
  readonly length: number;
  readonly rawLength: number;
}

/** chunk id → location, the union of the indexes read so far. */
export class ChunkIndex {
  private readonly locations = new Map<string, ChunkLocation>();

  get size(): number {
    return this.locations.size;
  }

  /**
   * Records a chunk's location. A chunk already known keeps its first location: two writers at once
   * may both store it, and either copy is as good.
   */
  add(id: string, location: ChunkLocation): void {
    if (!this.locations.has(id)) this.locations.set(id, location);
  }

  has(id: string): boolean {
    return this.locations.has(id);
  }

  get(id: string): ChunkLocation | undefined {
    return this.locations.get(id);
  }

  entries(): IterableIterator<[string, ChunkLocation]> {
    return this.locations.entries();
  }

  merge(index: DecodedIndex): void {
    for (const pack of index.packs)
      for (const blob of pack.blobs)
        this.add(blob.id, {
          packId: pack.id,
          offset: blob.offset,
          length: blob.length,
          rawLength: blob.rawLength,
        });
  }
}

const nonNegativeInteger = z.number().int().nonnegative();

const IndexSchema = z.object({
  packs: z.array(
    z.object({
      id: HexIdSchema,
      size: nonNegativeInteger,
      blobs: z.array(
        z.object({
          id: HexIdSchema,
          offset: nonNegativeInteger,
          length: nonNegativeInteger,
          rawLength: nonNegativeInteger,
          compressed: z.boolean(),
        }),
      ),
    }),
  ),
});
