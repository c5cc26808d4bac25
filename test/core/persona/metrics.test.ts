// The metric store on DynamoDB Local: one item per report with a time to live, read back per
// name as typed arrays, oldest first, across pages, without what has expired.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_METRIC_RETENTION_DAYS, MetricStore } from '../../../core/persona/metrics.js';
import { METRICS_TABLE } from '../../../core/storage/definitions.js';
import { LOCAL_CREDENTIALS, LOCAL_REGION, type StandIns, startStandIns } from '../../../local/stand-ins.js';

let dir: string;
let standIns: StandIns;
let ddb: DynamoDBDocumentClient;
const T0 = Date.parse('2026-12-01T12:00:00Z');
let clock = T0;
let store: MetricStore;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'persona-metrics-'));
  standIns = await startStandIns({
    dataDir: join(dir, 'data'),
    tables: [{ definition: METRICS_TABLE, name: 'metrics' }],
    buckets: [],
  });
  ddb = DynamoDBDocumentClient.from(
    new DynamoDBClient({
      endpoint: standIns.dynamoEndpoint,
      region: LOCAL_REGION,
      credentials: LOCAL_CREDENTIALS,
    }),
  );
  store = new MetricStore(ddb, 'metrics', () => clock);
}, 120_000);

afterAll(async () => {
  ddb?.destroy();
  await standIns?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const iso = (ms: number) => new Date(ms).toISOString();

describe('MetricStore', () => {
  it('stores a report with a time to live of 15 days by default, enough for 14 days of forecasting', async () => {
    await store.put({ host: 'ttl', at: iso(T0), values: { 'cpu.utilization': 12 } });
    const { Item } = await ddb.send(new GetCommand({ TableName: 'metrics', Key: { host: 'ttl', at: T0 } }));
    expect(DEFAULT_METRIC_RETENTION_DAYS).toBe(15);
    expect(Item?.expiresAt).toBe(T0 / 1000 + 15 * 86400);
    await store.put({ host: 'ttl', at: iso(T0 + 1), values: { 'cpu.utilization': 1 } }, { retentionDays: 1 });
    const short = await ddb.send(new GetCommand({ TableName: 'metrics', Key: { host: 'ttl', at: T0 + 1 } }));
    expect(short.Item?.expiresAt).toBe(Math.floor((T0 + 1 + 86400_000) / 1000));
  });

  it('answers each name as typed arrays, oldest first, from the time asked, and only the names asked', async () => {
    // Written out of order: the sort key orders them.
    for (const i of [3, 1, 0, 2]) {
      await store.put({
        host: 'web',
        at: iso(T0 + i * 60_000),
        values: {
          'cpu.utilization': 10 * i,
          'memory.utilization': 50,
          ...(i % 2 ? { 'load.average1': i } : {}),
        },
      });
    }
    await store.put({ host: 'other', at: iso(T0), values: { 'cpu.utilization': 99 } });
    const series = await store.series(
      'web',
      ['cpu.utilization', 'load.average1', 'disk.io.bytes_per_second'],
      T0 + 60_000,
    );
    expect([...series.keys()].sort()).toEqual(['cpu.utilization', 'load.average1']);
    const cpu = series.get('cpu.utilization');
    expect(cpu?.times).toBeInstanceOf(Float64Array);
    expect(Array.from(cpu?.times ?? [])).toEqual([T0 + 60_000, T0 + 120_000, T0 + 180_000]);
    expect(Array.from(cpu?.values ?? [])).toEqual([10, 20, 30]);
    expect(Array.from(series.get('load.average1')?.values ?? [])).toEqual([1, 3]);
  });

  it('answers the interval the latest report gave, so that one fresh sample does not cover a duration', async () => {
    await store.put({ host: 'agent', at: iso(T0), intervalSeconds: 60, values: { 'custom.queue_depth': 1 } });
    await store.put({
      host: 'agent',
      at: iso(T0 + 5_000),
      intervalSeconds: 5,
      values: { 'custom.queue_depth': 150, 'cpu.utilization': 3 },
    });
    const series = await store.series('agent', ['custom.queue_depth', 'cpu.utilization'], T0);
    expect(series.get('custom.queue_depth')?.intervalSeconds).toBe(5);
    expect(series.get('cpu.utilization')?.intervalSeconds).toBe(5);
    // A report that says no interval leaves evaluation to the samples' gaps.
    await store.put({ host: 'agent', at: iso(T0 + 10_000), values: { 'custom.queue_depth': 150 } });
    const later = await store.series('agent', ['custom.queue_depth'], T0);
    expect(later.get('custom.queue_depth')).not.toHaveProperty('intervalSeconds');
  });

  it('reads every page of a long history', async () => {
    // About 12 KB a report: 120 of them are over the 1 MB a Query page holds.
    const padding = Object.fromEntries(Array.from({ length: 400 }, (_, j) => [`custom.padding_${j}`, j]));
    const reports = Array.from({ length: 120 }, (_, i) => ({
      host: 'busy',
      at: iso(T0 + i * 1000),
      values: { 'cpu.utilization': i, ...padding },
    }));
    await store.putMany(reports);
    const series = await store.series('busy', ['cpu.utilization'], 0);
    const values = series.get('cpu.utilization')?.values ?? [];
    expect(values.length).toBe(120);
    expect(values[0]).toBe(0);
    expect(values[119]).toBe(119);
  }, 60_000);

  it('skips reports whose time to live has passed, before DynamoDB deletes them', async () => {
    await store.put({ host: 'old', at: iso(T0), values: { 'cpu.utilization': 1 } }, { retentionDays: 1 });
    await store.put({ host: 'old', at: iso(T0 + 1000), values: { 'cpu.utilization': 2 } });
    clock = T0 + 2 * 86400_000;
    try {
      const series = await store.series('old', ['cpu.utilization'], 0);
      expect(Array.from(series.get('cpu.utilization')?.values ?? [])).toEqual([2]);
    } finally {
      clock = T0;
    }
  });
});
