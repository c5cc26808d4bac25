// Listing chunks kept on the machine that reads and writes them (FORMAT.md, "Manifests"): a
// snapshot reads its host's last listing and a restore the one it restores, about a hundred
// small objects for a root filesystem, each a request to the bucket. The cache holds them as
// sealed blobs, so a cached chunk is verified exactly as one from the bucket (tag, flag, id)
// and one that fails is dropped and read again from the bucket: the cache can make a read
// faster, never make it wrong. What is cached is bounded in files, oldest used first out.
import {
  closeSync,
  constants,
  fstatSync,
  futimesSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';

/** Sealed listing chunks by chunk id. */
export interface ListingCache {
  /** The sealed chunk, if this machine holds it. */
  get(id: string): Uint8Array | undefined;
  /** Keeps a sealed chunk (any sealing of it under the store's keys: all open the same). */
  put(id: string, sealed: Uint8Array): void;
  /** Forgets a chunk that did not verify. */
  drop(id: string): void;
}

const HEX_ID = /^[0-9a-f]{64}$/;
// A listing chunk is at most 64 KiB before sealing; anything much larger is not one.
const MAX_FILE_BYTES = 80 * 1024;
/** Files kept at most: about 60 MiB at the listing chunker's 16 KiB mean. */
export const LISTING_CACHE_FILES = 4096;

/**
 * A directory of sealed chunks, one file each, named by chunk id. Nothing in it is trusted: a
 * name that is not a chunk id is never looked at, a link is not followed, a file too large to be
 * a chunk is not read, and every chunk read is verified by its caller. A cache that cannot be
 * read or written (a full disk, another user's directory) only costs its speed: every failure
 * here is a miss.
 */
export class DirectoryListingCache implements ListingCache {
  private count: number | undefined;

  private constructor(
    readonly dir: string,
    private readonly maxFiles: number,
  ) {}

  /**
   * The cache of one store under `base`, or undefined where the store id cannot name a
   * directory (it comes from the bucket's config) or the directory cannot be made.
   */
  static open(
    base: string,
    storeId: string,
    maxFiles = LISTING_CACHE_FILES,
  ): DirectoryListingCache | undefined {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(storeId)) return undefined;
    const dir = join(base, storeId);
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      if (!statSync(dir).isDirectory()) return undefined;
    } catch {
      return undefined;
    }
    return new DirectoryListingCache(dir, maxFiles);
  }

  get(id: string): Uint8Array | undefined {
    if (!HEX_ID.test(id)) return undefined;
    let fd: number | undefined;
    try {
      fd = openSync(join(this.dir, id), constants.O_RDONLY | constants.O_NOFOLLOW);
      const s = fstatSync(fd);
      if (!s.isFile() || s.size > MAX_FILE_BYTES) return undefined;
      const out = Buffer.allocUnsafe(s.size);
      let at = 0;
      while (at < out.length) {
        const n = readSync(fd, out, at, out.length - at, at);
        if (n === 0) break;
        at += n;
      }
      // Used now: the last to go when the cache is pruned.
      const now = new Date();
      futimesSync(fd, now, now);
      return out.subarray(0, at);
    } catch {
      return undefined;
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }

  put(id: string, sealed: Uint8Array): void {
    if (!HEX_ID.test(id) || sealed.length > MAX_FILE_BYTES) return;
    const path = join(this.dir, id);
    const tmp = join(this.dir, `.${id}.${process.pid}.tmp`);
    // Counted once, then kept: a chunk written over counts again, until a prune counts anew.
    this.count ??= this.files().length;
    try {
      // Written whole under another name, then renamed over: a reader never sees half a chunk,
      // and a link planted at the chunk's name is replaced, not written through.
      const fd = openSync(
        tmp,
        constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW,
        0o600,
      );
      try {
        for (let at = 0; at < sealed.length; ) at += writeSync(fd, sealed, at, sealed.length - at);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, path);
    } catch {
      try {
        unlinkSync(tmp);
      } catch {}
      return;
    }
    this.count++;
    if (this.count > this.maxFiles) this.prune();
  }

  drop(id: string): void {
    if (!HEX_ID.test(id)) return;
    try {
      unlinkSync(join(this.dir, id));
      if (this.count !== undefined) this.count--;
    } catch {}
  }

  private files(): string[] {
    try {
      return readdirSync(this.dir).filter((name) => HEX_ID.test(name));
    } catch {
      return [];
    }
  }

  /** Down to three quarters of the bound, least recently used first. */
  private prune(): void {
    const aged: { name: string; used: number }[] = [];
    for (const name of this.files()) {
      try {
        aged.push({ name, used: lstatSync(join(this.dir, name)).mtimeMs });
      } catch {}
    }
    aged.sort((a, b) => a.used - b.used);
    const keep = Math.floor((this.maxFiles * 3) / 4);
    for (const { name } of aged.slice(0, Math.max(0, aged.length - keep))) {
      try {
        unlinkSync(join(this.dir, name));
      } catch {}
    }
    this.count = Math.min(aged.length, keep);
  }
}
