// Trees a hostile host could send: as tar streams, as raw entry lists that skip every check on
// the way in (to seal a crafted manifest through the store's real code), and as manifest entries.
import type { Readable } from 'node:stream';
import { zstdCompressSync } from 'node:zlib';
import tar from 'tar-stream';
import type { ManifestEntry } from '../../core/snapshot/manifest.js';
import { sha256Hex } from '../../core/snapshot/pack.js';
import type { SnapshotRecord } from '../../core/snapshot/records.js';
import { seal } from '../../core/snapshot/seal.js';
import { MANIFEST_PREFIX, type SnapshotStore } from '../../core/snapshot/store.js';
import type { SourceEntry, TreeSource } from '../../core/snapshot/tree.js';

export interface Crafted {
  readonly name: string;
  readonly type: ManifestEntry['type'];
  readonly mode?: number;
  readonly uid?: number;
  readonly gid?: number;
  /** Symlink target, or the name a hard link points at. */
  readonly target?: string;
  readonly content?: string;
}

const TAR_TYPES = {
  file: 'file',
  dir: 'directory',
  symlink: 'symlink',
  hardlink: 'link',
  char: 'character-device',
  block: 'block-device',
  fifo: 'fifo',
} as const;

/** A pax tar stream holding exactly these entries, in this order, names as given. */
export function tarOf(entries: readonly Crafted[]): Readable {
  const pack = tar.pack();
  for (const e of entries) {
    const header = {
      name: e.name,
      type: TAR_TYPES[e.type],
      mode: e.mode ?? (e.type === 'dir' ? 0o755 : 0o644),
      uid: e.uid ?? 0,
      gid: e.gid ?? 0,
      mtime: new Date(1_600_000_000_000),
      ...(e.target === undefined ? {} : { linkname: e.target }),
      ...(e.type === 'char' ? { devmajor: 1, devminor: 3 } : {}),
    };
    if (e.type === 'file')
      pack.entry({ ...header, size: Buffer.byteLength(e.content ?? '') }, e.content ?? '');
    else pack.entry(header);
  }
  pack.finalize();
  return pack as unknown as Readable;
}

/** The entry a manifest would hold for it, name taken as the path without any check. */
export function entryOf(e: Crafted): ManifestEntry {
  return {
    // A directory's trailing slash is tar's; a manifest's path has none.
    path: e.name.length > 1 ? e.name.replace(/\/+$/, '') : e.name,
    type: e.type,
    mode: e.mode ?? (e.type === 'dir' ? 0o755 : 0o644),
    uid: e.uid ?? 0,
    gid: e.gid ?? 0,
    mtimeNs: '1600000000000000000',
    ...(e.type === 'file' ? { size: Buffer.byteLength(e.content ?? '') } : {}),
    ...(e.target === undefined ? {} : { target: e.target }),
    ...(e.type === 'char' ? { rdev: 259 } : {}),
  };
}

/**
 * A TreeSource that yields the entries as they are: no checker, no normalisation, so that the
 * store's own check of what it writes is what refuses a hostile one.
 */
export function rawSource(entries: readonly Crafted[]): TreeSource {
  return {
    root: 'crafted',
    async *entries(): AsyncGenerator<SourceEntry> {
      for (const e of entries) {
        const entry = entryOf(e);
        if (e.type === 'file') {
          const bytes = Buffer.from(e.content ?? '');
          yield {
            entry,
            content: async function* () {
              yield bytes;
            },
          };
        } else yield { entry };
      }
    },
  };
}

/**
 * The hostile trees of the issue, aimed at `outside` (a directory beside the target holding
 * `shadow` and `cron.d/job`) and `canary` (a file beside the target). `refused` is the entry
 * a check must name.
 */
export function hostileTrees(
  outside: string,
  canary: string,
): { what: string; refused: string; refusedOnRead?: string; entries: Crafted[] }[] {
  return [
    {
      what: 'a symlink to a directory outside, then a directory and files below it',
      refused: 'a/cron.d',
      entries: [
        { name: 'a', type: 'symlink', target: outside },
        { name: 'a/cron.d/', type: 'dir', mode: 0o777 },
        { name: 'a/cron.d/job', type: 'file', content: '* * * * * root evil\n', mode: 0o4777 },
        { name: 'a/shadow', type: 'fifo', mode: 0o666 },
      ],
    },
    {
      what: 'the observed case: evil -> outside, then a FIFO, a chmod and a chown through it',
      refused: 'evil/shadow',
      refusedOnRead: 'evil/shadow',
      entries: [
        { name: 'evil', type: 'symlink', target: outside },
        { name: 'evil/shadow', type: 'fifo', mode: 0o666 },
        { name: 'evil/cron.d', type: 'char', mode: 0o666 },
        { name: 'evil/', type: 'dir', mode: 0o777, uid: 0, gid: 0 },
      ],
    },
    {
      what: 'a hard link to a file below a symlink to outside',
      refused: 'x',
      entries: [
        { name: 'a', type: 'symlink', target: outside },
        { name: 'x', type: 'hardlink', target: 'a/shadow' },
      ],
    },
    {
      what: 'names with ..',
      refused: '../canary',
      entries: [
        { name: 'd/', type: 'dir' },
        { name: '../canary', type: 'file', content: 'overwritten\n', mode: 0o777 },
        { name: 'd/../../canary', type: 'file', content: 'overwritten\n' },
      ],
    },
    {
      what: 'a hard link whose target has ..',
      refused: 'x',
      entries: [{ name: 'x', type: 'hardlink', target: '../canary' }],
    },
    {
      what: 'absolute names',
      refused: canary,
      entries: [
        { name: canary, type: 'file', content: 'overwritten\n', mode: 0o777 },
        { name: `${outside}/cron.d/`, type: 'dir', mode: 0o777 },
      ],
    },
    {
      what: 'a hard link to an absolute name',
      refused: 'x',
      entries: [{ name: 'x', type: 'hardlink', target: `${outside}/shadow` }],
    },
    {
      what: 'the same path twice, first a link out, then a file through it',
      refused: 'f',
      entries: [
        { name: 'f', type: 'symlink', target: canary },
        { name: 'f', type: 'file', content: 'overwritten\n', mode: 0o777 },
      ],
    },
    {
      what: 'a file below a file',
      refused: 'f/g',
      entries: [
        { name: 'f', type: 'file', content: 'a file\n' },
        { name: 'f/g', type: 'file', content: 'below a file\n' },
      ],
    },
    {
      what: 'a file below a symlink to a file outside',
      refused: 'l/x',
      entries: [
        { name: 'l', type: 'symlink', target: canary },
        { name: 'l/x', type: 'file', content: 'x\n' },
      ],
    },
    {
      what: 'entries below a hard link and below a FIFO',
      refused: 'h/x',
      entries: [
        { name: 'f', type: 'file', content: 'a file\n' },
        { name: 'h', type: 'hardlink', target: 'f' },
        { name: 'h/x', type: 'file', content: 'x\n' },
        { name: 'p', type: 'fifo' },
        { name: 'p/x', type: 'dir' },
      ],
    },
    {
      what: 'a directory implied by entries below it, then a symlink out in its place',
      refused: 'a',
      refusedOnRead: 'a/shadow',
      entries: [
        { name: 'a/x', type: 'file', content: 'x\n' },
        { name: 'a', type: 'symlink', target: outside },
        { name: 'a/shadow', type: 'file', content: 'overwritten\n' },
      ],
    },
  ];
}

/**
 * Records a snapshot whose manifest holds exactly these entries, as a hostile writer with the
 * store's key would: the store itself refuses such a manifest when it writes one, so the manifest
 * is sealed here with the store's own key and format. File contents are stored first through a
 * harmless snapshot, so that the crafted entries point at chunks that exist.
 */
export async function recordCrafted(
  store: SnapshotStore,
  entries: readonly Crafted[],
  host: string,
): Promise<SnapshotRecord> {
  const files = entries.filter((e) => e.type === 'file');
  const carrier = await store.create(
    rawSource(files.map((f, i) => ({ name: `c${i}`, type: 'file' as const, content: f.content ?? '' }))),
    { host: `${host}-contents` },
  );
  const chunks = new Map((await store.manifest(carrier)).entries.map((e) => [e.path, e.chunks ?? []]));
  let file = 0;
  const crafted = entries.map((e) => {
    const entry = entryOf(e);
    return e.type === 'file' ? { ...entry, chunks: chunks.get(`c${file++}`) ?? [] } : entry;
  });
  const createdAt = new Date().toISOString();
  const manifest = { format: 1, host, createdAt, root: 'crafted', entries: crafted };
  const bytes = seal(
    store.keys.sealKey,
    zstdCompressSync(Buffer.from(JSON.stringify(manifest))),
    'manifest:',
  );
  const manifestKey = `${MANIFEST_PREFIX}${sha256Hex(bytes)}`;
  await store.deps.objects.put(manifestKey, bytes);
  const record: SnapshotRecord = {
    host,
    version: ((await store.deps.records.latest(host))?.version ?? 0) + 1,
    createdAt,
    manifestKey,
    indexKeys: carrier.indexKeys,
    stats: { ...carrier.stats, files: files.length },
  };
  await store.deps.records.put(record);
  return record;
}
