// The evaluate function on the embedded runtime's stores (DynamoDB Local), fed what Scheduler
// and EventBridge really send it: the input a window-edge schedule carries, and CloudWatch's
// "Alarm State Change" events as AWS documents them (single metric, metric math, composite),
// with only the names, dimensions and times changed to this test's.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { WorkflowStarter } from '../../core/operation/workflows.js';
import type { PersonaInput } from '../../core/persona/schema.js';
import { main } from '../../functions/events/persona-evaluate/handler.js';
import { hostPersonas, personas, signalStore } from '../../functions/shared/runtime.js';
import { useWorkflowStarter, workflows } from '../../functions/shared/workflows.js';
import { lambdaContext } from '../../local/http.js';
import { startTestPersona, type TestPersona } from '../support/local.js';

let api: TestPersona;
let real: WorkflowStarter;
const started: string[] = [];

const invoke = (event: unknown) => main(event, lambdaContext('persona-evaluate', 'test'));
const iso = (offsetMs = 0) => new Date(Date.now() + offsetMs).toISOString();
/** CloudWatch writes state timestamps as 2019-10-02T17:04:40.989+0000. */
const cwTime = (offsetMs = 0) => iso(offsetMs).replace('Z', '+0000');

function persona(name: string, hosts: PersonaInput['spec']['hosts'], criteria: unknown): PersonaInput {
  return {
    apiVersion: 'persona/v1',
    kind: 'Persona',
    metadata: { name },
    spec: {
      hosts,
      parameters: { sysctl: { 'vm.swappiness': '10' } },
      criteria: criteria as never,
      hysteresis: { holdSeconds: 0, coolDownSeconds: 0 },
    },
  };
}

/** The single-metric example of CloudWatch's documentation. */
function singleMetricAlarm(alarmName: string, value: string, dimensions: Record<string, string>, at: string) {
  return {
    version: '0',
    id: 'c4c1c1c9-6542-e61b-6ef0-8c4d36933a92',
    'detail-type': 'CloudWatch Alarm State Change',
    source: 'aws.cloudwatch',
    account: '123456789012',
    time: at.replace('+0000', 'Z').replace(/\.\d+Z$/, 'Z'),
    region: 'us-east-1',
    resources: [`arn:aws:cloudwatch:us-east-1:123456789012:alarm:${alarmName}`],
    detail: {
      alarmName,
      configuration: {
        description: 'Goes into alarm when server CPU utilization is too high!',
        metrics: [
          {
            id: '30b6c6b2-a864-43a2-4877-c09a1afc3b87',
            metricStat: {
              metric: { dimensions, name: 'CPUUtilization', namespace: 'AWS/EC2' },
              period: 300,
              stat: 'Average',
            },
            returnData: true,
          },
        ],
      },
      previousState: {
        reason:
          'Threshold Crossed: 1 out of the last 1 datapoints [0.0666851903306472 (01/10/19 13:46:00)] was not greater than the threshold (50.0) (minimum 1 datapoint for ALARM -> OK transition).',
        reasonData:
          '{"version":"1.0","queryDate":"2019-10-01T13:56:40.985+0000","startDate":"2019-10-01T13:46:00.000+0000","statistic":"Average","period":300,"recentDatapoints":[0.0666851903306472],"threshold":50.0}',
        timestamp: '2019-10-01T13:56:40.985+0000',
        value: value === 'OK' ? 'ALARM' : 'OK',
      },
      state: {
        reason:
          'Threshold Crossed: 1 out of the last 1 datapoints [99.50160229693434 (02/10/19 16:59:00)] was greater than the threshold (50.0) (minimum 1 datapoint for OK -> ALARM transition).',
        reasonData:
          '{"version":"1.0","queryDate":"2019-10-02T17:04:40.985+0000","startDate":"2019-10-02T16:59:00.000+0000","statistic":"Average","period":300,"recentDatapoints":[99.50160229693434],"threshold":50.0}',
        timestamp: at,
        value,
      },
    },
  };
}

/** The metric math example: an expression over two metrics of one instance. */
function metricMathAlarm(alarmName: string, at: string) {
  const metric = (id: string, name: string) => ({
    id,
    metricStat: {
      metric: { dimensions: { InstanceId: 'i-12345678901234567' }, name, namespace: 'AWS/EC2' },
      period: 300,
      stat: 'Maximum',
    },
    returnData: false,
  });
  return {
    version: '0',
    id: '2dde0eb1-528b-d2d5-9ca6-6d590caf2329',
    'detail-type': 'CloudWatch Alarm State Change',
    source: 'aws.cloudwatch',
    account: '123456789012',
    time: at.replace('+0000', 'Z').replace(/\.\d+Z$/, 'Z'),
    region: 'us-east-1',
    resources: [`arn:aws:cloudwatch:us-east-1:123456789012:alarm:${alarmName}`],
    detail: {
      alarmName,
      configuration: {
        description: 'Goes into alarm if total network traffic exceeds 10Kb',
        metrics: [
          { expression: 'SUM(METRICS())', id: 'e1', label: 'Total Network Traffic', returnData: true },
          metric('m1', 'NetworkIn'),
          metric('m2', 'NetworkOut'),
        ],
      },
      previousState: {
        reason: 'Unchecked: Initial alarm creation',
        timestamp: '2019-10-02T17:20:03.642+0000',
        value: 'INSUFFICIENT_DATA',
      },
      state: {
        reason:
          'Threshold Crossed: 1 out of the last 1 datapoints [45628.0 (02/10/19 17:10:00)] was greater than the threshold (10000.0) (minimum 1 datapoint for OK -> ALARM transition).',
        reasonData:
          '{"version":"1.0","queryDate":"2019-10-02T17:20:48.551+0000","startDate":"2019-10-02T17:10:00.000+0000","period":300,"recentDatapoints":[45628.0],"threshold":10000.0}',
        timestamp: at,
        value: 'ALARM',
      },
    },
  };
}

/** The composite alarm example: a rule over other alarms, no metrics, so no host dimension. */
function compositeAlarm(alarmName: string, at: string) {
  return {
    version: '0',
    id: 'd3dfc86d-384d-24c8-0345-9f7986db0b80',
    'detail-type': 'CloudWatch Alarm State Change',
    source: 'aws.cloudwatch',
    account: '123456789012',
    time: at.replace('+0000', 'Z').replace(/\.\d+Z$/, 'Z'),
    region: 'us-east-1',
    resources: [`arn:aws:cloudwatch:us-east-1:123456789012:alarm:${alarmName}`],
    detail: {
      alarmName,
      state: {
        value: 'ALARM',
        reason:
          'arn:aws:cloudwatch:us-east-1:123456789012:alarm:ServerCpuTooHigh transitioned to ALARM at Friday 04 December, 2020 19:54:20 UTC',
        reasonData:
          '{"triggeringAlarms":[{"arn":"arn:aws:cloudwatch:us-east-1:123456789012:alarm:ServerCpuTooHigh","state":{"value":"ALARM","timestamp":"2020-12-04T19:54:20.360+0000"}}]}',
        timestamp: at,
      },
      previousState: {
        value: 'ALARM',
        reason:
          'arn:aws:cloudwatch:us-east-1:123456789012:alarm:ServerCpuTooHigh transitioned to ALARM at Friday 04 December, 2020 19:54:20 UTC',
        timestamp: '2020-12-04T19:54:20.362+0000',
        actionsSuppressedBy: 'WaitPeriod',
        actionsSuppressedReason: 'Actions suppressed by WaitPeriod',
      },
      configuration: {
        alarmRule: 'ALARM(ServerCpuTooHigh) OR ALARM(TotalNetworkTrafficTooHigh)',
        actionsSuppressor: 'ServiceMaintenanceAlarm',
        actionsSuppressorWaitPeriod: 120,
        actionsSuppressorExtensionPeriod: 180,
      },
    },
  };
}

async function register(name: string) {
  const res = await api.call('POST', '/hosts', {
    body: {
      name,
      platform: 'baremetal',
      transport: 'ssh',
      address: '127.0.0.1',
      credentialRef: { provider: 'aws-secretsmanager', secretId: `persona/ssh/${name}` },
      tags: { role: 'app' },
    },
  });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
}

beforeAll(async () => {
  api = await startTestPersona();
  real = workflows();
  useWorkflowStarter({
    async start(_workflow, input) {
      started.push(input.operationId);
    },
  });
  for (const host of ['app-1', 'app-2', 'app-3', 'edge-1']) await register(host);
  await personas().create(
    persona(
      'all-day',
      { names: ['edge-1'] },
      { schedule: { windows: [{ start: '00:00', end: '24:00' }] } },
    ) as never,
  );
  await personas().create(
    persona(
      'cpu-alarm',
      { names: ['app-1', 'app-3'] },
      { signal: { name: 'alarm/cpu-high', op: '==', value: 'ALARM' } },
    ) as never,
  );
  await personas().create(
    persona(
      'net-alarm',
      { names: ['app-2'] },
      { signal: { name: 'alarm/net', op: '==', value: 'ALARM' } },
    ) as never,
  );
}, 180_000);

afterAll(async () => {
  if (real) useWorkflowStarter(real);
  await api?.stop();
});

beforeEach(() => {
  started.length = 0;
});

describe('the persona evaluate function', () => {
  it('evaluates the hosts of the persona a window-edge schedule names', async () => {
    // What Scheduler sends, its context attribute filled in.
    const result = await invoke({
      persona: 'all-day',
      reason: 'window-edge',
      scheduledTime: '2026-12-01T00:00:00Z',
    });
    expect(result).toMatchObject({ trigger: 'window-edge', evaluated: 1 });
    expect(result.hosts[0]).toMatchObject({ host: 'edge-1', action: 'switch', to: 'all-day' });
    expect(started).toHaveLength(1);
    expect(await hostPersonas().get('edge-1')).toMatchObject({ current: 'all-day' });
    // A persona deleted since its schedule was made: nothing to evaluate, no failure.
    expect(await invoke({ persona: 'gone', reason: 'window-edge' })).toMatchObject({ evaluated: 0 });
  });

  it('turns an ALARM of an alarm with a PersonaHost dimension into that host’s signal and switches it; OK reverts it', async () => {
    const alarm = singleMetricAlarm(
      'Persona/cpu-high',
      'ALARM',
      { InstanceId: 'i-12345678901234567', PersonaHost: 'app-1' },
      cwTime(-2000),
    );
    const first = await invoke(alarm);
    expect(first).toMatchObject({ trigger: 'alarm', detail: 'alarm/cpu-high ALARM', evaluated: 1 });
    expect(first.hosts[0]).toMatchObject({
      host: 'app-1',
      action: 'switch',
      to: 'cpu-alarm',
      operationId: expect.any(String),
    });
    // The signal is the host's own: app-3, under the same persona, is not in alarm.
    const forApp3 = await signalStore().forHost(
      { name: 'app-3', labels: {} },
      ['alarm/cpu-high'],
      Date.now(),
    );
    expect(forApp3.size).toBe(0);

    // EventBridge retried an older state change after the newer one: it changes nothing.
    const stale = await invoke(
      singleMetricAlarm('Persona/cpu-high', 'OK', { PersonaHost: 'app-1' }, cwTime(-60_000)),
    );
    expect(stale.hosts[0]).toMatchObject({ host: 'app-1', action: 'stay', to: 'cpu-alarm' });

    const ok = await invoke(
      singleMetricAlarm('Persona/cpu-high', 'OK', { PersonaHost: 'app-1' }, cwTime(-1000)),
    );
    expect(ok.hosts[0]).toMatchObject({ host: 'app-1', action: 'revert', from: 'cpu-alarm', to: null });
    expect(started).toHaveLength(2);
  });

  it('reads the host from the alarm’s name when its metrics have no PersonaHost (a metric math alarm)', async () => {
    const result = await invoke(metricMathAlarm('Persona/net/app-2', cwTime(-1000)));
    expect(result.hosts.map((h: { host: string; action?: string }) => [h.host, h.action])).toEqual([
      ['app-2', 'switch'],
    ]);
  });

  it('forgets the host’s signal on INSUFFICIENT_DATA: unknown, so the host keeps its persona', async () => {
    await invoke(singleMetricAlarm('Persona/cpu-high', 'ALARM', { PersonaHost: 'app-3' }, cwTime(-3000)));
    expect(await hostPersonas().get('app-3')).toMatchObject({ current: 'cpu-alarm' });
    const result = await invoke(
      singleMetricAlarm('Persona/cpu-high', 'INSUFFICIENT_DATA', { PersonaHost: 'app-3' }, cwTime(-1000)),
    );
    expect(result.detail).toBe('alarm/cpu-high INSUFFICIENT_DATA');
    expect(result.hosts[0]).toMatchObject({ host: 'app-3', action: 'stay', to: 'cpu-alarm' });
    const left = await signalStore().forHost({ name: 'app-3', labels: {} }, ['alarm/cpu-high'], Date.now());
    expect(left.size).toBe(0);
  });

  it('ignores, and says why, an alarm that names no host, one outside the convention, and input of no known shape', async () => {
    const composite = await invoke(compositeAlarm('Persona/fleet', cwTime()));
    expect(composite).toMatchObject({ trigger: 'ignored', evaluated: 0 });
    expect(composite.detail).toContain('PersonaHost');
    const misnamed = await invoke(singleMetricAlarm('Persona/a/b/c', 'ALARM', {}, cwTime()));
    expect(misnamed).toMatchObject({ trigger: 'ignored' });
    expect(misnamed.detail).toContain('Persona/<key>');
    // A dimension value that is no host name is not taken for one.
    const hostile = await invoke(
      singleMetricAlarm('Persona/cpu-high', 'ALARM', { PersonaHost: 'app-1; reboot' }, cwTime()),
    );
    expect(hostile).toMatchObject({ trigger: 'ignored', evaluated: 0 });
    expect(await invoke({ persona: 'x', reason: 'reboot' })).toMatchObject({
      trigger: 'ignored',
      evaluated: 0,
    });
    expect(await invoke('not an object')).toMatchObject({ trigger: 'ignored' });
    expect(started).toEqual([]);
  });
});
