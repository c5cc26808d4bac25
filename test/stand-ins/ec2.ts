// A stand-in for the Amazon EC2 API that really provisions: an HTTP server on loopback speaking
// the EC2 Query protocol (POST form-encoded `Action=...&Version=2016-11-15`, XML answers in the
// `http://ec2.amazonaws.com/doc/2016-11-15/` namespace), whose RunInstances creates a real test
// host (test/hosts/harness.ts) and registers it with the SSM stand-in as the managed node of the
// instance, so that SendCommand runs on it; TerminateInstances destroys it.
//
// Response shapes follow the EC2 API Reference (docs.aws.amazon.com/AWSEC2/latest/APIReference/
// API_<Action>.html, "Response Elements": lowerCamelCase elements, lists as `<item>` children of
// a `...Set` element) and its error page (errors-overview.html: client errors with 400-series
// statuses, server errors such as InsufficientInstanceCapacity with 500-series, the error body
// `<Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/></Response>`); throttling
// is `RequestLimitExceeded` (ec2-api-throttling.html), answered with 503. See README.md.
//
// SigV4 headers are required (as the service requires them) but not verified.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHost } from '../hosts/harness.js';
import type { SsmNodeHost, SsmStandIn } from './ssm.js';

const NAMESPACE = 'http://ec2.amazonaws.com/doc/2016-11-15/';
const VERSION = '2016-11-15';
const ACCOUNT = '123456789012';

/** What the stand-in needs of a test host: the SSM node, and a way to end it. */
export interface Ec2Host extends SsmNodeHost {
  readonly address: string;
  destroy(): Promise<void>;
}

export interface Ec2StandInOptions {
  /** The SSM stand-in the instances register with as managed nodes. */
  readonly ssm: SsmStandIn;
  /** Default `local`; availability zone `<region>a`. */
  readonly region?: string;
  /**
   * How many DescribeInstanceInformation answers leave a new instance out after it is running:
   * the SSM Agent registers a moment after boot. Default 1.
   */
  readonly agentRegistersAfterPolls?: number;
  /**
   * How many DeleteSecurityGroup calls for a group still answer DependencyViolation after the
   * last instance holding it is terminated: its network interface is released a moment later.
   * Default 1.
   */
  readonly interfaceLingers?: number;
  /** Makes the host of a launched instance. Default: a test host of test/hosts/harness.ts. */
  readonly createHost?: (options: { readonly name: string; readonly hostname: string }) => Promise<Ec2Host>;
}

/** One API call as received (throttled ones included), its parameters decoded into a tree. */
export interface Ec2Call {
  readonly action: string;
  readonly params: Params;
}

export type Params = { readonly [key: string]: ParamValue };
export type ParamValue = string | Params | readonly ParamValue[];

export type InstanceStateName =
  | 'pending'
  | 'running'
  | 'shutting-down'
  | 'terminated'
  | 'stopping'
  | 'stopped';

export interface Ec2Volume {
  readonly volumeId: string;
  readonly deviceName: string;
  readonly size: number;
  readonly volumeType: string;
  readonly encrypted: boolean;
  readonly deleteOnTermination: boolean;
  readonly tags: Map<string, string>;
}

/** An instance as the stand-in keeps it, for assertions. */
export interface Ec2Instance {
  readonly instanceId: string;
  readonly imageId: string;
  instanceType: string;
  readonly subnetId: string;
  readonly vpcId: string;
  readonly groupIds: readonly string[];
  readonly tags: Map<string, string>;
  readonly clientToken: string;
  readonly launchTime: Date;
  readonly rootDeviceName: string;
  readonly architecture: string;
  readonly volumes: readonly Ec2Volume[];
  readonly metadataOptions: { readonly httpTokens: string; readonly httpEndpoint: string };
  readonly iamInstanceProfile?: string;
  state: InstanceStateName;
  stateReason?: { readonly code: string; readonly message: string };
  transitionReason: string;
  host?: Ec2Host | undefined;
  privateIp?: string;
  /** Settles when the host exists or could not be made. */
  ready: Promise<void>;
}

export interface Ec2SecurityGroup {
  readonly groupId: string;
  readonly groupName: string;
  readonly description: string;
  readonly vpcId: string;
  readonly tags: Map<string, string>;
  readonly ingress: { protocol: string; fromPort: number; toPort: number; cidr: string; ruleId: string }[];
}

export interface Ec2StandIn {
  /** `http://127.0.0.1:<port>`, for `new EC2Client({ endpoint })`. */
  readonly endpoint: string;
  readonly region: string;
  /** The one VPC and subnet of the catalog. */
  readonly vpc: {
    readonly vpcId: string;
    readonly cidr: string;
    readonly subnetId: string;
    readonly defaultGroupId: string;
  };
  /**
   * RunInstances for `instanceType` answers InsufficientInstanceCapacity (HTTP 500) the next
   * `times` times (default: every time). The SDK's own retry strategy retries it as a server error.
   */
  capacity(instanceType: string, times?: number): void;
  /** RunInstances for `instanceType` answers Unsupported (400): not offered in the zone. */
  unsupported(instanceType: string): void;
  /** The next `times` calls of `action` answer RequestLimitExceeded (HTTP 503). */
  throttle(action: string, times: number): void;
  /** The next launched instance fails to boot: it goes from pending to terminated with a reason. */
  failNextLaunch(): void;
  /**
   * The next launched instance is left out of that many DescribeInstances answers after
   * RunInstances (asked by id: InvalidInstanceID.NotFound), as EC2's eventual consistency does.
   */
  lagNextLaunch(describes: number): void;
  /** Every call received, in order. */
  readonly calls: readonly Ec2Call[];
  /** The calls of one action. */
  callsOf(action: string): Ec2Call[];
  readonly instances: ReadonlyMap<string, Ec2Instance>;
  readonly securityGroups: ReadonlyMap<string, Ec2SecurityGroup>;
  /** Hosts that exist now (launched and not yet destroyed). */
  liveHosts(): number;
  /** An instance not launched through RunInstances, without Persona's tag (to test refusals). */
  adopt(host: Ec2Host, tags?: Readonly<Record<string, string>>): string;
  /** Resolves when every launch and termination in progress has finished. */
  idle(): Promise<void>;
  /** Terminates every instance (destroying its host) and closes the server. */
  stop(): Promise<void>;
}

/** An error the service answers with, in the documented XML body and status. */
class Ec2Error extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

interface CatalogImage {
  readonly imageId: string;
  readonly name: string;
  readonly ownerId: string;
  readonly ownerAlias?: string;
  readonly architecture: 'x86_64' | 'arm64';
  readonly creationDate: string;
  readonly rootDeviceName: string;
  readonly rootSize: number;
  readonly description: string;
}

/** Official images as their publishers name them (owner accounts as documented by each distribution). */
const CATALOG: readonly CatalogImage[] = [
  {
    imageId: 'ami-0a1b2c3d4e5f60001',
    name: 'debian-12-amd64-20240717-1811',
    ownerId: '136693071363',
    architecture: 'x86_64',
    creationDate: '2024-07-17T18:17:36.000Z',
    rootDeviceName: '/dev/xvda',
    rootSize: 8,
    description: 'Debian 12 (20240717-1811)',
  },
  {
    imageId: 'ami-0a1b2c3d4e5f60002',
    name: 'debian-12-amd64-20250210-2019',
    ownerId: '136693071363',
    architecture: 'x86_64',
    creationDate: '2025-02-10T20:25:02.000Z',
    rootDeviceName: '/dev/xvda',
    rootSize: 8,
    description: 'Debian 12 (20250210-2019)',
  },
  {
    imageId: 'ami-0a1b2c3d4e5f60003',
    name: 'debian-12-arm64-20250210-2019',
    ownerId: '136693071363',
    architecture: 'arm64',
    creationDate: '2025-02-10T20:26:40.000Z',
    rootDeviceName: '/dev/xvda',
    rootSize: 8,
    description: 'Debian 12 (20250210-2019)',
  },
  {
    imageId: 'ami-0a1b2c3d4e5f60004',
    name: 'ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20250115',
    ownerId: '099720109477',
    architecture: 'x86_64',
    creationDate: '2025-01-15T07:12:44.000Z',
    rootDeviceName: '/dev/sda1',
    rootSize: 8,
    description: 'Canonical, Ubuntu, 24.04, amd64 noble image',
  },
  {
    imageId: 'ami-0a1b2c3d4e5f60005',
    name: 'al2023-ami-2023.6.20250128.0-kernel-6.1-x86_64',
    ownerId: '137112412989',
    ownerAlias: 'amazon',
    architecture: 'x86_64',
    creationDate: '2025-01-28T22:01:10.000Z',
    rootDeviceName: '/dev/xvda',
    rootSize: 8,
    description: 'Amazon Linux 2023 AMI 2023.6.20250128.0 x86_64 HVM kernel-6.1',
  },
  {
    imageId: 'ami-0a1b2c3d4e5f60006',
    name: 'al2023-ami-minimal-2023.6.20250128.0-kernel-6.1-x86_64',
    ownerId: '137112412989',
    ownerAlias: 'amazon',
    architecture: 'x86_64',
    creationDate: '2025-01-29T22:01:10.000Z',
    rootDeviceName: '/dev/xvda',
    rootSize: 2,
    description: 'Amazon Linux 2023 AMI 2023.6.20250128.0 x86_64 Minimal HVM kernel-6.1',
  },
];

const STATE_CODES: Readonly<Record<InstanceStateName, number>> = {
  pending: 0,
  running: 16,
  'shutting-down': 32,
  terminated: 48,
  stopping: 64,
  stopped: 80,
};

const hex = (bytes: number) => randomBytes(bytes).toString('hex');
const id17 = (prefix: string) => `${prefix}-${hex(9).slice(0, 17)}`;

export async function startEc2StandIn(options: Ec2StandInOptions): Promise<Ec2StandIn> {
  const region = options.region ?? 'local';
  const zone = `${region}a`;
  const registersAfterPolls = options.agentRegistersAfterPolls ?? 1;
  const makeHost =
    options.createHost ??
    ((o: { name: string; hostname: string }) => createHost({ name: o.name, hostname: o.hostname }));
  // The VPC is the test hosts' own network (test/hosts: 10.213.0.0/16), so a security group
  // rule from the VPC's CIDR covers the addresses the hosts really have.
  const vpc = {
    vpcId: 'vpc-0f1e2d3c4b5a69788',
    cidr: '10.213.0.0/16',
    subnetId: 'subnet-0a9b8c7d6e5f40312',
    defaultGroupId: 'sg-0d5f1a2b3c4e50617',
  };
  const defaultGroup: Ec2SecurityGroup = {
    groupId: vpc.defaultGroupId,
    groupName: 'default',
    description: 'default VPC security group',
    vpcId: vpc.vpcId,
    tags: new Map(),
    ingress: [],
  };
  const calls: Ec2Call[] = [];
  const instances = new Map<string, Ec2Instance>();
  const groups = new Map<string, Ec2SecurityGroup>([[defaultGroup.groupId, defaultGroup]]);
  const tokens = new Map<string, { instanceId: string; fingerprint: string; reservationId: string }>();
  const capacity = new Map<string, number>();
  const unsupported = new Set<string>();
  const throttles = new Map<string, number>();
  const work = new Set<Promise<void>>();
  const lingers = options.interfaceLingers ?? 1;
  /** DeleteSecurityGroup calls answered since the group's last instance was terminated. */
  const releasing = new Map<string, number>();
  let failNext = false;
  let lagNext = 0;
  /** DescribeInstances answers that still leave an instance out, by instance. */
  const lagging = new Map<string, number>();

  const track = (p: Promise<void>) => {
    const tracked = p.finally(() => work.delete(tracked));
    work.add(tracked);
    return tracked;
  };

  function launch(instance: Ec2Instance, fail: boolean) {
    instance.ready = track(
      (async () => {
        try {
          if (fail) throw new Error('injected launch failure');
          const host = await makeHost({
            name: `ec2-${instance.instanceId.slice(-8)}`,
            hostname: instance.instanceId,
          });
          instance.host = host;
          instance.privateIp = host.address;
          if (instance.state !== 'pending') return; // terminated while booting: the host goes below
          instance.state = 'running';
          delete instance.stateReason;
          options.ssm.addNode(instance.instanceId, host, { registersAfterPolls });
        } catch {
          instance.state = 'terminated';
          instance.stateReason = {
            code: 'Server.InternalError',
            message: 'Server.InternalError: Internal error on launch',
          };
          instance.transitionReason = `Server.InternalError (${new Date().toISOString()})`;
        }
      })(),
    );
  }

  function endInstance(instance: Ec2Instance) {
    return track(
      (async () => {
        await instance.ready;
        options.ssm.removeNode(instance.instanceId);
        await instance.host?.destroy();
        instance.host = undefined;
        instance.state = 'terminated';
      })(),
    );
  }

  // --- parameters -----------------------------------------------------------------------------

  const text = (p: Params, key: string): string | undefined => {
    const v = p[key];
    return typeof v === 'string' ? v : undefined;
  };
  const list = (p: Params, key: string): Params[] => {
    const v = p[key];
    return Array.isArray(v) ? (v.filter((x) => typeof x === 'object' && !Array.isArray(x)) as Params[]) : [];
  };
  const strings = (p: Params, key: string): string[] => {
    const v = p[key];
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
  };
  const object = (p: Params, key: string): Params => {
    const v = p[key];
    return typeof v === 'object' && !Array.isArray(v) ? (v as Params) : {};
  };
  const required = (p: Params, key: string): string => {
    const v = text(p, key);
    if (v === undefined || v === '')
      throw new Ec2Error('MissingParameter', `The request must contain the parameter ${key}`);
    return v;
  };

  interface Filter {
    readonly name: string;
    readonly values: readonly string[];
  }
  const filtersOf = (p: Params): Filter[] =>
    list(p, 'Filter').map((f) => ({ name: text(f, 'Name') ?? '', values: strings(f, 'Value') }));
  /** EC2 filter values take `*` and `?` wildcards; values of one filter are ORed, filters ANDed. */
  const matches = (filters: readonly Filter[], field: (name: string) => readonly string[] | undefined) =>
    filters.every((f) => {
      const have = field(f.name);
      if (have === undefined)
        throw new Ec2Error('InvalidParameterValue', `The filter '${f.name}' is invalid`);
      return f.values.some((pattern) => have.some((v) => wildcard(pattern).test(v)));
    });
  const tagField = (tags: Map<string, string>, name: string) =>
    name.startsWith('tag:')
      ? tags.has(name.slice(4))
        ? [tags.get(name.slice(4)) as string]
        : []
      : undefined;

  function tagSpecs(p: Params, resourceType: string): Map<string, string> {
    const tags = new Map<string, string>();
    for (const spec of list(p, 'TagSpecification')) {
      if (text(spec, 'ResourceType') !== resourceType) continue;
      for (const tag of list(spec, 'Tag')) {
        const key = text(tag, 'Key') ?? '';
        if (key.length === 0 || key.length > 128 || key.toLowerCase().startsWith('aws:'))
          throw new Ec2Error('InvalidParameterValue', `Tag key '${key}' is not valid`);
        const value = text(tag, 'Value') ?? '';
        if (value.length > 256)
          throw new Ec2Error('InvalidParameterValue', `Tag value for '${key}' is too long`);
        tags.set(key, value);
      }
    }
    return tags;
  }

  // --- shapes -----------------------------------------------------------------------------------

  const tagSet = (tags: Map<string, string>) => [...tags].map(([key, value]) => ({ key, value }));
  const stateOf = (s: InstanceStateName) => ({ code: STATE_CODES[s], name: s });

  function instanceShape(i: Ec2Instance) {
    const gone = i.state === 'terminated';
    return {
      instanceId: i.instanceId,
      imageId: i.imageId,
      instanceState: stateOf(i.state),
      privateDnsName: gone ? '' : `${i.instanceId}.${region}.compute.internal`,
      dnsName: '',
      reason: i.transitionReason,
      amiLaunchIndex: 0,
      productCodes: [],
      instanceType: i.instanceType,
      launchTime: i.launchTime.toISOString(),
      placement: { availabilityZone: zone, groupName: '', tenancy: 'default' },
      monitoring: { state: 'disabled' },
      subnetId: gone ? undefined : i.subnetId,
      vpcId: gone ? undefined : i.vpcId,
      privateIpAddress: gone ? undefined : i.privateIp,
      sourceDestCheck: true,
      groupSet: gone
        ? []
        : i.groupIds.map((g) => ({ groupId: g, groupName: groups.get(g)?.groupName ?? '' })),
      stateReason: i.stateReason,
      architecture: i.architecture,
      rootDeviceType: 'ebs',
      rootDeviceName: i.rootDeviceName,
      blockDeviceMapping: gone
        ? []
        : i.volumes.map((v) => ({
            deviceName: v.deviceName,
            ebs: {
              volumeId: v.volumeId,
              status: 'attached',
              attachTime: i.launchTime.toISOString(),
              deleteOnTermination: v.deleteOnTermination,
            },
          })),
      virtualizationType: 'hvm',
      clientToken: i.clientToken,
      tagSet: tagSet(i.tags),
      hypervisor: 'xen',
      iamInstanceProfile: i.iamInstanceProfile
        ? {
            arn: i.iamInstanceProfile,
            id: `AIPA${createHash('sha1').update(i.iamInstanceProfile).digest('hex').slice(0, 17).toUpperCase()}`,
          }
        : undefined,
      ebsOptimized: false,
      enaSupport: true,
      metadataOptions: {
        state: 'applied',
        httpTokens: i.metadataOptions.httpTokens,
        httpPutResponseHopLimit: 2,
        httpEndpoint: i.metadataOptions.httpEndpoint,
        httpProtocolIpv6: 'disabled',
        instanceMetadataTags: 'disabled',
      },
      privateDnsNameOptions: {
        hostnameType: 'resource-name',
        enableResourceNameDnsARecord: false,
        enableResourceNameDnsAAAARecord: false,
      },
      platformDetails: 'Linux/UNIX',
      usageOperation: 'RunInstances',
    };
  }

  function imageShape(image: CatalogImage) {
    return {
      imageId: image.imageId,
      imageLocation: `${image.ownerAlias ?? image.ownerId}/${image.name}`,
      imageState: 'available',
      imageOwnerId: image.ownerId,
      creationDate: image.creationDate,
      isPublic: true,
      architecture: image.architecture,
      imageType: 'machine',
      imageOwnerAlias: image.ownerAlias,
      name: image.name,
      description: image.description,
      rootDeviceType: 'ebs',
      rootDeviceName: image.rootDeviceName,
      blockDeviceMapping: [
        {
          deviceName: image.rootDeviceName,
          ebs: {
            snapshotId: `snap-${createHash('sha1').update(image.imageId).digest('hex').slice(0, 17)}`,
            volumeSize: image.rootSize,
            deleteOnTermination: true,
            volumeType: 'gp3',
            encrypted: false,
          },
        },
      ],
      virtualizationType: 'hvm',
      hypervisor: 'xen',
      enaSupport: true,
      sriovNetSupport: 'simple',
      bootMode: 'uefi-preferred',
      platformDetails: 'Linux/UNIX',
      usageOperation: 'RunInstances',
      imdsSupport: 'v2.0',
    };
  }

  function groupShape(g: Ec2SecurityGroup) {
    return {
      ownerId: ACCOUNT,
      groupId: g.groupId,
      groupName: g.groupName,
      groupDescription: g.description,
      vpcId: g.vpcId,
      securityGroupArn: `arn:aws:ec2:${region}:${ACCOUNT}:security-group/${g.groupId}`,
      ipPermissions: g.ingress.map((r) => ({
        ipProtocol: r.protocol,
        fromPort: r.fromPort,
        toPort: r.toPort,
        groups: [],
        ipRanges: [{ cidrIp: r.cidr }],
        ipv6Ranges: [],
        prefixListIds: [],
      })),
      ipPermissionsEgress: [
        {
          ipProtocol: '-1',
          groups: [],
          ipRanges: [{ cidrIp: '0.0.0.0/0' }],
          ipv6Ranges: [],
          prefixListIds: [],
        },
      ],
      tagSet: tagSet(g.tags),
    };
  }

  // --- actions ----------------------------------------------------------------------------------

  function instanceOrThrow(id: string): Ec2Instance {
    if (!/^i-[0-9a-f]{8}([0-9a-f]{9})?$/.test(id))
      throw new Ec2Error('InvalidInstanceID.Malformed', `Invalid id: "${id}"`);
    const instance = instances.get(id);
    if (!instance) throw new Ec2Error('InvalidInstanceID.NotFound', `The instance ID '${id}' does not exist`);
    return instance;
  }

  function runInstances(p: Params, raw: URLSearchParams) {
    const imageId = required(p, 'ImageId');
    const instanceType = text(p, 'InstanceType') ?? 'm1.small';
    if (text(p, 'MinCount') !== '1' || text(p, 'MaxCount') !== '1')
      throw new Ec2Error(
        'InvalidParameterValue',
        'The stand-in launches one instance per request (MinCount = MaxCount = 1)',
      );
    const token = text(p, 'ClientToken') ?? '';
    if (token.length > 64)
      throw new Ec2Error('InvalidParameterValue', 'ClientToken is longer than 64 characters');
    // A token binds to the first request that succeeded with it; a failed one leaves it free.
    const fingerprint = [...raw]
      .filter(([k]) => k !== 'Action' && k !== 'Version')
      .sort()
      .map(([k, v]) => `${k}=${v}`)
      .join('&');
    const previous = token ? tokens.get(token) : undefined;
    if (previous) {
      if (previous.fingerprint !== fingerprint)
        throw new Ec2Error(
          'IdempotentParameterMismatch',
          'Arguments on this idempotent request are inconsistent with arguments used in previous request(s).',
        );
      const instance = instances.get(previous.instanceId) as Ec2Instance;
      return reservation(previous.reservationId, [instance]);
    }
    if (!/^ami-[0-9a-f]{8}([0-9a-f]{9})?$/.test(imageId))
      throw new Ec2Error('InvalidAMIID.Malformed', `Invalid id: "${imageId}"`);
    const image = CATALOG.find((i) => i.imageId === imageId);
    if (!image) throw new Ec2Error('InvalidAMIID.NotFound', `The image id '[${imageId}]' does not exist`);
    if (!/^[a-z][a-z0-9-]*\.[a-z0-9-]+$/.test(instanceType))
      throw new Ec2Error('InvalidParameterValue', `Invalid value '${instanceType}' for InstanceType.`);
    const isArm = /^[a-z]+\d+g[a-z]*\./.test(instanceType);
    if (isArm !== (image.architecture === 'arm64'))
      throw new Ec2Error(
        'InvalidParameterValue',
        `The architecture '${isArm ? 'arm64' : 'x86_64'}' of the specified instance type does not match the architecture '${image.architecture}' of the specified AMI.`,
      );
    const subnetId = text(p, 'SubnetId');
    if (subnetId === undefined) throw new Ec2Error('VPCIdNotSpecified', 'No default VPC for this user');
    if (subnetId !== vpc.subnetId)
      throw new Ec2Error('InvalidSubnetID.NotFound', `The subnet ID '${subnetId}' does not exist`);
    const groupIds = strings(p, 'SecurityGroupId');
    for (const g of groupIds) {
      const group = groups.get(g);
      if (!group) throw new Ec2Error('InvalidGroup.NotFound', `The security group '${g}' does not exist`);
      if (group.vpcId !== vpc.vpcId)
        throw new Ec2Error(
          'InvalidParameter',
          `Security group ${g} and subnet ${subnetId} belong to different networks.`,
        );
    }
    const profile = object(p, 'IamInstanceProfile');
    const profileArn =
      text(profile, 'Arn') ??
      (text(profile, 'Name') === undefined
        ? undefined
        : `arn:aws:iam::${ACCOUNT}:instance-profile/${text(profile, 'Name')}`);
    const instanceTags = tagSpecs(p, 'instance');
    const volumeTags = tagSpecs(p, 'volume');
    const mappings = list(p, 'BlockDeviceMapping');
    const volumes: Ec2Volume[] = [];
    const rootMapping = mappings.find((m) => text(m, 'DeviceName') === image.rootDeviceName);
    for (const m of rootMapping ? mappings : [{ DeviceName: image.rootDeviceName }, ...mappings]) {
      const deviceName = text(m, 'DeviceName') ?? '';
      if (!/^\/dev\/(sd[a-z]\d*|xvd[a-z]+)$/.test(deviceName))
        throw new Ec2Error('InvalidBlockDeviceMapping', `Invalid device name ${deviceName}`);
      const ebs = object(m, 'Ebs');
      const isRoot = deviceName === image.rootDeviceName;
      const size = Number(text(ebs, 'VolumeSize') ?? (isRoot ? image.rootSize : Number.NaN));
      if (!Number.isInteger(size) || size < 1 || size > 16384)
        throw new Ec2Error('InvalidParameterValue', `Volume size for ${deviceName} must be 1 to 16384 GiB`);
      if (isRoot && size < image.rootSize)
        throw new Ec2Error(
          'InvalidBlockDeviceMapping',
          `Volume of size ${size}GB is smaller than snapshot '${imageShape(image).blockDeviceMapping[0]?.ebs.snapshotId}', expect size>= ${image.rootSize}GB`,
        );
      volumes.push({
        volumeId: id17('vol'),
        deviceName,
        size,
        volumeType: text(ebs, 'VolumeType') ?? 'gp2',
        encrypted: text(ebs, 'Encrypted') === 'true',
        deleteOnTermination: (text(ebs, 'DeleteOnTermination') ?? 'true') === 'true',
        tags: new Map(volumeTags),
      });
    }
    const left = capacity.get(instanceType) ?? 0;
    if (left > 0) {
      capacity.set(instanceType, left - 1);
      throw new Ec2Error(
        'InsufficientInstanceCapacity',
        `We currently do not have sufficient ${instanceType} capacity in the Availability Zone you requested (${zone}). Our system will be working on provisioning additional capacity. You can currently get ${instanceType} capacity by not specifying an Availability Zone in your request or choosing ${region}b, ${region}c.`,
        500,
      );
    }
    if (unsupported.has(instanceType))
      throw new Ec2Error(
        'Unsupported',
        `Your requested instance type (${instanceType}) is not supported in your requested Availability Zone (${zone}). Please retry your request by not specifying an Availability Zone or choosing ${region}b, ${region}c.`,
      );
    const metadata = object(p, 'MetadataOptions');
    const instance: Ec2Instance = {
      instanceId: id17('i'),
      imageId,
      instanceType,
      subnetId,
      vpcId: vpc.vpcId,
      groupIds: groupIds.length > 0 ? groupIds : [defaultGroup.groupId],
      tags: instanceTags,
      clientToken: token,
      launchTime: new Date(),
      rootDeviceName: image.rootDeviceName,
      architecture: image.architecture,
      volumes,
      metadataOptions: {
        httpTokens: text(metadata, 'HttpTokens') ?? 'optional',
        httpEndpoint: text(metadata, 'HttpEndpoint') ?? 'enabled',
      },
      ...(profileArn === undefined ? {} : { iamInstanceProfile: profileArn }),
      state: 'pending',
      stateReason: { code: 'pending', message: 'pending' },
      transitionReason: '',
      ready: Promise.resolve(),
    };
    instances.set(instance.instanceId, instance);
    const reservationId = id17('r');
    if (token) tokens.set(token, { instanceId: instance.instanceId, fingerprint, reservationId });
    const fail = failNext;
    failNext = false;
    if (lagNext > 0) lagging.set(instance.instanceId, lagNext);
    lagNext = 0;
    launch(instance, fail);
    return reservation(reservationId, [instance]);
  }

  function reservation(reservationId: string, members: readonly Ec2Instance[]) {
    return {
      reservationId,
      ownerId: ACCOUNT,
      groupSet: [],
      instancesSet: members.map(instanceShape),
    };
  }

  function describeInstances(p: Params) {
    const ids = strings(p, 'InstanceId');
    const filters = filtersOf(p);
    const visible = [...instances.values()].filter((i) => {
      const left = lagging.get(i.instanceId) ?? 0;
      if (left > 0) lagging.set(i.instanceId, left - 1);
      return left === 0;
    });
    const byId = (id: string) => {
      const instance = instanceOrThrow(id);
      if (!visible.includes(instance))
        throw new Ec2Error('InvalidInstanceID.NotFound', `The instance ID '${id}' does not exist`);
      return instance;
    };
    const selected = (ids.length > 0 ? ids.map(byId) : visible).filter((i) =>
      matches(filters, (name) => {
        if (name === 'instance-state-name') return [i.state];
        if (name === 'instance-id') return [i.instanceId];
        if (name === 'vpc-id') return [i.vpcId];
        if (name === 'subnet-id') return [i.subnetId];
        if (name === 'client-token') return [i.clientToken];
        if (name === 'instance-type') return [i.instanceType];
        if (name === 'tag-key') return [...i.tags.keys()];
        return tagField(i.tags, name);
      }),
    );
    return {
      reservationSet: selected.map((i) => ({
        reservationId: `r-${createHash('sha1').update(i.instanceId).digest('hex').slice(0, 17)}`,
        ownerId: ACCOUNT,
        groupSet: [],
        instancesSet: [instanceShape(i)],
      })),
    };
  }

  function changeState(p: Params, change: (i: Ec2Instance) => void) {
    const ids = strings(p, 'InstanceId');
    if (ids.length === 0)
      throw new Ec2Error('MissingParameter', 'The request must contain the parameter InstanceId');
    const selected = ids.map(instanceOrThrow);
    return {
      instancesSet: selected.map((i) => {
        const previousState = stateOf(i.state);
        change(i);
        return { instanceId: i.instanceId, currentState: stateOf(i.state), previousState };
      }),
    };
  }

  function terminateInstances(p: Params) {
    return changeState(p, (i) => {
      if (i.state === 'terminated' || i.state === 'shutting-down') return;
      i.state = 'shutting-down';
      i.stateReason = {
        code: 'Client.UserInitiatedShutdown',
        message: 'Client.UserInitiatedShutdown: User initiated shutdown',
      };
      i.transitionReason = `User initiated (${new Date().toISOString()})`;
      void endInstance(i);
    });
  }

  // A stopped instance's host keeps running: it is only taken out of SSM, so that nothing reaches
  // it until it is started again (its files must outlive the stop, as an EBS root does).
  function stopInstances(p: Params) {
    return changeState(p, (i) => {
      if (i.state === 'stopped' || i.state === 'stopping') return;
      if (i.state !== 'running')
        throw new Ec2Error(
          'IncorrectInstanceState',
          `The instance '${i.instanceId}' is not in a state from which it can be stopped.`,
        );
      i.state = 'stopping';
      i.stateReason = {
        code: 'Client.UserInitiatedShutdown',
        message: 'Client.UserInitiatedShutdown: User initiated shutdown',
      };
      i.transitionReason = `User initiated (${new Date().toISOString()})`;
      options.ssm.removeNode(i.instanceId);
      void track(
        new Promise<void>((resolve) => setTimeout(resolve, 20)).then(() => {
          if (i.state === 'stopping') i.state = 'stopped';
        }),
      );
    });
  }

  function startInstances(p: Params) {
    return changeState(p, (i) => {
      if (i.state === 'running' || i.state === 'pending') return;
      if (i.state !== 'stopped')
        throw new Ec2Error(
          'IncorrectInstanceState',
          `The instance '${i.instanceId}' is not in a state from which it can be started.`,
        );
      i.state = 'pending';
      delete i.stateReason;
      i.transitionReason = '';
      void track(
        new Promise<void>((resolve) => setTimeout(resolve, 20)).then(() => {
          if (i.state !== 'pending' || !i.host) return;
          i.state = 'running';
          options.ssm.addNode(i.instanceId, i.host, { registersAfterPolls });
        }),
      );
    });
  }

  function modifyInstanceAttribute(p: Params) {
    const i = instanceOrThrow(required(p, 'InstanceId'));
    const type = text(object(p, 'InstanceType'), 'Value');
    if (type === undefined)
      throw new Ec2Error('MissingParameter', 'The request must contain an attribute to modify');
    if (i.state !== 'stopped')
      throw new Ec2Error(
        'IncorrectInstanceState',
        `The instance '${i.instanceId}' is not in the 'stopped' state.`,
      );
    if (!/^[a-z][a-z0-9-]*\.[a-z0-9-]+$/.test(type))
      throw new Ec2Error('InvalidParameterValue', `Invalid value '${type}' for InstanceType.`);
    i.instanceType = type;
    return { return: true };
  }

  function describeImages(p: Params) {
    const ids = strings(p, 'ImageId');
    for (const id of ids) {
      if (!/^ami-[0-9a-f]{8}([0-9a-f]{9})?$/.test(id))
        throw new Ec2Error('InvalidAMIID.Malformed', `Invalid id: "${id}"`);
      if (!CATALOG.some((i) => i.imageId === id))
        throw new Ec2Error('InvalidAMIID.NotFound', `The image id '[${id}]' does not exist`);
    }
    const owners = strings(p, 'Owner');
    const filters = filtersOf(p);
    return {
      imagesSet: CATALOG.filter(
        (i) =>
          (ids.length === 0 || ids.includes(i.imageId)) &&
          (owners.length === 0 || owners.some((o) => o === i.ownerId || o === i.ownerAlias)) &&
          matches(filters, (name) => {
            if (name === 'name') return [i.name];
            if (name === 'architecture') return [i.architecture];
            if (name === 'state') return ['available'];
            if (name === 'root-device-type') return ['ebs'];
            if (name === 'virtualization-type') return ['hvm'];
            if (name === 'owner-id') return [i.ownerId];
            if (name === 'owner-alias') return i.ownerAlias ? [i.ownerAlias] : [];
            if (name === 'image-id') return [i.imageId];
            return undefined;
          }),
      ).map(imageShape),
    };
  }

  function describeSubnets(p: Params) {
    const ids = strings(p, 'SubnetId');
    for (const id of ids)
      if (id !== vpc.subnetId)
        throw new Ec2Error('InvalidSubnetID.NotFound', `The subnet ID '${id}' does not exist`);
    return {
      subnetSet: [
        {
          subnetId: vpc.subnetId,
          subnetArn: `arn:aws:ec2:${region}:${ACCOUNT}:subnet/${vpc.subnetId}`,
          state: 'available',
          vpcId: vpc.vpcId,
          ownerId: ACCOUNT,
          cidrBlock: vpc.cidr,
          ipv6CidrBlockAssociationSet: [],
          availableIpAddressCount: 65_531,
          availabilityZone: zone,
          availabilityZoneId: `${region}-az1`,
          defaultForAz: false,
          mapPublicIpOnLaunch: false,
          assignIpv6AddressOnCreation: false,
          tagSet: [],
        },
      ],
    };
  }

  function describeVpcs(p: Params) {
    const ids = strings(p, 'VpcId');
    for (const id of ids)
      if (id !== vpc.vpcId) throw new Ec2Error('InvalidVpcID.NotFound', `The vpc ID '${id}' does not exist`);
    return {
      vpcSet: [
        {
          vpcId: vpc.vpcId,
          ownerId: ACCOUNT,
          state: 'available',
          cidrBlock: vpc.cidr,
          cidrBlockAssociationSet: [
            {
              cidrBlock: vpc.cidr,
              associationId: 'vpc-cidr-assoc-0a1b2c3d4e5f60718',
              cidrBlockState: { state: 'associated' },
            },
          ],
          ipv6CidrBlockAssociationSet: [],
          dhcpOptionsId: 'dopt-0a1b2c3d4e5f60718',
          instanceTenancy: 'default',
          isDefault: false,
          tagSet: [],
        },
      ],
    };
  }

  function createSecurityGroup(p: Params) {
    const name = required(p, 'GroupName');
    const description = required(p, 'GroupDescription');
    const vpcId = text(p, 'VpcId');
    if (vpcId === undefined) throw new Ec2Error('VPCIdNotSpecified', 'No default VPC for this user');
    if (vpcId !== vpc.vpcId)
      throw new Ec2Error('InvalidVpcID.NotFound', `The vpc ID '${vpcId}' does not exist`);
    if (name.length > 255 || name.toLowerCase().startsWith('sg-'))
      throw new Ec2Error('InvalidParameterValue', `Invalid security group name ${name}`);
    if ([...groups.values()].some((g) => g.groupName === name && g.vpcId === vpcId))
      throw new Ec2Error(
        'InvalidGroup.Duplicate',
        `The security group '${name}' already exists for VPC '${vpcId}'`,
      );
    const group: Ec2SecurityGroup = {
      groupId: id17('sg'),
      groupName: name,
      description,
      vpcId,
      tags: tagSpecs(p, 'security-group'),
      ingress: [],
    };
    groups.set(group.groupId, group);
    return {
      return: true,
      groupId: group.groupId,
      securityGroupArn: groupShape(group).securityGroupArn,
      tagSet: tagSet(group.tags),
    };
  }

  function groupOrThrow(id: string): Ec2SecurityGroup {
    const group = groups.get(id);
    if (!group) throw new Ec2Error('InvalidGroup.NotFound', `The security group '${id}' does not exist`);
    return group;
  }

  function describeSecurityGroups(p: Params) {
    const ids = strings(p, 'GroupId');
    const filters = filtersOf(p);
    const selected = (ids.length > 0 ? ids.map(groupOrThrow) : [...groups.values()]).filter((g) =>
      matches(filters, (name) => {
        if (name === 'group-name') return [g.groupName];
        if (name === 'group-id') return [g.groupId];
        if (name === 'vpc-id') return [g.vpcId];
        return tagField(g.tags, name);
      }),
    );
    return { securityGroupInfo: selected.map(groupShape) };
  }

  function authorizeIngress(p: Params) {
    const group = groupOrThrow(required(p, 'GroupId'));
    const added: Ec2SecurityGroup['ingress'] = [];
    for (const perm of list(p, 'IpPermissions')) {
      const protocol = text(perm, 'IpProtocol') ?? '';
      if (!['tcp', 'udp', 'icmp', '-1'].includes(protocol))
        throw new Ec2Error('InvalidParameterValue', `Invalid value '${protocol}' for IP protocol.`);
      const fromPort = Number(text(perm, 'FromPort'));
      const toPort = Number(text(perm, 'ToPort'));
      if (
        !Number.isInteger(fromPort) ||
        !Number.isInteger(toPort) ||
        fromPort < 0 ||
        toPort > 65535 ||
        fromPort > toPort
      )
        throw new Ec2Error('InvalidParameterValue', `Invalid port range ${fromPort}-${toPort}`);
      const ranges = list(perm, 'IpRanges');
      if (ranges.length === 0)
        throw new Ec2Error('MissingParameter', 'The request must contain a source (IpRanges)');
      for (const range of ranges) {
        const cidr = text(range, 'CidrIp') ?? '';
        if (!/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/.test(cidr))
          throw new Ec2Error('InvalidParameterValue', `CIDR block ${cidr} is malformed`);
        const rule = { protocol, fromPort, toPort, cidr, ruleId: id17('sgr') };
        if (
          [...group.ingress, ...added].some(
            (r) =>
              r.protocol === protocol && r.fromPort === fromPort && r.toPort === toPort && r.cidr === cidr,
          )
        )
          throw new Ec2Error(
            'InvalidPermission.Duplicate',
            `the specified rule "peer: ${cidr}, ${protocol.toUpperCase()}, from port: ${fromPort}, to port: ${toPort}, ALLOW" already exists`,
          );
        added.push(rule);
      }
    }
    group.ingress.push(...added);
    return {
      return: true,
      securityGroupRuleSet: added.map((r) => ({
        securityGroupRuleId: r.ruleId,
        groupId: group.groupId,
        groupOwnerId: ACCOUNT,
        isEgress: false,
        ipProtocol: r.protocol,
        fromPort: r.fromPort,
        toPort: r.toPort,
        cidrIpv4: r.cidr,
      })),
    };
  }

  function deleteSecurityGroup(p: Params) {
    const group = groupOrThrow(required(p, 'GroupId'));
    if (group.groupName === 'default')
      throw new Ec2Error(
        'CannotDelete',
        `the specified group: "${group.groupId}" name: "default" cannot be deleted by a user`,
      );
    // An instance holds its groups until it is terminated, and its network interface a moment longer.
    const holders = [...instances.values()].filter((i) => i.groupIds.includes(group.groupId));
    const held = holders.some((i) => i.state !== 'terminated');
    const attempts = releasing.get(group.groupId) ?? 0;
    const lingering = !held && holders.length > 0 && attempts < lingers;
    if (lingering) releasing.set(group.groupId, attempts + 1);
    if (held || lingering)
      throw new Ec2Error('DependencyViolation', `resource ${group.groupId} has a dependent object`);
    groups.delete(group.groupId);
    return { return: true, groupId: group.groupId };
  }

  function createTags(p: Params) {
    const ids = strings(p, 'ResourceId');
    const tags = list(p, 'Tag').map((t) => [text(t, 'Key') ?? '', text(t, 'Value') ?? ''] as const);
    for (const id of ids) {
      const target =
        instances.get(id)?.tags ??
        groups.get(id)?.tags ??
        [...instances.values()].flatMap((i) => i.volumes).find((v) => v.volumeId === id)?.tags;
      if (!target) throw new Ec2Error('InvalidID', `The ID '${id}' is not valid`);
      for (const [k, v] of tags) target.set(k, v);
    }
    return { return: true };
  }

  function createSnapshots(p: Params) {
    const spec = object(p, 'InstanceSpecification');
    const instance = instanceOrThrow(required(spec, 'InstanceId'));
    if (instance.state === 'terminated' || instance.state === 'shutting-down')
      throw new Ec2Error(
        'IncorrectState',
        `The instance '${instance.instanceId}' is not in a state from which snapshots can be taken.`,
      );
    const excludeBoot = text(spec, 'ExcludeBootVolume') === 'true';
    const tags = tagSpecs(p, 'snapshot');
    const now = new Date().toISOString();
    return {
      snapshotSet: instance.volumes
        .filter((v) => !(excludeBoot && v.deviceName === instance.rootDeviceName))
        .map((v) => ({
          snapshotId: id17('snap'),
          volumeId: v.volumeId,
          volumeSize: v.size,
          startTime: now,
          progress: '',
          ownerId: ACCOUNT,
          state: 'pending',
          encrypted: v.encrypted,
          description: text(p, 'Description') ?? '',
          tagSet: tagSet(text(p, 'CopyTagsFromSource') === 'volume' ? new Map([...v.tags, ...tags]) : tags),
        })),
    };
  }

  const actions: Record<string, (p: Params, raw: URLSearchParams) => unknown> = {
    RunInstances: runInstances,
    DescribeInstances: describeInstances,
    TerminateInstances: terminateInstances,
    StopInstances: stopInstances,
    StartInstances: startInstances,
    ModifyInstanceAttribute: modifyInstanceAttribute,
    DescribeImages: describeImages,
    DescribeSubnets: describeSubnets,
    DescribeVpcs: describeVpcs,
    CreateSecurityGroup: createSecurityGroup,
    DescribeSecurityGroups: describeSecurityGroups,
    AuthorizeSecurityGroupIngress: authorizeIngress,
    DeleteSecurityGroup: deleteSecurityGroup,
    CreateTags: createTags,
    CreateSnapshots: createSnapshots,
  };

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const requestId = randomUUID();
    const reply = (status: number, body: string) => {
      res.writeHead(status, {
        'content-type': 'text/xml;charset=UTF-8',
        'content-length': Buffer.byteLength(body),
        'x-amzn-requestid': requestId,
      });
      res.end(body);
    };
    try {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      if (req.method !== 'POST') throw new Ec2Error('InvalidAction', 'only POST is served', 400);
      const raw = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
      const action = raw.get('Action') ?? '';
      const params = decodeParams(raw);
      calls.push({ action, params });
      if (!String(req.headers.authorization ?? '').startsWith('AWS4-HMAC-SHA256 '))
        throw new Ec2Error(
          'AuthFailure',
          'AWS was not able to validate the provided access credentials',
          401,
        );
      const run = actions[action];
      if (!run)
        throw new Ec2Error('InvalidAction', `The action ${action} is not valid for this web service.`);
      if (raw.get('Version') !== VERSION)
        throw new Ec2Error(
          'InvalidParameterValue',
          `Version ${raw.get('Version')} is not served: ${VERSION} only`,
        );
      const left = throttles.get(action) ?? 0;
      if (left > 0) {
        throttles.set(action, left - 1);
        throw new Ec2Error('RequestLimitExceeded', 'Request limit exceeded.', 503);
      }
      const result = run(params, raw) as Record<string, unknown>;
      reply(
        200,
        `<?xml version="1.0" encoding="UTF-8"?>\n<${action}Response xmlns="${NAMESPACE}">${element('requestId', requestId)}${children(result)}</${action}Response>`,
      );
    } catch (error) {
      const e =
        error instanceof Ec2Error
          ? error
          : new Ec2Error('InternalError', 'An internal error has occurred', 500);
      reply(
        e.status,
        `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>${element('Code', e.code)}${element('Message', e.message)}</Error></Errors>${element('RequestID', requestId)}</Response>`,
      );
    }
  }

  const server = createServer((req, res) => void handle(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    region,
    vpc,
    capacity(instanceType, times = Number.POSITIVE_INFINITY) {
      capacity.set(instanceType, times);
    },
    unsupported(instanceType) {
      unsupported.add(instanceType);
    },
    throttle(action, times) {
      throttles.set(action, times);
    },
    failNextLaunch() {
      failNext = true;
    },
    lagNextLaunch(describes) {
      lagNext = describes;
    },
    calls,
    callsOf: (action) => calls.filter((c) => c.action === action),
    instances,
    securityGroups: groups,
    liveHosts: () => [...instances.values()].filter((i) => i.host !== undefined).length,
    adopt(host, tags = {}) {
      const instance: Ec2Instance = {
        instanceId: id17('i'),
        imageId: CATALOG[1]?.imageId ?? '',
        instanceType: 'm7i.large',
        subnetId: vpc.subnetId,
        vpcId: vpc.vpcId,
        groupIds: [defaultGroup.groupId],
        tags: new Map(Object.entries(tags)),
        clientToken: '',
        launchTime: new Date(),
        rootDeviceName: '/dev/xvda',
        architecture: 'x86_64',
        volumes: [],
        metadataOptions: { httpTokens: 'required', httpEndpoint: 'enabled' },
        state: 'running',
        transitionReason: '',
        host,
        privateIp: host.address,
        ready: Promise.resolve(),
      };
      instances.set(instance.instanceId, instance);
      options.ssm.addNode(instance.instanceId, host);
      return instance.instanceId;
    },
    async idle() {
      while (work.size > 0) await Promise.all([...work]);
    },
    async stop() {
      for (const i of instances.values()) {
        if (i.state !== 'terminated' && i.state !== 'shutting-down') {
          i.state = 'shutting-down';
          void endInstance(i);
        }
      }
      while (work.size > 0) await Promise.allSettled([...work]);
      await new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
    },
  };
}

/**
 * The Query protocol's flattened parameters (`TagSpecification.1.Tag.2.Key=...`) as a tree:
 * numbered segments become lists in index order.
 */
export function decodeParams(raw: URLSearchParams): Params {
  type Node = { [key: string]: Node | string };
  const root: Node = {};
  for (const [key, value] of raw) {
    if (key === 'Action' || key === 'Version') continue;
    const parts = key.split('.');
    let node = root;
    for (const [index, part] of parts.entries()) {
      if (index === parts.length - 1) {
        node[part] = value;
      } else {
        const next = node[part];
        if (typeof next === 'object') node = next;
        else {
          const created: Node = {};
          node[part] = created;
          node = created;
        }
      }
    }
  }
  const normalise = (node: Node | string): ParamValue => {
    if (typeof node === 'string') return node;
    const keys = Object.keys(node);
    if (keys.length > 0 && keys.every((k) => /^\d+$/.test(k))) {
      return keys.sort((a, b) => Number(a) - Number(b)).map((k) => normalise(node[k] as Node | string));
    }
    return Object.fromEntries(keys.map((k) => [k, normalise(node[k] as Node | string)]));
  };
  return normalise(root) as Params;
}

/** A filter value as a pattern: `*` any run of characters, `?` any one, everything else literal. */
function wildcard(pattern: string): RegExp {
  const body = [...pattern]
    .map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&')))
    .join('');
  return new RegExp(`^${body}$`, 's');
}

function escapeXml(value: string): string {
  return value
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

/** An EC2 response element: objects as child elements, lists as `<item>` children, absent left out. */
function element(name: string, value: unknown): string {
  if (value === undefined || value === null) return '';
  if (Array.isArray(value)) return `<${name}>${value.map((v) => element('item', v)).join('')}</${name}>`;
  if (typeof value === 'object') return `<${name}>${children(value as Record<string, unknown>)}</${name}>`;
  return `<${name}>${escapeXml(String(value))}</${name}>`;
}

function children(value: Record<string, unknown>): string {
  return Object.entries(value)
    .map(([k, v]) => element(k, v))
    .join('');
}
