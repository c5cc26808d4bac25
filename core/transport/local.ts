// The control machine itself, through child_process: the same semantics as the remote
// transports, so a capture of `localhost` needs no SSH server.
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { NotFoundError } from '../errors.js';
import { TransportError } from './errors.js';
import { Collector, exitCodeOf, toBuffer } from './output.js';
import { checkPath } from './paths.js';
import { checkEnv, describeCommand, octalMode } from './shell.js';
import type { RunOptions, RunResult, StreamHandle, StreamOptions, Transport } from './transport.js';

export interface LocalTransportOptions {
  /** How long a timed-out command has between SIGTERM and SIGKILL. Default 2 s. */
  readonly killGraceMs?: number;
}

interface Started {
  readonly child: ChildProcessWithoutNullStreams;
  readonly stdout: Collector | undefined;
  readonly done: Promise<{ readonly exitCode: number; readonly stderr: string }>;
}

export class LocalTransport implements Transport {
  readonly target = 'local';
  private readonly killGraceMs: number;

  constructor(options: LocalTransportOptions = {}) {
    this.killGraceMs = options.killGraceMs ?? 2000;
  }

  async run(command: string, options: RunOptions = {}): Promise<RunResult> {
    const started = Date.now();
    const { child, stdout, done } = this.start(command, options, true);
    child.stdin.end(options.stdin === undefined ? undefined : toBuffer(options.stdin));
    const { exitCode, stderr } = await done;
    return { exitCode, stdout: stdout?.text() ?? '', stderr, durationMs: Date.now() - started };
  }

  async stream(command: string, options: StreamOptions = {}): Promise<StreamHandle> {
    const { child, done } = this.start(command, options, false);
    if (!options.input) child.stdin.end();
    return { stdout: child.stdout, stdin: child.stdin, done };
  }

  async putFile(path: string, content: Uint8Array, options: { readonly mode?: number } = {}): Promise<void> {
    // The same paths as a remote host takes, so that what works here works there.
    checkPath(path, 'path');
    if (options.mode !== undefined) octalMode(options.mode);
    const temp = `${path}.persona-${randomBytes(6).toString('hex')}`;
    try {
      const mode =
        options.mode ??
        (await stat(path).then(
          (s) => s.mode & 0o7777,
          () => 0o644,
        ));
      // Created 0600 and exclusive: nobody reads the content before it is complete and chmod'ed.
      const handle = await open(temp, 'wx', 0o600);
      try {
        await handle.writeFile(content);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await chmod(temp, mode);
      await rename(temp, path);
    } catch (error) {
      await rm(temp, { force: true });
      throw new TransportError(`cannot write ${path} on local: ${messageOf(error)}`, 'failed', this.target, {
        cause: error,
      });
    }
  }

  async getFile(path: string): Promise<Uint8Array> {
    checkPath(path, 'path');
    try {
      return new Uint8Array(await readFile(path));
    } catch (error) {
      if (codeOf(error) === 'ENOENT')
        throw new NotFoundError(`no file ${path} on local`, path, { cause: error });
      throw new TransportError(`cannot read ${path} on local: ${messageOf(error)}`, 'failed', this.target, {
        cause: error,
      });
    }
  }

  async close(): Promise<void> {}

  private start(command: string, options: StreamOptions, collectStdout: boolean): Started {
    checkEnv(options.env);
    // A session of its own makes the command a process-group leader: a time-out can then kill
    // everything it started, not only the shell.
    const child = spawn('sh', ['-c', command], {
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
      // Commands inherit the control process's environment, as they would in a shell here.
      ...(options.env ? { env: { ...process.env, ...options.env } } : {}),
    });
    // A command may exit without reading its input; the broken pipe is not an error of ours.
    child.stdin.on('error', () => {});
    const stdout = collectStdout ? new Collector() : undefined;
    if (stdout) child.stdout.on('data', stdout.push);
    const stderr = new Collector();
    child.stderr.on('data', stderr.push);

    const done = new Promise<{ exitCode: number; stderr: string }>((resolve, reject) => {
      let timedOut = false;
      let killer: NodeJS.Timeout | undefined;
      const timer =
        options.timeoutMs === undefined
          ? undefined
          : setTimeout(() => {
              timedOut = true;
              signalGroup(child.pid, 'SIGTERM');
              killer = setTimeout(() => signalGroup(child.pid, 'SIGKILL'), this.killGraceMs);
            }, options.timeoutMs);
      const finish = () => {
        if (timer) clearTimeout(timer);
        if (killer) clearTimeout(killer);
      };
      child.once('error', (error) => {
        finish();
        reject(
          new TransportError(`cannot start a shell on local: ${error.message}`, 'failed', this.target, {
            cause: error,
          }),
        );
      });
      child.once('close', (code, signal) => {
        finish();
        if (timedOut) {
          reject(
            new TransportError(
              `command timed out after ${options.timeoutMs} ms on local and was killed: ${describeCommand(command)}`,
              'timeout',
              this.target,
            ),
          );
        } else {
          resolve({ exitCode: exitCodeOf(code, signal), stderr: stderr.text() });
        }
      });
    });
    return { child, stdout, done };
  }
}

function signalGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // Already gone.
  }
}

function codeOf(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : undefined;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
