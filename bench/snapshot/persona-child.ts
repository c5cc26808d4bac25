// One Persona snapshot or restore in a process of its own, so that its peak memory is its own:
// the same code path as `persona snapshot` on the embedded runtime (SnapshotStore over the
// S3 protocol and DynamoDB). The parent runs the stand-ins; this process only talks to them.
//
//   node --import tsx bench/snapshot/persona-child.ts '<ChildJob as JSON>'
//
// Prints one line of JSON (ChildResult).
import { readdirSync, readFileSync } from 'node:fs';
import type { ChunkerParams } from '../../core/snapshot/chunker.js';
import { holdYoungGeneration } from '../../core/snapshot/memory.js';
import { S3_CHECKSUMS } from '../../core/snapshot/object-store.js';
import type { PipelineLimits } from '../../core/snapshot/store.js';

// Before the SDK's modules load, as `persona snapshot` does: loading them grows the young
// generation, and a generation held afterwards stays at the size it reached.
holdYoungGeneration();
const [
  { DynamoDBClient },
  { S3Client },
  { DynamoDBDocumentClient },
  { LocalKeyProvider },
  { S3ObjectStore },
  { DynamoLocks, DynamoSnapshotRecords },
  { SnapshotStore },
  { DirectoryTarget, directorySource },
] = await Promise.all([
  import('@aws-sdk/client-dynamodb'),
  import('@aws-sdk/client-s3'),
  import('@aws-sdk/lib-dynamodb'),
  import('../../core/snapshot/keys.js'),
  import('../../core/snapshot/object-store.js'),
  import('../../core/snapshot/records.js'),
  import('../../core/snapshot/store.js'),
  import('../../core/snapshot/tree.js'),
]);

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
  /** Where the store keeps listing chunks on this machine, as `persona` does under ~/.cache. */
  readonly cacheDir?: string;
  /** For a store that does not exist yet. */
  readonly chunker?: ChunkerParams;
  /** The pipeline's limits, where they differ from the defaults. */
  readonly limits?: Partial<PipelineLimits>;
}

export interface ChildResult {
  /** Module loading is over when this process starts timing: what tsx and the SDK cost. */
  readonly importMs: number;
  /** SnapshotStore.open: config, key, and every index read. */
  readonly openMs: number;
  readonly workMs: number;
  readonly vmHwmBytes: number;
  /** process.memoryUsage() figures, each at its highest where RSS reached a new high, and all at the highest RSS. */
  readonly memory?: { readonly peak: Record<string, number>; readonly atPeakRss: Record<string, number> };
  /** CPU seconds by thread kind at the end: the main thread, libuv's pool, V8's own (GC, compiler). */
  readonly threadCpuS?: Record<string, number>;
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
// What the process's memory is made of at its peak (sampled): V8's heap, ArrayBuffers, the rest.
const peakMemory = { rss: 0, heapTotal: 0, heapUsed: 0, external: 0, arrayBuffers: 0 };
let atPeak = { ...peakMemory };
// The whole breakdown walks V8's heap spaces, which at every 20 ms cost about 0.2 s of the main
// thread over a run: it is read where the RSS reaches a new high, the RSS alone otherwise.
const sampler = setInterval(() => {
  const rss = process.memoryUsage.rss();
  if (rss < atPeak.rss) return;
  const m = process.memoryUsage();
  for (const k of Object.keys(peakMemory) as (keyof typeof peakMemory)[])
    peakMemory[k] = Math.max(peakMemory[k], m[k]);
  if (m.rss >= atPeak.rss)
    atPeak = {
      rss: m.rss,
      heapTotal: m.heapTotal,
      heapUsed: m.heapUsed,
      external: m.external,
      arrayBuffers: m.arrayBuffers,
    };
}, 20);
sampler.unref();
const job = JSON.parse(process.argv[2] ?? '{}') as ChildJob;
const threadCpu = (): Record<string, number> => {
  const out: Record<string, number> = {};
  for (const task of readdirSync('/proc/self/task')) {
    try {
      const stat = readFileSync(`/proc/self/task/${task}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const kind = Number(task) === process.pid ? 'main' : name.startsWith('libuv-worker') ? 'pool' : 'v8';
      out[kind] = (out[kind] ?? 0) + (Number(f[11]) + Number(f[12])) / 100;
    } catch {
      // The thread ended meanwhile.
    }
  }
  return out;
};
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
    ...S3_CHECKSUMS,
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
      ...(job.cacheDir ? { cacheDir: job.cacheDir } : {}),
    },
    { ...(job.chunker ? { chunker: job.chunker } : {}), ...(job.limits ? { limits: job.limits } : {}) },
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
      threadCpuS: threadCpu(),
      memory: { peak: peakMemory, atPeakRss: atPeak },
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
      threadCpuS: threadCpu(),
      memory: { peak: peakMemory, atPeakRss: atPeak },
      restore: { entries: stats.entries, written: stats.written, bytes: stats.bytes },
    };
  }
  s3.destroy();
  ddb.destroy();
}
// PERSONA_BENCH_SMAPS=1: the largest mappings by resident size at the end, on stderr (what the
// memory that is neither V8's heap nor ArrayBuffers is).
if (process.env.PERSONA_BENCH_SMAPS === '1') {
  const maps: { rss: number; what: string }[] = [];
  let current = '';
  for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss) maps.push({ rss: Number(rss[1]), what: current });
    else if (/^[0-9a-f]+-[0-9a-f]+ /.test(line)) current = line;
  }
  maps.sort((a, b) => b.rss - a.rss);
  process.stderr.write(
    `${maps
      .slice(0, 15)
      .map((m) => `${(m.rss / 1024).toFixed(1)} MiB ${m.what}`)
      .join('\n')}\n`,
  );
}
process.stdout.write(`${JSON.stringify(result)}\n`);
