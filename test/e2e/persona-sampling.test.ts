// A host without an agent in the embedded runtime: sampled over its own SSH connection by the
// runtime's sampling timer (the stack's schedule), its metrics evaluated against a persona's
// metric criterion, and switched by the workflow — the reason naming the metric and the value
// sampled — with the persona's sysctl on the host; then an operator's change to that sysctl,
// found by the next round and undone (the persona's override: enforced) by a switch to the same
// persona, recorded as a restore.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metricsStore } from '../../functions/shared/runtime.js';
import { createHost, destroyAllHosts, type TestHost } from '../hosts/harness.js';
import { startTestPersona, type TestPersona } from '../support/local.js';
import { captureAndPin } from '../support/managed.js';

let host: TestHost;
let api: TestPersona;
const NAME = 'e2e-agentless';

beforeAll(async () => {
  [host, api] = await Promise.all([
    createHost({ name: 'e2e-agentless' }),
    startTestPersona({ samplingIntervalMs: 1500 }),
  ]);
  await captureAndPin(api, host, NAME);
}, 600_000);

afterAll(async () => {
  await api?.stop();
  await destroyAllHosts();
}, 120_000);

async function until<T>(what: string, read: () => Promise<T | undefined>, ms = 90_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await read();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

describe('a host without an agent', () => {
  it('is sampled over its transport, and switched when the sampled metric meets the criterion', async () => {
    const before = (await host.run('sysctl -n net.core.somaxconn')).trim();
    const res = await api.call('POST', '/personas', {
      body: {
        apiVersion: 'persona/v1',
        kind: 'Persona',
        metadata: { name: 'sampled-busy' },
        spec: {
          hosts: { names: [NAME] },
          parameters: { sysctl: { 'net.core.somaxconn': '3072' } },
          // Any host uses some memory: the criterion holds from the first sample.
          criteria: { metric: { name: 'memory.utilization', op: '>', value: 0 } },
          hysteresis: { holdSeconds: 0, coolDownSeconds: 0 },
          override: 'enforced',
        },
      },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);

    const series = await until('a sampled metric', async () => {
      const s = await metricsStore().series(
        NAME,
        ['memory.utilization', 'load.average1'],
        Date.now() - 600_000,
      );
      return s.get('memory.utilization');
    });
    expect(series.values[0]).toBeGreaterThan(0);

    const view = await until('the persona applied', async () => {
      const r = await api.call('GET', `/hosts/${NAME}/persona`);
      // The state is written before the decision is recorded: both, to read the reason.
      const switched = r.body.history?.items.some((d: { action: string }) => d.action === 'switch');
      return r.status === 200 && r.body.current === 'sampled-busy' && switched ? r.body : undefined;
    });
    const switched = view.history.items.find((d: { action: string }) => d.action === 'switch');
    expect(switched?.to).toBe('sampled-busy');
    expect(JSON.stringify(switched?.reasons)).toContain('memory.utilization');
    expect(before).not.toBe('3072');
    // The decision is recorded as the switch starts; the host has the persona once it ran.
    await until('the sysctl on the host', async () =>
      (await host.run('sysctl -n net.core.somaxconn')).trim() === '3072' ? true : undefined,
    );
    // The switch stands once its Verify and Record are done: a change before then is its own
    // read-back failing, not an operator's change to what it applied.
    await until('the switch ended', async () => {
      const ops = await api.call('GET', '/operations?kind=activate&limit=20');
      const op = ops.body.items[0];
      return op?.status === 'SUCCEEDED' ? true : undefined;
    });
  }, 180_000);

  it("undoes an operator's change to the persona's sysctl (override: enforced), and records why", async () => {
    await host.run('sysctl -w net.core.somaxconn=999 >/dev/null');
    const view = await until('the restore recorded', async () => {
      const r = await api.call('GET', `/hosts/${NAME}/persona`);
      return r.status === 200 && r.body.history.items.some((d: { action: string }) => d.action === 'restore')
        ? r.body
        : undefined;
    });
    const restore = view.history.items.find((d: { action: string }) => d.action === 'restore');
    expect(restore).toMatchObject({ from: 'sampled-busy', to: 'sampled-busy', mode: 'act' });
    expect(restore.summary).toMatch(
      /undone \(override: enforced\): sysctl net.core.somaxconn reads 999, the persona sets 3072/,
    );
    await until('the sysctl restored on the host', async () =>
      (await host.run('sysctl -n net.core.somaxconn')).trim() === '3072' ? true : undefined,
    );
    // The host keeps its persona; the restore was one operation, and it succeeded.
    expect(view.current).toBe('sampled-busy');
    expect(view.applied).toEqual({ persona: 'sampled-busy', version: 1 });
    expect(view.switching).toBeUndefined();
    const ops = await api.call('GET', '/operations?kind=activate&limit=20');
    const restores = ops.body.items.filter(
      (o: { parameters?: { decision?: { action?: string } } }) =>
        o.parameters?.decision?.action === 'restore',
    );
    expect(restores).toHaveLength(1);
    await until('the restore operation ended', async () => {
      const op = await api.call('GET', `/operations/${restores[0].id}`);
      return op.body.status === 'SUCCEEDED' ? true : undefined;
    });
  }, 180_000);
});
