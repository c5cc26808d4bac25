// Trees as tar streams: what a Transport carries to and from a host (`tar -c` there, a
// snapshot here; a snapshot here, `tar -x` there). POSIX pax headers keep long names and
// nanosecond times.
import type { Readable, Writable } from 'node:stream';
import tar from 'tar-stream';
import { InvalidInputError } from '../errors.js';
import { makedev } from './devices.js';
import { EntryChecker, type ManifestEntry } from './manifest.js';
import type { SnapshotRecord } from './records.js';
import type { SnapshotStore } from './store.js';
import { TarWriter } from './tar-writer.js';
import type { SourceEntry, TreeSource } from './tree.js';

const TYPES: Readonly<Record<string, ManifestEntry['type']>> = {
  file: 'file',
  'contiguous-file': 'file',
  directory: 'dir',
  symlink: 'symlink',
  link: 'hardlink',
  'character-device': 'char',
  'block-device': 'block',
  fifo: 'fifo',
};

/**
 * `./etc/x/` → `etc/x` (undefined for the tree's root itself). Names that would leave the tree
 * (`..`, absolute) are refused rather than rewritten: a tar made with `tar -c` never holds one,
 * so one that does was made to escape.
 */
function relative(name: string, where: string): string | undefined {
  const problem = name.startsWith('/')
    ? 'the name is absolute'
    : name.includes('\0')
      ? 'the name contains a NUL byte'
      : name.split('/').includes('..')
        ? 'the name contains ".."'
        : undefined;
  if (problem !== undefined) {
    throw new InvalidInputError(`${where} is refused: ${problem}`, [{ path: where, message: problem }]);
  }
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  return parts.length === 0 ? undefined : parts.join('/');
}

export interface TarSourceOptions {
  /**
   * Accept a stream with no entries. Off by default: a `tar` that failed upstream of a pipe
   * leaves an empty stream, which must not become a good, empty snapshot.
   */
  readonly allowEmpty?: boolean;
}

// What a directory missing from the tar is restored as when entries below it are present
// (as `tar -x` creates them): owned by root, rwxr-xr-x.
const SYNTHESISED_DIR_MODE = 0o755;

function mtimeNs(header: Partial<tar.Header>): string {
  const pax = (header.pax as Record<string, string> | null | undefined)?.mtime;
  if (pax && /^-?\d+(\.\d+)?$/.test(pax)) {
    const [sec, frac = ''] = pax.split('.');
    return (BigInt(sec as string) * 1_000_000_000n + BigInt(frac.padEnd(9, '0').slice(0, 9))).toString();
  }
  return (BigInt(header.mtime?.getTime() ?? 0) * 1_000_000n).toString();
}

/**
 * A tree read from a tar stream, e.g. the output of `tar -cf - -C / etc srv` on a host. Every
 * entry is checked as it comes (EntryChecker): a name twice, an entry below a symlink or a file,
 * a hard link to anything but an earlier file, or a name leaving the tree refuses the whole
 * stream. Directories that are absent but have entries below them are added.
 */
export function tarSource(stream: Readable, root: string, options: TarSourceOptions = {}): TreeSource {
  return {
    root,
    async *entries(): AsyncGenerator<SourceEntry> {
      const extract = tar.extract();
      // A source that fails (a file that cannot be read) must end the entries, not hang them.
      stream.once('error', (e) => extract.destroy(e));
      stream.pipe(extract as unknown as Writable);
      const checker = new EntryChecker();
      for await (const item of extract) {
        const header: Partial<tar.Header> = item.header;
        const where = `tar entry ${JSON.stringify(header.name ?? '')}`;
        const path = relative(header.name ?? '', where);
        const type = TYPES[header.type ?? 'file'];
        if (path === undefined || type === undefined) {
          item.resume();
          continue;
        }
        const target =
          type === 'symlink'
            ? (header.linkname ?? '')
            : type === 'hardlink'
              ? (relative(header.linkname ?? '', `${where} (its link target)`) ?? '')
              : undefined;
        const entry = {
          path,
          type,
          mode: (header.mode ?? 0) & 0o7777,
          uid: header.uid ?? 0,
          gid: header.gid ?? 0,
          ...(header.uname ? { user: header.uname } : {}),
          ...(header.gname ? { group: header.gname } : {}),
          mtimeNs: mtimeNs(header),
          ...(type === 'file' ? { size: header.size ?? 0 } : {}),
          ...(target === undefined ? {} : { target }),
          ...(type === 'char' || type === 'block'
            ? { rdev: makedev(header.devmajor ?? 0, header.devminor ?? 0) }
            : {}),
        };
        checker.add(entry, where);
        if (type === 'file') {
          // The writer reads the content before asking for the next entry, as tar requires.
          yield { entry, content: () => item as AsyncIterable<Uint8Array> };
        } else {
          item.resume();
          yield { entry };
        }
      }
      for (const dir of checker.missingDirectories()) {
        yield {
          entry: {
            path: dir.path,
            type: 'dir',
            mode: SYNTHESISED_DIR_MODE,
            uid: 0,
            gid: 0,
            mtimeNs: dir.mtimeNs,
          },
        };
      }
      if (checker.count === 0 && !options.allowEmpty) {
        throw new InvalidInputError(
          `the tar stream ${root} holds no entries: refused, since a tar that failed upstream leaves an empty stream (ask for an empty snapshot explicitly to accept it)`,
          [{ path: 'tar', message: 'no entries' }],
        );
      }
    },
  };
}

export async function* withHoles(store: SnapshotStore, entry: ManifestEntry): AsyncGenerator<Uint8Array> {
  if (!entry.sparse) {
    yield* store.content(entry);
    return;
  }
  // tar here carries sparse files whole: the holes become zeros on the way.
  let at = 0;
  const zeros = (n: number) => Buffer.alloc(n);
  const extents = [...entry.sparse];
  let current = extents.shift();
  let within = 0;
  for await (const piece of store.content(entry)) {
    let done = 0;
    while (done < piece.length && current) {
      if (at < current[0]) {
        yield zeros(current[0] - at);
        at = current[0];
      }
      const n = Math.min(current[1] - within, piece.length - done);
      yield piece.subarray(done, done + n);
      done += n;
      within += n;
      at += n;
      if (within === current[1]) {
        current = extents.shift();
        within = 0;
      }
    }
  }
  if (at < (entry.size ?? 0)) yield zeros((entry.size ?? 0) - at);
}

/** Writes a snapshot as a tar stream (pax format), every chunk verified on the way. */
export async function writeTar(store: SnapshotStore, record: SnapshotRecord, out: Writable): Promise<void> {
  const manifest = await store.manifest(record);
  const writer = new TarWriter(out, { names: true });
  for (const e of manifest.entries) {
    await writer.entry(e);
    if (e.type === 'file') for await (const piece of withHoles(store, e)) await writer.content(piece);
  }
  await writer.finish();
}
