// Garbage collection: deleting packs, manifests and listing chunks that no snapshot record refers to.

import { CorruptionError } from './errors.js';
import { decodeIndex, encodeIndex, type IndexPack } from './index-file.js';
import { chunksOf } from './manifest.js';
import { listingKey, listingsInBucket } from './manifest-object.js';
import { INDEX_PREFIX, MANIFEST_PREFIX, PACK_PREFIX, packKeyOf, type SnapshotStore } from './store.js';

export interface GcReport {
  readonly packsDeleted: number;
  readonly bytesFreed: number;
  readonly packsKept: number;
  readonly manifestsDeleted: number;
  /** Chunks of manifest listings (manifest-object.ts) that no recorded manifest names. */
  readonly listingsDeleted: number;
  readonly indexesRewritten: number;
}

/** How many of the chunks gc could not find it names in its message. */
const NAMED = 5;

/**
 * Deletes packs no snapshot refers to, manifests no record refers to, and listing chunks no
 * recorded manifest names. Runs under the
 * exclusive lock, so no snapshot is recorded meanwhile (see FORMAT.md). Before it deletes
 * anything it checks that every chunk of every recorded snapshot is listed in an index and
 * that its pack exists; when one is not, it deletes nothing and names the snapshot and the
 * chunk: a pack missing from the indexes would look unreferenced, and be deleted.
 */
export async function collectGarbage(store: SnapshotStore): Promise<GcReport> {
  const { objects, records, locks } = store.deps;
  const lease = await locks.exclusive(store.config.storeId, { purpose: 'gc' });
  try {
    const needs = new Map<string, string>(); // chunk id → the first snapshot (host#version) that needs it
    const liveManifests = new Set<string>();
    // A manifest's listing chunks are needed as much as its files' chunks: one that is missing
    // stops the collection like a missing pack (its snapshot's files are then unknown, and so
    // what they need).
    const listings = await listingsInBucket(objects);
    const liveListings = new Set<string>();
    const lostListings: { who: string; chunk: string; problem: string }[] = [];
    for (const r of await records.all()) {
      liveManifests.add(r.manifestKey);
      const who = `${r.host}#${r.version}`;
      const parts = await store.manifestParts(r);
      for (const id of parts) liveListings.add(id);
      const lost = parts.filter((id) => !listings.has(id));
      for (const chunk of lost)
        lostListings.push({
          who,
          chunk,
          problem: `is a chunk of its manifest, ${listingKey(chunk)}, which is missing`,
        });
      if (lost.length > 0) continue;
      for (const id of chunksOf(await store.manifest(r))) if (!needs.has(id)) needs.set(id, who);
    }
    const indexObjects: string[] = [];
    const indexed = new Map<string, IndexPack>();
    const holders = new Map<string, string[]>(); // chunk id → every pack that holds it
    for await (const o of objects.list(INDEX_PREFIX)) {
      indexObjects.push(o.key);
      for (const p of decodeIndex(store.keys, await objects.get(o.key), o.key).packs) {
        indexed.set(p.id, p);
        for (const b of p.blobs) holders.set(b.id, [...(holders.get(b.id) ?? []), p.id]);
      }
    }
    const present = new Map<string, { key: string; size: number }>();
    for await (const o of objects.list(PACK_PREFIX))
      present.set(o.key.slice(o.key.lastIndexOf('/') + 1), { key: o.key, size: o.size });

    const missing: { who: string; chunk: string; problem: string }[] = [...lostListings];
    for (const [chunk, who] of needs) {
      const packs = holders.get(chunk);
      if (!packs) missing.push({ who, chunk, problem: 'is in no index' });
      else if (!packs.some((p) => present.has(p)))
        missing.push({
          who,
          chunk,
          problem: `is in pack ${packKeyOf(packs[0] as string)}, which is missing`,
        });
    }
    if (missing.length > 0) {
      const first = missing[0] as (typeof missing)[number];
      const named = missing
        .slice(0, NAMED)
        .map((m) => `snapshot ${m.who} needs chunk ${m.chunk}, which ${m.problem}`)
        .join('; ');
      throw new CorruptionError(
        { objectKey: INDEX_PREFIX, chunkId: first.chunk },
        `garbage collection deleted nothing: ${named}${missing.length > NAMED ? `; and ${missing.length - NAMED} more` : ''}. Run persona snapshot check`,
      );
    }

    const referenced = new Set(needs.keys());
    const keep: IndexPack[] = [];
    const doomed: { key: string; size: number }[] = [];
    for (const [id, at] of present) {
      const p = indexed.get(id);
      if (p?.blobs.some((b) => referenced.has(b.id))) keep.push(p);
      else doomed.push(at);
    }
    // Index entries whose pack is gone (left by a writer that was stopped) must not stay:
    // a later snapshot would deduplicate against them.
    const dangling = [...indexed.keys()].filter((id) => !present.has(id)).length;

    // New index first, then the old ones, then the packs: a crash at any point leaves
    // either duplicate index entries or unreferenced packs, never an index entry without its
    // pack. Each step is taken only while the lock is still ours.
    let rewritten = 0;
    if (doomed.length > 0 || dangling > 0 || indexObjects.length > 1) {
      const fresh = keep.length > 0 ? encodeIndex(store.keys, keep) : undefined;
      await lease.assertHeld();
      if (fresh) await objects.put(fresh.key, fresh.bytes);
      const old = indexObjects.filter((k) => k !== fresh?.key);
      await lease.assertHeld();
      await objects.delete(old);
      rewritten = old.length;
    }
    await lease.assertHeld();
    await objects.delete(doomed.map((d) => d.key));
    const deadManifests: string[] = [];
    for await (const o of objects.list(MANIFEST_PREFIX))
      if (!liveManifests.has(o.key)) deadManifests.push(o.key);
    await lease.assertHeld();
    await objects.delete(deadManifests);
    // Last: a collection stopped before this leaves listing chunks, never a manifest without them.
    const deadListings = [...listings.keys()].filter((id) => !liveListings.has(id)).map(listingKey);
    await lease.assertHeld();
    await objects.delete(deadListings);
    await store.loadIndex();
    return {
      packsDeleted: doomed.length,
      bytesFreed: doomed.reduce((n, d) => n + d.size, 0),
      packsKept: keep.length,
      manifestsDeleted: deadManifests.length,
      listingsDeleted: deadListings.length,
      indexesRewritten: rewritten,
    };
  } finally {
    await lease.release();
  }
}
