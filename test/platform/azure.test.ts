// The Azure adaptor end to end against the ARM stand-in, through the real SDK clients over
// HTTPS: provision starts the create, poll follows it until the VM is ready, the SSH transport
// reaches the real test host with the host key Persona chose, and terminate deletes what the
// operation made and nothing else. Capacity errors fall back to the next size; throttling is
// retried by the SDK's own policy.
import { ComputeManagementClient } from '@azure/arm-compute';
import { NetworkManagementClient } from '@azure/arm-network';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { ConflictError, InvalidInputError } from '../../core/errors.js';
import {
  AzureCapacityError,
  AzurePlatform,
  HOST_KEY_TAG,
  namesFor,
  OPERATION_TAG,
} from '../../core/platform/azure.js';
import type { ProvisionHandle, ProvisionRequest, ProvisionStatus } from '../../core/platform/platform.js';
import type { HostShape } from '../../core/platform/shape.js';
import { HostKeyMismatchError } from '../../core/transport/errors.js';
import { fingerprintOf } from '../../core/transport/host-keys.js';
import { ed25519KeyPair } from '../../core/transport/key-pair.js';
import { destroyAllHosts } from '../hosts/harness.js';
import { type ArmCall, type ArmStandIn, startArmStandIn } from '../stand-ins/arm.js';

const RG = 'persona-clones';
const GIB = 1024 ** 3;
let arm: ArmStandIn;
let azure: AzurePlatform;
let compute: ComputeManagementClient;
const login = ed25519KeyPair('persona-clone');

const shape: HostShape = {
  arch: 'x86_64',
  cpus: 2,
  memoryBytes: 4 * GIB,
  os: { distribution: 'debian', version: '12', codename: 'bookworm' },
  volumes: [{ sizeBytes: 8 * GIB + 1 }, { sizeBytes: 20 * GIB, type: 'hdd' }],
  ingress: [
    { protocol: 'tcp', port: 80 },
    { protocol: 'udp', port: 53 },
  ],
};

beforeAll(async () => {
  arm = await startArmStandIn({ resourceGroups: [RG], retryAfterSeconds: 0 });
  compute = new ComputeManagementClient(arm.credential, arm.subscriptionId, { ...arm.clientOptions });
  const network = new NetworkManagementClient(arm.credential, arm.subscriptionId, { ...arm.clientOptions });
  azure = new AzurePlatform({
    compute,
    network,
    subscriptionId: arm.subscriptionId,
    privateKeyFor: async () => login.privateKey,
    pollIntervalMs: 50,
    operationIntervalMs: 20,
  });
});

afterAll(async () => {
  await arm?.stop();
  await destroyAllHosts();
});

const subnet = () =>
  `/subscriptions/${arm.subscriptionId}/resourceGroups/network/providers/Microsoft.Network/virtualNetworks/clones/subnets/default`;

function request(operation: string, extra: Partial<ProvisionRequest> = {}): ProvisionRequest {
  return {
    operation,
    shape,
    network: { subnet: subnet() },
    parameters: { resourceGroup: RG, location: 'westeurope' },
    sshPublicKey: login.publicKey,
    ...extra,
  };
}

async function settle(handle: ProvisionHandle): Promise<ProvisionStatus> {
  for (let i = 0; i < 2000; i++) {
    const status = await azure.poll(handle);
    if (status.state !== 'pending') return status;
    await new Promise((resolve) => setTimeout(resolve, status.retryAfterMs));
  }
  throw new Error(`${handle.id} never settled`);
}

/** What the stand-in still holds of an operation's resources. */
const left = (operation: string) => arm.resourceIds().filter((id) => id.includes(namesFor(operation, RG).vm));
const callsSince = (n: number, match: (c: ArmCall) => boolean = () => true) =>
  arm.calls.slice(n).filter(match);
const short = (c: ArmCall) => `${c.method} ${c.path.split('/').slice(-2).join('/')}`;

describe('AzurePlatform', () => {
  it('provisions a VM the SSH transport reaches with the pinned host key, and terminate deletes everything it made', async () => {
    const operation = 'op:clone-web-1';
    const names = namesFor(operation, RG);
    const tags = {
      owner: '$(touch /tmp/persona-pwned); rm -rf /',
      quote: `'"\`; --`,
      multi: 'line\n#cloud-config\nruncmd: [reboot]',
    };
    const handle = await azure.provision(request(operation, { tags }));
    expect(handle).toEqual({
      platform: 'azure',
      operation,
      id: `/subscriptions/${arm.subscriptionId}/resourceGroups/${RG}/providers/Microsoft.Compute/virtualMachines/${names.vm}`,
      scope: RG,
    });
    const put = arm.calls.find((c) => c.method === 'PUT' && c.path.endsWith(`/virtualMachines/${names.vm}`));
    const body = put?.body as {
      tags: Record<string, string>;
      properties: {
        hardwareProfile: { vmSize: string };
        storageProfile: {
          imageReference: Record<string, string>;
          osDisk: Record<string, unknown>;
          dataDisks: Record<string, unknown>[];
        };
        osProfile: {
          adminUsername: string;
          customData: string;
          linuxConfiguration: {
            disablePasswordAuthentication: boolean;
            ssh: { publicKeys: { path: string; keyData: string }[] };
          };
        };
      };
    };
    const p = body.properties;
    expect(p.hardwareProfile.vmSize).toBe('Standard_F2s_v2');
    expect(p.storageProfile.imageReference).toEqual({
      publisher: 'Debian',
      offer: 'debian-12',
      sku: '12-gen2',
      version: 'latest',
    });
    expect(p.storageProfile.osDisk).toMatchObject({
      name: names.osDisk,
      createOption: 'FromImage',
      deleteOption: 'Delete',
      diskSizeGB: 30,
      managedDisk: { storageAccountType: 'Premium_LRS' },
    });
    expect(p.storageProfile.dataDisks).toEqual([
      expect.objectContaining({
        lun: 0,
        createOption: 'Empty',
        diskSizeGB: 20,
        deleteOption: 'Delete',
        managedDisk: { storageAccountType: 'StandardSSD_LRS' },
      }),
    ]);
    expect(p.osProfile.adminUsername).toBe('persona');
    expect(p.osProfile.linuxConfiguration).toMatchObject({
      disablePasswordAuthentication: true,
      ssh: { publicKeys: [{ path: '/home/persona/.ssh/authorized_keys', keyData: login.publicKey }] },
    });
    // Hostile tag values are only data: verbatim in the tags, nowhere in what the VM runs.
    expect(body.tags).toMatchObject({ ...tags, [OPERATION_TAG]: operation });
    const cloudInit = Buffer.from(p.osProfile.customData, 'base64').toString('utf8');
    expect(cloudInit.startsWith('#cloud-config\n')).toBe(true);
    for (const value of Object.values(tags)) expect(cloudInit).not.toContain(value);
    const config = parseYaml(cloudInit) as {
      ssh_keys: { ed25519_private: string; ed25519_public: string };
      disable_root: boolean;
    };
    expect(config.disable_root).toBe(false);

    const status = await settle(handle);
    expect(status.state).toBe('ready');
    if (status.state !== 'ready') return;
    const host = status.host;
    const testHost = arm.hostOf(handle.id);
    expect(host.access).toEqual({
      transport: 'ssh',
      address: testHost?.address,
      port: 22,
      user: 'root',
      hostKeyFingerprint: fingerprintOf(
        Buffer.from(config.ssh_keys.ed25519_public.split(' ')[1] as string, 'base64'),
      ),
    });
    // The fingerprint is in a tag; the private host key is in no tag, handle or host.
    const vmTags = (arm.resource(handle.id) as { tags: Record<string, string> }).tags;
    expect(vmTags[HOST_KEY_TAG]).toBe(host.access.transport === 'ssh' ? host.access.hostKeyFingerprint : '');
    const privateBody = config.ssh_keys.ed25519_private.split('\n')[1] as string;
    expect(JSON.stringify([vmTags, handle, host])).not.toContain(privateBody);

    const transport = await azure.transport(host);
    try {
      const result = await transport.run('id -u; hostname; test -e /tmp/persona-pwned || echo clean');
      expect(result.stdout).toBe(`0\n${names.vm}\nclean\n`);
    } finally {
      await transport.close();
    }
    // The harness's key for root is authorised too: only the host key check can refuse this.
    if (host.access.transport !== 'ssh') throw new Error('an Azure VM is reached over SSH');
    const mitm = await azure.transport({
      ...host,
      access: { ...host.access, hostKeyFingerprint: fingerprintOf(Buffer.from('not the host key')) },
    });
    try {
      await expect(mitm.run('true')).rejects.toBeInstanceOf(HostKeyMismatchError);
    } finally {
      await mitm.close();
    }

    // The network: SSH and the source's ports, from the virtual network only, all tagged.
    const nsg = arm.resource(
      `/subscriptions/${arm.subscriptionId}/resourceGroups/${RG}/providers/Microsoft.Network/networkSecurityGroups/${names.nsg}`,
    ) as {
      tags: Record<string, string>;
      properties: { securityRules: { properties: Record<string, unknown> }[] };
    };
    expect(nsg.tags[OPERATION_TAG]).toBe(operation);
    expect(nsg.properties.securityRules.map((r) => r.properties)).toEqual([
      expect.objectContaining({
        protocol: 'Tcp',
        destinationPortRange: '22',
        sourceAddressPrefix: 'VirtualNetwork',
        access: 'Allow',
        direction: 'Inbound',
      }),
      expect.objectContaining({
        protocol: 'Tcp',
        destinationPortRange: '80',
        sourceAddressPrefix: 'VirtualNetwork',
      }),
      expect.objectContaining({
        protocol: 'Udp',
        destinationPortRange: '53',
        sourceAddressPrefix: 'VirtualNetwork',
      }),
    ]);
    const disks = arm.resourceIds('Microsoft.Compute/disks');
    expect(disks).toHaveLength(2);
    for (const id of disks)
      expect((arm.resource(id) as { tags: Record<string, string> }).tags[OPERATION_TAG]).toBe(operation);

    // The same operation again: the same VM, no second create.
    const puts = () =>
      arm.calls.filter((c) => c.method === 'PUT' && c.path.endsWith(`/virtualMachines/${names.vm}`)).length;
    expect(await azure.provision(request(operation, { tags }))).toEqual(handle);
    expect(puts()).toBe(1);

    expect(await azure.resize(host, 'Standard_F2s_v2')).toEqual({
      state: 'unchanged',
      size: 'Standard_F2s_v2',
    });
    const before = arm.calls.length;
    expect(await azure.resize(host, 'Standard_F4s_v2')).toEqual({
      state: 'resized',
      size: 'Standard_F4s_v2',
      restarted: true,
      previous: 'Standard_F2s_v2',
    });
    expect(callsSince(before, (c) => c.method !== 'GET').map(short)).toEqual([
      `PATCH virtualMachines/${names.vm}`,
    ]);
    const across = arm.calls.length;
    expect(await azure.resize(host, 'Standard_D4s_v5')).toMatchObject({
      state: 'resized',
      size: 'Standard_D4s_v5',
    });
    expect(callsSince(across, (c) => c.method !== 'GET').map(short)).toEqual([
      `POST ${names.vm}/deallocate`,
      `PATCH virtualMachines/${names.vm}`,
      `POST ${names.vm}/start`,
    ]);

    // No capacity for the size asked: the next preferred size is taken, in the same deallocation.
    arm.failCapacity('Standard_D8s_v5', 'SkuNotAvailable');
    const falling = arm.calls.length;
    expect(await azure.resize(host, 'Standard_D8s_v5', { fallback: ['Standard_D2s_v5'] })).toEqual({
      state: 'resized',
      size: 'Standard_D2s_v5',
      restarted: true,
      previous: 'Standard_D4s_v5',
    });
    expect(callsSince(falling, (c) => c.method !== 'GET').map(short)).toEqual([
      `POST ${names.vm}/deallocate`,
      `PATCH virtualMachines/${names.vm}`,
      `PATCH virtualMachines/${names.vm}`,
      `POST ${names.vm}/start`,
    ]);
    arm.failCapacity('Standard_D8s_v5', undefined);

    // A platform snapshot is of the OS disk; restore puts the VM back on a disk made from it.
    const marking = await azure.transport(host);
    await marking.run('echo before > /etc/persona-marker');
    await marking.close();
    const snapshot = await azure.snapshot(host, { paths: ['/etc'], state: [] });
    expect(snapshot).toMatchObject({ platform: 'azure', host: handle.id });
    const changing = await azure.transport(host);
    await changing.run('echo after > /etc/persona-marker && touch /etc/persona-new');
    await changing.close();
    const restoring = arm.calls.length;
    await azure.restore(host, snapshot);
    expect(callsSince(restoring, (c) => c.method !== 'GET').map(short)).toEqual([
      expect.stringMatching(new RegExp(`^PUT disks/${names.osDisk}-`)),
      `POST ${names.vm}/deallocate`,
      `PATCH virtualMachines/${names.vm}`,
      `POST ${names.vm}/start`,
      `DELETE disks/${names.osDisk}`,
    ]);
    const restored = await azure.transport(host);
    try {
      const files = await restored.run(
        'cat /etc/persona-marker; test -e /etc/persona-new && echo kept || echo gone',
      );
      expect(files.stdout).toBe('before\ngone\n');
    } finally {
      await restored.close();
    }
    await expect(azure.restore(host, { ...snapshot, host: 'elsewhere' })).rejects.toBeInstanceOf(
      InvalidInputError,
    );

    await azure.terminate(handle);
    expect(left(operation)).toEqual([]);
    expect(arm.hostOf(handle.id)).toBeUndefined();
    expect((await testHost?.exec('true').catch(() => ({ exitCode: -1 })))?.exitCode).not.toBe(0);
    expect(await azure.poll(handle)).toMatchObject({ state: 'failed' });
    // Idempotent: nothing left, nothing to do.
    await azure.terminate(handle);
  });

  it('falls back to the next size when the first has no capacity, at the create and in its operation', async () => {
    const operation = 'op:clone-capacity';
    const names = namesFor(operation, RG);
    arm.failCapacity('Standard_F2s_v2', 'SkuNotAvailable');
    arm.failCapacity('Standard_D2s_v5', 'AllocationFailed');
    try {
      const before = arm.calls.length;
      const handle = await azure.provision(request(operation));
      const status = await settle(handle);
      expect(status.state).toBe('ready');
      const vm = await compute.virtualMachines.get(RG, names.vm);
      expect(vm.hardwareProfile?.vmSize).toBe('Standard_E2s_v5');
      const tried = callsSince(
        before,
        (c) => c.path.endsWith(`/virtualMachines/${names.vm}`) && c.method !== 'GET',
      );
      expect(
        tried.map((c) => [
          c.method,
          c.status,
          (c.body as { properties?: { hardwareProfile?: { vmSize?: string } } }).properties?.hardwareProfile
            ?.vmSize,
        ]),
      ).toEqual([
        ['PUT', 409, 'Standard_F2s_v2'],
        ['PUT', 201, 'Standard_D2s_v5'],
        ['PATCH', 200, 'Standard_E2s_v5'],
      ]);
      await azure.terminate(handle);
      expect(left(operation)).toEqual([]);
    } finally {
      arm.failCapacity('Standard_F2s_v2', undefined);
      arm.failCapacity('Standard_D2s_v5', undefined);
    }
  });

  it('gives up with AzureCapacityError when no size has capacity, leaving no network behind', async () => {
    const operation = 'op:clone-no-capacity';
    const sizes = ['Standard_F2s_v2', 'Standard_D2s_v5', 'Standard_E2s_v5', 'Standard_F4s_v2'];
    for (const size of sizes) arm.failCapacity(size, 'SkuNotAvailable');
    try {
      const error = await azure.provision(request(operation)).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(AzureCapacityError);
      expect((error as AzureCapacityError).sizes).toEqual(sizes);
      expect(left(operation)).toEqual([]);
    } finally {
      for (const size of sizes) arm.failCapacity(size, undefined);
    }
  });

  it('removes the security group it made when the interface cannot be made', async () => {
    const operation = 'op:clone-bad-subnet';
    const error = await azure
      .provision(request(operation, { network: { subnet: subnet().replace('/subnets/', '/subnetz/') } }))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidInputError);
    // A subnet id Azure does not know: refused by ARM, and nothing is left.
    const unknown = `/subscriptions/${arm.subscriptionId}/resourceGroups/network/providers/Microsoft.Network/virtualNetworks/clones/subnets/x`;
    arm.dropSubnet(unknown);
    const refused = await azure
      .provision(request(operation, { network: { subnet: unknown } }))
      .catch((e: unknown) => e);
    expect(refused).toMatchObject({
      name: 'AzureRequestError',
      azureCode: 'InvalidResourceReference',
      code: 'INVALID_INPUT',
    });
    expect(left(operation)).toEqual([]);
  });

  it('reports a create that fails once provisioning started with its code and message, and terminate removes its host', async () => {
    const operation = 'op:clone-fails';
    arm.failNextCreate({
      code: 'OSProvisioningClientError',
      message: 'OS provisioning failed for VM: the guest agent did not report ready.',
    });
    const handle = await azure.provision(request(operation));
    const status = await settle(handle);
    expect(status).toEqual({
      state: 'failed',
      reason:
        'OSProvisioningClientError: OS provisioning failed for VM: the guest agent did not report ready.',
    });
    const host = arm.hostOf(handle.id);
    expect(host).toBeDefined();
    await azure.terminate(handle);
    expect(arm.hostOf(handle.id)).toBeUndefined();
    expect(left(operation)).toEqual([]);
  });

  it('lets the SDK retry throttled requests itself: two 429s and the third call goes through', async () => {
    const operation = 'op:throttled';
    const names = namesFor(operation, RG);
    arm.throttle(2, { method: 'GET', path: new RegExp(`/virtualMachines/${names.vm}$`) });
    const before = arm.calls.length;
    const handle = await azure.provision(
      request(operation, { image: 'Debian:debian-12:12-gen2:latest', size: 'Standard_D2s_v5' }),
    );
    const gets = callsSince(
      before,
      (c) => c.method === 'GET' && c.path.endsWith(`/virtualMachines/${names.vm}`),
    );
    expect(gets.map((c) => c.status)).toEqual([429, 429, 404]);
    expect(callsSince(before, (c) => c.method === 'PUT').map(short)).toContain(
      `PUT virtualMachines/${names.vm}`,
    );
    // A rollback while the create is still running: the VM and its host go all the same.
    await azure.terminate(handle);
    expect(arm.hostOf(handle.id)).toBeUndefined();
    expect(left(operation)).toEqual([]);
  });

  it('makes one VM of two provisions of the same operation at once, and keeps its interface', async () => {
    const operation = 'op:clone-twice';
    const names = namesFor(operation, RG);
    const [a, b] = await Promise.all([
      azure.provision(request(operation)),
      azure.provision(request(operation)),
    ]);
    expect(a).toEqual(b);
    expect(await settle(a)).toMatchObject({ state: 'ready' });
    expect(
      arm.resourceIds('Microsoft.Compute/virtualMachines').filter((id) => id.endsWith(names.vm)),
    ).toHaveLength(1);
    await azure.terminate(a);
    expect(left(operation)).toEqual([]);
  });

  it('never deletes a VM its operation did not tag, nor provisions over it', async () => {
    const operation = 'op:someone-else';
    const names = namesFor(operation, RG);
    const id = `/subscriptions/${arm.subscriptionId}/resourceGroups/${RG}/providers/Microsoft.Compute/virtualMachines/${names.vm}`;
    arm.seed(id, {
      tags: { owner: 'payroll' },
      properties: { provisioningState: 'Succeeded', hardwareProfile: { vmSize: 'Standard_D2s_v5' } },
    });
    const handle: ProvisionHandle = { platform: 'azure', operation, id, scope: RG };
    await expect(azure.terminate(handle)).rejects.toBeInstanceOf(ConflictError);
    await expect(azure.provision(request(operation))).rejects.toBeInstanceOf(ConflictError);
    expect(await azure.poll(handle)).toMatchObject({ state: 'failed' });
    expect(arm.resource(id)).toBeDefined();
    expect(arm.calls.some((c) => c.method === 'DELETE' && c.path === id)).toBe(false);
    // A handle naming some other VM than its operation's is refused before any call.
    const before = arm.calls.length;
    await expect(azure.terminate({ ...handle, operation: 'op:other' })).rejects.toBeInstanceOf(
      InvalidInputError,
    );
    expect(arm.calls.length).toBe(before);
  });

  it('refuses a request without a resource group, location, subnet or key, naming each field, before any call', async () => {
    const before = arm.calls.length;
    const bad = request('op:bad', {
      network: {},
      parameters: {},
      size: 'Standard_D2s_v5,Standard_M416ms_v2',
      tags: { 'a/b': 'x', 'persona-operation': 'op:forged' },
    });
    const { sshPublicKey: _, ...withoutKey } = bad;
    const error = await azure.provision(withoutKey).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidInputError);
    expect((error as InvalidInputError).issues.map((i) => i.path)).toEqual([
      'parameters.resourceGroup',
      'parameters.location',
      'target.subnet',
      'sshPublicKey',
      'size',
      'tags.a/b',
      'tags.persona-operation',
    ]);
    const noSubnet = await azure.provision(request('op:bad', { network: {} })).catch((e: unknown) => e);
    expect((noSubnet as InvalidInputError).issues).toEqual([
      { path: 'target.subnet', message: "required: the subnet's resource id" },
    ]);
    const unmapped = await azure
      .provision(request('op:bad', { shape: { ...shape, os: { distribution: 'gentoo', version: '2.15' } } }))
      .catch((e: unknown) => e);
    expect((unmapped as Error).message).toMatch(/gentoo/);
    expect(arm.calls.length).toBe(before);
  });
});
