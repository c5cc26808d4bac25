import * as fs from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../../core/errors.js';
import {
  checkManifest,
  conformsPlainly,
  EntryChecker,
  Manifest,
  type ManifestEntry,
} from '../../../core/snapshot/manifest.js';
import type { SnapshotStore } from '../../../core/snapshot/store.js';
import { tarSource, writeTar } from '../../../core/snapshot/tar.js';
import { DirectoryTarget } from '../../../core/snapshot/tree.js';
import { type Crafted, rawSource, recordCrafted, tarOf } from '../../support/hostile-trees.js';
import { describeTree } from '../../support/snapshot-store.js';
import { useTestStore } from '../../support/use-test-store.js';

const e = (path: string, type: ManifestEntry['type'] = 'file', target?: string): ManifestEntry => ({
  path,
  type,
  mode: type === 'dir' ? 0o755 : 0o644,
  uid: 0,
  gid: 0,
  mtimeNs: '1600000000000000000',
  ...(target === undefined ? {} : { target }),
});

const manifestOf = (entries: ManifestEntry[]) => ({
  format: 1,
  host: 'web-a',
  createdAt: '2026-01-01T00:00:00.000Z',
  root: '/',
  entries,
});

const refusal = (f: () => unknown): InvalidInputError => {
  try {
    f();
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidInputError);
    return error as InvalidInputError;
  }
  throw new Error('expected a refusal');
};

describe('checkManifest', () => {
  it('accepts a manifest in path order whose parents are directories and whose links point at files', () => {
    const m = manifestOf([
      e('etc', 'dir'),
      e('etc/hostname'),
      e('etc/link', 'symlink', '/anywhere/at/all'),
      e('srv', 'dir'),
      e('srv/hostname', 'hardlink', 'etc/hostname'),
    ]);
    expect(checkManifest(m, 'snapshots/manifests/abc').entries).toHaveLength(5);
  });

  it.each([
    ['a path twice', [e('a'), e('a', 'symlink', '/etc')], 'entries[1]', 'the same path appears twice'],
    ['a path out of order', [e('b'), e('a')], 'entries[1]', 'out of path order'],
    ['an absent parent', [e('etc/passwd')], 'entries[0]', 'its parent "etc" is not in the manifest'],
    [
      'an entry below a symlink',
      [e('a', 'symlink', '/etc'), e('a/shadow')],
      'entries[1]',
      'its parent "a" is a symlink, not a directory',
    ],
    ['an entry below a file', [e('f'), e('f/g')], 'entries[1]', 'its parent "f" is a file, not a directory'],
    [
      'a hard link below a symlink',
      [e('a', 'symlink', '/etc'), e('x', 'hardlink', 'a/shadow')],
      'entries[1]',
      'its link target "a/shadow" is not a file of the tree in the manifest',
    ],
    [
      'a hard link to a directory',
      [e('d', 'dir'), e('x', 'hardlink', 'd')],
      'entries[1]',
      'its link target "d" is a dir, not a regular file',
    ],
    [
      'a hard link to ..',
      [e('x', 'hardlink', '../etc/shadow')],
      'entries[0]',
      'its link target "../etc/shadow" is refused: the path contains ".."',
    ],
    [
      'a hard link to an absolute name',
      [e('x', 'hardlink', '/etc/shadow')],
      'entries[0]',
      'its link target "/etc/shadow" is refused: the path is absolute',
    ],
    ['a symlink without a target', [e('l', 'symlink', '')], 'entries[0]', 'a symlink needs a target'],
  ])('refuses %s, naming the entry', (_what, entries, at, message) => {
    const error = refusal(() => checkManifest(manifestOf(entries), 'snapshots/manifests/abc'));
    expect(error.message).toContain('snapshots/manifests/abc');
    expect(error.issues).toEqual(
      expect.arrayContaining([{ path: at, message: expect.stringContaining(message) }]),
    );
  });

  it.each([
    ['..', '../etc/passwd', 'the path contains ".."'],
    ['an absolute name', '/etc/passwd', 'the path is absolute'],
    ['an empty segment', 'etc//passwd', 'the path has "." or empty segments'],
    ['a . segment', './etc', 'the path has "." or empty segments'],
    ['a NUL byte', 'etc\0passwd', 'the path contains a NUL byte'],
  ])('refuses a path with %s, naming the entry by index and path', (_what, path, message) => {
    const error = refusal(() => checkManifest(manifestOf([e(path)]), 'm'));
    expect(error.issues).toEqual([
      { path: 'entries[0].path', message: `${JSON.stringify(path)}: ${message}` },
    ]);
  });
});

describe('conformsPlainly (the schema without zod, for manifests that keep it)', () => {
  // Values near the schema's edges, right and wrong, for every field of an entry.
  const anyValue = fc.oneof(
    fc.constant(undefined),
    fc.constant(null),
    fc.boolean(),
    fc.constantFrom(0, 1, -1, 0o7777, 0o10000, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53, 2 ** 60),
    fc.constantFrom(
      '',
      'a',
      'a/b',
      '/abs',
      'a/../b',
      './a',
      'a//b',
      'a\0b',
      '123',
      '-123',
      '1x',
      'file',
      'dir',
      'sock',
    ),
    fc.constantFrom([], ['a'], [1], [[0, 1]], [[0, 0]], [[1]], [[-1, 2]], [[0, 1, 2]]),
    fc.constant({}),
  );
  const fields = [
    'path',
    'type',
    'mode',
    'uid',
    'gid',
    'user',
    'group',
    'size',
    'mtimeNs',
    'target',
    'rdev',
    'chunks',
    'ino',
    'ctimeNs',
    'sparse',
    'unknown',
  ];
  const entryArb = fc.oneof(
    // A valid entry with one field replaced or added.
    fc.record({ field: fc.constantFrom(...fields), value: anyValue }).map(({ field, value }) => ({
      ...e('a/b'),
      size: 3,
      chunks: ['x'],
      ino: '12',
      ctimeNs: '5',
      [field]: value,
    })),
    fc.constant(e('a/b')),
    anyValue,
  );

  it('says yes only to what zod accepts, and to the manifests a tree makes', () => {
    fc.assert(
      fc.property(fc.array(entryArb, { maxLength: 4 }), fc.constantFrom(1, 2), (entries, format) => {
        const m = { ...manifestOf(entries as ManifestEntry[]), format };
        if (conformsPlainly(m)) expect(Manifest.safeParse(m).success).toBe(true);
      }),
      { numRuns: 3000 },
    );
    const sparse = ['x'];
    delete sparse[0];
    expect(conformsPlainly(manifestOf([{ ...e('a'), chunks: sparse as string[] }]))).toBe(false);
    const valid = manifestOf([
      e('etc', 'dir'),
      { ...e('etc/hosts'), size: 10, chunks: ['c'], ino: '4', ctimeNs: '-1', user: 'root', group: 'root' },
      { ...e('etc/big'), size: 9, sparse: [[0, 4096]], chunks: [] },
      e('etc/link', 'symlink', 'hosts'),
      { ...e('dev/null', 'char'), rdev: 259 },
    ]);
    expect(conformsPlainly(valid)).toBe(true);
    expect(Manifest.safeParse(valid).success).toBe(true);
  });
});

describe('EntryChecker (a tree or a tar as it is read)', () => {
  it('adds the directories that entries imply, and takes a directory that comes after its contents', () => {
    const c = new EntryChecker();
    c.add(e('srv/app/conf/x.conf'), 'x');
    c.add(e('srv/app', 'dir'), 'srv/app');
    expect(c.missingDirectories().map((d) => d.path)).toEqual(['srv/app/conf', 'srv']);
  });

  it('refuses a symlink, file or hard link where entries already below it made a directory', () => {
    const c = new EntryChecker();
    c.add(e('a/x'), 'tar entry "a/x"');
    const error = refusal(() => c.add(e('a', 'symlink', '/etc'), 'tar entry "a"'));
    expect(error.message).toBe(
      'tar entry "a" is refused: entries below it were seen, so it must be a directory, not a symlink',
    );
  });

  it('refuses a hard link to a file that comes later: tar links to what it has already sent', () => {
    const c = new EntryChecker();
    expect(() => c.add(e('x', 'hardlink', 'f'), 'x')).toThrow(/"f" is not a file of the tree before it/);
  });
});

const ts = useTestStore();
const { fresh } = ts;
let twice = 0;
let store: SnapshotStore;

beforeAll(async () => {
  store = await ts.open();
});

describe('a crafted manifest sealed in the store', () => {
  const hostile: Crafted[] = [
    { name: 'a', type: 'symlink', target: '/etc' },
    { name: 'a/cron.d', type: 'dir', mode: 0o777 },
  ];

  it('is refused on every read, naming the manifest and the entry: show, restore, export', async () => {
    await expect(store.create(rawSource(hostile), { host: 'crafted-raw' })).rejects.toThrow(
      'entries[1] "a/cron.d": its parent "a" is a symlink, not a directory',
    );
    expect(await store.list('crafted-raw')).toEqual([]);
    const record = await recordCrafted(store, hostile, 'crafted');
    const message = `manifest ${record.manifestKey} is refused: entries[1] "a/cron.d": its parent "a" is a symlink, not a directory`;
    await expect(store.manifest(record)).rejects.toThrow(message);
    const out = fresh('crafted-out');
    await expect(store.restore(record, new DirectoryTarget(out))).rejects.toThrow(message);
    expect(await fs.readdir(out)).toEqual([]);
    const sink = new PassThrough();
    sink.resume();
    await expect(writeTar(store, record, sink)).rejects.toThrow(message);
  });
});

describe('what a tar stream may hold', () => {
  const roundTrip = async (entries: Crafted[], host: string) => {
    const record = await store.create(tarSource(tarOf(entries), host), { host });
    const out = fresh(host);
    const stats = await store.restore(record, new DirectoryTarget(out));
    return { record, out, stats };
  };

  it('restores a file and a directory whose names are 255 bytes long', async () => {
    const long = 'n'.repeat(251);
    const name = `${long}.txt`;
    const dir = 'd'.repeat(255);
    const { out, stats } = await roundTrip(
      [
        { name: `${dir}/`, type: 'dir', mode: 0o750 },
        { name: `${dir}/${name}`, type: 'file', content: 'a long name\n' },
        { name, type: 'file', content: 'at the top\n' },
      ],
      'long-names',
    );
    expect(stats.failed).toEqual([]);
    expect(await fs.readFile(join(out, dir, name), 'utf8')).toBe('a long name\n');
    expect(await fs.readFile(join(out, name), 'utf8')).toBe('at the top\n');
    expect(((await fs.stat(join(out, dir))).mode & 0o7777).toString(8)).toBe('750');
    // No temporary left behind beside them.
    expect((await fs.readdir(out)).sort()).toEqual([dir, name].sort());
  });

  it('restores entries whose parent directories the tar leaves out, creating the parents', async () => {
    const { record, out, stats } = await roundTrip(
      [
        { name: 'srv/app/conf/app.conf', type: 'file', content: 'port = 80\n', mode: 0o640 },
        { name: 'srv/app/bin/run', type: 'file', content: '#!/bin/sh\n', mode: 0o755 },
        { name: 'srv/app/', type: 'dir', mode: 0o700, uid: 33, gid: 33 },
      ],
      'no-parents',
    );
    expect(stats.failed).toEqual([]);
    const manifest = await store.manifest(record);
    expect(manifest.entries.map((x) => `${x.type} ${x.path} ${x.mode.toString(8)} ${x.uid}`)).toEqual([
      'dir srv 755 0',
      'dir srv/app 700 33',
      'dir srv/app/bin 755 0',
      'file srv/app/bin/run 755 0',
      'dir srv/app/conf 755 0',
      'file srv/app/conf/app.conf 640 0',
    ]);
    const tree = await describeTree(out);
    expect(tree.map((l) => `${l.type} ${l.path} ${l.mode.toString(8)} ${l.uid}`)).toEqual([
      'dir srv 755 0',
      'dir srv/app 700 33',
      'dir srv/app/bin 755 0',
      'file srv/app/bin/run 755 0',
      'dir srv/app/conf 755 0',
      'file srv/app/conf/app.conf 640 0',
    ]);
  });

  it.each([
    [
      'a file',
      [
        { name: 'f', type: 'file', content: '1' },
        { name: 'f', type: 'file', content: '2' },
      ],
      'f',
    ],
    [
      'a directory',
      [
        { name: 'd/', type: 'dir' },
        { name: './d', type: 'dir' },
      ],
      './d',
    ],
  ] as [string, Crafted[], string][])('refuses %s named twice, naming it', async (_what, entries, named) => {
    const host = `twice-${twice++}`;
    await expect(store.create(tarSource(tarOf(entries), host), { host })).rejects.toThrow(
      `tar entry ${JSON.stringify(named)} is refused: the same path appears twice`,
    );
    expect(await store.list(host)).toEqual([]);
  });

  it('refuses an empty stream, or a tar of no entries, unless an empty snapshot is asked for', async () => {
    const empty = () => Readable.from([Buffer.alloc(0)]);
    const endOnly = () => Readable.from([Buffer.alloc(1024)]);
    for (const stream of [empty(), endOnly(), tarOf([{ name: './', type: 'dir' }])]) {
      await expect(store.create(tarSource(stream, 'upstream'), { host: 'empty' })).rejects.toThrow(
        /holds no entries/,
      );
    }
    expect(await store.list('empty')).toEqual([]);
    const record = await store.create(tarSource(empty(), 'upstream', { allowEmpty: true }), {
      host: 'empty',
    });
    expect(record.stats.files).toBe(0);
    expect((await store.manifest(record)).entries).toEqual([]);
  });

  it('refuses a stream that stops in the middle (a tar killed upstream)', async () => {
    const chunks: Buffer[] = [];
    for await (const c of tarOf([{ name: 'big', type: 'file', content: 'x'.repeat(5000) }])) chunks.push(c);
    const cut = Buffer.concat(chunks).subarray(0, 2048);
    await expect(store.create(tarSource(Readable.from([cut]), 'cut'), { host: 'cut' })).rejects.toThrow();
    expect(await store.list('cut')).toEqual([]);
  });
});
