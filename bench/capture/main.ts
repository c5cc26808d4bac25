// The capture benchmark: a full Persona capture of a real test host against Ansible's fact
// gathering (setup + package_facts + service_facts) on the same host in the same run, timed as
// each is used, and what each gathers. Prints markdown (and keeps a copy in
// reports/capture-bench.md, which git ignores). Persona as a process runs bundled into one file
// by esbuild (as a shipped command runs, without compiling TypeScript at start-up) and, for
// comparison, through tsx, as cli/bin.js runs when its build (cli/dist) is missing.
//
//   node --import tsx bench/capture/main.ts [--runs=7] [--ansible-runs=7] [--cold-runs=3]
//                                           [--child-runs=5] [--budget=240]
//
// Needs root (test hosts are network namespaces with a real sshd) and Debian's Ansible:
//   apt-get install -y ansible-core
// `--budget` (seconds) stops starting new rounds once every task has three measured runs.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { buildProfile, captureHost, type HostCapture } from '../../core/capture/collect.js';
import { CAPTURE_SCRIPT, captureEnv } from '../../core/capture/script.js';
import { type CaptureSections, parseSections } from '../../core/capture/sections.js';
import { validateProfile } from '../../core/profile/io.js';
import type { ProfileInput } from '../../core/profile/schema.js';
import { MemoryHostKeyStore } from '../../core/transport/host-keys.js';
import { SshTransport } from '../../core/transport/ssh.js';
import type { RunOptions, RunResult, StreamHandle, StreamOptions } from '../../core/transport/transport.js';
import { createHost, destroyAllHosts, type TestHost } from '../../test/hosts/harness.js';
import {
  addNftRule,
  addRoute,
  addUser,
  installNginxSite,
  setSysctl,
  writeEnvironmentFile,
} from '../../test/hosts/software.js';
import { createReport } from '../report.js';
import { Ansible, FACT_MODULES, type FactModule, factsOf, sshInvocations } from './ansible.js';
import type { ChildJob, ChildResult } from './child.js';
import { type AnsibleFacts, areaRows, leafBreakdown, leafCount } from './fields.js';
import { cleanupProcessScratch, hostCpuSeconds, type ProcessRun, runProcess } from './process.js';

const arg = (name: string, fallback: number) => {
  const hit = process.argv.find((a) => a.startsWith(`--${name}=`));
  const value = hit ? Number(hit.slice(name.length + 3)) : fallback;
  if (!Number.isFinite(value) || value < 1) throw new Error(`--${name} expects a positive number`);
  return value;
};
const RUNS = arg('runs', 7);
const ANSIBLE_RUNS = arg('ansible-runs', 7);
const COLD_RUNS = arg('cold-runs', 3);
const CHILD_RUNS = arg('child-runs', 5);
const BUDGET_S = arg('budget', 240);
// Fewer measured runs than this and a median says little; the budget never cuts below it.
const MIN_RUNS = 3;

const REPO = fileURLToPath(new URL('../../', import.meta.url));
// Inside the checkout, so that the bundle's one external dependency (ssh2, whose native crypto
// esbuild cannot inline) resolves from node_modules as it would next to a shipped command.
const BUNDLE_DIR = join(REPO, 'node_modules/.cache/persona-bench');
const CHILD_BUNDLE = join(BUNDLE_DIR, 'capture-child.mjs');
const { started, lines: out, say, progress, table } = createReport();
const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length === 0
    ? Number.NaN
    : s.length % 2
      ? (s[m] as number)
      : ((s[m - 1] as number) + (s[m] as number)) / 2;
};
const sec = (ms: number) => (Number.isFinite(ms) ? (ms / 1000).toFixed(2) : '?');
const msText = (ms: number) => (Number.isFinite(ms) ? ms.toFixed(ms >= 100 ? 0 : 1) : '?');
const cpuText = (s: number | undefined) => (s === undefined || !Number.isFinite(s) ? '?' : s.toFixed(2));
const loadAverage = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' / ');
const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
// Quiet means a one-minute load average under half a core: above it, other work shares the cores
// with both tools and the figures are not comparable with a quiet run's.
const busyVerdict = (load: string) => {
  const one = Number(load.split(' / ')[0]);
  return one < 0.5
    ? `The machine was quiet (load ${one.toFixed(2)} at start): these figures compare with other quiet runs.`
    : `**The machine was busy (load ${one.toFixed(2)} at start, quiet is under 0.5): these figures are not comparable with a quiet run's; CPU seconds say more than wall time.**`;
};

/** Counts the commands a capture sends, so the report states its round trips rather than assuming them. */
class CountingSshTransport extends SshTransport {
  commands = 0;
  override run(command: string, options?: RunOptions): Promise<RunResult> {
    this.commands++;
    return super.run(command, options);
  }
  override stream(command: string, options?: StreamOptions): Promise<StreamHandle> {
    this.commands++;
    return super.stream(command, options);
  }
}

// ---------------------------------------------------------------- prerequisites
if (process.getuid?.() !== 0) {
  process.stderr.write('the capture benchmark needs root: its test host is a network namespace with sshd\n');
  process.exit(2);
}
const ansibleVersion = Ansible.version();
if (!ansibleVersion) {
  process.stderr.write('ansible is missing: apt-get install -y ansible-core (as root)\n');
  process.exit(2);
}

// ---------------------------------------------------------------- machine
const cpuModel = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? '?';
const loadAtStart = loadAverage();
say('# Capture benchmark: Persona against Ansible fact gathering');
say();
say(
  `Machine: ${availableParallelism()} CPUs (${cpuModel}), ${(totalmem() / 1024 ** 3).toFixed(1)} GiB RAM, ` +
    `Node ${process.version}, ${ansibleVersion}. Load average at start: ${loadAtStart}.`,
);
say();

// ---------------------------------------------------------------- the host
const SECRET = 'bench-token-5b1f0c';
const APPLICATION = { name: 'web', processes: ['nginx'], paths: ['/var/www/persona'] } as const;

progress('bundling the capture child');
// As scripts/build-cli.ts builds the command: a small entry (child-start.ts, which turns the
// compile cache on as cli/bin.js does) and the capture in chunks it loads afterwards.
rmSync(join(BUNDLE_DIR, 'chunks'), { recursive: true, force: true });
mkdirSync(BUNDLE_DIR, { recursive: true });
await build({
  entryPoints: { 'capture-child': join(REPO, 'bench/capture/child-start.ts') },
  bundle: true,
  splitting: true,
  platform: 'node',
  format: 'esm',
  target: 'node22',
  outdir: BUNDLE_DIR,
  outExtension: { '.js': '.mjs' },
  chunkNames: 'chunks/[name]-[hash]',
  external: ['ssh2'],
  logLevel: 'error',
  // CommonJS dependencies inside an ES module bundle still call require().
  banner: {
    js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
  },
});

progress('creating the test host');
let host: TestHost | undefined;
let ansible: Ansible | undefined;
const work = mkdtempSync(join(tmpdir(), 'persona-capbench-'));
// The children keep their compile cache (cli/compile-cache.js) in this run's own directory: empty
// at the start, filled by the warm-up round, as a user's first `persona capture` fills theirs.
const { NODE_COMPILE_CACHE: _userCache, ...inherited } = process.env;
const childEnv: NodeJS.ProcessEnv = { ...inherited, XDG_CACHE_HOME: join(work, 'cache') };
try {
  const tHost = performance.now();
  // python3 for Ansible's modules, python3-apt for package_facts on Debian (it refuses to run
  // without it); both baked into a cached root filesystem.
  host = await createHost({ name: 'capbench', packages: ['python3', 'python3-apt'] });
  const h = host;
  const hostMs = performance.now() - tHost;
  progress('installing software on it');
  const tSoftware = performance.now();
  await installNginxSite(h, { page: '<h1>capture benchmark</h1>\n' });
  await addUser(h, 'deploy', { groups: ['www-data'], authorizedKey: h.publicKey });
  await h.writeFile(
    '/etc/sudoers.d/deploy',
    'deploy ALL=(root) NOPASSWD: /usr/sbin/nginx -s reload\n',
    0o440,
  );
  await writeEnvironmentFile(h, '/etc/environment', { APP_MODE: 'production', API_TOKEN: SECRET }, 0o644);
  await writeEnvironmentFile(h, '/etc/default/web', { WORKERS: '4', LISTEN: '0.0.0.0:80' });
  await setSysctl(h, 'net.core.somaxconn', 1024);
  await addNftRule(h, { rule: 'tcp dport 8080 drop' });
  await addRoute(h, '10.99.0.0/24');
  const softwareMs = performance.now() - tSoftware;

  say('## The host');
  say();
  say(
    `A test host of the harness (test/hosts): network namespace, Debian bookworm minbase root filesystem with ` +
      `python3 and python3-apt baked in (Ansible needs them), sshd as its first process, no systemd. ` +
      `Set up in this run: nginx-light serving a site, a user \`deploy\` with an authorised key and a ` +
      `sudoers rule, /etc/environment with an API token, /etc/default/web, sysctl net.core.somaxconn, ` +
      `an nftables rule, a route. Host created in ${sec(hostMs)} s, software in ${sec(softwareMs)} s. ` +
      `Both tools reach it at ${h.address} over SSH as root with the same key, host key pinned.`,
  );
  say();

  // ---------------------------------------------------------------- tools
  const pinned = async () => {
    const store = new MemoryHostKeyStore();
    await store.record(h.address, h.port, h.hostKeyFingerprint);
    return store;
  };
  const transport = async () =>
    new CountingSshTransport({
      host: h.address,
      port: h.port,
      username: h.user,
      privateKey: h.privateKey,
      hostKeys: await pinned(),
    });
  const captureOptions = () => ({
    name: 'capbench',
    capturedAt: new Date().toISOString(),
    application: { name: APPLICATION.name, processes: APPLICATION.processes, paths: APPLICATION.paths },
  });
  ansible = new Ansible(
    {
      address: h.address,
      user: h.user,
      privateKeyPath: h.privateKeyPath,
      knownHosts: h.knownHosts,
    },
    join(work, 'ansible'),
  );
  const a = ansible;

  /** Runs `fn` and says what the host spent meanwhile (read once its sessions are reaped). */
  const onHost = async <T>(fn: () => Promise<T>): Promise<{ result: T; hostCpuS: number }> => {
    const before = hostCpuSeconds(h.pid);
    const result = await fn();
    await delay(150);
    return { result, hostCpuS: hostCpuSeconds(h.pid) - before };
  };

  // ---------------------------------------------------------------- tasks
  interface Sample {
    readonly wallMs: number;
    readonly cpuS?: number;
    readonly hostCpuS?: number;
    readonly parts?: Readonly<Record<string, number>>;
  }
  interface Task {
    readonly name: string;
    readonly runs: number;
    /** Whether round 0 (the warm-up) runs it; a first-contact run needs no warming. */
    readonly warmup: boolean;
    readonly run: (warmup: boolean) => Promise<Sample>;
  }
  const samples = new Map<string, Sample[]>();

  let lastCapture: HostCapture | undefined;
  let lastRawBytes = 0;
  let lastSections: CaptureSections | undefined;
  const ansibleOutputs: Partial<Record<FactModule, string>> = {};
  const invocations: Record<string, number> = {};
  const masterReused: Record<string, [number, number]> = {};
  let childImportMs: number[] = [];

  const checked = (what: string, run: ProcessRun): ProcessRun => {
    if (run.status !== 0)
      throw new Error(
        `${what} exited ${run.status}:\n${run.stdout.slice(-2000)}\n${run.stderr.slice(-2000)}`,
      );
    return run;
  };
  const noteMaster = (task: string, warmup: boolean) => {
    if (warmup) return;
    const [reused, runs] = masterReused[task] ?? [0, 0];
    masterReused[task] = [reused + (a.masterAlive() ? 1 : 0), runs + 1];
  };

  /** What every capture child is asked: the test host and the application to look for. */
  const job: ChildJob = {
    address: h.address,
    port: h.port,
    user: h.user,
    privateKeyPath: h.privateKeyPath,
    hostKeyFingerprint: h.hostKeyFingerprint,
    name: 'capbench',
    processes: APPLICATION.processes,
    paths: APPLICATION.paths,
  };

  /** One run of the bundled capture child (child-start.ts) against the host. */
  const runChild = async (what: string, env: NodeJS.ProcessEnv) => {
    const { result: run, hostCpuS } = await onHost(async () =>
      checked(
        what,
        await runProcess(process.execPath, [CHILD_BUNDLE, JSON.stringify(job)], { cwd: REPO, env }),
      ),
    );
    const result = JSON.parse(run.stdout.trim().split('\n').at(-1) ?? '{}') as ChildResult;
    return {
      wallMs: run.wallMs,
      ...(run.cpuS === undefined ? {} : { cpuS: run.cpuS }),
      hostCpuS,
      parts: { import: result.importMs, capture: result.captureMs, validate: result.validateMs },
    };
  };

  const tasks: Task[] = [
    {
      name: 'persona',
      runs: RUNS,
      warmup: true,
      run: async () => {
        let wallMs = 0;
        let cpuS = 0;
        let commands = 0;
        const { hostCpuS } = await onHost(async () => {
          const cpu0 = process.cpuUsage();
          const t0 = performance.now();
          const ssh = await transport();
          try {
            const capture = await captureHost(ssh, captureOptions());
            validateProfile(capture.profile);
            lastCapture = capture;
          } finally {
            await ssh.close();
          }
          commands = ssh.commands;
          wallMs = performance.now() - t0;
          const cpu = process.cpuUsage(cpu0);
          cpuS = (cpu.user + cpu.system) / 1e6;
        });
        return { wallMs, cpuS, hostCpuS, parts: { commands } };
      },
    },
    {
      name: 'breakdown',
      runs: RUNS,
      warmup: true,
      run: async () => {
        const ssh = await transport();
        try {
          const t0 = performance.now();
          await ssh.run('true');
          const t1 = performance.now();
          await ssh.run('true');
          const t2 = performance.now();
          const options = captureOptions();
          const env = captureEnv({
            configPaths: options.application.paths,
            appProcesses: options.application.processes,
          });
          const result = await ssh.run(CAPTURE_SCRIPT, { env, timeoutMs: 60_000 });
          const t3 = performance.now();
          const sections = parseSections(result.stdout);
          const t4 = performance.now();
          const built = buildProfile(sections, options);
          const t5 = performance.now();
          validateProfile(built.profile);
          const t6 = performance.now();
          await ssh.close();
          const t7 = performance.now();
          lastRawBytes = Buffer.byteLength(result.stdout);
          lastSections = sections;
          const foreground = [...sections.values()]
            .filter(
              (s) => !['sample-start', 'sample-end', 'loadavg', 'du', 'runtimes', 'ionice'].includes(s.name),
            )
            .reduce((n, s) => n + (s.seconds ?? 0), 0);
          const background = Math.max(
            ...['du', 'runtimes', 'ionice'].map((n) => sections.get(n)?.seconds ?? 0),
          );
          return {
            wallMs: t7 - t0,
            parts: {
              connect: t1 - t0 - (t2 - t1),
              exec: t2 - t1,
              script: t3 - t2,
              onHost: (sections.seconds ?? Number.NaN) * 1000,
              foreground: foreground * 1000,
              background: background * 1000,
              parse: t4 - t3,
              build: t5 - t4,
              validate: t6 - t5,
              close: t7 - t6,
            },
          };
        } finally {
          await ssh.close();
        }
      },
    },
    {
      name: 'child',
      runs: CHILD_RUNS,
      warmup: true,
      run: async (warmup) => {
        const sample = await runChild('the capture child', childEnv);
        if (!warmup) childImportMs = [...childImportMs, sample.parts.import];
        return sample;
      },
    },
    {
      // The same child with Node's compile cache switched off: what the cache saves at each start.
      name: 'child-nocache',
      runs: CHILD_RUNS,
      warmup: true,
      run: () =>
        runChild('the capture child without compile cache', { ...childEnv, NODE_DISABLE_COMPILE_CACHE: '1' }),
    },
    {
      name: 'child-tsx',
      runs: CHILD_RUNS,
      warmup: true,
      run: async () => {
        const { result: run, hostCpuS } = await onHost(async () =>
          checked(
            'the capture child (tsx)',
            await runProcess(
              process.execPath,
              ['--import', 'tsx', join(REPO, 'bench/capture/child-start.ts'), JSON.stringify(job)],
              { cwd: REPO, env: childEnv },
            ),
          ),
        );
        const result = JSON.parse(run.stdout.trim().split('\n').at(-1) ?? '{}') as ChildResult;

        return {
          wallMs: run.wallMs,
          ...(run.cpuS === undefined ? {} : { cpuS: run.cpuS }),
          hostCpuS,
          parts: { import: result.importMs, capture: result.captureMs },
        };
      },
    },
    {
      name: 'node',
      runs: CHILD_RUNS,
      warmup: true,
      run: async () => {
        const run = checked('node', await runProcess(process.execPath, ['-e', ''], { cwd: REPO }));
        return { wallMs: run.wallMs, ...(run.cpuS === undefined ? {} : { cpuS: run.cpuS }) };
      },
    },
    {
      name: 'node-tsx',
      runs: CHILD_RUNS,
      warmup: true,
      run: async () => {
        const run = checked(
          'node --import tsx',
          await runProcess(process.execPath, ['--import', 'tsx', '-e', ''], { cwd: REPO }),
        );
        return { wallMs: run.wallMs, ...(run.cpuS === undefined ? {} : { cpuS: run.cpuS }) };
      },
    },
    {
      name: 'ansible-adhoc',
      runs: ANSIBLE_RUNS,
      warmup: true,
      run: async (warmup) => {
        noteMaster('ansible-adhoc', warmup);
        const parts: Record<string, number> = {};
        let cpuS = 0;
        let ssh = 0;
        const { hostCpuS } = await onHost(async () => {
          for (const module of FACT_MODULES) {
            // The warm-up runs verbose, to count the SSH invocations each module makes.
            const run = checked(`ansible -m ${module}`, await a.adHoc(module, { verbose: warmup }));
            parts[module] = run.wallMs;
            parts[`${module}:cpu`] = run.cpuS ?? Number.NaN;
            cpuS += run.cpuS ?? Number.NaN;
            if (warmup) {
              invocations[module] = sshInvocations(run.stdout);
              ssh += invocations[module];
            } else ansibleOutputs[module] = run.stdout;
          }
        });
        if (warmup) invocations['ad-hoc'] = ssh;
        return {
          wallMs: FACT_MODULES.reduce((n, m) => n + (parts[m] ?? 0), 0),
          cpuS,
          hostCpuS,
          parts,
        };
      },
    },
    {
      name: 'ansible-playbook',
      runs: ANSIBLE_RUNS,
      warmup: true,
      run: async (warmup) => {
        noteMaster('ansible-playbook', warmup);
        const { result: run, hostCpuS } = await onHost(async () =>
          checked('ansible-playbook', await a.playbook({ verbose: warmup })),
        );
        if (warmup) invocations.playbook = sshInvocations(run.stdout);
        return { wallMs: run.wallMs, ...(run.cpuS === undefined ? {} : { cpuS: run.cpuS }), hostCpuS };
      },
    },
    {
      name: 'ansible-playbook-cold',
      runs: COLD_RUNS,
      warmup: false,
      run: async () => {
        const { result: run, hostCpuS } = await onHost(async () =>
          checked('ansible-playbook (first contact)', await a.playbook({ cold: true })),
        );
        return { wallMs: run.wallMs, ...(run.cpuS === undefined ? {} : { cpuS: run.cpuS }), hostCpuS };
      },
    },
  ];

  // ---------------------------------------------------------------- rounds
  // Round by round, each round in a rotated order, so that load from other work on the machine
  // falls on all the tasks alike. Round 0 is the warm-up (page cache, JIT, the SSH master).
  for (let round = 0; ; round++) {
    const due = tasks.filter((t) => round >= (t.warmup ? 0 : 1) && round <= t.runs);
    if (due.length === 0) break;
    const elapsedS = (performance.now() - started) / 1000;
    if (elapsedS > BUDGET_S && round > MIN_RUNS) {
      progress(`time budget of ${BUDGET_S} s reached after ${round - 1} measured rounds`);
      break;
    }
    progress(`round ${round}${round === 0 ? ' (warm-up)' : ''}: ${due.map((t) => t.name).join(', ')}`);
    for (let i = 0; i < due.length; i++) {
      const task = due[(i + round) % due.length] as Task;
      const sample = await task.run(round === 0);
      if (round > 0) samples.set(task.name, [...(samples.get(task.name) ?? []), sample]);
    }
  }
  const loadAfterRuns = loadAverage();

  // ---------------------------------------------------------------- results
  const of = (name: string) => samples.get(name) ?? [];
  const wall = (name: string) => median(of(name).map((s) => s.wallMs));
  const part = (name: string, key: string) => median(of(name).map((s) => s.parts?.[key] ?? Number.NaN));
  const cpu = (name: string) => {
    const xs = of(name)
      .map((s) => s.cpuS)
      .filter((x): x is number => x !== undefined && Number.isFinite(x));
    return xs.length === 0 ? undefined : median(xs);
  };
  const hostCpu = (name: string) => {
    const xs = of(name)
      .map((s) => s.hostCpuS)
      .filter((x): x is number => x !== undefined);
    return xs.length === 0 ? undefined : median(xs);
  };
  const spread = (xs: readonly number[]) =>
    xs.length === 0 ? '' : `${sec(Math.min(...xs))}–${sec(Math.max(...xs))} (n=${xs.length})`;
  const range = (name: string) => spread(of(name).map((s) => s.wallMs));
  const partRange = (name: string, key: string) => spread(of(name).map((s) => s.parts?.[key] ?? Number.NaN));
  const persona = wall('persona');
  const ratio = (ms: number) => (Number.isFinite(ms) && persona > 0 ? `×${(ms / persona).toFixed(1)}` : '');
  const reuse = (task: string) => {
    const [reused, runs] = masterReused[task] ?? [0, 0];
    return `master reused in ${reused}/${runs} runs`;
  };

  say('## Time to gather a host, end to end');
  say();
  say(
    'Median wall time in seconds over n measured runs after one warm-up round, the tasks interleaved round by ' +
      'round in rotated order. "Control CPU" is user+system time on this machine (GNU time for processes, ' +
      '`process.cpuUsage` for the in-process capture); "host CPU" is what the test host\'s sshd and every ' +
      'process under it spent meanwhile (from /proc: utime+stime and reaped children), to the 10 ms tick. ' +
      'Ansible runs with its defaults, so OpenSSH keeps a ControlPersist master connection (60 s) between ' +
      'runs: after the first run each `ansible` reuses it; "first contact" starts without one.',
  );
  say();
  const rows: string[][] = [];
  const row = (what: string, how: string, name: string, ms: number, wallRange: string, roundTrips: string) =>
    rows.push([
      what,
      how,
      `**${sec(ms)}**`,
      wallRange,
      ratio(ms),
      cpuText(cpu(name)),
      hostCpu(name) === undefined ? '' : cpuText(hostCpu(name)),
      roundTrips,
    ]);
  const commands = part('persona', 'commands');
  const personaTrips = `1 connection, ${commands} command${commands === 1 ? '' : 's'}`;
  row(
    'Persona `captureHost` (library)',
    'new SshTransport (pinned host key) → connect, script, parse, build Profile, `validateProfile`, close',
    'persona',
    persona,
    range('persona'),
    personaTrips,
  );
  row(
    'Persona as a process',
    '`node capture-child.mjs`: bench/capture/child-start.ts bundled by esbuild, started as cli/bin.js starts (compile cache, warm after round 0); Node start-up, module loading, the same capture',
    'child',
    wall('child'),
    range('child'),
    personaTrips,
  );
  row(
    'Persona as a process, no compile cache',
    'the same with NODE_DISABLE_COMPILE_CACHE=1: every start parses and compiles ssh2 and the capture code',
    'child-nocache',
    wall('child-nocache'),
    range('child-nocache'),
    personaTrips,
  );
  row(
    'Persona as a process, through tsx',
    '`node --import tsx bench/capture/child-start.ts`: the same, TypeScript compiled at start-up, as cli/bin.js does without its build',
    'child-tsx',
    wall('child-tsx'),
    range('child-tsx'),
    personaTrips,
  );
  for (const module of FACT_MODULES) {
    rows.push([
      `Ansible \`-m ${module}\``,
      `\`ansible all -i ADDR, -m ${module}\``,
      sec(part('ansible-adhoc', module)),
      partRange('ansible-adhoc', module),
      ratio(part('ansible-adhoc', module)),
      cpuText(part('ansible-adhoc', `${module}:cpu`)),
      '',
      invocations[module] === undefined ? '' : `${invocations[module]} ssh/sftp`,
    ]);
  }
  row(
    'Ansible: the three ad-hoc runs',
    `setup + package_facts + service_facts, one after another (${reuse('ansible-adhoc')})`,
    'ansible-adhoc',
    wall('ansible-adhoc'),
    range('ansible-adhoc'),
    invocations['ad-hoc'] === undefined ? '' : `${invocations['ad-hoc']} ssh/sftp`,
  );
  row(
    'Ansible: one playbook',
    `\`ansible-playbook\`: gather_facts, package_facts, service_facts (${reuse('ansible-playbook')})`,
    'ansible-playbook',
    wall('ansible-playbook'),
    range('ansible-playbook'),
    invocations.playbook === undefined ? '' : `${invocations.playbook} ssh/sftp`,
  );
  row(
    'Ansible: one playbook, first contact',
    'the same, with no master connection to reuse (its own ControlPath directory; master ended after)',
    'ansible-playbook-cold',
    wall('ansible-playbook-cold'),
    range('ansible-playbook-cold'),
    invocations.playbook === undefined ? '' : `${invocations.playbook} ssh/sftp, 1 handshake`,
  );
  for (const [name, command, what] of [
    ['node', '`node -e ""`', 'Node start-up alone'],
    ['node-tsx', '`node --import tsx -e ""`', 'Node start-up with the TypeScript loader'],
  ] as const) {
    rows.push([`(floor) ${command}`, what, sec(wall(name)), range(name), '', cpuText(cpu(name)), '', '']);
  }
  table(
    ['what', 'how', 'median s', 'range s', 'vs Persona', 'control CPU s', 'host CPU s', 'round trips'],
    rows,
    [2, 3, 4, 5, 6],
  );
  const child = wall('child');
  const against = (ms: number) => (Number.isFinite(ms) && child > 0 ? `×${(ms / child).toFixed(1)}` : '?');
  const playbookRatio = wall('ansible-playbook') / child;
  say(
    `Goal (issue 14): Persona as a process in at most 0.60 s and at least 4× faster than the playbook: ` +
      `${sec(child)} s (${child <= 600 ? 'met' : 'not met'}), ×${playbookRatio.toFixed(1)} ` +
      `(${playbookRatio >= 4 ? 'met' : 'not met'}); control CPU ${cpuText(cpu('child'))} s, host CPU ` +
      `${cpuText(hostCpu('child'))} s a capture. ${busyVerdict(loadAtStart)}`,
  );
  say(
    `Against Persona as a process (${sec(child)} s, Node start-up included): the three ad-hoc runs ` +
      `${against(wall('ansible-adhoc'))}, the playbook ${against(wall('ansible-playbook'))}, the playbook on ` +
      `first contact ${against(wall('ansible-playbook-cold'))}. Ansible's own start-up (Python, its plugins) ` +
      'is inside every Ansible figure.',
  );
  say(
    `In the Persona process, module loading (process start to the first line of the child) took ` +
      `${sec(median(childImportMs))} s (${sec(part('child-nocache', 'import'))} s without the compile cache) and the capture ${sec(part('child', 'capture'))} s (medians), of which ` +
      `\`validateProfile\`, the process's first, took ${sec(part('child', 'validate'))} s (warm, as in the breakdown below, it takes a fraction). ` +
      '`ssh/sftp` counts the OpenSSH invocations in the warm-up round run with -vvv: each is a round trip ' +
      'over the shared master connection (home directory, temp directory, interpreter discovery, module ' +
      'upload, chmod, run, clean-up).',
  );
  say();

  say("## Where Persona's time goes");
  say();
  say(
    'The same work as `captureHost`, step by step, on a fresh transport each run (medians, ms). Connect is ' +
      '(first `true` − second `true`): TCP, SSH handshake, key exchange, authentication.',
  );
  say();
  const steps: [string, string, string][] = [
    ['connect', 'connect', 'TCP + SSH handshake + public-key authentication'],
    ['exec', 'one command round trip', 'a channel, `true`, exit status (the floor for any command)'],
    ['script', 'capture script round trip', `one command; ${lastRawBytes} bytes of output in the last run`],
    ['onHost', '  ↳ script on the host', "the script's own first-to-last section, by the host's clock"],
    [
      'foreground',
      '    ↳ sections, summed',
      "each section's own time; they run in lanes alongside one another",
    ],
    [
      'background',
      '    ↳ slowest of du, runtimes, ionice',
      'data footprint, runtime versions, I/O priorities',
    ],
    ['parse', 'parseSections', 'split the output into sections'],
    ['build', 'buildProfile', 'every parser, secrets moved out, trait vector'],
    ['validate', 'validateProfile', 'schema checks, canonical form'],
    ['close', 'close', 'SSH disconnect'],
  ];
  table(
    ['step', 'median ms', 'range ms', 'what'],
    [
      ...steps.map(([key, label, what]) => {
        const xs = of('breakdown').map((s) => s.parts?.[key] ?? Number.NaN);
        return [label, msText(median(xs)), `${msText(Math.min(...xs))}–${msText(Math.max(...xs))}`, what];
      }),
      ['total', msText(wall('breakdown')), '', 'connect to close, two extra `true` included'],
    ],
    [1, 2],
  );
  const window = lastCapture?.profile.observed?.usage?.window;
  say(
    "The usage sample's two readings (CPU, network and disk rates) are the script's first and last act: its " +
      "window is the run itself, at least 0.1 s, or from persona-agent's last reading where the host has " +
      `the agent; the Profile says which (observed.usage.window). Last run: ${window === undefined ? 'no window' : `${window.seconds} s, from the ${window.source}'s reading`}.`,
  );
  if (lastSections) {
    const slow = [...lastSections.values()]
      .filter((s) => (s.seconds ?? 0) >= 0.05)
      .sort((x, y) => (y.seconds ?? 0) - (x.seconds ?? 0))
      .slice(0, 6)
      .map((s) => `${s.name} ${(s.seconds ?? 0).toFixed(2)} s`);
    say(`Slowest sections in the last run: ${slow.join(', ') || 'none over 50 ms'}.`);
  }
  say();

  // ---------------------------------------------------------------- fields
  const capture = lastCapture;
  const complete = FACT_MODULES.every((m) => ansibleOutputs[m] !== undefined);
  if (!capture || !complete) throw new Error('no measured run left outputs to count fields in');
  const facts: AnsibleFacts = factsOf(ansibleOutputs as Record<FactModule, string>);
  const profile: ProfileInput = capture.profile;
  const leaves = leafBreakdown(facts, profile);
  const ansibleTotal = leaves.ansible.reduce((n, [, c]) => n + c, 0);
  const personaTotal = leaves.persona.reduce((n, [, c]) => n + c, 0);
  const validated = validateProfile(profile);

  say('## Fields gathered');
  say();
  say(
    'Leaf fields: every string, number, boolean or null in the output, wherever it sits (empty objects and ' +
      "arrays count nothing). Ansible: the `ansible_facts` of the three ad-hoc runs' JSON output. Persona: the " +
      `captured Profile's spec and observed parts as \`captureHost\` returns them (defaults not filled in; ` +
      `after \`validateProfile\` fills them: ${leafCount(validated.spec) + leafCount(validated.observed)}).`,
  );
  say();
  const width = Math.max(leaves.ansible.length, leaves.persona.length);
  table(
    ['Ansible', 'leaf fields', 'Persona', 'leaf fields'],
    [
      ...Array.from({ length: width }, (_, i) => {
        const x = leaves.ansible[i];
        const y = leaves.persona[i];
        return [x?.[0] ?? '', x ? String(x[1]) : '', y?.[0] ?? '', y ? String(y[1]) : ''];
      }),
      ['**total**', `**${ansibleTotal}**`, '**total**', `**${personaTotal}**`],
    ],
    [1, 3],
  );
  const ansibleBytes = FACT_MODULES.reduce((n, m) => n + Buffer.byteLength(ansibleOutputs[m] ?? ''), 0);
  say(
    `Output: Ansible printed ${(ansibleBytes / 1024).toFixed(0)} KiB of JSON over the three runs; Persona's ` +
      `script sent ${(lastRawBytes / 1024).toFixed(0)} KiB, and the Profile is ` +
      `${(Buffer.byteLength(JSON.stringify(profile)) / 1024).toFixed(0)} KiB of JSON. Most of Persona's leaves ` +
      `are configuration files (path, type, mode, owner, group, size, hash: ${leafCount(profile.spec.configuration?.files)} ` +
      `leaves for ${profile.spec.configuration?.files?.length ?? 0} entries) and sysctl keys ` +
      `(${Object.keys(profile.spec.configuration?.sysctl ?? {}).length}); most of Ansible's are packages ` +
      `(name, version, release, arch, source: ${leafCount(facts.packages)}).`,
  );
  say();

  say('### By area');
  say();
  say(
    '✔ gathered, ◐ in part (the note says which part), ✘ not in the output. Counts are what each found on ' +
      "this host, read from the run's outputs.",
  );
  say();
  table(
    ['area', 'Ansible (setup + package_facts + service_facts)', 'Persona (Profile)'],
    areaRows(facts, profile).map((r) => [r.area, r.ansible, r.persona]),
  );
  const ansibleHasSecret = FACT_MODULES.some((m) => (ansibleOutputs[m] ?? '').includes(SECRET));
  const personaHasSecret = JSON.stringify(profile).includes(SECRET);
  say(
    `Secrets: the API token in /etc/environment is ${ansibleHasSecret ? '**in clear** in' : 'not in'} ` +
      `Ansible's output (\`ansible_env\` of its own session, which PAM fills from /etc/environment), and ` +
      `${personaHasSecret ? '**in clear** in' : 'not in'} Persona's Profile (${capture.secrets.length} values moved ` +
      'out as secret references, for the caller to store encrypted).',
  );
  say();
  say(`What Persona recorded as unknown on this host (${capture.unknowns.length}):`);
  say();
  for (const u of capture.unknowns) say(`- ${u.section}: ${u.reason}`);
  say();

  say(
    `Load average at start ${loadAtStart}, after the timed runs ${loadAfterRuns}, at the end ${loadAverage()}. ` +
      `Total run time ${((performance.now() - started) / 1000).toFixed(0)} s.`,
  );
} finally {
  progress('tearing down');
  ansible?.close();
  await destroyAllHosts();
  cleanupProcessScratch();
  rmSync(work, { recursive: true, force: true });
}

mkdirSync(new URL('../../reports/', import.meta.url), { recursive: true });
writeFileSync(new URL('../../reports/capture-bench.md', import.meta.url), `${out.join('\n')}\n`);
progress('done: reports/capture-bench.md');
// ssh2's sockets are closed; the harness's exit handlers have nothing left to do.
process.exit(0);
