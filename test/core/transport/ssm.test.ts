import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { DeleteObjectCommand, GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import {
  CancelCommandCommand,
  GetCommandInvocationCommand,
  type GetCommandInvocationCommandOutput,
  InvalidInstanceId,
  InvocationDoesNotExist,
  SendCommandCommand,
  type SendCommandCommandInput,
  type SendCommandCommandOutput,
  SSMClient,
  ThrottlingException,
} from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import tar from 'tar-stream';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { InvalidInputError, NotFoundError, TooLargeError } from '../../../core/errors.js';
import { TransportError } from '../../../core/transport/errors.js';
import { SsmTransport, type SsmTransportOptions } from '../../../core/transport/ssm.js';

const INSTANCE = 'mi-0123456789abcdef0';
const COMMAND_ID = '2d6f3b8e-5c1a-4e7b-9f0d-1a2b3c4d5e6f';
const ssm = mockClient(SSMClient);
const s3 = mockClient(S3Client);
const metadata = {
  httpStatusCode: 200,
  requestId: 'f1c2b3a4-0000-4000-8000-000000000000',
  attempts: 1,
  totalRetryDelay: 0,
};

/** A SendCommand answer as SSM gives it, right after accepting the command. */
function sent(input: SendCommandCommandInput, commandId = COMMAND_ID): SendCommandCommandOutput {
  return {
    $metadata: metadata,
    Command: {
      CommandId: commandId,
      DocumentName: 'AWS-RunShellScript',
      DocumentVersion: '$DEFAULT',
      Comment: input.Comment ?? '',
      ExpiresAfter: new Date('2026-11-25T12:10:00.000Z'),
      ...(input.Parameters ? { Parameters: input.Parameters } : {}),
      InstanceIds: input.InstanceIds ?? [],
      Targets: [],
      RequestedDateTime: new Date('2026-11-25T12:00:00.000Z'),
      Status: 'Pending',
      StatusDetails: 'Pending',
      OutputS3Region: 'eu-west-1',
      OutputS3BucketName: input.OutputS3BucketName ?? '',
      OutputS3KeyPrefix: input.OutputS3KeyPrefix ?? '',
      MaxConcurrency: '50',
      MaxErrors: '0',
      TargetCount: 1,
      CompletedCount: 0,
      ErrorCount: 0,
      DeliveryTimedOutCount: 0,
      ServiceRole: '',
      NotificationConfig: { NotificationArn: '', NotificationEvents: [], NotificationType: 'Command' },
      CloudWatchOutputConfig: { CloudWatchLogGroupName: '', CloudWatchOutputEnabled: false },
      TimeoutSeconds: input.TimeoutSeconds ?? 3600,
      TriggeredAlarms: [],
    },
  };
}

/** A GetCommandInvocation answer; in progress unless told otherwise. */
function invocation(
  fields: Partial<GetCommandInvocationCommandOutput> = {},
): GetCommandInvocationCommandOutput {
  return {
    $metadata: metadata,
    CommandId: COMMAND_ID,
    InstanceId: INSTANCE,
    Comment: '',
    DocumentName: 'AWS-RunShellScript',
    DocumentVersion: '$DEFAULT',
    PluginName: 'aws:runShellScript',
    ResponseCode: -1,
    ExecutionStartDateTime: '2026-11-25T12:00:01.104Z',
    ExecutionElapsedTime: 'PT0.512S',
    ExecutionEndDateTime: '',
    Status: 'InProgress',
    StatusDetails: 'InProgress',
    StandardOutputContent: '',
    StandardOutputUrl: '',
    StandardErrorContent: '',
    StandardErrorUrl: '',
    CloudWatchOutputConfig: { CloudWatchLogGroupName: '', CloudWatchOutputEnabled: false },
    ...fields,
  };
}

function succeeded(stdout: string, stderr = ''): GetCommandInvocationCommandOutput {
  return invocation({
    ResponseCode: 0,
    Status: 'Success',
    StatusDetails: 'Success',
    ExecutionEndDateTime: '2026-11-25T12:00:01.616Z',
    StandardOutputContent: stdout,
    StandardErrorContent: stderr,
  });
}

const throttled = () =>
  new ThrottlingException({
    $metadata: { httpStatusCode: 400 },
    message: 'Rate exceeded',
    Message: 'Rate exceeded',
  });
const notYet = () => new InvocationDoesNotExist({ $metadata: { httpStatusCode: 400 }, message: '' });

/** A clock that moves only when the transport sleeps, and the sleeps it asked for. */
function fakeTime() {
  const time = { now: 0, sleeps: [] as number[] };
  return {
    time,
    options: {
      sleep: async (ms: number) => {
        time.sleeps.push(ms);
        time.now += ms;
      },
      now: () => time.now,
      random: () => 0.5,
    },
  };
}

function transport(options: Partial<SsmTransportOptions> = {}) {
  const { time, options: clock } = fakeTime();
  const t = new SsmTransport({
    instanceId: INSTANCE,
    ssm: new SSMClient({ region: 'eu-west-1' }),
    ...clock,
    ...options,
  });
  return { ssm: t, time };
}

function sentInputs(): SendCommandCommandInput[] {
  return ssm.commandCalls(SendCommandCommand).map((call) => call.args[0].input);
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

beforeEach(() => {
  ssm.reset();
  s3.reset();
});

describe('SsmTransport.run', () => {
  it('sends AWS-RunShellScript to the node and polls with growing back-off until the command succeeds', async () => {
    ssm.on(SendCommandCommand).callsFake((input: SendCommandCommandInput) => sent(input));
    ssm
      .on(GetCommandInvocationCommand)
      .resolvesOnce(invocation({ Status: 'Pending', StatusDetails: 'Pending' }))
      .resolvesOnce(invocation())
      .resolvesOnce(invocation())
      .resolves(succeeded('Linux\n'));
    const { ssm: t, time } = transport();

    const result = await t.run('uname -s', { timeoutMs: 30_000 });

    expect(result).toMatchObject({ exitCode: 0, stdout: 'Linux\n', stderr: '' });
    expect(result.truncated).toBeUndefined();
    expect(t.target).toBe(`ssm://${INSTANCE}`);
    const [input] = sentInputs();
    expect(input).toMatchObject({
      DocumentName: 'AWS-RunShellScript',
      InstanceIds: [INSTANCE],
      TimeoutSeconds: 600,
      Parameters: { commands: ["sh -c 'uname -s'"], executionTimeout: ['30'] },
    });
    expect(input?.OutputS3BucketName).toBeUndefined();
    expect(ssm.commandCalls(GetCommandInvocationCommand)[0]?.args[0].input).toEqual({
      CommandId: COMMAND_ID,
      InstanceId: INSTANCE,
    });
    expect(time.sleeps).toEqual([75, 150, 300, 600]);
  });

  it('keeps the back-off jittered within [base/2, base] and capped', async () => {
    ssm.on(SendCommandCommand).callsFake((input: SendCommandCommandInput) => sent(input));
    const polls = ssm.on(GetCommandInvocationCommand);
    for (let i = 0; i < 7; i++) polls.resolvesOnce(invocation());
    polls.resolves(succeeded(''));
    const random = [0, 1, 0.25, 0.9, 0, 1, 0.5, 0.1];
    const { ssm: t, time } = transport({ random: () => random.shift() ?? 0 });

    await t.run('true');

    const bases = [100, 200, 400, 800, 1600, 3200, 5000, 5000];
    expect(time.sleeps).toHaveLength(8);
    time.sleeps.forEach((ms, i) => {
      expect(ms).toBeGreaterThanOrEqual((bases[i] ?? 0) / 2);
      expect(ms).toBeLessThanOrEqual(bases[i] ?? 0);
    });
  });

  it('sends env values and standard input so that the shell reads them as data', async () => {
    ssm.on(SendCommandCommand).callsFake((input: SendCommandCommandInput) => sent(input));
    ssm.on(GetCommandInvocationCommand).resolves(succeeded(''));
    const { ssm: t } = transport();
    const env = { TRICKY: `'; echo pwned; '$(echo pwned)\`echo pwned\`` };

    await t.run('printenv TRICKY; cat', { env, stdin: 'in\n' });

    // What the agent would run, run here by a real shell.
    const script = sentInputs()[0]?.Parameters?.commands?.[0] ?? '';
    expect(execFileSync('sh', ['-c', script], { encoding: 'utf8' })).toBe(`${env.TRICKY}\nin\n`);
  });

  it('retries throttled SendCommand and GetCommandInvocation calls, backing off, then succeeds', async () => {
    ssm
      .on(SendCommandCommand)
      .rejectsOnce(throttled())
      .rejectsOnce(throttled())
      .callsFake((input: SendCommandCommandInput) => sent(input));
    ssm.on(GetCommandInvocationCommand).rejectsOnce(throttled()).resolves(succeeded('ok\n'));
    const { ssm: t, time } = transport();

    const result = await t.run('echo ok');

    expect(result.stdout).toBe('ok\n');
    expect(ssm.commandCalls(SendCommandCommand)).toHaveLength(3);
    expect(ssm.commandCalls(GetCommandInvocationCommand)).toHaveLength(2);
    expect(time.sleeps[1]).toBeGreaterThan(time.sleeps[0] ?? 0);
  });

  it('gives up on throttling after the bounded number of retries', async () => {
    ssm.on(SendCommandCommand).rejects(throttled());
    const { ssm: t } = transport({ maxRetries: 3 });

    const error = await rejection(t.run('true'));

    expect(error).toBeInstanceOf(TransportError);
    expect(error).toMatchObject({ reason: 'failed' });
    expect((error as Error).message).toContain('throttling');
    expect(ssm.commandCalls(SendCommandCommand)).toHaveLength(4);
  });

  it('waits for an invocation that does not exist yet right after SendCommand', async () => {
    ssm.on(SendCommandCommand).callsFake((input: SendCommandCommandInput) => sent(input));
    ssm
      .on(GetCommandInvocationCommand)
      .rejectsOnce(notYet())
      .rejectsOnce(notYet())
      .resolvesOnce(invocation())
      .resolves(succeeded('late\n'));
    const { ssm: t } = transport();

    expect((await t.run('echo late')).stdout).toBe('late\n');
    expect(ssm.commandCalls(GetCommandInvocationCommand)).toHaveLength(4);
  });

  it('reports a command stopped by its execution timeout as a timeout', async () => {
    ssm.on(SendCommandCommand).callsFake((input: SendCommandCommandInput) => sent(input));
    ssm
      .on(GetCommandInvocationCommand)
      .resolvesOnce(invocation())
      .resolves(invocation({ Status: 'TimedOut', StatusDetails: 'ExecutionTimedOut', ResponseCode: -1 }));
    const { ssm: t } = transport();

    const error = await rejection(t.run('sleep 100', { timeoutMs: 5000 }));

    expect(error).toBeInstanceOf(TransportError);
    expect(error).toMatchObject({ reason: 'timeout', target: `ssm://${INSTANCE}` });
    expect((error as Error).message).toContain('5 s');
    expect(sentInputs()[0]?.Parameters?.executionTimeout).toEqual(['5']);
  });

  it('cancels the command and reports a timeout when SSM never reaches a final status', async () => {
    ssm.on(SendCommandCommand).callsFake((input: SendCommandCommandInput) => sent(input));
    ssm.on(GetCommandInvocationCommand).resolves(invocation());
    ssm.on(CancelCommandCommand).resolves({ $metadata: metadata });
    const { ssm: t, time } = transport({ deliveryTimeoutSeconds: 30 });

    const error = await rejection(t.run('true', { timeoutMs: 1000 }));

    expect(error).toMatchObject({ reason: 'timeout' });
    expect(time.now).toBeGreaterThan(91_000);
    expect(ssm.commandCalls(CancelCommandCommand)[0]?.args[0].input).toEqual({
      CommandId: COMMAND_ID,
      InstanceIds: [INSTANCE],
    });
  });

  it('returns the exit code and standard error of a command that failed on the node', async () => {
    ssm.on(SendCommandCommand).callsFake((input: SendCommandCommandInput) => sent(input));
    ssm.on(GetCommandInvocationCommand).resolves(
      invocation({
        ResponseCode: 2,
        Status: 'Failed',
        StatusDetails: 'Failed',
        ExecutionEndDateTime: '2026-11-25T12:00:01.616Z',
        StandardErrorContent:
          "ls: cannot access '/nope': No such file or directory\nfailed to run commands: exit status 2",
      }),
    );
    const { ssm: t } = transport();

    const result = await t.run('ls /nope');

    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain('No such file or directory');
  });

  it('reports a node that is not online or not registered as unreachable', async () => {
    ssm.on(SendCommandCommand).rejects(
      new InvalidInstanceId({
        $metadata: { httpStatusCode: 400 },
        message: `Instances [[${INSTANCE}]] not in a valid state for account 123456789012`,
      }),
    );
    const { ssm: t } = transport();

    const error = await rejection(t.run('true'));

    expect(error).toBeInstanceOf(TransportError);
    expect(error).toMatchObject({ reason: 'unreachable', code: 'TRANSPORT' });
    expect((error as Error).message).toContain(INSTANCE);
    expect((error as Error).message).toContain('not a managed node that is online');
  });

  it('reports a command SSM could not deliver as unreachable', async () => {
    ssm.on(SendCommandCommand).callsFake((input: SendCommandCommandInput) => sent(input));
    ssm
      .on(GetCommandInvocationCommand)
      .resolves(invocation({ Status: 'Failed', StatusDetails: 'Undeliverable' }));
    const { ssm: t } = transport();

    expect(await rejection(t.run('true'))).toMatchObject({ reason: 'unreachable' });
  });

  it('reads output over the inline limit from the output bucket', async () => {
    const full = 'x'.repeat(30_000);
    const inline = `${full.slice(0, 24_000 - 23)}\n---Output truncated---`;
    ssm.on(SendCommandCommand).callsFake((input: SendCommandCommandInput) => sent(input));
    ssm.on(GetCommandInvocationCommand).resolves(succeeded(inline));
    s3.on(GetObjectCommand, {
      Bucket: 'persona-output',
      Key: `runs/${COMMAND_ID}/${INSTANCE}/awsrunShellScript/0.awsrunShellScript/stdout`,
    }).resolves({ $metadata: metadata, Body: textBody(full) });
    const { ssm: t } = transport({
      output: { bucket: 'persona-output', prefix: 'runs/', s3: new S3Client({ region: 'eu-west-1' }) },
    });

    const result = await t.run('big-report');

    expect(result.stdout).toBe(full);
    expect(result.truncated).toBeUndefined();
    expect(sentInputs()[0]).toMatchObject({
      OutputS3BucketName: 'persona-output',
      OutputS3KeyPrefix: 'runs',
    });
  });

  it('deletes both output objects once the invocation is read: they hold what the host printed', async () => {
    ssm.on(SendCommandCommand).callsFake((input: SendCommandCommandInput) => sent(input));
    ssm.on(GetCommandInvocationCommand).resolves(succeeded('short\n'));
    const { ssm: t } = transport({
      output: { bucket: 'persona-output', prefix: 'runs', s3: new S3Client({ region: 'eu-west-1' }) },
    });

    await t.run('echo short');

    const base = `runs/${COMMAND_ID}/${INSTANCE}/awsrunShellScript/0.awsrunShellScript`;
    expect(s3.commandCalls(DeleteObjectCommand).map((c) => c.args[0].input)).toEqual([
      { Bucket: 'persona-output', Key: `${base}/stdout` },
      { Bucket: 'persona-output', Key: `${base}/stderr` },
    ]);
    expect(s3.commandCalls(GetObjectCommand)).toHaveLength(0);
  });

  it('names the bucket and the missing permission when cut output is not in the bucket', async () => {
    const inline = `${'x'.repeat(24_000 - 23)}\n---Output truncated---`;
    ssm.on(SendCommandCommand).callsFake((input: SendCommandCommandInput) => sent(input));
    ssm.on(GetCommandInvocationCommand).resolves(succeeded(inline));
    s3.on(GetObjectCommand).rejects(
      Object.assign(new Error('The specified key does not exist.'), { name: 'NoSuchKey' }),
    );
    const { ssm: t } = transport({
      output: { bucket: 'persona-output', s3: new S3Client({ region: 'eu-west-1' }) },
    });

    const error = await rejection(t.run('big-report'));

    expect(error).toBeInstanceOf(TransportError);
    expect((error as Error).message).toMatch(
      /s3:\/\/persona-output\/.*stdout: the node's instance profile needs s3:PutObject/,
    );
  });

  it('flags output cut at the inline limit when there is no output bucket', async () => {
    const inline = `${'x'.repeat(24_000 - 23)}\n---Output truncated---`;
    ssm.on(SendCommandCommand).callsFake((input: SendCommandCommandInput) => sent(input));
    ssm.on(GetCommandInvocationCommand).resolves(succeeded(inline));
    const { ssm: t } = transport();

    const result = await t.run('big-report');

    expect(result.truncated).toBe(true);
    expect(s3.commandCalls(GetObjectCommand)).toHaveLength(0);
  });

  it('refuses an id that is neither an EC2 instance nor a managed node', () => {
    expect(
      () => new SsmTransport({ instanceId: 'web-1', ssm: new SSMClient({ region: 'eu-west-1' }) }),
    ).toThrow(InvalidInputError);
  });
});

/**
 * A node behind the mocked API: each SendCommand runs its script with the local shell in a
 * scratch folder, and GetCommandInvocation answers with the output cut as the agent cuts it.
 * With a bucket, the full output is stored under SSM's key layout for GetObject.
 */
function fakeNode(bucket?: string) {
  const results = new Map<string, GetCommandInvocationCommandOutput>();
  const objects = new Map<string, string>();
  let next = 0;
  ssm.on(SendCommandCommand).callsFake((input: SendCommandCommandInput) => {
    const commandId = `00000000-0000-4000-8000-${String(++next).padStart(12, '0')}`;
    const script = input.Parameters?.commands?.[0] ?? '';
    let stdout = '';
    let stderr = '';
    let code = 0;
    try {
      stdout = execFileSync('sh', ['-c', script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (error) {
      const e = error as { status: number; stdout: string; stderr: string };
      code = e.status;
      stdout = e.stdout;
      stderr = e.stderr;
    }
    if (bucket) {
      const base = `${input.OutputS3KeyPrefix ? `${input.OutputS3KeyPrefix}/` : ''}${commandId}/${INSTANCE}/awsrunShellScript/0.awsrunShellScript`;
      if (stdout) objects.set(`${base}/stdout`, stdout);
      if (stderr) objects.set(`${base}/stderr`, stderr);
    }
    const cut = (text: string, limit: number, trailer: string) =>
      text.length > limit ? `${text.slice(0, limit - trailer.length)}${trailer}` : text;
    results.set(
      commandId,
      invocation({
        CommandId: commandId,
        ResponseCode: code,
        Status: code === 0 ? 'Success' : 'Failed',
        StatusDetails: code === 0 ? 'Success' : 'Failed',
        StandardOutputContent: cut(stdout, 24_000, '\n---Output truncated---'),
        StandardErrorContent: cut(stderr, 8_000, '\n---Error truncated----'),
      }),
    );
    return sent(input, commandId);
  });
  ssm
    .on(GetCommandInvocationCommand)
    .callsFake((input: { CommandId: string }) => results.get(input.CommandId) ?? Promise.reject(notYet()));
  s3.on(GetObjectCommand).callsFake((input: { Key: string }) => {
    const body = objects.get(input.Key);
    if (body === undefined)
      return Promise.reject(Object.assign(new Error('NoSuchKey'), { name: 'NoSuchKey' }));
    return { $metadata: metadata, Body: textBody(body) };
  });
  return { commands: () => ssm.commandCalls(SendCommandCommand).length };
}

function textBody(text: string): any {
  return { transformToString: async () => text };
}

describe('SsmTransport files and streams', () => {
  let dir: string;
  const bytes = Buffer.from(Array.from({ length: 60_000 }, (_, i) => (i * 13) % 256));

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'persona-ssm-'));
  });

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('puts a file in pieces with its mode and gets the same bytes back without a bucket', async () => {
    const node = fakeNode();
    const { ssm: t } = transport();
    const path = join(dir, 'inline.bin');

    await t.putFile(path, bytes, { mode: 0o640 });
    const afterPut = node.commands();
    const back = await t.getFile(path);

    expect(afterPut).toBe(3); // 60,000 bytes in 24 KiB pieces
    expect(node.commands() - afterPut).toBe(4); // and read back in 16 KiB pieces
    expect(Buffer.from(back).equals(bytes)).toBe(true);
    expect(statSync(path).mode & 0o7777).toBe(0o640);
  });

  it('reads a file in one command through the output bucket', async () => {
    const node = fakeNode('persona-output');
    const path = join(dir, 'via-s3.bin');
    writeFileSync(path, bytes);
    const { ssm: t } = transport({
      output: { bucket: 'persona-output', s3: new S3Client({ region: 'eu-west-1' }) },
    });

    const back = await t.getFile(path);

    expect(Buffer.from(back).equals(bytes)).toBe(true);
    expect(node.commands()).toBe(1);
    expect(s3.commandCalls(GetObjectCommand)[0]?.args[0].input.Key).toMatch(
      /^00000000-0000-4000-8000-000000000001\/mi-0123456789abcdef0\/awsrunShellScript\/0\.awsrunShellScript\/stdout$/,
    );
  });

  it('keeps the mode of a replaced file, and refuses files over the put limit', async () => {
    fakeNode();
    const path = join(dir, 'kept.conf');
    writeFileSync(path, 'v1', { mode: 0o600 });
    const { ssm: t } = transport({ maxPutFileBytes: 1000 });

    await t.putFile(path, Buffer.from('v2'));
    const tooBig = await rejection(t.putFile(path, Buffer.alloc(1001)));

    expect(readFileSync(path, 'utf8')).toBe('v2');
    expect(statSync(path).mode & 0o7777).toBe(0o600);
    expect(tooBig).toBeInstanceOf(TooLargeError);
  });

  it('reports a missing file as NotFoundError', async () => {
    fakeNode();
    const { ssm: t } = transport();

    expect(await rejection(t.getFile(join(dir, 'absent')))).toBeInstanceOf(NotFoundError);
  });

  it('streams a tar archive out by buffering it', async () => {
    fakeNode();
    const { ssm: t } = transport();

    const handle = await t.stream('tar -cf - -C /etc hostname');
    const names: string[] = [];
    const extract = tar.extract();
    extract.on('entry', (header, body, next) => {
      names.push(header.name);
      body.resume();
      body.on('end', next);
    });
    await pipeline(handle.stdout, extract);

    expect((await handle.done).exitCode).toBe(0);
    expect(names).toEqual(['hostname']);
  });

  it('streams a tar archive in, sending the command once the input has ended', async () => {
    const node = fakeNode();
    const into = join(dir, 'unpacked');
    const { ssm: t } = transport();
    const pack = tar.pack();
    pack.entry({ name: 'a.txt' }, 'alpha\n');
    pack.finalize();

    const handle = await t.stream(`mkdir -p ${into} && tar -xf - -C ${into}`, { input: true });
    expect(node.commands()).toBe(0);
    handle.stdout.resume();
    await pipeline(pack, handle.stdin);

    expect((await handle.done).exitCode).toBe(0);
    expect(readFileSync(join(into, 'a.txt'), 'utf8')).toBe('alpha\n');
  });
});
