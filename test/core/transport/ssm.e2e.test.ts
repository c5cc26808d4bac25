// The SSM transport end to end: the real SsmTransport and SSMClient against the SSM stand-in
// (test/stand-ins/ssm.ts), whose managed node is a real test host, with output over the inline
// limit going through the S3-protocol server of the embedded runtime, and a whole capture run
// the way the deployed capture function runs it.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { CreateBucketCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import {
  DescribeInstanceInformationCommand,
  InvalidDocument,
  InvalidInstanceId,
  ListCommandInvocationsCommand,
  SendCommandCommand,
  SSMClient,
} from '@aws-sdk/client-ssm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TooLargeError } from '../../../core/errors.js';
import { assignment } from '../../../core/persona/agent/assignment.js';
import { readDrift } from '../../../core/persona/drift.js';
import { validateProfile } from '../../../core/profile/io.js';
import { SSM_OUTPUT_BUCKET, SSM_OUTPUT_PREFIX } from '../../../core/storage/definitions.js';
import { TransportError } from '../../../core/transport/errors.js';
import { SsmTransport } from '../../../core/transport/ssm.js';
import { LOCAL_CREDENTIALS, LOCAL_REGION } from '../../../local/stand-ins.js';
import { createHost, destroyAllHosts, type TestHost } from '../../hosts/harness.js';
import { type SsmStandIn, startSsmStandIn } from '../../stand-ins/ssm.js';
import { startTestPersona, type TestPersona } from '../../support/local.js';

const INSTANCE = 'mi-0a1b2c3d4e5f60718';
const BUCKET = 'persona-ssm-output';

let api: TestPersona;
let host: TestHost;
let ssm: SsmStandIn;
let s3: S3Client;
let client: SSMClient;

beforeAll(async () => {
  [api, host] = await Promise.all([
    startTestPersona(),
    createHost({ name: 'ssm-node', hostname: 'ssm-node-a' }),
  ]);
  s3 = new S3Client({
    endpoint: api.s3Endpoint,
    region: LOCAL_REGION,
    credentials: LOCAL_CREDENTIALS,
    forcePathStyle: true,
  });
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  ssm = await startSsmStandIn({ s3: { endpoint: api.s3Endpoint, credentials: LOCAL_CREDENTIALS } });
  ssm.addNode(INSTANCE, host);
  client = new SSMClient({ endpoint: ssm.endpoint, region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS });
}, 900_000);

afterAll(async () => {
  client?.destroy();
  await ssm?.stop();
  await destroyAllHosts();
  await api?.stop();
}, 120_000);

function transport(options: { readonly bucket?: boolean; readonly instanceId?: string } = {}) {
  return new SsmTransport({
    instanceId: options.instanceId ?? INSTANCE,
    ssm: client,
    pollDelayMs: { initial: 50, max: 250 },
    ...(options.bucket === false ? {} : { output: { bucket: BUCKET, prefix: SSM_OUTPUT_PREFIX, s3 } }),
  });
}

/** Known pseudo-random bytes: SHA-256 in counter mode over a seed. */
function pseudoRandom(seed: string, size: number): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0, total = 0; total < size; i++, total += 32) {
    parts.push(createHash('sha256').update(`${seed}:${i}`).digest());
  }
  return Buffer.concat(parts).subarray(0, size);
}

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function outputObjectsLeft(): Promise<number> {
  const listed = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: `${SSM_OUTPUT_PREFIX}/` }));
  return listed.KeyCount ?? 0;
}

/** Everything tar must carry about a tree: type, mode, owner, content, link target. */
function describeTree(root: string, rel = ''): string[] {
  const lines: string[] = [];
  for (const name of readdirSync(join(root, rel)).sort()) {
    const path = rel ? `${rel}/${name}` : name;
    const full = join(root, path);
    const st = lstatSync(full);
    const head = `${path} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`;
    if (st.isSymbolicLink()) lines.push(`${head} -> ${readlinkSync(full)}`);
    else if (st.isDirectory()) lines.push(`${head} dir`, ...describeTree(root, path));
    else lines.push(`${head} ${st.size} ${sha256(readFileSync(full))} ${Math.floor(st.mtimeMs / 1000)}`);
  }
  return lines;
}

describe('SsmTransport against the SSM stand-in', () => {
  it('runs a command on the managed node and returns its exit code, stdout and stderr', async () => {
    const t = transport();

    const result = await t.run(
      'hostname; echo "$AWS_SSM_INSTANCE_ID"; cat; echo "$GREETING"; echo warn >&2',
      {
        stdin: 'from stdin\n',
        env: { GREETING: 'hello' },
      },
    );

    expect(result).toMatchObject({
      exitCode: 0,
      stdout: `ssm-node-a\n${INSTANCE}\nfrom stdin\nhello\n`,
      stderr: 'warn\n',
    });
    expect(result.truncated).toBeUndefined();
    expect(t.target).toBe(`ssm://${INSTANCE}`);
  });

  it('reports the exit code and stderr of a failing command', async () => {
    const result = await transport().run("echo 'no such service' >&2; exit 7");

    expect(result.exitCode).toBe(7);
    expect(result.stderr).toBe('no such service\n');
    expect(result.stdout).toBe('');
  });

  it('brings 1 MiB of output whole and byte-exact through the output bucket, and leaves nothing there', async () => {
    const text = `${(
      pseudoRandom('text', 512 * 1024)
        .toString('hex')
        .match(/.{1,64}/g) as string[]
    ).join('\n')}\n`;
    writeFileSync(join(host.root, 'srv/big.txt'), text);

    const result = await transport().run('cat /srv/big.txt');

    expect(result.stdout.length).toBe(text.length);
    expect(sha256(Buffer.from(result.stdout))).toBe(sha256(Buffer.from(text)));
    expect(result.truncated).toBeUndefined();
    expect(ssm.executions.at(-1)).toMatchObject({ outputBucket: BUCKET, outputPrefix: SSM_OUTPUT_PREFIX });
    // What a command printed (sealed secrets, a host's /etc) is not left in the bucket.
    expect(await outputObjectsLeft()).toBe(0);
  });

  it('without an output bucket, gets the output cut at the 24,000-character inline limit and says so', async () => {
    const result = await transport({ bucket: false }).run('cat /srv/big.txt');

    expect(result.truncated).toBe(true);
    expect(result.stdout.length).toBe(24_000);
    expect(result.stdout.endsWith('\n---Output truncated---')).toBe(true);
  });

  it('names the bucket and the missing permission when the node could not upload its output', async () => {
    ssm.failUploads(true);
    try {
      const error = await transport()
        .run('cat /srv/big.txt')
        .then(
          () => undefined,
          (e: unknown) => e,
        );

      expect(error).toBeInstanceOf(TransportError);
      expect((error as Error).message).toContain(`s3://${BUCKET}/${SSM_OUTPUT_PREFIX}/`);
      expect((error as Error).message).toContain('s3:PutObject');
    } finally {
      ssm.failUploads(false);
    }
  });

  it('moves binary files whole: getFile and a stream of 600 KiB of random bytes', async () => {
    const blob = pseudoRandom('blob', 600 * 1024);
    writeFileSync(join(host.root, 'srv/blob.bin'), blob);
    const t = transport();

    const file = await t.getFile('/srv/blob.bin');
    const handle = await t.stream('cat /srv/blob.bin');
    const streamed = await readAll(handle.stdout);

    expect(sha256(file)).toBe(sha256(blob));
    expect(sha256(streamed)).toBe(sha256(blob));
    expect((await handle.done).exitCode).toBe(0);
  });

  it('streams a tar archive of a tree, as capture snapshots it, that restores to the same tree', async () => {
    await host.run(
      [
        'mkdir -p /srv/app/conf /srv/app/data/empty',
        "printf 'listen 8080\\n' > /srv/app/conf/app.conf",
        "printf 'token\\n' > /srv/app/conf/secret && chmod 0600 /srv/app/conf/secret",
        'head -c 300000 /dev/urandom > /srv/app/data/blob.bin',
        'ln -s conf/app.conf /srv/app/current',
        'chown -R 1001:1001 /srv/app/data && chmod 0750 /srv/app/data',
      ].join(' && '),
    );
    const dir = mkdtempSync(join(tmpdir(), 'persona-ssm-restore-'));
    try {
      const handle = await transport().stream('tar --format=pax --numeric-owner -cf - -C / -- srv/app');
      handle.stdin.end();
      const archive = await readAll(handle.stdout);
      const ended = await handle.done;
      const untar = spawnSync('tar', ['-xpf', '-', '--numeric-owner', '-C', dir], { input: archive });

      expect(ended.exitCode).toBe(0);
      expect(untar.status).toBe(0);
      expect(describeTree(join(dir, 'srv/app'))).toEqual(describeTree(join(host.root, 'srv/app')));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a stream over its limit by name instead of holding it whole, and keeps the exit code under it', async () => {
    const t = new SsmTransport({
      instanceId: INSTANCE,
      ssm: client,
      pollDelayMs: { initial: 50, max: 250 },
      output: { bucket: BUCKET, prefix: SSM_OUTPUT_PREFIX, s3 },
      maxStreamBytes: 100_000,
    });

    const over = await t.stream('head -c 100001 /srv/blob.bin');
    over.stdout.resume();
    const refused = await over.done.then(
      () => undefined,
      (e: unknown) => e,
    );
    const under = await t.stream('head -c 100000 /srv/blob.bin; exit 3');
    const bytes = await readAll(under.stdout);

    expect(refused).toBeInstanceOf(TooLargeError);
    expect((refused as Error).message).toContain('100000 bytes');
    expect(bytes.length).toBe(100_000);
    expect((await under.done).exitCode).toBe(3);
  });

  it('stops a command at its time-out, every process it started with it, and says so', async () => {
    const error = await transport()
      .run('sleep 300 & echo started; wait', { timeoutMs: 1000 })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    const left = await host.exec('ps -eo args | grep -c "^sleep 300"');

    expect(error).toBeInstanceOf(TransportError);
    expect(error).toMatchObject({ reason: 'timeout' });
    expect(left.stdout.trim()).toBe('0');
    // What it printed before it was stopped is not left in the bucket either.
    expect(await outputObjectsLeft()).toBe(0);
  });

  it('retries throttled calls and runs the command exactly once', async () => {
    const before = ssm.executions.length;
    // The SDK itself makes three attempts; the fourth throttle reaches the transport's retry.
    ssm.throttle('SendCommand', 4);

    const result = await transport().run('echo once');

    expect(result.stdout).toBe('once\n');
    expect(ssm.executions.length - before).toBe(1);
  });

  it('reports a node that is not managed by SSM as unreachable', async () => {
    const error = await transport({ instanceId: 'mi-0fffffffffffffff0' })
      .run('true')
      .then(
        () => undefined,
        (e: unknown) => e,
      );

    expect(error).toBeInstanceOf(TransportError);
    expect(error).toMatchObject({ reason: 'unreachable' });
  });
});

describe('the SSM stand-in', () => {
  it('answers the SDK in SSM shapes: managed nodes, invocations with plugin details, modelled errors', async () => {
    const nodes = await client.send(
      new DescribeInstanceInformationCommand({ Filters: [{ Key: 'InstanceIds', Values: [INSTANCE] }] }),
    );
    const sent = await client.send(
      new SendCommandCommand({
        DocumentName: 'AWS-RunShellScript',
        InstanceIds: [INSTANCE],
        Parameters: { commands: ['echo one', 'echo two >&2'] },
        OutputS3BucketName: BUCKET,
        OutputS3KeyPrefix: 'listing',
      }),
    );
    await ssm.idle();
    const commandId = sent.Command?.CommandId as string;
    const listed = await client.send(
      new ListCommandInvocationsCommand({ CommandId: commandId, Details: true }),
    );
    const badDocument = await client
      .send(new SendCommandCommand({ DocumentName: 'AWS-Nope', InstanceIds: [INSTANCE] }))
      .catch((e: unknown) => e);
    const unknownNode = await client
      .send(
        new SendCommandCommand({
          DocumentName: 'AWS-RunShellScript',
          InstanceIds: ['i-0123456789abcdef0'],
          Parameters: { commands: ['true'] },
        }),
      )
      .catch((e: unknown) => e);

    expect(nodes.InstanceInformationList).toEqual([
      expect.objectContaining({
        InstanceId: INSTANCE,
        PingStatus: 'Online',
        ResourceType: 'ManagedInstance',
      }),
    ]);
    expect(sent.Command).toMatchObject({ Status: 'Pending', RequestedDateTime: expect.any(Date) });
    expect(listed.CommandInvocations?.[0]).toMatchObject({
      Status: 'Success',
      InstanceName: 'ssm-node-a',
      CommandPlugins: [
        {
          Name: 'aws:runShellScript',
          ResponseCode: 0,
          Output: 'one\n\n----------ERROR-------\ntwo\n',
          OutputS3KeyPrefix: `listing/${commandId}/${INSTANCE}/awsrunShellScript`,
        },
      ],
    });
    expect(badDocument).toBeInstanceOf(InvalidDocument);
    expect(unknownNode).toBeInstanceOf(InvalidInstanceId);
  });
});

describe('capture over SSM, as the capture function runs it', () => {
  const waitFor = async (id: string) => {
    for (let i = 0; i < 480; i++) {
      const op = await api.call('GET', `/operations/${id}`);
      if (op.body.status === 'SUCCEEDED' || op.body.status === 'FAILED') return op.body;
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`operation ${id} did not end`);
  };

  it("checks an operator's change to a persona's values in one command, as over SSH", async () => {
    const t = transport();
    const expected = assignment('ssm-node', {
      name: 'tuned',
      version: 1,
      parameters: { sysctl: { 'net.core.somaxconn': '2048' }, cgroups: [], bandwidth: [] } as never,
      override: 'enforced',
      retainUntil: null,
    });
    await host.run('sysctl -w net.core.somaxconn=2048 >/dev/null');
    expect(await readDrift(t, expected)).toEqual([]);
    await host.run('sysctl -w net.core.somaxconn=999 >/dev/null');
    expect(await readDrift(t, expected)).toEqual([
      { index: 0, kind: 'sysctl', target: 'net.core.somaxconn', from: '999', to: '2048' },
    ]);
  });

  it('captures a valid Profile and records a snapshot, all output through the output bucket', async () => {
    // What the stack gives the capture function (infra/workflows.ts), pointed at the stand-ins.
    process.env.AWS_ENDPOINT_URL_SSM = ssm.endpoint;
    process.env[SSM_OUTPUT_BUCKET.env] = BUCKET;
    const first = ssm.executions.length;

    const registered = await api.call('POST', '/hosts', {
      body: { name: 'ssm-web', platform: 'aws', transport: 'ssm', instanceId: INSTANCE, paths: ['/srv/app'] },
    });
    expect(registered.status).toBe(201);
    const started = await api.call('POST', '/hosts/ssm-web/capture', { body: {} });
    expect(started.status).toBe(202);
    const op = await waitFor(started.body.id);

    expect(op.error).toBeUndefined();
    expect(op.status).toBe('SUCCEEDED');
    const { body } = await api.call('GET', '/profiles/ssm-web');
    const profile = validateProfile(body.profile, { source: 'the captured profile' });
    expect(profile.spec.os).toMatchObject({ distribution: 'debian', hostname: 'ssm-node-a' });
    const snapshots = await api.call('GET', '/hosts/ssm-web/snapshots');
    expect(snapshots.body.items).toHaveLength(1);
    expect(op.result.summary.filesSnapshotted).toBeGreaterThan(100);
    const commands = ssm.executions.slice(first);
    expect(commands.length).toBeGreaterThan(2);
    for (const c of commands)
      expect(c).toMatchObject({ outputBucket: BUCKET, outputPrefix: SSM_OUTPUT_PREFIX });
    // The capture script's sections and the snapshot's archive are both over the inline limit.
    expect(commands.filter((c) => (c.stdoutBytes ?? 0) > 24_000).length).toBeGreaterThanOrEqual(2);
    expect(await outputObjectsLeft()).toBe(0);
  }, 300_000);
});
