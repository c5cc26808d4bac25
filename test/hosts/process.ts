// Running the control machine's commands for the test-host harness: promise and sync forms
// (the sync form serves the exit handler, where no promise gets to settle), a clean
// environment, and a kernel lock that dies with its holder.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/**
 * setpriv's arguments for everything that runs in a test host or works on its files: not
 * even root there may load kernel modules or set the clock, which belong to the control
 * machine. (Capabilities are not a namespace: a process that joins a host's namespaces
 * keeps its own, so each entry point drops them.)
 */
export const CONFINED = [
  '--inh-caps',
  '-sys_module,-sys_time',
  '--bounding-set',
  '-sys_module,-sys_time',
  '--',
] as const;

export interface CommandResult {
  readonly stdout: string;
  readonly stderr: string;
  readonly exitCode: number;
}

export interface RunOptions {
  readonly input?: string;
  readonly timeoutMs?: number;
  readonly env?: NodeJS.ProcessEnv;
}

/** What a command run in a test host's root filesystem sees: none of the test runner's
 * variables (NODE_OPTIONS, the project's PATH), only a proxy if the machine needs one. */
export function systemEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: '/root',
    LANG: 'C.UTF-8',
    TERM: 'dumb',
  };
  for (const name of ['http_proxy', 'https_proxy', 'no_proxy', 'HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY']) {
    const value = process.env[name];
    if (value) env[name] = value;
  }
  return { ...env, ...extra };
}

export class CommandError extends Error {
  readonly code = 'COMMAND_FAILED';
  constructor(
    readonly command: string,
    readonly result: CommandResult,
  ) {
    super(`${command} exited ${result.exitCode}: ${(result.stderr || result.stdout).trim().slice(-2000)}`);
    this.name = 'CommandError';
  }
}

export function run(
  command: string,
  args: readonly string[],
  options: RunOptions = {},
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      env: options.env ?? systemEnv(),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => stdout.push(b));
    child.stderr.on('data', (b: Buffer) => stderr.push(b));
    const timer =
      options.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            stderr.push(Buffer.from(`\n[killed after ${options.timeoutMs} ms]`));
            child.kill('SIGKILL');
          }, options.timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        stdout: Buffer.concat(stdout).toString(),
        stderr: Buffer.concat(stderr).toString(),
        exitCode: code ?? 128 + (signal ? signalNumber(signal) : 0),
      });
    });
    // A command that does not read its input closes the pipe early: not an error here.
    child.stdin.on('error', () => {});
    child.stdin.end(options.input ?? '');
  });
}

/** Runs a command and returns its standard output; a non-zero exit throws with its stderr. */
export async function runOk(
  command: string,
  args: readonly string[],
  options: RunOptions = {},
): Promise<string> {
  const result = await run(command, args, options);
  if (result.exitCode !== 0) throw new CommandError([command, ...args].join(' '), result);
  return result.stdout;
}

export function runSync(command: string, args: readonly string[]): CommandResult {
  const r = spawnSync(command, args, { env: systemEnv(), encoding: 'utf8', timeout: 30_000 });
  return { stdout: r.stdout ?? '', stderr: r.stderr ?? String(r.error ?? ''), exitCode: r.status ?? 1 };
}

function signalNumber(signal: NodeJS.Signals): number {
  const numbers: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };
  return numbers[signal] ?? 0;
}

/** Whether a process runs; a zombie (exited, not yet reaped) does not. */
export function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** The kernel's start time of a process, which tells a live owner from a reused pid. */
export function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export function waitGoneSync(pids: readonly number[], timeoutMs: number): boolean {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!pids.some(isAlive)) return true;
    if (Date.now() > deadline) return false;
    sleepSync(20);
  }
}

export function killQuietly(pid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  try {
    process.kill(pid, signal);
  } catch {
    // Already gone.
  }
}

/**
 * Holds an exclusive flock(2) on `path` while `fn` runs. The lock belongs to a small
 * `flock` child that waits on its stdin: when this process ends, even by SIGKILL, the
 * pipe closes, the child exits and the kernel releases the lock, so a crashed run never
 * leaves a lock behind for the next one.
 */
export async function withLock<T>(path: string, fn: () => Promise<T>): Promise<T> {
  const holder = spawn('flock', ['--exclusive', path, 'sh', '-c', 'echo locked; exec cat >/dev/null'], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    holder.once('error', reject);
    holder.once('exit', (code) => reject(new Error(`flock ${path} exited ${code} before locking`)));
    holder.stdout.once('data', () => resolve());
  });
  holder.removeAllListeners('exit');
  try {
    return await fn();
  } finally {
    await release(holder);
  }
}

function release(holder: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (holder.exitCode !== null || holder.signalCode !== null) return resolve();
    holder.once('exit', () => resolve());
    holder.stdin?.end();
  });
}
