// Restoring a snapshot into a directory, in full or incrementally against what is there.
import type { Manifest, ManifestEntry } from './manifest.js';
import { sameContent, sameMetadata } from './manifest.js';
import type { SnapshotRecord } from './records.js';
import type { Progress, SnapshotStore } from './store.js';
import type { DirectoryTarget } from './tree.js';

export interface RestoreOptions {
  /** What the target already holds: only entries that differ are written. */
  readonly existing?: Manifest;
  /** Remove paths the target has and the snapshot does not (with `existing`). */
  readonly deleteExtra?: boolean;
  readonly onProgress?: (p: Progress) => void;
}

export interface RestoreStats {
  readonly entries: number;
  readonly written: number;
  readonly metadataOnly: number;
  readonly unchanged: number;
  readonly removed: number;
  readonly bytes: number;
}

/** Restores a snapshot into a directory; with `existing`, writes only what differs. */
export async function restoreSnapshot(
  store: SnapshotStore,
  record: SnapshotRecord,
  target: DirectoryTarget,
  options: RestoreOptions = {},
): Promise<RestoreStats> {
  const started = Date.now();
  const manifest = await store.manifest(record);
  const have = new Map((options.existing?.entries ?? []).map((e) => [e.path, e]));
  const stats = {
    entries: manifest.entries.length,
    written: 0,
    metadataOnly: 0,
    unchanged: 0,
    removed: 0,
    bytes: 0,
  };
  await target.prepare();
  // Whole packs pay off for full restores; an incremental one reads just the blobs it needs.
  const wholePacks = options.existing === undefined;
  const wanted = new Set(manifest.entries.map((e) => e.path));
  if (options.existing && options.deleteExtra) {
    const extra = options.existing.entries.filter((e) => !wanted.has(e.path)).toReversed();
    for (const e of extra) {
      await target.remove(e.path);
      stats.removed++;
    }
  }
  let lastReport = 0;
  // A file written anew is a new inode: the hard links to it must be made again too.
  const rewritten = new Set<string>();
  for (const entry of await restoreOrder(store, manifest.entries)) {
    const old = have.get(entry.path);
    const relink = entry.type === 'hardlink' && rewritten.has(entry.target ?? '');
    if (old && sameContent(old, entry) && entry.type !== 'dir' && !relink) {
      if (sameMetadata(old, entry)) stats.unchanged++;
      else {
        await target.setMetadata(entry);
        stats.metadataOnly++;
      }
      continue;
    }
    await target.write(entry, entry.type === 'file' ? store.content(entry, wholePacks) : undefined);
    if (entry.type === 'file') rewritten.add(entry.path);
    if (entry.type === 'dir' && old?.type === 'dir') stats.unchanged++;
    else stats.written++;
    stats.bytes += entry.type === 'file' ? (entry.size ?? 0) : 0;
    const now = Date.now();
    if (options.onProgress && now - lastReport > 200) {
      lastReport = now;
      options.onProgress({
        phase: 'restore',
        files: stats.written,
        bytes: stats.bytes,
        newBytes: stats.bytes,
        elapsedMs: now - started,
        path: entry.path,
      });
    }
  }
  await target.finish();
  store.packCache.clear();
  return stats;
}

/**
 * Directories first (path order), then files in the order their content lies in the packs,
 * then links and special files. Path order would hop between packs — a later snapshot's
 * files point into every pack before it — and fetch each pack many times over.
 */
async function restoreOrder(
  store: SnapshotStore,
  entries: readonly ManifestEntry[],
): Promise<ManifestEntry[]> {
  const first = (e: ManifestEntry) => e.chunks?.[0];
  if (entries.some((e) => first(e) !== undefined && !store.index.has(first(e) as string)))
    await store.loadIndex();
  const place = (e: ManifestEntry) => {
    const at = first(e) === undefined ? undefined : store.index.get(first(e) as string);
    return at === undefined ? (['', 0] as const) : ([at.packId, at.offset] as const);
  };
  const files = entries
    .filter((e) => e.type === 'file')
    .map((e) => ({ e, p: place(e) }))
    .sort((a, b) => (a.p[0] < b.p[0] ? -1 : a.p[0] > b.p[0] ? 1 : a.p[1] - b.p[1]))
    .map((x) => x.e);
  return [
    ...entries.filter((e) => e.type === 'dir'),
    ...files,
    ...entries.filter((e) => e.type !== 'dir' && e.type !== 'file'),
  ];
}
