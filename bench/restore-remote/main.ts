// The remote restore benchmark: a snapshot restored onto a real test host as a clone does it
// (restoreToHost: one pax tar stream over the SSH Transport into the host's tar, then every
// entry and every byte checked there), against `tar -c | ssh host tar -x` of the same tree to
// the same host, in the same run, rounds interleaved. Prints markdown (and keeps a copy in
// reports/restore-remote-bench.md, which git ignores).
//
//   node --import tsx bench/restore-remote/main.ts [--runs=5] [--tree=usr,etc] [--restore-on-disk]
//
// The tree is a Debian root filesystem's folders as the test hosts have them (the harness's
// cached one; `--tree` names which of its folders). Needs root (test hosts are network
// namespaces with a real sshd) and OpenSSH's client.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { restoreToHost } from '../../core/snapshot/remote.js';
import { directorySource } from '../../core/snapshot/tree.js';
import { shellQuote } from '../../core/transport/shell.js';
import type { RunOptions, StreamOptions, Transport } from '../../core/transport/transport.js';
import { createHost, destroyAllHosts, type TestHost } from '../../test/hosts/harness.js';
import { ensureRootfs } from '../../test/hosts/rootfs.js';
import { sshTransportTo } from '../../test/hosts/transport.js';
import { startTestStore, type TestStore } from '../../test/support/snapshot-store.js';
import { cleanupProcessScratch, hostCpuSeconds, runProcess } from '../capture/process.js';
import { createReport } from '../report.js';

const arg = (name: string, fallback: string) =>
  process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const RUNS = Number(arg('runs', '5'));
if (!Number.isInteger(RUNS) || RUNS < 1) throw new Error('--runs expects a positive integer');
const TREE = arg('tree', 'usr,etc')
  .split(',')
  .filter((t) => t !== '');
for (const t of TREE) if (!/^[a-z0-9_-]+$/.test(t)) throw new Error(`--tree: ${t} is not a folder name`);
// The issue's goal: Persona's restore at most this many times tar | ssh's.
const GOAL = 1.2;
// Both restore into a tmpfs mounted afresh at the host's /restore for each run, unless
// --restore-on-disk: on this machine's ext4, making inodes after the last round's deletions
// scanned past the freed ones, so each round took longer than the one before, for both tools,
// and the figures measured the filesystem's history more than either tool (as in the snapshot
// bench, whose restores go to /dev/shm).
const ON_DISK = process.argv.includes('--restore-on-disk');

const { lines: out, say, progress, table } = createReport();
const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length === 0
    ? Number.NaN
    : s.length % 2
      ? (s[m] as number)
      : ((s[m - 1] as number) + (s[m] as number)) / 2;
};
const sec = (ms: number) => (ms / 1000).toFixed(2);
const loadAverage = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' / ');
const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The phase each command of a restore belongs to, from what it runs (clear also asks for b2sum). */
const phaseOf = (command: string) =>
  command.includes('tar -x')
    ? 'stream'
    : command.includes('mkdir -p')
      ? 'clear'
      : command.includes('-files0-from')
        ? 'list'
        : command.includes('sha256sum') || command.includes('b2sum')
          ? 'hash'
          : 'other';

/** Times each command of a restore, from its start until it ended (a stream: until its `done`). */
function timed(inner: Transport, phases: Record<string, number>): Transport {
  const add = (phase: string, ms: number) => {
    phases[phase] = (phases[phase] ?? 0) + ms;
  };
  return {
    target: inner.target,
    run: async (command: string, options?: RunOptions) => {
      const t0 = performance.now();
      const result = await inner.run(command, options);
      add(phaseOf(command), performance.now() - t0);
      return result;
    },
    stream: async (command: string, options?: StreamOptions) => {
      const t0 = performance.now();
      const handle = await inner.stream(command, options);
      const done = handle.done.then((r) => {
        add(phaseOf(command), performance.now() - t0);
        return r;
      });
      return { ...handle, done };
    },
    putFile: (path, content, options) => inner.putFile(path, content, options),
    getFile: (path) => inner.getFile(path),
    close: () => inner.close(),
  };
}

if (process.getuid?.() !== 0) {
  process.stderr.write(
    'the remote restore benchmark needs root: its test host is a network namespace with sshd\n',
  );
  process.exit(2);
}

const cpuModel = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? '?';
const loadAtStart = loadAverage();
say('# Remote restore benchmark: Persona restoreToHost against tar | ssh');
say();
say(
  `Machine: ${availableParallelism()} CPUs (${cpuModel}), ${(totalmem() / 1024 ** 3).toFixed(1)} GiB RAM, ` +
    `Node ${process.version}. Load average at start: ${loadAtStart}.`,
);
say();

const work = mkdtempSync(join(tmpdir(), 'persona-rrbench-'));
let ts: TestStore | undefined;
let host: TestHost | undefined;
try {
  progress('preparing the tree');
  const rootfs = await ensureRootfs();
  const tree = join(work, 'tree');
  mkdirSync(tree);
  execFileSync('cp', ['-a', '--', ...TREE.map((t) => join(rootfs, t)), tree]);
  const files = Number(
    execFileSync('sh', ['-c', `find ${shellQuote(tree)} -type f | wc -l`], { encoding: 'utf8' }),
  );
  const entries = Number(
    execFileSync('sh', ['-c', `find ${shellQuote(tree)} | wc -l`], { encoding: 'utf8' }),
  );
  const bytes = Number(execFileSync('du', ['-s', '-b', '--', tree], { encoding: 'utf8' }).split('\t')[0]);

  progress('starting the store and ingesting the tree');
  ts = await startTestStore();
  const store = await ts.open();
  const record = await store.create(directorySource(tree), { host: 'bench-source' });

  progress('creating the test host');
  host = await createHost({ name: 'rrbench' });
  const h = host;
  say('## The tree and the host');
  say();
  say(
    `The folders ${TREE.map((t) => `/${t}`).join(', ')} of the test hosts' Debian bookworm root filesystem: ` +
      `${entries} entries, ${files} regular files, ${(bytes / 1024 ** 2).toFixed(1)} MiB. Persona restores ` +
      `it from its snapshot (version ${record.version}) in the store on the local stand-ins (S3 protocol ` +
      "server, DynamoDB Local); tar reads the same tree from this machine's disk. Both go to a test host " +
      `(${h.address}, network namespace, sshd) over a new SSH connection each run, as root, into ${ON_DISK ? "a fresh folder on the host's disk" : 'a fresh tmpfs (memory) at /restore; `--restore-on-disk` restores to the disk'}.`,
  );
  say();

  const knownHosts = join(work, 'known_hosts');
  writeFileSync(knownHosts, h.knownHosts);
  const sshArgs = [
    '-q',
    '-o',
    'BatchMode=yes',
    '-o',
    `UserKnownHostsFile=${knownHosts}`,
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    'ControlMaster=no',
    '-i',
    h.privateKeyPath,
    `${h.user}@${h.address}`,
  ];
  const clear = async () => {
    if (ON_DISK) {
      await h.run('rm -rf /restore && mkdir -p /restore');
      return;
    }
    // Mounted from the host's own mount namespace, at its root's /restore, as the host sees it.
    const at = shellQuote(join(h.root, 'restore'));
    execFileSync('nsenter', [
      `--target=${h.pid}`,
      '--mount',
      '--',
      'sh',
      '-c',
      `umount ${at} 2>/dev/null; mkdir -p ${at} && mount -t tmpfs -o mode=0755 tmpfs ${at}`,
    ]);
  };

  interface Sample {
    readonly wallMs: number;
    readonly cpuS: number;
    readonly hostCpuS: number;
    readonly phases?: Readonly<Record<string, number>>;
  }
  const samples: Record<'persona' | 'tar', Sample[]> = { persona: [], tar: [] };
  const onHost = async (fn: () => Promise<number>) => {
    const before = hostCpuSeconds(h.pid);
    const cpuS = await fn();
    await delay(150);
    return { cpuS, hostCpuS: hostCpuSeconds(h.pid) - before };
  };

  const runs = {
    persona: async (): Promise<Sample> => {
      let wallMs = 0;
      const phases: Record<string, number> = {};
      const { cpuS, hostCpuS } = await onHost(async () => {
        const cpu0 = process.cpuUsage();
        const t0 = performance.now();
        const ssh = sshTransportTo(h);
        try {
          // The SSH handshake, apart: restoreToHost's first command would carry it otherwise.
          await ssh.run('true');
          phases.connect = performance.now() - t0;
          const stats = await restoreToHost(store, record, timed(ssh, phases), {
            target: '/restore/persona',
          });
          if (stats.failed.length > 0)
            throw new Error(`restore failed: ${JSON.stringify(stats.failed.slice(0, 3))}`);
        } finally {
          await ssh.close();
        }
        wallMs = performance.now() - t0;
        const cpu = process.cpuUsage(cpu0);
        return (cpu.user + cpu.system) / 1e6;
      });
      return { wallMs, cpuS, hostCpuS, phases };
    },
    tar: async (): Promise<Sample> => {
      let wallMs = 0;
      const { cpuS, hostCpuS } = await onHost(async () => {
        const remote =
          'mkdir -p /restore/tar && tar -x -f - -C /restore/tar --numeric-owner --same-owner --same-permissions';
        const pipeline = `tar -c -f - -C ${shellQuote(tree)} . | ssh ${sshArgs.map((a) => shellQuote(a)).join(' ')} ${shellQuote(remote)}`;
        const run = await runProcess('sh', ['-c', pipeline]);
        if (run.status !== 0) throw new Error(`tar | ssh exited ${run.status}: ${run.stderr}`);
        wallMs = run.wallMs;
        return run.cpuS ?? Number.NaN;
      });
      return { wallMs, cpuS, hostCpuS };
    },
  };

  // Round 0 warms the page cache, the store's caches and the JIT; rounds alternate which goes first.
  for (let round = 0; round <= RUNS; round++) {
    progress(`round ${round}${round === 0 ? ' (warm-up)' : ''}`);
    const order = round % 2 === 0 ? (['persona', 'tar'] as const) : (['tar', 'persona'] as const);
    for (const name of order) {
      await clear();
      const sample = await runs[name]();
      if (round > 0) samples[name].push(sample);
    }
  }
  const loadAfter = loadAverage();

  const wall = (n: 'persona' | 'tar') => median(samples[n].map((s) => s.wallMs));
  const cpu = (n: 'persona' | 'tar') => median(samples[n].map((s) => s.cpuS));
  const hostCpu = (n: 'persona' | 'tar') => median(samples[n].map((s) => s.hostCpuS));
  const range = (n: 'persona' | 'tar') => {
    const xs = samples[n].map((s) => s.wallMs);
    return `${sec(Math.min(...xs))}–${sec(Math.max(...xs))}`;
  };
  const ratio = wall('persona') / wall('tar');
  say('## Time to restore the tree onto the host');
  say();
  say(
    `Median wall time over ${RUNS} measured runs after one warm-up round. "Control CPU" is user+system time ` +
      'on this machine (`process.cpuUsage` for Persona, in process; GNU time for the tar | ssh pipeline); ' +
      '"host CPU" is what the test host spent meanwhile (sshd and everything under it, from /proc).',
  );
  say();
  table(
    ['what', 'how', 'median s', 'range s', 'control CPU s', 'host CPU s'],
    [
      [
        'Persona `restoreToHost`',
        "connect, manifest, clear the directory paths, one pax stream from the store into `tar -x`, then every entry and every file's digest (BLAKE2b-512, SHA-256 without b2sum) checked on the host",
        `**${sec(wall('persona'))}**`,
        range('persona'),
        cpu('persona').toFixed(2),
        hostCpu('persona').toFixed(2),
      ],
      [
        '`tar -c | ssh host tar -x`',
        "GNU tar and OpenSSH, the tree from this machine's disk, nothing checked",
        `**${sec(wall('tar'))}**`,
        range('tar'),
        cpu('tar').toFixed(2),
        hostCpu('tar').toFixed(2),
      ],
    ],
    [2, 3, 4, 5],
  );
  const phase = (name: string) => median(samples.persona.map((s) => s.phases?.[name] ?? 0));
  say(
    "Where Persona's time goes (medians, ms): " +
      [
        ['connect', 'SSH handshake'],
        ['clear', 'target made, non-directories at directory paths removed'],
        ['stream', 'the pax stream from the store into tar -x, until tar exits'],
        ['list', 'type, owner, mode, link target of every entry on the host (find)'],
        ['hash', 'digest of every file on the host (b2sum, or sha256sum)'],
      ]
        .map(([k, what]) => `${k} ${phase(k as string).toFixed(0)} (${what})`)
        .join('; ') +
      '.',
  );
  say();
  const one = Number(loadAtStart.split(' / ')[0]);
  say(
    `Persona / tar | ssh: **×${ratio.toFixed(2)}** (goal: at most ×${GOAL}, ${ratio <= GOAL ? 'met' : 'not met'}). ` +
      (one < 0.5
        ? `The machine was quiet (load ${one.toFixed(2)} at start).`
        : `**The machine was busy (load ${one.toFixed(2)} at start, quiet is under 0.5): the figures are not comparable with a quiet run's; CPU seconds say more than wall time.**`),
  );
  say();
  say(`Load average at start ${loadAtStart}, after the runs ${loadAfter}.`);
} finally {
  progress('tearing down');
  await destroyAllHosts();
  await ts?.stop();
  cleanupProcessScratch();
  rmSync(work, { recursive: true, force: true });
}

mkdirSync(new URL('../../reports/', import.meta.url), { recursive: true });
writeFileSync(new URL('../../reports/restore-remote-bench.md', import.meta.url), `${out.join('\n')}\n`);
progress('done: reports/restore-remote-bench.md');
process.exit(0);
