// How commands and files reach a host. One small interface, so that capture, clone and
// validation run the same over SSH, SSM Run Command, or on the control machine itself.
import type { Readable, Writable } from 'node:stream';

export interface RunOptions {
  /** Bytes for the command's standard input. */
  readonly stdin?: string | Uint8Array;
  /** Give up after this long; the command is killed where the transport can. */
  readonly timeoutMs?: number;
  readonly env?: Readonly<Record<string, string>>;
}

export interface RunResult {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly durationMs: number;
}

export interface StreamHandle {
  /** The command's standard output, as it comes. */
  readonly stdout: Readable;
  /** The command's standard input. */
  readonly stdin: Writable;
  /** Resolves with the exit code and standard error once the command ends. */
  readonly done: Promise<{ readonly exitCode: number; readonly stderr: string }>;
}

export interface Transport {
  /** What the transport reaches, for messages: `ssh://root@10.0.0.2:22`, `ssm://i-0abc`, `local`. */
  readonly target: string;
  /** Runs a shell command (`sh -c`) and collects its output. */
  run(command: string, options?: RunOptions): Promise<RunResult>;
  /** Runs a command whose output or input is a stream (a tar archive, a large file). */
  stream(command: string, options?: Omit<RunOptions, 'stdin'>): Promise<StreamHandle>;
  putFile(path: string, content: Uint8Array, options?: { readonly mode?: number }): Promise<void>;
  getFile(path: string): Promise<Uint8Array>;
  close(): Promise<void>;
}

export const TRANSPORT_KINDS = ['ssh', 'ssm', 'local'] as const;
export type TransportKind = (typeof TRANSPORT_KINDS)[number];
