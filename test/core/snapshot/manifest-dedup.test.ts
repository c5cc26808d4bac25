// Manifests stored as chunks of their entry listing (format 2, manifest-object.ts) on the real
// stand-ins: an unchanged part of the tree costs nothing in the next version, whole manifests
// written before still read, gc keeps what a listing needs, and a damaged or hostile listing
// is refused naming the snapshot.
import { mkdirSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import { join } from 'node:path';
import { zstdCompressSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConflictError, InvalidInputError } from '../../../core/errors.js';
import { CorruptionError } from '../../../core/snapshot/errors.js';
import { chunkId } from '../../../core/snapshot/keys.js';
import { LISTING_PREFIX, listingKey, sealManifestObject } from '../../../core/snapshot/manifest-object.js';
import type { PutOptions } from '../../../core/snapshot/object-store.js';
import { encodeBlob, sha256Hex } from '../../../core/snapshot/pack.js';
import type { SnapshotRecord } from '../../../core/snapshot/records.js';
import { seal } from '../../../core/snapshot/seal.js';
import { MANIFEST_PREFIX, SnapshotStore } from '../../../core/snapshot/store.js';
import { DirectoryTarget, directorySource } from '../../../core/snapshot/tree.js';
import { describeTree, type TreeLine } from '../../support/snapshot-store.js';
import { useTestStore } from '../../support/use-test-store.js';

const ts = useTestStore();
const { fresh } = ts;
let store: SnapshotStore;

beforeAll(async () => {
  store = await ts.open();
});

/** A tree of `files` small files in ten directories: a listing of a few hundred KiB. */
async function tree(files = 1500): Promise<string> {
  const dir = fresh('tree');
  for (let d = 0; d < 10; d++) mkdirSync(join(dir, `d${d}`));
  for (let i = 0; i < files; i++)
    await fs.writeFile(join(dir, `d${i % 10}`, `file-${i}.conf`), `setting-${i} = ${i * 7919}\n`);
  return dir;
}

async function keys(prefix = 'snapshots/'): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for await (const o of ts.deps().objects.list(prefix)) out.set(o.key, o.size);
  return out;
}

/** Restores `record` and compares it with the tree `src` (or what `describeTree` said of it). */
async function expectRestores(
  reader: SnapshotStore,
  record: SnapshotRecord,
  src: string | TreeLine[],
): Promise<void> {
  const out = fresh('out');
  await reader.restore(record, new DirectoryTarget(out));
  expect(await describeTree(out)).toEqual(typeof src === 'string' ? await describeTree(src) : src);
}

async function forget(host: string): Promise<void> {
  for (const r of await ts.deps().records.list(host)) await ts.deps().records.delete(host, r.version);
}

/** The manifest as a format 1 object: the whole manifest sealed in one object, as written before. */
async function recordWhole(from: SnapshotRecord): Promise<SnapshotRecord> {
  const manifest = { ...(await store.manifest(from)), format: 1 as const };
  const bytes = seal(
    store.keys.sealKey,
    zstdCompressSync(Buffer.from(JSON.stringify(manifest))),
    'manifest:',
  );
  const manifestKey = `${MANIFEST_PREFIX}${sha256Hex(bytes)}`;
  await ts.deps().objects.put(manifestKey, bytes);
  const record: SnapshotRecord = {
    ...from,
    version: ((await ts.deps().records.latest(from.host))?.version ?? 0) + 1,
    manifestKey,
  };
  await ts.deps().records.put(record);
  return record;
}

/**
 * A format 2 manifest whose listing is `text`, written as a writer with the key would: the
 * listing in one chunk. `entries` overrides what the manifest object says.
 */
async function recordListing(
  host: string,
  text: string,
  entries: Partial<{ count: number; bytes: number; chunks: string[] }> = {},
): Promise<SnapshotRecord> {
  const bytes = Buffer.from(text);
  const id = chunkId(store.keys.idKey, bytes);
  await ts.deps().objects.put(listingKey(id), encodeBlob(store.keys, bytes, id).sealed);
  const createdAt = new Date().toISOString();
  const object = {
    format: 2 as const,
    host,
    createdAt,
    root: 'crafted',
    entries: { count: text.split('\n').length - 1, bytes: bytes.length, chunks: [id], ...entries },
  };
  const sealed = sealManifestObject(store.keys, object);
  await ts.deps().objects.put(sealed.key, sealed.bytes);
  const record: SnapshotRecord = {
    host,
    version: ((await ts.deps().records.latest(host))?.version ?? 0) + 1,
    createdAt,
    manifestKey: sealed.key,
    indexKeys: [],
    stats: { files: 0, dirs: 0, bytes: 0, chunks: 0, newChunks: 0, newBytes: 0, storedBytes: 0 },
  };
  await ts.deps().records.put(record);
  return record;
}

describe('a manifest stored as chunks of its listing', () => {
  it("sends only what changed since the last version, and never lists every host's listing chunks", async () => {
    const objects = ts.deps().objects;
    const seen = { lists: 0, heads: 0, puts: 0, refused: 0 };
    const counting: typeof objects = Object.assign(Object.create(objects) as typeof objects, {
      list(prefix: string) {
        if (prefix.startsWith(LISTING_PREFIX)) seen.lists++;
        return objects.list(prefix);
      },
      async head(key: string) {
        if (key.startsWith(LISTING_PREFIX)) seen.heads++;
        return objects.head(key);
      },
      async put(key: string, bytes: Uint8Array, options?: PutOptions) {
        if (!key.startsWith(LISTING_PREFIX)) return objects.put(key, bytes, options);
        seen.puts++;
        try {
          return await objects.put(key, bytes, options);
        } catch (e) {
          // The bucket held it: refused by its condition (412), not written again.
          if (e instanceof ConflictError) seen.refused++;
          throw e;
        }
      },
    });
    const writer = await SnapshotStore.open({ ...ts.deps(), objects: counting });
    const src = await tree(600);
    const first = await writer.create(directorySource(src), { host: 'lookups-a' });
    const parts = await writer.manifestParts(first);
    // The first version sends each of its chunks, once, only if absent: no look first.
    expect(seen).toEqual({ lists: 0, heads: 0, puts: parts.length, refused: 0 });

    // The same tree from another host: every chunk is there already, each write is refused,
    // and each refused one is looked up (a 409 would mean another writer's PUT might yet fail).
    Object.assign(seen, { puts: 0, refused: 0 });
    await writer.create(directorySource(src), { host: 'lookups-b' });
    expect(seen).toEqual({ lists: 0, heads: parts.length, puts: parts.length, refused: parts.length });

    // The next version of the first host: its unchanged listing is the last one's, not sent.
    Object.assign(seen, { heads: 0, puts: 0, refused: 0 });
    await writer.create(directorySource(src), { host: 'lookups-a' });
    expect(seen).toEqual({ lists: 0, heads: 0, puts: 0, refused: 0 });

    // One file changed: only its chunk is sent.
    await fs.writeFile(join(src, 'd3', 'file-3.conf'), 'setting-3 = changed and longer\n');
    Object.assign(seen, { puts: 0, refused: 0 });
    const changed = await writer.create(directorySource(src), { host: 'lookups-a' });
    expect(seen.lists).toBe(0);
    expect(seen.heads).toBe(0);
    expect(seen.puts).toBeGreaterThanOrEqual(1);
    expect(seen.puts).toBeLessThanOrEqual(3);
    expect(seen.refused).toBe(0);
    await expectRestores(writer, changed, src);
    await forget('lookups-a');
    await forget('lookups-b');
  });

  it('costs nothing again for an unchanged tree, and a chunk or two for one changed file', async () => {
    const src = await tree();
    const v1 = await store.create(directorySource(src), { host: 'dedup' });
    const parts1 = await store.manifestParts(v1);
    expect(parts1.length).toBeGreaterThanOrEqual(10);
    const manifest1 = await store.manifest(v1);
    expect(manifest1.format).toBe(2);
    // What the same manifest cost as one whole object (format 1).
    const whole = seal(
      store.keys.sealKey,
      zstdCompressSync(Buffer.from(JSON.stringify({ ...manifest1, format: 1 }))),
      'manifest:',
    ).length;

    const before = await keys();
    const v2 = await store.create(directorySource(src), { host: 'dedup' });
    const added = [...(await keys())].filter(([k]) => !before.has(k));
    // Only the manifest object itself: no pack, no index.
    expect(added.map(([k]) => k)).toEqual([v2.manifestKey]);
    expect(added[0]?.[1]).toBeLessThan(whole / 5);
    expect(await store.manifestParts(v2)).toEqual(parts1);
    expect((await store.manifest(v2)).entries).toEqual(manifest1.entries);

    await fs.writeFile(join(src, 'd3/file-753.conf'), 'setting-753 = changed\n');
    const v3 = await store.create(directorySource(src), { host: 'dedup' });
    const parts3 = await store.manifestParts(v3);
    const known = new Set(parts1);
    expect(parts3.filter((id) => !known.has(id)).length).toBeLessThanOrEqual(3);
    const changed = (await store.manifest(v3)).entries.find((e) => e.path === 'd3/file-753.conf');
    expect(changed?.size).toBe('setting-753 = changed\n'.length);
    expect(await store.diff('dedup', 2, 3)).toEqual({
      added: [],
      removed: [],
      changed: ['d3/file-753.conf'],
      metadata: [],
    });
    await expectRestores(await ts.open(), v3, src);
    await forget('dedup');
  });

  it('reads, restores, diffs, checks and collects a snapshot recorded with a whole (format 1) manifest', async () => {
    const src = await tree(300);
    const made = await store.create(directorySource(src), { host: 'legacy' });
    const legacy = await recordWhole(made);
    expect(await store.manifestParts(legacy)).toEqual([]);
    const read = await store.manifest(legacy);
    expect(read.format).toBe(1);
    expect(read.entries).toEqual((await store.manifest(made)).entries);
    expect(await store.diff('legacy', legacy.version, made.version)).toEqual({
      added: [],
      removed: [],
      changed: [],
      metadata: [],
    });
    const copy = await describeTree(src);
    await fs.writeFile(join(src, 'd1/file-11.conf'), 'setting-11 = other\n');
    const later = await store.create(directorySource(src), { host: 'legacy' });
    expect((await store.diff('legacy', legacy.version, later.version)).changed).toEqual(['d1/file-11.conf']);

    // The format 2 snapshots go: their listings and the changed file are garbage, the chunks
    // the whole manifest names are not.
    await ts.deps().records.delete('legacy', made.version);
    await ts.deps().records.delete('legacy', later.version);
    const report = await store.gc();
    expect(report.packsDeleted).toBeGreaterThanOrEqual(2);
    const reader = await ts.open();
    await expectRestores(reader, legacy, copy);
    expect((await reader.check({ readData: true })).problems).toEqual([]);
    await forget('legacy');
  });

  it('keeps every listing chunk a recorded manifest names, though the snapshot that stored it is forgotten, and collects the others', async () => {
    const src = await tree();
    const v1 = await store.create(directorySource(src), { host: 'gc-listing' });
    await fs.writeFile(join(src, 'd5/file-5.conf'), 'setting-5 = new\n');
    const v2 = await store.create(directorySource(src), { host: 'gc-listing' });
    const parts1 = await store.manifestParts(v1);
    const parts2 = new Set(await store.manifestParts(v2));
    const shared = parts1.filter((id) => parts2.has(id));
    const onlyFirst = parts1.filter((id) => !parts2.has(id));
    // v2 stored only the chunks around its one changed entry: the rest are v1's objects.
    expect(shared.length).toBeGreaterThan(parts2.size / 2);
    expect(onlyFirst.length).toBeGreaterThan(0);

    await ts.deps().records.delete('gc-listing', v1.version);
    const report = await store.gc();
    expect(report.listingsDeleted).toBe(onlyFirst.length);
    const held = await keys(LISTING_PREFIX);
    for (const id of parts2) expect(held.has(listingKey(id)), id).toBe(true);
    for (const id of onlyFirst) expect(held.has(listingKey(id)), id).toBe(false);
    const reader = await ts.open();
    await expectRestores(reader, v2, src);
    expect((await reader.check({ readData: true })).problems).toEqual([]);

    await forget('gc-listing');
    await store.gc();
    expect((await keys(LISTING_PREFIX)).size).toBe(0);
  });
});

describe('a damaged or hostile listing', () => {
  it('refuses a chunk that fails verification or is missing, naming the snapshot, the manifest and the chunk: read, restore, check, gc', async () => {
    const src = await tree(400);
    const record = await store.create(directorySource(src), { host: 'damaged' });
    const parts = await store.manifestParts(record);
    const part = parts[Math.floor(parts.length / 2)] as string;
    const key = listingKey(part);
    const objects = ts.deps().objects;
    const original = Buffer.from(await objects.get(key));
    const damaged = Buffer.from(original);
    damaged[20] = (damaged[20] as number) ^ 1;
    await objects.put(key, damaged);

    const who = `snapshot damaged#${record.version}`;
    await expect(store.manifest(record)).rejects.toBeInstanceOf(CorruptionError);
    for (const named of [who, record.manifestKey, part, key])
      await expect(store.manifest(record)).rejects.toThrow(named);
    const out = fresh('damaged-out');
    await expect(store.restore(record, new DirectoryTarget(out))).rejects.toThrow(who);
    expect(await fs.readdir(out)).toEqual([]);
    const report = await store.check({ readData: true });
    expect(report.problems).toContainEqual(
      expect.objectContaining({ object: record.manifestKey, problem: expect.stringContaining(who) }),
    );
    expect(report.problems).toContainEqual(expect.objectContaining({ object: key, chunk: part }));
    const before = await keys();
    await expect(store.gc()).rejects.toThrow(who);
    expect(await keys()).toEqual(before);

    await objects.delete([key]);
    expect((await store.check()).problems).toContainEqual({
      object: key,
      chunk: part,
      problem: `needed by the manifest of ${who} but missing from the bucket`,
    });
    const gone = await keys();
    await expect(store.gc()).rejects.toThrow(`${who} needs chunk ${part}, which is a chunk of its manifest`);
    expect(await keys()).toEqual(gone);

    await objects.put(key, original);
    await expectRestores(await ts.open(), record, src);
    await forget('damaged');
  });

  it('refuses a listing that does not decode or breaks the manifest’s rules, naming the snapshot', async () => {
    const entry = (path: string, more: Record<string, string> = { type: 'dir' }) =>
      `${JSON.stringify({ path, mode: 0o755, uid: 0, gid: 0, mtimeNs: '0', ...more })}\n`;
    const cases: [string, Parameters<typeof recordListing>[2], string, new (...a: never[]) => Error][] = [
      ['{"path":"etc"\n', {}, "entries[0] of the manifest's listing is not JSON", CorruptionError],
      [entry('etc'), { count: 5 }, 'does not hold the 5 entries its manifest says', CorruptionError],
      [entry('etc'), { bytes: 3 }, 'the listing is longer than its manifest says', CorruptionError],
      [entry('etc'), { bytes: 400 }, 'holds 69 bytes, its manifest says 400', CorruptionError],
      [entry('etc').slice(0, -1), { count: 0 }, 'does not hold the 0 entries', CorruptionError],
      [entry('etc'), { chunks: ['not-a-chunk-id'] }, 'does not have the expected shape', CorruptionError],
      [
        entry('etc') + entry('etc/../../root'),
        {},
        '"etc/../../root": the path contains ".."',
        InvalidInputError,
      ],
      [
        entry('a', { type: 'symlink', target: '/etc' }) + entry('a/cron.d'),
        {},
        'entries[1] "a/cron.d": its parent "a" is a symlink',
        InvalidInputError,
      ],
    ];
    for (const [text, entries, message, kind] of cases) {
      const record = await recordListing('hostile', text, entries);
      const read = store.manifest(record);
      await expect(read, message).rejects.toBeInstanceOf(kind);
      await expect(store.manifest(record)).rejects.toThrow(message);
      await expect(store.manifest(record)).rejects.toThrow(`snapshot hostile#${record.version}`);
      const out = fresh('hostile-out');
      await expect(store.restore(record, new DirectoryTarget(out))).rejects.toThrow(message);
      expect(await fs.readdir(out)).toEqual([]);
    }
    await forget('hostile');
    await store.gc();
  });
});
