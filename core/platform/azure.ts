// Azure VMs (AZURE.md): a clone's host is a VM in the caller's subnet, with a network security
// group of its own that lets the virtual network reach SSH and the source's ports, managed disks
// sized from the source's volumes, and a host key Persona chose, so that the first connection is
// already pinned. Provisioning starts the create and returns; poll() reads the VM once per call
// of the workflow's Wait loop; terminate deletes only what carries this operation's tag.
import { createHash } from 'node:crypto';
import type { ComputeManagementClient, VirtualMachine } from '@azure/arm-compute';
import type { NetworkManagementClient } from '@azure/arm-network';
import { ConflictError, type ErrorCode, InvalidInputError, NotFoundError, PersonaError } from '../errors.js';
import { fingerprintOf, MemoryHostKeyStore } from '../transport/host-keys.js';
import { ed25519KeyPair } from '../transport/key-pair.js';
import { displayValue } from '../transport/shell.js';
import { SshTransport } from '../transport/ssh.js';
import type { Transport } from '../transport/transport.js';
import { CAPACITY_ERRORS, diskSizeGiB, diskSkuFor, imageFor, sizeCandidates } from './azure-sizes.js';
import { checkName } from './baremetal.js';
import type {
  HostAccess,
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

/** The tag every resource of an operation carries; Azure tag names cannot hold ':'. */
export const OPERATION_TAG = 'persona-operation';
/** On the VM: the sizes to try, in order, so that poll() can fall back without the request. */
export const SIZES_TAG = 'persona-sizes';
/** On the VM: the SHA256 fingerprint of the host key given to it (public, not a secret). */
export const HOST_KEY_TAG = 'persona-host-key';

const RESERVED_TAG_PREFIXES = ['persona-', 'microsoft', 'azure', 'windows'];
const MAX_TAGS = 50;
const OS_DISK_MIN_GIB = 30;
const MAX_DATA_DISKS = 16;
const FINGERPRINT = /^SHA256:[A-Za-z0-9+/]{43}$/;
const RESOURCE_GROUP = /^[-\w.()]{0,89}[-\w()]$/;
const LOCATION = /^[a-z][a-z0-9]{1,39}$/;
const SUBNET_ID =
  /^\/subscriptions\/[0-9A-Fa-f-]{36}\/resourceGroups\/[-\w.()]{1,90}\/providers\/Microsoft\.Network\/virtualNetworks\/[-\w.]{2,64}\/subnets\/[-\w.]{1,80}$/;
const SSH_PUBLIC_KEY =
  /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/]+={0,3}( [^\r\n]*)?$/;
const VM_SIZE = /^Standard_[A-Za-z0-9_]{2,40}$/;

export interface AzurePlatformOptions {
  readonly compute: ComputeManagementClient;
  readonly network: NetworkManagementClient;
  readonly subscriptionId: string;
  /** The private half of the request's `sshPublicKey`; the caller keeps credentials. */
  readonly privateKeyFor: (handle: ProvisionHandle) => Promise<string>;
  /** The VM's admin user (osProfile.adminUsername; Azure refuses `root`). Default `persona`. */
  readonly user?: string;
  /**
   * Log in as root with the same key (cloud-init `disable_root: false`): capture and apply need
   * root and the transports do not elevate, and the admin user has passwordless sudo anyway, so
   * this grants nothing more. Default true; false logs in as the admin user.
   */
  readonly rootLogin?: boolean;
  /** What poll() asks the Wait loop to wait between calls. Default 15 s. */
  readonly pollIntervalMs?: number;
  /**
   * The interval of long-running operations followed to completion (network, deletes, resize)
   * when ARM sends no Retry-After; ARM's Retry-After wins. Default the SDK's (2 s).
   */
  readonly operationIntervalMs?: number;
  /** For the SSH transport: connect, handshake and authentication. Default 15 s. */
  readonly connectTimeoutMs?: number;
}

/** Azure refused or failed a request; `azureCode` is ARM's error code. Nothing secret in it. */
export class AzureRequestError extends PersonaError {
  readonly code: ErrorCode;
  constructor(
    message: string,
    readonly azureCode: string,
    readonly status: number | undefined,
  ) {
    super(message);
    this.name = 'AzureRequestError';
    this.code = status === 400 ? 'INVALID_INPUT' : status === 404 ? 'NOT_FOUND' : 'CONFLICT';
  }
}

/** Every size tried answered a capacity error. */
export class AzureCapacityError extends PersonaError {
  readonly code = 'CONFLICT';
  constructor(
    readonly sizes: readonly string[],
    readonly azureCode: string,
    detail: string,
  ) {
    super(`no capacity for any of ${sizes.join(', ')}: ${azureCode}: ${detail}`);
    this.name = 'AzureCapacityError';
  }
}

interface Names {
  readonly resourceGroup: string;
  readonly vm: string;
  readonly nic: string;
  readonly nsg: string;
  readonly osDisk: string;
  readonly dataDisk: (index: number) => string;
}

/** ARM's error code and message of an SDK error, and nothing else of it (the request carries customData). */
function armError(error: unknown): { code: string; message: string; status: number | undefined } {
  const e = error as { code?: unknown; message?: unknown; statusCode?: unknown } | null;
  const message = typeof e?.message === 'string' ? e.message : String(error);
  // A failed long-running operation surfaces as "The long-running operation has failed. CODE. message".
  const lro = /^The long-running operation has failed\. ([A-Za-z]+)\. ([\s\S]*)$/.exec(message);
  if (lro) return { code: lro[1] as string, message: lro[2] as string, status: undefined };
  return {
    code: typeof e?.code === 'string' ? e.code : 'Unknown',
    message,
    status: typeof e?.statusCode === 'number' ? e.statusCode : undefined,
  };
}

const isNotFound = (error: unknown) => armError(error).status === 404;

export class AzurePlatform implements PlatformAdaptor {
  readonly platform = 'azure' as const;
  private readonly user: string;

  constructor(private readonly options: AzurePlatformOptions) {
    this.user = options.user ?? 'persona';
    if (!/^[a-z_][a-z0-9_-]{0,31}$/.test(this.user) || this.user === 'root') {
      throw new InvalidInputError(`admin user ${displayValue(this.user)} is not allowed on Azure`, [
        { path: 'user', message: 'a lower-case login name other than root' },
      ]);
    }
  }

  async provision(request: ProvisionRequest): Promise<ProvisionHandle> {
    const operation = checkName(request.operation, 'operation');
    const { resourceGroup, location, subnet, publicKey, tags } = this.checkRequest(request);
    const names = namesFor(operation, resourceGroup);
    const { compute, network } = this.options;
    const handle: ProvisionHandle = {
      platform: 'azure',
      operation,
      id: this.vmId(names),
      scope: resourceGroup,
    };
    const sizes = sizeCandidates(request.shape, request.size);
    const image = imageFor(request.shape, request.image);
    const disks = this.disksFor(request, names);

    // A retried step finds the VM its first try created: the create is never sent twice, since
    // the host key in customData cannot change once ARM has it.
    const existing = await this.findVm(names);
    if (existing !== undefined) {
      if (existing.tags?.[OPERATION_TAG] !== operation) {
        throw new ConflictError(
          `VM ${names.vm} in resource group ${resourceGroup} exists and was not provisioned by operation ${operation}`,
        );
      }
      return handle;
    }

    const own = { ...tags, [OPERATION_TAG]: operation };
    const interval = this.interval();
    const nsg = await network.networkSecurityGroups
      .createOrUpdate(
        resourceGroup,
        names.nsg,
        { location, tags: own, securityRules: securityRules(request) },
        interval,
      )
      .pollUntilDone()
      .catch(async (e: unknown) => {
        await this.removeNetwork(names, operation);
        return this.fail(`creating network security group ${names.nsg}`, e);
      });
    const nic = await network.networkInterfaces
      .createOrUpdate(
        resourceGroup,
        names.nic,
        {
          location,
          tags: own,
          networkSecurityGroup: { id: nsg.id as string },
          ipConfigurations: [
            { name: 'ipconfig1', subnet: { id: subnet }, privateIPAllocationMethod: 'Dynamic' },
          ],
        },
        interval,
      )
      .pollUntilDone()
      .catch(async (e: unknown) => {
        await this.removeNetwork(names, operation);
        return this.fail(`creating network interface ${names.nic}`, e);
      });

    const hostKey = ed25519KeyPair(`persona-${names.vm}`);
    const fingerprint = fingerprintOf(hostKey.publicBlob);
    const customData = Buffer.from(
      cloudConfig(hostKey.privateKey, hostKey.publicKey, this.rootLogin()),
    ).toString('base64');

    let last: { code: string; message: string } | undefined;
    for (const [index, size] of sizes.entries()) {
      const vm: VirtualMachine = {
        location,
        tags: {
          ...own,
          [SIZES_TAG]: sizes.slice(index).join(','),
          [HOST_KEY_TAG]: fingerprint,
        },
        hardwareProfile: { vmSize: size },
        storageProfile: {
          imageReference: image,
          osDisk: { ...disks.os, createOption: 'FromImage', deleteOption: 'Delete', caching: 'ReadWrite' },
          dataDisks: disks.data.map((d, lun) => ({
            ...d,
            lun,
            createOption: 'Empty',
            deleteOption: 'Delete',
          })),
        },
        osProfile: {
          computerName: names.vm,
          adminUsername: this.user,
          customData,
          linuxConfiguration: {
            disablePasswordAuthentication: true,
            provisionVMAgent: true,
            ssh: { publicKeys: [{ path: `/home/${this.user}/.ssh/authorized_keys`, keyData: publicKey }] },
          },
        },
        networkProfile: {
          networkInterfaces: [{ id: nic.id as string, primary: true, deleteOption: 'Delete' }],
        },
      };
      try {
        // The create is started, not awaited: poll() follows it, one read per Wait loop turn.
        await compute.virtualMachines.createOrUpdate(resourceGroup, names.vm, vm).submitted();
        return handle;
      } catch (error) {
        const e = armError(error);
        if (!CAPACITY_ERRORS.has(e.code)) {
          // A provision of the same operation running at once may have created the VM since
          // this one looked: that VM is this operation's, and its interface must stay.
          const raced = await this.findVm(names).catch(() => undefined);
          if (raced?.tags?.[OPERATION_TAG] === operation) return handle;
          await this.removeNetwork(names, operation);
          throw new AzureRequestError(`creating VM ${names.vm}: ${e.code}: ${e.message}`, e.code, e.status);
        }
        last = e;
      }
    }
    await this.removeNetwork(names, operation);
    throw new AzureCapacityError(sizes, last?.code ?? 'SkuNotAvailable', last?.message ?? '');
  }

  /**
   * One read of the VM (with its instance view), not the create's own operation status: the
   * Wait loop's calls run in different processes, a handle is four small fields, and the VM's
   * provisioningState and its ProvisioningState/failed/<code> status say the same thing and
   * outlive the operation-status URL.
   */
  async poll(handle: ProvisionHandle): Promise<ProvisionStatus> {
    const names = this.namesOf(handle);
    const vm = await this.findVm(names, 'instanceView');
    const retryAfterMs = this.options.pollIntervalMs ?? 15_000;
    if (vm === undefined) {
      return {
        state: 'failed',
        reason: `VM ${names.vm} does not exist in resource group ${names.resourceGroup}`,
      };
    }
    if (vm.tags?.[OPERATION_TAG] !== handle.operation) {
      return {
        state: 'failed',
        reason: `VM ${names.vm} was not provisioned by operation ${handle.operation}`,
      };
    }
    const state = vm.provisioningState ?? 'Unknown';
    if (state === 'Succeeded') {
      const fingerprint = vm.tags?.[HOST_KEY_TAG];
      if (fingerprint === undefined || !FINGERPRINT.test(fingerprint)) {
        return { state: 'failed', reason: `VM ${names.vm} carries no host key fingerprint to pin` };
      }
      const address = await this.privateAddress(names);
      if (address === undefined) {
        return { state: 'pending', retryAfterMs, detail: 'the network interface has no private address yet' };
      }
      await this.tagDisks(vm, handle.operation);
      const access: HostAccess = {
        transport: 'ssh',
        address,
        port: 22,
        user: this.rootLogin() ? 'root' : this.user,
        hostKeyFingerprint: fingerprint,
      };
      return { state: 'ready', host: { ...handle, access } };
    }
    if (state === 'Failed') {
      const failure = vm.instanceView?.statuses?.find((s) => s.code?.startsWith('ProvisioningState/failed'));
      const code = failure?.code?.split('/')[2] ?? 'ProvisioningFailed';
      const message = failure?.message ?? failure?.displayStatus ?? 'provisioning failed';
      if (CAPACITY_ERRORS.has(code)) {
        const next = await this.nextSize(vm, names);
        if (next !== undefined) {
          return {
            state: 'pending',
            retryAfterMs,
            detail: `${code} for ${vm.hardwareProfile?.vmSize}: trying ${next}`,
          };
        }
      }
      return { state: 'failed', reason: `${code}: ${message}` };
    }
    return { state: 'pending', retryAfterMs, detail: `VM ${names.vm} is ${state}` };
  }

  /**
   * A managed-disk snapshot of the VM's OS disk (incremental, tagged with the operation): the
   * whole root volume, whatever the scope's paths, since a disk is the unit Azure copies. Data
   * disks are not snapshotted.
   */
  async snapshot(host: ProvisionedHost, _scope: SnapshotScope): Promise<PlatformSnapshotRef> {
    const names = this.namesOf(host);
    const vm = await this.ownVm(names, host.operation);
    const osDisk = vm.storageProfile?.osDisk?.managedDisk?.id;
    if (osDisk === undefined) throw new NotFoundError(`VM ${names.vm} has no managed OS disk`, host.id);
    const name = `${names.vm}-snap-${Date.now().toString(36)}`;
    const snapshot = await this.step(`snapshotting the OS disk of VM ${names.vm}`, () =>
      this.options.compute.snapshots
        .createOrUpdate(
          names.resourceGroup,
          name,
          {
            location: vm.location,
            tags: { [OPERATION_TAG]: host.operation },
            incremental: true,
            creationData: { createOption: 'Copy', sourceResourceId: osDisk },
          },
          this.interval(),
        )
        .pollUntilDone(),
    );
    return { platform: 'azure', id: snapshot.id as string, host: host.id };
  }

  /**
   * Puts the VM back on a disk made from the snapshot: a new OS disk from it, then deallocate,
   * swap the OS disk, start, and delete the disk it ran on (Azure swaps OS disks only on a
   * deallocated VM). The host key and address are the VM's, so the pinned access still holds.
   */
  async restore(host: ProvisionedHost, snapshot: PlatformSnapshotRef): Promise<void> {
    const names = this.namesOf(host);
    const prefix = `${this.options.subscriptionId}/resourceGroups/${names.resourceGroup}/providers/Microsoft.Compute/snapshots/${names.vm}-snap-`;
    if (
      snapshot.platform !== 'azure' ||
      snapshot.host !== host.id ||
      !snapshot.id.toLowerCase().startsWith(`/subscriptions/${prefix}`.toLowerCase())
    ) {
      throw new InvalidInputError(`snapshot ${displayValue(snapshot.id)} is not one of VM ${names.vm}`, [
        { path: 'snapshot', message: `taken of ${snapshot.platform} host ${displayValue(snapshot.host)}` },
      ]);
    }
    const { compute } = this.options;
    const vm = await this.ownVm(names, host.operation);
    const snapshotName = snapshot.id.split('/').pop() as string;
    const stored = await compute.snapshots.get(names.resourceGroup, snapshotName).catch(missing);
    if (stored === undefined)
      throw new NotFoundError(`snapshot ${snapshotName} no longer exists`, snapshot.id);
    if (stored.tags?.[OPERATION_TAG] !== host.operation) {
      throw new ConflictError(`snapshot ${snapshotName} was not taken by operation ${host.operation}`);
    }
    const old = vm.storageProfile?.osDisk;
    const interval = this.interval();
    const diskName = `${names.osDisk}-${Date.now().toString(36)}`;
    await this.step(`restoring VM ${names.vm} from ${snapshotName}`, async () => {
      const disk = await compute.disks
        .createOrUpdate(
          names.resourceGroup,
          diskName,
          {
            location: vm.location,
            tags: { [OPERATION_TAG]: host.operation },
            sku: { name: old?.managedDisk?.storageAccountType ?? 'Premium_LRS' },
            creationData: { createOption: 'Copy', sourceResourceId: stored.id as string },
          },
          interval,
        )
        .pollUntilDone();
      await compute.virtualMachines.deallocate(names.resourceGroup, names.vm, interval).pollUntilDone();
      await compute.virtualMachines
        .update(
          names.resourceGroup,
          names.vm,
          {
            storageProfile: {
              osDisk: {
                // What the OS disk was made with is unchanged: only the disk under it is swapped.
                createOption: old?.createOption ?? 'FromImage',
                name: diskName,
                deleteOption: 'Delete',
                managedDisk: { id: disk.id as string },
              },
            },
          },
          interval,
        )
        .pollUntilDone();
      await compute.virtualMachines.start(names.resourceGroup, names.vm, interval).pollUntilDone();
    });
    const oldName = old?.managedDisk?.id?.split('/').pop();
    if (oldName !== undefined) {
      const disk = await compute.disks.get(names.resourceGroup, oldName).catch(missing);
      if (disk?.tags?.[OPERATION_TAG] === host.operation) {
        await this.step(`deleting the replaced OS disk ${oldName}`, () =>
          compute.disks.delete(names.resourceGroup, oldName, interval).pollUntilDone(),
        );
      }
    }
  }

  /**
   * Resizes the VM, deallocating it first when its hardware cluster does not offer the size. A
   * size Azure has no capacity for (SkuNotAvailable, AllocationFailed, ZonalAllocationFailed)
   * gives way to the next of `fallback`; when none fits, the VM gets its own size back (started
   * again if it ran) and AzureCapacityError names what was tried.
   */
  async resize(host: ProvisionedHost, size: string, options: ResizeOptions = {}): Promise<ResizeResult> {
    const candidates = [size, ...(options.fallback ?? []).filter((s) => s !== size)];
    for (const [i, s] of candidates.entries()) {
      if (!VM_SIZE.test(s)) {
        throw new InvalidInputError(`size ${displayValue(s)} is not an Azure VM size`, [
          { path: i === 0 ? 'size' : `fallback[${i - 1}]`, message: 'expected Standard_...' },
        ]);
      }
    }
    const names = this.namesOf(host);
    const { compute } = this.options;
    const vm = await this.findVm(names, 'instanceView');
    if (vm === undefined) throw new NotFoundError(`VM ${names.vm} does not exist`, host.id);
    if (vm.tags?.[OPERATION_TAG] !== host.operation) {
      throw new ConflictError(`VM ${names.vm} was not provisioned by operation ${host.operation}`);
    }
    const current = vm.hardwareProfile?.vmSize ?? '';
    if (current === size) return { state: 'unchanged', size };
    const running = vm.instanceView?.statuses?.some((s) => s.code === 'PowerState/running') ?? false;
    const interval = this.interval();
    const inPlace: string[] = [];
    for await (const s of compute.virtualMachines.listAvailableSizes(names.resourceGroup, names.vm)) {
      if (s.name) inPlace.push(s.name);
    }
    let deallocated = false;
    let last: { code: string; message: string } | undefined;
    const attempt = async (target: string) => {
      // A size the VM's hardware cluster does not offer needs the VM deallocated first.
      if (running && !deallocated && !inPlace.includes(target)) {
        await compute.virtualMachines.deallocate(names.resourceGroup, names.vm, interval).pollUntilDone();
        deallocated = true;
      }
      await compute.virtualMachines
        .update(names.resourceGroup, names.vm, { hardwareProfile: { vmSize: target } }, interval)
        .pollUntilDone();
      if (deallocated)
        await compute.virtualMachines.start(names.resourceGroup, names.vm, interval).pollUntilDone();
    };
    for (const target of candidates) {
      try {
        await attempt(target);
        // Azure restarts a running VM to resize it, in place or not.
        return {
          state: 'resized',
          size: target,
          restarted: running,
          ...(current ? { previous: current } : {}),
        };
      } catch (error) {
        const e = armError(error);
        if (!CAPACITY_ERRORS.has(e.code)) {
          throw new AzureRequestError(
            `resizing VM ${names.vm} to ${target}: ${e.code}: ${e.message}`,
            e.code,
            e.status,
          );
        }
        last = e;
      }
    }
    if (current !== '') {
      try {
        await attempt(current);
      } catch (error) {
        const e = armError(error);
        throw new AzureRequestError(
          `giving VM ${names.vm} its size ${current} back: ${e.code}: ${e.message}`,
          e.code,
          e.status,
        );
      }
    }
    throw new AzureCapacityError(candidates, last?.code ?? 'SkuNotAvailable', last?.message ?? '');
  }

  /**
   * Deletes the VM (its disks and interface go with it: deleteOption Delete), then whatever of
   * its interface, security group and disks is left, each only if it carries this operation's
   * tag. Anything untagged is left alone and named in a ConflictError once the rest is gone.
   */
  async terminate(handle: ProvisionHandle): Promise<void> {
    const names = this.namesOf(handle);
    const { compute, network } = this.options;
    const interval = this.interval();
    const refused: string[] = [];
    const ours = (tags: Record<string, string> | undefined) => tags?.[OPERATION_TAG] === handle.operation;
    const diskNames = new Set([names.osDisk]);
    const vm = await this.findVm(names);
    if (vm !== undefined) {
      if (!ours(vm.tags)) {
        throw new ConflictError(
          `VM ${names.vm} in resource group ${names.resourceGroup} is not tagged ${OPERATION_TAG}=${handle.operation}: it is not deleted`,
        );
      }
      for (const d of [vm.storageProfile?.osDisk, ...(vm.storageProfile?.dataDisks ?? [])]) {
        const id = d?.managedDisk?.id;
        if (id) diskNames.add(id.split('/').pop() as string);
      }
      await this.step(`deleting VM ${names.vm}`, () =>
        compute.virtualMachines.delete(names.resourceGroup, names.vm, interval).pollUntilDone(),
      );
    }
    const nic = await network.networkInterfaces.get(names.resourceGroup, names.nic).catch(missing);
    if (nic !== undefined) {
      if (!ours(nic.tags)) refused.push(`network interface ${names.nic}`);
      else
        await this.step(`deleting network interface ${names.nic}`, () =>
          network.networkInterfaces.delete(names.resourceGroup, names.nic, interval).pollUntilDone(),
        );
    }
    const nsg = await network.networkSecurityGroups.get(names.resourceGroup, names.nsg).catch(missing);
    if (nsg !== undefined) {
      if (!ours(nsg.tags)) refused.push(`network security group ${names.nsg}`);
      else
        await this.step(`deleting network security group ${names.nsg}`, () =>
          network.networkSecurityGroups.delete(names.resourceGroup, names.nsg, interval).pollUntilDone(),
        );
    }
    for (const name of diskNames) {
      const disk = await compute.disks.get(names.resourceGroup, name).catch(missing);
      if (disk === undefined) continue;
      if (!ours(disk.tags)) refused.push(`disk ${name}`);
      else
        await this.step(`deleting disk ${name}`, () =>
          compute.disks.delete(names.resourceGroup, name, interval).pollUntilDone(),
        );
    }
    for await (const snapshot of compute.snapshots.listByResourceGroup(names.resourceGroup)) {
      const name = snapshot.name ?? '';
      if (!name.startsWith(`${names.vm}-snap-`)) continue;
      if (!ours(snapshot.tags)) refused.push(`snapshot ${name}`);
      else
        await this.step(`deleting snapshot ${name}`, () =>
          compute.snapshots.delete(names.resourceGroup, name, interval).pollUntilDone(),
        );
    }
    if (refused.length > 0) {
      throw new ConflictError(
        `left alone, not tagged ${OPERATION_TAG}=${handle.operation}: ${refused.join(', ')}`,
      );
    }
  }

  async transport(host: ProvisionedHost): Promise<Transport> {
    if (host.platform !== 'azure' || host.access.transport !== 'ssh') {
      throw new NotFoundError(`host ${host.id} is not an Azure VM reached over SSH`, host.id);
    }
    const { address, port, user, hostKeyFingerprint } = host.access;
    if (hostKeyFingerprint === undefined || !FINGERPRINT.test(hostKeyFingerprint)) {
      throw new InvalidInputError(`host ${host.id} has no pinned host key`, [
        { path: 'access.hostKeyFingerprint', message: 'required: an Azure VM is never trusted on first use' },
      ]);
    }
    return new SshTransport({
      host: address,
      port,
      username: user,
      privateKey: await this.options.privateKeyFor(host),
      hostKeys: new MemoryHostKeyStore({ [`[${address}]:${port}`]: hostKeyFingerprint }),
      ...(this.options.connectTimeoutMs === undefined
        ? {}
        : { connectTimeoutMs: this.options.connectTimeoutMs }),
    });
  }

  // ---- helpers -----------------------------------------------------------------------------

  private rootLogin(): boolean {
    return this.options.rootLogin ?? true;
  }

  private interval(): { updateIntervalInMs?: number } {
    const ms = this.options.operationIntervalMs;
    return ms === undefined ? {} : { updateIntervalInMs: ms };
  }

  private vmId(names: Names): string {
    return `/subscriptions/${this.options.subscriptionId}/resourceGroups/${names.resourceGroup}/providers/Microsoft.Compute/virtualMachines/${names.vm}`;
  }

  /** The names a handle stands for; a handle whose id is not its operation's VM is refused. */
  private namesOf(handle: ProvisionHandle): Names {
    checkName(handle.operation, 'operation');
    if (handle.platform !== 'azure' || !RESOURCE_GROUP.test(handle.scope)) {
      throw new InvalidInputError(`handle ${displayValue(handle.id)} is not an Azure VM's`, [
        { path: 'handle', message: 'expected platform azure and a resource group as scope' },
      ]);
    }
    const names = namesFor(handle.operation, handle.scope);
    if (handle.id.toLowerCase() !== this.vmId(names).toLowerCase()) {
      throw new InvalidInputError(
        `handle ${displayValue(handle.id)} is not the VM of operation ${handle.operation}`,
        [{ path: 'handle.id', message: `expected ${this.vmId(names)}` }],
      );
    }
    return names;
  }

  /** The operation's VM, or an error saying why not. */
  private async ownVm(names: Names, operation: string): Promise<VirtualMachine> {
    const vm = await this.findVm(names);
    if (vm === undefined) throw new NotFoundError(`VM ${names.vm} does not exist`, names.vm);
    if (vm.tags?.[OPERATION_TAG] !== operation) {
      throw new ConflictError(`VM ${names.vm} was not provisioned by operation ${operation}`);
    }
    return vm;
  }

  private async findVm(names: Names, expand?: 'instanceView'): Promise<VirtualMachine | undefined> {
    try {
      return await this.options.compute.virtualMachines.get(
        names.resourceGroup,
        names.vm,
        expand === undefined ? {} : { expand },
      );
    } catch (error) {
      if (isNotFound(error)) return undefined;
      return this.fail(`reading VM ${names.vm}`, error);
    }
  }

  private async privateAddress(names: Names): Promise<string | undefined> {
    const nic = await this.options.network.networkInterfaces
      .get(names.resourceGroup, names.nic)
      .catch((e: unknown) => this.fail(`reading network interface ${names.nic}`, e));
    return nic.ipConfigurations?.find((c) => c.primary !== false)?.privateIPAddress ?? undefined;
  }

  /** Disks a VM create makes carry no tags: give them the operation's, so terminate may delete them. */
  private async tagDisks(vm: VirtualMachine, operation: string): Promise<void> {
    const { compute } = this.options;
    for (const d of [vm.storageProfile?.osDisk, ...(vm.storageProfile?.dataDisks ?? [])]) {
      const id = d?.managedDisk?.id;
      const name = id?.split('/').pop();
      const group = id?.split('/')[4];
      if (!name || !group) continue;
      const disk = await compute.disks.get(group, name).catch(missing);
      if (disk === undefined || disk.tags?.[OPERATION_TAG] === operation) continue;
      const tags = { ...(vm.tags ?? {}) };
      delete tags[SIZES_TAG];
      delete tags[HOST_KEY_TAG];
      await this.step(`tagging disk ${name}`, () =>
        compute.disks
          .update(group, name, { tags: { ...(disk.tags ?? {}), ...tags } }, this.interval())
          .pollUntilDone(),
      );
    }
  }

  /** After a capacity failure: starts the VM's update to the next size of its list, if any is left. */
  private async nextSize(vm: VirtualMachine, names: Names): Promise<string | undefined> {
    const sizes = (vm.tags?.[SIZES_TAG] ?? '').split(',').filter((s) => VM_SIZE.test(s));
    const current = vm.hardwareProfile?.vmSize ?? '';
    for (const next of sizes.slice(sizes.indexOf(current) + 1)) {
      try {
        await this.options.compute.virtualMachines
          .update(names.resourceGroup, names.vm, { hardwareProfile: { vmSize: next } })
          .submitted();
        return next;
      } catch (error) {
        const e = armError(error);
        if (!CAPACITY_ERRORS.has(e.code)) {
          throw new AzureRequestError(
            `resizing VM ${names.vm} to ${next}: ${e.code}: ${e.message}`,
            e.code,
            e.status,
          );
        }
      }
    }
    return undefined;
  }

  /** A provision that cannot create its VM leaves no interface or security group behind. */
  private async removeNetwork(names: Names, operation: string): Promise<void> {
    const { network } = this.options;
    const interval = this.interval();
    const nic = await network.networkInterfaces.get(names.resourceGroup, names.nic).catch(() => undefined);
    if (nic?.tags?.[OPERATION_TAG] === operation) {
      await network.networkInterfaces
        .delete(names.resourceGroup, names.nic, interval)
        .pollUntilDone()
        .catch(() => {});
    }
    const nsg = await network.networkSecurityGroups
      .get(names.resourceGroup, names.nsg)
      .catch(() => undefined);
    if (nsg?.tags?.[OPERATION_TAG] === operation) {
      await network.networkSecurityGroups
        .delete(names.resourceGroup, names.nsg, interval)
        .pollUntilDone()
        .catch(() => {});
    }
  }

  private async step<T>(what: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      return this.fail(what, error);
    }
  }

  private fail(what: string, error: unknown): never {
    const e = armError(error);
    throw new AzureRequestError(`${what}: ${e.code}: ${e.message}`, e.code, e.status);
  }

  private checkRequest(request: ProvisionRequest) {
    const issues: { path: string; message: string }[] = [];
    const resourceGroup = request.parameters?.resourceGroup;
    const location = request.parameters?.location;
    const subnet = request.network?.subnet;
    if (resourceGroup === undefined)
      issues.push({
        path: 'parameters.resourceGroup',
        message: 'required: the resource group to create the VM in',
      });
    else if (!RESOURCE_GROUP.test(resourceGroup))
      issues.push({ path: 'parameters.resourceGroup', message: 'not a resource group name' });
    if (location === undefined)
      issues.push({ path: 'parameters.location', message: 'required: the region, e.g. westeurope' });
    else if (!LOCATION.test(location))
      issues.push({ path: 'parameters.location', message: 'not an Azure region name' });
    if (subnet === undefined)
      issues.push({ path: 'target.subnet', message: "required: the subnet's resource id" });
    else if (!SUBNET_ID.test(subnet)) {
      issues.push({
        path: 'target.subnet',
        message: 'expected /subscriptions/…/virtualNetworks/<vnet>/subnets/<subnet>',
      });
    }
    const publicKey = request.sshPublicKey?.trim();
    if (publicKey === undefined)
      issues.push({ path: 'sshPublicKey', message: 'required: password login is disabled' });
    else if (!SSH_PUBLIC_KEY.test(publicKey))
      issues.push({ path: 'sshPublicKey', message: 'not an OpenSSH public key line' });
    if (request.size !== undefined && !VM_SIZE.test(request.size)) {
      issues.push({ path: 'size', message: 'not an Azure VM size (Standard_...)' });
    }
    const tags: Record<string, string> = {};
    for (const [name, value] of Object.entries(request.tags ?? {})) {
      const path = `tags.${name}`;
      if (name.length === 0 || name.length > 512 || /[<>%&\\?/]/.test(name)) {
        issues.push({ path, message: 'a tag name is 1 to 512 characters without < > % & \\ ? /' });
      } else if (RESERVED_TAG_PREFIXES.some((p) => name.toLowerCase().startsWith(p))) {
        issues.push({ path, message: 'reserved prefix (persona-, microsoft, azure, windows)' });
      } else if (typeof value !== 'string' || value.length > 256) {
        issues.push({ path, message: 'a tag value is a string of at most 256 characters' });
      } else tags[name] = value;
    }
    if (Object.keys(request.tags ?? {}).length > MAX_TAGS - 3) {
      issues.push({
        path: 'tags',
        message: `at most ${MAX_TAGS - 3} tags (Azure allows ${MAX_TAGS}; Persona uses 3)`,
      });
    }
    if (issues.length > 0) {
      throw new InvalidInputError(
        `an Azure target is not valid: ${issues.map((i) => i.path).join(', ')}`,
        issues,
      );
    }
    return {
      resourceGroup: resourceGroup as string,
      location: location as string,
      subnet: subnet as string,
      publicKey: publicKey as string,
      tags,
    };
  }

  private disksFor(request: ProvisionRequest, names: Names) {
    const volumes = request.volumes ?? request.shape?.volumes ?? [];
    const [root, ...rest] = volumes;
    if (rest.length > MAX_DATA_DISKS) {
      throw new InvalidInputError(
        `the source has ${volumes.length} volumes; Persona gives an Azure VM at most ${MAX_DATA_DISKS} data disks`,
        [{ path: 'shape.volumes', message: `at most ${MAX_DATA_DISKS + 1} volumes` }],
      );
    }
    return {
      os: {
        name: names.osDisk,
        diskSizeGB: diskSizeGiB(root?.sizeBytes ?? 0, OS_DISK_MIN_GIB),
        managedDisk: { storageAccountType: diskSkuFor(root?.type) },
      },
      data: rest.map((v, i) => ({
        name: names.dataDisk(i),
        diskSizeGB: diskSizeGiB(v.sizeBytes),
        managedDisk: { storageAccountType: diskSkuFor(v.type) },
      })),
    };
  }
}

function missing(error: unknown): undefined {
  if (isNotFound(error)) return undefined;
  throw error;
}

/**
 * The VM's name and its resources', from the operation: the same operation always names the
 * same VM (a retried provision finds it), and the hash keeps two operations whose ids differ
 * only in characters Azure names cannot hold apart.
 */
export function namesFor(operation: string, resourceGroup: string): Names {
  const slug = operation
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 36)
    .replace(/-+$/, '');
  const hash = createHash('sha256').update(operation).digest('hex').slice(0, 8);
  const vm = `persona-${slug ? `${slug}-` : ''}${hash}`;
  return {
    resourceGroup,
    vm,
    nic: `${vm}-nic`,
    nsg: `${vm}-nsg`,
    osDisk: `${vm}-os`,
    dataDisk: (index) => `${vm}-data${index}`,
  };
}

/**
 * Inbound from the virtual network only (the VirtualNetwork service tag): SSH for Persona's own
 * transport, then the source's ports. Azure's default rules deny the internet.
 */
function securityRules(request: ProvisionRequest) {
  const ports = [
    { protocol: 'tcp' as const, port: 22 },
    ...(request.shape?.ingress ?? []).filter((p) => !(p.protocol === 'tcp' && p.port === 22)),
  ];
  if (ports.length > 1000) {
    throw new InvalidInputError('too many ingress ports for one network security group', [
      { path: 'shape.ingress', message: 'at most 999 ports' },
    ]);
  }
  return ports.map((p, i) => ({
    name: `persona-${p.protocol}-${p.port}`,
    protocol: p.protocol === 'tcp' ? ('Tcp' as const) : ('Udp' as const),
    sourceAddressPrefix: 'VirtualNetwork',
    sourcePortRange: '*',
    destinationAddressPrefix: '*',
    destinationPortRange: String(p.port),
    access: 'Allow' as const,
    direction: 'Inbound' as const,
    priority: 100 + i,
  }));
}

/**
 * cloud-init's user data: the host key Persona pinned replaces the image's, no other key type is
 * generated, and root accepts the admin's key when root login is on. Written as JSON, which is
 * YAML too (flow style, every string double-quoted and escaped): no YAML writer in the task.
 */
function cloudConfig(privateKey: string, publicKey: string, rootLogin: boolean): string {
  const config = {
    ssh_deletekeys: true,
    ssh_genkeytypes: [],
    ssh_keys: { ed25519_private: privateKey, ed25519_public: publicKey },
    disable_root: !rootLogin,
  };
  return `#cloud-config\n${JSON.stringify(config, null, 2)}\n`;
}
