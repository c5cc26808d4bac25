// Persona switches on a real test host, through the embedded runtime's stores (DynamoDB Local,
// the S3-protocol server) and the workflow's own step functions: a switch sets sysctl, a tc
// egress limit and Persona's firewall table and reads them back; going back to the default puts
// back exactly what was there; a kernel that refuses a value and a transport cut in the middle
// of the apply roll back what was applied; hostile parameters are refused before anything
// changes. One host for the file.
import { randomUUID } from 'node:crypto';
import { readdirSync } from 'node:fs';
import {
  DescribeInstancesCommand,
  EC2Client,
  EC2ServiceException,
  ModifyInstanceAttributeCommand,
  StartInstancesCommand,
  StopInstancesCommand,
} from '@aws-sdk/client-ec2';
import { SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { diff } from '../../../core/delta/diff.js';
import type { Operation } from '../../../core/operation/schema.js';
import type { Decision, Persona, PersonaInput } from '../../../core/persona/schema.js';
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
  switchJournal,
} from '../../../core/persona/switch.js';
import { Ec2Platform, OPERATION_TAG } from '../../../core/platform/ec2.js';
import type { Profile } from '../../../core/profile/schema.js';
import { parseMadison } from '../../../core/resolver/apt.js';
import { LocalTransport } from '../../../core/transport/local.js';
import type { Transport } from '../../../core/transport/transport.js';
import { personaSwitchDeps } from '../../../functions/shared/persona-switch.js';
import { createHost, destroyAllHosts, type TestHost } from '../../hosts/harness.js';
import { runPersona } from '../../support/cli.js';
import { startTestPersona, type TestPersona } from '../../support/local.js';

let host: TestHost;
let api: TestPersona;
let deps: SwitchDeps;
const NAME = 'switchee';

beforeAll(async () => {
  [host, api] = await Promise.all([createHost({ name: 'switch' }), startTestPersona()]);
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
  // The host's key, as the capture saw it, recorded for the runtime's own transports: a switch
  // never accepts a key it was not given.
  const registration = (await deps.hosts.get(NAME)).registration;
  const first = await deps.transportFor(registration, { acceptNewHostKey: true });
  await first.run('true');
  await first.close();
}, 600_000);

afterAll(async () => {
  await api?.stop();
  await destroyAllHosts();
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

const persona = (name: string, parameters: PersonaInput['spec']['parameters']): Persona =>
  PersonaSchema.parse({
    apiVersion: 'persona/v1',
    kind: 'Persona',
    metadata: { name },
    spec: { hosts: { names: [NAME] }, parameters },
  });

const FIRST_STEPS = new Set(['validate', 'baseline', 'plan']);

/** Runs the workflow's steps in order as its state machine does, with its Catch paths. */
async function runSwitch(
  request: Omit<SwitchRequest, 'decision'>,
  using: SwitchDeps = deps,
): Promise<{ op: Operation; ms: Record<string, number> }> {
  const id = randomUUID();
  await startSwitch(using, id, { ...request, decision: decision(request.to?.name ?? null) });
  const ms: Record<string, number> = {};
  for (const step of SWITCH_STEPS) {
    const started = performance.now();
    try {
      const summary = await runSwitchStep(using, id, step);
      ms[step] = performance.now() - started;
      if (step === 'plan' && summary.resize === false) continue;
    } catch (error) {
      const caught = { Error: (error as { code?: string }).code ?? 'Error', Cause: (error as Error).message };
      if (FIRST_STEPS.has(step)) await failSwitch(using, id, caught);
      else await rollbackSwitch(using, id, caught);
      break;
    }
  }
  return { op: await using.operations.get(id), ms };
}

const sysctl = async (key: string) => (await host.run(`sysctl -n ${key}`)).trim();
const rootQdisc = async () => JSON.parse(await host.run('tc -j qdisc show dev eth0 root'))[0];
const personaTable = async () => (await host.exec('nft list table inet persona')).stdout;

async function capture(): Promise<Profile> {
  const registration = (await deps.hosts.get(NAME)).registration;
  const transport = await deps.transportFor(registration, { acceptNewHostKey: false });
  try {
    return await captureState(deps, transport, registration);
  } finally {
    await transport.close();
  }
}

const FAST = persona('fast', {
  sysctl: { 'net.ipv4.ip_default_ttl': '77', 'net.core.somaxconn': '1024' },
  bandwidth: [{ interface: 'eth0', egressMbps: 50 }],
  security: { allowIngress: [{ port: 8080 }, { port: 5432, from: '10.0.0.0/8' }] },
});

describe('a persona switch on a test host', () => {
  let before: Profile;
  let ttl: string;
  let somaxconn: string;

  it('sets sysctl, the tc egress limit and the persona firewall table, and reads them back', async () => {
    before = await capture();
    ttl = await sysctl('net.ipv4.ip_default_ttl');
    somaxconn = await sysctl('net.core.somaxconn');
    expect((await rootQdisc()).kind).toBe('noqueue');

    const { op, ms } = await runSwitch({ host: NAME, to: { name: 'fast', version: 1 }, persona: FAST });
    expect(op.status, JSON.stringify(op.error)).toBe('SUCCEEDED');
    console.log(`switch to fast, by step (ms): ${JSON.stringify(ms)}`);
    expect(await sysctl('net.ipv4.ip_default_ttl')).toBe('77');
    expect(await sysctl('net.core.somaxconn')).toBe('1024');
    expect(await host.readFile('/etc/sysctl.d/60-persona.conf')).toContain('net.ipv4.ip_default_ttl = 77');
    const q = await rootQdisc();
    expect(q).toMatchObject({ kind: 'tbf', handle: '9e50:' });
    expect(q.options.rate).toBe(50_000_000 / 8);
    const table = await personaTable();
    expect(table).toContain('tcp dport 8080 accept');
    expect(table).toContain('ip saddr 10.0.0.0/8 tcp dport 5432 accept');
    // The transport's own port is kept: Persona never locks itself out.
    expect(table).toContain('tcp dport 22 accept');
    // The host's own ruleset is left alone: Persona's table is the only one it added.
    expect((await host.run('nft list tables')).trim().split('\n')).toContain('table inet persona');
    // The resize was not needed, so the step is skipped.
    expect(op.steps.find((s) => s.name === 'resize')?.status).toBe('SKIPPED');
  }, 240_000);

  it('a second switch to the same persona changes nothing on the host', async () => {
    const { op } = await runSwitch({ host: NAME, to: { name: 'fast', version: 1 }, persona: FAST });
    expect(op.status).toBe('SUCCEEDED');
    expect(op.result?.changes).toBe(0);
  }, 240_000);

  it('back to the default restores exactly the values the persona overwrote', async () => {
    const { op } = await runSwitch({ host: NAME, to: null, persona: null });
    expect(op.status, JSON.stringify(op.error)).toBe('SUCCEEDED');
    expect(await sysctl('net.ipv4.ip_default_ttl')).toBe(ttl);
    expect(await sysctl('net.core.somaxconn')).toBe(somaxconn);
    // Persona's sysctl file did not exist before, so it does not now.
    expect((await host.exec('test -e /etc/sysctl.d/60-persona.conf')).exitCode).toBe(1);
    expect((await rootQdisc()).kind).toBe('noqueue');
    expect((await host.exec('nft list table inet persona')).exitCode).not.toBe(0);
    const after = await capture();
    const touched = diff(before, after).changes.filter(
      (c) => c.section === 'sysctl' || c.section === 'firewall' || c.section === 'files',
    );
    expect(touched.map((c) => `${c.kind} ${c.key}`)).toEqual([]);
  }, 240_000);
});

describe('a persona switch with software versions', () => {
  // Small, depends on libc6 alone, not in the test hosts' base image; the host reaches no
  // repository: the version comes from Persona's package store, filled from the control side.
  const PACKAGE = 'tree';
  const installed = async () => (await host.exec(`dpkg-query -W -f='\${Version}' -- ${PACKAGE}`)).stdout;

  async function controlVersion(): Promise<string> {
    const control = new LocalTransport();
    if (readdirSync('/var/lib/apt/lists').every((f) => !f.includes('_Packages'))) {
      const update = await control.run('apt-get update -q', { timeoutMs: 300_000 });
      expect(update.exitCode, `the control side has no package lists: ${update.stderr}`).toBe(0);
    }
    const found = parseMadison((await control.run(`apt-cache madison -- ${PACKAGE}`)).stdout)[0];
    if (!found) throw new Error(`the control side's apt knows no version of ${PACKAGE}`);
    return found.version;
  }

  it('installs the version a persona names on a host with no route out, and back to the default removes it', async () => {
    const version = await controlVersion();
    expect(await installed()).toBe('');
    const before = await capture();
    const tools = persona('tools', { packages: [{ name: PACKAGE, version }] });
    const { op } = await runSwitch({ host: NAME, to: { name: 'tools', version: 1 }, persona: tools });
    expect(op.status, JSON.stringify(op.error)).toBe('SUCCEEDED');
    expect(await installed()).toBe(version);
    expect((await host.exec(`${PACKAGE} --version`)).exitCode).toBe(0);

    const back = await runSwitch({ host: NAME, to: null, persona: null });
    expect(back.op.status, JSON.stringify(back.op.error)).toBe('SUCCEEDED');
    expect(await installed()).toBe('');
    const touched = diff(before, await capture()).changes.filter((c) => c.section === 'packages');
    expect(touched.map((c) => `${c.kind} ${c.key}`)).toEqual([]);
  }, 300_000);

  it('ends without changing the host when no source has the version a persona names', async () => {
    const before = await capture();
    const missing = persona('missing', { packages: [{ name: PACKAGE, version: '0.0.1-persona-none' }] });
    const { op } = await runSwitch({ host: NAME, to: { name: 'missing', version: 1 }, persona: missing });
    expect(['FAILED', 'ROLLED_BACK']).toContain(op.status);
    expect(op.error?.message).toContain(PACKAGE);
    expect(await installed()).toBe('');
    const touched = diff(before, await capture()).changes.filter(
      (c) => c.section === 'packages' || c.section === 'sysctl' || c.section === 'files',
    );
    expect(touched.map((c) => `${c.kind} ${c.key}`)).toEqual([]);
  }, 300_000);
});

describe('a persona switch that fails', () => {
  it('rolls back what it applied when the kernel refuses a value, naming the step and why', async () => {
    const somaxconn = await sysctl('net.core.somaxconn');
    const refused = persona('refused', {
      // net.core sorts first and is applied; a TTL of 0 is out of the kernel's range.
      sysctl: { 'net.core.somaxconn': '2048', 'net.ipv4.ip_default_ttl': '0' },
    });
    const { op } = await runSwitch({ host: NAME, to: { name: 'refused', version: 1 }, persona: refused });
    expect(op.status).toBe('ROLLED_BACK');
    expect(op.error).toMatchObject({ step: 'apply' });
    expect(op.error?.message).toContain('net.ipv4.ip_default_ttl');
    expect(await sysctl('net.core.somaxconn')).toBe(somaxconn);
    expect((await host.exec('test -e /etc/sysctl.d/60-persona.conf')).exitCode).toBe(1);
    const entries = await deps.journal.entries(switchJournal(op.id));
    expect(entries.length).toBeGreaterThan(0);
    expect(entries.every((e) => e.state === 'reverted')).toBe(true);
  }, 240_000);

  it('rolls back what it applied when the transport is cut in the middle of the apply', async () => {
    const ttl = await sysctl('net.ipv4.ip_default_ttl');
    let opened = 0;
    const cutting: SwitchDeps = {
      ...deps,
      async transportFor(registration, options) {
        const inner = await deps.transportFor(registration, options);
        opened += 1;
        // The transport of the Apply step (the second opened, after Baseline's) dies at the tc command.
        return opened === 2 ? cutAt(inner, 'tc qdisc replace') : inner;
      },
    };
    const { op } = await runSwitch({ host: NAME, to: { name: 'fast', version: 1 }, persona: FAST }, cutting);
    expect(op.status, JSON.stringify(op.error)).toBe('ROLLED_BACK');
    expect(op.error?.step).toBe('apply');
    // Two sysctl keys and Persona's table had landed, and the tc Change had begun, when it was cut.
    const entries = await deps.journal.entries(switchJournal(op.id));
    expect(entries.map((e) => e.change.kind)).toEqual([
      'sysctl.set',
      'sysctl.set',
      'ingress.set',
      'bandwidth.set',
    ]);
    expect(entries.every((e) => e.state === 'reverted')).toBe(true);
    // What landed before the cut (sysctl, Persona's table) is gone again; tc was never changed.
    expect(await sysctl('net.ipv4.ip_default_ttl')).toBe(ttl);
    expect((await host.exec('nft list table inet persona')).exitCode).not.toBe(0);
    expect((await rootQdisc()).kind).toBe('noqueue');
    expect((await host.exec('test -e /etc/sysctl.d/60-persona.conf')).exitCode).toBe(1);
  }, 240_000);

  it('puts back the previous persona (its tc rate, its table) when Verify cannot read the host', async () => {
    expect((await runSwitch({ host: NAME, to: { name: 'fast', version: 1 }, persona: FAST })).op.status).toBe(
      'SUCCEEDED',
    );
    const tableBefore = await personaTable();
    const slow = persona('slow', {
      sysctl: { 'net.ipv4.ip_default_ttl': '33' },
      bandwidth: [{ interface: 'eth0', egressMbps: 5 }],
      security: { allowIngress: [{ port: 9090, protocol: 'udp' }] },
    });
    let opened = 0;
    const blind: SwitchDeps = {
      ...deps,
      async transportFor(registration, options) {
        const inner = await deps.transportFor(registration, options);
        opened += 1;
        // Baseline, Apply, then Verify's: cut from its first command.
        return opened === 3 ? cutAt(inner, '') : inner;
      },
    };
    const { op } = await runSwitch({ host: NAME, to: { name: 'slow', version: 1 }, persona: slow }, blind);
    expect(op.status, JSON.stringify(op.error)).toBe('ROLLED_BACK');
    expect(op.error?.step).toBe('verify');
    expect(await sysctl('net.ipv4.ip_default_ttl')).toBe('77');
    const q = await rootQdisc();
    expect(q).toMatchObject({ kind: 'tbf', handle: '9e50:' });
    expect(q.options.rate).toBe(50_000_000 / 8);
    expect(await personaTable()).toBe(tableBefore);
    expect((await runSwitch({ host: NAME, to: null, persona: null })).op.status).toBe('SUCCEEDED');
    expect((await rootQdisc()).kind).toBe('noqueue');
  }, 240_000);

  it('leaves the record an agent follows naming what the host has when Record fails and the switch rolls back', async () => {
    const before = await sysctl('net.ipv4.ip_default_ttl');
    const states = deps.hostPersonas;
    if (states === undefined) throw new Error('the switch records host persona state here');
    const failing: SwitchDeps = {
      ...deps,
      hostPersonas: {
        get: (host) => states.get(host),
        save: async () => {
          throw new Error("injected: the host's persona state could not be written");
        },
      },
    };
    const { op } = await runSwitch({ host: NAME, to: { name: 'fast', version: 1 }, persona: FAST }, failing);
    expect(op.status, JSON.stringify(op.error)).toBe('ROLLED_BACK');
    expect(op.error?.step).toBe('record');
    expect(await sysctl('net.ipv4.ip_default_ttl')).toBe(before);
    // Neither the record the agent's assignment follows nor the host's state names the persona.
    expect((await deps.defaults.get(NAME)).current?.name ?? null).toBeNull();
    expect((await deps.hostPersonas?.get(NAME))?.current ?? null).toBeNull();
  }, 240_000);

  it('rolls back on a host without a cgroup filesystem, saying so, rather than pretend the limit holds', async () => {
    const ttl = await sysctl('net.ipv4.ip_default_ttl');
    const weighted = persona('weighted', {
      sysctl: { 'net.ipv4.ip_default_ttl': '90' },
      cgroups: [{ path: '/persona.slice/app.service', cpuWeight: 200, ioWeight: 300 }],
    });
    const { op } = await runSwitch({ host: NAME, to: { name: 'weighted', version: 1 }, persona: weighted });
    expect(op.status).toBe('ROLLED_BACK');
    expect(op.error?.message).toContain('no cgroup filesystem');
    expect(await sysctl('net.ipv4.ip_default_ttl')).toBe(ttl);
  }, 240_000);

  it.each([
    ['bandwidth[0].interface', { bandwidth: [{ interface: '-x', egressMbps: 10 }] }],
    ['bandwidth[0].interface', { bandwidth: [{ interface: 'eth0;reboot', egressMbps: 10 }] }],
    ['sysctl["net..ipv4.ip_forward"]', { sysctl: { 'net..ipv4.ip_forward': '1' } }],
    ['sysctl["net.ipv4/../ip_forward"]', { sysctl: { 'net.ipv4/../ip_forward': '1' } }],
    ['cgroups[0].path', { cgroups: [{ path: '/system.slice/../../etc', cpuWeight: 5 }] }],
  ])(
    'refuses %s before anything changes, naming the field',
    async (field, parameters) => {
      const ttl = await sysctl('net.ipv4.ip_default_ttl');
      // As a document reaching the switch unparsed would be: the switch checks it itself.
      const hostile = {
        ...persona('hostile', {}),
        spec: {
          ...persona('hostile', {}).spec,
          parameters: { ...persona('hostile', {}).spec.parameters, ...parameters },
        },
      } as Persona;
      const { op } = await runSwitch({ host: NAME, to: { name: 'hostile', version: 1 }, persona: hostile });
      expect(op.status).toBe('FAILED');
      expect(op.error?.step).toBe('validate');
      expect(op.error?.message).toContain(`spec.parameters.${field}`);
      expect(await deps.journal.entries(switchJournal(op.id))).toEqual([]);
      expect(await sysctl('net.ipv4.ip_default_ttl')).toBe(ttl);
    },
    60_000,
  );
});

// EC2 has no stand-in that refuses a start for capacity: its API is aws-sdk-client-mock here,
// with the documented shapes, and the instance's host is the test host, registered as on AWS.
describe('a persona switch that resizes the instance', () => {
  const ec2 = mockClient(EC2Client);
  const INSTANCE = 'i-0fedcba9876543210';
  let type = 'm6i.large';
  let state = 'running';
  let noCapacity: string[] = [];
  let onAws: SwitchDeps;

  beforeAll(async () => {
    const registration = (await deps.hosts.get(NAME)).registration;
    await deps.hosts.save(
      {
        ...registration,
        platform: 'aws',
        tags: { ...registration.tags, 'persona:operation': 'op-clone-7', 'persona:platform-id': INSTANCE },
      },
      new Date(),
    );
    onAws = {
      ...deps,
      platforms: {
        aws: new Ec2Platform({
          ec2: new EC2Client({ region: 'eu-west-1' }),
          ssm: new SSMClient({ region: 'eu-west-1' }),
          region: 'eu-west-1',
          waits: { intervalMs: 1 },
          sleep: async () => {},
        }),
      },
    };
    ec2.on(DescribeInstancesCommand).callsFake(() => ({
      Reservations: [
        {
          Instances: [
            {
              InstanceId: INSTANCE,
              InstanceType: type,
              Architecture: 'x86_64',
              State: { Name: state },
              Tags: [{ Key: OPERATION_TAG, Value: 'op-clone-7' }],
            },
          ],
        },
      ],
    }));
    ec2.on(StopInstancesCommand).callsFake(() => {
      state = 'stopped';
      return { StoppingInstances: [{ InstanceId: INSTANCE, CurrentState: { Name: 'stopping', Code: 64 } }] };
    });
    ec2.on(ModifyInstanceAttributeCommand).callsFake((input: { InstanceType?: { Value?: string } }) => {
      type = input.InstanceType?.Value ?? type;
      return {};
    });
    ec2.on(StartInstancesCommand).callsFake(() => {
      if (noCapacity.includes(type))
        throw new EC2ServiceException({
          name: 'InsufficientInstanceCapacity',
          $fault: 'server',
          $metadata: { httpStatusCode: 500 },
          message: `We currently do not have sufficient ${type} capacity in the Availability Zone you requested.`,
        });
      state = 'running';
      return { StartingInstances: [{ InstanceId: INSTANCE, CurrentState: { Name: 'pending', Code: 0 } }] };
    });
  });

  afterAll(async () => {
    ec2.restore();
    const registration = (await deps.hosts.get(NAME)).registration;
    const { 'persona:operation': _o, 'persona:platform-id': _p, ...tags } = registration.tags;
    await deps.hosts.save({ ...registration, platform: 'baremetal', tags }, new Date());
  });

  const sized = (name: string, size: string, ttl: string, preferredSizes: string[] = []) =>
    persona(name, { sysctl: { 'net.ipv4.ip_default_ttl': ttl }, instance: { size, preferredSizes } });

  it('falls back to a preferred size on a capacity error, and a persona of the same size does not resize', async () => {
    noCapacity = ['m6i.xlarge'];
    const first = await runSwitch(
      {
        host: NAME,
        to: { name: 'day', version: 1 },
        persona: sized('day', 'm6i.xlarge', '70', ['m5.xlarge']),
      },
      onAws,
    );
    expect(first.op.status, JSON.stringify(first.op.error)).toBe('SUCCEEDED');
    expect(type).toBe('m5.xlarge');
    expect(state).toBe('running');
    expect(first.op.steps.find((s) => s.name === 'resize')?.detail).toContain('size m5.xlarge');

    const stops = ec2.commandCalls(StopInstancesCommand).length;
    // A nested window: another persona the instance already has the size of.
    const second = await runSwitch(
      { host: NAME, to: { name: 'peak', version: 1 }, persona: sized('peak', 'm5.xlarge', '71') },
      onAws,
    );
    expect(second.op.status, JSON.stringify(second.op.error)).toBe('SUCCEEDED');
    expect(ec2.commandCalls(StopInstancesCommand)).toHaveLength(stops);
    expect(second.op.steps.find((s) => s.name === 'resize')?.status).toBe('SKIPPED');
    expect(await sysctl('net.ipv4.ip_default_ttl')).toBe('71');
  }, 240_000);

  it('resizes back when a later step fails, and back to the default takes the size the host had', async () => {
    noCapacity = [];
    const ttl = await sysctl('net.ipv4.ip_default_ttl');
    const failing = persona('huge', {
      sysctl: { 'net.ipv4.ip_default_ttl': '0' },
      instance: { size: 'm6i.4xlarge' },
    });
    const { op } = await runSwitch({ host: NAME, to: { name: 'huge', version: 1 }, persona: failing }, onAws);
    expect(op.status).toBe('ROLLED_BACK');
    expect(op.error?.step).toBe('apply');
    expect(type).toBe('m5.xlarge');
    expect(state).toBe('running');
    expect(await sysctl('net.ipv4.ip_default_ttl')).toBe(ttl);

    const back = await runSwitch({ host: NAME, to: null, persona: null }, onAws);
    expect(back.op.status, JSON.stringify(back.op.error)).toBe('SUCCEEDED');
    expect(type).toBe('m6i.large');
    expect(await sysctl('net.ipv4.ip_default_ttl')).toBe('64');
  }, 240_000);
});

/** A transport that is cut (every command fails) from the first command holding `marker` on. */
function cutAt(inner: Transport, marker: string): Transport {
  let cut = false;
  const dead = () => Promise.reject(new Error('the connection to the host was lost'));
  return {
    target: inner.target,
    async run(command, options) {
      if (command.includes(marker)) cut = true;
      return cut ? dead() : inner.run(command, options);
    },
    stream: (c, o) => (cut ? dead() : inner.stream(c, o)) as ReturnType<Transport['stream']>,
    putFile: (p, c, o) => (cut ? dead() : inner.putFile(p, c, o)),
    getFile: (p) => (cut ? dead() : inner.getFile(p)),
    close: () => inner.close(),
  };
}
