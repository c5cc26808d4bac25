// Listing chunks kept on this machine (listing-cache.ts): the next snapshot of a host and a
// restore read its listing from the cache, not the bucket; a cached chunk that was altered,
// replaced by a link, or is not a chunk at all is never trusted (read again from the bucket,
// and the restore still right); the cache stays within its bound; and a listing chunk already
// in the bucket is not sent twice.
import { mkdirSync, readdirSync, readFileSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DirectoryListingCache } from '../../../core/snapshot/listing-cache.js';
import { LISTING_PREFIX } from '../../../core/snapshot/manifest-object.js';
import type { ObjectStore } from '../../../core/snapshot/object-store.js';
import { SnapshotStore } from '../../../core/snapshot/store.js';
import { DirectoryTarget, directorySource } from '../../../core/snapshot/tree.js';
import { describeTree } from '../../support/snapshot-store.js';
import { useTestStore } from '../../support/use-test-store.js';

const ts = useTestStore();
const { fresh } = ts;

const ID = (n: number) => n.toString(16).padStart(64, '0');

/** The bucket's objects, with the requests made for listing chunks counted by kind. */
function counting(): { objects: ObjectStore; listingRequests: Map<string, number>; reset(): void } {
  const real = ts.deps().objects;
  const listingRequests = new Map<string, number>();
  const count = (kind: string, key: string) => {
    if (key.startsWith(LISTING_PREFIX)) listingRequests.set(kind, (listingRequests.get(kind) ?? 0) + 1);
  };
  return {
    listingRequests,
    reset: () => listingRequests.clear(),
    objects: {
      location: real.location,
      put: (k, b, o) => {
        count('put', k);
        return real.put(k, b, o);
      },
      get: (k) => {
        count('get', k);
        return real.get(k);
      },
      getRange: (k, o, l) => real.getRange(k, o, l),
      head: (k) => {
        count('head', k);
        return real.head(k);
      },
      list: (p) => real.list(p),
      delete: (ks) => real.delete(ks),
    },
  };
}

async function tree(files = 1500): Promise<string> {
  const dir = fresh('tree');
  for (let d = 0; d < 10; d++) mkdirSync(join(dir, `d${d}`));
  for (let i = 0; i < files; i++)
    await fs.writeFile(join(dir, `d${i % 10}`, `file-${i}.conf`), `setting-${i} = ${i * 7919}\n`);
  return dir;
}

describe('DirectoryListingCache', () => {
  it('keeps, gives back and forgets sealed chunks by id', () => {
    const cache = DirectoryListingCache.open(fresh('cache'), 'store-1') as DirectoryListingCache;
    expect(cache.get(ID(1))).toBeUndefined();
    cache.put(ID(1), Buffer.from('sealed bytes'));
    expect(Buffer.from(cache.get(ID(1)) as Uint8Array).toString()).toBe('sealed bytes');
    cache.drop(ID(1));
    expect(cache.get(ID(1))).toBeUndefined();
  });

  it('names nothing by a store id or chunk id that is not one', () => {
    const base = fresh('cache');
    for (const storeId of ['../escape', '.', '..', '', 'a/b', '-x'])
      expect(DirectoryListingCache.open(base, storeId)).toBeUndefined();
    expect(readdirSync(base)).toEqual([]);
    const cache = DirectoryListingCache.open(base, 'store') as DirectoryListingCache;
    cache.put('../../outside', Buffer.from('x'));
    cache.put(`${ID(2)}/../x`, Buffer.from('x'));
    expect(readdirSync(join(base, 'store'))).toEqual([]);
    expect(cache.get('../store')).toBeUndefined();
  });

  it('does not follow a link planted at a chunk name, nor read a file too large to be a chunk', () => {
    const base = fresh('cache');
    const cache = DirectoryListingCache.open(base, 'store') as DirectoryListingCache;
    const secret = join(base, 'secret');
    writeFileSync(secret, 'not for the store');
    symlinkSync(secret, join(base, 'store', ID(3)));
    expect(cache.get(ID(3))).toBeUndefined();
    // Writing the chunk replaces the link; what it pointed at is untouched.
    cache.put(ID(3), Buffer.from('chunk'));
    expect(readFileSync(secret, 'utf8')).toBe('not for the store');
    expect(Buffer.from(cache.get(ID(3)) as Uint8Array).toString()).toBe('chunk');
    writeFileSync(join(base, 'store', ID(4)), Buffer.alloc(1024 * 1024));
    expect(cache.get(ID(4))).toBeUndefined();
  });

  it('stays within its bound, the least recently used going first', () => {
    const base = fresh('cache');
    const cache = DirectoryListingCache.open(base, 'store', 8) as DirectoryListingCache;
    for (let i = 0; i < 8; i++) {
      cache.put(ID(i), Buffer.from(`chunk ${i}`));
      // Older by the minute: mtimes that a fast machine would otherwise make equal.
      const t = new Date(Date.now() - (100 - i) * 60_000);
      utimesSync(join(base, 'store', ID(i)), t, t);
    }
    // Chunk 0, the oldest, is used now: it stays.
    expect(cache.get(ID(0))).toBeDefined();
    cache.put(ID(8), Buffer.from('chunk 8'));
    const left = readdirSync(join(base, 'store')).sort();
    expect(left.length).toBeLessThanOrEqual(8);
    expect(left).toContain(ID(0));
    expect(left).toContain(ID(8));
    expect(left).not.toContain(ID(1));
  });
});

describe('the store with a listing cache', () => {
  it('reads the last listing from the cache for the next snapshot and for a restore', async () => {
    const src = await tree();
    const { objects, listingRequests, reset } = counting();
    const cacheDir = fresh('cache');
    const store = await SnapshotStore.open({ ...ts.deps(), objects, cacheDir });
    await store.create(directorySource(src), { host: 'cached' });
    // A listing chunk is written once, only if absent: no look first.
    expect(listingRequests.get('head')).toBeUndefined();
    expect(listingRequests.get('put')).toBeGreaterThan(5);
    reset();
    await fs.writeFile(join(src, 'd3', 'file-3.conf'), 'changed\n');
    const second = await store.create(directorySource(src), { host: 'cached' });
    expect(listingRequests.get('get')).toBeUndefined();
    reset();
    const out = fresh('out');
    await store.restore(second, new DirectoryTarget(out));
    expect(listingRequests.get('get')).toBeUndefined();
    expect(await describeTree(out)).toEqual(await describeTree(src));
  });

  it('reads a cached chunk that was altered or replaced again from the bucket, and restores right', async () => {
    const src = await tree(800);
    const { objects, listingRequests, reset } = counting();
    const cacheDir = fresh('cache');
    const store = await SnapshotStore.open({ ...ts.deps(), objects, cacheDir });
    const record = await store.create(directorySource(src), { host: 'tampered' });
    const dir = join(cacheDir, store.config.storeId);
    const names = readdirSync(dir).sort();
    expect(names.length).toBeGreaterThan(2);
    // One flipped byte, one chunk's file holding another's sealing, one gone.
    const [a, b, c] = names as [string, string, string];
    const bytes = readFileSync(join(dir, a));
    bytes[bytes.length - 5] = (bytes[bytes.length - 5] as number) ^ 0xff;
    writeFileSync(join(dir, a), bytes);
    writeFileSync(join(dir, b), readFileSync(join(dir, c)));
    await fs.rm(join(dir, c));
    reset();
    const out = fresh('out');
    await store.restore(record, new DirectoryTarget(out));
    expect(await describeTree(out)).toEqual(await describeTree(src));
    expect(listingRequests.get('get')).toBe(3);
    // Each is cached again, as the bucket has it.
    reset();
    await store.restore(record, new DirectoryTarget(fresh('out')));
    expect(listingRequests.get('get')).toBeUndefined();
  });

  it('does not count or send again a listing chunk the bucket holds already', async () => {
    const src = await tree(600);
    const first = await ts.open();
    await first.create(directorySource(src), { host: 'shared-a' });
    // Another host with the same tree: the same listing chunks, refused as present (412).
    const real = ts.deps().objects;
    const present = new Set<string>();
    for await (const o of real.list(LISTING_PREFIX)) present.add(o.key);
    const { ConflictError } = await import('../../../core/errors.js');
    let refused = 0;
    const conditional: ObjectStore = {
      ...real,
      location: real.location,
      put: async (k, bytes, o) => {
        if (o?.ifAbsent && present.has(k)) {
          refused++;
          throw new ConflictError(`object ${k} exists already`);
        }
        return real.put(k, bytes, o);
      },
      get: (k) => real.get(k),
      getRange: (k, o, l) => real.getRange(k, o, l),
      head: (k) => real.head(k),
      list: (p) => real.list(p),
      delete: (ks) => real.delete(ks),
    };
    const second = await SnapshotStore.open({ ...ts.deps(), objects: conditional });
    const record = await second.create(directorySource(src), { host: 'shared-b' });
    expect(refused).toBeGreaterThan(0);
    // Only the manifest object and index, not the listing, are new bytes.
    expect(record.stats.storedBytes).toBeLessThan(4096);
  });
});
