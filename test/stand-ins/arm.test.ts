// The ARM stand-in as the Azure SDK sees it: HTTPS trusted through the client's tlsOptions, the
// bearer token required, long-running operations through Azure-AsyncOperation, ARM's error
// documents and statuses, throttling retried by the SDK's own policy, and a VM create that makes
// a real test host reachable as the admin user with the host key cloud-init was given.
import { request } from 'node:https';
import { ComputeManagementClient, type VirtualMachine } from '@azure/arm-compute';
import { NetworkManagementClient } from '@azure/arm-network';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { fingerprintOf, MemoryHostKeyStore } from '../../core/transport/host-keys.js';
import { ed25519KeyPair } from '../../core/transport/key-pair.js';
import { SshTransport } from '../../core/transport/ssh.js';
import { destroyAllHosts } from '../hosts/harness.js';
import { type ArmStandIn, startArmStandIn } from './arm.js';

let arm: ArmStandIn;
let compute: ComputeManagementClient;
let network: NetworkManagementClient;
const RG = 'persona';
const fast = { updateIntervalInMs: 20 };

beforeAll(async () => {
  arm = await startArmStandIn({ resourceGroups: [RG], retryAfterSeconds: 0 });
  compute = new ComputeManagementClient(arm.credential, arm.subscriptionId, { ...arm.clientOptions });
  network = new NetworkManagementClient(arm.credential, arm.subscriptionId, { ...arm.clientOptions });
});

afterAll(async () => {
  await arm?.stop();
  await destroyAllHosts();
});

const subnet = () =>
  `/subscriptions/${arm.subscriptionId}/resourceGroups/${RG}/providers/Microsoft.Network/virtualNetworks/vnet/subnets/default`;

async function nsgAndNic(name: string): Promise<string> {
  await network.networkSecurityGroups
    .createOrUpdate(RG, `${name}-nsg`, { location: arm.location, securityRules: [] }, fast)
    .pollUntilDone();
  const nic = await network.networkInterfaces
    .createOrUpdate(
      RG,
      `${name}-nic`,
      {
        location: arm.location,
        networkSecurityGroup: {
          id: `/subscriptions/${arm.subscriptionId}/resourceGroups/${RG}/providers/Microsoft.Network/networkSecurityGroups/${name}-nsg`,
        },
        ipConfigurations: [{ name: 'ipconfig1', subnet: { id: subnet() } }],
      },
      fast,
    )
    .pollUntilDone();
  return nic.id as string;
}

function vmBody(
  nicId: string,
  options: { size?: string; publicKey: string; customData?: string },
): VirtualMachine {
  return {
    location: arm.location,
    tags: { owner: 'arm-test' },
    hardwareProfile: { vmSize: options.size ?? 'Standard_D2s_v5' },
    storageProfile: {
      imageReference: { publisher: 'Debian', offer: 'debian-12', sku: '12-gen2', version: 'latest' },
      osDisk: { name: 'os', createOption: 'FromImage', diskSizeGB: 30, deleteOption: 'Delete' },
    },
    osProfile: {
      computerName: 'arm-test',
      adminUsername: 'azureuser',
      ...(options.customData ? { customData: options.customData } : {}),
      linuxConfiguration: {
        disablePasswordAuthentication: true,
        ssh: { publicKeys: [{ path: '/home/azureuser/.ssh/authorized_keys', keyData: options.publicKey }] },
      },
    },
    networkProfile: { networkInterfaces: [{ id: nicId, primary: true, deleteOption: 'Delete' }] },
  };
}

describe('ARM stand-in', () => {
  it('serves HTTPS that a client trusts only through tlsOptions.ca', async () => {
    const untrusting = new ComputeManagementClient(arm.credential, arm.subscriptionId, {
      endpoint: arm.endpoint,
      retryOptions: { maxRetries: 0 },
    });
    await expect(untrusting.virtualMachines.get(RG, 'nothing')).rejects.toThrow(
      /self[- ]signed|certificate/i,
    );
    await expect(compute.virtualMachines.get(RG, 'nothing')).rejects.toMatchObject({
      statusCode: 404,
      code: 'ResourceNotFound',
    });
  });

  it('refuses a request without a bearer token with 401 AuthenticationFailed', async () => {
    const url = new URL(
      `/subscriptions/${arm.subscriptionId}/resourceGroups/${RG}/providers/Microsoft.Compute/virtualMachines/x?api-version=2026-04-01`,
      arm.endpoint,
    );
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(url, { ca: arm.certificate }, (res) => {
        let body = '';
        res.on('data', (c) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end();
    });
    expect(answer.status).toBe(401);
    expect(JSON.parse(answer.body)).toMatchObject({ error: { code: 'AuthenticationFailed' } });
  });

  it('answers ResourceGroupNotFound for a group that does not exist', async () => {
    await expect(compute.virtualMachines.get('elsewhere', 'x')).rejects.toMatchObject({
      statusCode: 404,
      code: 'ResourceGroupNotFound',
    });
  });

  it('runs a network create as a long-running operation polled through Azure-AsyncOperation', async () => {
    const before = arm.calls.length;
    const nicId = await nsgAndNic('lro');
    const calls = arm.calls.slice(before);
    expect(calls.map((c) => `${c.method} ${c.path.split('/').slice(-2).join('/')}`)).toEqual([
      'PUT networkSecurityGroups/lro-nsg',
      expect.stringMatching(/^GET operations\//),
      // Once the operation succeeded, a PUT's poller reads the resource itself.
      'GET networkSecurityGroups/lro-nsg',
      'PUT networkInterfaces/lro-nic',
      expect.stringMatching(/^GET operations\//),
      'GET networkInterfaces/lro-nic',
    ]);
    expect(calls[1]?.path).toMatch(/\/providers\/Microsoft\.Network\/locations\/westeurope\/operations\//);
    expect(arm.resource(nicId)).toMatchObject({ properties: { provisioningState: 'Succeeded' } });
    // A security group in use by an interface cannot go first; the interface can.
    await expect(
      network.networkSecurityGroups.delete(RG, 'lro-nsg', fast).pollUntilDone(),
    ).rejects.toMatchObject({
      code: 'InUseNetworkSecurityGroupCannotBeDeleted',
    });
    await network.networkInterfaces.delete(RG, 'lro-nic', fast).pollUntilDone();
    await network.networkSecurityGroups.delete(RG, 'lro-nsg', fast).pollUntilDone();
    expect(arm.resourceIds()).toEqual([]);
  });

  it('answers 429 with Retry-After, which the SDK retries by itself', async () => {
    arm.throttle(2, { method: 'GET', path: /virtualMachines\/throttled$/ });
    await expect(compute.virtualMachines.get(RG, 'throttled')).rejects.toMatchObject({
      code: 'ResourceNotFound',
    });
    const seen = arm.calls.filter((c) => c.path.endsWith('/virtualMachines/throttled'));
    expect(seen.map((c) => c.status)).toEqual([429, 429, 404]);
  });

  it('refuses a size without capacity at once with 409 SkuNotAvailable, and fails an allocation in the operation', async () => {
    const nicId = await nsgAndNic('cap');
    const { publicKey } = ed25519KeyPair('');
    arm.failCapacity('Standard_D2s_v5', 'SkuNotAvailable');
    await expect(
      compute.virtualMachines.createOrUpdate(RG, 'cap', vmBody(nicId, { publicKey })).submitted(),
    ).rejects.toMatchObject({ statusCode: 409, code: 'SkuNotAvailable' });
    arm.failCapacity('Standard_D2s_v5', undefined);
    arm.failCapacity('Standard_D4s_v5', 'AllocationFailed');
    await expect(
      compute.virtualMachines.createOrUpdate(
        RG,
        'cap',
        vmBody(nicId, { publicKey, size: 'Standard_D4s_v5' }),
        fast,
      ),
    ).rejects.toThrow(/long-running operation has failed\. AllocationFailed\./);
    const vm = await compute.virtualMachines.get(RG, 'cap', { expand: 'instanceView' });
    expect(vm.provisioningState).toBe('Failed');
    expect(vm.instanceView?.statuses?.[0]).toMatchObject({
      code: 'ProvisioningState/failed/AllocationFailed',
      level: 'Error',
    });
    expect(arm.hostOf(vm.id as string)).toBeUndefined();
    arm.failCapacity('Standard_D4s_v5', undefined);
    await compute.virtualMachines.delete(RG, 'cap', fast).pollUntilDone();
    await network.networkSecurityGroups.delete(RG, 'cap-nsg', fast).pollUntilDone();
    expect(arm.resourceIds()).toEqual([]);
  });

  it('makes a VM a test host reachable as the admin user with the host key from cloud-init, and DELETE destroys it', async () => {
    const nicId = await nsgAndNic('host');
    const admin = ed25519KeyPair('');
    const hostKey = ed25519KeyPair('');
    const customData = Buffer.from(
      `#cloud-config\n${stringify({ ssh_keys: { ed25519_private: hostKey.privateKey, ed25519_public: hostKey.publicKey } })}`,
    ).toString('base64');
    const before = arm.calls.length;
    const vm = await compute.virtualMachines.createOrUpdate(
      RG,
      'host',
      vmBody(nicId, { publicKey: admin.publicKey, customData }),
      fast,
    );
    expect(vm.provisioningState).toBe('Succeeded');
    // customData is taken, never returned.
    expect(vm.osProfile?.customData).toBeUndefined();
    const polls = arm.calls.slice(before).filter((c) => c.path.includes('/operations/'));
    expect(polls.length).toBeGreaterThan(0);
    const host = arm.hostOf(vm.id as string);
    expect(host).toBeDefined();
    const nic = await network.networkInterfaces.get(RG, 'host-nic');
    const address = nic.ipConfigurations?.[0]?.privateIPAddress as string;
    expect(address).toBe(host?.address);
    const fingerprint = fingerprintOf(hostKey.publicBlob);
    const ssh = new SshTransport({
      host: address,
      username: 'azureuser',
      privateKey: admin.privateKey,
      hostKeys: new MemoryHostKeyStore({ [`[${address}]:22`]: fingerprint }),
    });
    try {
      const who = await ssh.run('id -un; sudo -n id -u');
      expect(who.stdout).toBe('azureuser\n0\n');
    } finally {
      await ssh.close();
    }
    const disk = await compute.disks.get(RG, 'os');
    expect(disk.managedBy).toBe(vm.id);

    await compute.virtualMachines.delete(RG, 'host', fast).pollUntilDone();
    expect(arm.hostOf(vm.id as string)).toBeUndefined();
    // deleteOption Delete: the disk and the interface went with the VM.
    await expect(compute.disks.get(RG, 'os')).rejects.toMatchObject({ statusCode: 404 });
    await expect(network.networkInterfaces.get(RG, 'host-nic')).rejects.toMatchObject({ statusCode: 404 });
    const gone = await host?.exec('true').catch(() => ({ exitCode: -1 }));
    expect(gone?.exitCode).not.toBe(0);
    await network.networkSecurityGroups.delete(RG, 'host-nsg', fast).pollUntilDone();
  });

  it('refuses an admin user Azure reserves, and a key path other than the admin home', async () => {
    const nicId = await nsgAndNic('bad');
    const { publicKey } = ed25519KeyPair('');
    const body = vmBody(nicId, { publicKey });
    await expect(
      compute.virtualMachines
        .createOrUpdate(RG, 'bad', { ...body, osProfile: { ...body.osProfile, adminUsername: 'root' } })
        .submitted(),
    ).rejects.toMatchObject({ statusCode: 400, code: 'InvalidParameter' });
    const ssh = body.osProfile?.linuxConfiguration?.ssh;
    await expect(
      compute.virtualMachines
        .createOrUpdate(RG, 'bad', {
          ...body,
          osProfile: {
            ...body.osProfile,
            linuxConfiguration: {
              ...body.osProfile?.linuxConfiguration,
              ssh: { publicKeys: [{ ...ssh?.publicKeys?.[0], path: '/root/.ssh/authorized_keys' }] },
            },
          },
        })
        .submitted(),
    ).rejects.toMatchObject({ statusCode: 400, code: 'InvalidParameter' });
    expect(arm.resourceIds('Microsoft.Compute/virtualMachines')).toEqual([]);
    await network.networkInterfaces.delete(RG, 'bad-nic', fast).pollUntilDone();
    await network.networkSecurityGroups.delete(RG, 'bad-nsg', fast).pollUntilDone();
  });
});
