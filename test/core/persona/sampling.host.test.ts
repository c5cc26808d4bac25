// Agentless sampling: a real test host read over SSH in one command (levels at once, rates from
// the second round on), only the hosts a persona with metric criteria selects and no agent
// reports for, a host that cannot be reached answered with its reason while the others go on;
// and EC2 instances read from CloudWatch (GetMetricData, its documented response shape).
import { CloudWatchClient, GetMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HostRecord, HostRegistration } from '../../../core/host/schema.js';
import {
  type CounterMemory,
  type Counters,
  cloudWatchReport,
  readCounters,
  reportFrom,
  sampleAgentless,
} from '../../../core/persona/sampling.js';
import { type MetricReport, Persona } from '../../../core/persona/schema.js';
import { createHost, destroyAllHosts, type TestHost } from '../../hosts/harness.js';
import { sshTransportTo } from '../../hosts/transport.js';

let host: TestHost;

beforeAll(async () => {
  host = await createHost({ name: 'sampled' });
}, 300_000);

afterAll(async () => {
  await destroyAllHosts();
}, 60_000);

const persona = (name: string, labels: Record<string, string>, metric: boolean) =>
  Persona.parse({
    apiVersion: 'persona/v1',
    kind: 'Persona',
    metadata: { name },
    spec: {
      hosts: { labels },
      parameters: { sysctl: { 'net.core.somaxconn': '1024' } },
      criteria: metric
        ? { metric: { name: 'cpu.utilization', op: '>', value: 80, forSeconds: 60 } }
        : { schedule: { windows: [{ start: '09:00', end: '17:00' }] } },
    },
  });

const registration = (name: string, tags: Record<string, string>, extra: Partial<HostRegistration> = {}) =>
  ({
    name,
    platform: 'baremetal',
    transport: 'ssh',
    address: '127.0.0.1',
    port: 22,
    user: 'root',
    tags,
    paths: [],
    processes: [],
    ...extra,
  }) as unknown as HostRegistration;

function memory(): CounterMemory & { map: Map<string, Counters> } {
  const map = new Map<string, Counters>();
  return {
    map,
    get: async (h) => map.get(h),
    put: async (h, c) => {
      map.set(h, c);
    },
  };
}

describe('reading a host without an agent', () => {
  it('reads its counters in one command over SSH', async () => {
    const transport = sshTransportTo(host);
    try {
      const counters = await readCounters(transport);
      expect(counters.uptime).toBeGreaterThan(0);
      expect(counters.cpuTotal).toBeGreaterThan(counters.cpuIdle);
      expect(counters.memTotalKb).toBeGreaterThan(counters.memAvailableKb);
      // The host's veth carries the SSH session itself: bytes were received.
      expect(counters.rxBytes).toBeGreaterThan(0);
    } finally {
      await transport.close();
    }
  });

  it('samples the hosts a persona with metric criteria selects, without an agent, with rates from the second round', async () => {
    const records: HostRecord[] = [
      registration('sampled', { role: 'web' }),
      registration('has-agent', { role: 'web' }),
      registration('unselected', { role: 'db' }),
      registration('schedule-only', { role: 'batch' }),
      registration('unreachable', { role: 'web' }),
    ].map((r) => ({ registration: r, createdAt: '', updatedAt: '' }) as HostRecord);
    const stored: MetricReport[] = [];
    const kept = memory();
    const deps = {
      personas: {
        loadAll: async () => [
          { persona: persona('busy', { role: 'web' }, true), version: { version: 1 } },
          { persona: persona('office', { role: 'batch' }, false), version: { version: 1 } },
        ],
      },
      hosts: { list: async () => ({ items: records }) },
      agents: { liveHosts: async () => ['has-agent'] },
      metrics: {
        putMany: async (reports: readonly MetricReport[]) => {
          stored.push(...reports);
        },
      },
      memory: kept,
      transportFor: async (r: HostRegistration) => {
        if (r.name === 'unreachable') throw new Error('connect ECONNREFUSED 10.0.0.9:22');
        return sshTransportTo(host);
      },
    };
    const first = await sampleAgentless(deps, new Date());
    expect(first.map((s) => s.host).sort()).toEqual(['sampled', 'unreachable']);
    expect(first.find((s) => s.host === 'unreachable')?.error).toMatch(/ECONNREFUSED/);
    expect(stored).toHaveLength(1);
    expect(stored[0]?.host).toBe('sampled');
    // One reading: levels only.
    expect(Object.keys(stored[0]?.values ?? {}).sort()).toEqual(['load.average1', 'memory.utilization']);
    await new Promise((r) => setTimeout(r, 1100));
    await sampleAgentless(deps, new Date());
    const second = stored[1]?.values ?? {};
    expect(second['cpu.utilization']).toBeGreaterThanOrEqual(0);
    expect(second['cpu.utilization']).toBeLessThanOrEqual(100);
    expect(second['network.rx.bytes_per_second']).toBeGreaterThan(0);
  });
});

describe('rates between two readings', () => {
  const base: Counters = {
    uptime: 1000,
    cpuTotal: 10_000,
    cpuIdle: 8_000,
    diskBytes: 1_000_000,
    diskOps: 100,
    rxBytes: 5_000,
    txBytes: 7_000,
    memTotalKb: 1_000_000,
    memAvailableKb: 250_000,
    load1: 0.5,
  };

  it('measures rates against the previous reading of the same boot', () => {
    const now = { ...base, uptime: 1010, cpuTotal: 11_000, cpuIdle: 8_250, rxBytes: 15_000, txBytes: 7_000 };
    const report = reportFrom('h', new Date(0), now, base);
    expect(report.values).toMatchObject({
      'cpu.utilization': 75,
      'memory.utilization': 75,
      'network.rx.bytes_per_second': 1000,
      'network.tx.bytes_per_second': 0,
      'load.average1': 0.5,
    });
  });

  it('reports levels only after a reboot, a reading too old, or counters that went back', () => {
    const rebooted = reportFrom('h', new Date(0), { ...base, uptime: 20 }, base);
    expect(rebooted.values['cpu.utilization']).toBeUndefined();
    const old = reportFrom('h', new Date(0), { ...base, uptime: 1000 + 3600, cpuTotal: 20_000 }, base);
    expect(old.values['cpu.utilization']).toBeUndefined();
    const wrapped = reportFrom(
      'h',
      new Date(0),
      { ...base, uptime: 1010, rxBytes: 10, cpuTotal: 11_000 },
      base,
    );
    expect(wrapped.values['network.rx.bytes_per_second']).toBeUndefined();
    expect(wrapped.values['cpu.utilization']).toBeDefined();
  });
});

describe('EC2 instances from CloudWatch', () => {
  it('reads the latest period of every metric in one GetMetricData call, sums as rates', async () => {
    const cw = mockClient(CloudWatchClient);
    const at = new Date('2026-12-01T10:04:00Z');
    cw.on(GetMetricDataCommand).resolves({
      MetricDataResults: [
        { Id: 'cpu', Label: 'CPUUtilization', Timestamps: [at], Values: [62.5], StatusCode: 'Complete' },
        { Id: 'rx', Label: 'NetworkIn', Timestamps: [at], Values: [600_000], StatusCode: 'Complete' },
        { Id: 'tx', Label: 'NetworkOut', Timestamps: [], Values: [], StatusCode: 'Complete' },
        { Id: 'dr', Label: 'EBSReadBytes', Timestamps: [at], Values: [6_000], StatusCode: 'Complete' },
        { Id: 'dw', Label: 'EBSWriteBytes', Timestamps: [at], Values: [54_000], StatusCode: 'Complete' },
      ],
      Messages: [],
    });
    const report = await cloudWatchReport(
      new CloudWatchClient({ region: 'us-east-1' }),
      'web-1',
      'i-0abc',
      new Date('2026-12-01T10:05:30Z'),
    );
    expect(report).toEqual({
      host: 'web-1',
      at: at.toISOString(),
      intervalSeconds: 60,
      values: {
        'cpu.utilization': 62.5,
        'network.rx.bytes_per_second': 10_000,
        'disk.io.bytes_per_second': 1000,
      },
    });
    const input = cw.commandCalls(GetMetricDataCommand)[0]?.args[0].input;
    expect(input?.EndTime).toEqual(new Date('2026-12-01T10:05:00Z'));
    expect(input?.MetricDataQueries?.[0]?.MetricStat?.Metric?.Dimensions).toEqual([
      { Name: 'InstanceId', Value: 'i-0abc' },
    ]);
    // No datapoint at all: no report, so the criteria read the metrics as unknown.
    cw.on(GetMetricDataCommand).resolves({ MetricDataResults: [{ Id: 'cpu', Timestamps: [], Values: [] }] });
    await expect(
      cloudWatchReport(new CloudWatchClient({ region: 'us-east-1' }), 'web-1', 'i-0abc', new Date()),
    ).resolves.toBeUndefined();
    cw.restore();
  });
});
