// The snapshot benchmark: Persona's snapshot store against restic and borg on a Debian root
// filesystem and nine later versions of it, in the same run on the same disk. Prints markdown
// (and keeps a copy in reports/snapshot-bench.md, which git ignores).
//
//   node --import tsx bench/snapshot/main.ts [--versions=10] [--alt-versions=4] [--keep] [--tsx]
//
// Needs root (device nodes, owners), debootstrap, restic and borg:
//   apt-get install -y restic borgbackup debootstrap time
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { availableParallelism, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { S3Client } from '@aws-sdk/client-s3';
import { type ChunkerParams, DEFAULT_CHUNKER } from '../../core/snapshot/chunker.js';
import { LOCKS_TABLE, SNAPSHOTS_TABLE } from '../../core/storage/definitions.js';
import { LOCAL_CREDENTIALS, LOCAL_REGION, startStandIns } from '../../local/stand-ins.js';
import { createReport } from '../report.js';
import { bundleChild } from './child-bundle.js';
import {
  type Corpus,
  digestTree,
  ensureCorpus,
  ensurePackages,
  firstDifferences,
  type MutationSummary,
  mutate,
  sampleData,
  type TreeDigest,
} from './corpus.js';
import { measureLimits } from './limits.js';
import { cpuSecondsOf, descendantsNamed, duBytes, type Run } from './run.js';
import { Borg, type Ingest, Persona, Restic, type Tool } from './tools.js';

const SEED = 20250601;
const MiB = 1024 * 1024;
const arg = (name: string, fallback: number) => {
  const hit = process.argv.find((a) => a.startsWith(`--${name}=`));
  return hit ? Number(hit.slice(name.length + 3)) : fallback;
};
const VERSIONS = arg('versions', 10);
const ALT_VERSIONS = Math.min(VERSIONS, arg('alt-versions', 4));
const KEEP = process.argv.includes('--keep');
// Persona's child runs as one bundled file, as the `persona` command ships; --tsx runs it
// through tsx instead (TypeScript compiled at every start).
const TSX = process.argv.includes('--tsx');
// Restores go to memory (/dev/shm) unless --restore-on-disk: on this machine's ext4, making an
// inode after many deletions scans past the recently freed ones (0.3-1 ms a file after a few
// restores and deletions of the tree), so each tool's time on disk depended on what the one
// before it had just deleted, not on the tool.
const RESTORE_ON_DISK = process.argv.includes('--restore-on-disk') || !existsSync('/dev/shm');

const { started, lines: out, say, progress, table } = createReport();
const mib = (b: number) => `${(b / MiB).toFixed(1)}`;
const sec = (ms: number) => (ms / 1000).toFixed(2);
const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length === 0
    ? Number.NaN
    : s.length % 2
      ? (s[m] as number)
      : ((s[m - 1] as number) + (s[m] as number)) / 2;
};
const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const loadAverage = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' / ');
const version = (command: string, args: string[]) =>
  spawnSync(command, args, { encoding: 'utf8' }).stdout?.split('\n')[0]?.trim() || 'missing';

for (const [command, args] of [
  ['restic', ['version']],
  ['borg', ['--version']],
  ['/usr/bin/time', ['--version']],
] as const) {
  const run = spawnSync(command, args, { encoding: 'utf8' });
  if (run.error || run.status !== 0) {
    process.stderr.write(
      `${command} is missing: apt-get install -y restic borgbackup debootstrap time (as root)\n`,
    );
    process.exit(2);
  }
}

// ---------------------------------------------------------------- code under test
// Others may commit while the benchmark runs: a fingerprint of the store's sources, taken at
// the start and again at the end, says whether every version measured the same code.
const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const storeSources = fileURLToPath(new URL('../../core/snapshot/', import.meta.url));
const fingerprint = () => {
  const hash = createHash('sha256');
  for (const name of readdirSync(storeSources).sort())
    if (name.endsWith('.ts')) hash.update(name).update(readFileSync(join(storeSources, name)));
  return hash.digest('hex').slice(0, 12);
};
const git = (args: string[]) =>
  spawnSync('git', args, { cwd: repoRoot, encoding: 'utf8' }).stdout?.trim() ?? '';
// An exported tree (git archive) is no checkout: its commit can be given by hand.
const commit =
  process.env.PERSONA_BENCH_COMMIT ?? (git(['rev-parse', '--short', 'HEAD']) || 'not a git checkout');
const dirty = git(['status', '--porcelain', '--', 'core/snapshot']) !== '';
const codeAtStart = fingerprint();

// ---------------------------------------------------------------- machine
// CPU seconds the whole machine spent busy (from /proc/stat) against what this benchmark and
// its children spent: the difference is other work, which makes the figures incomparable.
const machineBusyS = () => {
  const fields = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '')
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  // user nice system idle iowait irq softirq steal: busy is all but idle and iowait.
  const busy = fields.slice(0, 8).reduce((n, v, i) => (i === 3 || i === 4 ? n : n + v), 0);
  return busy / 100;
};
const ownCpuS = () => {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime stime cutime cstime: this process and the children it has waited for.
  return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / 100;
};
const machineAtStart = machineBusyS();
const ownAtStart = ownCpuS();
const wallAtStart = performance.now();
const cpuModel = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? '?';
const loadAtStart = loadAverage();
const loadStart1 = loadavg()[0] ?? 0;
say('# Snapshot benchmark: Persona, restic, borg');
say();
say(
  `Machine: ${availableParallelism()} CPUs (${cpuModel}), ${(totalmem() / 1024 ** 3).toFixed(1)} GiB RAM, ` +
    `Node ${process.version}, ${version('restic', ['version'])}, ${version('borg', ['--version'])}. ` +
    `Load average at start: ${loadAtStart}.`,
);
say();
say(
  `Code: commit ${commit}${dirty ? ' with uncommitted changes in core/snapshot' : ''} ` +
    `(core/snapshot/*.ts fingerprint ${codeAtStart}).`,
);
say();

// ---------------------------------------------------------------- corpus
progress('corpus');
const corpus: Corpus = ensureCorpus(progress);
const packages = corpus.kind === 'debootstrap' ? ensurePackages(progress) : undefined;
const work = mkdtempSync(join(tmpdir(), 'persona-snapbench-'));
const tree = join(work, 'tree');
progress(`copying the corpus to ${tree}`);
const copy = spawnSync('cp', ['-a', `${corpus.dir}/.`, `${tree}/`], { encoding: 'utf8' });
if (copy.status !== 0) {
  mkdirSync(tree, { recursive: true });
  const again = spawnSync('cp', ['-a', `${corpus.dir}/.`, `${tree}/`], { encoding: 'utf8' });
  if (again.status !== 0) throw new Error(`cannot copy the corpus: ${again.stderr}`);
}

// ---------------------------------------------------------------- machine limits
progress('machine limits');
// In a function so that the 256 MiB sample is garbage by the time the tools run.
const { limits, sampleBytes, sampleFiles } = (() => {
  const sample = sampleData(tree, 256 * MiB);
  return {
    limits: measureLimits(sample.data, sample.files),
    sampleBytes: sample.files.reduce((n, f) => n + f.length, 0),
    sampleFiles: sample.files.length,
  };
})();

// ---------------------------------------------------------------- stand-ins and tools
progress('starting DynamoDB Local and s3rver');
interface PersonaConfig {
  readonly name: string;
  readonly bucket: string;
  readonly chunker: ChunkerParams;
  readonly versions: number;
}
const KiB = 1024;
const configs: PersonaConfig[] = [
  { name: 'persona', bucket: 'bench-default', chunker: DEFAULT_CHUNKER, versions: VERSIONS },
  {
    name: 'persona 64K/256K/1M',
    bucket: 'bench-small',
    chunker: { min: 64 * KiB, avg: 256 * KiB, max: 1024 * KiB },
    versions: ALT_VERSIONS,
  },
  {
    name: 'persona 512K/2M/8M',
    bucket: 'bench-large',
    chunker: { min: 512 * KiB, avg: 2048 * KiB, max: 8192 * KiB },
    versions: ALT_VERSIONS,
  },
].filter((c) => c.versions > 0);
const dataDir = join(work, 'stand-ins');
// A bucket and tables of their own for one unmeasured snapshot and restore before the others.
const WARM_UP = 'bench-warm-up';
const standIns = await startStandIns({
  dataDir,
  tables: [...configs.map((c) => c.bucket), WARM_UP].flatMap((bucket) => [
    { definition: SNAPSHOTS_TABLE, name: `snapshots-${bucket}` },
    { definition: LOCKS_TABLE, name: `locks-${bucket}` },
  ]),
  buckets: [...configs.map((c) => c.bucket), WARM_UP],
});
const s3 = new S3Client({
  endpoint: standIns.s3Endpoint,
  region: LOCAL_REGION,
  credentials: LOCAL_CREDENTIALS,
  forcePathStyle: true,
});
const dynamoPid = descendantsNamed(process.pid, 'java')[0];
const setup = {
  s3,
  s3Endpoint: standIns.s3Endpoint,
  dynamoEndpoint: standIns.dynamoEndpoint,
  s3Dir: join(dataDir, 's3'),
  dynamoPid,
};
const personas = configs.map(
  (c) =>
    new Persona(
      c.name,
      setup,
      c.bucket,
      { snapshots: `snapshots-${c.bucket}`, locks: `locks-${c.bucket}` },
      work,
      c.chunker,
    ),
);
const persona = personas[0] as Persona;
const restic = new Restic(work);
const borg = new Borg(work);
const tools: Tool[] = [persona, restic, borg, ...personas.slice(1)];
const versionsOf = (t: Tool) => configs.find((c) => c.name === t.name)?.versions ?? VERSIONS;
for (const t of tools) await t.init();

progress('node + tsx start-up');
const noops = [];
for (let i = 0; i < 3; i++) noops.push(await persona.noop());
// The same child as one bundled file: what start-up would cost without tsx compiling TypeScript.
const bundled: Run[] = [];
try {
  const bundle = join(work, 'persona-child.mjs');
  await bundleChild(bundle);
  for (let i = 0; i < 3; i++) bundled.push(await persona.noopBundled(bundle));
  if (!TSX) for (const p of personas) p.bundle = bundle;
} catch (e) {
  progress(`bundling the child failed, start-up without tsx not measured: ${(e as Error).message}`);
}

// DynamoDB Local is a JVM: its first requests of each kind run interpreted, and Persona's
// first snapshot would pay for that (about 1 CPU second and half a second of store creation
// in earlier runs) where a service in the cloud has nothing to warm. One snapshot and restore
// of a small tree into a store of its own, unmeasured, serve those first requests; restic and
// borg have no server.
progress('warming up the stand-ins');
{
  const small = join(work, 'warm-up-tree');
  mkdirSync(join(small, 'etc'), { recursive: true });
  for (let i = 0; i < 20; i++) writeFileSync(join(small, 'etc', `f${i}.conf`), `key=${i}\n`.repeat(200 * i));
  const warm = new Persona(
    'warm-up',
    setup,
    WARM_UP,
    { snapshots: `snapshots-${WARM_UP}`, locks: `locks-${WARM_UP}` },
    work,
  );
  warm.bundle = persona.bundle;
  await warm.ingest(small);
  await warm.ingest(small);
  await warm.restore(join(work, 'warm-up-restore'));
}

// ---------------------------------------------------------------- versions
interface Sample {
  readonly ingest: Ingest;
  readonly stored: number;
}
const results = new Map<string, Sample[]>(tools.map((t) => [t.name, []]));
const mutations: MutationSummary[] = [];
const logical: { files: number; bytes: number }[] = [];
for (let v = 1; v <= VERSIONS; v++) {
  if (v > 1) {
    progress(`mutating to version ${v}`);
    mutations.push(await mutate(tree, v, SEED, packages?.debs));
  }
  const active = tools.filter((t) => versionsOf(t) >= v);
  // A different order each version, so that none of them always runs right after the mutation
  // (or right after another tool has warmed or evicted something).
  const order = active.map((_, i) => active[(i + v - 1) % active.length] as Tool);
  for (const t of order) {
    progress(`version ${v}: ${t.name}`);
    const ingest = await t.ingest(tree, v);
    const stored = await t.storedBytes();
    results.get(t.name)?.push({ ingest, stored });
    if (t === persona && ingest.child?.snapshot)
      logical.push({ files: ingest.child.snapshot.files, bytes: ingest.child.snapshot.bytes });
  }
}
const loadAfterIngest = loadAverage();

// ---------------------------------------------------------------- restores
progress('digest of the last version');
const source = await digestTree(tree);
interface Restored {
  readonly run: Ingest;
  readonly digest: TreeDigest;
}
const restores = new Map<string, Restored>();
const restoreRoot = RESTORE_ON_DISK ? work : mkdtempSync('/dev/shm/persona-snapbench-restore-');
for (const t of [persona, restic, borg]) {
  const target = join(restoreRoot, `restore-${t.name}`);
  rmSync(target, { recursive: true, force: true });
  mkdirSync(target);
  progress(`restore: ${t.name}`);
  const run = await t.restore(target);
  const digest = await digestTree(target);
  restores.set(t.name, { run, digest });
  rmSync(target, { recursive: true, force: true });
}
if (restoreRoot !== work) rmSync(restoreRoot, { recursive: true, force: true });

const s3rverBytes = persona.serverBytes();
const personaKinds = await persona.breakdown();
const resticKinds = restic.breakdown();
const personaDu = await duBytes(join(dataDir, 's3', persona.bucket));
const resticDu = await duBytes(join(work, 'restic-repo'));
const borgDu = await duBytes(join(work, 'borg-repo'));
const caches = { restic: restic.cacheBytes(), borg: borg.cacheBytes(), persona: persona.cacheBytes() };
const dynamoCpuTotal = dynamoPid === undefined ? 0 : (cpuSecondsOf(dynamoPid) ?? 0);
await standIns.stop();
s3.destroy();
const loadAtEnd = loadAverage();
const runWallS = (performance.now() - wallAtStart) / 1000;
const machineCpuS = machineBusyS() - machineAtStart;
const benchCpuS = ownCpuS() - ownAtStart + dynamoCpuTotal;
const otherCpuS = Math.max(0, machineCpuS - benchCpuS);
const otherShare = otherCpuS / (runWallS * availableParallelism());
// The issue's bar for a comparable run: load below 0.5 at the start, and other processes
// using no more than a tenth of the machine while it runs.
const tooBusy = loadStart1 >= 0.5 || otherShare > 0.1;

// ---------------------------------------------------------------- report
const runOf = (name: string) => results.get(name) ?? [];
const wall = (s: Sample) => s.ingest.run.wallMs;
const cpu = (r: Run) => r.userS + r.sysS;
const cpuOf = (t: Tool, i: Ingest) =>
  cpu(i.run) + (t === persona ? (i.s3CpuS ?? 0) + (i.dynamoCpuS ?? 0) : 0);
const restic0 = runOf('restic').at(-1)?.stored ?? Number.NaN;

const codeAtEnd = fingerprint();
if (codeAtEnd !== codeAtStart) {
  say(
    `**core/snapshot changed during this run (fingerprint ${codeAtStart} → ${codeAtEnd}): later versions ` +
      'measured other code than earlier ones; run again on a quiet tree.**',
  );
  say();
}

say('## Corpus');
say();
say(`- ${corpus.note}.`);
say(
  packages
    ? `- Packages installed by versions 2–${VERSIONS}: ${packages.note}.`
    : '- Packages installed by later versions: synthetic (binaries copied from the tree and altered, plus docs).',
);
say(
  `- Version 1: ${logical[0]?.files ?? '?'} files, ${mib(logical[0]?.bytes ?? 0)} MiB of file content ` +
    `(${source.entries} entries in the last version: ${source.files} files, ${source.dirs} directories, ` +
    `${source.symlinks} symlinks, ${source.others} devices/fifos).`,
);
say(
  `- Each later version, in place (unchanged files keep inode and ctime, as on a host): packages ` +
    'unpacked with dpkg-deb/tar and recorded in /var/lib/dpkg (status, .list, .md5sums) and /var/log ' +
    '(dpkg.log, apt/history.log), their .debs kept in /var/cache/apt/archives until an `apt-get clean` at ' +
    'version 7; two ELF binaries or libraries "upgraded" (bytes inserted at 3 places, 30 bytes changed, ' +
    'written anew and renamed); 8 files under /etc edited; debconf appended; syslog and auth.log grown ' +
    '(rotated at 6, old log gzipped at 9); 20 files under /usr/share deleted; 12 files touched and 3 chmodded. ' +
    `Seeded (${SEED}).`,
);
say();
table(
  [
    'version',
    'files',
    'content MiB',
    'installed',
    'added files',
    'added MiB',
    'upgraded',
    'edited',
    'appended KiB',
    'deleted',
  ],
  logical.map((l, i) => {
    const m = i === 0 ? undefined : mutations[i - 1];
    return [
      String(i + 1),
      String(l.files),
      mib(l.bytes),
      m ? m.installed.join(' ') : '(debootstrap)',
      m ? String(m.addedFiles) : '',
      m ? mib(m.addedBytes) : '',
      m ? String(m.upgraded) : '',
      m ? String(m.edited) : '',
      m ? (m.appendedBytes / 1024).toFixed(0) : '',
      m ? String(m.deleted) : '',
    ];
  }),
  [0, 1, 2, 4, 5, 6, 7, 8, 9],
);

say('## Results');
say();
say(
  `Machine while the benchmark ran: other processes used ${otherCpuS.toFixed(0)} CPU s of the ` +
    `${(runWallS * availableParallelism()).toFixed(0)} the machine had in ${runWallS.toFixed(0)} s ` +
    `(${(otherShare * 100).toFixed(0)} %); load average at start ${loadAtStart}. ` +
    (tooBusy
      ? '**The machine was too busy for these figures to be compared (a comparable run starts at load below 0.5 and shares no more than 10 % of the CPUs): CPU seconds are the closer guide, wall times are not.**'
      : 'Quiet enough to compare.'),
);
say();
say(
  `Each tool into its own fresh repository on the same disk (${work}); the tree is read from the page ` +
    'cache by all of them (it fits in RAM), so the figures are CPU cost, not disk speed. Times are whole ' +
    'processes as a user runs them. ' +
    `Versions 2–${VERSIONS} are incremental. Peak RSS from GNU time. Before version 1, one unmeasured ` +
    'Persona snapshot and restore of a small tree, into a store of its own, warms DynamoDB Local (a JVM).',
);
say();
const incremental = (name: string) => runOf(name).slice(1).map(wall);
table(
  [
    'tool',
    `stored after ${VERSIONS} versions (MiB)`,
    'vs restic',
    'v1 ingest (s)',
    'v1 CPU (s)',
    `v2–${VERSIONS} ingest median (s)`,
    'CPU (s)',
    'mean (s)',
    'ingest peak RSS (MiB)',
    'restore (s)',
    'restore CPU (s)',
    'restore peak RSS (MiB)',
    'restore = source',
  ],
  [persona, restic, borg].map((t) => {
    const rs = runOf(t.name);
    const last = rs.at(-1)?.stored ?? Number.NaN;
    const r = restores.get(t.name);
    const ok = r
      ? r.digest.content === source.content && r.digest.metadata === source.metadata
        ? 'yes'
        : r.digest.content === source.content
          ? 'content yes, metadata NO'
          : 'NO'
      : '?';
    return [
      t.name,
      mib(last),
      `${((last / restic0) * 100).toFixed(0)} %`,
      sec(wall(rs[0] as Sample)),
      cpuOf(t, (rs[0] as Sample).ingest).toFixed(2),
      sec(median(incremental(t.name))),
      median(rs.slice(1).map((s) => cpuOf(t, s.ingest))).toFixed(2),
      sec(mean(incremental(t.name))),
      mib(Math.max(...rs.map((s) => s.ingest.run.maxRssBytes))),
      r ? sec(r.run.run.wallMs) : '?',
      r ? cpuOf(t, r.run).toFixed(2) : '?',
      r ? mib(r.run.run.maxRssBytes) : '?',
      ok,
    ];
  }),
  [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
);
say(
  'CPU (s) is user + system time of the process and its children; for Persona also what the S3 and ' +
    'DynamoDB stand-ins spent serving it (restic and borg write their repository themselves). ' +
    (persona.bundle
      ? 'Persona runs as one file bundled by esbuild, as the `persona` command ships (`--tsx` runs it through tsx).'
      : 'Persona runs through tsx (TypeScript compiled at every start).'),
);
say();

const differing = [persona, restic, borg].filter((t) => {
  const r = restores.get(t.name);
  return r && (r.digest.content !== source.content || r.digest.metadata !== source.metadata);
});
if (differing.length > 0) {
  say('Restores that differ from the source (first differences):');
  say();
  for (const t of differing) {
    const r = restores.get(t.name) as Restored;
    const lines = [
      ...firstDifferences(source.contentLines, r.digest.contentLines),
      ...firstDifferences(source.metadataLines, r.digest.metadataLines),
    ];
    say(
      `- ${t.name}: ${r.digest.entries} entries (source ${source.entries}), ${r.digest.files} files (source ${source.files})`,
    );
    for (const l of lines) say(`  - \`${l.replaceAll('\t', ' ')}\``);
  }
  say();
}
say(
  RESTORE_ON_DISK
    ? 'Restores were written to the work folder on disk (--restore-on-disk).'
    : "Restores were written to memory (/dev/shm), each tool after the last one's tree was deleted: on disk, " +
        'ext4 charges a new inode for the deletions just before it (--restore-on-disk restores there).',
);
say(
  'Restore check: every entry of the last version (path, type, size, SHA-256 of content, link target, ' +
    'device number; mode, owner, mtime to the second, hard-link-ness) compared with the restored tree.',
);
say();

say('### Per version');
say();
say('Ingest wall time (s) and repository size after the version (MiB).');
say();
table(
  ['version', ...[persona, restic, borg].flatMap((t) => [`${t.name} s`, `${t.name} MiB`])],
  Array.from({ length: VERSIONS }, (_, i) => [
    String(i + 1),
    ...[persona, restic, borg].flatMap((t) => {
      const s = runOf(t.name)[i];
      return s ? [sec(wall(s)), mib(s.stored)] : ['', ''];
    }),
  ]),
  Array.from({ length: 7 }, (_, i) => i),
);

say('### CPU time and what each run said');
say();
table(
  ['tool', 'v1 CPU s (user+sys)', `v2–${VERSIONS} median CPU s`, 'v1 wall / CPU', 'last version says'],
  [persona, restic, borg].map((t) => {
    const rs = runOf(t.name);
    const first = rs[0] as Sample;
    return [
      t.name,
      cpu(first.ingest.run).toFixed(2),
      median(rs.slice(1).map((s) => cpu(s.ingest.run))).toFixed(2),
      (first.ingest.run.wallMs / 1000 / cpu(first.ingest.run)).toFixed(2),
      rs.at(-1)?.ingest.said ?? '',
    ];
  }),
  [1, 2, 3],
);

const pRuns = runOf(persona.name);
const startup = median(noops.map((n) => n.run.wallMs));
say("### Where Persona's time goes");
say();
say(
  `Start-up of \`node --import tsx\` with the store's modules loaded, doing nothing: ${sec(startup)} s wall, ` +
    `${mib(median(noops.map((n) => n.run.maxRssBytes)))} MiB RSS (median of ${noops.length})` +
    (bundled.length > 0
      ? `; the same child bundled into one file by esbuild: ${sec(median(bundled.map((b) => b.wallMs)))} s, ${mib(median(bundled.map((b) => b.maxRssBytes)))} MiB. `
      : '. ') +
    "The S3 stand-in (s3rver) runs in the benchmark's own process: its CPU time is that process's while the " +
    'child runs. restic and borg write to a local directory; Persona goes through HTTP and the S3 protocol to ' +
    'a local server (MD5 of every object, its own metadata files), and DynamoDB Local for records and locks.',
);
say();
table(
  [
    'version',
    'wall s',
    'modules s',
    'open store s',
    'snapshot s',
    'child CPU s',
    's3rver CPU s',
    'DynamoDB CPU s',
    'peak RSS MiB',
    'new chunks',
    'chunks',
  ],
  pRuns.map((s, i) => {
    const c = s.ingest.child;
    return [
      String(i + 1),
      sec(wall(s)),
      c ? sec(c.importMs) : '',
      c ? sec(c.openMs) : '',
      c ? sec(c.workMs) : '',
      cpu(s.ingest.run).toFixed(2),
      (s.ingest.s3CpuS ?? 0).toFixed(2),
      s.ingest.dynamoCpuS === undefined ? '?' : s.ingest.dynamoCpuS.toFixed(2),
      mib(s.ingest.run.maxRssBytes),
      String(c?.snapshot?.newChunks ?? ''),
      String(c?.snapshot?.chunks ?? ''),
    ];
  }),
  [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
);
const pr = restores.get(persona.name)?.run;
if (pr?.child)
  say(
    `Restore: ${sec(pr.run.wallMs)} s wall = ${sec(pr.child.importMs)} s modules + ${sec(pr.child.openMs)} s open + ` +
      `${sec(pr.child.workMs)} s restore; child CPU ${cpu(pr.run).toFixed(2)} s, s3rver CPU ${(pr.s3CpuS ?? 0).toFixed(2)} s.`,
  );
say();
say(
  `On disk: Persona's objects under \`snapshots/\` sum to ${mib(pRuns.at(-1)?.stored ?? 0)} MiB (the figure above, what S3 ` +
    `would bill); s3rver's folder for the bucket holds ${mib(s3rverBytes)} MiB of files with its metadata ` +
    `(du -sb ${mib(personaDu)} MiB). du -sb of the restic repository: ${mib(resticDu)} MiB, of the borg ` +
    `repository: ${mib(borgDu)} MiB. Local caches beside the repositories (not counted): restic ${mib(caches.restic)} MiB, ` +
    `borg ${mib(caches.borg)} MiB, Persona ${mib(caches.persona)} MiB (listing chunks). Records and locks in DynamoDB are a few KB.`,
);
say();
table(
  ['Persona objects', 'count', 'MiB'],
  Object.entries(personaKinds).map(([k, v]) => [k, String(v.objects), (v.bytes / MiB).toFixed(2)]),
  [1, 2],
);
say(
  `restic repository by folder: ${Object.entries(resticKinds)
    .map(([k, v]) => `${k} ${(v / MiB).toFixed(2)} MiB`)
    .join(', ')}.`,
);
say();

if (personas.length > 1) {
  say(`### Chunk sizes (Persona, versions 1–${ALT_VERSIONS})`);
  say();
  say('The same store with other chunker parameters, each in its own bucket, on the same versions.');
  say();
  table(
    [
      'chunker min/avg/max',
      `stored after v${ALT_VERSIONS} (MiB)`,
      'v1 ingest (s)',
      `v2–${ALT_VERSIONS} median (s)`,
      'v1 chunks',
      'v1 mean chunk KiB',
      `v2–${ALT_VERSIONS} new MiB (raw)`,
      'peak RSS MiB',
    ],
    personas.map((p, k) => {
      const rs = runOf(p.name).slice(0, ALT_VERSIONS);
      const c = (configs[k] as PersonaConfig).chunker;
      const first = rs[0]?.ingest.child?.snapshot;
      const fmt = (n: number) => (n >= MiB ? `${n / MiB}M` : `${n / KiB}K`);
      return [
        `${fmt(c.min)}/${fmt(c.avg)}/${fmt(c.max)}${k === 0 ? ' (default)' : ''}`,
        mib(rs.at(-1)?.stored ?? 0),
        sec(wall(rs[0] as Sample)),
        sec(median(rs.slice(1).map(wall))),
        String(first?.chunks ?? ''),
        first ? (first.bytes / first.chunks / KiB).toFixed(0) : '',
        mib(rs.slice(1).reduce((n, s) => n + (s.ingest.child?.snapshot?.newBytes ?? 0), 0)),
        mib(Math.max(...rs.map((s) => s.ingest.run.maxRssBytes))),
      ];
    }),
    [1, 2, 3, 4, 5, 6, 7],
  );
}

say('## Machine limits');
say();
say(
  `One core, on the corpus's own data (${sampleFiles} files, ${mib(sampleBytes)} MiB, laid end to end ` +
    'and repeated to 256 MiB where a step needs a single buffer). Best of 2–3 runs.',
);
say();
table(
  ['step', 'MiB', 'ms', 'MiB/s', 'how'],
  limits.map((l) => [
    l.step,
    mib(l.bytes),
    l.ms.toFixed(0),
    (l.bytes / MiB / (l.ms / 1000)).toFixed(0),
    l.note,
  ]),
  [1, 2, 3],
);
// Every byte Persona stores is chunked, HMACed, compressed and sealed, and its compressed form
// hashed once (the pack's running SHA-256 gives both the data part's digest and the pack id); a
// byte that dedups is chunked and HMACed only. The work can be spread over both cores (zstd on
// the thread pool beside chunking and hashing), so half the one-core time is the floor.
const rate = (step: string) => {
  const l = limits.find((x) => x.step === step);
  return l ? l.bytes / MiB / (l.ms / 1000) : Number.NaN;
};
const dedupOnly = 1 / (1 / rate('FastCDC, one Chunker per file') + 1 / rate('HMAC-SHA256, 1 MiB pieces'));
const storeAll =
  1 /
  (1 / rate('FastCDC, one Chunker per file') +
    1 / rate('HMAC-SHA256, 1 MiB pieces') +
    1 / rate('zstd level 3, one call per file') +
    1 / rate('AES-256-GCM, 1 MiB pieces') +
    1 / rate('SHA-256'));
const v1Ceiling = (logical[0]?.bytes ?? 0) / MiB / storeAll;
const v1Persona = (runOf(persona.name)[0]?.ingest.run.wallMs ?? Number.NaN) / 1000;
say(
  `Single-thread ceiling implied for Persona: ${storeAll.toFixed(0)} MiB/s for new data (chunk, HMAC, zstd, ` +
    `AES-GCM, SHA-256), ${dedupOnly.toFixed(0)} MiB/s for data already stored (chunk and HMAC only). ` +
    `Version 1 (${mib(logical[0]?.bytes ?? 0)} MiB) at that rate: ${v1Ceiling.toFixed(2)} s on one core, ` +
    `${(v1Ceiling / availableParallelism()).toFixed(2)} s on ${availableParallelism()} (Persona's version 1: ` +
    `${v1Persona.toFixed(2)} s, ${(v1Persona / (v1Ceiling / availableParallelism())).toFixed(2)}× that); ` +
    `a later version, which Persona reads in full: ${((logical.at(-1)?.bytes ?? 0) / MiB / dedupOnly).toFixed(2)} s. ` +
    'zstd per file is measured with a fresh context per call; the store keeps its contexts, which is faster on small files.',
);
say();
say(
  `Load average at start ${loadAtStart}, after the ingests ${loadAfterIngest}, at the end ${loadAtEnd}. ` +
    `Total run time ${((performance.now() - started) / 1000).toFixed(0)} s.`,
);

mkdirSync(new URL('../../reports/', import.meta.url), { recursive: true });
writeFileSync(new URL('../../reports/snapshot-bench.md', import.meta.url), `${out.join('\n')}\n`);
if (KEEP) progress(`kept ${work}`);
else rmSync(work, { recursive: true, force: true });
progress('done');
// The S3 client's sockets and the stand-ins' timers should not keep the process alive.
process.exit(0);
