import * as fs from 'node:fs/promises';
import { join } from 'node:path';
import { type DynamoDBDocumentClient, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { beforeAll, describe, expect, it } from 'vitest';
import { CorruptionError } from '../../../core/snapshot/errors.js';
import type { ObjectStore } from '../../../core/snapshot/object-store.js';
import { LeaseLostError, type SnapshotRecord, StoreBusyError } from '../../../core/snapshot/records.js';
import { INDEX_PREFIX, MANIFEST_PREFIX, PACK_PREFIX, SnapshotStore } from '../../../core/snapshot/store.js';
import { DirectoryTarget, directorySource } from '../../../core/snapshot/tree.js';
import { gate, pausedSource } from '../../support/gates.js';
import {
  bytesFrom,
  describeTree,
  type TestLockOptions,
  type TreeLine,
} from '../../support/snapshot-store.js';
import { useTestStore } from '../../support/use-test-store.js';

const ts = useTestStore();
const { fresh } = ts;
let main: SnapshotStore;
// What each recorded snapshot was made from: every one of them must restore to it, always.
const trees = new Map<string, TreeLine[]>();
const HOUR = 3_600_000;

beforeAll(async () => {
  main = await ts.open();
});

async function tree(name: string, files: Record<string, Buffer | string>): Promise<string> {
  const dir = fresh(name);
  for (const [path, content] of Object.entries(files)) await fs.writeFile(join(dir, path), content);
  return dir;
}

async function snapshot(store: SnapshotStore, src: string, host: string): Promise<SnapshotRecord> {
  const record = await store.create(directorySource(src), { host });
  trees.set(`${record.host}#${record.version}`, await describeTree(src));
  return record;
}

async function forgetAll(host: string): Promise<void> {
  const records = ts.deps().records;
  for (const r of await records.list(host)) await records.delete(host, r.version);
}

/** Restores every recorded snapshot and compares it with the tree it was made from. */
async function expectEverySnapshotRestores(): Promise<void> {
  const reader = await ts.open();
  const records = await ts.deps().records.all();
  expect(records.length).toBeGreaterThan(0);
  for (const r of records) {
    const out = fresh('verify');
    await reader.restore(r, new DirectoryTarget(out));
    expect(await describeTree(out), `${r.host}#${r.version}`).toEqual(trees.get(`${r.host}#${r.version}`));
  }
  expect((await reader.check({ readData: true })).problems).toEqual([]);
}

async function keys(prefix = 'snapshots/'): Promise<string[]> {
  const out: string[] = [];
  for await (const o of ts.deps().objects.list(prefix)) out.push(o.key);
  return out.sort();
}

/** An object store that waits at the gate, once, before the first call `when` picks. */
function pausedObjects(
  objects: ObjectStore,
  g: ReturnType<typeof gate>,
  when: (op: 'put' | 'get' | 'list' | 'delete', key: string) => boolean,
): ObjectStore {
  let armed = true;
  const wait = async (op: 'put' | 'get' | 'list' | 'delete', key: string) => {
    if (armed && when(op, key)) {
      armed = false;
      g.arrive();
      await g.opened;
    }
  };
  return {
    location: objects.location,
    put: async (key, bytes, options) => {
      await wait('put', key);
      return objects.put(key, bytes, options);
    },
    get: async (key) => {
      await wait('get', key);
      return objects.get(key);
    },
    getRange: (key, offset, length) => objects.getRange(key, offset, length),
    head: (key) => objects.head(key),
    async *list(prefix) {
      await wait('list', prefix);
      yield* objects.list(prefix);
    },
    delete: async (keys) => {
      await wait('delete', keys[0] ?? '');
      return objects.delete(keys);
    },
  };
}

/** DynamoDB as the locks see it, with every refresh (UpdateItem) failing while `failing()`. */
function refreshesFail(failing: () => boolean): DynamoDBDocumentClient {
  const real = ts.ddb;
  return new Proxy(real, {
    get(target, property, receiver) {
      if (property !== 'send') return Reflect.get(target, property, receiver);
      return (command: unknown) =>
        failing() && command instanceof UpdateCommand
          ? Promise.reject(
              Object.assign(new Error('injected: DynamoDB is unreachable'), { name: 'TimeoutError' }),
            )
          : target.send(command as Parameters<typeof target.send>[0]);
    },
  });
}

async function openWith(options: TestLockOptions, objects?: ObjectStore): Promise<SnapshotStore> {
  const deps = ts.deps(options);
  return SnapshotStore.open(objects ? { ...deps, objects } : deps);
}

/** gc, tried again while the store is busy (a lease not yet expired), a bounded number of times. */
async function gcOnceFree(store: SnapshotStore) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await store.gc();
    } catch (e) {
      if (!(e instanceof StoreBusyError) || attempt > 200) throw e;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

describe('garbage collection and snapshot writers', () => {
  it('refuses at commit a writer whose lease lapsed while it was paused with its refreshes failing, and records nothing', async () => {
    const shared = bytesFrom(101, 300_000);
    const old = await snapshot(
      main,
      await tree('lapse-old', { 'shared.bin': shared, 'a.txt': 'a\n' }),
      'lapse-old',
    );
    await snapshot(main, await tree('lapse-keep', { 'keep.bin': bytesFrom(102, 200_000) }), 'lapse-keep');

    let failing = false;
    const writer = await openWith({ lockTtlMs: 2000, locksClient: refreshesFail(() => failing) });
    const paused = gate();
    // The writer deduplicates shared.bin against the old snapshot's pack, which gc will delete.
    const src = await tree('lapse-w', { 'shared.bin': shared, 'new.bin': bytesFrom(103, 200_000) });
    const writing = writer.create(pausedSource(directorySource(src), paused), { host: 'lapse-w' });
    await paused.reached;
    failing = true;

    await forgetAll(old.host);
    const report = await gcOnceFree(await ts.open());
    expect(report.packsDeleted).toBeGreaterThanOrEqual(1);
    paused.open();

    const failure = await writing.catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(LeaseLostError);
    // The failed refreshes are what it reports, not swallowed.
    expect((failure as Error).message).toMatch(
      /lapsed: not refreshed for \d+ ms: injected: DynamoDB is unreachable/,
    );
    expect(await ts.deps().records.list('lapse-w')).toEqual([]);
    await expectEverySnapshotRestores();
  });

  it('refuses a writer whose lock a collector took over, though the writer’s own clock says the lease is live', async () => {
    const shared = bytesFrom(201, 300_000);
    const old = await snapshot(main, await tree('skew-old', { 'shared.bin': shared }), 'skew-old');
    const writer = await openWith({ lockTtlMs: 60_000 });
    const paused = gate();
    const src = await tree('skew-w', { 'shared.bin': shared, 'new.bin': bytesFrom(202, 100_000) });
    const writing = writer.create(pausedSource(directorySource(src), paused), { host: 'skew-w' });
    await paused.reached;

    await forgetAll(old.host);
    // A collector whose clock runs an hour ahead finds the writer's lock expired at once.
    const report = await (await openWith({ now: () => Date.now() + HOUR })).gc();
    expect(report.packsDeleted).toBeGreaterThanOrEqual(1);
    paused.open();

    const failure = await writing.catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(LeaseLostError);
    expect((failure as Error).message).toMatch(/taken over/);
    expect(await ts.deps().records.list('skew-w')).toEqual([]);
    await expectEverySnapshotRestores();
  });

  it('records nothing for a writer whose lock was taken over after its last check: the record is written in one transaction with the lease', async () => {
    const shared = bytesFrom(301, 300_000);
    const old = await snapshot(main, await tree('fence-old', { 'shared.bin': shared }), 'fence-old');
    const paused = gate();
    // Paused after it confirmed its lease and wrote its index, before it writes its manifest.
    const writer = await openWith(
      { lockTtlMs: 60_000 },
      pausedObjects(ts.deps().objects, paused, (op, key) => op === 'put' && key.startsWith(MANIFEST_PREFIX)),
    );
    const src = await tree('fence-w', { 'shared.bin': shared, 'new.bin': bytesFrom(302, 100_000) });
    const writing = writer.create(directorySource(src), { host: 'fence-w' });
    await paused.reached;

    await forgetAll(old.host);
    await (await openWith({ now: () => Date.now() + HOUR })).gc();
    paused.open();

    const failure = await writing.catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(LeaseLostError);
    expect((failure as Error).message).toMatch(/fence-w#1 was not recorded/);
    expect(await ts.deps().records.list('fence-w')).toEqual([]);
    await expectEverySnapshotRestores();
    // What the refused writer left behind is garbage the next collection removes.
    await main.gc();
    await expectEverySnapshotRestores();
  });

  it('lets two writers snapshot one host at once: each gets its own version and both restore', async () => {
    const a = await tree('twin-a', { 'a.bin': bytesFrom(401, 250_000), 'same.txt': 'same\n' });
    const b = await tree('twin-b', { 'b.bin': bytesFrom(402, 250_000), 'same.txt': 'same\n' });
    const [ra, rb] = await Promise.all([
      snapshot(await ts.open(), a, 'twin'),
      snapshot(await ts.open(), b, 'twin'),
    ]);
    expect([ra.version, rb.version].sort()).toEqual([1, 2]);
    for (const [record, src] of [
      [ra, a],
      [rb, b],
    ] as const) {
      const out = fresh('twin-out');
      await main.restore(record, new DirectoryTarget(out));
      expect(await describeTree(out)).toEqual(await describeTree(src));
    }
    await main.gc();
    await expectEverySnapshotRestores();
  });

  it('deletes nothing when a collector’s lease lapses while it is paused, and a writer that took the store over loses nothing', async () => {
    await snapshot(
      main,
      await tree('gc-lapse-gone', { 'gone.bin': bytesFrom(501, 200_000) }),
      'gc-lapse-gone',
    );
    await forgetAll('gc-lapse-gone');
    let failing = false;
    const paused = gate();
    const collector = await openWith(
      { lockTtlMs: 1000, locksClient: refreshesFail(() => failing) },
      pausedObjects(ts.deps().objects, paused, (op, key) => op === 'list' && key === PACK_PREFIX),
    );
    const collecting = collector.gc();
    await paused.reached;
    failing = true;

    // Once the collector's lease has lapsed, a writer takes the store over and records a snapshot.
    const src = await tree('gc-lapse-w', { 'w.bin': bytesFrom(502, 200_000) });
    let record: SnapshotRecord | undefined;
    for (let attempt = 0; !record; attempt++) {
      try {
        record = await snapshot(main, src, 'gc-lapse-w');
      } catch (e) {
        if (!(e instanceof StoreBusyError) || attempt > 200) throw e;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    const before = await keys();
    paused.open();
    expect(await collecting.catch((e: unknown) => e)).toBeInstanceOf(LeaseLostError);
    expect(await keys()).toEqual(before);
    await expectEverySnapshotRestores();
  });
});

describe('garbage collection checks before it deletes', () => {
  it('deletes nothing when a chunk of a recorded snapshot is in no index, and names the snapshot and the chunk', async () => {
    const src = await tree('unindexed', { 'u.bin': bytesFrom(601, 200_000) });
    const record = await snapshot(main, src, 'unindexed');
    await snapshot(
      main,
      await tree('unindexed-gone', { 'g.bin': bytesFrom(602, 200_000) }),
      'unindexed-gone',
    );
    await forgetAll('unindexed-gone');
    const chunk = (await main.manifest(record)).entries.find((e) => e.path === 'u.bin')
      ?.chunks?.[0] as string;
    const indexKey = record.indexKeys[0] as string;
    const objects = ts.deps().objects;
    const index = await objects.get(indexKey);
    await objects.delete([indexKey]);
    const before = await keys();

    const failure = await main.gc().catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(CorruptionError);
    expect((failure as CorruptionError).chunkId).toBe(chunk);
    expect((failure as Error).message).toContain(`snapshot unindexed#${record.version} needs chunk ${chunk}`);
    expect(await keys()).toEqual(before);

    await objects.put(indexKey, index);
    expect((await main.gc()).packsDeleted).toBeGreaterThanOrEqual(1);
    await expectEverySnapshotRestores();
  });

  it('deletes nothing when the pack an index lists for a recorded snapshot is gone from the bucket', async () => {
    const packsBefore = new Set(await keys(PACK_PREFIX));
    const record = await snapshot(
      main,
      await tree('packless', { 'p.bin': bytesFrom(701, 200_000) }),
      'packless',
    );
    const [pack] = (await keys(PACK_PREFIX)).filter((k) => !packsBefore.has(k));
    await snapshot(main, await tree('packless-gone', { 'g.bin': bytesFrom(702, 200_000) }), 'packless-gone');
    await forgetAll('packless-gone');
    const objects = ts.deps().objects;
    const bytes = await objects.get(pack as string);
    await objects.delete([pack as string]);
    const before = await keys();

    const failure = await main.gc().catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(CorruptionError);
    expect((failure as Error).message).toContain(`snapshot packless#${record.version} needs chunk`);
    expect((failure as Error).message).toContain(`${pack}, which is missing`);
    expect(await keys()).toEqual(before);

    await objects.put(pack as string, bytes);
    await main.gc();
    await expectEverySnapshotRestores();
  });
});

describe('restore alongside garbage collection', () => {
  it('completes with the snapshot’s bytes when gc replaces the indexes while the restore is reading them', async () => {
    const paused = gate();
    // Opened (its index read) before the snapshot exists, so the restore reads the indexes again.
    let restoring = false;
    const restorer = await openWith(
      {},
      pausedObjects(
        ts.deps().objects,
        paused,
        (op, key) => restoring && op === 'get' && key.startsWith(INDEX_PREFIX),
      ),
    );
    const src = await tree('during', { 'd.bin': bytesFrom(801, 300_000), 'd.txt': 'during\n' });
    const record = await snapshot(main, src, 'during');
    await snapshot(main, await tree('during-gone', { 'g.bin': bytesFrom(802, 300_000) }), 'during-gone');
    await forgetAll('during-gone');

    const out = fresh('during-out');
    restoring = true;
    const restored = restorer.restore(record, new DirectoryTarget(out));
    await paused.reached;
    const report = await main.gc();
    expect(report.packsDeleted).toBeGreaterThanOrEqual(1);
    expect(report.indexesRewritten).toBeGreaterThanOrEqual(2);
    paused.open();
    await restored;
    expect(await describeTree(out)).toEqual(await describeTree(src));
  });
});

describe('garbage collection under lease faults, round after round', () => {
  it('never leaves a recorded snapshot unrestorable, whichever writers and collectors win', async () => {
    // Contents shared between rounds, so that writers deduplicate against packs that the
    // collectors are deleting as the snapshots that stored them are forgotten.
    const pool = [0, 1, 2, 3].map((i) => bytesFrom(900 + i, 150_000));
    const outcomes: string[] = [];
    const settle = async (what: string, work: Promise<unknown>) => {
      try {
        await work;
        outcomes.push(`${what}: done`);
      } catch (e) {
        if (!(e instanceof StoreBusyError) && !(e instanceof LeaseLostError)) throw e;
        outcomes.push(`${what}: ${(e as Error).name}`);
      }
    };
    for (let round = 0; round < 6; round++) {
      const files = (salt: number) => ({
        'a.bin': pool[(round + salt) % pool.length] as Buffer,
        'b.bin': pool[(round + salt + 1) % pool.length] as Buffer,
        'own.txt': `round ${round} writer ${salt}\n`,
      });
      // Content that only a snapshot about to be forgotten holds: the flaky writer has it too.
      const doomed = bytesFrom(950 + round, 120_000);
      await snapshot(main, await tree(`chaos-${round}-d`, { 'doomed.bin': doomed }), 'chaos-doomed');
      // A writer whose refreshes fail half the time, paused while a collector runs.
      const flaky = await openWith({ lockTtlMs: 800, locksClient: refreshesFail(() => Math.random() < 0.5) });
      const steady = await openWith({ lockTtlMs: 60_000 });
      const paused = gate();
      const flakySrc = await tree(`chaos-${round}-f`, { ...files(0), 'doomed.bin': doomed });
      const steadySrc = await tree(`chaos-${round}-s`, files(1));
      const flakyDone = settle(
        'flaky writer',
        flaky
          .create(pausedSource(directorySource(flakySrc), paused), { host: `chaos-${round % 3}` })
          .then(async (r) => trees.set(`${r.host}#${r.version}`, await describeTree(flakySrc))),
      );
      const steadyDone = settle('steady writer', snapshot(steady, steadySrc, `chaos-${(round + 1) % 3}`));
      await paused.reached;
      // Forget the host written by neither writer and the doomed content, and collect: with a clock an hour ahead, or once the flaky lease lapsed.
      await forgetAll(`chaos-${(round + 2) % 3}`);
      await forgetAll('chaos-doomed');
      const collector = await openWith(round % 2 === 0 ? { now: () => Date.now() + HOUR } : {});
      await settle('collector', round % 2 === 0 ? collector.gc() : gcOnceFree(collector));
      paused.open();
      await Promise.all([flakyDone, steadyDone]);
      await expectEverySnapshotRestores();
    }
    expect(outcomes).toHaveLength(18);
    await expectEverySnapshotRestores();
    await main.gc();
    await expectEverySnapshotRestores();
  });
});
