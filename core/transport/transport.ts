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
  /**
   * Some output did not come back whole: SSM Run Command returns at most 24,000 characters of
   * standard output and 8,000 of standard error inline. Absent when the output is complete.
   */
  readonly truncated?: boolean;
}

export interface StreamOptions {
  /** Give up after this long; the command is killed where the transport can. */
  readonly timeoutMs?: number;
  readonly env?: Readonly<Record<string, string>>;
  /**
   * The caller will write the command's standard input through `StreamHandle.stdin` and end it.
   * Without it, standard input is closed at once, so a command that reads it sees end-of-file
   * instead of waiting forever; and SSM, which cannot stream, knows not to wait for input.
   */
  readonly input?: boolean;
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
  stream(command: string, options?: StreamOptions): Promise<StreamHandle>;
  /**
   * Replaces the file atomically (a temporary file beside it, then a rename), so a dropped
   * connection never leaves half a file. Without `mode`, a replaced file keeps its mode and a
   * new one gets 0644.
   */
  putFile(path: string, content: Uint8Array, options?: { readonly mode?: number }): Promise<void>;
  /** The file's bytes; a missing file is a `NotFoundError`. */
  getFile(path: string): Promise<Uint8Array>;
  close(): Promise<void>;
}

export const TRANSPORT_KINDS = ['ssh', 'ssm', 'local'] as const;
export type TransportKind = (typeof TRANSPORT_KINDS)[number];
