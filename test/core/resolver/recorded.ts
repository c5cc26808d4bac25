// A host that answers commands with output recorded from a real one: for the RHEL family, which
// has no test host here, and for apt answers a test host cannot give (several repositories).
// It answers only the exact command lines it was given and keeps every command it was sent,
// so a test sees precisely what the resolver would have run.
import type { RunOptions, RunResult, StreamHandle, Transport } from '../../../core/transport/transport.js';

export interface Answer {
  readonly exitCode?: number;
  readonly stdout?: string;
  readonly stderr?: string;
}

export class RecordedTransport implements Transport {
  readonly target = 'recorded://rhel9';
  readonly sent: { command: string; env?: Readonly<Record<string, string>> }[] = [];
  readonly files = new Map<string, Uint8Array>();

  constructor(private readonly answers: ReadonlyMap<string, Answer>) {}

  async run(command: string, options: RunOptions = {}): Promise<RunResult> {
    this.sent.push(options.env ? { command, env: options.env } : { command });
    const answer = this.answers.get(command);
    if (!answer) throw new Error(`no recorded answer for: ${command}`);
    return {
      exitCode: answer.exitCode ?? 0,
      stdout: answer.stdout ?? '',
      stderr: answer.stderr ?? '',
      durationMs: 1,
    };
  }

  async stream(): Promise<StreamHandle> {
    throw new Error('the resolver does not stream');
  }

  async putFile(path: string, content: Uint8Array): Promise<void> {
    this.files.set(path, content);
  }

  async getFile(path: string): Promise<Uint8Array> {
    const bytes = this.files.get(path);
    if (!bytes) throw new Error(`no recorded file ${path}`);
    return bytes;
  }

  async close(): Promise<void> {}
}
