// File trees on the local machine: reading one into manifest entries with their content, and
// writing entries back with their content and metadata.
import { spawnSync } from 'node:child_process';
import { createReadStream, lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { ManifestEntry } from './manifest.js';

/** An entry of a tree being snapshotted, with a way to read its content once. */
export interface SourceEntry {
  readonly entry: Omit<ManifestEntry, 'chunks' | 'sparse'>;
  /** The file's data; for a sparse file, its data extents one after the other. */
  readonly content?: () => AsyncIterable<Uint8Array>;
  /** For a sparse file: its data extents, known once `content` has been read. */
  readonly extents?: () => [number, number][];
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

  return { root, entries: () => walk(root, '') };
}

const isRoot = () => process.getuid?.() === 0;
// utimes() takes seconds as a double, which cannot hold nanoseconds since the epoch; aim at
// the middle of the right microsecond so that the kernel's truncation keeps it exact.
const seconds = (ns: string) => Number(BigInt(ns) / 1000n) / 1e6 + 4e-7;

/** Linux's encoding of a device number (glibc's gnu_dev_major / gnu_dev_minor). */
const major = (rdev: number) => Number(((BigInt(rdev) >> 8n) & 0xfffn) | ((BigInt(rdev) >> 32n) & ~0xfffn));
const minor = (rdev: number) => Number((BigInt(rdev) & 0xffn) | ((BigInt(rdev) >> 12n) & ~0xffn));

/**
 * Writes entries under a directory. Files are written to a temporary name and renamed when
 * their content is complete, so a failed read (a corrupt chunk) leaves no partial file.
 * Directory modes and times are set at the end, deepest first: a read-only directory must
 * still accept its children, and writing a child changes its parent's mtime.
 */
export class DirectoryTarget {
  private readonly dirs: ManifestEntry[] = [];
  private readonly owners = isRoot();

  constructor(readonly root: string) {}

  private abs(rel: string): string {
    return join(this.root, rel);
  }

  async prepare(): Promise<void> {
    await fs.mkdir(this.root, { recursive: true });
  }

  /** Removes whatever is at `rel` (before writing something of another type there). */
  async remove(rel: string): Promise<void> {
    await fs.rm(this.abs(rel), { recursive: true, force: true });
  }

  async write(entry: ManifestEntry, content?: AsyncIterable<Uint8Array>): Promise<void> {
    const path = this.abs(entry.path);
    switch (entry.type) {
      case 'dir': {
        const existing = await fs.lstat(path).catch(() => undefined);
        if (existing && !existing.isDirectory()) await fs.rm(path, { force: true });
        await fs.mkdir(path, { recursive: true, mode: 0o700 });
        this.dirs.push(entry);
        return;
      }
      case 'file': {
        const tmp = join(dirname(path), `.${entry.path.split('/').pop()}.persona-${process.pid}`);
        const handle = await fs.open(tmp, 'w', 0o600);
        try {
          if (entry.sparse) {
            await handle.truncate(entry.size ?? 0);
            let extent = 0;
            let within = 0;
            for await (const piece of content ?? []) {
              let done = 0;
              while (done < piece.length) {
                const [offset, length] = entry.sparse[extent] ?? [0, 0];
                const n = Math.min(length - within, piece.length - done);
                await handle.write(piece, done, n, offset + within);
                done += n;
                within += n;
                if (within === length) {
                  extent++;
                  within = 0;
                }
              }
            }
          } else {
            for await (const piece of content ?? []) await handle.write(piece);
          }
        } catch (e) {
          await handle.close();
          await fs.rm(tmp, { force: true });
          throw e;
        }
        await handle.close();
        await fs.rm(path, { recursive: true, force: true });
        await fs.rename(tmp, path);
        await this.metadata(entry, path);
        return;
      }
      case 'symlink':
        await fs.rm(path, { recursive: true, force: true });
        await fs.symlink(entry.target ?? '', path);
        if (this.owners) await fs.lchown(path, entry.uid, entry.gid);
        await fs.lutimes(path, seconds(entry.mtimeNs), seconds(entry.mtimeNs));
        return;
      case 'hardlink':
        await fs.rm(path, { recursive: true, force: true });
        await fs.link(this.abs(entry.target ?? ''), path);
        return;
      case 'char':
      case 'block':
      case 'fifo': {
        await fs.rm(path, { recursive: true, force: true });
        const args =
          entry.type === 'fifo'
            ? ['mkfifo', [path]]
            : [
                'mknod',
                [
                  path,
                  entry.type === 'char' ? 'c' : 'b',
                  String(major(entry.rdev ?? 0)),
                  String(minor(entry.rdev ?? 0)),
                ],
              ];
        const made = spawnSync(args[0] as string, args[1] as string[], { encoding: 'utf8' });
        if (made.status !== 0)
          throw new Error(`cannot create ${entry.type} ${entry.path}: ${made.stderr || made.error?.message}`);
        await this.metadata(entry, path);
        return;
      }
    }
  }

  /** Sets owner, mode and time of an entry whose content is already right. */
  async setMetadata(entry: ManifestEntry): Promise<void> {
    const path = this.abs(entry.path);
    if (entry.type === 'symlink') {
      if (this.owners) await fs.lchown(path, entry.uid, entry.gid);
      await fs.lutimes(path, seconds(entry.mtimeNs), seconds(entry.mtimeNs));
    } else if (entry.type === 'dir') {
      this.dirs.push(entry);
    } else if (entry.type !== 'hardlink') {
      await this.metadata(entry, path);
    }
  }

  private async metadata(entry: ManifestEntry, path: string): Promise<void> {
    // chown clears set-id bits, so the mode is set after the owner.
    if (this.owners) await fs.chown(path, entry.uid, entry.gid);
    await fs.chmod(path, entry.mode);
    await fs.utimes(path, seconds(entry.mtimeNs), seconds(entry.mtimeNs));
  }

  async finish(): Promise<void> {
    for (const dir of this.dirs.toReversed()) await this.metadata(dir, this.abs(dir.path));
  }
}
