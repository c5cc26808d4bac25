// Whole processes, timed as a user pays for them (spawn to exit, output read through a pipe),
// with their CPU time from GNU time; and the CPU a test host spent, from its process tree.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface ProcessRun {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly wallMs: number;
  /** User + system seconds of the process and its children; undefined without GNU time. */
  readonly cpuS?: number;
  readonly maxRssBytes?: number;
}

const gnuTime = (() => {
  const run = spawnSync('/usr/bin/time', ['-f', '%M', 'true'], { encoding: 'utf8' });
  return run.error === undefined && run.status === 0 && /^\d+\s*$/.test(run.stderr);
})();

let scratch: string | undefined;
let serial = 0;

/** Removes the directory GNU time writes its reports to. */
export function cleanupProcessScratch(): void {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
  scratch = undefined;
}

export function runProcess(
  command: string,
  args: readonly string[],
  options: { readonly env?: NodeJS.ProcessEnv; readonly cwd?: string; readonly timeoutMs?: number } = {},
): Promise<ProcessRun> {
  scratch ??= mkdtempSync(join(tmpdir(), 'persona-capbench-time-'));
  // GNU time writes to a file of its own, so that the command's stderr stays the command's.
  const report = join(scratch, `${serial++}`);
  const [file, argv] = gnuTime
    ? ['/usr/bin/time', ['-f', '%U %S %M', '-o', report, command, ...args]]
    : [command, [...args]];
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(file, argv, {
      env: options.env ?? process.env,
      ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (status) => {
      clearTimeout(timer);
      const wallMs = performance.now() - started;
      let cpuS: number | undefined;
      let maxRssBytes: number | undefined;
      if (gnuTime) {
        try {
          const fields = readFileSync(report, 'utf8').trim().split('\n').at(-1)?.split(' ').map(Number);
          if (fields && fields.length === 3 && fields.every(Number.isFinite)) {
            cpuS = (fields[0] as number) + (fields[1] as number);
            maxRssBytes = (fields[2] as number) * 1024;
          }
        } catch {
          // No report: the command was killed before GNU time could write one.
        }
        rmSync(report, { force: true });
      }
      resolve({
        status,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        wallMs,
        ...(cpuS === undefined ? {} : { cpuS }),
        ...(maxRssBytes === undefined ? {} : { maxRssBytes }),
      });
    });
  });
}

const TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/**
 * CPU seconds spent so far by a test host: its first process (sshd) and every live descendant,
 * each with the time of the children it has reaped (cutime, cstime). A finished SSH session is
 * reaped by sshd and so lands in its cutime; a session still open (a ControlPersist master's)
 * is a live descendant. Differences of two readings are what the host spent in between, to the
 * kernel's tick (10 ms).
 */
export function hostCpuSeconds(rootPid: number): number {
  const stats = new Map<number, { ppid: number; ticks: number }>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let text: string;
    try {
      text = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // Gone since the listing.
    }
    // Fields after the command name, which is in parentheses and may contain anything.
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
    const field = (n: number) => Number(rest[n - 3]);
    stats.set(Number(entry), { ppid: field(4), ticks: field(14) + field(15) + field(16) + field(17) });
  }
  const children = new Map<number, number[]>();
  for (const [pid, s] of stats) {
    const list = children.get(s.ppid) ?? [];
    list.push(pid);
    children.set(s.ppid, list);
  }
  let ticks = 0;
  const stack = [rootPid];
  while (stack.length > 0) {
    const pid = stack.pop() as number;
    ticks += stats.get(pid)?.ticks ?? 0;
    stack.push(...(children.get(pid) ?? []));
  }
  return ticks / TICKS;
}
