// Running a tool as a user would, under GNU time: wall time, CPU time and peak memory of the
// whole process. Asynchronous on purpose: the S3 stand-in lives in this process's event loop,
// so a blocking wait would stall the Persona child that talks to it.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Run {
  readonly wallMs: number;
  /** CPU seconds of the process and its children. */
  readonly userS: number;
  readonly sysS: number;
  readonly maxRssBytes: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface RunOptions {
  readonly cwd?: string;
  readonly env?: Record<string, string>;
}

const timeDir = mkdtempSync(join(tmpdir(), 'persona-bench-time-'));
process.on('exit', () => rmSync(timeDir, { recursive: true, force: true }));
let runs = 0;

export async function timed(
  command: string,
  args: readonly string[],
  options: RunOptions = {},
): Promise<Run> {
  const out = join(timeDir, `run-${runs++}`);
  const started = performance.now();
  const child = spawn('/usr/bin/time', ['-o', out, '-f', '%U %S %M', command, ...args], {
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  const wallMs = performance.now() - started;
  if (code !== 0)
    throw new Error(
      `${command} ${args.join(' ')} exited with ${code}:\n${stderr.slice(-3000)}${stdout.slice(-1000)}`,
    );
  // GNU time may put "Command exited with non-zero status" first: the figures are the last line.
  const last = readFileSync(out, 'utf8').trim().split('\n').pop() ?? '';
  rmSync(out, { force: true });
  const [user, sys, rss] = last.split(' ').map(Number);
  return { wallMs, userS: user ?? 0, sysS: sys ?? 0, maxRssBytes: (rss ?? 0) * 1024, stdout, stderr };
}

/** Bytes of every file under `dir` (what `du -sb` counts, without directory entries). */
export function fileBytes(dir: string): number {
  let total = 0;
  const visit = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) visit(p);
      else if (e.isFile()) total += statSync(p).size;
    }
  };
  visit(dir);
  return total;
}

/** `du -sb`: file and directory sizes as the filesystem reports them. */
export async function duBytes(dir: string): Promise<number> {
  const r = await timed('du', ['-sb', dir]);
  return Number(r.stdout.split('\t')[0]);
}

/** CPU seconds a process has used so far (utime + stime from /proc), or undefined when it is gone. */
export function cpuSecondsOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

/** Descendants of a process whose command name is `comm` (e.g. the JVM of DynamoDB Local). */
export function descendantsNamed(root: number, comm: string): number[] {
  const parent = new Map<number, number>();
  const names = new Map<number, string>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const open = stat.indexOf('(');
      const close = stat.lastIndexOf(')');
      names.set(Number(name), stat.slice(open + 1, close));
      parent.set(Number(name), Number(stat.slice(close + 2).split(' ')[1]));
    } catch {
      // Gone meanwhile.
    }
  }
  const found: number[] = [];
  for (const [pid, name] of names) {
    if (name !== comm) continue;
    for (let p = parent.get(pid); p !== undefined && p > 1; p = parent.get(p))
      if (p === root) {
        found.push(pid);
        break;
      }
  }
  return found;
}
