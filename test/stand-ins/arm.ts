// A stand-in for Azure Resource Manager that really provisions: an HTTPS server on loopback
// speaking ARM's REST API as @azure/arm-compute and @azure/arm-network call it, whose virtual
// machines are test hosts. A VM create makes a host (test/hosts/harness.ts) reachable over SSH at
// its network interface's private address, as the admin user of osProfile with its authorised
// key, presenting the ed25519 host key that customData's cloud-init `ssh_keys` gives it; DELETE
// destroys the host. Long-running operations answer 201/202 with Azure-AsyncOperation (and, for
// DELETE and POST actions, Location) and Retry-After, and their status documents move from
// InProgress to Succeeded or Failed. Faults are injected: no capacity for a size, throttling,
// a create that fails once provisioning has started.
//
// A Bearer Authorization header is required (as ARM requires it) but not verified. See README.md.
import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { TokenCredential } from '@azure/core-auth';
import { parse as parseYaml } from 'yaml';
import { shellQuote } from '../../core/transport/shell.js';
import { createHost, hostsBase, type TestHost } from '../hosts/harness.js';

export interface ArmStandInOptions {
  /** Default `00000000-0000-0000-0000-000000000000`. */
  readonly subscriptionId?: string;
  /** The resource groups that exist; any other answers ResourceGroupNotFound. Default `['persona']`. */
  readonly resourceGroups?: readonly string[];
  /** The region every resource group is in. Default `westeurope`. */
  readonly location?: string;
  /**
   * Retry-After, in seconds, on 201/202 answers and on operation statuses still in progress.
   * ARM sends one; 0 leaves the interval to the client. Default 1.
   */
  readonly retryAfterSeconds?: number;
}

/** One request as the stand-in received it, for assertions. */
export interface ArmCall {
  readonly method: string;
  /** The path without the query, as sent (resource names in their case). */
  readonly path: string;
  readonly apiVersion: string | undefined;
  readonly body: unknown;
  readonly status: number;
}

/** What a fault injected into VM creates answers with. */
export type CapacityCode =
  | 'SkuNotAvailable'
  | 'AllocationFailed'
  | 'ZonalAllocationFailed'
  | 'OverconstrainedAllocationRequest';

export interface ArmStandIn {
  /** `https://127.0.0.1:<port>`, for the clients' `endpoint`. */
  readonly endpoint: string;
  /** The server's self-signed certificate (PEM): the clients trust it through `tlsOptions.ca`. */
  readonly certificate: string;
  readonly subscriptionId: string;
  readonly location: string;
  /** A TokenCredential handing out a static token. */
  readonly credential: TokenCredential;
  /** Options for `new ComputeManagementClient(credential, subscriptionId, options)` (and Network). */
  readonly clientOptions: { readonly endpoint: string; readonly tlsOptions: { readonly ca: string } };
  /** Every request received, in order. */
  readonly calls: readonly ArmCall[];
  /** The stored resource (ARM's JSON), by resource id (any case); undefined once deleted. */
  resource(id: string): Record<string, unknown> | undefined;
  /** Ids of the stored resources, of a type such as `Microsoft.Compute/virtualMachines`. */
  resourceIds(type?: string): string[];
  /** The test host behind a VM, by the VM's resource id (any case). */
  hostOf(vmId: string): TestHost | undefined;
  /** Creates and resizes to `size` fail with `code` until cleared with `undefined`. */
  failCapacity(size: string, code: CapacityCode | undefined): void;
  /** The next `times` requests matching `filter` answer 429 with Retry-After. */
  throttle(
    times: number,
    filter?: { readonly method?: string; readonly path?: RegExp },
    retryAfterSeconds?: number,
  ): void;
  /** The next VM create makes its host, then fails with this error (as OS provisioning can). */
  failNextCreate(error?: { readonly code: string; readonly message: string }): void;
  /** The subnet does not exist: an interface created in it answers InvalidResourceReference. */
  dropSubnet(id: string): void;
  /** Stores a resource made outside the code under test (no host behind a VM). */
  seed(id: string, resource: Record<string, unknown>): void;
  /** Resolves when no long-running operation is in progress. */
  idle(): Promise<void>;
  /** Destroys every host still behind a VM, and closes the server. */
  stop(): Promise<void>;
}

const execFileAsync = promisify(execFile);

const TYPES = {
  vm: 'Microsoft.Compute/virtualMachines',
  disk: 'Microsoft.Compute/disks',
  snapshot: 'Microsoft.Compute/snapshots',
  nic: 'Microsoft.Network/networkInterfaces',
  nsg: 'Microsoft.Network/networkSecurityGroups',
} as const;

/** Names Azure refuses as a Linux admin user (osProfile.adminUsername). */
const RESERVED_USERS = new Set([
  'root',
  'admin',
  'administrator',
  'adm',
  'bin',
  'daemon',
  'guest',
  'nobody',
  'sys',
  'sync',
  'user',
  'test',
  'console',
  'support',
]);

const SUBNET_ID =
  /^\/subscriptions\/[^/]+\/resourceGroups\/[^/]+\/providers\/Microsoft\.Network\/virtualNetworks\/[^/]+\/subnets\/[^/]+$/i;

/** An error ARM answers with: `{"error": {"code", "message"}}` and its status. */
class ArmError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
    readonly details?: readonly Record<string, unknown>[],
  ) {
    super(message);
  }
}

interface Resource {
  readonly id: string;
  readonly type: string;
  readonly resourceGroup: string;
  readonly name: string;
  doc: Record<string, unknown>;
  host?: TestHost | undefined;
  /** The VM's create or update in progress: a DELETE waits for it, as ARM queues it. */
  pending?: Promise<void>;
  /** A snapshot's or a disk's contents: a copy of a host's files (see README.md). */
  data?: string;
  /** A VM whose OS disk was swapped while deallocated: the disk's files, laid down on start. */
  restoreFrom?: string | undefined;
}

interface AsyncOperation {
  readonly id: string;
  readonly namespace: 'Microsoft.Compute' | 'Microsoft.Network';
  readonly startTime: string;
  status: 'InProgress' | 'Succeeded' | 'Failed' | 'Canceled';
  endTime?: string;
  error?: { code: string; message: string };
  done: Promise<void>;
  /** What the Location URL answers once the operation succeeded (POST and PATCH results). */
  result?: () => unknown;
}

interface Throttle {
  left: number;
  readonly method?: string;
  readonly path?: RegExp;
  readonly retryAfter: number;
}

export async function startArmStandIn(options: ArmStandInOptions = {}): Promise<ArmStandIn> {
  const subscriptionId = options.subscriptionId ?? '00000000-0000-0000-0000-000000000000';
  const location = options.location ?? 'westeurope';
  const groups = new Map((options.resourceGroups ?? ['persona']).map((g) => [g.toLowerCase(), g]));
  const retryAfter = String(options.retryAfterSeconds ?? 1);
  const { cert, key } = await selfSignedCertificate();
  const dataDir = await mkdtemp(join(tmpdir(), 'persona-arm-disks-'));
  let copies = 0;
  const resources = new Map<string, Resource>();
  const operations = new Map<string, AsyncOperation>();
  const capacity = new Map<string, CapacityCode>();
  const throttles: Throttle[] = [];
  const calls: ArmCall[] = [];
  const droppedSubnets = new Set<string>();
  let nextCreateFailure: { code: string; message: string } | undefined;
  const hostPrefix = `a${randomBytes(3).toString('hex')}`;
  let hostCount = 0;
  let endpoint = '';

  const key_ = (id: string) => id.toLowerCase();
  const get = (id: string) => resources.get(key_(id));
  const idOf = (rg: string, type: string, name: string) =>
    `/subscriptions/${subscriptionId}/resourceGroups/${rg}/providers/${type}/${name}`;

  function startOperation(
    namespace: AsyncOperation['namespace'],
    work: () => Promise<void>,
  ): { operation: AsyncOperation; headers: Record<string, string> } {
    const id = randomUUID();
    const operation: AsyncOperation = {
      id,
      namespace,
      startTime: new Date().toISOString(),
      status: 'InProgress',
      done: Promise.resolve(),
    };
    // The work starts once the answer has gone, as the resource provider picks it up.
    operation.done = new Promise<void>((resolve) => setImmediate(resolve))
      .then(work)
      .then(
        () => {
          operation.status = 'Succeeded';
        },
        (error: unknown) => {
          operation.status = 'Failed';
          operation.error =
            error instanceof ArmError
              ? { code: error.code, message: error.message }
              : {
                  code: 'InternalExecutionError',
                  message: `An internal execution error occurred: ${String(error)}`,
                };
        },
      )
      .finally(() => {
        operation.endTime = new Date().toISOString();
      });
    operations.set(id, operation);
    const base = `${endpoint}/subscriptions/${subscriptionId}/providers/${namespace}/locations/${location}`;
    const apiVersion = namespace === 'Microsoft.Compute' ? '2026-04-01' : '2026-01-01';
    return {
      operation,
      headers: {
        'azure-asyncoperation': `${base}/operations/${id}?api-version=${apiVersion}`,
        location: `${base}/operationResults/${id}?api-version=${apiVersion}`,
        ...(retryAfter === '0' ? {} : { 'retry-after': retryAfter }),
      },
    };
  }

  function checkScope(sub: string, rg: string) {
    if (sub.toLowerCase() !== subscriptionId.toLowerCase()) {
      throw new ArmError(404, 'SubscriptionNotFound', `The subscription '${sub}' could not be found.`);
    }
    if (!groups.has(rg.toLowerCase())) {
      throw new ArmError(404, 'ResourceGroupNotFound', `Resource group '${rg}' could not be found.`);
    }
  }

  function notFound(type: string, rg: string, name: string): ArmError {
    return new ArmError(
      404,
      'ResourceNotFound',
      `The Resource '${type}/${name}' under resource group '${rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix`,
    );
  }

  function checkLocation(body: Record<string, unknown>) {
    const where = body.location;
    if (typeof where !== 'string' || where.toLowerCase().replace(/\s/g, '') !== location) {
      throw new ArmError(
        400,
        'LocationRequired',
        `The location property is required for this definition and must be '${location}'.`,
      );
    }
  }

  function checkTags(body: Record<string, unknown>) {
    const tags = body.tags;
    if (tags === undefined) return;
    if (typeof tags !== 'object' || tags === null)
      throw new ArmError(400, 'InvalidTag', 'tags must be an object');
    const entries = Object.entries(tags as Record<string, unknown>);
    if (entries.length > 50) throw new ArmError(400, 'InvalidTagCount', 'A resource has at most 50 tags.');
    for (const [name, value] of entries) {
      if (name.length > 512 || /[<>%&\\?/]/.test(name) || typeof value !== 'string' || value.length > 256) {
        throw new ArmError(
          400,
          'InvalidTagNameCharacters',
          `The tag name '${name}' has characters that are not allowed: '<,>,%,&,\\,?,/', or its value is not a string of at most 256 characters.`,
        );
      }
    }
  }

  const props = (doc: Record<string, unknown>): Record<string, unknown> => {
    if (doc.properties === undefined) doc.properties = {};
    return doc.properties as Record<string, unknown>;
  };

  // ---- Network security groups -------------------------------------------------------------

  function putNsg(rg: string, name: string, body: Record<string, unknown>) {
    checkLocation(body);
    checkTags(body);
    const id = idOf(rg, TYPES.nsg, name);
    const rules = ((props(body).securityRules as unknown[]) ?? []).map((rule, i) => {
      const r = rule as { name?: unknown; properties?: Record<string, unknown> };
      const p = r.properties ?? {};
      const priority = p.priority;
      if (
        typeof r.name !== 'string' ||
        typeof priority !== 'number' ||
        priority < 100 ||
        priority > 4096 ||
        !['Tcp', 'Udp', 'Icmp', 'Esp', 'Ah', '*'].includes(String(p.protocol)) ||
        !['Inbound', 'Outbound'].includes(String(p.direction)) ||
        !['Allow', 'Deny'].includes(String(p.access))
      ) {
        throw new ArmError(
          400,
          'SecurityRuleInvalidParameter',
          `Security rule ${String(r.name ?? i)} has an invalid name, priority (100-4096), protocol, direction or access.`,
        );
      }
      return {
        name: r.name,
        id: `${id}/securityRules/${r.name}`,
        type: `${TYPES.nsg}/securityRules`,
        properties: { ...p, provisioningState: 'Succeeded' },
      };
    });
    const existing = get(id);
    const doc: Record<string, unknown> = {
      name,
      id,
      type: TYPES.nsg,
      location,
      tags: body.tags ?? {},
      etag: `W/"${randomUUID()}"`,
      properties: {
        resourceGuid:
          (existing?.doc.properties as { resourceGuid?: string } | undefined)?.resourceGuid ?? randomUUID(),
        securityRules: rules,
        networkInterfaces:
          (existing?.doc.properties as { networkInterfaces?: unknown } | undefined)?.networkInterfaces ?? [],
        provisioningState: 'Updating',
      },
    };
    const resource: Resource = existing ?? { id, type: TYPES.nsg, resourceGroup: rg, name, doc };
    resource.doc = doc;
    resources.set(key_(id), resource);
    const { headers } = startOperation('Microsoft.Network', async () => {
      props(resource.doc).provisioningState = 'Succeeded';
    });
    return { status: existing ? 200 : 201, body: doc, headers };
  }

  function deleteNsg(rg: string, name: string) {
    const resource = get(idOf(rg, TYPES.nsg, name));
    if (!resource) return { status: 204 };
    const users = [...resources.values()].filter(
      (r) =>
        r.type === TYPES.nic &&
        (
          (r.doc.properties as { networkSecurityGroup?: { id?: string } }).networkSecurityGroup?.id ?? ''
        ).toLowerCase() === key_(resource.id),
    );
    if (users.length > 0) {
      throw new ArmError(
        400,
        'InUseNetworkSecurityGroupCannotBeDeleted',
        `Network security group ${resource.id} cannot be deleted because it is in use by the following resources: ${users.map((u) => u.id).join(', ')}.`,
      );
    }
    props(resource.doc).provisioningState = 'Deleting';
    const { headers } = startOperation('Microsoft.Network', async () => {
      resources.delete(key_(resource.id));
    });
    return { status: 202, headers };
  }

  // ---- Network interfaces ------------------------------------------------------------------

  function putNic(rg: string, name: string, body: Record<string, unknown>) {
    checkLocation(body);
    checkTags(body);
    const id = idOf(rg, TYPES.nic, name);
    const p = props(body);
    const configs =
      (p.ipConfigurations as { name?: unknown; properties?: Record<string, unknown> }[] | undefined) ?? [];
    if (configs.length === 0) {
      throw new ArmError(
        400,
        'NetworkInterfaceMustHaveAtLeastOneIpConfiguration',
        `Network interface ${id} must have at least one IP configuration.`,
      );
    }
    const existing = get(id);
    const previous = (
      existing?.doc.properties as
        | { ipConfigurations?: { properties: { privateIPAddress?: string } }[] }
        | undefined
    )?.ipConfigurations?.[0]?.properties.privateIPAddress;
    const ipConfigurations = configs.map((c, i) => {
      const subnet = (c.properties?.subnet as { id?: unknown } | undefined)?.id;
      if (typeof subnet !== 'string' || !SUBNET_ID.test(subnet) || droppedSubnets.has(subnet.toLowerCase())) {
        throw new ArmError(
          400,
          'InvalidResourceReference',
          `Resource ${String(subnet)} referenced by resource ${id} was not found. Please make sure that the referenced resource exists, and that both resources are in the same region.`,
        );
      }
      const cname = typeof c.name === 'string' ? c.name : `ipconfig${i + 1}`;
      return {
        name: cname,
        id: `${id}/ipConfigurations/${cname}`,
        type: `${TYPES.nic}/ipConfigurations`,
        properties: {
          privateIPAllocationMethod: 'Dynamic',
          ...c.properties,
          // The address is the one of the host a VM makes with this interface (see README.md).
          ...(i === 0 && previous ? { privateIPAddress: previous } : {}),
          privateIPAddressVersion: 'IPv4',
          primary: i === 0,
          provisioningState: 'Succeeded',
        },
      };
    });
    const nsgId = (p.networkSecurityGroup as { id?: unknown } | undefined)?.id;
    if (nsgId !== undefined && (typeof nsgId !== 'string' || !get(nsgId))) {
      throw new ArmError(
        400,
        'InvalidResourceReference',
        `Resource ${String(nsgId)} referenced by resource ${id} was not found. Please make sure that the referenced resource exists, and that both resources are in the same region.`,
      );
    }
    const heldBy = (existing?.doc.properties as { virtualMachine?: unknown } | undefined)?.virtualMachine;
    const doc: Record<string, unknown> = {
      name,
      id,
      type: TYPES.nic,
      location,
      tags: body.tags ?? {},
      etag: `W/"${randomUUID()}"`,
      properties: {
        resourceGuid: randomUUID(),
        ipConfigurations,
        ...(nsgId === undefined ? {} : { networkSecurityGroup: { id: nsgId } }),
        ...(heldBy ? { virtualMachine: heldBy } : {}),
        enableAcceleratedNetworking: p.enableAcceleratedNetworking === true,
        enableIPForwarding: false,
        nicType: 'Standard',
        provisioningState: 'Updating',
      },
    };
    const resource: Resource = existing ?? { id, type: TYPES.nic, resourceGroup: rg, name, doc };
    resource.doc = doc;
    resources.set(key_(id), resource);
    const { headers } = startOperation('Microsoft.Network', async () => {
      props(resource.doc).provisioningState = 'Succeeded';
    });
    return {
      status: existing ? 200 : 201,
      body: doc,
      headers: {
        'azure-asyncoperation': headers['azure-asyncoperation'] as string,
        ...(headers['retry-after'] ? { 'retry-after': headers['retry-after'] } : {}),
      },
    };
  }

  function deleteNic(rg: string, name: string) {
    const resource = get(idOf(rg, TYPES.nic, name));
    if (!resource) return { status: 204 };
    const vm = (resource.doc.properties as { virtualMachine?: { id: string } }).virtualMachine;
    if (vm) {
      throw new ArmError(
        400,
        'NicInUse',
        `Network Interface ${resource.id} is used by existing resource ${vm.id}. In order to delete the network interface, it must be dissociated from the resource.`,
      );
    }
    props(resource.doc).provisioningState = 'Deleting';
    const { headers } = startOperation('Microsoft.Network', async () => {
      resources.delete(key_(resource.id));
    });
    return { status: 202, headers };
  }

  // ---- Virtual machines --------------------------------------------------------------------

  interface CloudConfig {
    readonly hostKey?: { privateKey: string; publicKey: string };
    readonly disableRoot: boolean;
  }

  /** What cloud-init would take from customData: the ed25519 host key and `disable_root`. */
  function cloudConfigOf(customData: unknown): CloudConfig {
    if (typeof customData !== 'string' || customData === '') return { disableRoot: true };
    const text = Buffer.from(customData, 'base64').toString('utf8');
    if (!text.startsWith('#cloud-config')) return { disableRoot: true };
    let config: Record<string, unknown>;
    try {
      config = (parseYaml(text) ?? {}) as Record<string, unknown>;
    } catch {
      // cloud-init logs a bad cloud-config and boots on without it.
      return { disableRoot: true };
    }
    const keys = (config.ssh_keys ?? {}) as Record<string, unknown>;
    const privateKey = keys.ed25519_private;
    const publicKey = keys.ed25519_public;
    return {
      disableRoot: config.disable_root !== false,
      ...(typeof privateKey === 'string' && typeof publicKey === 'string'
        ? { hostKey: { privateKey: privateKey.endsWith('\n') ? privateKey : `${privateKey}\n`, publicKey } }
        : {}),
    };
  }

  function checkVmBody(id: string, name: string, body: Record<string, unknown>) {
    checkLocation(body);
    checkTags(body);
    const p = props(body);
    const size = (p.hardwareProfile as { vmSize?: unknown } | undefined)?.vmSize;
    if (typeof size !== 'string')
      throw new ArmError(
        400,
        'InvalidParameter',
        "Required parameter 'hardwareProfile.vmSize' is missing (null).",
      );
    const storage = (p.storageProfile ?? {}) as Record<string, unknown>;
    const image = storage.imageReference as Record<string, unknown> | undefined;
    if (!image || ['publisher', 'offer', 'sku', 'version'].some((k) => typeof image[k] !== 'string')) {
      throw new ArmError(
        400,
        'InvalidParameter',
        "Required parameter 'storageProfile.imageReference' is missing or incomplete.",
      );
    }
    const os = (p.osProfile ?? {}) as Record<string, unknown>;
    const user = os.adminUsername;
    if (typeof user !== 'string' || !/^[a-z_][a-z0-9_-]{0,31}$/.test(user) || RESERVED_USERS.has(user)) {
      throw new ArmError(400, 'InvalidParameter', 'The Admin Username specified is not allowed.', {}, [
        { code: 'InvalidParameter', target: 'adminUsername' },
      ]);
    }
    const linux = (os.linuxConfiguration ?? {}) as Record<string, unknown>;
    const keys = ((linux.ssh as { publicKeys?: unknown[] } | undefined)?.publicKeys ?? []) as {
      path?: unknown;
      keyData?: unknown;
    }[];
    if (linux.disablePasswordAuthentication === true && keys.length === 0) {
      throw new ArmError(
        400,
        'InvalidParameter',
        'Authentication using either SSH or by user name and password must be enabled in Linux profile.',
        {},
        [{ code: 'InvalidParameter', target: 'linuxConfiguration' }],
      );
    }
    for (const k of keys) {
      if (k.path !== `/home/${user}/.ssh/authorized_keys`) {
        throw new ArmError(
          400,
          'InvalidParameter',
          `Destination path for SSH public keys is currently limited to its default value /home/${user}/.ssh/authorized_keys due to a known issue in Linux provisioning agent.`,
          {},
          [{ code: 'InvalidParameter', target: 'linuxConfiguration.ssh.publicKeys.path' }],
        );
      }
      if (
        typeof k.keyData !== 'string' ||
        !/^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp\d+) [A-Za-z0-9+/=]+( .*)?$/.test(k.keyData.trim())
      ) {
        throw new ArmError(
          400,
          'InvalidParameter',
          'The value of parameter linuxConfiguration.ssh.publicKeys.keyData is invalid.',
          {},
          [{ code: 'InvalidParameter', target: 'linuxConfiguration.ssh.publicKeys.keyData' }],
        );
      }
    }
    const nics = ((p.networkProfile as { networkInterfaces?: unknown[] } | undefined)?.networkInterfaces ??
      []) as {
      id?: unknown;
    }[];
    if (nics.length === 0)
      throw new ArmError(400, 'InvalidParameter', 'A virtual machine needs at least one network interface.');
    for (const nic of nics) {
      const resource = typeof nic.id === 'string' ? get(nic.id) : undefined;
      if (!resource) {
        throw new ArmError(
          400,
          'InvalidResourceReference',
          `Resource ${String(nic.id)} referenced by resource ${id} was not found.`,
        );
      }
      const holder = (resource.doc.properties as { virtualMachine?: { id: string } }).virtualMachine;
      if (holder && key_(holder.id) !== key_(id)) {
        throw new ArmError(
          400,
          'NicInUse',
          `Network interface ${resource.id} is used by virtual machine ${holder.id}.`,
        );
      }
    }
    if (typeof os.computerName === 'string' && !/^[A-Za-z0-9][A-Za-z0-9-]{0,63}$/.test(os.computerName)) {
      throw new ArmError(
        400,
        'InvalidParameter',
        `Linux host name cannot exceed 64 characters in length or contain the following characters: \`~!@#$%^&*()=+_[]{}\\|;:'",<>/?. (${name})`,
      );
    }
    return {
      size,
      user,
      keys: keys.map((k) => String(k.keyData).trim()),
      nics: nics.map((n) => String(n.id)),
    };
  }

  function skuNotAvailable(id: string, size: string): ArmError {
    return new ArmError(
      409,
      'SkuNotAvailable',
      `The requested VM size ${size} for resource '${id}' is currently not available in location '${location}' zones '' for subscription '${subscriptionId}'. Please try another size or deploy to a different location or zones. See https://aka.ms/azureskunotavailable for details.`,
    );
  }

  function allocationError(code: CapacityCode, size: string): ArmError {
    const messages: Record<string, string> = {
      AllocationFailed: `Allocation failed. We do not have sufficient capacity for the requested VM size ${size} in this region. Read more about improving likelihood of allocation success at http://aka.ms/allocation-guidance`,
      ZonalAllocationFailed: `Allocation failed. We do not have sufficient capacity for the requested VM size ${size} in this zone. Read more about improving likelihood of allocation success at http://aka.ms/allocation-guidance`,
      OverconstrainedAllocationRequest: `Allocation failed. VM(s) with the following constraints cannot be allocated, because the condition is too restrictive. Please remove some constraints and try again. Constraints applied are: VM Size ${size}. Read more about improving likelihood of allocation success at http://aka.ms/allocation-guidance`,
    };
    return new ArmError(409, code, messages[code] ?? code);
  }

  function setVmState(vm: Resource, state: string, error?: { code: string; message: string }) {
    const p = props(vm.doc);
    p.provisioningState = state;
    const now = new Date().toISOString();
    const statuses: Record<string, unknown>[] = [];
    if (state === 'Failed' && error) {
      statuses.push({
        code: `ProvisioningState/failed/${error.code}`,
        level: 'Error',
        displayStatus: 'Provisioning failed',
        message: error.message,
        time: now,
      });
    } else if (state === 'Succeeded') {
      statuses.push({
        code: 'ProvisioningState/succeeded',
        level: 'Info',
        displayStatus: 'Provisioning succeeded',
        time: now,
      });
    } else {
      statuses.push({
        code: `ProvisioningState/${state.toLowerCase()}`,
        level: 'Info',
        displayStatus: state,
      });
    }
    const power = (vm as Resource & { power?: string }).power;
    if (power) statuses.push({ code: `PowerState/${power}`, level: 'Info', displayStatus: `VM ${power}` });
    (vm as Resource & { statuses?: unknown[] }).statuses = statuses;
  }

  /** Makes the VM's host and its disks: what Azure's allocation and provisioning do. */
  async function provisionVm(
    vm: Resource,
    config: CloudConfig,
    user: string,
    keys: readonly string[],
    nicIds: readonly string[],
  ) {
    const p = props(vm.doc);
    const size = String((p.hardwareProfile as { vmSize: string }).vmSize);
    const fault = capacity.get(size);
    if (fault !== undefined && fault !== 'SkuNotAvailable') {
      const error = allocationError(fault, size);
      setVmState(vm, 'Failed', { code: error.code, message: error.message });
      throw error;
    }
    const failure = nextCreateFailure;
    nextCreateFailure = undefined;
    if (!vm.host) {
      const hostname = String(
        (p.osProfile as { computerName?: string }).computerName ?? vm.name,
      ).toLowerCase();
      vm.host = await createHost({
        name: `${hostPrefix}-${++hostCount}`,
        hostname: hostname.slice(0, 63),
        ...(config.hostKey ? { ed25519HostKey: config.hostKey } : {}),
        setup: async (host) => {
          // What the provisioning agent does for osProfile: the admin user with its keys and
          // passwordless sudo (cloud-init's 90-cloud-init-users); root gets them too only when
          // cloud-config says disable_root: false.
          const authorized = keys.map((k) => `${k}\n`).join('');
          const u = shellQuote(user);
          await host.run(
            [
              `id -u ${u} >/dev/null 2>&1 || useradd -m -s /bin/sh -- ${u}`,
              `install -d -m 700 -o ${u} -g ${u} /home/${user}/.ssh`,
              `cat > /home/${user}/.ssh/authorized_keys`,
              `chown ${u}:${u} /home/${user}/.ssh/authorized_keys`,
              `chmod 600 /home/${user}/.ssh/authorized_keys`,
              `printf '%s ALL=(ALL) NOPASSWD:ALL\\n' ${u} > /etc/sudoers.d/90-cloud-init-users`,
              'chmod 440 /etc/sudoers.d/90-cloud-init-users',
            ].join(' && '),
            { input: authorized },
          );
          if (!config.disableRoot) await host.run('cat >> /root/.ssh/authorized_keys', { input: authorized });
        },
      });
      // The stand-in's "dynamic" address is the host's own (see README.md).
      const nic = get(nicIds[0] as string);
      if (nic) {
        const ip = (nic.doc.properties as { ipConfigurations: { properties: Record<string, unknown> }[] })
          .ipConfigurations[0];
        if (ip) ip.properties.privateIPAddress = vm.host.address;
      }
    }
    for (const id of nicIds) {
      const nic = get(id);
      if (nic) props(nic.doc).virtualMachine = { id: vm.id };
    }
    const storage = p.storageProfile as Record<string, unknown>;
    const osDisk = (storage.osDisk ?? {}) as Record<string, unknown>;
    const osName =
      typeof osDisk.name === 'string'
        ? osDisk.name
        : `${vm.name}_OsDisk_1_${randomBytes(16).toString('hex')}`;
    osDisk.name = osName;
    osDisk.osType = 'Linux';
    const osDiskId = idOf(vm.resourceGroup, TYPES.disk, osName);
    osDisk.managedDisk = { ...((osDisk.managedDisk as object | undefined) ?? {}), id: osDiskId };
    storage.osDisk = osDisk;
    ensureDisk(
      vm,
      osDiskId,
      osName,
      Number(osDisk.diskSizeGB ?? 30),
      osDisk.managedDisk as Record<string, unknown>,
    );
    const dataDisks = (storage.dataDisks ?? []) as Record<string, unknown>[];
    for (const disk of dataDisks) {
      const name =
        typeof disk.name === 'string'
          ? disk.name
          : `${vm.name}_disk${String(disk.lun)}_${randomBytes(16).toString('hex')}`;
      disk.name = name;
      const diskId = idOf(vm.resourceGroup, TYPES.disk, name);
      disk.managedDisk = { ...((disk.managedDisk as object | undefined) ?? {}), id: diskId };
      ensureDisk(vm, diskId, name, Number(disk.diskSizeGB ?? 1), disk.managedDisk as Record<string, unknown>);
    }
    (vm as Resource & { power?: string }).power = 'running';
    if (failure) {
      setVmState(vm, 'Failed', failure);
      throw new ArmError(409, failure.code, failure.message);
    }
    setVmState(vm, 'Succeeded');
  }

  function ensureDisk(
    vm: Resource,
    id: string,
    name: string,
    sizeGB: number,
    managed: Record<string, unknown>,
  ) {
    if (get(id)) return;
    resources.set(key_(id), {
      id,
      type: TYPES.disk,
      resourceGroup: vm.resourceGroup,
      name,
      doc: {
        name,
        id,
        type: TYPES.disk,
        location,
        // Disks a VM create makes carry no tags of their own: ARM gives the VM's tags to the VM only.
        tags: {},
        managedBy: vm.id,
        sku: { name: String(managed.storageAccountType ?? 'Premium_LRS'), tier: 'Premium' },
        properties: {
          diskSizeGB: sizeGB,
          diskState: 'Attached',
          provisioningState: 'Succeeded',
          timeCreated: new Date().toISOString(),
        },
      },
    });
  }

  function vmView(vm: Resource, expand: string | undefined): Record<string, unknown> {
    const p = { ...props(vm.doc) };
    const os = { ...(p.osProfile as Record<string, unknown> | undefined) };
    // ARM never returns customData (nor an admin password) once it has taken it.
    delete os.customData;
    delete os.adminPassword;
    p.osProfile = os;
    if (expand === 'instanceView') {
      p.instanceView = {
        computerName: os.computerName,
        osName: 'debian',
        osVersion: '12',
        statuses: (vm as Resource & { statuses?: unknown[] }).statuses ?? [],
      };
    }
    return { ...vm.doc, properties: p };
  }

  function putVm(rg: string, name: string, body: Record<string, unknown>) {
    const id = idOf(rg, TYPES.vm, name);
    const existing = get(id);
    const checked = checkVmBody(id, name, body);
    if (capacity.get(checked.size) === 'SkuNotAvailable') throw skuNotAvailable(id, checked.size);
    const config = cloudConfigOf((props(body).osProfile as { customData?: unknown }).customData);
    if (existing) {
      const stored = (existing as Resource & { customData?: unknown }).customData;
      const sent = (props(body).osProfile as { customData?: unknown }).customData;
      if (sent !== undefined && sent !== stored) {
        throw new ArmError(
          409,
          'PropertyChangeNotAllowed',
          "Changing property 'customData' is not allowed.",
          {},
          [{ code: 'PropertyChangeNotAllowed', target: 'customData' }],
        );
      }
      const state = String(props(existing.doc).provisioningState);
      if (state === 'Creating' || state === 'Updating' || state === 'Deleting') {
        throw new ArmError(
          409,
          'OperationNotAllowed',
          `Operation 'PutVM' is not allowed on VM '${name}' since the VM is ${state.toLowerCase()}.`,
        );
      }
      existing.doc.tags = body.tags ?? existing.doc.tags;
      props(existing.doc).hardwareProfile = props(body).hardwareProfile;
      setVmState(existing, 'Updating');
      const { operation, headers } = startOperation('Microsoft.Compute', () =>
        provisionVm(existing, config, checked.user, checked.keys, checked.nics),
      );
      existing.pending = operation.done;
      return {
        status: 200,
        body: vmView(existing, undefined),
        headers: { 'azure-asyncoperation': headers['azure-asyncoperation'] as string },
      };
    }
    const doc: Record<string, unknown> = {
      name,
      id,
      type: TYPES.vm,
      location,
      tags: body.tags ?? {},
      properties: {
        ...structuredClone(props(body)),
        vmId: randomUUID(),
        timeCreated: new Date().toISOString(),
        provisioningState: 'Creating',
      },
    };
    const vm: Resource = { id, type: TYPES.vm, resourceGroup: rg, name, doc };
    (vm as Resource & { customData?: unknown }).customData = (
      props(body).osProfile as { customData?: unknown }
    ).customData;
    resources.set(key_(id), vm);
    // The interfaces belong to the VM from its create on: none can be deleted or taken meanwhile.
    for (const nicId of checked.nics) {
      const nic = get(nicId);
      if (nic) props(nic.doc).virtualMachine = { id };
    }
    setVmState(vm, 'Creating');
    const { operation, headers } = startOperation('Microsoft.Compute', () =>
      provisionVm(vm, config, checked.user, checked.keys, checked.nics),
    );
    vm.pending = operation.done;
    // Compute answers a create with Azure-AsyncOperation only.
    return {
      status: 201,
      body: vmView(vm, undefined),
      headers: { 'azure-asyncoperation': headers['azure-asyncoperation'] as string },
    };
  }

  /** Sizes a running VM can be resized to in place: its own series (letters and version). */
  function seriesOf(size: string): string {
    return size.replace(/^Standard_([A-Z]+)\d+([a-z]*)_(v\d+)$/, '$1$2_$3');
  }

  function patchVm(rg: string, name: string, body: Record<string, unknown>) {
    const vm = get(idOf(rg, TYPES.vm, name));
    if (!vm) throw notFound(TYPES.vm, rg, name);
    checkTags(body);
    const p = props(vm.doc);
    const size = (props(body).hardwareProfile as { vmSize?: unknown } | undefined)?.vmSize;
    const state = String(p.provisioningState);
    if (state === 'Creating' || state === 'Updating' || state === 'Deleting') {
      throw new ArmError(
        409,
        'OperationNotAllowed',
        `Operation 'UpdateVM' is not allowed on VM '${name}' since the VM is ${state.toLowerCase()}.`,
      );
    }
    if (body.tags !== undefined) vm.doc.tags = body.tags;
    const power = (vm as Resource & { power?: string }).power;
    const current = String((p.hardwareProfile as { vmSize: string }).vmSize);
    if (typeof size === 'string' && size !== current) {
      if (capacity.get(size) === 'SkuNotAvailable') throw skuNotAvailable(vm.id, size);
      if (power === 'running' && seriesOf(size) !== seriesOf(current)) {
        throw new ArmError(
          409,
          'OperationNotAllowed',
          `Unable to resize the VM '${name}' because the requested size ${size} is not available in the current hardware cluster. The available sizes in this cluster are: ${availableSizes(current).join(',')}. Read more on VM resizing strategy at https://aka.ms/azure-resizevm.`,
        );
      }
      p.hardwareProfile = { ...(p.hardwareProfile as object), vmSize: size };
    }
    const osDisk = (props(body).storageProfile as { osDisk?: Record<string, unknown> } | undefined)?.osDisk;
    const swapTo = (osDisk?.managedDisk as { id?: unknown } | undefined)?.id;
    const storage = p.storageProfile as { osDisk: Record<string, unknown> };
    const currentOs = (storage.osDisk.managedDisk as { id: string }).id;
    if (typeof swapTo === 'string' && key_(swapTo) !== key_(currentOs)) {
      const disk = get(swapTo);
      if (!disk || disk.type !== TYPES.disk) {
        throw new ArmError(400, 'InvalidParameter', `The OS disk ${swapTo} does not exist.`);
      }
      if (power !== 'deallocated') {
        throw new ArmError(
          409,
          'OperationNotAllowed',
          `The OS disk of VM '${name}' can only be swapped while the VM is deallocated.`,
        );
      }
      if (disk.doc.managedBy) {
        throw new ArmError(
          409,
          'OperationNotAllowed',
          `Disk ${disk.name} is attached to VM ${String(disk.doc.managedBy)}.`,
        );
      }
      const old = get(currentOs);
      if (old) {
        delete old.doc.managedBy;
        props(old.doc).diskState = 'Unattached';
      }
      disk.doc.managedBy = vm.id;
      props(disk.doc).diskState = 'Reserved';
      storage.osDisk = {
        ...storage.osDisk,
        ...osDisk,
        name: disk.name,
        managedDisk: { ...((osDisk?.managedDisk as object | undefined) ?? {}), id: disk.id },
      };
      if (disk.data !== undefined) vm.restoreFrom = disk.data;
    }
    setVmState(vm, 'Updating');
    const config = cloudConfigOf((vm as Resource & { customData?: unknown }).customData);
    const os = p.osProfile as {
      adminUsername: string;
      linuxConfiguration?: { ssh?: { publicKeys?: { keyData: string }[] } };
    };
    const keys = (os.linuxConfiguration?.ssh?.publicKeys ?? []).map((k) => k.keyData.trim());
    const nics = ((p.networkProfile as { networkInterfaces: { id: string }[] }).networkInterfaces ?? []).map(
      (n) => n.id,
    );
    const { operation, headers } = startOperation('Microsoft.Compute', async () => {
      // A failed VM is allocated again, a deallocated one stays deallocated, a running one keeps running.
      if (state === 'Failed' || !vm.host) await provisionVm(vm, config, os.adminUsername, keys, nics);
      else {
        const fault = typeof size === 'string' ? capacity.get(size) : undefined;
        if (fault !== undefined && power === 'running') {
          const error = allocationError(fault, size as string);
          setVmState(vm, 'Failed', { code: error.code, message: error.message });
          throw error;
        }
        setVmState(vm, 'Succeeded');
      }
    });
    vm.pending = operation.done;
    return {
      status: 200,
      body: vmView(vm, undefined),
      headers: { 'azure-asyncoperation': headers['azure-asyncoperation'] as string },
    };
  }

  function availableSizes(current: string): string[] {
    const series = seriesOf(current);
    return [2, 4, 8, 16, 32]
      .map((n) => current.replace(/^(Standard_[A-Z]+)\d+/, `$1${n}`))
      .filter((s) => seriesOf(s) === series && capacity.get(s) !== 'SkuNotAvailable');
  }

  function vmAction(rg: string, name: string, action: string) {
    const vm = get(idOf(rg, TYPES.vm, name));
    if (!vm) throw notFound(TYPES.vm, rg, name);
    const state = String(props(vm.doc).provisioningState);
    if (state === 'Creating' || state === 'Deleting') {
      throw new ArmError(
        409,
        'OperationNotAllowed',
        `Operation '${action}' is not allowed on VM '${name}' since the VM is ${state.toLowerCase()}.`,
      );
    }
    const power =
      action === 'deallocate'
        ? 'deallocated'
        : action === 'start'
          ? 'running'
          : action === 'powerOff'
            ? 'stopped'
            : undefined;
    if (!power)
      throw new ArmError(404, 'InvalidResourceType', `The resource type '${action}' could not be found.`);
    const { headers } = startOperation('Microsoft.Compute', async () => {
      // Booting from a swapped OS disk: the host's files become the disk's (the host's
      // processes keep running; see README.md).
      if (power === 'running' && vm.restoreFrom !== undefined && vm.host) {
        await copyTree(vm.restoreFrom, checkedRoot(vm.host), true);
        vm.restoreFrom = undefined;
      }
      (vm as Resource & { power?: string }).power = power;
      setVmState(vm, 'Succeeded');
    });
    return { status: 202, headers };
  }

  function deleteVm(rg: string, name: string) {
    const vm = get(idOf(rg, TYPES.vm, name));
    if (!vm) return { status: 204 };
    const p = props(vm.doc);
    const pending = vm.pending;
    setVmState(vm, 'Deleting');
    const { headers } = startOperation('Microsoft.Compute', async () => {
      // A create still running finishes first (its host included), then the VM goes.
      await pending;
      setVmState(vm, 'Deleting');
      const host = vm.host;
      vm.host = undefined;
      await host?.destroy();
      const storage = (p.storageProfile ?? {}) as {
        osDisk?: Record<string, unknown>;
        dataDisks?: Record<string, unknown>[];
      };
      for (const disk of [storage.osDisk, ...(storage.dataDisks ?? [])]) {
        const diskId = (disk?.managedDisk as { id?: string } | undefined)?.id;
        const stored = diskId ? get(diskId) : undefined;
        if (!stored) continue;
        if (disk?.deleteOption === 'Delete') resources.delete(key_(stored.id));
        else {
          delete stored.doc.managedBy;
          props(stored.doc).diskState = 'Unattached';
        }
      }
      for (const ref of (
        p.networkProfile as { networkInterfaces?: { id: string; properties?: { deleteOption?: string } }[] }
      )?.networkInterfaces ?? []) {
        const nic = get(ref.id);
        if (!nic) continue;
        if (ref.properties?.deleteOption === 'Delete') resources.delete(key_(nic.id));
        else delete props(nic.doc).virtualMachine;
      }
      resources.delete(key_(vm.id));
    });
    return { status: 202, headers };
  }

  // ---- Disks -------------------------------------------------------------------------------

  function patchDisk(rg: string, name: string, body: Record<string, unknown>) {
    const disk = get(idOf(rg, TYPES.disk, name));
    if (!disk) throw notFound(TYPES.disk, rg, name);
    checkTags(body);
    if (body.tags !== undefined) disk.doc.tags = body.tags;
    const { operation, headers } = startOperation('Microsoft.Compute', async () => {});
    operation.result = () => disk.doc;
    return { status: 202, headers };
  }

  function deleteDisk(rg: string, name: string) {
    const disk = get(idOf(rg, TYPES.disk, name));
    if (!disk) return { status: 204 };
    if (disk.doc.managedBy) {
      throw new ArmError(
        409,
        'OperationNotAllowed',
        `Disk ${name} is attached to VM ${String(disk.doc.managedBy)}.`,
      );
    }
    const { headers } = startOperation('Microsoft.Compute', async () => {
      resources.delete(key_(disk.id));
    });
    return { status: 202, headers };
  }

  // ---- Snapshots and disks made from them ---------------------------------------------------

  /** The files a disk holds: its VM's host's, if it is a running VM's OS disk, else its own copy. */
  function filesOf(disk: Resource): { readonly host?: TestHost; readonly data?: string } {
    const vmId = disk.doc.managedBy;
    const vm = typeof vmId === 'string' ? get(vmId) : undefined;
    const osDiskId = vm
      ? ((props(vm.doc).storageProfile as { osDisk?: { managedDisk?: { id?: string } } } | undefined)?.osDisk
          ?.managedDisk?.id ?? '')
      : '';
    if (vm?.host && key_(osDiskId) === key_(disk.id)) return { host: vm.host };
    return disk.data === undefined ? {} : { data: disk.data };
  }

  function putSnapshot(rg: string, name: string, body: Record<string, unknown>) {
    checkLocation(body);
    checkTags(body);
    const id = idOf(rg, TYPES.snapshot, name);
    if (get(id)) throw new ArmError(409, 'OperationNotAllowed', `Snapshot ${name} already exists.`);
    const creation = (props(body).creationData ?? {}) as {
      createOption?: unknown;
      sourceResourceId?: unknown;
    };
    const source = typeof creation.sourceResourceId === 'string' ? get(creation.sourceResourceId) : undefined;
    if (creation.createOption !== 'Copy' || !source || source.type !== TYPES.disk) {
      throw new ArmError(
        400,
        'InvalidParameter',
        "A snapshot is made with creationData.createOption 'Copy' from an existing managed disk (creationData.sourceResourceId).",
      );
    }
    const snapshot: Resource = {
      id,
      type: TYPES.snapshot,
      resourceGroup: rg,
      name,
      doc: {
        name,
        id,
        type: TYPES.snapshot,
        location,
        tags: body.tags ?? {},
        sku: { name: 'Standard_LRS', tier: 'Standard' },
        properties: {
          creationData: { createOption: 'Copy', sourceResourceId: source.id },
          incremental: props(body).incremental === true,
          diskSizeGB: props(source.doc).diskSizeGB,
          osType: 'Linux',
          timeCreated: new Date().toISOString(),
          provisioningState: 'Creating',
        },
      },
    };
    resources.set(key_(id), snapshot);
    const files = filesOf(source);
    const { headers } = startOperation('Microsoft.Compute', async () => {
      if (files.host) {
        snapshot.data = join(dataDir, `copy-${++copies}`);
        await copyTree(checkedRoot(files.host), snapshot.data, false);
      } else if (files.data) snapshot.data = files.data;
      props(snapshot.doc).provisioningState = 'Succeeded';
    });
    return { status: 202, body: snapshot.doc, headers };
  }

  function putDisk(rg: string, name: string, body: Record<string, unknown>) {
    checkLocation(body);
    checkTags(body);
    const id = idOf(rg, TYPES.disk, name);
    const existing = get(id);
    if (existing) {
      existing.doc.tags = body.tags ?? existing.doc.tags;
      return { status: 200, body: existing.doc };
    }
    const creation = (props(body).creationData ?? {}) as {
      createOption?: unknown;
      sourceResourceId?: unknown;
    };
    const source = typeof creation.sourceResourceId === 'string' ? get(creation.sourceResourceId) : undefined;
    if (creation.createOption !== 'Copy' || !source || source.type !== TYPES.snapshot) {
      throw new ArmError(
        400,
        'InvalidParameter',
        "The stand-in makes disks only with creationData.createOption 'Copy' from a snapshot (creationData.sourceResourceId).",
      );
    }
    const disk: Resource = {
      id,
      type: TYPES.disk,
      resourceGroup: rg,
      name,
      doc: {
        name,
        id,
        type: TYPES.disk,
        location,
        tags: body.tags ?? {},
        sku: (body.sku as object | undefined) ?? { name: 'Premium_LRS', tier: 'Premium' },
        properties: {
          creationData: { createOption: 'Copy', sourceResourceId: source.id },
          diskSizeGB: props(source.doc).diskSizeGB,
          osType: 'Linux',
          diskState: 'Unattached',
          timeCreated: new Date().toISOString(),
          provisioningState: 'Updating',
        },
      },
      ...(source.data === undefined ? {} : { data: source.data }),
    };
    resources.set(key_(id), disk);
    const { headers } = startOperation('Microsoft.Compute', async () => {
      props(disk.doc).provisioningState = 'Succeeded';
    });
    return { status: 202, body: disk.doc, headers };
  }

  function deleteSnapshot(rg: string, name: string) {
    const snapshot = get(idOf(rg, TYPES.snapshot, name));
    if (!snapshot) return { status: 204 };
    const { headers } = startOperation('Microsoft.Compute', async () => {
      resources.delete(key_(snapshot.id));
    });
    return { status: 202, headers };
  }

  function listOf(rg: string, type: string): Answer {
    return {
      status: 200,
      body: {
        value: [...resources.values()]
          .filter((r) => r.type === type && r.resourceGroup.toLowerCase() === rg.toLowerCase())
          .map((r) => r.doc),
      },
    };
  }

  /** A host's root as the control machine sees it, refused unless it is one the harness made. */
  function checkedRoot(host: TestHost): string {
    const root = host.root;
    if (!root.startsWith(`${hostsBase()}/`) || !existsSync(join(root, 'etc'))) {
      throw new Error(`${root} is not a test host's root filesystem`);
    }
    return root;
  }

  // ---- Routing -----------------------------------------------------------------------------

  type Answer = { status: number; body?: unknown; headers?: Record<string, string> };

  function operationAnswer(namespace: string, id: string, kind: 'operations' | 'operationResults'): Answer {
    const operation = operations.get(id);
    if (!operation || operation.namespace.toLowerCase() !== namespace.toLowerCase()) {
      throw new ArmError(404, 'NotFound', `The operation '${id}' could not be found.`);
    }
    const pending =
      operation.status === 'InProgress' && retryAfter !== '0' ? { 'retry-after': retryAfter } : {};
    if (kind === 'operations') {
      return {
        status: 200,
        headers: pending,
        body: {
          name: operation.id,
          startTime: operation.startTime,
          status: operation.status,
          ...(operation.endTime && operation.status !== 'InProgress' ? { endTime: operation.endTime } : {}),
          ...(operation.error ? { error: operation.error } : {}),
        },
      };
    }
    if (operation.status === 'InProgress') {
      return {
        status: 202,
        headers: {
          ...pending,
          location: `${endpoint}/subscriptions/${subscriptionId}/providers/${operation.namespace}/locations/${location}/operationResults/${id}`,
        },
      };
    }
    if (operation.status === 'Failed')
      throw new ArmError(409, operation.error?.code ?? 'Failed', operation.error?.message ?? 'failed');
    // Compute's operationResults answer 200 once done, with the result if the operation has one.
    return { status: 200, ...(operation.result ? { body: operation.result() } : {}) };
  }

  function route(
    method: string,
    path: string,
    query: URLSearchParams,
    body: Record<string, unknown>,
  ): Answer {
    const op =
      /^\/subscriptions\/([^/]+)\/providers\/(Microsoft\.(?:Compute|Network))\/locations\/([^/]+)\/(operations|operationResults)\/([^/]+)$/i.exec(
        path,
      );
    if (op) {
      if (method !== 'GET')
        throw new ArmError(405, 'MethodNotAllowed', `The method ${method} is not allowed.`);
      return operationAnswer(op[2] as string, op[5] as string, op[4] as 'operations' | 'operationResults');
    }
    const list =
      /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.Compute\/snapshots$/i.exec(
        path,
      );
    if (list && method === 'GET') {
      checkScope(list[1] as string, list[2] as string);
      return listOf(groups.get((list[2] as string).toLowerCase()) as string, TYPES.snapshot);
    }
    const m =
      /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/(Microsoft\.(?:Compute|Network))\/([^/]+)\/([^/]+)(?:\/([^/]+))?$/i.exec(
        path,
      );
    if (!m) throw new ArmError(404, 'InvalidResourceType', `No route for ${method} ${path}.`);
    const [, sub, rgSent, ns, kind, name, action] = m as unknown as [
      string,
      string,
      string,
      string,
      string,
      string,
      string | undefined,
    ];
    checkScope(sub, rgSent);
    const rg = groups.get(rgSent.toLowerCase()) as string;
    const type = `${ns}/${kind}`.toLowerCase();
    if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}$/.test(name)) {
      throw new ArmError(400, 'InvalidResourceName', `Resource name ${name} is invalid.`);
    }
    const plain = (t: string): Answer => {
      const resource = get(idOf(rg, t, name));
      if (!resource) throw notFound(t, rg, name);
      return {
        status: 200,
        body: t === TYPES.vm ? vmView(resource, query.get('$expand') ?? undefined) : resource.doc,
      };
    };
    switch (type) {
      case TYPES.vm.toLowerCase():
        if (action === 'vmSizes' && method === 'GET') {
          const vm = get(idOf(rg, TYPES.vm, name));
          if (!vm) throw notFound(TYPES.vm, rg, name);
          const current = String((props(vm.doc).hardwareProfile as { vmSize: string }).vmSize);
          return { status: 200, body: { value: availableSizes(current).map((s) => ({ name: s })) } };
        }
        if (action !== undefined && method === 'POST') return vmAction(rg, name, action);
        if (action !== undefined) break;
        if (method === 'GET') return plain(TYPES.vm);
        if (method === 'PUT') return putVm(rg, name, body);
        if (method === 'PATCH') return patchVm(rg, name, body);
        if (method === 'DELETE') return deleteVm(rg, name);
        break;
      case TYPES.disk.toLowerCase():
        if (action !== undefined) break;
        if (method === 'GET') return plain(TYPES.disk);
        if (method === 'PUT') return putDisk(rg, name, body);
        if (method === 'PATCH') return patchDisk(rg, name, body);
        if (method === 'DELETE') return deleteDisk(rg, name);
        break;
      case TYPES.snapshot.toLowerCase():
        if (action !== undefined) break;
        if (method === 'GET') return plain(TYPES.snapshot);
        if (method === 'PUT') return putSnapshot(rg, name, body);
        if (method === 'DELETE') return deleteSnapshot(rg, name);
        break;
      case TYPES.nic.toLowerCase():
        if (action !== undefined) break;
        if (method === 'GET') return plain(TYPES.nic);
        if (method === 'PUT') return putNic(rg, name, body);
        if (method === 'DELETE') return deleteNic(rg, name);
        break;
      case TYPES.nsg.toLowerCase():
        if (action !== undefined) break;
        if (method === 'GET') return plain(TYPES.nsg);
        if (method === 'PUT') return putNsg(rg, name, body);
        if (method === 'DELETE') return deleteNsg(rg, name);
        break;
    }
    throw new ArmError(
      405,
      'MethodNotAllowed',
      `The requested resource does not support http method '${method}'.`,
    );
  }

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const url = new URL(req.url ?? '/', 'https://127.0.0.1');
    const method = req.method ?? 'GET';
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    let body: unknown;
    let answer: Answer;
    try {
      try {
        body = text === '' ? {} : JSON.parse(text);
      } catch {
        throw new ArmError(
          400,
          'InvalidRequestContent',
          'The request content was invalid and could not be deserialized.',
        );
      }
      if (!/^Bearer \S+/.test(String(req.headers.authorization ?? ''))) {
        throw new ArmError(
          401,
          'AuthenticationFailed',
          "Authentication failed. The 'Authorization' header is missing.",
          {
            'www-authenticate':
              'Bearer authorization_uri="https://login.microsoftonline.com/common", error="invalid_token", error_description="The authentication failed because of missing \'Authorization\' header."',
          },
        );
      }
      const throttle = throttles.find(
        (t) =>
          t.left > 0 &&
          (t.method === undefined || t.method === method) &&
          (t.path === undefined || t.path.test(url.pathname)),
      );
      if (throttle) {
        throttle.left--;
        throw new ArmError(
          429,
          'OperationNotAllowed',
          'The server rejected the request because too many requests have been received for this subscription.',
          { 'retry-after': String(throttle.retryAfter) },
          [
            {
              code: 'TooManyRequests',
              target: method === 'GET' ? 'HighCostGet3Min' : 'PutVM3Min',
              message:
                '{"operationGroup":"PutVM3Min","startTime":"","endTime":"","allowedRequestCount":0,"measuredRequestCount":1}',
            },
          ],
        );
      }
      if (!url.searchParams.get('api-version')) {
        throw new ArmError(
          400,
          'MissingApiVersionParameter',
          'The api-version query parameter (?api-version=) is required for all requests.',
        );
      }
      answer = route(method, url.pathname, url.searchParams, (body ?? {}) as Record<string, unknown>);
    } catch (error) {
      answer =
        error instanceof ArmError
          ? {
              status: error.status,
              headers: error.headers,
              body: {
                error: {
                  code: error.code,
                  message: error.message,
                  ...(error.details ? { details: error.details } : {}),
                },
              },
            }
          : { status: 500, body: { error: { code: 'InternalServerError', message: String(error) } } };
    }
    calls.push({
      method,
      path: url.pathname,
      apiVersion: url.searchParams.get('api-version') ?? undefined,
      body,
      status: answer.status,
    });
    const out = answer.body === undefined ? '' : JSON.stringify(answer.body);
    res.writeHead(answer.status, {
      ...(out ? { 'content-type': 'application/json; charset=utf-8' } : {}),
      'content-length': Buffer.byteLength(out),
      'x-ms-request-id': randomUUID(),
      'x-ms-correlation-request-id': String(req.headers['x-ms-client-request-id'] ?? randomUUID()),
      ...(answer.status >= 400 && answer.body ? { 'x-ms-failure-cause': 'gateway' } : {}),
      ...answer.headers,
    });
    res.end(out);
  }

  const server: Server = createServer({ cert, key }, (req, res) => {
    handle(req, res).catch(() => res.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  endpoint = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const idle = async () => {
    for (;;) {
      const running = [...operations.values()].filter((o) => o.status === 'InProgress');
      if (running.length === 0) return;
      await Promise.all(running.map((o) => o.done));
    }
  };

  return {
    endpoint,
    certificate: cert,
    subscriptionId,
    location,
    credential: {
      getToken: async () => ({
        token: `stand-in-${randomUUID()}`,
        expiresOnTimestamp: Date.now() + 3_600_000,
      }),
    },
    clientOptions: { endpoint, tlsOptions: { ca: cert } },
    calls,
    resource: (id) => get(id)?.doc,
    resourceIds: (type) =>
      [...resources.values()]
        .filter((r) => type === undefined || r.type.toLowerCase() === type.toLowerCase())
        .map((r) => r.id),
    hostOf: (id) => get(id)?.host,
    failCapacity(size, code) {
      if (code === undefined) capacity.delete(size);
      else capacity.set(size, code);
    },
    throttle(times, filter = {}, seconds = 1) {
      throttles.push({ left: times, ...filter, retryAfter: seconds });
    },
    failNextCreate(
      error = {
        code: 'OSProvisioningTimedOut',
        message:
          'OS Provisioning for VM did not finish in the allotted time. The VM may still finish provisioning successfully. Please check provisioning state later.',
      },
    ) {
      nextCreateFailure = error;
    },
    dropSubnet(id) {
      droppedSubnets.add(id.toLowerCase());
    },
    seed(id, resource) {
      const m = /^\/subscriptions\/[^/]+\/resourceGroups\/([^/]+)\/providers\/([^/]+\/[^/]+)\/([^/]+)$/i.exec(
        id,
      );
      if (!m) throw new Error(`${id} is not a resource id`);
      resources.set(key_(id), {
        id,
        type: m[2] as string,
        resourceGroup: m[1] as string,
        name: m[3] as string,
        doc: { id, name: m[3], type: m[2], location, ...resource },
      });
    },
    idle,
    async stop() {
      await idle();
      for (const r of resources.values()) {
        const host = r.host;
        r.host = undefined;
        await host?.destroy();
      }
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** A self-signed certificate for 127.0.0.1, made by openssl for this run only. */
async function selfSignedCertificate(): Promise<{ cert: string; key: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'persona-arm-'));
  try {
    await execFileAsync('openssl', [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '2',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-keyout',
      join(dir, 'key.pem'),
      '-out',
      join(dir, 'cert.pem'),
    ]);
    return {
      cert: await readFile(join(dir, 'cert.pem'), 'utf8'),
      key: await readFile(join(dir, 'key.pem'), 'utf8'),
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Copies a root filesystem's files (not /proc, /sys, /dev, /run: in a host those are its own
 * mounts, empty folders from outside), with hard links, ACLs, extended attributes and numeric
 * owners; `exact` deletes what the source lacks.
 */
async function copyTree(from: string, to: string, exact: boolean): Promise<void> {
  await execFileAsync('rsync', [
    '-aHAX',
    '--numeric-ids',
    ...(exact ? ['--delete'] : []),
    '--exclude=/proc/*',
    '--exclude=/sys/*',
    '--exclude=/dev/*',
    '--exclude=/run/*',
    '--',
    `${from}/`,
    `${to}/`,
  ]);
}
