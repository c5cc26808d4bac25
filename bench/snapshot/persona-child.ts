// One Persona snapshot or restore in a process of its own, so that its peak memory is its own:
// the same code path as `persona snapshot` on the embedded runtime (SnapshotStore over the
// S3 protocol and DynamoDB). The parent runs the stand-ins; this process only talks to them.
//
//   node --import tsx bench/snapshot/persona-child.ts '<ChildJob as JSON>'
//
// Prints one line of JSON (ChildResult).
import { readFileSync } from 'node:fs';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { ChunkerParams } from '../../core/snapshot/chunker.js';
import { LocalKeyProvider } from '../../core/snapshot/keys.js';
import { S3ObjectStore } from '../../core/snapshot/object-store.js';
import { DynamoLocks, DynamoSnapshotRecords } from '../../core/snapshot/records.js';
import { SnapshotStore } from '../../core/snapshot/store.js';
import { DirectoryTarget, directorySource } from '../../core/snapshot/tree.js';

export interface ChildJob {
  readonly mode: 'snapshot' | 'restore' | 'noop';
  readonly dir: string;
  readonly host: string;
  readonly s3: string;
  readonly dynamo: string;
  /** The stand-ins' region and key pair, passed in: importing local/stand-ins.ts would load s3rver and the DynamoDB Local launcher into this process. */
  readonly region: string;
  readonly credentials: { readonly accessKeyId: string; readonly secretAccessKey: string };
  readonly bucket: string;
  readonly snapshotsTable: string;
  readonly locksTable: string;
  readonly keysDir: string;
  /** For a store that does not exist yet. */
  readonly chunker?: ChunkerParams;
}

export interface ChildResult {
  /** Module loading is over when this process starts timing: what tsx and the SDK cost. */
  readonly importMs: number;
  /** SnapshotStore.open: config, key, and every index read. */
  readonly openMs: number;
  readonly workMs: number;
  readonly vmHwmBytes: number;
  readonly snapshot?: {
    files: number;
    bytes: number;
    chunks: number;
    newChunks: number;
    newBytes: number;
    storedBytes: number;
  };
  readonly restore?: { entries: number; written: number; bytes: number };
}

const importMs = performance.now();
const job = JSON.parse(process.argv[2] ?? '{}') as ChildJob;
const vmHwm = () =>
  Number(/^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 0) * 1024;

let result: ChildResult;
if (job.mode === 'noop') {
  result = { importMs, openMs: 0, workMs: 0, vmHwmBytes: vmHwm() };
} else {
  const ddb = DynamoDBDocumentClient.from(
    new DynamoDBClient({ endpoint: job.dynamo, region: job.region, credentials: job.credentials }),
    { marshallOptions: { removeUndefinedValues: true } },
  );
  const s3 = new S3Client({
    endpoint: job.s3,
    region: job.region,
    credentials: job.credentials,
    forcePathStyle: true,
  });
  const t0 = performance.now();
  const store = await SnapshotStore.open(
    {
      objects: new S3ObjectStore(s3, job.bucket),
      records: new DynamoSnapshotRecords(ddb, job.snapshotsTable),
      locks: new DynamoLocks(ddb, job.locksTable),
      keys: new LocalKeyProvider(job.keysDir),
    },
    job.chunker ? { chunker: job.chunker } : {},
  );
  const t1 = performance.now();
  if (job.mode === 'snapshot') {
    const record = await store.create(directorySource(job.dir), { host: job.host });
    const s = record.stats;
    result = {
      importMs,
      openMs: t1 - t0,
      workMs: performance.now() - t1,
      vmHwmBytes: vmHwm(),
      snapshot: {
        files: s.files,
        bytes: s.bytes,
        chunks: s.chunks,
        newChunks: s.newChunks,
        newBytes: s.newBytes,
        storedBytes: s.storedBytes,
      },
    };
  } else {
    const stats = await store.restore(await store.record(job.host), new DirectoryTarget(job.dir));
    result = {
      importMs,
      openMs: t1 - t0,
      workMs: performance.now() - t1,
      vmHwmBytes: vmHwm(),
      restore: { entries: stats.entries, written: stats.written, bytes: stats.bytes },
    };
  }
  s3.destroy();
  ddb.destroy();
}
process.stdout.write(`${JSON.stringify(result)}\n`);
