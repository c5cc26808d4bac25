// The snapshot store: deduplicated, compressed, encrypted snapshots of file trees in a bucket,
// with their records in DynamoDB. The format is FORMAT.md beside this file.
import { randomUUID } from 'node:crypto';
import { ConflictError, InvalidInputError, NotFoundError } from '../errors.js';
import { BlobReader, type BlobReaderOptions, type ReaderGauge } from './blob-reader.js';
import { type CheckReport, checkStore } from './check.js';
import { Chunker, type ChunkerParams, chunkBuffer, DEFAULT_CHUNKER, gearTable } from './chunker.js';
import { CorruptionError } from './errors.js';
import { collectGarbage, type GcReport } from './gc.js';
import { ChunkIndex, decodeIndex, encodeIndex } from './index-file.js';
import { chunkId, deriveKeys, type KeyProvider } from './keys.js';
import { DirectoryListingCache, type ListingCache } from './listing-cache.js';
import {
  checkManifest,
  comparePaths,
  diffManifests,
  type Manifest,
  type ManifestDiff,
  type ManifestEntry,
} from './manifest.js';
import {
  listingChunks,
  listingOf,
  readManifestObject,
  sealManifestObject,
  storeListing,
} from './manifest-object.js';
import { CollectionPacer, holdYoungGeneration } from './memory.js';
import type { ObjectStore } from './object-store.js';
import { decodeBlob, type EncodedBlob, encodeBlobAsync, PACK_TARGET_SIZE, PackWriter } from './pack.js';
import {
  type Lease,
  LeaseLostError,
  type SnapshotRecord,
  type SnapshotRecords,
  type SnapshotStats,
} from './records.js';
import { type RestoreOptions, type RestoreStats, restoreSnapshot } from './restore.js';
import { forgetSnapshots, type RetentionPolicy } from './retention.js';
import { SecretVault } from './secrets.js';
import { ReadSlab, type SlabRegion } from './slab.js';
import type { DirectoryTarget, TreeSource } from './tree.js';

export const CONFIG_KEY = 'snapshots/config';
export { LISTING_PREFIX, MANIFEST_PREFIX } from './manifest-object.js';
export const INDEX_PREFIX = 'snapshots/index/';
export const PACK_PREFIX = 'snapshots/packs/';

/**
 * What a snapshot or a restore holds at most while it runs, whatever the size of the tree: the
 * pipeline's memory is these figures plus one pack being filled (16 MiB) and one chunk, not a
 * function of the tree.
 */
export interface PipelineLimits {
  /** Bytes of chunks being compressed and sealed on the thread pool at once (one chunk always goes). */
  readonly encodeBytes: number;
  /** Bytes of finished packs being uploaded at once (one pack always goes). */
  readonly uploadBytes: number;
  /** Bytes of blobs a restore fetches and decodes ahead of the files it writes. */
  readonly restoreBytes: number;
  /** Ranged reads a restore keeps in flight. */
  readonly restoreReads: number;
  /** Files a restore writes at once. */
  readonly restoreFiles: number;
  /**
   * Bytes of chunks a snapshot or a restore passes between two full collections it prompts
   * (memory.ts): how much it may leave dropped for V8 to find. 16 MiB by default;
   * Number.MAX_SAFE_INTEGER leaves it to V8 alone. Once file content was read into the
   * snapshot's own ring (slab.ts) a snapshot drops far fewer buffers: on the bench's root
   * filesystem 16 MiB took about 40 MiB off the peak of a version 1 (about 255 to 215 MiB) and
   * 10-30 MiB off a restore's; 8 MiB took 10 MiB more for about a fifth more CPU time. Left to
   * V8 alone a restore is 0.1-0.2 s faster and peaks 10-30 MiB higher.
   */
  readonly collectBytes: number;
}

// Enough to keep the thread pool busy and a pack uploading while the next one fills, small
// enough that a snapshot holds about 40 MiB of data in all (two pack buffers and the chunks
// being encoded), a restore 16 MiB. Uploads to a distant S3 may want more in flight.
export const DEFAULT_PIPELINE_LIMITS: PipelineLimits = {
  encodeBytes: 8 * 1024 * 1024,
  uploadBytes: 16 * 1024 * 1024,
  restoreBytes: 16 * 1024 * 1024,
  restoreReads: 4,
  restoreFiles: 8,
  collectBytes: 16 * 1024 * 1024,
};

/** What the last snapshot's pipeline held, now and at most: counted bytes, not the process's memory. */
export interface PipelineGauge {
  encodeBytes: number;
  peakEncodeBytes: number;
  uploadBytes: number;
  peakUploadBytes: number;
  /** Pack buffers allocated (each PACK_TARGET_SIZE bytes); they are reused. */
  packBuffers: number;
  /** Full collections the pipeline prompted (`collectBytes`). */
  collections: number;
  /** Bytes of the ring file content is read into (slab.ts), and the most of it held at once. */
  readBufferBytes: number;
  peakReadBytes: number;
}

const newGauge = (): PipelineGauge => ({
  encodeBytes: 0,
  peakEncodeBytes: 0,
  uploadBytes: 0,
  peakUploadBytes: 0,
  packBuffers: 0,
  collections: 0,
  readBufferBytes: 0,
  peakReadBytes: 0,
});

// A file up to this size is read into the slab in one region and chunked as views of it; a
// larger one in regions of this size. The chunker's default maximum: most chunks of a large
// file then lie inside one region and are not copied.
const READ_PIECE = 4 * 1024 * 1024;
// How long a process waits for another one holding the claim to create the store: longer
// than a dead creator's claim takes to become takeable (a lock's lifetime plus the clock
// skew, 90 s by default), so that the waiter creates the store instead of giving up.
const CREATION_WAIT_MS = 180_000;

export interface StoreConfig {
  readonly format: 1;
  readonly storeId: string;
  readonly createdAt: string;
  readonly chunker: ChunkerParams;
  readonly key: { readonly provider: string; readonly keyId?: string; readonly wrapped: string };
}

export interface Locks {
  shared(resource: string, options?: { purpose?: string }): Promise<Lease>;
  exclusive(resource: string, options?: { purpose?: string }): Promise<Lease>;
  /**
   * The right to create what `resource` names, while the lease lives; undefined while another
   * process's claim is live. The claim of a process that died expires.
   */
  claim(resource: string, options?: { purpose?: string }): Promise<Lease | undefined>;
}

export interface StoreDeps {
  readonly objects: ObjectStore;
  readonly records: SnapshotRecords;
  readonly locks: Locks;
  readonly keys: KeyProvider;
  readonly now?: () => Date;
  /**
   * A directory on this machine for listing chunks (listing-cache.ts), one folder per store:
   * the next snapshot of a host reads its last listing from there instead of the bucket.
   */
  readonly cacheDir?: string;
}

export interface Progress {
  readonly phase: 'snapshot' | 'restore' | 'check' | 'gc';
  readonly files: number;
  readonly bytes: number;
  /** Bytes of new content (snapshot) or bytes written (restore). */
  readonly newBytes: number;
  readonly elapsedMs: number;
  readonly path?: string;
}

export interface CreateOptions {
  readonly host: string;
  /** Read every file even when the previous snapshot says it has not changed. */
  readonly rehash?: boolean;
  readonly profile?: { readonly name: string; readonly version: number };
  readonly onProgress?: (p: Progress) => void;
}

export type { CheckProblem, CheckReport } from './check.js';
export type { GcReport } from './gc.js';
export type { RestoreOptions, RestoreStats } from './restore.js';
export type { RetentionPolicy } from './retention.js';
export { selectKept } from './retention.js';

export class SnapshotStore {
  // The members below are the store's internals, shared with the files that do its other
  // jobs (restore.ts, gc.ts, check.ts, retention.ts); nothing outside core/snapshot uses them.
  /** @internal */
  index = new ChunkIndex();
  /** @internal */
  readonly packCache = new Map<string, Promise<Uint8Array>>();
  /** The index objects `index` was read from, as listed; undefined once it holds more. */
  private loadedIndexNames: string | undefined;
  /** What the pipeline of the last snapshot held (for tests of its bounds). */
  lastPipeline: PipelineGauge = newGauge();
  /** What the reader of the last restore held. */
  lastReader: ReaderGauge = { heldBytes: 0, peakHeldBytes: 0, reads: 0, peakReads: 0, largestReadBytes: 0 };

  /** Listing chunks kept on this machine (`deps.cacheDir`), if any. */
  private readonly listingCache: ListingCache | undefined;

  private constructor(
    /** @internal */
    readonly deps: StoreDeps,
    readonly config: StoreConfig,
    /** @internal */
    readonly keys: ReturnType<typeof deriveKeys>,
    readonly limits: PipelineLimits,
  ) {
    this.listingCache =
      deps.cacheDir === undefined ? undefined : DirectoryListingCache.open(deps.cacheDir, config.storeId);
  }

  /** Opens the store in the bucket, creating it (a new master key) when there is none. */
  static async open(
    deps: StoreDeps,
    options: { readonly chunker?: ChunkerParams; readonly limits?: Partial<PipelineLimits> } = {},
  ): Promise<SnapshotStore> {
    const limits = { ...DEFAULT_PIPELINE_LIMITS, ...options.limits };
    holdYoungGeneration();
    for (const [name, value] of Object.entries(limits))
      if (!Number.isSafeInteger(value) || value < 1)
        throw new InvalidInputError('pipeline limits are positive integers', [
          { path: `limits.${name}`, message: `${value} is not a positive integer` },
        ]);
    let config: StoreConfig | undefined;
    let master: Uint8Array | undefined;
    const readConfig = async () =>
      JSON.parse(Buffer.from(await deps.objects.get(CONFIG_KEY)).toString('utf8')) as StoreConfig;
    // Two processes creating the store at once would each write a master key and one of them
    // would lose its data. One at a time may try (the claim, a lease that expires if its
    // holder dies), and the config is written only if absent (If-None-Match), so that a
    // claimant that took over a claim whose holder was only slow still cannot replace it.
    const resource = `${deps.objects.location}/${CONFIG_KEY}`;
    const deadline = Date.now() + CREATION_WAIT_MS;
    while (config === undefined) {
      if (await deps.objects.head(CONFIG_KEY)) break;
      const claim = await deps.locks.claim(resource, { purpose: 'creation of the snapshot store' });
      if (claim) {
        try {
          // The previous holder may have written the config just before its claim went.
          if (await deps.objects.head(CONFIG_KEY)) break;
          const storeId = randomUUID();
          const generated = await deps.keys.newMasterKey(storeId);
          const fresh: StoreConfig = {
            format: 1,
            storeId,
            createdAt: (deps.now?.() ?? new Date()).toISOString(),
            chunker: options.chunker ?? DEFAULT_CHUNKER,
            key: {
              provider: deps.keys.provider,
              ...(deps.keys.keyId === undefined ? {} : { keyId: deps.keys.keyId }),
              wrapped: generated.wrapped,
            },
          };
          await claim.assertHeld();
          try {
            await deps.objects.put(CONFIG_KEY, Buffer.from(JSON.stringify(fresh, null, 2)), {
              ifAbsent: true,
            });
            config = fresh;
            master = generated.plaintext;
          } catch (e) {
            // Another creator's config is there: use it, as every other process will.
            if (!(e instanceof ConflictError)) throw e;
          }
        } finally {
          await claim.release();
        }
        continue;
      }
      if (Date.now() > deadline) {
        throw new NotFoundError(
          `the snapshot store is being created by another process that has not finished within ${CREATION_WAIT_MS / 1000} s`,
          CONFIG_KEY,
        );
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    if (config === undefined || master === undefined) {
      config = await readConfig();
      master = await deps.keys.unwrap(config.key.wrapped, config.storeId);
    }
    const store = new SnapshotStore(deps, config, deriveKeys(master, config.storeId), limits);
    await store.loadIndex();
    return store;
  }

  /** @internal */
  async loadIndex(): Promise<void> {
    // gc writes the index that replaces others before it deletes them: one that vanished
    // between the listing and the read means a listing made now finds its replacement.
    for (let attempt = 0; ; attempt++) {
      const index = new ChunkIndex();
      try {
        const keys: string[] = [];
        for await (const o of this.deps.objects.list(INDEX_PREFIX)) keys.push(o.key);
        // An index is named by the SHA-256 of its bytes: the same names are the same index,
        // so a snapshot right after the store was opened does not read them all again.
        const names = keys.join('\n');
        if (names === this.loadedIndexNames) return;
        for (const key of keys) index.merge(decodeIndex(this.keys, await this.deps.objects.get(key), key));
        this.index = index;
        this.loadedIndexNames = names;
        return;
      } catch (e) {
        if (e instanceof NotFoundError && attempt < 5) continue;
        throw e;
      }
    }
  }

  async manifest(record: SnapshotRecord): Promise<Manifest> {
    return (await this.manifestWithParts(record)).manifest;
  }

  /**
   * @internal The manifest and the listing chunks it is stored in (none for a format 1 manifest,
   * see manifest-object.ts). Paths unique, parents directories, no way out of a restore target
   * (manifest.ts).
   */
  async manifestWithParts(record: SnapshotRecord): Promise<{ manifest: Manifest; parts: string[] }> {
    const sealed = await this.deps.objects.get(record.manifestKey);
    const who = `${record.host}#${record.version}`;
    return readManifestObject(
      this.keys,
      sealed,
      record.manifestKey,
      who,
      this.deps.objects,
      this.listingCache,
    );
  }

  /** @internal The listing chunks a snapshot's manifest is stored in, without reading them. */
  async manifestParts(record: SnapshotRecord): Promise<string[]> {
    const sealed = await this.deps.objects.get(record.manifestKey);
    return listingChunks(this.keys, sealed, record.manifestKey, `${record.host}#${record.version}`);
  }

  /** The store's sealed secrets (secrets.ts): sealed under keys of their own, one object per value. */
  get secrets(): SecretVault {
    return new SecretVault(this.deps.objects, this.keys);
  }

  async record(host: string, version?: number): Promise<SnapshotRecord> {
    const record =
      version === undefined
        ? await this.deps.records.latest(host)
        : await this.deps.records.get(host, version);
    if (!record) {
      throw new NotFoundError(
        version === undefined ? `host ${host} has no snapshots` : `host ${host} has no snapshot ${version}`,
        host,
      );
    }
    return record;
  }

  list(host: string): Promise<SnapshotRecord[]> {
    return this.deps.records.list(host).then((r) => r.sort((a, b) => a.version - b.version));
  }

  async diff(host: string, from: number, to: number): Promise<ManifestDiff> {
    const [a, b] = await Promise.all([this.record(host, from), this.record(host, to)]);
    return diffManifests(await this.manifest(a), await this.manifest(b));
  }

  /** Snapshots a tree: only chunks the store does not hold yet are uploaded. */
  async create(source: TreeSource, options: CreateOptions): Promise<SnapshotRecord> {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/.test(options.host)) {
      throw new InvalidInputError('host names are letters, digits, ".", "_" and "-"', [
        { path: 'host', message: `"${options.host}" is not a host name` },
      ]);
    }
    const lease = await this.deps.locks.shared(this.config.storeId, {
      purpose: `snapshot of ${options.host}`,
    });
    try {
      await this.loadIndex();
      return await this.write(source, options, lease);
    } finally {
      await lease.release();
    }
  }

  private async write(source: TreeSource, options: CreateOptions, lease: Lease): Promise<SnapshotRecord> {
    const started = Date.now();
    const gear = gearTable(this.keys.gear);
    const stats = { files: 0, dirs: 0, bytes: 0, chunks: 0, newChunks: 0, newBytes: 0, storedBytes: 0 };
    const packs: { id: string; size: number; blobs: ReturnType<PackWriter['finish']>['blobs'] }[] = [];
    const limits = this.limits;
    const gauge = newGauge();
    const collector = new CollectionPacer(limits.collectBytes);
    this.lastPipeline = gauge;
    // Pack buffers are reused once their upload is done: the pipeline holds at most one being
    // filled plus what `uploadBytes` lets out, however large the tree.
    const spare: Uint8Array[] = [];
    const takeBuffer = () => {
      const reused = spare.pop();
      if (reused) return reused;
      gauge.packBuffers++;
      return Buffer.allocUnsafeSlow(PACK_TARGET_SIZE);
    };
    const inFlight = new Set<Promise<void>>();
    let uploading = 0;
    let failure: unknown;
    let buffer = takeBuffer();
    let pack = new PackWriter(this.keys, buffer);
    const pending = new Set<string>();

    const flush = async () => {
      if (failure) throw failure;
      if (pack.count === 0) return;
      // A writer whose lock lapsed stops here rather than upload what it could never record.
      lease.throwIfLost();
      const done = pack.finish();
      packs.push({ id: done.id, size: done.bytes.length, blobs: done.blobs });
      stats.storedBytes += done.bytes.length;
      // Uploads in flight are bounded in bytes (at least one goes, however large).
      while (inFlight.size > 0 && uploading + done.bytes.length > limits.uploadBytes)
        await Promise.race(inFlight);
      if (failure) throw failure;
      const used = buffer;
      const size = done.bytes.length;
      uploading += size;
      gauge.uploadBytes = uploading;
      gauge.peakUploadBytes = Math.max(gauge.peakUploadBytes, uploading);
      // A pack is named by the SHA-256 of its bytes: the upload is signed with it as it is.
      const upload = this.deps.objects.put(done.key, done.bytes, { sha256: done.id }).then(
        () => {
          // The bytes are sent: the buffer can take the next pack.
          if (used.length === PACK_TARGET_SIZE) spare.push(used);
        },
        (e) => {
          failure ??= e;
        },
      );
      const tracked = upload.finally(() => {
        uploading -= size;
        gauge.uploadBytes = uploading;
        inFlight.delete(tracked);
      });
      inFlight.add(tracked);
      buffer = takeBuffer();
      pack = new PackWriter(this.keys, buffer);
    };

    // Chunks are compressed and sealed on the thread pool while the next ones are read,
    // chunked and hashed here; they join the pack in the order they came, so a file's
    // chunks lie in order in the packs (what a restore reads in order).
    const encoding: {
      id: string;
      raw: number;
      blob: Promise<EncodedBlob>;
      done: boolean;
      region: SlabRegion | undefined;
    }[] = [];
    let encodingBytes = 0;
    // File content is read into one ring of its own, room for the chunks being encoded and a
    // region being read: what the pipeline reads no longer leaves a buffer per file behind.
    const slab = new ReadSlab(limits.encodeBytes + READ_PIECE);
    gauge.readBufferBytes = slab.capacity;
    const settle = async () => {
      const head = encoding[0];
      if (!head) return;
      const blob = await head.blob;
      encoding.shift();
      encodingBytes -= head.raw;
      gauge.encodeBytes = encodingBytes;
      if (!pack.fits(blob.length)) await flush();
      pack.addEncoded(head.id, blob);
      // The chunk and what zstd and the cipher made of it are dropped now.
      if (head.region) slab.unhold(head.region);
      collector.dropped(head.raw);
      gauge.collections = collector.started;
      if (pack.size >= PACK_TARGET_SIZE) await flush();
    };

    /** A region of the slab, once chunks being encoded have given back enough of it. */
    const takeRegion = async (size: number): Promise<SlabRegion> => {
      for (;;) {
        const region = slab.take(size);
        if (region) {
          gauge.peakReadBytes = slab.peakHeldBytes;
          return region;
        }
        // With no chunk being encoded every region is back, and any size up to the capacity fits.
        if (encoding.length === 0) throw new Error(`no room for ${size} bytes in an idle read slab`);
        await settle();
      }
    };

    /** `region`: the slab's, when the chunk is a view of it (held until the chunk is encoded). */
    const addChunk = async (chunk: Uint8Array, region?: SlabRegion): Promise<string> => {
      const id = chunkId(this.keys.idKey, chunk);
      stats.chunks++;
      if (!this.index.has(id) && !pending.has(id)) {
        pending.add(id);
        stats.newChunks++;
        stats.newBytes += chunk.length;
        // At least one chunk is encoded, however large; others wait for room.
        while (encoding.length > 0 && encodingBytes + chunk.length > limits.encodeBytes) await settle();
        const job = {
          id,
          raw: chunk.length,
          blob: encodeBlobAsync(this.keys, chunk, id),
          done: false,
          region,
        };
        if (region) region.holds++;
        // A failure is taken up when the job's turn comes; until then it must not go unhandled.
        job.blob.then(
          () => {
            job.done = true;
          },
          () => {
            job.done = true;
          },
        );
        encoding.push(job);
        encodingBytes += chunk.length;
        gauge.encodeBytes = encodingBytes;
        gauge.peakEncodeBytes = Math.max(gauge.peakEncodeBytes, encodingBytes);
      }
      // Finished blobs go to the pack right away: their bytes no longer count as queued.
      while (encoding[0]?.done) await settle();
      return id;
    };

    const entries: ManifestEntry[] = [];
    let lastReport = 0;
    const report = (path: string) => {
      const now = Date.now();
      if (options.onProgress && now - lastReport > 200) {
        lastReport = now;
        options.onProgress({
          phase: 'snapshot',
          files: stats.files,
          bytes: stats.bytes,
          newBytes: stats.newBytes,
          elapsedMs: now - started,
          path,
        });
      }
    };

    // Files the previous snapshot of this host read, by path: one that has not changed since
    // (same inode, size, mtime and ctime) keeps its chunk list and is not read again.
    const previous = new Map<string, ManifestEntry>();
    // The listing chunks the last version is stored in: this version's that are the same are in
    // the bucket already, and are neither looked up nor sent again.
    let parentListing: ReadonlySet<string> = new Set();
    const parent = await this.deps.records.latest(options.host);
    if (parent && !options.rehash) {
      const { manifest, parts } = await this.manifestWithParts(parent);
      for (const e of manifest.entries) if (e.ino && e.ctimeNs) previous.set(e.path, e);
      parentListing = new Set(parts);
    } else if (parent) {
      // A rehash trusts nothing of the last version's files; its listing is only a shortcut.
      parentListing = new Set(await this.manifestParts(parent).catch(() => []));
    }
    const unchanged = (e: ManifestEntry) => {
      const p = previous.get(e.path);
      return (
        p !== undefined &&
        p.type === 'file' &&
        p.ino === e.ino &&
        p.ctimeNs === e.ctimeNs &&
        p.mtimeNs === e.mtimeNs &&
        p.size === e.size &&
        (p.chunks ?? []).every((id) => this.index.has(id))
      );
    };

    try {
      for await (const item of source.entries()) {
        const entry: ManifestEntry = { ...item.entry };
        if (entry.type === 'dir') stats.dirs++;
        if (entry.type === 'file' && item.content && entry.ino !== undefined && unchanged(entry)) {
          const p = previous.get(entry.path) as ManifestEntry;
          stats.files++;
          stats.bytes += entry.size ?? 0;
          stats.chunks += p.chunks?.length ?? 0;
          entry.chunks = p.chunks ?? [];
          if (p.sparse) entry.sparse = p.sparse;
        } else if (entry.type === 'file' && item.readInto && !item.extents) {
          stats.files++;
          const readInto = item.readInto;
          const ids: string[] = [];
          const size = entry.size ?? 0;
          let read = 0;
          if (size > 0 && size <= READ_PIECE) {
            const region = await takeRegion(size);
            read = readInto(region.view, 0);
            for (const chunk of chunkBuffer(region.view.subarray(0, read), this.config.chunker, gear))
              ids.push(await addChunk(chunk, region));
            slab.close(region);
          } else if (size > 0) {
            const chunker = new Chunker(this.config.chunker, gear);
            while (read < size) {
              const region = await takeRegion(Math.min(READ_PIECE, size - read));
              const n = readInto(region.view, read);
              for (const chunk of chunker.pushViews(region.view.subarray(0, n)))
                ids.push(await addChunk(chunk, chunk.buffer === region.view.buffer ? region : undefined));
              slab.close(region);
              read += n;
              // The file is shorter than it was when listed: what it holds now is its content.
              if (n < region.view.length) break;
            }
            for (const chunk of chunker.finish()) ids.push(await addChunk(chunk));
          }
          stats.bytes += read;
          entry.chunks = ids;
          report(entry.path);
        } else if (entry.type === 'file' && item.content) {
          stats.files++;
          const chunker = new Chunker(this.config.chunker, gear);
          const ids: string[] = [];
          let size = 0;
          // A file read whole in one piece (most files of a host are small) is cut into views of
          // that piece: pushed, it would be copied into the chunker first and dropped, twice the
          // file's bytes for the collector to find. Other pieces are pushed (and so copied)
          // before the next is asked for: a source may reuse its buffer.
          for await (const piece of item.content()) {
            size += piece.length;
            const whole = size === piece.length && piece.length === entry.size;
            const chunks = whole ? chunkBuffer(piece, this.config.chunker, gear) : chunker.push(piece);
            for (const chunk of chunks) ids.push(await addChunk(chunk));
          }
          for (const chunk of chunker.finish()) ids.push(await addChunk(chunk));
          stats.bytes += size;
          entry.chunks = ids;
          const extents = item.extents?.();
          if (extents) entry.sparse = extents;
          report(entry.path);
        }
        entries.push(entry);
      }
      while (encoding.length > 0) await settle();
      await flush();
      await Promise.all(inFlight);
      if (failure) throw failure;
    } catch (e) {
      // Nothing of this snapshot goes on once it has failed: no upload or encoding is left
      // running behind the error (or after the lock is released).
      await Promise.allSettled([...inFlight, ...encoding.map((j) => j.blob)]);
      throw e;
    }

    // The collector deletes packs no index or record refers to once it holds the store: an
    // index (and deduplication against packs it may have deleted) only while the lock is ours.
    await lease.assertHeld();
    const indexKeys: string[] = [];
    if (packs.length > 0) {
      const index = encodeIndex(this.keys, packs);
      await this.deps.objects.put(index.key, index.bytes);
      stats.storedBytes += index.bytes.length;
      indexKeys.push(index.key);
      for (const p of packs) this.index.merge({ packs: [p] });
      this.loadedIndexNames = undefined;
    }

    entries.sort((a, b) => comparePaths(a.path, b.path));
    const createdAt = (this.deps.now?.() ?? new Date()).toISOString();
    // The sources of this folder check their entries as they read them; any other source is
    // held to the same rules here, so no manifest that a restore would refuse is ever recorded.
    const manifest = checkManifest(
      { format: 2 as const, host: options.host, createdAt, root: source.root, entries },
      `of the snapshot of ${options.host}`,
    );
    // The entries go in chunks of their listing (manifest-object.ts): what did not change since
    // the last version is already in the bucket and costs nothing again.
    const listing = listingOf(this.keys, gear, manifest);
    stats.storedBytes += await storeListing(
      this.deps.objects,
      this.keys,
      listing,
      parentListing,
      this.listingCache,
    );
    const sealed = sealManifestObject(this.keys, listing.object);
    await this.deps.objects.put(sealed.key, sealed.bytes);
    stats.storedBytes += sealed.bytes.length;

    // Another writer may take the next version first: try the one after.
    for (let attempt = 0; ; attempt++) {
      const latest = await this.deps.records.latest(options.host);
      const record: SnapshotRecord = {
        host: options.host,
        version: (latest?.version ?? 0) + 1,
        createdAt,
        manifestKey: sealed.key,
        indexKeys,
        ...(options.profile ? { profile: { ...options.profile } } : {}),
        stats: stats as SnapshotStats,
      };
      try {
        // In one transaction with a check of the lock: a writer whose lock was taken over
        // (the collector may have deleted packs this snapshot needs) records nothing.
        await this.deps.records.put(record, { fence: lease });
        options.onProgress?.({
          phase: 'snapshot',
          files: stats.files,
          bytes: stats.bytes,
          newBytes: stats.newBytes,
          elapsedMs: Date.now() - started,
        });
        return record;
      } catch (e) {
        if (e instanceof LeaseLostError || !(e instanceof ConflictError) || attempt >= 5) throw e;
      }
    }
  }

  /** The content of one chunk, verified against its id. */
  private async chunk(id: string, wholePack: boolean): Promise<Uint8Array> {
    // Another process may have written the snapshot after this store loaded its index.
    if (!this.index.has(id)) await this.loadIndex();
    const at = this.index.get(id);
    if (!at)
      throw new CorruptionError(
        { objectKey: INDEX_PREFIX, chunkId: id },
        'no index lists this chunk: its pack is missing',
      );
    const key = packKeyOf(at.packId);
    let sealed: Uint8Array;
    if (wholePack) {
      let cached = this.packCache.get(at.packId);
      if (!cached) {
        cached = this.deps.objects.get(key);
        this.packCache.set(at.packId, cached);
        // A few packs are enough for restores that read in snapshot order.
        while (this.packCache.size > 4) this.packCache.delete(this.packCache.keys().next().value as string);
      }
      const bytes = await cached;
      sealed = bytes.subarray(at.offset, at.offset + at.length);
    } else {
      sealed = await this.deps.objects.getRange(key, at.offset, at.length);
    }
    return decodeBlob(this.keys, sealed, id, key);
  }

  /**
   * A reader of the content of `files`, read ahead from this store's packs in the order given
   * (the order they will be taken in), within the store's restore limits.
   */
  blobReader(
    files: readonly { readonly index: number; readonly entry: ManifestEntry }[],
    options?: BlobReaderOptions,
  ): BlobReader {
    return new BlobReader(
      this.deps.objects,
      this.keys,
      this.limits,
      files,
      (id) => this.index.get(id),
      packKeyOf,
      options,
    );
  }

  /** The content of a manifest entry, chunk by chunk, each verified before it is yielded. */
  async *content(entry: ManifestEntry, wholePacks = true): AsyncGenerator<Uint8Array> {
    for (const id of entry.chunks ?? []) yield await this.chunk(id, wholePacks);
  }

  /**
   * The manifest a tree would have as a snapshot, without storing anything: what an
   * incremental restore compares against.
   */
  async scan(source: TreeSource, host = 'scan'): Promise<Manifest> {
    const gear = gearTable(this.keys.gear);
    const entries: ManifestEntry[] = [];
    for await (const item of source.entries()) {
      const entry: ManifestEntry = { ...item.entry };
      if (entry.type === 'file' && item.content) {
        const chunker = new Chunker(this.config.chunker, gear);
        const ids: string[] = [];
        for await (const piece of item.content())
          for (const c of chunker.push(piece)) ids.push(chunkId(this.keys.idKey, c));
        for (const c of chunker.finish()) ids.push(chunkId(this.keys.idKey, c));
        entry.chunks = ids;
        const extents = item.extents?.();
        if (extents) entry.sparse = extents;
      }
      entries.push(entry);
    }
    entries.sort((a, b) => comparePaths(a.path, b.path));
    return { format: 1, host, createdAt: new Date().toISOString(), root: source.root, entries };
  }

  /** Restores a snapshot into a directory; with `existing`, writes only what differs. */
  restore(
    record: SnapshotRecord,
    target: DirectoryTarget,
    options: RestoreOptions = {},
  ): Promise<RestoreStats> {
    return restoreSnapshot(this, record, target, options);
  }

  /** Forgets snapshots of a host that the policy does not keep. Their data goes at the next gc. */
  forget(host: string, policy: RetentionPolicy): Promise<{ kept: number[]; removed: number[] }> {
    return forgetSnapshots(this.deps.records, host, policy);
  }

  /** Deletes packs no snapshot refers to, and manifests no record refers to (see gc.ts). */
  gc(): Promise<GcReport> {
    return collectGarbage(this);
  }

  /** Verifies the store (see check.ts); with `readData`, every byte of every pack. */
  check(
    options: { readonly readData?: boolean; readonly onProgress?: (p: Progress) => void } = {},
  ): Promise<CheckReport> {
    return checkStore(this, options);
  }
}

export const packKeyOf = (id: string) => `${PACK_PREFIX}${id.slice(0, 2)}/${id}`;
