// A snapshot store on the real stand-ins (DynamoDB Local and the S3-protocol server) in a
// fresh folder, plus helpers to build and compare file trees.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { LocalKeyProvider } from '../../core/snapshot/keys.js';
import { S3ObjectStore } from '../../core/snapshot/object-store.js';
import { DynamoLocks, DynamoSnapshotRecords } from '../../core/snapshot/records.js';
import { SnapshotStore, type StoreDeps } from '../../core/snapshot/store.js';
import { directorySource } from '../../core/snapshot/tree.js';
import { LOCKS_TABLE, SNAPSHOTS_TABLE } from '../../core/storage/definitions.js';
import { LOCAL_CREDENTIALS, LOCAL_REGION, type StandIns, startStandIns } from '../../local/stand-ins.js';

/** How the test store's locks behave; `locksClient` lets a test put faults between them and DynamoDB. */
export interface TestLockOptions {
  readonly lockTtlMs?: number;
  /** Every process of a test shares this machine's clock: a small margin keeps tests quick. */
  readonly clockSkewMs?: number;
  readonly now?: () => number;
  readonly locksClient?: DynamoDBDocumentClient;
}

/** The clock skew the test store's locks allow unless a test says otherwise. */
export const TEST_CLOCK_SKEW_MS = 200;

export interface TestStore {
  readonly dir: string;
  readonly standIns: StandIns;
  readonly bucket: string;
  readonly s3: S3Client;
  readonly ddb: DynamoDBDocumentClient;
  deps(options?: TestLockOptions): StoreDeps;
  open(options?: TestLockOptions): Promise<SnapshotStore>;
  /** Settings a child process needs to open the same store. */
  readonly env: Record<string, string>;
  stop(): Promise<void>;
}

export async function startTestStore(): Promise<TestStore> {
  const dir = mkdtempSync(join(tmpdir(), 'persona-store-'));
  const bucket = 'persona-test';
  const tables = [
    { definition: SNAPSHOTS_TABLE, name: 'snapshots' },
    { definition: LOCKS_TABLE, name: 'locks' },
  ];
  const standIns = await startStandIns({ dataDir: join(dir, 'data'), tables, buckets: [bucket] });
  const ddb = DynamoDBDocumentClient.from(
    new DynamoDBClient({
      endpoint: standIns.dynamoEndpoint,
      region: LOCAL_REGION,
      credentials: LOCAL_CREDENTIALS,
    }),
    { marshallOptions: { removeUndefinedValues: true } },
  );
  const s3 = new S3Client({
    endpoint: standIns.s3Endpoint,
    region: LOCAL_REGION,
    credentials: LOCAL_CREDENTIALS,
    forcePathStyle: true,
  });
  const keysDir = join(dir, 'keys');
  const deps = (options: TestLockOptions = {}): StoreDeps => ({
    objects: new S3ObjectStore(s3, bucket),
    records: new DynamoSnapshotRecords(ddb, 'snapshots'),
    locks: new DynamoLocks(options.locksClient ?? ddb, 'locks', {
      clockSkewMs: options.clockSkewMs ?? TEST_CLOCK_SKEW_MS,
      ...(options.lockTtlMs === undefined ? {} : { ttlMs: options.lockTtlMs }),
      ...(options.now === undefined ? {} : { now: options.now }),
    }),
    keys: new LocalKeyProvider(keysDir),
  });
  return {
    dir,
    standIns,
    bucket,
    s3,
    ddb,
    deps,
    open: (options) => SnapshotStore.open(deps(options)),
    env: {
      STORE_DYNAMO: standIns.dynamoEndpoint,
      STORE_S3: standIns.s3Endpoint,
      STORE_BUCKET: bucket,
      STORE_KEYS: keysDir,
      LOCK_SKEW_MS: String(TEST_CLOCK_SKEW_MS),
    },
    async stop() {
      await standIns.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A deterministic pseudo-random byte generator (xorshift32). */
export function bytesFrom(seed: number, length: number): Buffer {
  const out = Buffer.alloc(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

export interface TreeLine {
  path: string;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size?: number;
  /** Microseconds: what every filesystem and utimes() keep. */
  mtimeUs?: string;
  target?: string;
  sha256?: string;
  sparse?: boolean;
}

/** Everything about a tree a restore must reproduce, in path order. */
export async function describeTree(root: string): Promise<TreeLine[]> {
  const lines: TreeLine[] = [];
  for await (const item of directorySource(root).entries()) {
    const e = item.entry;
    const line: TreeLine = { path: e.path, type: e.type, mode: e.mode, uid: e.uid, gid: e.gid };
    if (e.type !== 'symlink' && e.type !== 'hardlink') line.mtimeUs = (BigInt(e.mtimeNs) / 1000n).toString();
    if (e.target !== undefined) line.target = e.target;
    if (e.type === 'file') {
      line.size = e.size ?? 0;
      const hash = createHash('sha256');
      const file = await fs.readFile(join(root, e.path));
      hash.update(file);
      line.sha256 = hash.digest('hex');
      const s = await fs.stat(join(root, e.path));
      line.sparse = s.size > 65536 && s.blocks * 512 < s.size;
    }
    lines.push(line);
  }
  return lines;
}
