// The Delta of a persona switch without a host: what differs becomes a Change and nothing else,
// the default grows with the values personas overwrite and going back restores them, two
// personas of one size never resize, bare metal cannot resize, hostile parameters are refused
// naming the field; and the cloud side of a switch against aws-sdk-client-mock with the
// documented response shapes: the EC2 resize falls back through preferred sizes on capacity
// errors, and thresholds become CloudWatch alarms that a revert puts back.
import {
  CloudWatchClient,
  CloudWatchServiceException,
  DeleteAlarmsCommand,
  DescribeAlarmsCommand,
  PutMetricAlarmCommand,
} from '@aws-sdk/client-cloudwatch';
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
import { beforeEach, describe, expect, it } from 'vitest';
import { Delta, summarize } from '../../../core/delta/changes.js';
import { InvalidInputError } from '../../../core/errors.js';
import { alarmExecutor, alarmInput } from '../../../core/orchestrator/executors/alarms.js';
import { bandwidthChange, tbfArguments } from '../../../core/orchestrator/executors/bandwidth.js';
import type { ExecutorContext } from '../../../core/orchestrator/executors/executor.js';
import { ingressScript, sourceProblem } from '../../../core/orchestrator/executors/ingress.js';
import {
  type AppliedParameters,
  checkParameters,
  EMPTY_DEFAULTS,
  extendDefaults,
  type HostParameters,
  type PlanOptions,
  parameterIssues,
  planSwitch,
} from '../../../core/persona/parameters.js';
import { PersonaParameters } from '../../../core/persona/schema.js';
import { Ec2CapacityError, Ec2Platform, OPERATION_TAG } from '../../../core/platform/ec2.js';
import type { ProvisionedHost } from '../../../core/platform/platform.js';

const params = (input: unknown) => PersonaParameters.parse(input);

const HOST: HostParameters = {
  sysctl: {
    'net.ipv4.ip_default_ttl': { value: '64', persisted: false },
    'vm.swappiness': { value: '60', persisted: false },
  },
  cgroups: { '/app.slice': null },
  bandwidth: { eth0: null },
  ingress: null,
  packages: { nginx: { name: 'nginx', version: '1.22.1-9', manager: 'apt' } },
  instanceSize: 'm6i.large',
};
const NOTHING_APPLIED: AppliedParameters = { thresholds: [] };
const CLOUD: PlanOptions = { alarms: false, resizable: true, packageManager: 'apt', keepPorts: [22] };

const kinds = (plan: { changes: readonly { kind: string; key: string }[] }) =>
  plan.changes.map((c) => `${c.kind} ${c.key}`);

describe('planSwitch', () => {
  const day = params({
    sysctl: { 'net.ipv4.ip_default_ttl': '64', 'vm.swappiness': '10' },
    cgroups: [{ path: '/app.slice', cpuWeight: 400 }],
    bandwidth: [{ interface: 'eth0', egressMbps: 200 }],
    instance: { size: 'm6i.xlarge', preferredSizes: ['m5.xlarge', 'm6i.xlarge'] },
  });

  it('turns only what differs into Changes, in layer order, and a valid Delta', () => {
    const plan = planSwitch(HOST, EMPTY_DEFAULTS, NOTHING_APPLIED, day, CLOUD);
    // The TTL is already 64: no Change for it.
    expect(kinds(plan)).toEqual(['sysctl.set vm.swappiness', 'cgroup.set /app.slice', 'bandwidth.set eth0']);
    expect(plan.resize).toEqual({ from: 'm6i.large', to: 'm6i.xlarge', preferred: ['m5.xlarge'] });
    expect(plan.unresolved).toEqual([]);
    expect(() =>
      Delta.parse({
        from: { name: 'default' },
        to: { name: 'day' },
        changes: plan.changes,
        summary: summarize(plan.changes),
      }),
    ).not.toThrow();
  });

  it('plans software versions as Changes keyed as the Delta keys packages, and back to the default as the host had them', () => {
    const tools = params({
      packages: [
        { name: 'nginx', version: '1.24.0-2' },
        { name: 'tree', version: '2.1.0-1' },
      ],
    });
    const plan = planSwitch(HOST, EMPTY_DEFAULTS, NOTHING_APPLIED, tools, CLOUD);
    expect(kinds(plan)).toEqual(['package.upgrade apt:nginx', 'package.install apt:tree']);
    expect(plan.changes[0]?.to).toEqual({ name: 'nginx', version: '1.24.0-2', manager: 'apt' });
    const delta = (changes: typeof plan.changes) =>
      Delta.parse({ from: { name: 'a' }, to: { name: 'b' }, changes, summary: summarize(changes) });
    expect(() => delta(plan.changes)).not.toThrow();
    // Back: nginx to the version the host had, tree out again.
    const defaults = extendDefaults(EMPTY_DEFAULTS, tools, HOST, NOTHING_APPLIED);
    const switched: HostParameters = {
      ...HOST,
      packages: {
        nginx: { name: 'nginx', version: '1.24.0-2', manager: 'apt' },
        tree: { name: 'tree', version: '2.1.0-1', manager: 'apt' },
      },
    };
    const back = planSwitch(switched, defaults, NOTHING_APPLIED, null, CLOUD);
    expect(kinds(back)).toEqual(['package.upgrade apt:nginx', 'package.remove apt:tree']);
    expect(back.changes[0]?.to).toMatchObject({ version: '1.22.1-9' });
    expect(() => delta(back.changes)).not.toThrow();
  });

  it('does not resize between two personas of one size (nested windows do not stop and start the instance)', () => {
    const first = planSwitch(HOST, EMPTY_DEFAULTS, NOTHING_APPLIED, day, CLOUD);
    const peak = params({ sysctl: { 'vm.swappiness': '1' }, instance: { size: 'm6i.xlarge' } });
    const host = { ...HOST, instanceSize: 'm6i.xlarge' };
    const second = planSwitch(host, EMPTY_DEFAULTS, first.applied, peak, CLOUD);
    expect(second.resize).toBeUndefined();
    expect(kinds(second)).toContain('sysctl.set vm.swappiness');
  });

  it('takes a host back to exactly its default: the values, and out of Persona sysctl file where it was not', () => {
    const defaults = extendDefaults(EMPTY_DEFAULTS, day, HOST, NOTHING_APPLIED);
    expect(defaults.sysctl).toEqual({
      'net.ipv4.ip_default_ttl': { value: '64', persisted: false },
      'vm.swappiness': { value: '60', persisted: false },
    });
    expect(defaults.instanceSize).toBe('m6i.large');
    const during: HostParameters = {
      ...HOST,
      sysctl: { ...HOST.sysctl, 'vm.swappiness': { value: '10', persisted: true } },
      cgroups: { '/app.slice': { path: '/app.slice', cpuWeight: 400 } },
      bandwidth: { eth0: { interface: 'eth0', egressMbps: 200 } },
      instanceSize: 'm6i.xlarge',
    };
    const back = planSwitch(during, defaults, { thresholds: [], instanceSize: 'm6i.xlarge' }, null, CLOUD);
    expect(back.changes.map((c) => [c.kind, c.key, c.to])).toEqual([
      ['sysctl.set', 'vm.swappiness', '60'],
      ['sysctl.unset', 'vm.swappiness', null],
      ['cgroup.unset', '/app.slice', null],
      ['bandwidth.unset', 'eth0', null],
    ]);
    expect(back.resize).toEqual({ from: 'm6i.xlarge', to: 'm6i.large', preferred: [] });
  });

  it('grows the default with the keys a later persona touches, and keeps the values it holds', () => {
    const defaults = extendDefaults(
      EMPTY_DEFAULTS,
      params({ sysctl: { 'vm.swappiness': '10' } }),
      HOST,
      NOTHING_APPLIED,
    );
    // On the first persona, swappiness is 10; the next one also sets the TTL.
    const during = { ...HOST, sysctl: { ...HOST.sysctl, 'vm.swappiness': { value: '10', persisted: true } } };
    const grown = extendDefaults(
      defaults,
      params({ sysctl: { 'vm.swappiness': '5', 'net.ipv4.ip_default_ttl': '99' } }),
      during,
      NOTHING_APPLIED,
    );
    expect(grown.sysctl).toEqual({
      'vm.swappiness': { value: '60', persisted: false },
      'net.ipv4.ip_default_ttl': { value: '64', persisted: false },
    });
  });

  it('puts back what an earlier persona set and the next one leaves out', () => {
    const defaults = extendDefaults(EMPTY_DEFAULTS, day, HOST, NOTHING_APPLIED);
    const during: HostParameters = { ...HOST, bandwidth: { eth0: { interface: 'eth0', egressMbps: 200 } } };
    const quiet = params({ sysctl: { 'vm.swappiness': '60' } });
    expect(kinds(planSwitch(during, defaults, NOTHING_APPLIED, quiet, CLOUD))).toContain(
      'bandwidth.unset eth0',
    );
  });

  it('lists a resize on bare metal as unresolved, so the switch fails before anything changes', () => {
    const plan = planSwitch(HOST, EMPTY_DEFAULTS, NOTHING_APPLIED, day, { ...CLOUD, resizable: false });
    expect(plan.unresolved).toEqual([expect.objectContaining({ kind: 'instance.resize' })]);
    expect(plan.resize).toBeUndefined();
  });

  it('lists an interface with a root qdisc of someone else, and a key the kernel lacks, as unresolved', () => {
    const host: HostParameters = {
      ...HOST,
      bandwidth: { eth0: 'other' },
      sysctl: { ...HOST.sysctl, 'net.ipv4.ip_default_ttl': null },
    };
    const plan = planSwitch(host, EMPTY_DEFAULTS, NOTHING_APPLIED, day, CLOUD);
    expect(plan.unresolved.map((u) => `${u.kind} ${u.key}`)).toEqual([
      'sysctl.set net.ipv4.ip_default_ttl',
      'bandwidth.set eth0',
    ]);
  });

  it('lists an egress limit on a host without tc (RHEL without iproute-tc) as unresolved, naming the package', () => {
    const host: HostParameters = { ...HOST, bandwidth: { eth0: 'no-tc' } };
    const plan = planSwitch(host, EMPTY_DEFAULTS, NOTHING_APPLIED, day, CLOUD);
    expect(plan.unresolved).toEqual([
      expect.objectContaining({ kind: 'bandwidth.set', detail: expect.stringContaining('iproute-tc') }),
    ]);
  });

  it('makes thresholds alarms on EC2 only, removing those the persona drops', () => {
    const alarmed = params({ thresholds: [{ metric: 'cpu.utilization', comparison: '>', value: 80 }] });
    expect(kinds(planSwitch(HOST, EMPTY_DEFAULTS, NOTHING_APPLIED, alarmed, CLOUD))).toEqual([]);
    const ec2 = planSwitch(HOST, EMPTY_DEFAULTS, NOTHING_APPLIED, alarmed, { ...CLOUD, alarms: true });
    expect(kinds(ec2)).toEqual(['threshold.set cpu.utilization >']);
    const defaults = extendDefaults(EMPTY_DEFAULTS, alarmed, HOST, NOTHING_APPLIED);
    const back = planSwitch(HOST, defaults, ec2.applied, null, { ...CLOUD, alarms: true });
    expect(kinds(back)).toEqual(['threshold.unset cpu.utilization >']);
  });

  it("admits the persona's ports in Persona's own table, the transport's port kept", () => {
    const open = params({ security: { allowIngress: [{ port: 8443 }] } });
    const plan = planSwitch(HOST, EMPTY_DEFAULTS, NOTHING_APPLIED, open, CLOUD);
    expect(plan.changes).toEqual([
      expect.objectContaining({
        kind: 'ingress.set',
        to: { rules: [{ port: 8443, protocol: 'tcp' }], keep: [22] },
      }),
    ]);
    const script = ingressScript({ rules: [{ port: 8443, protocol: 'tcp' }], keep: [22] });
    expect(script).toMatch(/^table inet persona\ndelete table inet persona\ntable inet persona \{/);
    expect(script).toContain('tcp dport 22 accept');
    expect(script).toContain('tcp dport 8443 accept');
  });
});

describe('hostile parameters', () => {
  it.each([
    ['bandwidth[0].interface', { bandwidth: [{ interface: '-x', egressMbps: 1 }] }],
    ['bandwidth[0].interface', { bandwidth: [{ interface: 'eth0;reboot', egressMbps: 1 }] }],
    ['bandwidth[0].interface', { bandwidth: [{ interface: '..', egressMbps: 1 }] }],
    ['sysctl["net..ipv4.x"]', { sysctl: { 'net..ipv4.x': '1' } }],
    ['sysctl["net/../ipv4"]', { sysctl: { 'net/../ipv4': '1' } }],
    ['sysctl["net.ipv4.*"]', { sysctl: { 'net.ipv4.*': '1' } }],
    ['sysctl["net.ipv4.ip_forward"]', { sysctl: { 'net.ipv4.ip_forward': '1\nkernel.x = 1' } }],
    ['cgroups[0].path', { cgroups: [{ path: '/a/../../etc', cpuWeight: 2 }] }],
    ['cgroups[0].path', { cgroups: [{ path: '/-rf', cpuWeight: 2 }] }],
    ['cgroups[0].cpuMax', { cgroups: [{ path: '/a', cpuMax: 'max; reboot' }] }],
    ['packages[0].version', { packages: [{ name: 'nginx', version: '1.0 -o APT::x' }] }],
    ['instance.size', { instance: { size: '-m6i.large' } }],
  ])('refuses %s, naming it', (field, hostile) => {
    const p = { ...params({}), ...hostile } as PersonaParameters;
    expect(parameterIssues(p).map((i) => i.path)).toContain(`parameters.${field}`);
    expect(() => checkParameters(p)).toThrow(InvalidInputError);
  });

  it('passes what a persona may say', () => {
    expect(
      parameterIssues(
        params({
          sysctl: { 'net.ipv4.conf.eth0/100.rp_filter': '1' },
          cgroups: [{ path: '/system.slice/nginx.service', cpuWeight: 50 }],
        }),
      ),
    ).toEqual([]);
  });

  it('refuses an interface name in a bandwidth Change before any command is built', () => {
    const change = {
      kind: 'bandwidth.set',
      section: 'bandwidth',
      key: 'eth0;reboot',
      from: null,
      to: { interface: 'eth0;reboot', egressMbps: 5 },
      disruptive: false,
    } as never;
    expect(() => bandwidthChange(change)).toThrow(/is not a network interface name/);
    expect(tbfArguments(50)).toEqual(['rate', '50000kbit', 'burst', '62500', 'latency', '50ms']);
    expect(sourceProblem('10.0.0.0/33')).toBeDefined();
    expect(sourceProblem('fd00::/8')).toBeUndefined();
  });
});

// --- EC2 resize: aws-sdk-client-mock with the documented shapes --------------------------------

const ec2 = mockClient(EC2Client);
const HOST_ID = 'i-0123456789abcdef0';
const handle: ProvisionedHost = {
  platform: 'ec2',
  operation: 'op-clone-1',
  id: HOST_ID,
  scope: 'eu-west-1',
  access: { transport: 'ssm', instanceId: HOST_ID, region: 'eu-west-1' },
};

/** An instance that stops, changes type and starts; a start of a type without capacity fails as EC2 does. */
function instance(noCapacity: readonly string[]) {
  let state = 'running';
  let type = 'm6i.large';
  ec2.on(DescribeInstancesCommand).callsFake(() => ({
    Reservations: [
      {
        Instances: [
          {
            InstanceId: HOST_ID,
            InstanceType: type,
            Architecture: 'x86_64',
            State: { Name: state, Code: state === 'running' ? 16 : 80 },
            Tags: [{ Key: OPERATION_TAG, Value: 'op-clone-1' }],
          },
        ],
      },
    ],
  }));
  ec2.on(StopInstancesCommand).callsFake(() => {
    state = 'stopped';
    return { StoppingInstances: [{ InstanceId: HOST_ID, CurrentState: { Name: 'stopping', Code: 64 } }] };
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
        message: `We currently do not have sufficient ${type} capacity in the Availability Zone you requested (eu-west-1a).`,
      });
    state = 'running';
    return { StartingInstances: [{ InstanceId: HOST_ID, CurrentState: { Name: 'pending', Code: 0 } }] };
  });
  return { type: () => type, state: () => state };
}

const platform = () =>
  new Ec2Platform({
    ec2: new EC2Client({ region: 'eu-west-1' }),
    ssm: new SSMClient({ region: 'eu-west-1' }),
    region: 'eu-west-1',
    waits: { intervalMs: 1 },
    sleep: async () => {},
  });

describe('EC2 resize with preferred sizes', () => {
  beforeEach(() => ec2.reset());

  it('tries the preferred sizes in order on InsufficientInstanceCapacity and says which one it got', async () => {
    const vm = instance(['m6i.xlarge', 'm5.xlarge']);
    const result = await platform().resize(handle, 'm6i.xlarge', { fallback: ['m5.xlarge', 'm5a.xlarge'] });
    expect(result).toEqual({ state: 'resized', size: 'm5a.xlarge', restarted: true, previous: 'm6i.large' });
    expect(vm.type()).toBe('m5a.xlarge');
    expect(vm.state()).toBe('running');
    expect(
      ec2.commandCalls(ModifyInstanceAttributeCommand).map((c) => c.args[0].input.InstanceType?.Value),
    ).toEqual(['m6i.xlarge', 'm5.xlarge', 'm5a.xlarge']);
    expect(ec2.commandCalls(StopInstancesCommand)).toHaveLength(1);
  });

  it('gives the instance its own type back and starts it again when no size has capacity', async () => {
    const vm = instance(['m6i.xlarge', 'm5.xlarge']);
    const error = await platform()
      .resize(handle, 'm6i.xlarge', { fallback: ['m5.xlarge'] })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Ec2CapacityError);
    expect((error as Ec2CapacityError).tried.map((t) => t.instanceType)).toEqual(['m6i.xlarge', 'm5.xlarge']);
    expect(vm.type()).toBe('m6i.large');
    expect(vm.state()).toBe('running');
  });

  it('does not stop an instance already of the size', async () => {
    instance([]);
    expect(await platform().resize(handle, 'm6i.large', { fallback: ['m5.large'] })).toEqual({
      state: 'unchanged',
      size: 'm6i.large',
    });
    expect(ec2.commandCalls(StopInstancesCommand)).toHaveLength(0);
  });
});

// --- thresholds as CloudWatch alarms -----------------------------------------------------------

const cw = mockClient(CloudWatchClient);
const ctx = {} as ExecutorContext;

describe('thresholds as CloudWatch alarms of an EC2 instance', () => {
  beforeEach(() => cw.reset());
  const target = {
    cloudwatch: new CloudWatchClient({ region: 'eu-west-1' }),
    host: 'web-1',
    instanceId: HOST_ID,
  };
  const threshold = {
    metric: 'cpu.utilization',
    comparison: '>' as const,
    value: 80,
    durationSeconds: 300,
    severity: 'critical' as const,
  };
  const set = {
    kind: 'threshold.set',
    section: 'thresholds',
    key: 'cpu.utilization >',
    from: null,
    to: threshold,
    disruptive: false,
  } as never;

  it('puts an alarm on the instance for the duration, and a revert deletes the alarm it made', async () => {
    cw.on(DescribeAlarmsCommand).resolves({ MetricAlarms: [], CompositeAlarms: [] });
    cw.on(PutMetricAlarmCommand).resolves({});
    cw.on(DeleteAlarmsCommand).resolves({});
    const executor = alarmExecutor(target);
    const prior = await executor.prepare(ctx, set);
    expect(await executor.apply(ctx, set, prior)).toMatchObject({ status: 'changed' });
    expect(cw.commandCalls(PutMetricAlarmCommand)[0]?.args[0].input).toEqual(alarmInput(target, threshold));
    expect(alarmInput(target, threshold)).toMatchObject({
      AlarmName: 'persona-web-1-cpu.utilization-gt',
      Namespace: 'AWS/EC2',
      MetricName: 'CPUUtilization',
      Dimensions: [{ Name: 'InstanceId', Value: HOST_ID }],
      ComparisonOperator: 'GreaterThanThreshold',
      EvaluationPeriods: 5,
      Period: 60,
      Threshold: 80,
    });
    cw.on(DescribeAlarmsCommand).resolves({
      MetricAlarms: [{ AlarmName: 'persona-web-1-cpu.utilization-gt', Threshold: 80 }],
    });
    expect(await executor.revert(ctx, set, prior)).toMatchObject({ status: 'changed' });
    expect(cw.commandCalls(DeleteAlarmsCommand)[0]?.args[0].input).toEqual({
      AlarmNames: ['persona-web-1-cpu.utilization-gt'],
    });
  });

  it('puts back the alarm that was there before', async () => {
    const before = {
      AlarmName: 'persona-web-1-cpu.utilization-gt',
      Namespace: 'AWS/EC2',
      MetricName: 'CPUUtilization',
      Dimensions: [{ Name: 'InstanceId', Value: HOST_ID }],
      Statistic: 'Average' as const,
      Period: 60,
      EvaluationPeriods: 2,
      Threshold: 95,
      ComparisonOperator: 'GreaterThanThreshold' as const,
    };
    cw.on(DescribeAlarmsCommand).resolves({ MetricAlarms: [before] });
    cw.on(PutMetricAlarmCommand).resolves({});
    const executor = alarmExecutor(target);
    const prior = await executor.prepare(ctx, set);
    await executor.apply(ctx, set, prior);
    cw.on(DescribeAlarmsCommand).resolves({
      MetricAlarms: [{ ...before, Threshold: 80, EvaluationPeriods: 5 }],
    });
    await executor.revert(ctx, set, prior);
    expect(cw.commandCalls(PutMetricAlarmCommand).at(-1)?.args[0].input).toMatchObject({
      Threshold: 95,
      EvaluationPeriods: 2,
    });
  });

  it('fails the Change when CloudWatch refuses it, as the orchestrator then rolls back', async () => {
    cw.on(DescribeAlarmsCommand).resolves({ MetricAlarms: [] });
    cw.on(PutMetricAlarmCommand).rejects(
      new CloudWatchServiceException({
        name: 'LimitExceededFault',
        $fault: 'client',
        $metadata: { httpStatusCode: 400 },
        message: 'The maximum number of alarms has been reached.',
      }),
    );
    const executor = alarmExecutor(target);
    await expect(executor.apply(ctx, set, await executor.prepare(ctx, set))).rejects.toThrow(
      /maximum number of alarms/,
    );
  });
});
