// File trees on the local machine: reading one into manifest entries with their content, and
// writing entries back with their content and metadata.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  type BigIntStats,
  closeSync,
  constants,
  createReadStream,
  fchmodSync,
  fchownSync,
  fstatSync,
  ftruncateSync,
  futimesSync,
  lstatSync,
  mkdirSync,
  open as openCallback,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  readSync,
  realpathSync,
  renameSync,
  rmSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import * as fs from 'node:fs/promises';
import { join } from 'node:path';
import { majorOf, minorOf } from './devices.js';
import { EntryChecker, type ManifestEntry, pathProblem } from './manifest.js';

/** An entry of a tree being snapshotted, with a way to read its content once. */
export interface SourceEntry {
  readonly entry: Omit<ManifestEntry, 'chunks' | 'sparse'>;
  /**
   * The file's data; for a sparse file, its data extents one after the other. A source may
   * reuse its buffer for the next piece, except a piece that is the whole file: the store
   * keeps views of that one.
   */
  readonly content?: () => AsyncIterable<Uint8Array>;
  /** For a sparse file: its data extents, known once `content` has been read. */
  readonly extents?: () => [number, number][];
  /**
   * Reads the file's bytes from `position` into `buffer`, until it is full or the file ends,
   * and returns how many it read: for a store that reads into memory of its own (slab.ts)
   * rather than a buffer per read. Absent for sparse files and for sources that can only
   * stream; `content` is always there.
   */
  readonly readInto?: (buffer: Uint8Array, position: number) => number;
}

export interface TreeSource {
  readonly root: string;
  entries(): AsyncIterable<SourceEntry>;
}

const READ_SIZE = 1024 * 1024;
// Holes are found at this granularity: the filesystem block size on the hosts we meet.
const HOLE_BLOCK = 64 * 1024;

function namesFrom(file: string): Map<number, string> {
  const names = new Map<number, string>();
  try {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const [name, , id] = line.split(':');
      if (name && id !== undefined && /^\d+$/.test(id) && !names.has(Number(id))) names.set(Number(id), name);
    }
  } catch {
    // No such file on this machine: names stay unknown, numeric ids still restore.
  }
  return names;
}

const typeOf = (s: import('node:fs').BigIntStats): ManifestEntry['type'] | undefined =>
  s.isFile()
    ? 'file'
    : s.isDirectory()
      ? 'dir'
      : s.isSymbolicLink()
        ? 'symlink'
        : s.isCharacterDevice()
          ? 'char'
          : s.isBlockDevice()
            ? 'block'
            : s.isFIFO()
              ? 'fifo'
              : undefined;

// Metadata calls and small reads are done synchronously: each is a few microseconds of work,
// and an asynchronous call per file costs a thread-pool round trip that dominated snapshots
// of trees of many small files. Large files are still streamed.
async function* readWhole(path: string): AsyncIterable<Uint8Array> {
  yield readFileSync(path);
}

function readAt(path: string, buffer: Uint8Array, position: number): number {
  const fd = openSync(path, 'r');
  try {
    let at = 0;
    while (at < buffer.length) {
      const n = readSync(fd, buffer, at, buffer.length - at, position + at);
      if (n === 0) break;
      at += n;
    }
    return at;
  } finally {
    closeSync(fd);
  }
}

async function* readSparse(
  path: string,
  size: number,
  extents: [number, number][],
): AsyncIterable<Uint8Array> {
  const handle = await fs.open(path, 'r');
  try {
    const block = Buffer.alloc(HOLE_BLOCK);
    let offset = 0;
    while (offset < size) {
      const { bytesRead } = await handle.read(block, 0, HOLE_BLOCK, offset);
      if (bytesRead === 0) break;
      const data = block.subarray(0, bytesRead);
      if (!data.every((b) => b === 0)) {
        const last = extents[extents.length - 1];
        if (last && last[0] + last[1] === offset) last[1] += bytesRead;
        else extents.push([offset, bytesRead]);
        yield Buffer.from(data);
      }
      offset += bytesRead;
    }
  } finally {
    await handle.close();
  }
}

/** Reads a directory tree in path order. Sockets are skipped: they cannot be restored. */
export function directorySource(
  root: string,
  options: { readonly onSkip?: (path: string, why: string) => void } = {},
): TreeSource {
  const users = namesFrom('/etc/passwd');
  const groups = namesFrom('/etc/group');
  const seen = new Map<string, string>();

  async function* walk(dir: string, rel: string): AsyncGenerator<SourceEntry> {
    const names = readdirSync(dir).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    for (const name of names) {
      const path = join(dir, name);
      const relPath = rel === '' ? name : `${rel}/${name}`;
      const s = lstatSync(path, { bigint: true });
      const type = typeOf(s);
      if (type === undefined) {
        options.onSkip?.(relPath, 'socket');
        continue;
      }
      const base = {
        path: relPath,
        mode: Number(s.mode & 0o7777n),
        uid: Number(s.uid),
        gid: Number(s.gid),
        ...(users.has(Number(s.uid)) ? { user: users.get(Number(s.uid)) as string } : {}),
        ...(groups.has(Number(s.gid)) ? { group: groups.get(Number(s.gid)) as string } : {}),
        mtimeNs: s.mtimeNs.toString(),
      };
      if (type === 'file') {
        const inode = `${s.dev}:${s.ino}`;
        const first = s.nlink > 1n ? seen.get(inode) : undefined;
        if (first !== undefined) {
          yield { entry: { ...base, type: 'hardlink', target: first } };
          continue;
        }
        if (s.nlink > 1n) seen.set(inode, relPath);
        const size = Number(s.size);
        const seenAs = { ino: s.ino.toString(), ctimeNs: s.ctimeNs.toString() };
        const sparse = size > HOLE_BLOCK && Number(s.blocks) * 512 < size;
        if (sparse) {
          const extents: [number, number][] = [];
          yield {
            entry: { ...base, ...seenAs, type, size },
            content: () => readSparse(path, size, extents),
            extents: () => extents,
          };
        } else {
          yield {
            entry: { ...base, ...seenAs, type, size },
            // A small file in one read of its own size: a stream would allocate a whole
            // read buffer for every file, and most files of a host are small.
            content:
              size <= READ_SIZE
                ? () => readWhole(path)
                : () => createReadStream(path, { highWaterMark: READ_SIZE }),
            readInto: (buffer, position) => readAt(path, buffer, position),
          };
        }
      } else if (type === 'dir') {
        yield { entry: { ...base, type } };
        yield* walk(path, relPath);
      } else if (type === 'symlink') {
        yield { entry: { ...base, type, target: readlinkSync(path) } };
      } else if (type === 'char' || type === 'block') {
        yield { entry: { ...base, type, rdev: Number(s.rdev) } };
      } else {
        yield { entry: { ...base, type } };
      }
    }
  }

  // A tree read from disk keeps the rules by construction; checking costs little and keeps a
  // tree that changes while it is read (a directory swapped for a link) out of the store.
  async function* checked(): AsyncGenerator<SourceEntry> {
    const checker = new EntryChecker();
    for await (const item of walk(root, '')) {
      checker.add(item.entry, `entry ${JSON.stringify(item.entry.path)} of ${root}`);
      yield item;
    }
  }

  return { root, entries: checked };
}

const isRoot = () => process.getuid?.() === 0;
// utimes() takes seconds as a double, which cannot hold nanoseconds since the epoch; aim at
// the middle of the right microsecond so that the kernel's truncation keeps it exact.
const seconds = (ns: string) => Number(BigInt(ns) / 1000n) / 1e6 + 4e-7;

/** An entry that could not be restored, and why; the restore goes on with the others. */
export interface RestoreFailure {
  readonly path: string;
  readonly reason: string;
  /** The snapshot's own data failed (a chunk that does not verify, a pack that is gone). */
  readonly damaged?: boolean;
}

/**
 * What is on disk at an entry's path is not what the restore may write through or to: a link
 * where a directory must be, a directory that changed under the restore. Nothing was written.
 */
export class UnsafePathError extends Error {
  constructor(
    readonly path: string,
    reason: string,
  ) {
    super(`${path}: ${reason}`);
    this.name = 'UnsafePathError';
  }
}

/** A special file (device or FIFO) that mknod or mkfifo could not make. */
export class SpecialFileError extends Error {
  constructor(
    readonly path: string,
    reason: string,
  ) {
    super(`cannot create ${path}: ${reason}`);
    this.name = 'SpecialFileError';
  }
}

interface Inode {
  readonly dev: bigint;
  readonly ino: bigint;
}

const lstatOrNone = (path: string): BigIntStats | undefined =>
  lstatSync(path, { bigint: true, throwIfNoEntry: false });
const sameInode = (s: BigIntStats, i: Inode) => s.dev === i.dev && s.ino === i.ino;
const describe = (s: BigIntStats) =>
  s.isSymbolicLink()
    ? 'a symlink'
    : s.isFile()
      ? 'a file'
      : s.isDirectory()
        ? 'a directory'
        : 'a special file';

// Temporaries of a fixed, short length: a name of 255 bytes plus any suffix would not fit.
// A random prefix for the process and a counter: the names need not be secret (each is opened
// O_EXCL and O_NOFOLLOW, and one already there is passed over), and a random draw per file
// cost the main thread more than the file's metadata calls.
const TEMPORARY_PREFIX = `.persona-${randomBytes(6).toString('hex')}-`;
let temporaryCount = 0;
const temporaryName = () => `${TEMPORARY_PREFIX}${(temporaryCount++).toString(36)}`;
const NEW_FILE = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
const OPEN_DIR = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;

/**
 * Writes entries under a directory, and never anywhere else. Node has no openat(), so paths
 * are confined by construction: the manifest has been checked (every parent a directory entry,
 * no path twice, see manifest.ts), and here every directory is made or verified by lstat — a
 * symlink or file where the snapshot has a directory is replaced, never followed — and
 * remembered by device and inode. Before anything is written below a directory, its path must
 * still lead to that inode; what is then created in it is made without following a link
 * (O_EXCL | O_NOFOLLOW, rename over, symlink, link, lchown, lutimes), and chmod or utimes on a
 * path is only ever done after lstat said it is not a symlink.
 *
 * Files are written to a temporary name and renamed when their content is complete, so a failed
 * read (a corrupt chunk) leaves no partial file. Directory modes and times are set at the end,
 * deepest first, on a descriptor opened without following links and checked to be the
 * directory made: a read-only directory must still accept its children, and writing a child
 * changes its parent's mtime.
 */
export class DirectoryTarget {
  /** Directories made or verified, by relative path; `entry` when its metadata is set at the end. */
  private readonly dirs = new Map<string, { inode: Inode; entry?: ManifestEntry; made: boolean }>();
  /** Regular files this restore wrote or verified: the only things a hard link may point at. */
  private readonly files = new Map<string, Inode>();
  private readonly owners = isRoot();
  private base = '';
  private baseInode: Inode = { dev: 0n, ino: 0n };

  constructor(readonly root: string) {}

  private abs(rel: string): string {
    return join(this.base, rel);
  }

  async prepare(): Promise<void> {
    await fs.mkdir(this.root, { recursive: true });
    // The root is the operator's choice, links in its own path included; below it, nothing is followed.
    this.base = realpathSync(this.root);
    const s = lstatSync(this.base, { bigint: true });
    this.baseInode = { dev: s.dev, ino: s.ino };
  }

  /**
   * The absolute path of the directory `rel` is in, checked to still be the directory this
   * restore made or verified there. A parent the restore has not met (the manifest always
   * lists them; a caller writing single entries may not) is made or verified on the way.
   */
  private parent(rel: string): string {
    // Every write, link and metadata change starts here: a path that is not a plain relative
    // one (`..`, absolute, `.`, empty) is refused before it is joined to anything.
    const problem = pathProblem(rel);
    if (problem !== undefined) throw new UnsafePathError(rel, problem);
    const at = rel.lastIndexOf('/');
    if (at < 0) {
      const s = lstatOrNone(this.base);
      if (!s?.isDirectory() || !sameInode(s, this.baseInode))
        throw new UnsafePathError(
          rel,
          `the target ${this.base} is no longer the directory the restore began in`,
        );
      return this.base;
    }
    const dir = rel.slice(0, at);
    const known = this.dirs.get(dir);
    if (known === undefined) {
      this.directory(dir, undefined);
      return this.abs(dir);
    }
    const path = this.abs(dir);
    const s = lstatOrNone(path);
    if (!s?.isDirectory() || !sameInode(s, known.inode))
      throw new UnsafePathError(
        rel,
        `its directory ${dir} changed during the restore (now ${s ? describe(s) : 'missing'})`,
      );
    return path;
  }

  /** Makes or verifies the directory `rel`; whatever else is there is removed, not followed. */
  private directory(rel: string, entry: ManifestEntry | undefined): void {
    const path = join(this.parent(rel), basename(rel));
    let s = lstatOrNone(path);
    let made = false;
    if (s !== undefined && !s.isDirectory()) {
      // Only the snapshot's own directories replace what is there: a parent the restore was
      // not told about is refused rather than taken over.
      if (entry === undefined)
        throw new UnsafePathError(
          rel,
          `${describe(s)} is where a directory must be, and the snapshot does not say to replace it`,
        );
      removeSync(path, s);
      s = undefined;
    }
    if (s === undefined) {
      // Not recursive: the parent is verified, and a recursive mkdir would follow links on its way.
      mkdirSync(path, { mode: 0o700 });
      made = true;
      s = lstatSync(path, { bigint: true });
      if (!s.isDirectory()) throw new UnsafePathError(rel, 'the directory made is not a directory');
    }
    const known = this.dirs.get(rel);
    this.dirs.set(rel, {
      inode: { dev: s.dev, ino: s.ino },
      made: made || known?.made === true,
      ...(entry ? { entry } : known?.entry ? { entry: known.entry } : {}),
    });
  }

  /**
   * Removes whatever is at `rel` and says whether there was anything. Below a link or a file
   * the path is not in this tree: nothing of it is there to remove.
   */
  async remove(rel: string): Promise<boolean> {
    const problem = pathProblem(rel);
    if (problem !== undefined) throw new UnsafePathError(rel, problem);
    let dir = this.base;
    const parts = rel.split('/');
    for (const part of parts.slice(0, -1)) {
      dir = join(dir, part);
      if (!lstatOrNone(dir)?.isDirectory()) return false;
    }
    const path = join(dir, parts[parts.length - 1] as string);
    const s = lstatOrNone(path);
    if (s === undefined) return false;
    removeSync(path, s);
    return true;
  }

  async write(entry: ManifestEntry, content?: AsyncIterable<Uint8Array>): Promise<void> {
    if (entry.type === 'dir') {
      this.directory(entry.path, entry);
      return;
    }
    const dir = this.parent(entry.path);
    const path = join(dir, basename(entry.path));
    switch (entry.type) {
      case 'file':
        await this.file(entry, dir, path, content ?? []);
        return;
      case 'symlink':
        this.clear(path);
        await fs.symlink(entry.target ?? '', path);
        await this.linkMetadata(entry, path);
        return;
      case 'hardlink': {
        const target = entry.target ?? '';
        const source = this.linkable(entry.path, target);
        this.clear(path);
        // link(2) does not follow a symlink given as the existing path; the one given was
        // checked to be the regular file this restore wrote or verified.
        await fs.link(source, path);
        return;
      }
      case 'char':
      case 'block':
      case 'fifo': {
        this.clear(path);
        const [program, args] =
          entry.type === 'fifo'
            ? ['mkfifo', ['--', path]]
            : [
                'mknod',
                [
                  '--',
                  path,
                  entry.type === 'char' ? 'c' : 'b',
                  String(majorOf(entry.rdev ?? 0)),
                  String(minorOf(entry.rdev ?? 0)),
                ],
              ];
        const made = spawnSync(program as string, args as string[], { encoding: 'utf8' });
        if (made.status !== 0)
          throw new SpecialFileError(
            entry.path,
            (made.stderr || made.error?.message || `${program} failed`).trim(),
          );
        await this.pathMetadata(entry, path);
        return;
      }
    }
  }

  private async file(
    entry: ManifestEntry,
    dir: string,
    path: string,
    content: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  ): Promise<void> {
    // Only the open is on the thread pool: making an inode can cost a filesystem far more than
    // the other calls (ext4 without a journal scans past recently freed inodes), and there
    // several go at once. The other calls on the file are synchronous: each is a few
    // microseconds in the kernel, and on the pool each cost a hand-off and a wake-up besides,
    // for every one of the thousands of small files of a host.
    let tmp = join(dir, temporaryName());
    let fd: number | undefined;
    for (let attempt = 0; fd === undefined; attempt++) {
      try {
        fd = await openNew(tmp);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 5) throw e;
        tmp = join(dir, temporaryName());
      }
    }
    let inode: Inode;
    try {
      if (entry.sparse) {
        ftruncateSync(fd, entry.size ?? 0);
        let extent = 0;
        let within = 0;
        for await (const piece of content) {
          let done = 0;
          while (done < piece.length) {
            const [offset, length] = entry.sparse[extent] ?? [0, 0];
            const n = Math.min(length - within, piece.length - done);
            writeAll(fd, piece.subarray(done, done + n), offset + within);
            done += n;
            within += n;
            if (within === length) {
              extent++;
              within = 0;
            }
          }
        }
      } else {
        let at = 0;
        for await (const piece of content) {
          writeAll(fd, piece, at);
          at += piece.length;
        }
      }
      // On the descriptor: no path, so nothing to follow. chown clears set-id bits, so the
      // mode comes after the owner; an owner the new file already has is not set again.
      const s = fstatSync(fd, { bigint: true });
      inode = { dev: s.dev, ino: s.ino };
      if (this.owners && (s.uid !== BigInt(entry.uid) || s.gid !== BigInt(entry.gid)))
        fchownSync(fd, entry.uid, entry.gid);
      fchmodSync(fd, entry.mode);
      futimesSync(fd, seconds(entry.mtimeNs), seconds(entry.mtimeNs));
    } catch (e) {
      closeSync(fd);
      try {
        unlinkSync(tmp);
      } catch {}
      throw e;
    }
    closeSync(fd);
    try {
      // rename() replaces a file or a symlink itself, never what a symlink points at. A
      // directory in the way (EISDIR, or ENOTEMPTY/EEXIST from some filesystems) has to go
      // first; it is looked for only then, not before every file.
      this.parent(entry.path);
      try {
        renameSync(tmp, path);
      } catch (e) {
        const there = lstatOrNone(path);
        if (!there?.isDirectory()) throw e;
        removeSync(path, there);
        this.parent(entry.path);
        renameSync(tmp, path);
      }
    } catch (e) {
      try {
        unlinkSync(tmp);
      } catch {}
      throw e;
    }
    this.files.set(entry.path, inode);
  }

  /** The absolute path a hard link to `target` may be made from: a regular file of this restore. */
  private linkable(path: string, target: string): string {
    const problem = pathProblem(target);
    if (problem !== undefined) throw new UnsafePathError(path, `its link target is refused: ${problem}`);
    const source = join(this.parent(target), basename(target));
    const s = lstatOrNone(source);
    const known = this.files.get(target);
    if (!s?.isFile() || (known !== undefined && !sameInode(s, known)))
      throw new UnsafePathError(
        path,
        `its link target ${target} is ${s ? (s.isFile() ? 'not the file the restore wrote' : describe(s)) : 'missing'}, not a regular file of the restore`,
      );
    this.files.set(target, { dev: s.dev, ino: s.ino });
    return source;
  }

  /** Removes what is at an absolute path already checked to be in a verified directory. */
  private clear(path: string): void {
    const s = lstatOrNone(path);
    if (s !== undefined) removeSync(path, s);
  }

  private async linkMetadata(entry: ManifestEntry, path: string): Promise<void> {
    if (this.owners) await fs.lchown(path, entry.uid, entry.gid);
    await fs.lutimes(path, seconds(entry.mtimeNs), seconds(entry.mtimeNs));
  }

  /** Owner, mode and time of a path lstat has just shown is not a link. */
  private async pathMetadata(entry: ManifestEntry, path: string): Promise<void> {
    const s = lstatOrNone(path);
    if (s === undefined || s.isSymbolicLink() || s.isDirectory())
      throw new UnsafePathError(
        entry.path,
        `${s ? describe(s) : 'nothing'} is where the ${entry.type} was made`,
      );
    if (this.owners) await fs.lchown(path, entry.uid, entry.gid);
    await fs.chmod(path, entry.mode);
    await fs.lutimes(path, seconds(entry.mtimeNs), seconds(entry.mtimeNs));
  }

  /**
   * Sets owner, mode and time of an entry whose content is already right. False when what is
   * there is not of the entry's type (the caller then writes it whole): a link is never taken
   * for the file or directory the snapshot has.
   */
  async setMetadata(entry: ManifestEntry): Promise<boolean> {
    if (entry.type === 'dir') {
      this.directory(entry.path, entry);
      return true;
    }
    const path = join(this.parent(entry.path), basename(entry.path));
    const s = lstatOrNone(path);
    if (s === undefined) return false;
    switch (entry.type) {
      case 'symlink':
        if (!s.isSymbolicLink()) return false;
        await this.linkMetadata(entry, path);
        return true;
      case 'hardlink':
        return s.isFile();
      case 'file':
        if (!s.isFile()) return false;
        this.files.set(entry.path, { dev: s.dev, ino: s.ino });
        break;
      case 'fifo':
        if (!s.isFIFO()) return false;
        break;
      case 'char':
        if (!s.isCharacterDevice()) return false;
        break;
      case 'block':
        if (!s.isBlockDevice()) return false;
        break;
    }
    await this.pathMetadata(entry, path);
    return true;
  }

  /**
   * Sets the modes and times of the directories, deepest first. A directory no longer the one
   * the restore made (replaced, or a link now) is left alone and named in what is returned.
   */
  async finish(): Promise<RestoreFailure[]> {
    const failed: RestoreFailure[] = [];
    const order = [...this.dirs.entries()].sort(([a], [b]) => b.split('/').length - a.split('/').length);
    for (const [rel, dir] of order) {
      if (dir.entry === undefined && !dir.made) continue;
      // Synchronous, as for files: opening a directory that exists makes no inode, and on the
      // thread pool each of these calls cost a hand-off and a wake-up.
      let fd: number | undefined;
      try {
        fd = openSync(this.abs(rel), OPEN_DIR);
        const s = fstatSync(fd, { bigint: true });
        if (!sameInode(s, dir.inode))
          throw new UnsafePathError(rel, 'the directory changed during the restore');
        const e = dir.entry;
        if (e === undefined) fchmodSync(fd, 0o755);
        else {
          if (this.owners) fchownSync(fd, e.uid, e.gid);
          fchmodSync(fd, e.mode);
          futimesSync(fd, seconds(e.mtimeNs), seconds(e.mtimeNs));
        }
      } catch (e) {
        failed.push({ path: rel, reason: `directory metadata not set: ${(e as Error).message}` });
      } finally {
        if (fd !== undefined) closeSync(fd);
      }
    }
    return failed;
  }
}

const basename = (rel: string) => rel.slice(rel.lastIndexOf('/') + 1);

/** Opens a new file (never an existing one, never through a link) on the thread pool. */
const openNew = (path: string): Promise<number> =>
  new Promise((resolve, reject) =>
    openCallback(path, NEW_FILE, 0o600, (e, fd) => (e ? reject(e) : resolve(fd))),
  );

/** Writes all of `bytes` at `position`: a write may take fewer bytes than it was given. */
function writeAll(fd: number, bytes: Uint8Array, position: number): void {
  for (let done = 0; done < bytes.length; )
    done += writeSync(fd, bytes, done, bytes.length - done, position + done);
}

/** Removes a path lstat described: a directory with what it holds (links in it are removed, not followed). */
function removeSync(path: string, s: BigIntStats): void {
  if (s.isDirectory()) rmSync(path, { recursive: true, force: true });
  else unlinkSync(path);
}
