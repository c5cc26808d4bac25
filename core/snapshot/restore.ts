// Restoring a snapshot into a directory, in full or incrementally against what is there. A
// damaged snapshot restores everything it still can and names, by path, what it could not.
import { NotFoundError } from '../errors.js';
import { CorruptionError } from './errors.js';
import { comparePaths, type Manifest, type ManifestEntry, sameContent, sameMetadata } from './manifest.js';
import type { SnapshotRecord } from './records.js';
import type { Progress, SnapshotStore } from './store.js';
import { type DirectoryTarget, type RestoreFailure, SpecialFileError, UnsafePathError } from './tree.js';

export type { RestoreFailure } from './tree.js';

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
  /** Entries not restored (a chunk that failed verification, a path that was unsafe), by path. */
  readonly failed: readonly RestoreFailure[];
}

/**
 * A failure that belongs to one entry: the restore notes it and goes on. Anything else (the
 * store unreachable, the key refused) ends the restore once directory metadata is set.
 */
const failureOfEntry = (e: unknown): boolean =>
  e instanceof CorruptionError ||
  e instanceof NotFoundError ||
  e instanceof UnsafePathError ||
  e instanceof SpecialFileError ||
  // A filesystem error names its path; a network error (the store unreachable) does not.
  (e instanceof Error &&
    typeof (e as NodeJS.ErrnoException).syscall === 'string' &&
    typeof (e as NodeJS.ErrnoException).path === 'string');

const reasonOf = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** Restores a snapshot into a directory; with `existing`, writes only what differs. */
export async function restoreSnapshot(
  store: SnapshotStore,
  record: SnapshotRecord,
  target: DirectoryTarget,
  options: RestoreOptions = {},
): Promise<RestoreStats> {
  const started = Date.now();
  // Checked as it is read (manifest.ts): a manifest that could lead outside the target is refused whole.
  const manifest = await store.manifest(record);
  const have = new Map((options.existing?.entries ?? []).map((e) => [e.path, e]));
  const failed: RestoreFailure[] = [];
  const stats = {
    entries: manifest.entries.length,
    written: 0,
    metadataOnly: 0,
    unchanged: 0,
    removed: 0,
    bytes: 0,
    failed,
  };
  await target.prepare();
  const wanted = new Set(manifest.entries.map((e) => e.path));
  // Paths not restored: what lies below a directory that failed, or links to a file that did,
  // is named with that reason instead of being tried.
  const missing = new Set<string>();
  const blockedBy = (entry: ManifestEntry): string | undefined => {
    for (let p = entry.path; p.includes('/'); ) {
      p = p.slice(0, p.lastIndexOf('/'));
      if (missing.has(p)) return `its directory ${p} was not restored`;
    }
    if (entry.type === 'hardlink' && missing.has(entry.target ?? ''))
      return `its link target ${entry.target} was not restored`;
    return undefined;
  };
  let completed = false;
  try {
    if (options.existing && options.deleteExtra) {
      const extra = options.existing.entries.filter((e) => !wanted.has(e.path)).toReversed();
      for (const e of extra) {
        try {
          if (await target.remove(e.path)) stats.removed++;
        } catch (error) {
          if (!failureOfEntry(error)) throw error;
          failed.push({ path: e.path, reason: `not removed: ${reasonOf(error)}` });
        }
      }
    }
    let lastReport = 0;
    // A file written anew is a new inode: the hard links to it must be made again too.
    const rewritten = new Set<string>();
    const { dirs, files, others } = await restoreOrder(store, manifest.entries);
    // Files whose content is written, read in the order they lie in the packs: an unchanged
    // file (incremental) is not read at all.
    const contentOf = files
      .map((entry, index) => ({ index, entry }))
      .filter(({ entry }) => {
        const old = have.get(entry.path);
        return !(old && sameContent(old, entry));
      });
    // The target writes each chunk before it asks for the next (tree.ts).
    const reader = store.blobReader(contentOf, { lend: true });
    store.lastReader = reader.gauge;
    const restoreEntry = async (entry: ManifestEntry, index?: number): Promise<void> => {
      const blocked = blockedBy(entry);
      if (blocked !== undefined) {
        missing.add(entry.path);
        failed.push({ path: entry.path, reason: blocked });
        return;
      }
      try {
        const old = have.get(entry.path);
        const relink = entry.type === 'hardlink' && rewritten.has(entry.target ?? '');
        if (old && sameContent(old, entry) && entry.type !== 'dir' && !relink) {
          if (sameMetadata(old, entry)) {
            stats.unchanged++;
            return;
          }
          // What `existing` says is there may not be (a link where it saw a file): then the
          // entry is written whole.
          if (await target.setMetadata(entry)) {
            stats.metadataOnly++;
            return;
          }
        }
        const content =
          entry.type !== 'file'
            ? undefined
            : index !== undefined && reader.planned(index)
              ? reader.content(index)
              : store.content(entry, false);
        await target.write(entry, content);
        if (entry.type === 'file') rewritten.add(entry.path);
        if (entry.type === 'dir' && old?.type === 'dir') stats.unchanged++;
        else stats.written++;
        stats.bytes += entry.type === 'file' ? (entry.size ?? 0) : 0;
      } catch (error) {
        if (!failureOfEntry(error)) throw error;
        missing.add(entry.path);
        const damaged = error instanceof CorruptionError || error instanceof NotFoundError;
        failed.push({ path: entry.path, reason: reasonOf(error), ...(damaged ? { damaged } : {}) });
        return;
      } finally {
        // What the file did not take of its blobs (it failed, or needed none) frees the window.
        if (index !== undefined) reader.release(index);
      }
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
    };
    // The first reads go before the directories are made, and are decoded between them: making
    // an inode can take a filesystem a good part of a millisecond, thousands of them here.
    reader.start();
    for (const [i, entry] of dirs.entries()) {
      await restoreEntry(entry);
      if (i % 64 === 63) await new Promise((resolve) => setImmediate(resolve));
    }
    // Several files at once: each is a handful of system calls besides its content, and the
    // reader keeps their blobs coming in pack order.
    let nextFile = 0;
    let stop: unknown;
    const worker = async () => {
      while (stop === undefined && nextFile < files.length) {
        const index = nextFile++;
        try {
          await restoreEntry(files[index] as ManifestEntry, index);
        } catch (e) {
          stop ??= e;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(store.limits.restoreFiles, files.length) }, worker));
    if (stop !== undefined) throw stop;
    for (const entry of others) await restoreEntry(entry);
    completed = true;
  } finally {
    // Also when the restore ends early: directories are not left at the 0700 they were made with.
    const unfinished = await target.finish();
    if (completed) failed.push(...unfinished);
    store.packCache.clear();
  }
  failed.sort((a, b) => comparePaths(a.path, b.path));
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
): Promise<{ dirs: ManifestEntry[]; files: ManifestEntry[]; others: ManifestEntry[] }> {
  const first = (e: ManifestEntry) => e.chunks?.[0];
  // Another process may have written the snapshot after this store loaded its index.
  if (entries.some((e) => (e.chunks ?? []).some((id) => !store.index.has(id)))) await store.loadIndex();
  const place = (e: ManifestEntry) => {
    const at = first(e) === undefined ? undefined : store.index.get(first(e) as string);
    return at === undefined ? (['', 0] as const) : ([at.packId, at.offset] as const);
  };
  const files = entries
    .filter((e) => e.type === 'file')
    .map((e) => ({ e, p: place(e) }))
    .sort((a, b) => (a.p[0] < b.p[0] ? -1 : a.p[0] > b.p[0] ? 1 : a.p[1] - b.p[1]))
    .map((x) => x.e);
  return {
    dirs: entries.filter((e) => e.type === 'dir'),
    files,
    others: entries.filter((e) => e.type !== 'dir' && e.type !== 'file'),
  };
}
