// AWS EC2: a clone's host is an instance launched for the operation and reached over SSM Run
// Command (no inbound port, no key pair). What it chooses and why is in EC2.md:
// - the instance type from the source's processor and memory (ec2-types.ts), trying the next
//   candidate when EC2 has no capacity for one or does not offer it in the subnet's zone;
// - the image: the request's AMI, the source's own AMI, or its distribution's official image;
// - encrypted gp3 volumes as large as the source's, IMDSv2 required, Persona's operation tag on
//   everything it makes, and a security group of its own open only to the VPC on the source's
//   application ports;
// - terminate refuses an instance that does not carry the operation's tag, so a rollback can
//   never end a machine Persona did not launch for it.
//
// Throttling is the SDK's business: its standard retry strategy (configure `maxAttempts` on the
// client) retries RequestLimitExceeded and server errors with back-off; no loop here retries on
// top of it. Choosing the next instance type after a capacity error is not a retry.
import {
  type _InstanceType,
  AuthorizeSecurityGroupIngressCommand,
  CreateSecurityGroupCommand,
  CreateSnapshotsCommand,
  DeleteSecurityGroupCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeSecurityGroupsCommand,
  DescribeSubnetsCommand,
  DescribeVpcsCommand,
  type EC2Client,
  type Filter,
  type Image,
  type Instance,
  type IpPermission,
  ModifyInstanceAttributeCommand,
  paginateDescribeImages,
  paginateDescribeInstances,
  paginateDescribeSecurityGroups,
  RunInstancesCommand,
  StartInstancesCommand,
  StopInstancesCommand,
  type Tag,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { DescribeInstanceInformationCommand, type SSMClient } from '@aws-sdk/client-ssm';
import { InvalidInputError, type Issue, NotFoundError, PersonaError } from '../errors.js';
import { displayValue } from '../transport/shell.js';
import { type SsmOutputBucket, SsmTransport, type SsmTransportOptions } from '../transport/ssm.js';
import type { Transport } from '../transport/transport.js';
import { checkName } from './baremetal.js';
import { type Ec2Arch, ec2Arch, instanceTypeCandidates, typeArch } from './ec2-types.js';
import type {
  PlatformAdaptor,
  PlatformSnapshotRef,
  ProvisionedHost,
  ProvisionHandle,
  ProvisionRequest,
  ProvisionStatus,
  ResizeOptions,
  ResizeResult,
  SnapshotScope,
} from './platform.js';
import type { HostShape } from './shape.js';

/** The tag every resource launched for an operation carries; terminate requires it. */
export const OPERATION_TAG = 'persona:operation';

export interface Ec2PlatformOptions {
  /** Built by the composition root (region, credentials, `maxAttempts`; an endpoint in tests). */
  readonly ec2: EC2Client;
  readonly ssm: SSMClient;
  readonly region: string;
  /** Where SSM writes command output over its inline limits (as SsmTransport takes it). */
  readonly ssmOutput?: SsmOutputBucket;
  /** Instance types to try after the mapped one (ec2-types.ts: those that cannot fit are skipped). */
  readonly preferredTypes?: readonly string[];
  /** Passed to each SsmTransport: poll delays, time-outs. */
  readonly transport?: Omit<SsmTransportOptions, 'instanceId' | 'ssm' | 'output'>;
  /**
   * `intervalMs`: what poll asks the workflow to wait, and how often terminate and resize look
   * again (default 5 s); `timeoutMs`: how long they wait for an instance to reach a state
   * (default 10 minutes: a termination takes one or two).
   */
  readonly waits?: { readonly intervalMs?: number; readonly timeoutMs?: number };
  readonly sleep?: (ms: number) => Promise<void>;
  readonly now?: () => number;
}

/** Every candidate instance type was refused for capacity or zone: nothing was launched. */
export class Ec2CapacityError extends PersonaError {
  readonly code = 'CONFLICT';
  constructor(
    readonly tried: readonly { readonly instanceType: string; readonly reason: string }[],
    options?: ErrorOptions,
  ) {
    super(
      `EC2 could not launch any of the candidate instance types: ${tried
        .map((t) => `${t.instanceType} (${t.reason})`)
        .join(', ')}; name another with target.size or preferred types`,
      options,
    );
    this.name = 'Ec2CapacityError';
  }
}

/** The instance does not carry this operation's tag: Persona did not launch it for the operation. */
export class Ec2NotOwnedError extends PersonaError {
  readonly code = 'CONFLICT';
  constructor(
    readonly instanceId: string,
    readonly operation: string,
  ) {
    super(
      `instance ${instanceId} does not carry ${OPERATION_TAG}=${operation}: it was not launched by this operation and is left alone`,
    );
    this.name = 'Ec2NotOwnedError';
  }
}

/** An instance did not reach the state waited for within the bound. */
export class Ec2WaitTimeoutError extends PersonaError {
  readonly code = 'CONFLICT';
  constructor(message: string) {
    super(message);
    this.name = 'Ec2WaitTimeoutError';
  }
}

/**
 * Restoring an EC2 host from its EBS snapshots is not done: a clone's instance is new, so its
 * rollback terminates it instead (CreateReplaceRootVolumeTask would be the way, later).
 */
export class Ec2RestoreUnsupportedError extends PersonaError {
  readonly code = 'CONFLICT';
  constructor(readonly instanceId: string) {
    super(
      `restoring instance ${instanceId} from its EBS snapshots is not supported: a clone's instance is terminated on rollback instead`,
    );
    this.name = 'Ec2RestoreUnsupportedError';
  }
}

const SUBNET = /^subnet-[0-9a-f]{8}([0-9a-f]{9})?$/;
const GROUP = /^sg-[0-9a-f]{8}([0-9a-f]{9})?$/;
const AMI = /^ami-[0-9a-f]{8}([0-9a-f]{9})?$/;
const INSTANCE = /^i-[0-9a-f]{8}([0-9a-f]{9})?$/;
const INSTANCE_TYPE = /^[a-z][a-z0-9-]*\.[a-z0-9-]+$/;
const PROFILE_NAME = /^[\w+=,.@-]{1,128}$/;
const PROFILE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:instance-profile\/[\w+=,.@/-]{1,512}$/;
const CIDR4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}\/(3[0-2]|[12]?\d)$/;
const VERSION = /^\d{1,4}(\.\d{1,4}){0,2}$/;
const GIB = 1024 ** 3;
/** gp3's largest volume. */
const MAX_VOLUME_GIB = 16_384;
/** Device names for volumes after the root, as the EC2 documentation recommends for Linux. */
const DATA_DEVICES = 'fghijklmnop'.split('').map((c) => `/dev/sd${c}`);
/** EC2's limit is 50 tags per resource; one is Persona's. */
const MAX_TAGS = 49;

/** How to find a distribution's official images: the publisher's account and name pattern. */
export interface ImageQuery {
  readonly owner: string;
  readonly name: string;
  readonly architecture: Ec2Arch;
  /** How the lookup is named in messages: `debian 12 (x86_64)`. */
  readonly label: string;
}

/**
 * The official image query for a distribution release (EC2.md). Undefined for a distribution
 * without one; the version must be digits and dots, so that it cannot widen the name pattern.
 */
export function officialImageQuery(os: HostShape['os'], architecture: Ec2Arch): ImageQuery | undefined {
  if (!VERSION.test(os.version)) return undefined;
  const debianArch = architecture === 'x86_64' ? 'amd64' : 'arm64';
  const label = `${os.distribution} ${os.version} (${architecture})`;
  const major = os.version.split('.')[0] as string;
  switch (os.distribution) {
    case 'debian':
      return { owner: '136693071363', name: `debian-${major}-${debianArch}-*`, architecture, label };
    case 'ubuntu':
      // hvm-ssd (to 22.04) and hvm-ssd-gp3 (24.04 on) folders; the codename sits before the version.
      return {
        owner: '099720109477',
        name: `ubuntu/images/hvm-ssd*/ubuntu-*-${os.version}-${debianArch}-server-*`,
        architecture,
        label,
      };
    case 'amzn':
    case 'amazon':
      if (major === '2023')
        return { owner: 'amazon', name: `al2023-ami-2023.*-kernel-*-${architecture}`, architecture, label };
      if (major === '2')
        return { owner: 'amazon', name: `amzn2-ami-kernel-*-hvm-*-${architecture}-gp2`, architecture, label };
      return undefined;
    case 'rhel':
      return {
        owner: '309956199498',
        name: `RHEL-${os.version}*_HVM-*-${architecture}-*`,
        architecture,
        label,
      };
    default:
      return undefined;
  }
}

interface Checked {
  readonly operation: string;
  readonly subnet: string;
  readonly groups: readonly string[];
  readonly profile: { readonly Name: string } | { readonly Arn: string };
  readonly arch: Ec2Arch;
  readonly image?: string;
  readonly size?: string;
  readonly sourceCidrs?: readonly string[];
  readonly tags: readonly Tag[];
  readonly volumes: readonly { readonly sizeBytes: number }[];
}

interface ResolvedImage {
  readonly imageId: string;
  readonly rootDeviceName: string;
  readonly rootSizeGiB: number;
}

const nameOf = (e: unknown) => (e as { name?: string } | null)?.name;

export class Ec2Platform implements PlatformAdaptor {
  readonly platform = 'ec2' as const;
  private readonly intervalMs: number;
  private readonly timeoutMs: number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly now: () => number;

  constructor(private readonly options: Ec2PlatformOptions) {
    this.intervalMs = options.waits?.intervalMs ?? 5000;
    this.timeoutMs = options.waits?.timeoutMs ?? 600_000;
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.now = options.now ?? Date.now;
  }

  async provision(request: ProvisionRequest): Promise<ProvisionHandle> {
    const checked = this.check(request);
    // A retried step finds what the first attempt launched, whatever type it fell back to (the
    // client token alone would answer IdempotentParameterMismatch for another type).
    const existing = await this.operationInstance(checked.operation);
    if (existing) return this.handle(checked.operation, existing);
    const candidates = instanceTypeCandidates({
      arch: checked.arch,
      ...(request.shape?.cpus === undefined ? {} : { cpus: request.shape.cpus }),
      ...(request.shape?.memoryBytes === undefined ? {} : { memoryBytes: request.shape.memoryBytes }),
      ...(checked.size === undefined ? {} : { size: checked.size }),
      ...(this.options.preferredTypes === undefined ? {} : { preferred: this.options.preferredTypes }),
    });
    if (candidates.length === 0) {
      throw new InvalidInputError('no instance type of the mapping is large enough for the source', [
        {
          path: 'target.size',
          message: `${request.shape?.cpus ?? '?'} vCPUs and ${Math.ceil((request.shape?.memoryBytes ?? 0) / GIB)} GiB on ${checked.arch}: name an instance type`,
        },
      ]);
    }
    const image = await this.image(checked, request.shape);
    const network = await this.network(checked.subnet);
    const groupId = await this.securityGroup(checked, network, request.shape?.ingress ?? []);
    const tried: { instanceType: string; reason: string }[] = [];
    try {
      for (const instanceType of candidates) {
        try {
          const out = await this.options.ec2.send(
            new RunInstancesCommand({
              ImageId: image.imageId,
              InstanceType: instanceType as _InstanceType,
              MinCount: 1,
              MaxCount: 1,
              SubnetId: checked.subnet,
              SecurityGroupIds: [groupId, ...checked.groups.filter((g) => g !== groupId)],
              IamInstanceProfile: checked.profile,
              MetadataOptions: { HttpTokens: 'required', HttpEndpoint: 'enabled' },
              BlockDeviceMappings: this.volumes(checked.volumes, image),
              TagSpecifications: [
                { ResourceType: 'instance', Tags: [...checked.tags] },
                { ResourceType: 'volume', Tags: [...checked.tags] },
              ],
              ClientToken: checked.operation,
            }),
          );
          const id = out.Instances?.[0]?.InstanceId;
          if (id === undefined)
            throw new Error(`RunInstances answered without an instance for ${checked.operation}`);
          return this.handle(checked.operation, id);
        } catch (error) {
          const name = nameOf(error);
          if (name === 'InsufficientInstanceCapacity' || name === 'Unsupported') {
            tried.push({ instanceType, reason: name });
            continue;
          }
          if (name === 'IdempotentParameterMismatch') {
            const launched = await this.operationInstance(checked.operation);
            if (launched) return this.handle(checked.operation, launched);
          }
          throw error;
        }
      }
      throw new Ec2CapacityError(tried);
    } catch (error) {
      // Nothing was launched for the operation (or it cannot be known): its group goes too. If an
      // instance does hold it after all, the delete fails and terminate removes it later.
      await this.options.ec2.send(new DeleteSecurityGroupCommand({ GroupId: groupId })).catch(() => {});
      throw error;
    }
  }

  async poll(handle: ProvisionHandle): Promise<ProvisionStatus> {
    this.checkHandle(handle);
    let instance: Instance | undefined;
    try {
      instance = await this.describe(handle.id);
    } catch (error) {
      // DescribeInstances is eventually consistent: a just-launched instance may not show yet.
      if (nameOf(error) !== 'InvalidInstanceID.NotFound') throw error;
    }
    if (instance === undefined)
      return {
        state: 'pending',
        retryAfterMs: this.intervalMs,
        detail: `instance ${handle.id} is not visible yet`,
      };
    if (tagOf(instance, OPERATION_TAG) !== handle.operation)
      return { state: 'failed', reason: new Ec2NotOwnedError(handle.id, handle.operation).message };
    const state = instance.State?.Name ?? 'pending';
    if (state === 'pending')
      return { state: 'pending', retryAfterMs: this.intervalMs, detail: `instance ${handle.id} is pending` };
    if (state !== 'running') {
      const why = instance.StateReason?.Message || instance.StateTransitionReason || 'no reason given';
      return { state: 'failed', reason: `instance ${handle.id} is ${state}: ${why}` };
    }
    const info = await this.options.ssm.send(
      new DescribeInstanceInformationCommand({ Filters: [{ Key: 'InstanceIds', Values: [handle.id] }] }),
    );
    const node = info.InstanceInformationList?.find((n) => n.InstanceId === handle.id);
    if (node?.PingStatus !== 'Online') {
      return {
        state: 'pending',
        retryAfterMs: this.intervalMs,
        detail: `instance ${handle.id} is running; its SSM Agent is ${node?.PingStatus ?? 'not registered yet'} (the instance profile needs AmazonSSMManagedInstanceCore and the subnet a route to SSM)`,
      };
    }
    return {
      state: 'ready',
      host: {
        ...handle,
        access: {
          transport: 'ssm',
          instanceId: handle.id,
          region: this.options.region,
          ...(instance.PrivateIpAddress ? { address: instance.PrivateIpAddress } : {}),
        },
      },
    };
  }

  /** EBS snapshots of every volume of the instance, root first; the scope is the whole volumes. */
  async snapshot(host: ProvisionedHost, _scope: SnapshotScope): Promise<PlatformSnapshotRef> {
    this.checkHandle(host);
    const instance = await this.owned(host);
    const out = await this.options.ec2.send(
      new CreateSnapshotsCommand({
        InstanceSpecification: { InstanceId: host.id },
        Description: `Persona operation ${host.operation}`,
        TagSpecifications: [
          { ResourceType: 'snapshot', Tags: [{ Key: OPERATION_TAG, Value: host.operation }] },
        ],
        CopyTagsFromSource: 'volume',
      }),
    );
    const rootVolume = instance.BlockDeviceMappings?.find((m) => m.DeviceName === instance.RootDeviceName)
      ?.Ebs?.VolumeId;
    const snapshots = [...(out.Snapshots ?? [])].sort(
      (a, b) => Number(b.VolumeId === rootVolume) - Number(a.VolumeId === rootVolume),
    );
    const ids = snapshots.flatMap((s) => (s.SnapshotId ? [s.SnapshotId] : []));
    return { platform: 'ec2', id: ids.join(','), host: host.id };
  }

  async restore(host: ProvisionedHost, _snapshot: PlatformSnapshotRef): Promise<void> {
    throw new Ec2RestoreUnsupportedError(host.id);
  }

  /**
   * Stop, change the type, start: EC2 changes the type of a stopped instance only. A type EC2 has
   * no capacity for (InsufficientInstanceCapacity when the instance starts, Unsupported in its
   * zone) gives way to the next of `fallback`; when none can run, the instance gets its own type
   * back and is started again as it was, and Ec2CapacityError names what was tried.
   */
  async resize(host: ProvisionedHost, size: string, options: ResizeOptions = {}): Promise<ResizeResult> {
    this.checkHandle(host);
    const candidates = [size, ...(options.fallback ?? []).filter((t) => t !== size)];
    for (const [i, type] of candidates.entries()) {
      if (!INSTANCE_TYPE.test(type)) {
        throw new InvalidInputError(`${displayValue(type)} is not an EC2 instance type`, [
          {
            path: i === 0 ? 'size' : `fallback[${i - 1}]`,
            message: 'expected an instance type such as m7i.large',
          },
        ]);
      }
    }
    const instance = await this.owned(host);
    const previous = instance.InstanceType;
    if (previous === size) return { state: 'unchanged', size };
    for (const type of candidates) {
      const arch = typeArch(type);
      if (arch !== undefined && instance.Architecture !== undefined && arch !== instance.Architecture) {
        throw new InvalidInputError(`${type} is ${arch}; instance ${host.id} runs ${instance.Architecture}`, [
          { path: 'size', message: `expected an ${instance.Architecture} instance type` },
        ]);
      }
    }
    const running = instance.State?.Name === 'running' || instance.State?.Name === 'pending';
    if (running) {
      await this.options.ec2.send(new StopInstancesCommand({ InstanceIds: [host.id] }));
      await this.waitFor(host.id, 'stopped');
    } else if (instance.State?.Name !== 'stopped') {
      await this.waitFor(host.id, 'stopped');
    }
    const tried: { instanceType: string; reason: string }[] = [];
    for (const type of candidates) {
      try {
        await this.setType(host.id, type, running);
        return { state: 'resized', size: type, restarted: running, ...(previous ? { previous } : {}) };
      } catch (error) {
        const name = nameOf(error);
        if (name !== 'InsufficientInstanceCapacity' && name !== 'Unsupported') throw error;
        tried.push({ instanceType: type, reason: name });
      }
    }
    // No candidate runs: the instance goes back to the type it had, as it was.
    if (previous !== undefined) await this.setType(host.id, previous, running);
    throw new Ec2CapacityError(tried);
  }

  private async setType(id: string, type: string, start: boolean): Promise<void> {
    await this.options.ec2.send(
      new ModifyInstanceAttributeCommand({ InstanceId: id, InstanceType: { Value: type } }),
    );
    if (start) {
      await this.options.ec2.send(new StartInstancesCommand({ InstanceIds: [id] }));
      await this.waitFor(id, 'running');
    }
  }

  /**
   * Terminates the operation's instance, if it is still there and carries the operation's tag,
   * waits until it is gone, then deletes the operation's security group. Idempotent.
   */
  async terminate(handle: ProvisionHandle): Promise<void> {
    this.checkHandle(handle);
    let instance: Instance | undefined;
    try {
      instance = await this.describe(handle.id);
    } catch (error) {
      if (nameOf(error) !== 'InvalidInstanceID.NotFound') throw error;
    }
    if (instance !== undefined && instance.State?.Name !== 'terminated') {
      if (tagOf(instance, OPERATION_TAG) !== handle.operation)
        throw new Ec2NotOwnedError(handle.id, handle.operation);
      await this.options.ec2.send(new TerminateInstancesCommand({ InstanceIds: [handle.id] }));
      await this.waitFor(handle.id, 'terminated');
    }
    await this.deleteSecurityGroups(handle.operation);
  }

  async transport(host: ProvisionedHost): Promise<Transport> {
    if (host.platform !== 'ec2' || host.access.transport !== 'ssm') {
      throw new NotFoundError(`host ${host.id} is not an EC2 instance reached over SSM`, host.id);
    }
    return new SsmTransport({
      ...this.options.transport,
      instanceId: host.access.instanceId,
      ssm: this.options.ssm,
      ...(this.options.ssmOutput === undefined ? {} : { output: this.options.ssmOutput }),
    });
  }

  // --- provisioning, step by step ----------------------------------------------------------

  /** Every problem of the request at once, each naming its field. */
  private check(request: ProvisionRequest): Checked {
    const issues: Issue[] = [];
    const issue = (path: string, message: string) => issues.push({ path, message });
    const operation = checkName(request.operation, 'operation');
    if (operation.length > 64)
      issue('operation', 'at most 64 characters: it is the RunInstances client token');
    const subnet = request.network?.subnet;
    if (subnet === undefined || subnet === '')
      issue('target.subnet', 'required: the subnet (subnet-...) to launch in');
    else if (!SUBNET.test(subnet))
      issue('target.subnet', `${displayValue(subnet)} is not a subnet id (subnet-...)`);
    const groups = (request.network?.securityGroups ?? '')
      .split(',')
      .map((g) => g.trim())
      .filter((g) => g !== '');
    for (const g of groups)
      if (!GROUP.test(g))
        issue('target.securityGroups', `${displayValue(g)} is not a security group id (sg-...)`);
    const profileText = request.parameters?.instanceProfile;
    let profile: Checked['profile'] = { Name: '' };
    if (profileText === undefined || profileText === '')
      issue(
        'target.instanceProfile',
        'required: an instance profile (name or ARN) whose role has AmazonSSMManagedInstanceCore',
      );
    else if (PROFILE_ARN.test(profileText)) profile = { Arn: profileText };
    else if (PROFILE_NAME.test(profileText)) profile = { Name: profileText };
    else
      issue('target.instanceProfile', `${displayValue(profileText)} is not an instance profile name or ARN`);
    const archText = request.shape?.arch ?? 'x86_64';
    const arch = ec2Arch(archText);
    if (arch === undefined)
      issue('spec.os.arch', `EC2 has no ${displayValue(archText)} instances (x86_64 and aarch64 only)`);
    if (request.image !== undefined && !AMI.test(request.image))
      issue('target.image', `${displayValue(request.image)} is not an AMI id (ami-...)`);
    if (request.size !== undefined && !INSTANCE_TYPE.test(request.size))
      issue('target.size', `${displayValue(request.size)} is not an instance type (such as m7i.large)`);
    const cidrText = request.parameters?.ingressCidr;
    const sourceCidrs = cidrText
      ?.split(',')
      .map((c) => c.trim())
      .filter((c) => c !== '');
    for (const c of sourceCidrs ?? [])
      if (!CIDR4.test(c)) issue('target.ingressCidr', `${displayValue(c)} is not an IPv4 CIDR block`);
    const tags: Tag[] = [{ Key: OPERATION_TAG, Value: operation }];
    const entries = Object.entries(request.tags ?? {});
    if (entries.length > MAX_TAGS) issue('target.tags', `at most ${MAX_TAGS} tags`);
    for (const [key, value] of entries) {
      // EC2 takes any characters in tags: they are data in an API parameter, never in a command.
      if (key.length === 0 || key.length > 128)
        issue(`target.tags.${key}`, 'a tag key has 1 to 128 characters');
      else if (key.toLowerCase().startsWith('aws:'))
        issue(`target.tags.${key}`, 'the aws: prefix is reserved by AWS');
      else if (key === OPERATION_TAG) issue(`target.tags.${key}`, 'set by Persona itself');
      else if (value.length > 256) issue(`target.tags.${key}`, 'a tag value has at most 256 characters');
      else tags.push({ Key: key, Value: value });
    }
    const volumes = request.volumes ?? request.shape?.volumes ?? [];
    volumes.forEach((v, i) => {
      if (!(v.sizeBytes >= 0) || Math.ceil(v.sizeBytes / GIB) > MAX_VOLUME_GIB)
        issue(`spec.storage.volumes[${i}].sizeBytes`, `a gp3 volume has at most ${MAX_VOLUME_GIB} GiB`);
    });
    if (volumes.filter((v) => v.sizeBytes > 0).length > DATA_DEVICES.length + 1)
      issue(
        'spec.storage.volumes',
        `at most ${DATA_DEVICES.length + 1} volumes (the root and ${DATA_DEVICES.length} more)`,
      );
    if (issues.length > 0 || subnet === undefined || arch === undefined) {
      throw new InvalidInputError(`the EC2 target of operation ${operation} is not valid`, issues);
    }
    return {
      operation,
      subnet,
      groups,
      profile,
      arch,
      ...(request.image === undefined ? {} : { image: request.image }),
      ...(request.size === undefined ? {} : { size: request.size }),
      ...(sourceCidrs === undefined || sourceCidrs.length === 0 ? {} : { sourceCidrs }),
      tags,
      volumes,
    };
  }

  private handle(operation: string, instanceId: string): ProvisionHandle {
    return { platform: 'ec2', operation, id: instanceId, scope: this.options.region };
  }

  private checkHandle(handle: ProvisionHandle): void {
    if (handle.platform !== 'ec2' || !INSTANCE.test(handle.id)) {
      throw new InvalidInputError(`${displayValue(handle.id)} is not an EC2 instance of this adaptor`, [
        { path: 'handle.id', message: 'expected an instance id (i-...) on platform ec2' },
      ]);
    }
  }

  /** The live instance launched for the operation, found by its tag. */
  private async operationInstance(operation: string): Promise<string | undefined> {
    const pages = paginateDescribeInstances(
      { client: this.options.ec2 },
      {
        Filters: [
          { Name: `tag:${OPERATION_TAG}`, Values: [operation] },
          { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped'] },
        ],
      },
    );
    for await (const page of pages)
      for (const r of page.Reservations ?? [])
        for (const i of r.Instances ?? []) if (i.InstanceId) return i.InstanceId;
    return undefined;
  }

  /**
   * The request's AMI; else the source's own AMI (AMI ids are regional: one not found in this
   * region is passed over); else the newest official image of the source's distribution.
   */
  private async image(checked: Checked, shape: HostShape | undefined): Promise<ResolvedImage> {
    if (checked.image !== undefined) {
      const image = await this.imageById(checked.image, 'target.image');
      if (image === undefined) {
        throw new InvalidInputError(`AMI ${checked.image} does not exist in ${this.options.region}`, [
          { path: 'target.image', message: 'not found (AMI ids are regional)' },
        ]);
      }
      return this.resolved(image, checked.arch, 'target.image');
    }
    const base = shape?.baseImage;
    if (base !== undefined && base.platform === 'aws' && AMI.test(base.ref)) {
      const image = await this.imageById(base.ref, 'spec.baseImage.ref');
      if (image !== undefined && image.Architecture === checked.arch)
        return this.resolved(image, checked.arch, 'spec.baseImage.ref');
    }
    if (shape === undefined) {
      throw new InvalidInputError('an EC2 target needs an AMI or the source to find its image by', [
        { path: 'target.image', message: 'required when the source shape is not given' },
      ]);
    }
    const os = shape.os;
    const query = officialImageQuery(os, checked.arch);
    if (query === undefined) {
      throw new InvalidInputError(
        `no official EC2 image is known for ${displayValue(os.distribution)} ${displayValue(os.version)}: name an AMI`,
        [{ path: 'target.image', message: `required for distribution ${displayValue(os.distribution)}` }],
      );
    }
    let newest: Image | undefined;
    const pages = paginateDescribeImages(
      { client: this.options.ec2 },
      {
        Owners: [query.owner],
        Filters: [
          { Name: 'name', Values: [query.name] },
          { Name: 'architecture', Values: [query.architecture] },
          { Name: 'state', Values: ['available'] },
          { Name: 'root-device-type', Values: ['ebs'] },
        ] satisfies Filter[],
      },
    );
    for await (const page of pages) {
      for (const image of page.Images ?? []) {
        if ((image.CreationDate ?? '') > (newest?.CreationDate ?? '')) newest = image;
      }
    }
    if (newest === undefined) {
      throw new NotFoundError(
        `no official ${query.label} image in ${this.options.region} (owner ${query.owner}, name ${query.name}): name an AMI with target.image`,
        query.label,
      );
    }
    return this.resolved(newest, checked.arch, 'target.image');
  }

  private async imageById(imageId: string, field: string): Promise<Image | undefined> {
    try {
      const out = await this.options.ec2.send(new DescribeImagesCommand({ ImageIds: [imageId] }));
      return out.Images?.[0];
    } catch (error) {
      if (nameOf(error) === 'InvalidAMIID.NotFound') return undefined;
      if (nameOf(error) === 'InvalidAMIID.Malformed')
        throw new InvalidInputError(`${imageId} is not an AMI id`, [{ path: field, message: 'malformed' }], {
          cause: error,
        });
      throw error;
    }
  }

  private resolved(image: Image, arch: Ec2Arch, field: string): ResolvedImage {
    if (image.Architecture !== undefined && image.Architecture !== arch) {
      throw new InvalidInputError(`AMI ${image.ImageId} is ${image.Architecture}, the source is ${arch}`, [
        { path: field, message: `expected an ${arch} image` },
      ]);
    }
    const rootDeviceName = image.RootDeviceName ?? '/dev/xvda';
    const root = image.BlockDeviceMappings?.find((m) => m.DeviceName === rootDeviceName);
    return {
      imageId: image.ImageId as string,
      rootDeviceName,
      rootSizeGiB: root?.Ebs?.VolumeSize ?? 8,
    };
  }

  /** Encrypted gp3 volumes as large as the source's (rounded up to GiB); the root at least the AMI's. */
  private volumes(volumes: Checked['volumes'], image: ResolvedImage) {
    const gib = (bytes: number) => Math.ceil(bytes / GIB);
    const ebs = (size: number) => ({
      VolumeSize: size,
      VolumeType: 'gp3' as const,
      Encrypted: true,
      DeleteOnTermination: true,
    });
    const [root, ...rest] = volumes;
    // A data volume of no size (an empty drive) has nothing to hold: it is not made.
    const data = rest.filter((v) => v.sizeBytes > 0);
    return [
      {
        DeviceName: image.rootDeviceName,
        Ebs: ebs(Math.max(image.rootSizeGiB, root ? gib(root.sizeBytes) : 0)),
      },
      ...data.map((v, i) => ({ DeviceName: DATA_DEVICES[i] as string, Ebs: ebs(gib(v.sizeBytes)) })),
    ];
  }

  private async network(subnetId: string): Promise<{ vpcId: string; cidrs: string[] }> {
    let vpcId: string | undefined;
    try {
      const out = await this.options.ec2.send(new DescribeSubnetsCommand({ SubnetIds: [subnetId] }));
      vpcId = out.Subnets?.[0]?.VpcId;
    } catch (error) {
      if (nameOf(error) !== 'InvalidSubnetID.NotFound') throw error;
    }
    if (vpcId === undefined) {
      throw new InvalidInputError(`subnet ${subnetId} does not exist in ${this.options.region}`, [
        { path: 'target.subnet', message: 'not found' },
      ]);
    }
    const vpcs = await this.options.ec2.send(new DescribeVpcsCommand({ VpcIds: [vpcId] }));
    const vpc = vpcs.Vpcs?.[0];
    const cidrs = [
      ...new Set([
        ...(vpc?.CidrBlock ? [vpc.CidrBlock] : []),
        ...(vpc?.CidrBlockAssociationSet ?? [])
          .filter((a) => a.CidrBlockState?.State === 'associated' && a.CidrBlock)
          .map((a) => a.CidrBlock as string),
      ]),
    ];
    return { vpcId, cidrs };
  }

  /**
   * The operation's own group in the subnet's VPC: the source's application ports open to the
   * VPC (never the internet unless `ingressCidr` says so). Found again on a retried step; only
   * the rules it lacks are added.
   */
  private async securityGroup(
    checked: Checked,
    network: { vpcId: string; cidrs: readonly string[] },
    ingress: HostShape['ingress'],
  ): Promise<string> {
    const name = `persona-${checked.operation}`;
    let group = await this.findGroup(name, network.vpcId);
    if (group === undefined) {
      try {
        const out = await this.options.ec2.send(
          new CreateSecurityGroupCommand({
            GroupName: name,
            Description: `Persona operation ${checked.operation}: the source application ports`,
            VpcId: network.vpcId,
            TagSpecifications: [{ ResourceType: 'security-group', Tags: [...checked.tags] }],
          }),
        );
        group = { id: out.GroupId as string, permissions: [] };
      } catch (error) {
        if (nameOf(error) !== 'InvalidGroup.Duplicate') throw error;
        group = await this.findGroup(name, network.vpcId);
        if (group === undefined) throw error;
      }
    }
    const sources = checked.sourceCidrs ?? network.cidrs;
    const have = new Set(
      group.permissions.flatMap((p) =>
        (p.IpRanges ?? []).map((r) => `${p.IpProtocol}/${p.FromPort}/${p.ToPort}/${r.CidrIp}`),
      ),
    );
    const wanted: IpPermission[] = [];
    for (const { protocol, port } of ingress) {
      const ranges = sources.filter((cidr) => !have.has(`${protocol}/${port}/${port}/${cidr}`));
      if (ranges.length > 0)
        wanted.push({
          IpProtocol: protocol,
          FromPort: port,
          ToPort: port,
          IpRanges: ranges.map((cidr) => ({
            CidrIp: cidr,
            Description: `Persona: source listens on ${protocol}/${port}`,
          })),
        });
    }
    if (wanted.length > 0) {
      await this.options.ec2.send(
        new AuthorizeSecurityGroupIngressCommand({ GroupId: group.id, IpPermissions: wanted }),
      );
    }
    return group.id;
  }

  private async findGroup(
    name: string,
    vpcId: string,
  ): Promise<{ id: string; permissions: IpPermission[] } | undefined> {
    const out = await this.options.ec2.send(
      new DescribeSecurityGroupsCommand({
        Filters: [
          { Name: 'group-name', Values: [name] },
          { Name: 'vpc-id', Values: [vpcId] },
        ],
      }),
    );
    const g = out.SecurityGroups?.[0];
    return g?.GroupId ? { id: g.GroupId, permissions: g.IpPermissions ?? [] } : undefined;
  }

  /** The operation's groups, deleted once no instance holds them (DependencyViolation until then). */
  private async deleteSecurityGroups(operation: string): Promise<void> {
    const ids: string[] = [];
    const pages = paginateDescribeSecurityGroups(
      { client: this.options.ec2 },
      { Filters: [{ Name: `tag:${OPERATION_TAG}`, Values: [operation] }] },
    );
    for await (const page of pages)
      for (const g of page.SecurityGroups ?? []) if (g.GroupId) ids.push(g.GroupId);
    const deadline = this.now() + this.timeoutMs;
    for (const id of ids) {
      for (;;) {
        try {
          await this.options.ec2.send(new DeleteSecurityGroupCommand({ GroupId: id }));
          break;
        } catch (error) {
          if (nameOf(error) === 'InvalidGroup.NotFound') break;
          if (nameOf(error) !== 'DependencyViolation' || this.now() > deadline) throw error;
          // The terminated instance's network interface is released a moment after it is gone.
          await this.sleep(this.intervalMs);
        }
      }
    }
  }

  // --- instances ----------------------------------------------------------------------------

  private async describe(instanceId: string): Promise<Instance | undefined> {
    const out = await this.options.ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
    return out.Reservations?.[0]?.Instances?.find((i) => i.InstanceId === instanceId);
  }

  /** The instance, if it carries the operation's tag; Ec2NotOwnedError otherwise. */
  private async owned(host: ProvisionHandle): Promise<Instance> {
    const instance = await this.describe(host.id);
    if (instance === undefined || tagOf(instance, OPERATION_TAG) !== host.operation)
      throw new Ec2NotOwnedError(host.id, host.operation);
    return instance;
  }

  private async waitFor(instanceId: string, state: 'stopped' | 'running' | 'terminated'): Promise<void> {
    const deadline = this.now() + this.timeoutMs;
    for (;;) {
      let current: string | undefined;
      try {
        current = (await this.describe(instanceId))?.State?.Name;
      } catch (error) {
        if (nameOf(error) !== 'InvalidInstanceID.NotFound') throw error;
        // A terminated instance eventually leaves DescribeInstances altogether.
        if (state === 'terminated') return;
      }
      if (current === state || (current === undefined && state === 'terminated')) return;
      if (state !== 'terminated' && current === 'terminated')
        throw new Ec2WaitTimeoutError(
          `instance ${instanceId} was terminated while waiting for it to be ${state}`,
        );
      if (this.now() > deadline)
        throw new Ec2WaitTimeoutError(
          `instance ${instanceId} is still ${current ?? 'unknown'} after ${Math.round(this.timeoutMs / 1000)} s waiting for ${state}`,
        );
      await this.sleep(this.intervalMs);
    }
  }
}

function tagOf(instance: Instance, key: string): string | undefined {
  return instance.Tags?.find((t) => t.Key === key)?.Value;
}
