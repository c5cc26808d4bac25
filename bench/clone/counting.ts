// A Transport that counts what crosses it: the bytes the control side hands to the channel
// (command text, environment, standard input, file contents) and the bytes it gets back
// (standard output and error, file contents). These are payload bytes, before SSH frames and
// encrypts them; the benchmark reads the wire separately, from the host's link.
import { pipeline, Transform } from 'node:stream';
import type {
  RunOptions,
  RunResult,
  StreamHandle,
  StreamOptions,
  Transport,
} from '../../core/transport/transport.js';

export interface ByteCount {
  sent: number;
  received: number;
  commands: number;
}

const envBytes = (env: Readonly<Record<string, string>> | undefined) =>
  Object.entries(env ?? {}).reduce((n, [k, v]) => n + Buffer.byteLength(k) + Buffer.byteLength(v) + 2, 0);

const inputBytes = (stdin: string | Uint8Array | undefined) =>
  stdin === undefined ? 0 : typeof stdin === 'string' ? Buffer.byteLength(stdin) : stdin.byteLength;

const counter = (add: (n: number) => void) =>
  new Transform({
    transform(chunk: Buffer, _encoding, done) {
      add(chunk.length);
      done(null, chunk);
    },
  });

export class CountingTransport implements Transport {
  readonly count: ByteCount = { sent: 0, received: 0, commands: 0 };

  constructor(private readonly inner: Transport) {}

  get target(): string {
    return this.inner.target;
  }

  /** The counts so far, and zero from here on. */
  take(): ByteCount {
    const taken = { ...this.count };
    Object.assign(this.count, { sent: 0, received: 0, commands: 0 });
    return taken;
  }

  async run(command: string, options?: RunOptions): Promise<RunResult> {
    this.count.commands++;
    this.count.sent += Buffer.byteLength(command) + envBytes(options?.env) + inputBytes(options?.stdin);
    const result = await this.inner.run(command, options);
    this.count.received += Buffer.byteLength(result.stdout) + Buffer.byteLength(result.stderr);
    return result;
  }

  async stream(command: string, options?: StreamOptions): Promise<StreamHandle> {
    this.count.commands++;
    this.count.sent += Buffer.byteLength(command) + envBytes(options?.env);
    const handle = await this.inner.stream(command, options);
    const stdin = counter((n) => {
      this.count.sent += n;
    });
    const stdout = counter((n) => {
      this.count.received += n;
    });
    // Errors travel both ways through the pipes, so a failed channel still fails its caller.
    pipeline(stdin, handle.stdin, () => undefined);
    pipeline(handle.stdout, stdout, () => undefined);
    const done = handle.done.then((d) => {
      this.count.received += Buffer.byteLength(d.stderr);
      return d;
    });
    return { stdin, stdout, done };
  }

  async putFile(path: string, content: Uint8Array, options?: { readonly mode?: number }): Promise<void> {
    this.count.commands++;
    this.count.sent += Buffer.byteLength(path) + content.byteLength;
    await this.inner.putFile(path, content, options);
  }

  async getFile(path: string): Promise<Uint8Array> {
    this.count.commands++;
    this.count.sent += Buffer.byteLength(path);
    const bytes = await this.inner.getFile(path);
    this.count.received += bytes.byteLength;
    return bytes;
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
