// A restore writes only inside its target. Run as root, so that a chown, a mknod or a write
// anywhere on the machine would succeed if the code let it: every test restores into
// `dir/target` with canaries in `dir` (files, a directory, symlinks to them) and checks that
// not one of them changed, not even its ctime, and that nothing appeared beside them.
import { lstatSync, mkdirSync, readFileSync, readlinkSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../../core/errors.js';
import type { ManifestEntry } from '../../../core/snapshot/manifest.js';
import type { SnapshotStore } from '../../../core/snapshot/store.js';
import { tarSource } from '../../../core/snapshot/tar.js';
import { DirectoryTarget, directorySource, UnsafePathError } from '../../../core/snapshot/tree.js';
import { type Canaries, plantCanaries } from '../../support/canaries.js';
import {
  type Crafted,
  entryOf,
  hostileTrees,
  rawSource,
  recordCrafted,
  tarOf,
} from '../../support/hostile-trees.js';
import { startTestStore, type TestStore } from '../../support/snapshot-store.js';

let ts: TestStore;
let store: SnapshotStore;
let counter = 0;

beforeAll(async () => {
  expect(process.getuid?.(), 'these tests prove confinement as root').toBe(0);
  ts = await startTestStore();
  store = await ts.open();
});

afterAll(async () => {
  await ts?.stop();
});

const canaries = async (): Promise<Canaries> => {
  const dir = join(ts.dir, `case-${counter++}`);
  mkdirSync(dir);
  return plantCanaries(dir);
};

async function* contentOf(text: string): AsyncGenerator<Uint8Array> {
  yield Buffer.from(text);
}

/** Writes entries straight through a DirectoryTarget, as if every check before it were gone. */
async function writeDirectly(target: string, entries: readonly Crafted[]): Promise<void> {
  const t = new DirectoryTarget(target);
  await t.prepare();
  for (const e of entries) {
    const entry = entryOf(e);
    await t.write(entry, e.type === 'file' ? contentOf(e.content ?? '') : undefined).catch(() => undefined);
  }
  await t.finish();
}

const refusalOf = async (p: Promise<unknown>): Promise<InvalidInputError> => {
  const e = await p.then(
    () => undefined,
    (error: unknown) => error,
  );
  expect(e).toBeInstanceOf(InvalidInputError);
  return e as InvalidInputError;
};

const names = (e: InvalidInputError) =>
  [e.message, ...e.issues.map((i) => `${i.path} ${i.message}`)].join('\n');

describe('a hostile tree', () => {
  const cases = hostileTrees('/outside', '/canary');
  cases.forEach((shape, i) => {
    it(`cannot reach outside the target: ${shape.what}`, async () => {
      const c = await canaries();
      const hostile = hostileTrees(c.outside, c.file)[i] as (typeof cases)[number];
      const host = `hostile-${i}`;

      // As a tar stream: refused while it is read, naming the entry; nothing is recorded.
      const fromTar = await refusalOf(store.create(tarSource(tarOf(hostile.entries), 'crafted'), { host }));
      expect(names(fromTar)).toContain(JSON.stringify(hostile.refused));
      expect(await store.list(host)).toEqual([]);

      // As a manifest sealed by the store's real code (a writer that skipped the checks):
      // refused when read, before anything is written.
      // The store refuses to write it…
      const written = await refusalOf(store.create(rawSource(hostile.entries), { host: `${host}-raw` }));
      expect(names(written)).toContain(JSON.stringify(hostile.refusedOnRead ?? hostile.refused));
      expect(await store.list(`${host}-raw`)).toEqual([]);
      // …and one sealed with the key anyway is refused when read.
      const record = await recordCrafted(store, hostile.entries, `${host}-sealed`);
      const onRead = await refusalOf(store.restore(record, new DirectoryTarget(c.target)));
      expect(names(onRead)).toContain(JSON.stringify(hostile.refusedOnRead ?? hostile.refused));
      expect(onRead.message).toContain(record.manifestKey);
      expect(await fs.readdir(c.target)).toEqual([]);

      // Straight through the target, with both checks out of the way: still nothing outside.
      await writeDirectly(c.target, hostile.entries);
      expect(c.picture()).toEqual(c.before);
    });
  });
});

/** A small host tree as a tar stream would bring it. */
const etcTree = (): Crafted[] => [
  { name: 'etc/', type: 'dir', mode: 0o755 },
  { name: 'etc/cron.d/', type: 'dir', mode: 0o755 },
  { name: 'etc/cron.d/daily', type: 'file', content: '0 0 * * * root backup\n', mode: 0o644 },
  { name: 'etc/passwd', type: 'file', content: 'root:x:0:0::/root:/bin/sh\n', mode: 0o644 },
  { name: 'etc/shadow', type: 'file', content: 'root:*:19000:0:99999:7:::\n', mode: 0o640, gid: 42 },
  { name: 'etc/shadow-link', type: 'hardlink', target: 'etc/shadow' },
  { name: 'etc/initctl', type: 'fifo', mode: 0o600 },
  { name: 'etc/null', type: 'char', mode: 0o666 },
];

const typeAt = (path: string) => {
  const s = lstatSync(path);
  return s.isSymbolicLink()
    ? 'symlink'
    : s.isDirectory()
      ? 'dir'
      : s.isFile()
        ? 'file'
        : s.isFIFO()
          ? 'fifo'
          : 'other';
};

/** The target holds the tree, every entry of the type it has in the snapshot. */
function expectEtcRestored(target: string): void {
  expect(typeAt(join(target, 'etc'))).toBe('dir');
  expect(typeAt(join(target, 'etc/cron.d'))).toBe('dir');
  expect(readFileSync(join(target, 'etc/cron.d/daily'), 'utf8')).toBe('0 0 * * * root backup\n');
  expect(readFileSync(join(target, 'etc/passwd'), 'utf8')).toBe('root:x:0:0::/root:/bin/sh\n');
  expect(typeAt(join(target, 'etc/shadow'))).toBe('file');
  expect(lstatSync(join(target, 'etc/shadow')).ino).toBe(lstatSync(join(target, 'etc/shadow-link')).ino);
  expect(lstatSync(join(target, 'etc/shadow')).mode & 0o7777).toBe(0o640);
  expect(typeAt(join(target, 'etc/initctl'))).toBe('fifo');
  expect(lstatSync(join(target, 'etc/null')).isCharacterDevice()).toBe(true);
  expect(lstatSync(join(target, 'etc')).mode & 0o7777).toBe(0o755);
}

describe('links already in the target', () => {
  let etc: Awaited<ReturnType<SnapshotStore['create']>>;
  beforeAll(async () => {
    etc = await store.create(tarSource(tarOf(etcTree()), 'etc'), { host: 'etc-tree' });
  });

  it('are replaced where the snapshot has a directory, never followed: etc -> outside', async () => {
    const c = await canaries();
    await fs.symlink(c.outside, join(c.target, 'etc'));
    const stats = await store.restore(etc, new DirectoryTarget(c.target));
    expect(stats.failed).toEqual([]);
    expectEtcRestored(c.target);
    expect(c.picture()).toEqual(c.before);
  });

  it('are replaced, not written through, where the snapshot has a file, a FIFO, a device or a directory', async () => {
    const c = await canaries();
    await fs.mkdir(join(c.target, 'etc'));
    await fs.symlink(join(c.outside, 'shadow'), join(c.target, 'etc/shadow'));
    await fs.symlink(join(c.outside, 'cron.d'), join(c.target, 'etc/cron.d'));
    await fs.symlink(c.file, join(c.target, 'etc/passwd'));
    await fs.symlink(c.file, join(c.target, 'etc/initctl'));
    await fs.symlink(join(c.outside, 'shadow'), join(c.target, 'etc/null'));
    await fs.symlink(c.file, join(c.target, 'etc/shadow-link'));
    const stats = await store.restore(etc, new DirectoryTarget(c.target));
    expect(stats.failed).toEqual([]);
    expectEtcRestored(c.target);
    expect(c.picture()).toEqual(c.before);
  });

  it('are replaced in an incremental restore against what the target holds (existing, deleteExtra)', async () => {
    const c = await canaries();
    await fs.mkdir(join(c.target, 'etc'));
    await fs.symlink(join(c.outside, 'cron.d'), join(c.target, 'etc/cron.d'));
    await fs.symlink(c.file, join(c.target, 'etc/passwd'));
    await fs.symlink(c.outside, join(c.target, 'etc/extra'));
    const existing = await store.scan(directorySource(c.target));
    const stats = await store.restore(etc, new DirectoryTarget(c.target), { existing, deleteExtra: true });
    expect(stats.failed).toEqual([]);
    expect(stats.removed).toBe(1);
    expectEtcRestored(c.target);
    expect(c.picture()).toEqual(c.before);
  });

  it('are not trusted when `existing` says a file or directory is there: metadata, links and removals stay inside', async () => {
    const c = await canaries();
    const manifest = await store.manifest(etc);
    await fs.mkdir(join(c.target, 'etc'));
    await fs.symlink(join(c.outside, 'cron.d'), join(c.target, 'etc/cron.d'));
    await fs.symlink(c.file, join(c.target, 'etc/passwd'));
    await fs.symlink(join(c.outside, 'shadow'), join(c.target, 'etc/shadow'));
    const extra = (path: string, type: ManifestEntry['type']): ManifestEntry => ({
      path,
      type,
      mode: 0o644,
      uid: 0,
      gid: 0,
      mtimeNs: '0',
    });
    // What a stale or forged scan would say: the file and the shadow are in place (only a mode
    // differs), the hard link is missing, and files to delete lie below the link to outside.
    const existing = {
      ...manifest,
      entries: [
        ...manifest.entries
          .filter((e) => e.path !== 'etc/shadow-link')
          .map((e) => (e.path === 'etc/passwd' ? { ...e, mode: 0o600 } : e)),
        extra('etc/cron.d/job', 'file'),
        extra('../canary', 'file'),
      ],
    };
    const stats = await store.restore(etc, new DirectoryTarget(c.target), { existing, deleteExtra: true });
    expect(stats.failed.map((f) => f.path)).toEqual(['../canary', 'etc/shadow-link']);
    expect(stats.removed).toBe(0);
    expect(stats.failed[1]?.reason).toMatch(/link target etc\/shadow is a symlink/);
    expect(typeAt(join(c.target, 'etc/passwd'))).toBe('file');
    expect(typeAt(join(c.target, 'etc/cron.d'))).toBe('dir');
    expect(c.picture()).toEqual(c.before);
  });

  it('stop a single entry written below a link the restore was not told to replace', async () => {
    const c = await canaries();
    await fs.symlink(c.outside, join(c.target, 'a'));
    const t = new DirectoryTarget(c.target);
    await t.prepare();
    const file = entryOf({ name: 'a/shadow', type: 'file', content: 'x' });
    await expect(t.write(file, contentOf('x'))).rejects.toBeInstanceOf(UnsafePathError);
    await expect(t.write(entryOf({ name: 'a/p', type: 'fifo' }))).rejects.toBeInstanceOf(UnsafePathError);
    expect(await t.remove('a/shadow')).toBe(false);
    expect(await t.remove('a/cron.d')).toBe(false);
    await expect(t.remove('../canary')).rejects.toBeInstanceOf(UnsafePathError);
    expect(await t.finish()).toEqual([]);
    expect(readlinkSync(join(c.target, 'a'))).toBe(c.outside);
    expect(c.picture()).toEqual(c.before);
  });

  it('are removed, not followed, when a directory holding them is where the snapshot has a file', async () => {
    const c = await canaries();
    await fs.mkdir(join(c.target, 'a'));
    await fs.symlink(c.outside, join(c.target, 'a/out'));
    await fs.symlink(c.file, join(c.target, 'a/canary'));
    const t = new DirectoryTarget(c.target);
    await t.prepare();
    await t.write(entryOf({ name: 'a', type: 'file', content: 'now a file\n' }), contentOf('now a file\n'));
    expect(await t.finish()).toEqual([]);
    expect(readFileSync(join(c.target, 'a'), 'utf8')).toBe('now a file\n');
    expect(await fs.readdir(c.target)).toEqual(['a']);
    expect(c.picture()).toEqual(c.before);
  });
});

describe('random hostile entry lists', () => {
  // `plausible` lists are mostly what a tar could hold, so that many get past the checks and are
  // restored; the others are mostly what no tar should hold.
  const entryArb = (outside: string, canary: string, plausible = false) => {
    const segment = plausible
      ? fc.constantFrom('a', 'b', 'evil')
      : fc.constantFrom('a', 'b', 'evil', '..', '.', '');
    const name = fc.oneof(
      {
        weight: plausible ? 12 : 5,
        arbitrary: fc.array(segment, { minLength: 1, maxLength: 3 }).map((s) => s.join('/')),
      },
      {
        weight: 1,
        arbitrary: fc.constantFrom(`${outside}/shadow`, `${outside}/cron.d`, canary, '../canary'),
      },
    );
    const target = fc.constantFrom(
      outside,
      canary,
      `${outside}/shadow`,
      '../canary',
      'a',
      'a/b',
      'evil/shadow',
      '/',
    );
    return fc.record(
      {
        name: name.filter((n) => n !== ''),
        type: fc.constantFrom<Crafted['type']>('file', 'dir', 'symlink', 'hardlink', 'fifo', 'char'),
        mode: fc.constantFrom(0o777, 0o4755, 0o000, 0o644),
        uid: fc.constantFrom(0, 7),
        target,
        content: fc.constantFrom('overwritten\n', ''),
      },
      { requiredKeys: ['name', 'type', 'mode', 'uid', 'target', 'content'] },
    );
  };

  it('never change anything outside the target, written straight through the target', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(entryArb('/o', '/c'), { minLength: 1, maxLength: 10 }),
        fc.boolean(),
        async (shapes, preplanted) => {
          const c = await canaries();
          const fix = (s: string) => s.replace(/^\/o/, c.outside).replace(/^\/c$/, c.file);
          const entries = shapes.map((e) => ({ ...e, name: fix(e.name), target: fix(e.target) }));
          if (preplanted) {
            await fs.symlink(c.outside, join(c.target, 'evil'));
            await fs.symlink(c.file, join(c.target, 'a'));
          }
          await writeDirectly(c.target, entries);
          expect(c.picture()).toEqual(c.before);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('never change anything outside the target, as a tar stream snapshotted and restored', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(entryArb('/o', '/c', true), { minLength: 1, maxLength: 8 }),
        async (shapes) => {
          const c = await canaries();
          const fix = (s: string) => s.replace(/^\/o/, c.outside).replace(/^\/c$/, c.file);
          const entries = shapes.map((e) => ({ ...e, name: fix(e.name), target: fix(e.target) }));
          await fs.symlink(c.outside, join(c.target, 'evil'));
          const record = await store
            .create(tarSource(tarOf(entries), 'random'), { host: `random-${run++}` })
            .catch((e: unknown) => {
              if (!(e instanceof InvalidInputError)) throw e;
              return undefined;
            });
          if (record) await store.restore(record, new DirectoryTarget(c.target));
          expect(c.picture()).toEqual(c.before);
        },
      ),
      { numRuns: 25 },
    );
  });
});
