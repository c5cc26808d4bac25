// A persona with cgroup limits switched on a real test host whose cpu, memory and pids
// controllers are on cgroup v1 hierarchies (this machine's, lent to the host:
// test/hosts/cgroup-v1.ts), through the embedded runtime's stores and the workflow's own steps:
// the limits land in the v1 files, a capture reads them in the same Profile fields, and back to
// the default the capture is as it was.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { diff } from '../../../core/delta/diff.js';
import type { Operation } from '../../../core/operation/schema.js';
import type { Decision, Persona } from '../../../core/persona/schema.js';
import { Persona as PersonaSchema } from '../../../core/persona/schema.js';
import {
  captureState,
  failSwitch,
  rollbackSwitch,
  runSwitchStep,
  SWITCH_STEPS,
  type SwitchDeps,
  type SwitchRequest,
  startSwitch,
} from '../../../core/persona/switch.js';
import type { Profile } from '../../../core/profile/schema.js';
import { personaSwitchDeps } from '../../../functions/shared/persona-switch.js';
import { ioWeightFile, type LentCgroups, lendCgroupV1, V1_MOUNTS } from '../../hosts/cgroup-v1.js';
import { createHost, destroyAllHosts, type TestHost } from '../../hosts/harness.js';
import { runPersona } from '../../support/cli.js';
import { startTestPersona, type TestPersona } from '../../support/local.js';

let host: TestHost;
let api: TestPersona;
let deps: SwitchDeps;
let lent: LentCgroups;
const NAME = 'cgroup-switchee';

beforeAll(async () => {
  [host, api] = await Promise.all([createHost({ name: 'switch-v1' }), startTestPersona()]);
  lent = await lendCgroupV1(host, 'switch');
  // A group the host already has, with limits of its own, as systemd would have left it.
  await host.run(`mkdir '${V1_MOUNTS.cpu}/shop.service' '${V1_MOUNTS.memory}/shop.service'`);
  await host.run(`echo 1030 > '${V1_MOUNTS.cpu}/shop.service/cpu.shares'`);
  await host.run(`echo 536870912 > '${V1_MOUNTS.memory}/shop.service/memory.limit_in_bytes'`);
  const captured = await runPersona(
    api,
    'capture',
    `ssh://root@${host.address}`,
    '--key',
    host.privateKeyPath,
    '--name',
    NAME,
    '--accept-new-host-key',
  );
  expect(captured.code, captured.stderr).toBe(0);
  deps = await personaSwitchDeps();
  const registration = (await deps.hosts.get(NAME)).registration;
  const first = await deps.transportFor(registration, { acceptNewHostKey: true });
  await first.run('true');
  await first.close();
}, 600_000);

afterAll(async () => {
  await api?.stop();
  await destroyAllHosts();
  lent?.release();
}, 120_000);

const decision = (to: string | null): Decision => ({
  host: NAME,
  at: Date.now(),
  action: to === null ? 'revert' : 'switch',
  from: null,
  to,
  mode: 'act',
  summary: 'asked by the test',
  reasons: [],
});

const FIRST_STEPS = new Set(['validate', 'baseline', 'plan']);

/** Runs the workflow's steps in order as its state machine does, with its Catch paths. */
async function runSwitch(request: Omit<SwitchRequest, 'decision'>): Promise<Operation> {
  const id = randomUUID();
  await startSwitch(deps, id, { ...request, decision: decision(request.to?.name ?? null) });
  for (const step of SWITCH_STEPS) {
    try {
      const summary = await runSwitchStep(deps, id, step);
      if (step === 'plan' && summary.resize === false) continue;
    } catch (error) {
      const caught = { Error: (error as { code?: string }).code ?? 'Error', Cause: (error as Error).message };
      if (FIRST_STEPS.has(step)) await failSwitch(deps, id, caught);
      else await rollbackSwitch(deps, id, caught);
      break;
    }
  }
  return deps.operations.get(id);
}

async function capture(): Promise<Profile> {
  const registration = (await deps.hosts.get(NAME)).registration;
  const transport = await deps.transportFor(registration, { acceptNewHostKey: false });
  try {
    return await captureState(deps, transport, registration);
  } finally {
    await transport.close();
  }
}

const file = async (path: string) => (await host.run(`head -n 1 '${path}'`)).trim();

const LIMITED = PersonaSchema.parse({
  apiVersion: 'persona/v1',
  kind: 'Persona',
  metadata: { name: 'limited' },
  spec: {
    hosts: { names: [NAME] },
    parameters: {
      cgroups: [
        { path: '/shop.service', cpuWeight: 300, cpuMax: '50000 100000', memoryMax: 268435456 },
        { path: '/worker.service', cpuWeight: 50, pidsMax: 64 },
      ],
    },
  },
}) as Persona;

describe('a persona with cgroup limits on a cgroup v1 host', () => {
  let before: Profile;

  it('captures the v1 limits the host has in the Profile fields', async () => {
    before = await capture();
    // 1030 shares are the weight 101 (systemd's conversion, rounded).
    expect(before.spec.resources.cgroups).toEqual([
      { path: '/shop.service', cpuWeight: 101, memoryMax: 536870912 },
    ]);
  }, 120_000);

  it('switches: the limits land in the v1 files and a capture reads them back as asked', async () => {
    const op = await runSwitch({ host: NAME, to: { name: 'limited', version: 1 }, persona: LIMITED });
    expect(op.status, JSON.stringify(op.error)).toBe('SUCCEEDED');
    expect(await file(`${V1_MOUNTS.cpu}/shop.service/cpu.shares`)).toBe('3072');
    expect(await file(`${V1_MOUNTS.cpu}/shop.service/cpu.cfs_quota_us`)).toBe('50000');
    expect(await file(`${V1_MOUNTS.memory}/shop.service/memory.limit_in_bytes`)).toBe('268435456');
    expect(await file(`${V1_MOUNTS.cpu}/worker.service/cpu.shares`)).toBe('512');
    expect(await file(`${V1_MOUNTS.pids}/worker.service/pids.max`)).toBe('64');
    const during = await capture();
    expect(during.spec.resources.cgroups).toEqual([
      { path: '/shop.service', cpuMax: '50000 100000', cpuWeight: 300, memoryMax: 268435456 },
      { path: '/worker.service', cpuWeight: 50, pidsMax: 64 },
    ]);
  }, 240_000);

  it('a second switch to the same persona plans nothing (a limit compares by value, not key order)', async () => {
    const op = await runSwitch({ host: NAME, to: { name: 'limited', version: 1 }, persona: LIMITED });
    expect(op.status, JSON.stringify(op.error)).toBe('SUCCEEDED');
    expect(op.result?.changes).toBe(0);
  }, 240_000);

  it('switches back to the default with the capture as it was before', async () => {
    const op = await runSwitch({ host: NAME, to: null, persona: null });
    expect(op.status, JSON.stringify(op.error)).toBe('SUCCEEDED');
    // The default is the captured Profile: the weight 101 the host's 1030 shares read as,
    // written as 1034 shares (a rollback, from the journal, puts back the exact 1030).
    expect(await file(`${V1_MOUNTS.cpu}/shop.service/cpu.shares`)).toBe('1034');
    expect(await file(`${V1_MOUNTS.cpu}/shop.service/cpu.cfs_quota_us`)).toBe('-1');
    expect(await file(`${V1_MOUNTS.memory}/shop.service/memory.limit_in_bytes`)).toBe('536870912');
    const after = await capture();
    expect(after.spec.resources.cgroups).toEqual(before.spec.resources.cgroups);
    const touched = diff(before, after).changes.filter(
      (c) => c.section === 'cgroups' || c.section === 'resources',
    );
    expect(touched.map((c) => `${c.kind} ${c.key}`)).toEqual([]);
  }, 240_000);
});

describe('a persona with cgroup limits that fails on a cgroup v1 host', () => {
  it('rolls back the limits it wrote to their exact prior v1 contents when a later limit cannot be held', async () => {
    await host.run(`echo 1030 > '${V1_MOUNTS.cpu}/shop.service/cpu.shares'`);
    const unholdable = PersonaSchema.parse({
      apiVersion: 'persona/v1',
      kind: 'Persona',
      metadata: { name: 'unholdable' },
      spec: {
        hosts: { names: [NAME] },
        parameters: {
          cgroups: [
            { path: '/shop.service', cpuWeight: 800, pidsMax: 20 },
            // CFQ and BFQ weigh up to 1000, and a kernel with neither holds no weight at all:
            // this limit has no v1 form, and the switch does not pretend.
            { path: '/zz.service', ioWeight: 5000 },
          ],
        },
      },
    }) as Persona;
    const op = await runSwitch({ host: NAME, to: { name: 'unholdable', version: 1 }, persona: unholdable });
    expect(op.status).toBe('ROLLED_BACK');
    const io = ioWeightFile(lent);
    expect(op.error?.message).toContain(
      io === undefined
        ? 'the blkio hierarchy has neither blkio.weight nor blkio.bfq.weight'
        : `ioWeight 5000 is outside ${io}'s range`,
    );
    expect(await file(`${V1_MOUNTS.cpu}/shop.service/cpu.shares`)).toBe('1030');
    expect(await host.exec(`test -e '${V1_MOUNTS.pids}/shop.service'`)).toMatchObject({ exitCode: 1 });
  }, 240_000);
});
