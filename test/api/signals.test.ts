// POST /signals end to end on the embedded runtime: the real handler, DynamoDB Local, the real
// evaluation and the real start of a switch. The workflow starter is replaced, so no switch
// runs and no host is contacted; the switch operations it records are read back.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { WorkflowStarter } from '../../core/operation/workflows.js';
import type { PersonaInput } from '../../core/persona/schema.js';
import { hostPersonas, personas, signalStore } from '../../functions/shared/runtime.js';
import { useWorkflowStarter, workflows } from '../../functions/shared/workflows.js';
import { startTestPersona, type TestPersona } from '../support/local.js';

let api: TestPersona;
let real: WorkflowStarter;
const started: { workflow: string; operationId: string }[] = [];

function freezePersona(name: string, signal: string, hosts: PersonaInput['spec']['hosts']): PersonaInput {
  return {
    apiVersion: 'persona/v1',
    kind: 'Persona',
    metadata: { name },
    spec: {
      hosts,
      priority: 10,
      parameters: { sysctl: { 'vm.swappiness': '10' } },
      criteria: { signal: { name: signal, op: '==', value: true } },
      hysteresis: { holdSeconds: 0, coolDownSeconds: 0 },
    },
  };
}

async function register(name: string, tags: Record<string, string>) {
  const res = await api.call('POST', '/hosts', {
    body: {
      name,
      platform: 'baremetal',
      transport: 'ssh',
      address: '127.0.0.1',
      credentialRef: { provider: 'aws-secretsmanager', secretId: `persona/ssh/${name}` },
      tags,
    },
  });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
}

beforeAll(async () => {
  api = await startTestPersona();
  real = workflows();
  useWorkflowStarter({
    async start(workflow, input) {
      started.push({ workflow, operationId: input.operationId });
    },
  });
  await register('shop-1', { role: 'shop' });
  await register('shop-2', { role: 'shop' });
  await register('batch-1', { role: 'batch' });
  await personas().create(
    freezePersona('deploy-freeze', 'deploy.freeze', { labels: { role: 'shop' } }) as never,
  );
  await personas().create(freezePersona('batch-hold', 'batch.hold', { names: ['batch-1'] }) as never);
}, 180_000);

afterAll(async () => {
  if (real) useWorkflowStarter(real);
  await api?.stop();
});

beforeEach(() => {
  started.length = 0;
});

describe('POST /signals', () => {
  it('stores the signal, evaluates the hosts whose personas name it, and starts their switches (202)', async () => {
    const res = await api.call('POST', '/signals', { body: { name: 'deploy.freeze', value: true } });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    expect(res.body).toMatchObject({ signal: 'deploy.freeze', evaluated: 2 });
    expect(res.body.hosts.map((h: { host: string }) => h.host)).toEqual(['shop-1', 'shop-2']);
    for (const h of res.body.hosts) {
      expect(h).toMatchObject({
        outcome: 'decided',
        action: 'switch',
        from: null,
        to: 'deploy-freeze',
        recorded: true,
        operationId: expect.any(String),
      });
      expect(h.summary).toContain('deploy-freeze');
    }
    // The switch operations were recorded and their workflow asked to start.
    expect(started.map((s) => s.workflow)).toEqual(['persona-switch', 'persona-switch']);
    const operation = await api.call('GET', `/operations/${res.body.hosts[0].operationId}`);
    expect(operation.body).toMatchObject({ kind: 'activate', host: 'shop-1' });
    // Host state and history say why.
    expect(await hostPersonas().get('shop-1')).toMatchObject({ current: 'deploy-freeze' });
    const latest = await hostPersonas().latest('shop-1');
    expect(latest?.reasons.some((r) => r.detail.includes('deploy.freeze'))).toBe(true);
    // batch-1 carries no persona naming the signal: not evaluated.
    expect(await hostPersonas().get('batch-1')).toBeUndefined();
  });

  it('evaluates only the hosts the signal’s own selector takes in', async () => {
    const res = await api.call('POST', '/signals', {
      body: { name: 'batch.hold', value: true, hosts: { names: ['batch-1', 'shop-1'] }, ttlSeconds: 600 },
    });
    expect(res.status).toBe(202);
    expect(res.body.evaluated).toBe(1);
    expect(res.body.hosts[0]).toMatchObject({ host: 'batch-1', action: 'switch', to: 'batch-hold' });
    // Expiry is kept in whole seconds (DynamoDB's time to live), rounded up.
    const ttl = Date.parse(res.body.expiresAt) - Date.parse(res.body.at);
    expect(ttl).toBeGreaterThanOrEqual(600_000);
    expect(ttl).toBeLessThan(601_000);
    // Stored with its selector: a host outside it reads it as never posted.
    const forShop = await signalStore().forHost(
      { name: 'shop-2', labels: { role: 'shop' } },
      ['batch.hold'],
      Date.now(),
    );
    expect(forShop.size).toBe(0);
  });

  it('reverts the hosts when the signal changes back, and says so', async () => {
    const res = await api.call('POST', '/signals', { body: { name: 'deploy.freeze', value: false } });
    expect(res.status).toBe(202);
    expect(res.body.hosts.map((h: { action: string; to: string | null }) => [h.action, h.to])).toEqual([
      ['revert', null],
      ['revert', null],
    ]);
    expect(started).toHaveLength(2);
  });

  it('answers a signal no persona names with no evaluation', async () => {
    const res = await api.call('POST', '/signals', { body: { name: 'lb/forecast', value: 1200 } });
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ signal: 'lb/forecast', evaluated: 0, hosts: [] });
  });

  it('refuses a malformed signal naming each bad field, and stores nothing (400)', async () => {
    const res = await api.call('POST', '/signals', {
      body: { name: 'has spaces', value: { nested: true }, ttlSeconds: -1, extra: 1 },
    });
    expect(res.status).toBe(400);
    expect(res.body.issues.map((i: { path: string }) => i.path).sort()).toEqual(
      ['extra', 'name', 'ttlSeconds', 'value'].sort(),
    );
    const missing = await api.call('POST', '/signals', {
      raw: '',
      headers: { 'content-type': 'application/json' },
    });
    expect(missing.status).toBe(400);
    const text = await api.call('POST', '/signals', {
      raw: 'name=x',
      headers: { 'content-type': 'text/plain' },
    });
    expect(text.status).toBe(415);
  });

  it('is described in the OpenAPI document with its body and answer', async () => {
    const doc = await api.call('GET', '/openapi.json');
    const op = doc.body.paths['/signals'].post;
    expect(op.requestBody.content['application/json'].schema).toEqual({
      $ref: '#/components/schemas/Signal',
    });
    expect(op.responses['202'].content['application/json'].schema).toEqual({
      $ref: '#/components/schemas/SignalAccepted',
    });
    expect(doc.body.components.schemas.Signal.properties).toHaveProperty('ttlSeconds');
  });
});
