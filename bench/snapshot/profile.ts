// Where a version-1 snapshot and its restore spend their CPU: the bench's child (bundled, as
// `persona snapshot` ships) into a fresh bucket of the stand-ins, under GNU time, optionally
// with V8's CPU profiler on its main thread, and the restored tree compared with the source.
//
//   node --import tsx bench/snapshot/profile.ts [--runs=3] [--cpu-prof | --perf] [--restore | --again] [--dir=<tree>]
//     [--child=<another tree's bench/snapshot/persona-child.ts>] [--child-flags="<node flags>"] [--keep]
//     [--limits=<PipelineLimits as JSON>] [--no-cache]
//
// The tree defaults to the bench's cached corpus. zstd runs on libuv's thread pool, which the
// profiler does not sample: CPU seconds beyond the main thread's samples are the pool's.
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { LOCKS_TABLE, SNAPSHOTS_TABLE } from '../../core/storage/definitions.js';
import { LOCAL_CREDENTIALS, LOCAL_REGION, startStandIns } from '../../local/stand-ins.js';
import { bundleChild } from './child-bundle.js';
import { CACHE_DIR, digestTree } from './corpus.js';
import type { ChildJob, ChildResult } from './persona-child.js';
import { cpuSecondsOf, descendantsNamed, timed } from './run.js';

const arg = (name: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const RUNS = Number(arg('runs') ?? 3);
const PROFILE = process.argv.includes('--cpu-prof');
// perf(1) samples every thread (the pool's zstd, V8's collector), which V8's profiler does not.
const PERF = process.argv.includes('--perf');
const RESTORE = process.argv.includes('--restore');
// --again: a second snapshot of the unchanged tree into the same store after each first one.
const AGAIN = process.argv.includes('--again');
// Flags for the child's node, e.g. --child-flags="--trace-gc".
const CHILD_FLAGS = (arg('child-flags') ?? '').split(' ').filter((f) => f !== '');
const TREE = arg('dir') ?? join(CACHE_DIR, 'bookworm-minbase');
const threads = (c: ChildResult) =>
  Object.entries(c.threadCpuS ?? {})
    .map(([k, v]) => `${k} ${v.toFixed(2)}`)
    .join(', ');
const mem = (c: ChildResult) => {
  const m = c.memory?.atPeakRss;
  if (!m) return '';
  const f = (k: string) => ((m[k] ?? 0) / 2 ** 20).toFixed(0);
  return ` (at peak: heap ${f('heapTotal')}, ArrayBuffers ${f('arrayBuffers')}, external ${f('external')} MiB)`;
};
const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' / ');

const work = mkdtempSync(join(tmpdir(), 'persona-snapprof-'));
const bundle = join(work, 'persona-child.mjs');
// --child=<path> bundles another tree's child (an older commit's, for before and after).
const child = arg('child');
await (child === undefined ? bundleChild(bundle) : bundleChild(bundle, child));
// Read once so that every run reads the tree from the page cache.
spawnSync('tar', ['-cf', '/dev/null', '-C', TREE, '.']);

const buckets = Array.from({ length: RUNS }, (_, i) => `prof-${i}`);
const WARM_UP = 'warm-up';
const standIns = await startStandIns({
  dataDir: join(work, 'stand-ins'),
  tables: [...buckets, WARM_UP].flatMap((b) => [
    { definition: SNAPSHOTS_TABLE, name: `snapshots-${b}` },
    { definition: LOCKS_TABLE, name: `locks-${b}` },
  ]),
  buckets: [...buckets, WARM_UP],
});
const dynamoPid = descendantsNamed(process.pid, 'java')[0];
const source = RESTORE ? await digestTree(TREE) : undefined;

const job = (mode: ChildJob['mode'], dir: string, bucket: string): ChildJob => ({
  mode,
  dir,
  host: 'rootfs',
  s3: standIns.s3Endpoint,
  dynamo: standIns.dynamoEndpoint,
  region: LOCAL_REGION,
  credentials: LOCAL_CREDENTIALS,
  bucket,
  snapshotsTable: `snapshots-${bucket}`,
  locksTable: `locks-${bucket}`,
  keysDir: join(work, `keys-${bucket}`),
  // As bench:snapshot runs it: the listing cache `persona` keeps (--no-cache: none).
  ...(process.argv.includes('--no-cache') ? {} : { cacheDir: join(work, `cache-${bucket}`) }),
  // --limits='{"collectBytes":16777216}': the store's pipeline limits for the measured runs.
  ...(arg('limits') && bucket !== WARM_UP ? { limits: JSON.parse(arg('limits') as string) } : {}),
});

let runs = 0;
const run = async (j: ChildJob, profileDir?: string) => {
  const cpu0 = process.cpuUsage();
  const dynamo0 = dynamoPid === undefined ? 0 : (cpuSecondsOf(dynamoPid) ?? 0);
  const flags = [...CHILD_FLAGS, ...(profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [])];
  const perfData = join(work, `perf-${runs}.data`);
  const r = PERF
    ? await timed('perf', [
        'record',
        '-F',
        '999',
        '-o',
        perfData,
        '--',
        process.execPath,
        '--perf-basic-prof',
        ...flags,
        bundle,
        JSON.stringify(j),
      ])
    : await timed(process.execPath, [...flags, bundle, JSON.stringify(j)], {
        env: { NODE_COMPILE_CACHE: join(work, 'compile-cache') },
      });
  if (PERF) {
    const report = spawnSync(
      'perf',
      ['report', '-i', perfData, '--no-children', '--sort', 'comm,sym', '--stdio', '--percent-limit', '0.7'],
      { encoding: 'utf8', maxBuffer: 64 * 2 ** 20 },
    );
    process.stdout.write(
      `${report.stdout
        .split('\n')
        .filter((l) => l !== '' && !l.startsWith('#'))
        .slice(0, 60)
        .join('\n')}\n`,
    );
  }
  const cpu = process.cpuUsage(cpu0);
  const dynamo = (dynamoPid === undefined ? 0 : (cpuSecondsOf(dynamoPid) ?? 0)) - dynamo0;
  // The result is the child's last JSON line: flags such as --trace-gc print after it too.
  const result = r.stdout
    .trim()
    .split('\n')
    .findLast((line) => line.startsWith('{'));
  const child = JSON.parse(result ?? '{}') as ChildResult;
  if (CHILD_FLAGS.length > 0) writeFileSync(join(work, `child-${runs++}.out`), r.stdout + r.stderr);
  return { r, child, s3: (cpu.user + cpu.system) / 1e6, dynamo };
};

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
/** Self time by function, from a .cpuprofile: the top entries and totals by where the code lives. */
const summarise = (file: string) => {
  const p = JSON.parse(readFileSync(file, 'utf8')) as {
    nodes: Node[];
    samples: number[];
    timeDeltas: number[];
  };
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  for (const [i, id] of p.samples.entries()) self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0));
  const fns = new Map<string, number>();
  const areas = new Map<string, number>();
  const area = (url: string, fn: string) => {
    if (fn === '(garbage collector)') return 'GC';
    if (fn === '(idle)') return 'idle';
    if (fn === '(program)') return 'program';
    if (url.includes('@aws-sdk') || url.includes('@smithy')) return 'aws-sdk';
    if (url.startsWith('node:')) return url;
    const m = /core\/snapshot\/([a-z-]+)\.ts/.exec(url);
    if (m) return `snapshot/${m[1]}`;
    return url === '' ? `native ${fn}` : url.replace(/^.*\//, '');
  };
  for (const [id, us] of self) {
    const n = byId.get(id) as Node;
    const { functionName, url, lineNumber } = n.callFrame;
    const key = `${functionName || '(anonymous)'} ${url.replace(/^.*\//, '')}:${lineNumber + 1}`;
    fns.set(key, (fns.get(key) ?? 0) + us);
    const a = area(url, functionName);
    areas.set(a, (areas.get(a) ?? 0) + us);
  }
  const top = (m: Map<string, number>, n: number) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, us]) => `    ${(us / 1000).toFixed(0).padStart(6)} ms  ${k}`)
      .join('\n');
  return `  by area:\n${top(areas, 14)}\n  by function:\n${top(fns, 25)}`;
};

// The stand-ins' first requests, as in the bench: DynamoDB Local is a JVM and would charge
// its warming to the first snapshot. One snapshot and restore of a small tree, unmeasured.
{
  const small = join(work, 'warm-up-tree');
  mkdirSync(join(small, 'etc'), { recursive: true });
  for (let i = 0; i < 20; i++) writeFileSync(join(small, 'etc', `f${i}.conf`), `key=${i}\n`.repeat(200 * i));
  await timed(process.execPath, [bundle, JSON.stringify(job('snapshot', small, WARM_UP))]);
  await timed(process.execPath, [bundle, JSON.stringify(job('snapshot', small, WARM_UP))]);
  await timed(process.execPath, [bundle, JSON.stringify(job('restore', join(work, 'warm-up-out'), WARM_UP))]);
}
/** The summary of the CPU profile the child left in `dir`, when it was profiled. */
const printProfile = (dir: string | undefined) => {
  if (dir === undefined) return;
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  if (file) process.stdout.write(`${summarise(join(dir, file))}\n  profile: ${join(dir, file)}\n`);
};

process.stdout.write(`load at start ${load()}\n`);
for (const bucket of buckets) {
  const profileDir = PROFILE ? join(work, `profile-${bucket}`) : undefined;
  const s = await run(job('snapshot', TREE, bucket), profileDir);
  const cpu = s.r.userS + s.r.sysS;
  process.stdout.write(
    `snapshot ${bucket}: wall ${(s.r.wallMs / 1000).toFixed(2)} s (modules ${(s.child.importMs / 1000).toFixed(2)}, ` +
      `open ${(s.child.openMs / 1000).toFixed(2)}, work ${(s.child.workMs / 1000).toFixed(2)}), ` +
      `CPU ${cpu.toFixed(2)} s (user ${s.r.userS.toFixed(2)} sys ${s.r.sysS.toFixed(2)}; ${threads(s.child)}), ` +
      `s3rver ${s.s3.toFixed(2)} s, DynamoDB ${s.dynamo.toFixed(2)} s, ` +
      `RSS ${(s.r.maxRssBytes / 2 ** 20).toFixed(1)} MiB${mem(s.child)}, stored ${((s.child.snapshot?.storedBytes ?? 0) / 2 ** 20).toFixed(2)} MiB; load ${load()}\n`,
  );
  printProfile(profileDir);
  if (AGAIN) {
    // The same tree again: what a later version costs where nothing changed (every file skipped
    // by its inode, size and times; the manifest and index of the first read).
    const againProfile = PROFILE ? join(work, `profile-again-${bucket}`) : undefined;
    const a = await run(job('snapshot', TREE, bucket), againProfile);
    process.stdout.write(
      `again ${bucket}: wall ${(a.r.wallMs / 1000).toFixed(2)} s (modules ${(a.child.importMs / 1000).toFixed(2)}, ` +
        `open ${(a.child.openMs / 1000).toFixed(2)}, work ${(a.child.workMs / 1000).toFixed(2)}), ` +
        `CPU ${(a.r.userS + a.r.sysS).toFixed(2)} s (${threads(a.child)}), s3rver ${a.s3.toFixed(2)} s, ` +
        `DynamoDB ${a.dynamo.toFixed(2)} s, RSS ${(a.r.maxRssBytes / 2 ** 20).toFixed(1)} MiB; load ${load()}\n`,
    );
    printProfile(againProfile);
  }
  if (RESTORE && source) {
    // Into memory, as the bench restores (--restore-on-disk there): on this machine's ext4 a new
    // inode's cost depends on what was deleted before it.
    const target = existsSync('/dev/shm')
      ? mkdtempSync('/dev/shm/persona-snapprof-')
      : join(work, `restore-${bucket}`);
    const restoreProfile = PROFILE ? join(work, `profile-restore-${bucket}`) : undefined;
    const r = await run(job('restore', target, bucket), restoreProfile);
    const digest = await digestTree(target);
    const same = digest.content === source.content && digest.metadata === source.metadata;
    process.stdout.write(
      `restore ${bucket}: wall ${(r.r.wallMs / 1000).toFixed(2)} s, CPU ${(r.r.userS + r.r.sysS).toFixed(2)} s (${threads(r.child)}), ` +
        `s3rver ${r.s3.toFixed(2)} s, RSS ${(r.r.maxRssBytes / 2 ** 20).toFixed(1)} MiB${mem(r.child)}, ` +
        `restored = source: ${same ? 'yes' : 'NO'}; load ${load()}\n`,
    );
    printProfile(restoreProfile);
    if (!same) process.exitCode = 1;
    rmSync(target, { recursive: true, force: true });
  }
}
await standIns.stop();
if (!process.argv.includes('--keep')) rmSync(work, { recursive: true, force: true });
else process.stdout.write(`kept ${work}\n`);
process.exit();
