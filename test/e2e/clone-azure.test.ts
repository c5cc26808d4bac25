// A clone to "Azure", end to end: the Debian web host captured over SSH is cloned with
// `persona clone web --to azure --resource-group … --location … --subnet …` through the clone
// workflow (the ASL executed by the embedded runtime) and the real Azure adaptor and ARM SDK
// clients, pointed at the ARM stand-in, whose VM is a real test host reached over SSH with the
// login key Persona made and sealed for it and the host key Persona chose and pinned.
// Validation passes against the source; a clone stopped once its VM is up ends ROLLED_BACK
// with the VM, its NIC, NSG and disks deleted and the host gone.
import { ComputeManagementClient } from '@azure/arm-compute';
import { NetworkManagementClient } from '@azure/arm-network';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AzurePlatform, OPERATION_TAG } from '../../core/platform/azure.js';
import { createHost, destroyAllHosts, type TestHost } from '../hosts/harness.js';
import { setUpWebHost } from '../hosts/software.js';
import { type ArmStandIn, startArmStandIn } from '../stand-ins/arm.js';
import { runPersona } from '../support/cli.js';
import { captureWebSource, ended, lastClone, untilWorkingOnTarget } from '../support/clone.js';
import { eventsWith, startTestPersona, type TestPersona } from '../support/local.js';

const RG = 'clones';
let arm: ArmStandIn;
let api: TestPersona;
let web: TestHost;

const persona = (...args: string[]) => runPersona(api, ...args);
const PAGE = '<h1>shop on azure</h1>\n';
const subnet = () =>
  `/subscriptions/${arm.subscriptionId}/resourceGroups/network/providers/Microsoft.Network/virtualNetworks/clones/subnets/default`;

beforeAll(async () => {
  arm = await startArmStandIn({ resourceGroups: [RG], retryAfterSeconds: 0 });
  api = await startTestPersona({
    // The embedded runtime is handed its Azure adaptor; the deployed task builds the same one
    // from the service principal in Secrets Manager.
    platforms: (keys) => ({
      azure: new AzurePlatform({
        compute: new ComputeManagementClient(arm.credential, arm.subscriptionId, { ...arm.clientOptions }),
        network: new NetworkManagementClient(arm.credential, arm.subscriptionId, { ...arm.clientOptions }),
        subscriptionId: arm.subscriptionId,
        privateKeyFor: keys.privateKeyFor,
        pollIntervalMs: 200,
        operationIntervalMs: 50,
      }),
    }),
  });
  web = await createHost({
    name: 'zweb',
    hostname: 'web-azure',
    setup: (h) => setUpWebHost(h, { page: PAGE, secret: 'hunter2-in-azure' }),
  });
  await captureWebSource(api, web);
}, 900_000);

afterAll(async () => {
  await arm?.stop();
  await destroyAllHosts();
  await api?.stop();
}, 180_000);

const lastOperation = () => lastClone(api);
const vmsOf = (id: string) =>
  arm
    .resourceIds('Microsoft.Compute/virtualMachines')
    .filter((vm) => (arm.resource(vm)?.tags as Record<string, string> | undefined)?.[OPERATION_TAG] === id);

describe('persona clone --to azure', () => {
  it('creates a VM with a pinned host key and a sealed login key, clones onto it over SSH and validates it', async () => {
    const r = await persona(
      'clone',
      'web',
      '--to',
      'azure',
      '--resource-group',
      RG,
      '--location',
      'westeurope',
      '--subnet',
      subnet(),
      '--tag',
      'team=platform',
    );
    const op = await lastOperation();
    expect(op.status, `${r.stderr}\n${r.stdout}\n${JSON.stringify(op.error)}`).toBe('SUCCEEDED');
    expect(r.stdout).toMatch(/validation passed/);
    const [vm] = vmsOf(op.id);
    expect(vm).toBeDefined();
    expect((arm.resource(vm as string)?.tags as Record<string, string> | undefined)?.team).toBe('platform');
    const host = arm.hostOf(vm as string) as TestHost;
    expect((await host.exec(`curl -s --max-time 5 http://${host.address}/`)).stdout).toBe(PAGE);
    // Registered as a host reached over SSH with its host key pinned and its key sealed.
    const target = { host: op.result?.target as string };
    const registered = (await api.call('GET', `/hosts/${target.host}`)).body.registration;
    expect(registered).toMatchObject({ platform: 'azure', transport: 'ssh', address: host.address });
    expect(registered.hostKeyFingerprint).toMatch(/^SHA256:/);
    expect(registered.credentialRef).toMatchObject({
      provider: 'local',
      key: `${target.host}/credential/ssh`,
    });
    // The private key is nowhere in the operation's record, its documents or the VM's model.
    const everything = JSON.stringify([op, target, registered, arm.calls.map((c) => c.body)]);
    expect(everything).not.toMatch(/BEGIN OPENSSH PRIVATE KEY[\s\S]{0,40}b3BlbnNzaC1rZXktdjE/);
    expect(op.result?.differences, JSON.stringify(op.result)).toBe(0);
    expect(await eventsWith(api, 'Clone Succeeded')).toContain('"Clone Succeeded"');
  }, 900_000);

  it('deletes the VM and everything made for it when the clone is stopped after provisioning, and ends ROLLED_BACK', async () => {
    const started = await api.call('POST', '/operations/clone', {
      headers: { 'idempotency-key': 'azure-cancelled' },
      body: {
        profile: { name: 'web' },
        target: { kind: 'azure', resourceGroup: RG, location: 'westeurope', subnet: subnet() },
      },
    });
    expect(started.status).toBe(202);
    const id = started.body.id as string;
    await untilWorkingOnTarget(api, id);
    const [vm] = vmsOf(id);
    expect(vm).toBeDefined();
    const host = arm.hostOf(vm as string);
    expect(host).toBeDefined();
    expect((await api.call('POST', `/operations/${id}/cancel`)).status).toBe(202);
    const op = await ended(api, id);
    expect(op.status, JSON.stringify(op.error)).toBe('ROLLED_BACK');
    const rollback = (await api.call('GET', `/operations/${id}/documents/rollback`)).body;
    expect(rollback.terminated).toBe(true);
    await arm.idle();
    const left = arm
      .resourceIds()
      .filter((r) => (arm.resource(r)?.tags as Record<string, string> | undefined)?.[OPERATION_TAG] === id);
    expect(left).toEqual([]);
    expect(arm.hostOf(vm as string)).toBeUndefined();
    expect(await eventsWith(api, 'Clone Rolled Back')).toContain('"Clone Rolled Back"');
  }, 900_000);
});
