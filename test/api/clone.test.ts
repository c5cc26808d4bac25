// The clone routes through the embedded runtime, with no host to reach: requests checked and
// refused naming the field, the workflow's own failure paths (a request Validate refuses, a
// pool with no free machine) ending the operation as they should and announcing it, operations
// listed and cancelled, pools of registered hosts.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Operation } from '../../core/operation/schema.js';
import { eventsWith, startTestPersona, type TestPersona } from '../support/local.js';

let api: TestPersona;

beforeAll(async () => {
  api = await startTestPersona();
  const example = readFileSync(new URL('../../examples/web.yaml', import.meta.url), 'utf8');
  const created = await api.call('POST', '/profiles', {
    raw: example,
    headers: { 'content-type': 'application/yaml' },
  });
  expect(created.status).toBe(201);
  for (const name of ['target-a', 'ssm-b', 'web']) {
    const registered = await api.call('POST', '/hosts', {
      body:
        name === 'ssm-b'
          ? {
              name,
              platform: 'aws',
              transport: 'ssm',
              instanceId: 'i-0123456789abcdef0',
              region: 'eu-west-1',
            }
          : {
              name,
              platform: 'baremetal',
              transport: 'ssh',
              address: '10.213.255.2',
              credentialRef: { provider: 'aws-secretsmanager', secretId: 'persona/ssh/target-a' },
            },
    });
    expect(registered.status).toBe(201);
  }
});

afterAll(async () => {
  await api?.stop();
});

async function ended(id: string): Promise<Operation> {
  for (let i = 0; i < 240; i++) {
    const op = (await api.call('GET', `/operations/${id}`)).body as Operation;
    if (op.status !== 'PENDING' && op.status !== 'RUNNING') return op;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`operation ${id} did not end`);
}

describe('POST /operations/clone', () => {
  it('refuses a body that is not a clone request, naming each field', async () => {
    const res = await api.call('POST', '/operations/clone', {
      body: { profile: { name: '../web' }, target: { kind: 'moon' }, extra: 1 },
    });
    expect(res.status).toBe(400);
    const paths = res.body.issues.map((i: { path: string }) => i.path);
    expect(paths).toEqual(expect.arrayContaining(['profile.name', 'target.kind']));
    expect(res.body.issues.some((i: { message: string }) => /unknown|unrecognized/i.test(i.message))).toBe(
      true,
    );
  });

  it('refuses an empty body and a body no JSON parser reads', async () => {
    expect((await api.call('POST', '/operations/clone')).status).toBe(400);
    const bad = await api.call('POST', '/operations/clone', {
      raw: '{"profile": ',
      headers: { 'content-type': 'application/json' },
    });
    expect(bad.status).toBe(400);
  });

  it('refuses a saved plan that reproduces another profile than the one named', async () => {
    const res = await api.call('POST', '/operations/clone', {
      body: {
        profile: { name: 'web' },
        target: { kind: 'host', host: 'target-a' },
        mode: 'plan',
        plan: { apiVersion: 'persona/v1' },
      },
    });
    expect(res.status).toBe(400);
    expect(res.body.issues.map((i: { path: string }) => i.path).join(' ')).toMatch(/plan/);
  });

  it('ends FAILED at validate, and announces it, when the profile does not exist', async () => {
    const res = await api.call('POST', '/operations/clone', {
      body: { profile: { name: 'nobody' }, target: { kind: 'host', host: 'target-a' } },
    });
    expect(res.status).toBe(202);
    expect(res.headers.get('location')).toBe(`/operations/${res.body.id}`);
    const op = await ended(res.body.id);
    expect(op.status).toBe('FAILED');
    expect(op.error).toMatchObject({ step: 'validate' });
    expect(op.error?.message).toMatch(/profile nobody does not exist/);
    expect(op.steps.find((s) => s.name === 'validate')?.status).toBe('FAILED');
    expect(op.steps.filter((s) => s.status === 'SKIPPED').map((s) => s.name)).toContain('apply');
    expect(await eventsWith(api, 'Clone Failed')).toContain('"Clone Failed"');
  });

  it('ends FAILED at validate for a cloud target this deployment has no adaptor for', async () => {
    const res = await api.call('POST', '/operations/clone', {
      body: {
        profile: { name: 'web' },
        target: { kind: 'aws', subnet: 'subnet-0123456789abcdef0', instanceProfile: 'persona-ssm' },
      },
    });
    const op = await ended(res.body.id);
    expect(op.status).toBe('FAILED');
    expect(op.error?.message).toMatch(/no AWS EC2 adaptor/);
  });

  it('refuses a cloud target whose placement is not one, naming the field, before recording anything', async () => {
    const res = await api.call('POST', '/operations/clone', {
      body: {
        profile: { name: 'web' },
        target: { kind: 'aws', subnet: '--subnet; rm -rf /', instanceProfile: 'persona-ssm' },
      },
    });
    expect(res.status).toBe(400);
    expect(JSON.stringify(res.body)).toContain('target.subnet');
    const azure = await api.call('POST', '/operations/clone', {
      body: {
        profile: { name: 'web' },
        target: { kind: 'azure', resourceGroup: 'rg', location: 'westeurope' },
      },
    });
    expect(azure.status).toBe(400);
    expect(JSON.stringify(azure.body)).toContain('target.subnet');
  });

  it('refuses to clone a host onto itself, named or taken from a pool', async () => {
    const res = await api.call('POST', '/operations/clone', {
      body: { profile: { name: 'web' }, target: { kind: 'host', host: 'web' } },
    });
    const op = await ended(res.body.id);
    expect(op.status).toBe('FAILED');
    expect(op.error?.message).toMatch(/onto itself/);
    expect((await api.call('POST', '/pools/self/machines', { body: { host: 'web' } })).status).toBe(201);
    const pooled = await api.call('POST', '/operations/clone', {
      body: { profile: { name: 'web' }, target: { kind: 'pool', pool: 'self' } },
    });
    const ended2 = await ended(pooled.body.id);
    expect(ended2.status).toBe('ROLLED_BACK');
    expect(ended2.error?.message).toMatch(/onto itself/);
    const pool = await api.call('GET', '/pools/self/machines');
    expect(pool.body.items).toEqual([expect.objectContaining({ machine: 'web', state: 'free' })]);
  });

  it('rolls back (nothing to undo) when the pool has no free machine', async () => {
    const res = await api.call('POST', '/operations/clone', {
      body: { profile: { name: 'web' }, target: { kind: 'pool', pool: 'empty' } },
    });
    const op = await ended(res.body.id);
    expect(op.status).toBe('ROLLED_BACK');
    expect(op.error?.step).toBe('provision');
    const rollback = await api.call('GET', `/operations/${op.id}/documents/rollback`);
    expect(rollback.body).toMatchObject({ failedStep: 'provision', reverted: 0, verified: 'not-needed' });
    expect(await eventsWith(api, 'Clone Rolled Back')).toContain('"Clone Rolled Back"');
  });

  it('finds the operation a retried request started, and refuses the key with another body', async () => {
    const body = { profile: { name: 'nobody' }, target: { kind: 'host', host: 'target-a' } };
    const headers = { 'idempotency-key': 'clone-retry-0001' };
    const first = await api.call('POST', '/operations/clone', { body, headers });
    const again = await api.call('POST', '/operations/clone', { body, headers });
    expect(again.body.id).toBe(first.body.id);
    const other = await api.call('POST', '/operations/clone', {
      body: { ...body, mode: 'plan' },
      headers,
    });
    expect(other.status).toBe(422);
    expect(other.body).toMatchObject({ code: 'IDEMPOTENCY_KEY_REUSED' });
    expect(other.body.issues[0].path).toBe('headers.idempotency-key');
    await ended(first.body.id);
  });
});

describe('GET /operations, cancel and documents', () => {
  it('lists operations newest first, filtered, a page at a time, and refuses a forged cursor', async () => {
    const all = await api.call('GET', '/operations?kind=clone&limit=2');
    expect(all.status).toBe(200);
    expect(all.body.items.length).toBeGreaterThan(0);
    expect(all.body.items.every((o: Operation) => o.kind === 'clone')).toBe(true);
    const created = all.body.items.map((o: Operation) => o.createdAt);
    expect([...created].sort().reverse()).toEqual(created);
    expect(all.body.items[0]).not.toHaveProperty('listing');
    const failed = await api.call('GET', '/operations?status=FAILED&limit=50');
    expect(failed.body.items.every((o: Operation) => o.status === 'FAILED')).toBe(true);
    const forged = Buffer.from(JSON.stringify({ l: 'profiles', k: { name: 'x' } })).toString('base64url');
    const res = await api.call('GET', `/operations?cursor=${forged}`);
    expect(res.status).toBe(400);
    expect(res.body.issues[0].path).toBe('cursor');
    expect((await api.call('GET', '/operations?status=DONE')).status).toBe(400);
  });

  it('answers a cancel of an ended operation with it as it ended, and of an unknown one with 404', async () => {
    const list = await api.call('GET', '/operations?kind=clone&status=FAILED&limit=1');
    const id = list.body.items[0].id;
    const res = await api.call('POST', `/operations/${id}/cancel`);
    expect(res.status).toBe(200);
    expect(res.body.status).toBe('FAILED');
    const unknown = await api.call('POST', '/operations/00000000-0000-4000-8000-000000000000/cancel');
    expect(unknown.status).toBe(404);
  });

  it('serves only the documents it names, and 404 for one not written', async () => {
    const list = await api.call('GET', '/operations?kind=clone&status=FAILED&limit=1');
    const id = list.body.items[0].id;
    expect((await api.call('GET', `/operations/${id}/documents/plan`)).status).toBe(404);
    expect((await api.call('GET', `/operations/${id}/documents/request`)).status).toBe(400);
    expect((await api.call('GET', `/operations/${id}/documents/..%2F..%2Fprofiles`)).status).toBe(400);
  });
});

describe('pools', () => {
  it('adds a registered SSH host to a pool once, and lists it free', async () => {
    const res = await api.call('POST', '/pools/lab/machines', { body: { host: 'target-a' } });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ pool: 'lab', machine: 'target-a', host: 'target-a', state: 'free' });
    expect((await api.call('POST', '/pools/lab/machines', { body: { host: 'target-a' } })).status).toBe(409);
    const list = await api.call('GET', '/pools/lab/machines');
    expect(list.body.items).toHaveLength(1);
  });

  it('refuses a host that is not registered, one not reached over SSH, and a bad pool name', async () => {
    expect((await api.call('POST', '/pools/lab/machines', { body: { host: 'ghost' } })).status).toBe(404);
    const ssm = await api.call('POST', '/pools/lab/machines', { body: { host: 'ssm-b' } });
    expect(ssm.status).toBe(400);
    expect(ssm.body.issues[0].path).toBe('host');
    expect((await api.call('POST', '/pools/-lab/machines', { body: { host: 'target-a' } })).status).toBe(400);
  });
});
