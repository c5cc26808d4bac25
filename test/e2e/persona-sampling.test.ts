// A host without an agent in the embedded runtime: sampled over its own SSH connection by the
// runtime's sampling timer (the stack's schedule), its metrics evaluated against a persona's
// metric criterion, and switched by the workflow — the reason naming the metric and the value
// sampled — with the persona's sysctl on the host.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { personaSwitchDeps } from '../../functions/shared/persona-switch.js';
import { metricsStore } from '../../functions/shared/runtime.js';
import { createHost, destroyAllHosts, type TestHost } from '../hosts/harness.js';
import { runPersona } from '../support/cli.js';
import { startTestPersona, type TestPersona } from '../support/local.js';

let host: TestHost;
let api: TestPersona;
const NAME = 'e2e-agentless';

beforeAll(async () => {
  [host, api] = await Promise.all([
    createHost({ name: 'e2e-agentless' }),
    startTestPersona({ samplingIntervalMs: 1500 }),
  ]);
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
  // The host key pinned with the registration, as a first connection accepting it does:
  // sampling, like a switch, never accepts a key it was not given.
  const deps = await personaSwitchDeps();
  const first = await deps.transportFor((await deps.hosts.get(NAME)).registration, {
    acceptNewHostKey: true,
  });
  await first.run('true');
  await first.close();
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
      return r.status === 200 && r.body.current === 'sampled-busy' ? r.body : undefined;
    });
    const switched = view.history.items.find((d: { action: string }) => d.action === 'switch');
    expect(switched?.to).toBe('sampled-busy');
    expect(JSON.stringify(switched?.reasons)).toContain('memory.utilization');
    expect(before).not.toBe('3072');
    // The decision is recorded as the switch starts; the host has the persona once it ran.
    await until('the sysctl on the host', async () =>
      (await host.run('sysctl -n net.core.somaxconn')).trim() === '3072' ? true : undefined,
    );
  }, 180_000);
});
