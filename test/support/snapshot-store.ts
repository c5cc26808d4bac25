// A snapshot store on the real stand-ins (DynamoDB Local and the S3-protocol server) in a
// fresh folder, plus helpers to build and compare file trees.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
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

/**
 * An S3 endpoint in front of the S3-protocol server that honours `If-None-Match: *` on PUT as
 * S3 does (412 PreconditionFailed when the key exists), which s3rver ignores. Conditional
 * writes of one key are taken one at a time, so that the check and the write are one step.
 * `client` reaches it; its requests name (and are signed for) the server behind, which
 * answers only to its own name.
 */
export async function conditionalS3(target: string): Promise<{ client: S3Client; close(): Promise<void> }> {
  const upstream = new URL(target);
  const s3 = new S3Client({
    endpoint: target,
    region: LOCAL_REGION,
    credentials: LOCAL_CREDENTIALS,
    forcePathStyle: true,
  });
  const turns = new Map<string, Promise<void>>();
  const server = createServer((req, res) => {
    const forward = (body: Buffer) =>
      new Promise<void>((resolve) => {
        const headers = { ...req.headers };
        delete headers.expect;
        const out = request(
          { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers },
          (answer) => {
            res.writeHead(answer.statusCode ?? 502, answer.headers);
            answer.pipe(res);
            answer.on('end', () => resolve());
          },
        );
        out.on('error', (e) => {
          res.writeHead(502);
          res.end(String(e));
          resolve();
        });
        out.end(body);
      });
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (req.method !== 'PUT' || req.headers['if-none-match'] !== '*') {
        void forward(body);
        return;
      }
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      const [, bucket = '', ...key] = path.split('/').map(decodeURIComponent);
      const turn = (turns.get(path) ?? Promise.resolve()).then(async () => {
        const exists = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key.join('/') })).then(
          () => true,
          () => false,
        );
        if (!exists) return forward(body);
        res.writeHead(412, { 'content-type': 'application/xml' });
        res.end(
          '<?xml version="1.0" encoding="UTF-8"?><Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message><Condition>If-None-Match</Condition></Error>',
        );
      });
      turns.set(path, turn);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const client = new S3Client({
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    region: LOCAL_REGION,
    credentials: LOCAL_CREDENTIALS,
    forcePathStyle: true,
  });
  client.middlewareStack.add(
    (next) => async (args) => {
      (args.request as { headers: Record<string, string> }).headers.host = upstream.host;
      return next(args);
    },
    { step: 'build', priority: 'high', name: 'upstreamHost' },
  );
  return {
    client,
    close: async () => {
      client.destroy();
      s3.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}
