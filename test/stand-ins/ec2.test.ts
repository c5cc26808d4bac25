// The EC2 stand-in as the SDK sees it: the real EC2Client pointed at it by endpoint parses its
// answers and its errors (as the named exceptions, with the documented statuses), and an
// instance it launches is a real test host that SSM commands reach.
import { existsSync } from 'node:fs';
import {
  AuthorizeSecurityGroupIngressCommand,
  CreateSecurityGroupCommand,
  CreateSnapshotsCommand,
  DeleteSecurityGroupCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeSecurityGroupsCommand,
  DescribeSubnetsCommand,
  DescribeVpcsCommand,
  EC2Client,
  type EC2ServiceException,
  ModifyInstanceAttributeCommand,
  RunInstancesCommand,
  type RunInstancesCommandInput,
  StartInstancesCommand,
  StopInstancesCommand,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { DescribeInstanceInformationCommand, SSMClient } from '@aws-sdk/client-ssm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SsmTransport } from '../../core/transport/ssm.js';
import { LOCAL_CREDENTIALS, LOCAL_REGION } from '../../local/stand-ins.js';
import { destroyAllHosts } from '../hosts/harness.js';
import { type Ec2StandIn, startEc2StandIn } from './ec2.js';
import { type SsmStandIn, startSsmStandIn } from './ssm.js';

let ssm: SsmStandIn;
let ec2: Ec2StandIn;
let client: EC2Client;
let once: EC2Client;
let ssmClient: SSMClient;

beforeAll(async () => {
  // No command here names an output bucket, so the S3 endpoint is never called.
  ssm = await startSsmStandIn({ s3: { endpoint: 'http://127.0.0.1:9', credentials: LOCAL_CREDENTIALS } });
  ec2 = await startEc2StandIn({ ssm });
  client = new EC2Client({ endpoint: ec2.endpoint, region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS });
  // One attempt: the raw answer, without the SDK's retries.
  once = new EC2Client({
    endpoint: ec2.endpoint,
    region: LOCAL_REGION,
    credentials: LOCAL_CREDENTIALS,
    maxAttempts: 1,
  });
  ssmClient = new SSMClient({ endpoint: ssm.endpoint, region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS });
}, 300_000);

afterAll(async () => {
  await ec2?.stop();
  await ssm?.stop();
  client?.destroy();
  once?.destroy();
  ssmClient?.destroy();
  await destroyAllHosts();
}, 180_000);

async function failure(promise: Promise<unknown>): Promise<EC2ServiceException> {
  try {
    await promise;
  } catch (error) {
    return error as EC2ServiceException;
  }
  throw new Error('expected the call to fail');
}

function launch(overrides: Partial<RunInstancesCommandInput> = {}): RunInstancesCommandInput {
  return {
    ImageId: 'ami-0a1b2c3d4e5f60002',
    InstanceType: 'm7i.large',
    MinCount: 1,
    MaxCount: 1,
    SubnetId: ec2.vpc.subnetId,
    MetadataOptions: { HttpTokens: 'required', HttpEndpoint: 'enabled' },
    BlockDeviceMappings: [
      { DeviceName: '/dev/xvda', Ebs: { VolumeSize: 10, VolumeType: 'gp3', Encrypted: true } },
      { DeviceName: '/dev/sdf', Ebs: { VolumeSize: 20, VolumeType: 'gp3', Encrypted: true } },
    ],
    TagSpecifications: [{ ResourceType: 'instance', Tags: [{ Key: 'persona:operation', Value: 'op-1' }] }],
    IamInstanceProfile: { Name: 'persona-clone' },
    ...overrides,
  };
}

async function stateOf(instanceId: string): Promise<string | undefined> {
  const out = await client.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
  return out.Reservations?.[0]?.Instances?.[0]?.State?.Name;
}

async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('EC2 stand-in: catalog', () => {
  it('answers DescribeImages by owner, name pattern and architecture, with the image fields the SDK reads', async () => {
    const out = await client.send(
      new DescribeImagesCommand({
        Owners: ['136693071363'],
        Filters: [
          { Name: 'name', Values: ['debian-12-amd64-*'] },
          { Name: 'architecture', Values: ['x86_64'] },
        ],
      }),
    );
    expect(out.Images?.map((i) => i.Name).sort()).toEqual([
      'debian-12-amd64-20240717-1811',
      'debian-12-amd64-20250210-2019',
    ]);
    const image = out.Images?.find((i) => i.Name === 'debian-12-amd64-20250210-2019');
    expect(image).toMatchObject({
      ImageId: 'ami-0a1b2c3d4e5f60002',
      OwnerId: '136693071363',
      Architecture: 'x86_64',
      State: 'available',
      Public: true,
      CreationDate: '2025-02-10T20:25:02.000Z',
      RootDeviceName: '/dev/xvda',
    });
    expect(image?.BlockDeviceMappings?.[0]?.Ebs).toMatchObject({ VolumeSize: 8, VolumeType: 'gp3' });
    const amazon = await client.send(
      new DescribeImagesCommand({
        Owners: ['amazon'],
        Filters: [{ Name: 'name', Values: ['al2023-ami-2023.*-x86_64'] }],
      }),
    );
    expect(amazon.Images?.map((i) => i.Name)).toEqual(['al2023-ami-2023.6.20250128.0-kernel-6.1-x86_64']);
  });

  it('answers the subnet and its VPC, and names an unknown subnet InvalidSubnetID.NotFound with 400', async () => {
    const subnets = await client.send(new DescribeSubnetsCommand({ SubnetIds: [ec2.vpc.subnetId] }));
    expect(subnets.Subnets?.[0]).toMatchObject({
      SubnetId: ec2.vpc.subnetId,
      VpcId: ec2.vpc.vpcId,
      State: 'available',
    });
    const vpcs = await client.send(new DescribeVpcsCommand({ VpcIds: [ec2.vpc.vpcId] }));
    expect(vpcs.Vpcs?.[0]?.CidrBlock).toBe('10.213.0.0/16');
    expect(vpcs.Vpcs?.[0]?.CidrBlockAssociationSet?.[0]?.CidrBlockState?.State).toBe('associated');
    const error = await failure(
      client.send(new DescribeSubnetsCommand({ SubnetIds: ['subnet-0123456789abcdef0'] })),
    );
    expect(error.name).toBe('InvalidSubnetID.NotFound');
    expect(error.$metadata.httpStatusCode).toBe(400);
    expect(error.$fault).toBe('client');
    expect(error.message).toContain('subnet-0123456789abcdef0');
  });

  it('refuses a request without a SigV4 signature with AuthFailure in the EC2 error body', async () => {
    const response = await fetch(ec2.endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'Action=DescribeVpcs&Version=2016-11-15',
    });
    expect(response.status).toBe(401);
    const body = await response.text();
    expect(body).toMatch(
      /^<\?xml[^>]*>\n<Response><Errors><Error><Code>AuthFailure<\/Code><Message>[^<]+<\/Message><\/Error><\/Errors><RequestID>[0-9a-f-]{36}<\/RequestID><\/Response>$/,
    );
  });
});

describe('EC2 stand-in: faults', () => {
  it('answers an injected capacity fault as InsufficientInstanceCapacity with 500, launching nothing', async () => {
    ec2.capacity('c7i.large', 1);
    const before = ec2.instances.size;
    const error = await failure(once.send(new RunInstancesCommand(launch({ InstanceType: 'c7i.large' }))));
    expect(error.name).toBe('InsufficientInstanceCapacity');
    expect(error.$metadata.httpStatusCode).toBe(500);
    expect(error.message).toContain('c7i.large capacity');
    expect(ec2.instances.size).toBe(before);
  });

  it('answers an injected throttle as RequestLimitExceeded with 503, which the SDK retries by itself', async () => {
    ec2.throttle('DescribeVpcs', 1);
    const error = await failure(once.send(new DescribeVpcsCommand({})));
    expect(error.name).toBe('RequestLimitExceeded');
    expect(error.$metadata.httpStatusCode).toBe(503);
    ec2.throttle('DescribeVpcs', 2);
    const seen = ec2.callsOf('DescribeVpcs').length;
    const out = await client.send(new DescribeVpcsCommand({}));
    expect(out.Vpcs).toHaveLength(1);
    expect(out.$metadata.attempts).toBe(3);
    expect(ec2.callsOf('DescribeVpcs').length - seen).toBe(3);
  });

  it('refuses a root volume smaller than the image and a security group of another network', async () => {
    const small = await failure(
      client.send(
        new RunInstancesCommand(
          launch({ BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: { VolumeSize: 4 } }] }),
        ),
      ),
    );
    expect(small.name).toBe('InvalidBlockDeviceMapping');
    const missing = await failure(
      client.send(new RunInstancesCommand(launch({ SecurityGroupIds: ['sg-0123456789abcdef0'] }))),
    );
    expect(missing.name).toBe('InvalidGroup.NotFound');
    const arch = await failure(client.send(new RunInstancesCommand(launch({ InstanceType: 'm7g.large' }))));
    expect(arch.name).toBe('InvalidParameterValue');
  });
});

describe('EC2 stand-in: an instance is a real test host', () => {
  it('launches a host that runs SSM commands, honours the client token, and destroys it on terminate', async () => {
    const token = 'a4d6e3f0-0000-4000-8000-000000000001';
    const group = await client.send(
      new CreateSecurityGroupCommand({
        GroupName: 'persona-test',
        Description: 'test group',
        VpcId: ec2.vpc.vpcId,
        TagSpecifications: [
          { ResourceType: 'security-group', Tags: [{ Key: 'persona:operation', Value: 'op-1' }] },
        ],
      }),
    );
    const groupId = group.GroupId as string;
    expect(group.Tags).toEqual([{ Key: 'persona:operation', Value: 'op-1' }]);
    const duplicate = await failure(
      client.send(
        new CreateSecurityGroupCommand({ GroupName: 'persona-test', Description: 'x', VpcId: ec2.vpc.vpcId }),
      ),
    );
    expect(duplicate.name).toBe('InvalidGroup.Duplicate');
    const rules = await client.send(
      new AuthorizeSecurityGroupIngressCommand({
        GroupId: groupId,
        IpPermissions: [
          { IpProtocol: 'tcp', FromPort: 80, ToPort: 80, IpRanges: [{ CidrIp: ec2.vpc.cidr }] },
        ],
      }),
    );
    expect(rules.Return).toBe(true);
    expect(rules.SecurityGroupRules?.[0]).toMatchObject({
      IpProtocol: 'tcp',
      FromPort: 80,
      CidrIpv4: ec2.vpc.cidr,
      IsEgress: false,
    });
    const described = await client.send(
      new DescribeSecurityGroupsCommand({ Filters: [{ Name: 'tag:persona:operation', Values: ['op-1'] }] }),
    );
    expect(described.SecurityGroups?.[0]?.IpPermissions?.[0]).toMatchObject({
      IpProtocol: 'tcp',
      FromPort: 80,
      ToPort: 80,
      IpRanges: [{ CidrIp: ec2.vpc.cidr }],
    });

    const input = launch({ ClientToken: token, SecurityGroupIds: [groupId] });
    const run = await client.send(new RunInstancesCommand(input));
    const instance = run.Instances?.[0];
    const id = instance?.InstanceId as string;
    expect(id).toMatch(/^i-[0-9a-f]{17}$/);
    expect(instance).toMatchObject({
      State: { Code: 0, Name: 'pending' },
      InstanceType: 'm7i.large',
      ClientToken: token,
      SubnetId: ec2.vpc.subnetId,
      VpcId: ec2.vpc.vpcId,
      MetadataOptions: { HttpTokens: 'required', HttpEndpoint: 'enabled' },
      Tags: [{ Key: 'persona:operation', Value: 'op-1' }],
      SecurityGroups: [{ GroupId: groupId, GroupName: 'persona-test' }],
      IamInstanceProfile: { Arn: 'arn:aws:iam::123456789012:instance-profile/persona-clone' },
    });
    expect(instance?.BlockDeviceMappings?.map((m) => m.DeviceName)).toEqual(['/dev/xvda', '/dev/sdf']);
    expect(ec2.instances.get(id)?.volumes.map((v) => [v.size, v.volumeType, v.encrypted])).toEqual([
      [10, 'gp3', true],
      [20, 'gp3', true],
    ]);

    // The same request with the same token is the same instance; another request with it is refused.
    const again = await client.send(new RunInstancesCommand(input));
    expect(again.Instances?.[0]?.InstanceId).toBe(id);
    const mismatch = await failure(
      client.send(new RunInstancesCommand({ ...input, InstanceType: 'm7i.xlarge' })),
    );
    expect(mismatch.name).toBe('IdempotentParameterMismatch');
    expect(ec2.instances.size).toBe(1);

    await until(async () => (await stateOf(id)) === 'running', 'the instance to run');
    // The agent registers a poll after the instance runs.
    const information = async () =>
      (
        await ssmClient.send(
          new DescribeInstanceInformationCommand({ Filters: [{ Key: 'InstanceIds', Values: [id] }] }),
        )
      ).InstanceInformationList ?? [];
    expect(await information()).toEqual([]);
    expect((await information())[0]?.PingStatus).toBe('Online');
    const transport = new SsmTransport({
      instanceId: id,
      ssm: ssmClient,
      pollDelayMs: { initial: 20, max: 100 },
    });
    const hostname = await transport.run('cat /etc/hostname');
    expect(hostname).toMatchObject({ exitCode: 0, stdout: `${id}\n` });
    const root = ec2.instances.get(id)?.host as { root?: string } | undefined;
    expect(root?.root && existsSync(root.root)).toBe(true);

    // Modify wants a stopped instance; a stopped one is out of SSM's reach until started.
    const running = await failure(
      client.send(
        new ModifyInstanceAttributeCommand({ InstanceId: id, InstanceType: { Value: 'm7i.xlarge' } }),
      ),
    );
    expect(running.name).toBe('IncorrectInstanceState');
    const stopping = await client.send(new StopInstancesCommand({ InstanceIds: [id] }));
    expect(stopping.StoppingInstances?.[0]).toMatchObject({
      CurrentState: { Name: 'stopping' },
      PreviousState: { Name: 'running' },
    });
    await until(async () => (await stateOf(id)) === 'stopped', 'the instance to stop');
    await client.send(
      new ModifyInstanceAttributeCommand({ InstanceId: id, InstanceType: { Value: 'm7i.xlarge' } }),
    );
    await client.send(new StartInstancesCommand({ InstanceIds: [id] }));
    await until(async () => (await stateOf(id)) === 'running', 'the instance to start');
    const started = await client.send(new DescribeInstancesCommand({ InstanceIds: [id] }));
    expect(started.Reservations?.[0]?.Instances?.[0]?.InstanceType).toBe('m7i.xlarge');

    const snapshots = await client.send(
      new CreateSnapshotsCommand({
        InstanceSpecification: { InstanceId: id },
        TagSpecifications: [
          { ResourceType: 'snapshot', Tags: [{ Key: 'persona:operation', Value: 'op-1' }] },
        ],
      }),
    );
    expect(snapshots.Snapshots?.map((s) => [s.VolumeSize, s.State, s.Encrypted])).toEqual([
      [10, 'pending', true],
      [20, 'pending', true],
    ]);
    expect(snapshots.Snapshots?.[0]?.SnapshotId).toMatch(/^snap-[0-9a-f]{17}$/);

    // The group is held by the instance until it is terminated.
    const held = await failure(client.send(new DeleteSecurityGroupCommand({ GroupId: groupId })));
    expect(held.name).toBe('DependencyViolation');

    const terminating = await client.send(new TerminateInstancesCommand({ InstanceIds: [id] }));
    expect(terminating.TerminatingInstances?.[0]).toMatchObject({
      InstanceId: id,
      CurrentState: { Code: 32, Name: 'shutting-down' },
      PreviousState: { Code: 16, Name: 'running' },
    });
    await until(async () => (await stateOf(id)) === 'terminated', 'the instance to terminate');
    expect(ec2.liveHosts()).toBe(0);
    expect(existsSync(root?.root as string)).toBe(false);
    const gone = await failure(transport.run('true'));
    expect(String(gone)).toMatch(/not a managed node|InvalidInstanceId|cannot receive commands/);
    const terminated = await client.send(new DescribeInstancesCommand({ InstanceIds: [id] }));
    expect(terminated.Reservations?.[0]?.Instances?.[0]?.StateReason?.Code).toBe(
      'Client.UserInitiatedShutdown',
    );
    // The instance's network interface lingers a moment after it is terminated.
    const lingering = await failure(client.send(new DeleteSecurityGroupCommand({ GroupId: groupId })));
    expect(lingering.name).toBe('DependencyViolation');
    await client.send(new DeleteSecurityGroupCommand({ GroupId: groupId }));
    expect(ec2.securityGroups.has(groupId)).toBe(false);
  });

  it('answers a launch that fails to boot with a terminated instance and its state reason', async () => {
    ec2.failNextLaunch();
    const run = await client.send(new RunInstancesCommand(launch()));
    const id = run.Instances?.[0]?.InstanceId as string;
    await until(async () => (await stateOf(id)) === 'terminated', 'the failed launch to end');
    const out = await client.send(new DescribeInstancesCommand({ InstanceIds: [id] }));
    expect(out.Reservations?.[0]?.Instances?.[0]?.StateReason).toEqual({
      Code: 'Server.InternalError',
      Message: 'Server.InternalError: Internal error on launch',
    });
    const unknown = await failure(
      client.send(new DescribeInstancesCommand({ InstanceIds: ['i-0123456789abcdef0'] })),
    );
    expect(unknown.name).toBe('InvalidInstanceID.NotFound');
  });
});
