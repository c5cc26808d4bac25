// How a manifest is kept in the bucket (FORMAT.md "Manifests"). Format 1 sealed the whole
// manifest as one object, so every version paid for its whole listing again, though most of a
// host's tree is the same from one snapshot to the next. Format 2 cuts the entry listing into
// content-defined chunks, each an object named by its chunk id: a stretch of the listing that
// did not change is an object the bucket already holds. The manifest object keeps the few
// fields around the entries and the ordered chunk ids. Listing chunks are kept apart from packs
// and indexes, so that a manifest still reads when a pack or an index is damaged or lost, and a
// restore can still say which files that cost.
import { zstdDecompressSync } from 'node:zlib';
import * as z from 'zod';
import { ConflictError, NotFoundError } from '../errors.js';
import { type ChunkerParams, chunkBuffer } from './chunker.js';
import { CorruptionError } from './errors.js';
import { chunkId, type StoreKeys } from './keys.js';
import type { ListingCache } from './listing-cache.js';
import { checkManifest, type Manifest, ManifestEntry } from './manifest.js';
import type { ObjectStore } from './object-store.js';
import { decodeBlob, encodeBlob, HexIdSchema, sealedJson, sha256Hex } from './pack.js';
import { open, seal } from './seal.js';

export const MANIFEST_PREFIX = 'snapshots/manifests/';
export const LISTING_PREFIX = 'snapshots/listings/';

/** The object a listing chunk is kept in. */
export const listingKey = (id: string): string => `${LISTING_PREFIX}${id}`;

/**
 * Chunk sizes of the entry listing: smaller than file content's, since one changed entry makes
 * its whole chunk new, and a listing changes in many scattered places (a package adds files in
 * several directories). Fixed by the format, not by the store's config.
 */
export const LISTING_CHUNKER: ChunkerParams = { min: 4 * 1024, avg: 16 * 1024, max: 64 * 1024 };

/** How many listing chunks one manifest read or write moves at once. */
const IN_FLIGHT = 8;

const ManifestObject = z.object({
  format: z.literal(2),
  host: z.string(),
  createdAt: z.iso.datetime(),
  root: z.string(),
  entries: z.object({
    count: z.number().int().nonnegative(),
    bytes: z.number().int().nonnegative(),
    chunks: z.array(HexIdSchema),
  }),
});
type ManifestObject = z.infer<typeof ManifestObject>;

/** The manifest's entry listing cut into chunks, and the object that names them. */
export interface Listing {
  readonly object: ManifestObject;
  readonly chunks: readonly { readonly id: string; readonly bytes: Uint8Array }[];
}

// Each entry's fields in one order, whatever order its source set them in: an entry that did not
// change is then the same line, and its chunk the same chunk.
const FIELDS = Object.keys(ManifestEntry.shape) as (keyof ManifestEntry)[];

const line = (e: ManifestEntry): string => {
  const out: Record<string, unknown> = {};
  for (const k of FIELDS) if (e[k] !== undefined) out[k] = e[k];
  return `${JSON.stringify(out)}\n`;
};

/** The listing of a checked manifest: one JSON line per entry, in path order, chunked. */
export function listingOf(keys: StoreKeys, gear: Uint32Array, manifest: Manifest): Listing {
  const text = Buffer.from(manifest.entries.map(line).join(''), 'utf8');
  const chunks = chunkBuffer(text, LISTING_CHUNKER, gear).map((bytes) => ({
    id: chunkId(keys.idKey, bytes),
    bytes,
  }));
  return {
    object: {
      format: 2,
      host: manifest.host,
      createdAt: manifest.createdAt,
      root: manifest.root,
      entries: { count: manifest.entries.length, bytes: text.length, chunks: chunks.map((c) => c.id) },
    },
    chunks,
  };
}

/** Runs `work` over `items`, a few at once. */
async function eachAtOnce<T>(
  items: readonly T[],
  work: (item: T, at: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const at = next++;
      await work(items[at] as T, at);
    }
  };
  await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, items.length) }, worker));
}

/** The listing chunks the bucket holds: chunk id → bytes of its object. */
export async function listingsInBucket(objects: ObjectStore): Promise<Map<string, number>> {
  const held = new Map<string, number>();
  for await (const o of objects.list(LISTING_PREFIX)) held.set(o.key.slice(LISTING_PREFIX.length), o.size);
  return held;
}

/**
 * Uploads the chunks of a listing the bucket does not hold yet, each sealed as a blob is
 * (FORMAT.md), and returns the bytes uploaded. `known`: chunks the bucket holds for certain (the
 * last version's listing), not looked up; each other chunk is looked up by its own name, so that
 * a snapshot costs requests for what changed, never a listing of every host's chunks.
 */
export async function storeListing(
  objects: ObjectStore,
  keys: StoreKeys,
  listing: Listing,
  known: ReadonlySet<string> = new Set(),
  cache?: ListingCache,
): Promise<number> {
  const fresh = new Map<string, Uint8Array>();
  for (const c of listing.chunks) if (!known.has(c.id)) fresh.set(c.id, c.bytes);
  let stored = 0;
  await eachAtOnce([...fresh], async ([id, bytes]) => {
    const sealed = encodeBlob(keys, bytes, id).sealed;
    // Another host's listing, or a version since forgotten, may hold the same chunk: written
    // only if absent (412 when it is there), one request where a look first took two.
    try {
      await objects.put(listingKey(id), sealed, { ifAbsent: true });
      stored += sealed.length;
    } catch (e) {
      if (!(e instanceof ConflictError)) throw e;
      // Refused as present (412), or while another writer's PUT of it was under way (409),
      // which may yet fail: a manifest must never name a chunk the bucket does not hold.
      if ((await objects.head(listingKey(id))) === undefined) {
        await objects.put(listingKey(id), sealed);
        stored += sealed.length;
      }
    }
    // The next version reads this listing: from here, not the bucket.
    cache?.put(id, sealed);
  });
  return stored;
}

/** The sealed manifest object, named by the SHA-256 of its bytes. */
export function sealManifestObject(
  keys: StoreKeys,
  object: ManifestObject,
): { key: string; bytes: Uint8Array } {
  const bytes = seal(keys.sealKey, sealedJson(object), 'manifest:');
  return { key: `${MANIFEST_PREFIX}${sha256Hex(bytes)}`, bytes };
}

/** A manifest object as read: format 1 holds the manifest itself, format 2 names its listing's chunks. */
type Opened =
  | { readonly format: 1; readonly value: unknown }
  | { readonly format: 2; readonly object: ManifestObject };

/** Opens the manifest object `key` of snapshot `who` (`host#version`), checked against its name. */
function openObject(keys: StoreKeys, sealed: Uint8Array, key: string, who: string): Opened {
  if (`${MANIFEST_PREFIX}${sha256Hex(sealed)}` !== key) {
    throw new CorruptionError(
      { objectKey: key },
      `the manifest of snapshot ${who} does not match its name (the bytes were altered)`,
    );
  }
  const plain = open(keys.sealKey, sealed, 'manifest:', { objectKey: key });
  let value: unknown;
  try {
    value = JSON.parse(zstdDecompressSync(plain).toString('utf8'));
  } catch (cause) {
    throw new CorruptionError({ objectKey: key }, `the manifest of snapshot ${who} does not decode`, {
      cause,
    });
  }
  const format = (value as { format?: unknown } | null)?.format;
  if (format !== 2) return { format: 1, value };
  const parsed = ManifestObject.safeParse(value);
  if (!parsed.success)
    throw new CorruptionError(
      { objectKey: key },
      `the manifest of snapshot ${who} does not have the expected shape: ${z.prettifyError(parsed.error)}`,
    );
  return { format: 2, object: parsed.data };
}

/** The chunk ids a manifest object names (none for format 1), without reading the chunks. */
export function listingChunks(keys: StoreKeys, sealed: Uint8Array, key: string, who: string): string[] {
  const opened = openObject(keys, sealed, key, who);
  return opened.format === 2 ? [...opened.object.entries.chunks] : [];
}

/** A listing chunk from this machine's cache, verified; undefined (and dropped) if it fails. */
function cached(keys: StoreKeys, cache: ListingCache | undefined, id: string, where: string) {
  const sealed = cache?.get(id);
  if (sealed === undefined) return undefined;
  try {
    return decodeBlob(keys, sealed, id, where);
  } catch {
    cache?.drop(id);
    return undefined;
  }
}

/** A listing chunk from the bucket, verified, then kept in the cache. */
async function fetched(
  keys: StoreKeys,
  objects: ObjectStore,
  cache: ListingCache | undefined,
  id: string,
  where: string,
): Promise<Uint8Array> {
  const sealed = await objects.get(where);
  const bytes = decodeBlob(keys, sealed, id, where);
  cache?.put(id, sealed);
  return bytes;
}

/**
 * The manifest of snapshot `who` from its sealed object, the listing's chunks read from the
 * bucket (each verified as a blob is: tag, flag, id), then held to the manifest's rules. A chunk that
 * is missing or fails verification, or a listing that does not decode, refuses the manifest with
 * an error naming the snapshot, the manifest and the chunk.
 */
export async function readManifestObject(
  keys: StoreKeys,
  sealed: Uint8Array,
  key: string,
  who: string,
  objects: ObjectStore,
  cache?: ListingCache,
): Promise<{ manifest: Manifest; parts: string[] }> {
  const opened = openObject(keys, sealed, key, who);
  const context = `snapshot ${who}: `;
  if (opened.format === 1) return { manifest: checkManifest(opened.value, key, context), parts: [] };
  const { entries, ...rest } = opened.object;
  const ids = entries.chunks;
  const pieces: Uint8Array[] = new Array(ids.length);
  let total = 0;
  await eachAtOnce(ids, async (id, at) => {
    const where = listingKey(id);
    try {
      const bytes = cached(keys, cache, id, where) ?? (await fetched(keys, objects, cache, id, where));
      total += bytes.length;
      // A listing longer than its object says is refused before more of it is read.
      if (total > entries.bytes)
        throw new CorruptionError(
          { objectKey: where, chunkId: id },
          'the listing is longer than its manifest says',
        );
      pieces[at] = bytes;
    } catch (e) {
      if (!(e instanceof CorruptionError) && !(e instanceof NotFoundError)) throw e;
      throw new CorruptionError(
        { objectKey: key, chunkId: id },
        `snapshot ${who}: listing chunk ${at} of ${ids.length} of the manifest cannot be read: ${e instanceof CorruptionError ? `${e.objectKey}: ${e.reason}` : e.message}`,
        { cause: e },
      );
    }
  });
  if (total !== entries.bytes)
    throw new CorruptionError(
      { objectKey: key },
      `snapshot ${who}: the manifest's listing holds ${total} bytes, its manifest says ${entries.bytes}`,
    );
  const lines = Buffer.concat(pieces, total).toString('utf8').split('\n');
  // Every line ends with a newline: the last piece of the split is empty.
  if (lines.pop() !== '' || lines.length !== entries.count)
    throw new CorruptionError(
      { objectKey: key },
      `snapshot ${who}: the manifest's listing does not hold the ${entries.count} entries its manifest says`,
    );
  const parsed: unknown[] = new Array(lines.length);
  for (let i = 0; i < lines.length; i++) {
    try {
      parsed[i] = JSON.parse(lines[i] as string);
    } catch (cause) {
      throw new CorruptionError(
        { objectKey: key },
        `snapshot ${who}: entries[${i}] of the manifest's listing is not JSON`,
        { cause },
      );
    }
  }
  return { manifest: checkManifest({ ...rest, entries: parsed }, key, context), parts: [...ids] };
}
