// Garbage collection: deleting packs and manifests that no snapshot record refers to.

import { decodeIndex, encodeIndex } from './index-file.js';
import { chunksOf } from './manifest.js';
import { INDEX_PREFIX, MANIFEST_PREFIX, PACK_PREFIX, type SnapshotStore } from './store.js';

export interface GcReport {
  readonly packsDeleted: number;
  readonly bytesFreed: number;
  readonly packsKept: number;
  readonly manifestsDeleted: number;
  readonly indexesRewritten: number;
}

/**
 * Deletes packs no snapshot refers to, and manifests no record refers to. Runs under the
 * exclusive lock, so no snapshot is being written meanwhile (see FORMAT.md).
 */
export async function collectGarbage(store: SnapshotStore): Promise<GcReport> {
  const lease = await store.deps.locks.exclusive(store.config.storeId, { purpose: 'gc' });
  try {
    const records = await store.deps.records.all();
    const referenced = new Set<string>();
    const liveManifests = new Set<string>();
    for (const r of records) {
      liveManifests.add(r.manifestKey);
      for (const id of chunksOf(await store.manifest(r))) referenced.add(id);
    }
    const indexObjects: string[] = [];
    const packsFromIndex = new Map<
      string,
      {
        id: string;
        size: number;
        blobs: { id: string; offset: number; length: number; rawLength: number; compressed: boolean }[];
      }
    >();
    for await (const o of store.deps.objects.list(INDEX_PREFIX)) {
      indexObjects.push(o.key);
      for (const p of decodeIndex(store.keys, await store.deps.objects.get(o.key), o.key).packs)
        packsFromIndex.set(p.id, p);
    }
    const keep: typeof packsFromIndex extends Map<string, infer P> ? P[] : never = [];
    const doomed: { key: string; size: number }[] = [];
    for await (const o of store.deps.objects.list(PACK_PREFIX)) {
      const id = o.key.slice(o.key.lastIndexOf('/') + 1);
      const p = packsFromIndex.get(id);
      if (p?.blobs.some((b) => referenced.has(b.id))) keep.push(p);
      else doomed.push({ key: o.key, size: o.size });
    }
    // New index first, then the old ones, then the packs: a crash at any point leaves
    // either duplicate index entries or unreferenced packs, never an index entry without its pack.
    let rewritten = 0;
    if (doomed.length > 0 || indexObjects.length > 1) {
      const fresh = keep.length > 0 ? encodeIndex(store.keys, keep) : undefined;
      if (fresh) await store.deps.objects.put(fresh.key, fresh.bytes);
      const old = indexObjects.filter((k) => k !== fresh?.key);
      await store.deps.objects.delete(old);
      rewritten = old.length;
    }
    await store.deps.objects.delete(doomed.map((d) => d.key));
    const deadManifests: string[] = [];
    for await (const o of store.deps.objects.list(MANIFEST_PREFIX))
      if (!liveManifests.has(o.key)) deadManifests.push(o.key);
    await store.deps.objects.delete(deadManifests);
    await store.loadIndex();
    return {
      packsDeleted: doomed.length,
      bytesFreed: doomed.reduce((n, d) => n + d.size, 0),
      packsKept: keep.length,
      manifestsDeleted: deadManifests.length,
      indexesRewritten: rewritten,
    };
  } finally {
    await lease.release();
  }
}
