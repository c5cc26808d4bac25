// SSM Run Command (`AWS-RunShellScript`): reaches EC2 instances and hybrid-activated machines
// (`mi-...`) that have the SSM Agent and no inbound port. Each command is a SendCommand followed
// by GetCommandInvocation polls; there is no connection to reuse and no stream to attach to.

import { randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { DeleteObjectCommand, GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import {
  CancelCommandCommand,
  GetCommandInvocationCommand,
  type GetCommandInvocationCommandOutput,
  SendCommandCommand,
  type SSMClient,
} from '@aws-sdk/client-ssm';
import { InvalidInputError, NotFoundError, TooLargeError } from '../errors.js';
import { TransportError } from './errors.js';
import { toBuffer } from './output.js';
import { checkPath } from './paths.js';
import { describeCommand, FILE_EXIT, octalMode, shellCommand, shellQuote } from './shell.js';
import type { RunOptions, RunResult, StreamHandle, StreamOptions, Transport } from './transport.js';

/** Where SSM writes the complete output of each command, for output over the inline limits. */
export interface SsmOutputBucket {
  readonly bucket: string;
  /** Key prefix inside the bucket, without a trailing slash. */
  readonly prefix?: string;
  /**
   * Reads the output objects and deletes them once read (they hold whatever the command
   * printed: captured secrets, a host's /etc); needs s3:GetObject and s3:DeleteObject on the
   * prefix. The managed node uploads them with its own credentials: its instance profile needs
   * s3:PutObject there.
   */
  readonly s3: S3Client;
}

export interface SsmTransportOptions {
  /** An EC2 instance (`i-...`) or a hybrid-activated managed node (`mi-...`). */
  readonly instanceId: string;
  readonly ssm: SSMClient;
  /** Without it, output beyond SSM's inline limits comes back cut, flagged `truncated`. */
  readonly output?: SsmOutputBucket;
  /** SendCommand `TimeoutSeconds`: how long SSM tries to deliver to a node that is offline. Default 600. */
  readonly deliveryTimeoutSeconds?: number;
  /** Execution time-out of commands run without `timeoutMs`. Default one hour, SSM's own default. */
  readonly defaultTimeoutMs?: number;
  /**
   * Poll back-off: first and largest delay between GetCommandInvocation calls. Default 100 ms
   * (doubling, with jitter), 5 s: most of a clone's commands end within a second, and a clone
   * runs some hundreds of them, so the first polls come early.
   */
  readonly pollDelayMs?: { readonly initial?: number; readonly max?: number };
  /** Throttled calls, and invocations not yet visible after SendCommand, are retried this often. Default 8. */
  readonly maxRetries?: number;
  /**
   * Largest file getFile moves without an output bucket, in pieces of 16 KiB, one command
   * each. Default 256 KiB: configuration files, not data sets.
   */
  readonly maxInlineFileBytes?: number;
  /**
   * Largest file putFile writes, in pieces of 24 KiB, one command each (SSM carries input only
   * inside commands). Default 64 MiB: a package file of the store is a few hundred KiB to a few
   * MiB; a data set belongs in a snapshot restore, not here.
   */
  readonly maxPutFileBytes?: number;
  /** Largest file getFile reads through the output bucket. Default 64 MiB. */
  readonly maxFileBytes?: number;
  /**
   * Largest standard output `stream` accepts (a snapshot's tar archive). SSM cannot stream: the
   * output is kept in a file on the host, then held whole here, as base64 and as bytes, so
   * this bounds both the host's temporary space and this process's memory. Default 128 MiB.
   */
  readonly maxStreamBytes?: number;
  /** Injected for tests: how to wait, what time it is, and the jitter source. */
  readonly sleep?: (ms: number) => Promise<void>;
  readonly now?: () => number;
  readonly random?: () => number;
}

const DOCUMENT = 'AWS-RunShellScript';
// GetCommandInvocation returns the first 24,000 characters of stdout and 8,000 of stderr; the
// agent marks a cut with these trailers (amazon-ssm-agent, iohandler TruncateOutput).
const INLINE_STDOUT = 24_000;
const INLINE_STDERR = 8_000;
const STDOUT_CUT = '---Output truncated---';
const STDERR_CUT = '---Error truncated----';
/** AWS-RunShellScript's executionTimeout range, in seconds. */
const MAX_EXECUTION_SECONDS = 172_800;
/**
 * Data sent inside one command (stdin, a piece of a file), before base64. Parameters travel in
 * the SendCommand request itself; 32 KiB of base64 per command stays far from its size limits.
 */
const PUT_PIECE = 24 * 1024;
/** A piece of a file read per command: its base64 (with line breaks) stays under 24,000 characters. */
const GET_PIECE = 16 * 1024;
/** What the stream script prints on stderr when it refuses an output over the limit. */
const STREAM_TOO_LARGE = 'persona: stream output over the limit';

const TERMINAL_STATUSES = new Set(['Success', 'Failed', 'TimedOut', 'Cancelled']);
const TERMINAL_DETAILS = new Set([
  'Success',
  'Failed',
  'TimedOut',
  'ExecutionTimedOut',
  'DeliveryTimedOut',
  'Cancelled',
  'Undeliverable',
  'Terminated',
  'InvalidPlatform',
  'AccessDenied',
]);
const THROTTLING = new Set([
  'ThrottlingException',
  'Throttling',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'ThrottledException',
]);

export class SsmTransport implements Transport {
  readonly target: string;
  private readonly instanceId: string;
  private readonly ssm: SSMClient;
  private readonly output: SsmOutputBucket | undefined;
  private readonly deliveryTimeoutSeconds: number;
  private readonly defaultTimeoutMs: number;
  private readonly initialDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly maxRetries: number;
  private readonly maxInlineFileBytes: number;
  private readonly maxPutFileBytes: number;
  private readonly maxFileBytes: number;
  private readonly maxStreamBytes: number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly now: () => number;
  private readonly random: () => number;

  constructor(options: SsmTransportOptions) {
    if (!/^(i-[0-9a-f]{8}([0-9a-f]{9})?|mi-[0-9a-f]{17})$/.test(options.instanceId)) {
      throw new InvalidInputError(`${options.instanceId} is not an EC2 instance id or a managed node id`, [
        { path: 'instanceId', message: 'expected i-... or mi-...' },
      ]);
    }
    this.instanceId = options.instanceId;
    this.target = `ssm://${options.instanceId}`;
    this.ssm = options.ssm;
    this.output = options.output;
    // SSM accepts 30 s to 30 days for TimeoutSeconds.
    this.deliveryTimeoutSeconds = Math.min(2_592_000, Math.max(30, options.deliveryTimeoutSeconds ?? 600));
    this.defaultTimeoutMs = options.defaultTimeoutMs ?? 3_600_000;
    this.initialDelayMs = options.pollDelayMs?.initial ?? 100;
    this.maxDelayMs = options.pollDelayMs?.max ?? 5000;
    this.maxRetries = options.maxRetries ?? 8;
    this.maxInlineFileBytes = options.maxInlineFileBytes ?? 256 * 1024;
    this.maxPutFileBytes = options.maxPutFileBytes ?? 64 * 1024 * 1024;
    this.maxFileBytes = options.maxFileBytes ?? 64 * 1024 * 1024;
    this.maxStreamBytes = options.maxStreamBytes ?? 128 * 1024 * 1024;
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.now = options.now ?? Date.now;
    this.random = options.random ?? Math.random;
  }

  async run(command: string, options: RunOptions = {}): Promise<RunResult> {
    const script = this.withStdin(shellCommand(command, options.env), options.stdin);
    return this.invoke(script, command, options.timeoutMs);
  }

  /**
   * SSM cannot stream: the command runs to its end, its stdout comes back in one piece (through
   * a temporary file and base64, so binary output such as a tar archive survives the agent's
   * text handling), and is then offered as a Readable. With `input`, the command is sent only
   * once the caller has ended stdin, with what was written as its standard input.
   */
  async stream(command: string, options: StreamOptions = {}): Promise<StreamHandle> {
    const stdout = new PassThrough();
    const stdin = new PassThrough();
    const input = options.input ? collect(stdin, PUT_PIECE, this.target) : Promise.resolve(undefined);
    if (!options.input) stdin.end();
    const done = (async () => {
      try {
        const data = await input;
        const inner = this.withStdin(shellCommand(command, options.env), data);
        const limit = this.maxStreamBytes;
        // At most one byte over the limit reaches the file: enough to know it was exceeded.
        // The command's own exit code is kept apart, since head ends the pipeline.
        const script = [
          't=$(mktemp) || exit 125',
          `trap 'rm -f "$t" "$t.rc"' EXIT`,
          `{ ${inner}; echo $? > "$t.rc"; } | head -c ${limit + 1} > "$t"`,
          'rc=$(cat "$t.rc" 2>/dev/null) || rc=141',
          `if [ "$(wc -c < "$t" | tr -d ' ')" -gt ${limit} ]; then echo '${STREAM_TOO_LARGE}' >&2; exit ${FILE_EXIT.TOO_LARGE}; fi`,
          'base64 "$t"',
          'exit $rc',
        ].join('\n');
        const result = await this.invoke(script, command, options.timeoutMs);
        if (result.exitCode === FILE_EXIT.TOO_LARGE && result.stderr.endsWith(`${STREAM_TOO_LARGE}\n`)) {
          throw new TooLargeError(
            `output of "${describeCommand(command)}" on ${this.target} is over the ${limit} bytes an SSM stream can carry`,
            limit,
          );
        }
        if (result.truncated) throw this.outputTooLarge(command);
        stdout.end(Buffer.from(result.stdout, 'base64'));
        return { exitCode: result.exitCode, stderr: result.stderr };
      } catch (error) {
        // Readers of stdout see it end; the reason is in `done`.
        stdout.end();
        throw error;
      }
    })();
    return { stdout, stdin, done };
  }

  /**
   * In pieces of 24 KiB, each one command appending its base64 to a temporary file beside the
   * target; the last checks the size, sets the mode and renames. S3 is not used for uploads:
   * fetching from it would need the AWS CLI or a presigned URL and curl on the host.
   */
  async putFile(path: string, content: Uint8Array, options: { readonly mode?: number } = {}): Promise<void> {
    checkPath(path, 'path');
    if (options.mode !== undefined) octalMode(options.mode);
    if (content.byteLength > this.maxPutFileBytes) {
      throw new TooLargeError(
        `${path} is ${content.byteLength} bytes; SSM carries files inside commands, up to ${this.maxPutFileBytes} bytes`,
        this.maxPutFileBytes,
      );
    }
    const data = toBuffer(content);
    const p = shellQuote(path);
    const temp = shellQuote(`${path}.persona-${randomBytes(6).toString('hex')}`);
    const pieces = Math.max(1, Math.ceil(data.length / PUT_PIECE));
    const chmod =
      options.mode === undefined
        ? `if [ -e ${p} ]; then chmod -- "$(stat -c %a -- ${p})" ${temp}; else chmod -- 0644 ${temp}; fi`
        : `chmod -- ${octalMode(options.mode)} ${temp}`;
    for (let i = 0; i < pieces; i++) {
      const piece = data.subarray(i * PUT_PIECE, (i + 1) * PUT_PIECE).toString('base64');
      const lines = ['set -e', 'umask 077'];
      if (i === 0) lines.push(`: > ${temp}`);
      lines.push(`printf '%s' ${shellQuote(piece)} | base64 -d >> ${temp}`);
      if (i === pieces - 1) {
        lines.push(
          `[ "$(wc -c < ${temp} | tr -d ' ')" = ${data.length} ] || { echo 'size mismatch after upload' >&2; exit 1; }`,
          chmod,
          `mv -f -- ${temp} ${p}`,
        );
      }
      const result = await this.invoke(lines.join('\n'), `write ${path}`, undefined);
      if (result.exitCode !== 0) {
        // The host answered, so it can also remove the partial file. (After a transport
        // failure it may be unreachable: a stray temporary file is better than a long wait.)
        await this.invoke(`rm -f -- ${temp}`, `rm ${temp}`, undefined).catch(() => {});
        throw new TransportError(
          `cannot write ${path} on ${this.target}: ${result.stderr.trim() || `exit code ${result.exitCode}`}`,
          'failed',
          this.target,
        );
      }
    }
  }

  /**
   * With an output bucket, one command prints the file as base64 and the full output is read
   * from S3. Without one, pieces of 16 KiB per command, so each stays within the inline limit.
   */
  async getFile(path: string): Promise<Uint8Array> {
    const p = shellQuote(checkPath(path, 'path'), 'path');
    const limit = this.output ? this.maxFileBytes : this.maxInlineFileBytes;
    const piece = this.output ? limit : GET_PIECE;
    const check = [
      `[ -e ${p} ] || exit ${FILE_EXIT.MISSING}`,
      `[ -f ${p} ] || { echo 'not a regular file' >&2; exit 1; }`,
      `s=$(wc -c < ${p} | tr -d ' ')`,
      `[ "$s" -le ${limit} ] || { echo "$s" >&2; exit ${FILE_EXIT.TOO_LARGE}; }`,
      'echo "$s"',
    ];
    const first = await this.readPiece(path, [...check, this.pieceCommand(p, piece, 0)].join('\n'));
    const newline = first.indexOf('\n');
    const size = Number(first.slice(0, newline));
    const parts = [Buffer.from(first.slice(newline + 1), 'base64')];
    for (let i = 1; i * piece < size; i++) {
      parts.push(Buffer.from(await this.readPiece(path, this.pieceCommand(p, piece, i)), 'base64'));
    }
    const bytes = Buffer.concat(parts);
    if (newline === -1 || !Number.isInteger(size) || bytes.length !== size) {
      throw new TransportError(
        `cannot read ${path} on ${this.target}: got ${bytes.length} bytes of ${size} (did the file change?)`,
        'failed',
        this.target,
      );
    }
    return new Uint8Array(bytes);
  }

  async close(): Promise<void> {}

  private pieceCommand(p: string, piece: number, index: number): string {
    return piece >= this.maxFileBytes
      ? `base64 -- ${p}`
      : `dd if=${p} bs=${piece} skip=${index} count=1 2>/dev/null | base64`;
  }

  private async readPiece(path: string, script: string): Promise<string> {
    const result = await this.invoke(script, `read ${path}`, undefined);
    if (result.exitCode === FILE_EXIT.MISSING)
      throw new NotFoundError(`no file ${path} on ${this.target}`, path);
    if (result.exitCode === FILE_EXIT.TOO_LARGE) {
      const limit = this.output ? this.maxFileBytes : this.maxInlineFileBytes;
      throw new TooLargeError(
        `${path} on ${this.target} is ${result.stderr.trim()} bytes, over the ${limit} bytes SSM file transfer limit` +
          (this.output ? '' : ' (configure an output bucket to read larger files)'),
        limit,
      );
    }
    if (result.exitCode !== 0) {
      throw new TransportError(
        `cannot read ${path} on ${this.target}: ${result.stderr.trim() || `exit code ${result.exitCode}`}`,
        'failed',
        this.target,
      );
    }
    if (result.truncated) throw this.outputTooLarge(`read ${path}`);
    return result.stdout;
  }

  private withStdin(script: string, stdin: string | Uint8Array | undefined): string {
    if (stdin === undefined) return script;
    const data = toBuffer(stdin);
    if (data.length > PUT_PIECE) {
      throw new TooLargeError(
        `standard input of ${data.length} bytes does not fit in an SSM command (at most ${PUT_PIECE}); ` +
          'write it with putFile and redirect from the file',
        PUT_PIECE,
      );
    }
    return `printf '%s' ${shellQuote(data.toString('base64'))} | base64 -d | ${script}`;
  }

  private outputTooLarge(command: string): TooLargeError {
    return new TooLargeError(
      `output of "${describeCommand(command)}" on ${this.target} exceeded SSM's inline limit of ` +
        `${INLINE_STDOUT} characters; configure an output bucket to receive it whole`,
      INLINE_STDOUT,
    );
  }

  /** `base/2 + random·base/2` with base doubling per attempt up to the cap ("equal jitter"). */
  private backoff(attempt: number): number {
    const base = Math.min(this.maxDelayMs, this.initialDelayMs * 2 ** attempt);
    return Math.round(base / 2 + (this.random() * base) / 2);
  }

  private async invoke(script: string, command: string, timeoutMs: number | undefined): Promise<RunResult> {
    const started = this.now();
    const executionSeconds = Math.min(
      MAX_EXECUTION_SECONDS,
      Math.max(1, Math.ceil((timeoutMs ?? this.defaultTimeoutMs) / 1000)),
    );
    const prefix = this.outputPrefix();
    const sent = await this.retryThrottled('SendCommand', () =>
      this.ssm.send(
        new SendCommandCommand({
          DocumentName: DOCUMENT,
          InstanceIds: [this.instanceId],
          Parameters: { commands: [script], executionTimeout: [String(executionSeconds)] },
          TimeoutSeconds: this.deliveryTimeoutSeconds,
          Comment: `persona: ${describeCommand(command, 90)}`,
          ...(this.output ? { OutputS3BucketName: this.output.bucket } : {}),
          ...(this.output && prefix ? { OutputS3KeyPrefix: prefix } : {}),
        }),
      ),
    );
    const commandId = sent.Command?.CommandId;
    if (!commandId) {
      throw new TransportError(
        `SSM accepted a command for ${this.target} but returned no command id`,
        'failed',
        this.target,
      );
    }
    // SSM ends the invocation itself (DeliveryTimedOut, ExecutionTimedOut); this deadline only
    // guards against polling forever if it never says so.
    const deadline = started + (this.deliveryTimeoutSeconds + executionSeconds) * 1000 + 60_000;
    let polls = 0;
    let throttled = 0;
    let missing = 0;
    for (;;) {
      await this.sleep(this.backoff(polls++));
      let invocation: GetCommandInvocationCommandOutput;
      try {
        invocation = await this.ssm.send(
          new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: this.instanceId }),
        );
      } catch (error) {
        if (isThrottling(error) && throttled++ < this.maxRetries) continue;
        // GetCommandInvocation is eventually consistent: right after SendCommand the invocation
        // may not exist yet.
        if (nameOf(error) === 'InvocationDoesNotExist' && missing++ < this.maxRetries) continue;
        throw this.apiError(error, 'GetCommandInvocation');
      }
      const status = invocation.Status ?? '';
      const details = invocation.StatusDetails ?? '';
      if (TERMINAL_STATUSES.has(status) || TERMINAL_DETAILS.has(details)) {
        try {
          return await this.finish(invocation, commandId, command, executionSeconds, started);
        } finally {
          // Whatever the outcome: a command that failed or timed out may have printed too.
          if (this.output) await this.discardOutput(commandId);
        }
      }
      if (this.now() > deadline) {
        await this.ssm
          .send(new CancelCommandCommand({ CommandId: commandId, InstanceIds: [this.instanceId] }))
          .catch(() => {});
        throw new TransportError(
          `command ${commandId} on ${this.target} did not finish in time (status ${status}/${details}); cancelled: ${describeCommand(command)}`,
          'timeout',
          this.target,
        );
      }
    }
  }

  private async finish(
    invocation: GetCommandInvocationCommandOutput,
    commandId: string,
    command: string,
    executionSeconds: number,
    started: number,
  ): Promise<RunResult> {
    const status = invocation.Status ?? '';
    const details = invocation.StatusDetails ?? '';
    const what = `command ${commandId} on ${this.target} (${describeCommand(command)})`;
    if (details === 'Undeliverable' || details === 'DeliveryTimedOut') {
      throw new TransportError(
        `${what} was not delivered (${details}): the node is not online — its SSM Agent is stopped, ` +
          'cannot reach the SSM endpoints, or the machine is off',
        'unreachable',
        this.target,
      );
    }
    if (status === 'TimedOut' || details === 'ExecutionTimedOut') {
      throw new TransportError(
        `${what} timed out after ${executionSeconds} s and was stopped by SSM`,
        'timeout',
        this.target,
      );
    }
    if (details === 'AccessDenied') {
      throw new TransportError(`${what} was denied: ${details}`, 'auth', this.target);
    }
    const code = invocation.ResponseCode ?? -1;
    if ((status !== 'Success' && status !== 'Failed') || code < 0) {
      throw new TransportError(
        `${what} did not run to completion: ${status}/${details}`,
        'failed',
        this.target,
      );
    }
    let stdout = invocation.StandardOutputContent ?? '';
    let stderr = invocation.StandardErrorContent ?? '';
    const stdoutCut = stdout.length >= INLINE_STDOUT || stdout.endsWith(STDOUT_CUT);
    const stderrCut = stderr.length >= INLINE_STDERR || stderr.endsWith(STDERR_CUT);
    const truncated = (stdoutCut || stderrCut) && !this.output;
    if (this.output) {
      const full = await Promise.all([
        stdoutCut ? this.readOutput(commandId, 'stdout') : undefined,
        stderrCut ? this.readOutput(commandId, 'stderr') : undefined,
      ]);
      stdout = full[0] ?? stdout;
      stderr = full[1] ?? stderr;
    }
    return {
      exitCode: code,
      stdout,
      stderr,
      durationMs: this.now() - started,
      ...(truncated ? { truncated: true } : {}),
    };
  }

  private outputPrefix(): string {
    return (this.output?.prefix ?? '').replace(/^\/+|\/+$/g, '');
  }

  /**
   * The agent uploads each plugin's output to
   * `<OutputS3KeyPrefix>/<CommandId>/<InstanceId>/awsrunShellScript/0.awsrunShellScript/{stdout,stderr}`:
   * the prefix the agent reports for the plugin is `<prefix>/<CommandId>/<InstanceId>/awsrunShellScript`
   * (aws/amazon-ssm-agent#106; the CommandPlugin.OutputS3KeyPrefix API reference shows the
   * `awsrunShellScript` plugin folder), and the step folder is `0.awsrunShellScript`.
   *
   * Called only for a stream that was cut inline, which is never empty, so the object must be
   * there: the agent uploads it before it reports the plugin's result, and a failed upload
   * (the node's credentials may not write to the bucket) is only written to the agent's log.
   */
  private async readOutput(commandId: string, stream: 'stdout' | 'stderr'): Promise<string> {
    const output = this.output as SsmOutputBucket;
    const key = this.outputKey(commandId, stream);
    try {
      const object = await output.s3.send(new GetObjectCommand({ Bucket: output.bucket, Key: key }));
      return (await object.Body?.transformToString('utf8')) ?? '';
    } catch (error) {
      if (nameOf(error) === 'NoSuchKey' || nameOf(error) === 'NotFound') {
        throw new TransportError(
          `the ${stream} of command ${commandId} on ${this.target} is over SSM's inline limit and ` +
            `the node did not write it to s3://${output.bucket}/${key}: the node's instance profile ` +
            `needs s3:PutObject on that bucket and prefix (and the bucket must be in the node's reach)`,
          'failed',
          this.target,
          { cause: error },
        );
      }
      throw new TransportError(
        `cannot read the ${stream} of command ${commandId} from s3://${output.bucket}/${key}: ${messageOf(error)}`,
        'failed',
        this.target,
        { cause: error },
      );
    }
  }

  private outputKey(commandId: string, stream: 'stdout' | 'stderr'): string {
    const prefix = this.outputPrefix();
    return `${prefix ? `${prefix}/` : ''}${commandId}/${this.instanceId}/awsrunShellScript/0.awsrunShellScript/${stream}`;
  }

  /**
   * The agent uploads every non-empty stream, cut or not. What a command printed (sealed
   * secrets before sealing, a host's configuration tree) is not left in the bucket once read;
   * a delete that fails is left to the bucket's expiry rule.
   */
  private async discardOutput(commandId: string): Promise<void> {
    const output = this.output as SsmOutputBucket;
    await Promise.allSettled(
      (['stdout', 'stderr'] as const).map((stream) =>
        output.s3.send(
          new DeleteObjectCommand({ Bucket: output.bucket, Key: this.outputKey(commandId, stream) }),
        ),
      ),
    );
  }

  private async retryThrottled<T>(operation: string, call: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await call();
      } catch (error) {
        // A throttled SendCommand was not accepted, so sending it again cannot run it twice.
        if (isThrottling(error) && attempt < this.maxRetries) {
          await this.sleep(this.backoff(attempt));
          continue;
        }
        throw this.apiError(error, operation);
      }
    }
  }

  private apiError(error: unknown, operation: string): TransportError {
    const name = nameOf(error);
    const cause = { cause: error };
    if (name === 'InvalidInstanceId') {
      return new TransportError(
        `${this.instanceId} cannot receive commands: it is not a managed node that is online ` +
          '(not registered with Systems Manager, its SSM Agent is not running or cannot reach the ' +
          'SSM endpoints, or the instance is stopping or terminated)',
        'unreachable',
        this.target,
        cause,
      );
    }
    if (
      name === 'AccessDeniedException' ||
      name === 'UnrecognizedClientException' ||
      name === 'ExpiredTokenException'
    ) {
      return new TransportError(
        `SSM refused ${operation} for ${this.target}: ${messageOf(error)}`,
        'auth',
        this.target,
        cause,
      );
    }
    if (isThrottling(error)) {
      return new TransportError(
        `SSM kept throttling ${operation} for ${this.target} after ${this.maxRetries} retries`,
        'failed',
        this.target,
        cause,
      );
    }
    return new TransportError(
      `SSM ${operation} failed for ${this.target}: ${name ?? 'error'}: ${messageOf(error)}`,
      'failed',
      this.target,
      cause,
    );
  }
}

/** What is written to `stream` until it ends, refusing more than `limit` bytes. */
function collect(stream: PassThrough, limit: number, target: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    stream.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        stream.destroy();
        reject(
          new TooLargeError(
            `standard input over ${limit} bytes does not fit in an SSM command to ${target}; put it with putFile`,
            limit,
          ),
        );
      } else {
        chunks.push(chunk);
      }
    });
    stream.once('end', () => resolve(Buffer.concat(chunks)));
  });
}

function nameOf(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'name' in error ? String(error.name) : undefined;
}

function isThrottling(error: unknown): boolean {
  if (THROTTLING.has(nameOf(error) ?? '')) return true;
  const retryable = (error as { $retryable?: { throttling?: boolean } } | null)?.$retryable;
  return retryable?.throttling === true;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
