// A persona switch end to end in the embedded runtime: a persona created through the API,
// startPersonaSwitch (what evaluation and activation call) running statemachines/
// persona-switch.asl.json in the local Step Functions against a real test host, the host's
// persona recorded, back to its default, and the failure paths of the definition: a switch the
// kernel refuses ends ROLLED_BACK through Rollback, a size a physical machine cannot take ends
// FAILED through RecordFailure before anything changes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Operation } from '../../core/operation/schema.js';
import type { Decision } from '../../core/persona/schema.js';
import { startPersonaSwitch } from '../../functions/shared/persona-switch.js';
import { hostPersonas } from '../../functions/shared/runtime.js';
import { createHost, destroyAllHosts, type TestHost } from '../hosts/harness.js';
import { ended } from '../support/clone.js';
import { startTestPersona, type TestPersona } from '../support/local.js';
import { captureAndPin } from '../support/managed.js';

let host: TestHost;
let api: TestPersona;
const NAME = 'e2e-switch';

beforeAll(async () => {
  [host, api] = await Promise.all([createHost({ name: 'e2e-switch' }), startTestPersona()]);
  await captureAndPin(api, host, NAME);
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
  summary: to === null ? 'no persona holds' : `${to} holds`,
  reasons: [
    { path: '/metric', holds: 'true', detail: 'cpu.utilization > 80 for 300 s', values: { latest: 93 } },
  ],
});

async function createPersona(name: string, parameters: Record<string, unknown>): Promise<void> {
  const res = await api.call('POST', '/personas', {
    body: {
      apiVersion: 'persona/v1',
      kind: 'Persona',
      metadata: { name },
      spec: { hosts: { names: [NAME] }, parameters },
    },
  });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
}

const sysctl = async (key: string) => (await host.run(`sysctl -n ${key}`)).trim();
const operation = async (id: string): Promise<Operation> => ended(api, id);

describe('persona switch workflow', () => {
  it('switches the host to a persona and back to its default through the state machine', async () => {
    const ttl = await sysctl('net.ipv4.ip_default_ttl');
    await createPersona('busy', {
      sysctl: { 'net.ipv4.ip_default_ttl': '99' },
      bandwidth: [{ interface: 'eth0', egressMbps: 20 }],
    });
    const { operationId } = await startPersonaSwitch({
      host: NAME,
      to: { name: 'busy', version: 1 },
      decision: decision('busy'),
      idempotencyKey: 'busy-1',
    });
    // The same key finds the same operation rather than starting another.
    expect(
      await startPersonaSwitch({
        host: NAME,
        to: { name: 'busy', version: 1 },
        decision: decision('busy'),
        idempotencyKey: 'busy-1',
      }),
    ).toEqual({ operationId });
    const op = await operation(operationId);
    expect(op.status, JSON.stringify(op.error)).toBe('SUCCEEDED');
    expect(op.kind).toBe('activate');
    expect(op.parameters?.decision).toMatchObject({ summary: 'busy holds' });
    expect(op.steps.map((s) => `${s.name}:${s.status}`)).toEqual([
      'validate:SUCCEEDED',
      'baseline:SUCCEEDED',
      'plan:SUCCEEDED',
      'resize:SKIPPED',
      'apply:SUCCEEDED',
      'verify:SUCCEEDED',
      'record:SUCCEEDED',
    ]);
    console.log(
      `switch by step (ms): ${op.steps.map((s) => `${s.name} ${s.startedAt && s.endedAt ? Date.parse(s.endedAt) - Date.parse(s.startedAt) : '-'}`).join(', ')}`,
    );
    expect(await sysctl('net.ipv4.ip_default_ttl')).toBe('99');
    expect(JSON.parse(await host.run('tc -j qdisc show dev eth0 root'))[0]).toMatchObject({ kind: 'tbf' });
    expect(await hostPersonas().get(NAME)).toMatchObject({ current: 'busy', currentVersion: 1 });

    const back = await operation(
      (await startPersonaSwitch({ host: NAME, to: null, decision: decision(null) })).operationId,
    );
    expect(back.status, JSON.stringify(back.error)).toBe('SUCCEEDED');
    expect(await sysctl('net.ipv4.ip_default_ttl')).toBe(ttl);
    expect(JSON.parse(await host.run('tc -j qdisc show dev eth0 root'))[0]).toMatchObject({
      kind: 'noqueue',
    });
    expect(await hostPersonas().get(NAME)).toMatchObject({ current: null });
  }, 300_000);

  it('ends ROLLED_BACK through Rollback when the kernel refuses a value, the host as it was', async () => {
    const before = await sysctl('net.core.somaxconn');
    await createPersona('refused', {
      sysctl: { 'net.core.somaxconn': '3000', 'net.ipv4.ip_default_ttl': '0' },
    });
    // As evaluation does: the decision's state is written before the switch is started.
    const read = await hostPersonas().get(NAME);
    await hostPersonas().save({ host: NAME, current: 'refused', currentVersion: 1, since: Date.now() }, read);
    const { operationId } = await startPersonaSwitch({
      host: NAME,
      to: { name: 'refused', version: 1 },
      decision: decision('refused'),
    });
    const op = await operation(operationId);
    expect(op.status).toBe('ROLLED_BACK');
    expect(op.error).toMatchObject({ step: 'apply' });
    expect(await sysctl('net.core.somaxconn')).toBe(before);
    // The host did not take the persona: its state says what it has (its default).
    expect(await hostPersonas().get(NAME)).toMatchObject({ current: null });
    const doc = await api.call('GET', `/operations/${operationId}/documents/rollback`);
    expect(doc.status).toBe(200);
    expect(doc.body).toMatchObject({ failedStep: 'apply', failures: [] });
  }, 300_000);

  it('ends FAILED at Plan, before anything changes, when a physical machine is asked for another size', async () => {
    const before = await sysctl('net.ipv4.ip_default_ttl');
    await createPersona('bigger', {
      sysctl: { 'net.ipv4.ip_default_ttl': '100' },
      instance: { size: 'm6i.4xlarge' },
    });
    const { operationId } = await startPersonaSwitch({
      host: NAME,
      to: { name: 'bigger', version: 1 },
      decision: decision('bigger'),
    });
    const op = await operation(operationId);
    expect(op.status).toBe('FAILED');
    expect(op.error?.step).toBe('plan');
    expect(op.error?.message).toContain('cannot resize');
    expect(op.steps.find((s) => s.name === 'apply')?.status).toBe('SKIPPED');
    expect(await sysctl('net.ipv4.ip_default_ttl')).toBe(before);
  }, 300_000);
});
