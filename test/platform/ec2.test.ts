// The EC2 adaptor end to end: the real Ec2Platform, EC2Client and SSMClient against the EC2 and
// SSM stand-ins, whose instances are real test hosts. Provisioning, polling to ready, a command
// over the SSM transport, resize, snapshot and terminate, with capacity, throttling, ownership
// and hostile input injected.
import { existsSync } from 'node:fs';
import { EC2Client, RunInstancesCommand } from '@aws-sdk/client-ec2';
import { SSMClient } from '@aws-sdk/client-ssm';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { InvalidInputError, NotFoundError } from '../../core/errors.js';
import {
  Ec2CapacityError,
  Ec2NotOwnedError,
  Ec2Platform,
  Ec2RestoreUnsupportedError,
  OPERATION_TAG,
  officialImageQuery,
} from '../../core/platform/ec2.js';
import type { ProvisionedHost, ProvisionHandle, ProvisionRequest } from '../../core/platform/platform.js';
import type { HostShape } from '../../core/platform/shape.js';
import { LOCAL_CREDENTIALS, LOCAL_REGION } from '../../local/stand-ins.js';
import { destroyAllHosts } from '../hosts/harness.js';
import { type Ec2StandIn, type Params, startEc2StandIn } from '../stand-ins/ec2.js';
import { type SsmStandIn, startSsmStandIn } from '../stand-ins/ssm.js';

const GIB = 1024 ** 3;
const PWNED = '/tmp/persona-ec2-hostile-tag';

let ssm: SsmStandIn;
let ec2: Ec2StandIn;
let ec2Client: EC2Client;
let ssmClient: SSMClient;
let platform: Ec2Platform;
/** Commands the adaptor sent, counted once each before the SDK's retries. */
let sent: string[] = [];
let counter = 0;

beforeAll(async () => {
  ssm = await startSsmStandIn({ s3: { endpoint: 'http://127.0.0.1:9', credentials: LOCAL_CREDENTIALS } });
  ec2 = await startEc2StandIn({ ssm });
  ec2Client = new EC2Client({
    endpoint: ec2.endpoint,
    region: LOCAL_REGION,
    credentials: LOCAL_CREDENTIALS,
    maxAttempts: 3,
  });
  // The initialize step runs once per send, before the retry middleware repeats the request.
  ec2Client.middlewareStack.add(
    (next, context) => (args) => {
      sent.push(String(context.commandName));
      return next(args);
    },
    { step: 'initialize', name: 'countSentCommands' },
  );
  ssmClient = new SSMClient({ endpoint: ssm.endpoint, region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS });
  platform = new Ec2Platform({
    ec2: ec2Client,
    ssm: ssmClient,
    region: LOCAL_REGION,
    preferredTypes: ['t3.large'],
    transport: { pollDelayMs: { initial: 20, max: 100 } },
    waits: { intervalMs: 50, timeoutMs: 120_000 },
  });
}, 300_000);

afterAll(async () => {
  await ec2?.stop();
  await ssm?.stop();
  ec2Client?.destroy();
  ssmClient?.destroy();
  await destroyAllHosts();
}, 180_000);

beforeEach(() => {
  sent = [];
});

const shape: HostShape = {
  arch: 'x86_64',
  cpus: 2,
  memoryBytes: 4 * GIB,
  os: { distribution: 'debian', version: '12', codename: 'bookworm' },
  volumes: [{ sizeBytes: 9.5 * GIB }, { sizeBytes: 20 * GIB + 1 }],
  ingress: [
    { protocol: 'tcp', port: 80 },
    { protocol: 'udp', port: 5353 },
  ],
};

function request(overrides: Partial<ProvisionRequest> = {}): ProvisionRequest {
  counter += 1;
  return {
    operation: `8c1f3a52-6d0e-4b7a-9f21-${String(counter).padStart(12, '0')}`,
    network: { subnet: ec2.vpc.subnetId },
    parameters: { instanceProfile: 'persona-clone-node' },
    shape,
    tags: { team: 'web' },
    ...overrides,
  };
}

/** What poll said while the host was not ready yet. */
let waited: string[] = [];

async function ready(handle: ProvisionHandle): Promise<ProvisionedHost> {
  waited = [];
  for (let i = 0; i < 1200; i++) {
    const status = await platform.poll(handle);
    if (status.state === 'ready') return status.host;
    if (status.state === 'pending') waited.push(status.detail ?? '');
    if (status.state === 'failed') throw new Error(`provisioning failed: ${status.reason}`);
    await new Promise((resolve) => setTimeout(resolve, Math.min(status.retryAfterMs, 100)));
  }
  throw new Error(`${handle.id} never became ready`);
}

async function failure(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a failure');
}

const tagsOf = (p: Params, resourceType: string) =>
  ((p.TagSpecification as Params[]) ?? [])
    .filter((s) => s.ResourceType === resourceType)
    .flatMap((s) => (s.Tag as Params[]).map((t) => [t.Key, t.Value]));

describe('Ec2Platform end to end against the EC2 and SSM stand-ins', () => {
  it('provisions a host that runs commands over SSM, resizes and snapshots it, and terminate destroys it', async () => {
    const hostile = `$(touch ${PWNED}); \`touch ${PWNED}\` | & > <b>`;
    const req = request({
      tags: { team: 'web', note: hostile },
      network: { subnet: ec2.vpc.subnetId, securityGroups: ` ${ec2.vpc.defaultGroupId} ` },
    });
    const handle = await platform.provision(req);
    expect(handle).toMatchObject({ platform: 'ec2', operation: req.operation, scope: LOCAL_REGION });
    expect(handle.id).toMatch(/^i-[0-9a-f]{17}$/);

    // What was asked of EC2: the newest official Debian 12 image, the mapped type, IMDSv2,
    // encrypted gp3 volumes, Persona's tag and the request's, the instance profile, the token.
    const [run] = ec2.callsOf('RunInstances');
    const p = run?.params as Params;
    expect(p).toMatchObject({
      ImageId: 'ami-0a1b2c3d4e5f60002',
      InstanceType: 'c7i.large',
      SubnetId: ec2.vpc.subnetId,
      ClientToken: req.operation,
      MetadataOptions: { HttpTokens: 'required', HttpEndpoint: 'enabled' },
      IamInstanceProfile: { Name: 'persona-clone-node' },
    });
    expect(p.BlockDeviceMapping).toEqual([
      {
        DeviceName: '/dev/xvda',
        Ebs: { VolumeSize: '10', VolumeType: 'gp3', Encrypted: 'true', DeleteOnTermination: 'true' },
      },
      {
        DeviceName: '/dev/sdf',
        Ebs: { VolumeSize: '21', VolumeType: 'gp3', Encrypted: 'true', DeleteOnTermination: 'true' },
      },
    ]);
    const expectedTags = [
      [OPERATION_TAG, req.operation],
      ['team', 'web'],
      ['note', hostile],
    ];
    expect(tagsOf(p, 'instance')).toEqual(expectedTags);
    expect(tagsOf(p, 'volume')).toEqual(expectedTags);
    // The hostile value is data: it arrives whole, and nothing ran it.
    expect(ec2.instances.get(handle.id)?.tags.get('note')).toBe(hostile);

    // Its own security group, first, open on the source's ports to the VPC only.
    const [groupId = '', ...others] = p.SecurityGroupId as string[];
    expect(others).toEqual([ec2.vpc.defaultGroupId]);
    const group = ec2.securityGroups.get(groupId);
    expect(group).toMatchObject({ groupName: `persona-${req.operation}`, vpcId: ec2.vpc.vpcId });
    expect(group?.tags.get(OPERATION_TAG)).toBe(req.operation);
    expect(group?.ingress.map((r) => `${r.protocol}/${r.fromPort}-${r.toPort} from ${r.cidr}`)).toEqual([
      'tcp/80-80 from 10.213.0.0/16',
      'udp/5353-5353 from 10.213.0.0/16',
    ]);
    expect(group?.ingress.some((r) => r.cidr === '0.0.0.0/0')).toBe(false);

    // A second provision of the same operation is the same instance: nothing new is launched.
    const again = await platform.provision(req);
    expect(again).toEqual(handle);
    expect(ec2.callsOf('RunInstances')).toHaveLength(1);

    const host = await ready(handle);
    // Running is not ready: the SSM Agent registers a poll later.
    expect(waited.some((w) => w.includes('is running; its SSM Agent is not registered yet'))).toBe(true);
    // Reached by its id; its private address is where validation probes it.
    expect(host.access).toEqual({
      transport: 'ssm',
      instanceId: handle.id,
      region: LOCAL_REGION,
      address: ec2.instances.get(handle.id)?.privateIp,
    });
    expect(host.access.transport === 'ssm' && host.access.address).toMatch(/^10\.213\./);
    const transport = await platform.transport(host);
    const hostname = await transport.run('cat /etc/hostname');
    expect(hostname).toMatchObject({ exitCode: 0, stdout: `${handle.id}\n` });
    const instance = ec2.instances.get(handle.id);
    const root = instance?.host?.root as string;
    expect(existsSync(root)).toBe(true);
    expect(existsSync(PWNED)).toBe(false);
    expect(existsSync(`${root}${PWNED}`)).toBe(false);

    expect(await platform.resize(host, 'c7i.large')).toEqual({ state: 'unchanged', size: 'c7i.large' });
    expect(await platform.resize(host, 'm7i.xlarge')).toEqual({
      state: 'resized',
      size: 'm7i.xlarge',
      restarted: true,
      previous: 'c7i.large',
    });
    expect(ec2.instances.get(handle.id)?.instanceType).toBe('m7i.xlarge');
    expect(ec2.callsOf('ModifyInstanceAttribute').at(-1)?.params).toEqual({
      InstanceId: handle.id,
      InstanceType: { Value: 'm7i.xlarge' },
    });
    const wrongArch = await failure(platform.resize(host, 'm7g.large'));
    expect(wrongArch).toBeInstanceOf(InvalidInputError);
    await ready(handle);
    expect((await transport.run('cat /etc/hostname')).stdout).toBe(`${handle.id}\n`);

    const snapshot = await platform.snapshot(host, { paths: ['/'], state: [] });
    expect(snapshot.platform).toBe('ec2');
    expect(snapshot.host).toBe(handle.id);
    expect(snapshot.id.split(',')).toHaveLength(2);
    expect(tagsOf(ec2.callsOf('CreateSnapshots').at(-1)?.params as Params, 'snapshot')).toEqual([
      [OPERATION_TAG, req.operation],
    ]);
    expect(await failure(platform.restore(host, snapshot))).toBeInstanceOf(Ec2RestoreUnsupportedError);

    await platform.terminate(handle);
    expect(ec2.instances.get(handle.id)?.state).toBe('terminated');
    expect(ec2.liveHosts()).toBe(0);
    expect(existsSync(root)).toBe(false);
    expect(ec2.securityGroups.has(groupId)).toBe(false);
    // The first delete met the terminated instance's lingering interface and was tried again.
    expect(ec2.callsOf('DeleteSecurityGroup').filter((c) => c.params.GroupId === groupId)).toHaveLength(2);
    expect(String(await failure(transport.run('true')))).toMatch(/cannot receive commands/);
    // Terminating again changes nothing and does not fail.
    await platform.terminate(handle);
    expect(ec2.callsOf('TerminateInstances')).toHaveLength(1);
  });

  it('gets the same instance from the client token when a retried step cannot see it yet', async () => {
    // Eventual consistency: the instance is left out of the next two DescribeInstances answers.
    ec2.lagNextLaunch(2);
    const req = request();
    const handle = await platform.provision(req);
    const launched = ec2.instances.size;
    const again = await platform.provision(req);
    expect(again).toEqual(handle);
    const runs = ec2.callsOf('RunInstances').slice(-2);
    expect(runs.map((c) => c.params.ClientToken)).toEqual([req.operation, req.operation]);
    expect(ec2.instances.size).toBe(launched);
    expect(await platform.poll(handle)).toMatchObject({
      state: 'pending',
      detail: `instance ${handle.id} is not visible yet`,
    });
    await ready(handle);
    await platform.terminate(handle);
    expect(ec2.liveHosts()).toBe(0);
  });

  it('falls back to the next instance type when EC2 has no capacity for the first', async () => {
    ec2.capacity('c7i.large');
    try {
      const handle = await platform.provision(request());
      const types = ec2
        .callsOf('RunInstances')
        .slice(-4)
        .map((c) => c.params.InstanceType);
      // The SDK retries the 500 itself (maxAttempts 3); then the adaptor names the next type.
      expect(types).toEqual(['c7i.large', 'c7i.large', 'c7i.large', 't3.large']);
      expect(sent.filter((c) => c === 'RunInstancesCommand')).toHaveLength(2);
      expect(ec2.instances.get(handle.id)?.instanceType).toBe('t3.large');
      await platform.terminate(handle);
      expect(ec2.liveHosts()).toBe(0);
    } finally {
      ec2.capacity('c7i.large', 0);
    }
  });

  it('tells which types it tried when none has capacity, and leaves no security group behind', async () => {
    ec2.capacity('m7g.medium');
    ec2.capacity('r7g.medium');
    ec2.unsupported('m7g.large');
    const req = request({
      shape: { ...shape, arch: 'aarch64', cpus: 1, memoryBytes: 3 * GIB },
      size: 'm7g.large',
    });
    const groupsBefore = ec2.securityGroups.size;
    const error = await failure(platform.provision(req));
    expect(error).toBeInstanceOf(Ec2CapacityError);
    expect((error as Ec2CapacityError).tried.map((t) => t.instanceType)).toEqual([
      'm7g.large',
      'm7g.medium',
      'r7g.medium',
    ]);
    expect(error.message).toContain('m7g.medium (InsufficientInstanceCapacity)');
    expect(error.message).toContain('m7g.large (Unsupported)');
    expect([...ec2.instances.values()].filter((i) => i.tags.get(OPERATION_TAG) === req.operation)).toEqual(
      [],
    );
    expect(ec2.securityGroups.size).toBe(groupsBefore);
  });

  it('leaves throttling to the SDK: RequestLimitExceeded twice is three calls seen and one sent', async () => {
    ec2.throttle('RunInstances', 2);
    const before = ec2.callsOf('RunInstances').length;
    // A root smaller than the image's gets the image's size; a data volume of no size is not made.
    const volumes = [{ sizeBytes: 1 }, { sizeBytes: 0 }, { sizeBytes: 5 * GIB }];
    const handle = await platform.provision(request({ shape: { ...shape, volumes } }));
    expect(ec2.callsOf('RunInstances').length - before).toBe(3);
    expect(sent.filter((c) => c === 'RunInstancesCommand')).toHaveLength(1);
    expect(
      ((ec2.callsOf('RunInstances').at(-1)?.params.BlockDeviceMapping ?? []) as Params[]).map((m) => [
        m.DeviceName,
        (m.Ebs as Params).VolumeSize,
      ]),
    ).toEqual([
      ['/dev/xvda', '8'],
      ['/dev/sdf', '5'],
    ]);
    await platform.terminate(handle);
  });

  it('refuses to terminate an instance without the operation tag, and leaves it running', async () => {
    const run = await ec2Client.send(
      new RunInstancesCommand({
        ImageId: 'ami-0a1b2c3d4e5f60002',
        InstanceType: 'm7i.large',
        MinCount: 1,
        MaxCount: 1,
        SubnetId: ec2.vpc.subnetId,
        TagSpecifications: [{ ResourceType: 'instance', Tags: [{ Key: 'Name', Value: 'somebody-elses' }] }],
      }),
    );
    const id = run.Instances?.[0]?.InstanceId as string;
    const handle: ProvisionHandle = {
      platform: 'ec2',
      operation: request().operation,
      id,
      scope: LOCAL_REGION,
    };
    const refused = await failure(platform.terminate(handle));
    expect(refused).toBeInstanceOf(Ec2NotOwnedError);
    expect(ec2.callsOf('TerminateInstances').filter((c) => JSON.stringify(c.params).includes(id))).toEqual(
      [],
    );
    const status = await platform.poll(handle);
    expect(status.state === 'failed' && status.reason).toContain(`does not carry ${OPERATION_TAG}`);
    await ec2.instances.get(id)?.ready;
    expect(ec2.instances.get(id)?.state).toBe('running');
    expect(ec2.liveHosts()).toBe(1);
  });

  it('reports an instance that fails to boot as failed with its state reason, and terminate still cleans up', async () => {
    ec2.failNextLaunch();
    const req = request();
    const handle = await platform.provision(req);
    await ec2.instances.get(handle.id)?.ready;
    const status = await platform.poll(handle);
    expect(status).toEqual({
      state: 'failed',
      reason: `instance ${handle.id} is terminated: Server.InternalError: Internal error on launch`,
    });
    await platform.terminate(handle);
    expect([...ec2.securityGroups.values()].some((g) => g.groupName === `persona-${req.operation}`)).toBe(
      false,
    );
  });
});

describe('Ec2Platform refuses bad input before any call', () => {
  it('names the missing subnet and instance profile', async () => {
    const calls = ec2.calls.length;
    const error = await failure(platform.provision(request({ network: {}, parameters: {} })));
    expect(error).toBeInstanceOf(InvalidInputError);
    expect((error as InvalidInputError).issues.map((i) => i.path)).toEqual([
      'target.subnet',
      'target.instanceProfile',
    ]);
    expect(ec2.calls.length).toBe(calls);
  });

  it('treats shell metacharacters in an image, a subnet, a group or a version as invalid data, not commands', async () => {
    const calls = ec2.calls.length;
    const error = await failure(
      platform.provision(
        request({
          image: `ami-0a1b2c3d4e5f60002; touch ${PWNED}`,
          network: { subnet: `$(touch ${PWNED})`, securityGroups: 'sg-0123456789abcdef0,`id`' },
          size: 'm7i.large && reboot',
          parameters: { instanceProfile: 'p; rm -rf /', ingressCidr: '0.0.0.0/0 || true' },
        }),
      ),
    );
    expect((error as InvalidInputError).issues.map((i) => i.path)).toEqual([
      'target.subnet',
      'target.securityGroups',
      'target.instanceProfile',
      'target.image',
      'target.size',
      'target.ingressCidr',
    ]);
    expect(ec2.calls.length).toBe(calls);
    expect(existsSync(PWNED)).toBe(false);
    const version = await failure(
      platform.provision(request({ shape: { ...shape, os: { distribution: 'debian', version: '12*' } } })),
    );
    expect(version).toBeInstanceOf(InvalidInputError);
    expect((version as InvalidInputError).issues[0]?.path).toBe('target.image');
  });

  it('asks for an image when neither an AMI nor the source shape is given', async () => {
    const { shape: _, ...bare } = request();
    const error = await failure(platform.provision(bare));
    expect((error as InvalidInputError).issues.map((i) => i.path)).toEqual(['target.image']);
  });

  it('names the distribution when no official image is found', async () => {
    const error = await failure(
      platform.provision(request({ shape: { ...shape, os: { distribution: 'rhel', version: '9.5' } } })),
    );
    expect(error).toBeInstanceOf(NotFoundError);
    expect(error.message).toContain('rhel 9.5 (x86_64)');
  });
});

describe('officialImageQuery', () => {
  it('names each distribution by its publisher account and a name pattern of its release', () => {
    expect(officialImageQuery({ distribution: 'debian', version: '12' }, 'x86_64')).toMatchObject({
      owner: '136693071363',
      name: 'debian-12-amd64-*',
    });
    expect(officialImageQuery({ distribution: 'debian', version: '12' }, 'arm64')?.name).toBe(
      'debian-12-arm64-*',
    );
    expect(officialImageQuery({ distribution: 'ubuntu', version: '24.04' }, 'x86_64')).toMatchObject({
      owner: '099720109477',
      name: 'ubuntu/images/hvm-ssd*/ubuntu-*-24.04-amd64-server-*',
    });
    expect(officialImageQuery({ distribution: 'amzn', version: '2023' }, 'arm64')).toMatchObject({
      owner: 'amazon',
      name: 'al2023-ami-2023.*-kernel-*-arm64',
    });
    expect(officialImageQuery({ distribution: 'rhel', version: '9.5' }, 'x86_64')).toMatchObject({
      owner: '309956199498',
      name: 'RHEL-9.5*_HVM-*-x86_64-*',
    });
    expect(officialImageQuery({ distribution: 'gentoo', version: '1' }, 'x86_64')).toBeUndefined();
    expect(officialImageQuery({ distribution: 'debian', version: '12 -*' }, 'x86_64')).toBeUndefined();
  });
});
