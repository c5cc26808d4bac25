// check: verifying that every snapshot can be restored, and with readData every byte.
import { ChunkIndex, decodeIndex } from './index-file.js';
import { chunksOf } from './manifest.js';
import { listingKey, listingsInBucket } from './manifest-object.js';
import { decodeBlob, readPackHeader, verifyPackId } from './pack.js';
import { INDEX_PREFIX, PACK_PREFIX, type Progress, packKeyOf, type SnapshotStore } from './store.js';

export interface CheckProblem {
  readonly object: string;
  readonly chunk?: string;
  readonly problem: string;
}

export interface CheckReport {
  readonly ok: boolean;
  readonly packs: number;
  readonly indexes: number;
  readonly snapshots: number;
  readonly chunks: number;
  readonly problems: readonly CheckProblem[];
}

/**
 * Verifies the store: every index decodes, every manifest decodes (its listing chunks there), every chunk a snapshot
 * needs is indexed in a pack that exists; with `readData`, every pack's bytes match its
 * name and every blob decrypts to content matching its id.
 */
export async function checkStore(
  store: SnapshotStore,
  options: { readonly readData?: boolean; readonly onProgress?: (p: Progress) => void } = {},
): Promise<CheckReport> {
  // Under a shared lock, as a writer: gc deletes nothing meanwhile, so a pack or index that
  // is missing is missing, not deleted between the listing and the read (see FORMAT.md).
  const lease = await store.deps.locks.shared(store.config.storeId, { purpose: 'check' });
  try {
    const report = await verify(store, options);
    // A check whose lock was taken over may have seen gc at work: its findings prove nothing.
    await lease.assertHeld();
    return report;
  } finally {
    await lease.release();
  }
}

async function verify(
  store: SnapshotStore,
  options: { readonly readData?: boolean; readonly onProgress?: (p: Progress) => void },
): Promise<CheckReport> {
  const problems: CheckProblem[] = [];
  const index = new ChunkIndex();
  let indexes = 0;
  for await (const o of store.deps.objects.list(INDEX_PREFIX)) {
    indexes++;
    try {
      index.merge(decodeIndex(store.keys, await store.deps.objects.get(o.key), o.key));
    } catch (e) {
      problems.push({ object: o.key, problem: (e as Error).message });
    }
  }
  const packs = new Map<string, number>();
  for await (const o of store.deps.objects.list(PACK_PREFIX)) packs.set(o.key, o.size);
  const indexedBlobs = new Map<string, { id: string; offset: number; length: number }[]>();
  for (const [chunk, at] of index.entries()) {
    const list = indexedBlobs.get(at.packId) ?? [];
    list.push({ id: chunk, offset: at.offset, length: at.length });
    indexedBlobs.set(at.packId, list);
  }
  const records = await store.deps.records.all();
  const needed = new Set<string>();
  // The listing chunks of format 2 manifests (manifest-object.ts), each checked to be there
  // even when its manifest cannot be read whole.
  const listings = await listingsInBucket(store.deps.objects);
  for (const r of records) {
    const who = `snapshot ${r.host}#${r.version}`;
    try {
      let whole = true;
      for (const id of await store.manifestParts(r)) {
        if (listings.has(id)) continue;
        whole = false;
        problems.push({
          object: listingKey(id),
          chunk: id,
          problem: `needed by the manifest of ${who} but missing from the bucket`,
        });
      }
      if (whole) for (const id of chunksOf(await store.manifest(r))) needed.add(id);
    } catch (e) {
      const message = (e as Error).message;
      problems.push({
        object: r.manifestKey,
        problem: message.includes(who) ? message : `${who}: ${message}`,
      });
    }
  }
  for (const id of needed) {
    const at = index.get(id);
    if (!at)
      problems.push({ object: INDEX_PREFIX, chunk: id, problem: 'needed by a snapshot but in no index' });
    else if (!packs.has(packKeyOf(at.packId))) {
      problems.push({ object: packKeyOf(at.packId), chunk: id, problem: 'pack is missing' });
    }
  }
  if (options.readData) {
    for (const id of listings.keys()) {
      const key = listingKey(id);
      try {
        decodeBlob(store.keys, await store.deps.objects.get(key), id, key);
      } catch (e) {
        problems.push({ object: key, chunk: id, problem: (e as Error).message });
      }
    }
    let done = 0;
    for (const key of packs.keys()) {
      const bytes = await store.deps.objects.get(key);
      const id = key.slice(key.lastIndexOf('/') + 1);
      try {
        verifyPackId(bytes, id, key);
      } catch (e) {
        problems.push({ object: key, problem: (e as Error).message });
      }
      let blobs: { id: string; offset: number; length: number }[] = [];
      try {
        blobs = readPackHeader(store.keys, bytes, key);
      } catch (e) {
        problems.push({ object: key, problem: (e as Error).message });
        // The header authenticates the whole data part, so one damaged blob makes it fail:
        // the indexes still say where each blob is, which finds the damaged ones.
        blobs = indexedBlobs.get(id) ?? [];
      }
      for (const b of blobs) {
        try {
          decodeBlob(store.keys, bytes.subarray(b.offset, b.offset + b.length), b.id, key);
        } catch (e) {
          problems.push({ object: key, chunk: b.id, problem: (e as Error).message });
        }
      }
      done++;
      options.onProgress?.({ phase: 'check', files: done, bytes: 0, newBytes: 0, elapsedMs: 0, path: key });
    }
  }
  return {
    ok: problems.length === 0,
    packs: packs.size,
    indexes,
    snapshots: records.length,
    chunks: index.size,
    problems,
  };
}
