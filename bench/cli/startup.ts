// Start-up of the `persona` command as built (cli/dist, see scripts/build-cli.ts): wall time
// from spawn to exit of `persona --version` and `persona validate FILE`, beside plain Node
// starting and exiting (the floor no command can go under), with the load average the machine
// had, and the CPU time each took (user + system, by /usr/bin/time when the machine has it),
// which a busy machine inflates far less than wall time. Targets: --version under 0.15 s,
// validate under 0.3 s.
//
// Usage: node --import tsx bench/cli/startup.ts [runs]
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { buildCli, CLI_DIST, cliBuildStale } from '../../scripts/build-cli.js';

const runs = Number(process.argv[2] ?? 21);
if (cliBuildStale() || !existsSync(CLI_DIST)) await buildCli();

const cases: { name: string; args: string[]; target?: number }[] = [
  { name: 'node -e 0 (floor)', args: ['-e', '0'] },
  { name: 'persona --version', args: ['cli/bin.js', '--version'], target: 0.15 },
  {
    name: 'persona validate examples/web.yaml',
    args: ['cli/bin.js', 'validate', 'examples/web.yaml'],
    target: 0.3,
  },
  { name: 'persona --help', args: ['cli/bin.js', '--help'] },
];

const quantile = (sorted: number[], q: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

console.log(`load average at start: ${load()} (${runs} runs per case, interleaved)`);
const times = new Map(cases.map((c) => [c.name, [] as number[]]));
const cpu = new Map(cases.map((c) => [c.name, [] as number[]]));
const TIME = '/usr/bin/time';
const timed = existsSync(TIME);
const cpuFile = join(mkdtempSync(join(tmpdir(), 'persona-bench-')), 'cpu');
// Interleaved, so a burst of load from elsewhere falls on every case alike.
for (let i = 0; i < runs; i++) {
  for (const c of cases) {
    const [command, args] = timed
      ? [TIME, ['-o', cpuFile, '-f', '%U %S', process.execPath, ...c.args]]
      : [process.execPath, c.args];
    const t0 = performance.now();
    const r = spawnSync(command, args, {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, NO_COLOR: '1' },
    });
    const s = (performance.now() - t0) / 1000;
    if (r.status !== 0) throw new Error(`${c.name} exited ${r.status}: ${r.stderr}`);
    times.get(c.name)?.push(s);
    if (timed) {
      const [user = 0, system = 0] = readFileSync(cpuFile, 'utf8').trim().split(/\s+/).map(Number);
      cpu.get(c.name)?.push(user + system);
    }
  }
}
for (const c of cases) {
  const sorted = (times.get(c.name) ?? []).sort((a, b) => a - b);
  const median = quantile(sorted, 0.5);
  const verdict =
    c.target === undefined ? '' : median < c.target ? `  under ${c.target} s` : `  OVER ${c.target} s`;
  const cpuSorted = (cpu.get(c.name) ?? []).sort((a, b) => a - b);
  const cpuText = timed ? `  cpu median ${quantile(cpuSorted, 0.5).toFixed(3)} s` : '';
  console.log(
    `${c.name.padEnd(38)} wall median ${median.toFixed(3)} s  min ${(sorted[0] ?? 0).toFixed(3)} s  p90 ${quantile(sorted, 0.9).toFixed(3)} s${cpuText}${verdict}`,
  );
}
console.log(`load average at end: ${load()}`);
