import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestPersona, type TestPersona } from '../support/local.js';

let api: TestPersona;

beforeAll(async () => {
  api = await startTestPersona();
});

afterAll(async () => {
  await api?.stop();
});

const webA = {
  name: 'web-a',
  platform: 'baremetal',
  transport: 'ssh',
  address: '10.0.0.2',
  credentialRef: { provider: 'aws-secretsmanager', secretId: 'persona/ssh/web-a' },
  tags: { role: 'web' },
  paths: ['/srv/shop'],
};

describe('POST /hosts', () => {
  it('registers a host with defaults filled, and answers a repeat with 200', async () => {
    const res = await api.call('POST', '/hosts', { body: webA });
    expect(res.status).toBe(201);
    expect(res.headers.get('location')).toBe('/hosts/web-a');
    expect(res.body.registration).toMatchObject({ name: 'web-a', port: 22, user: 'root', processes: [] });
    const again = await api.call('POST', '/hosts', { body: webA });
    expect(again.status).toBe(200);
  });

  it('refuses to re-register a host with other settings (409)', async () => {
    await api.call('POST', '/hosts', { body: { ...webA, name: 'web-b' } });
    const res = await api.call('POST', '/hosts', { body: { ...webA, name: 'web-b', address: '10.0.0.3' } });
    expect(res.status).toBe(409);
  });

  it('names every missing or bad field (400)', async () => {
    const res = await api.call('POST', '/hosts', {
      body: { name: 'Bad Name', platform: 'mainframe', transport: 'ssh', password: 'x' },
    });
    expect(res.status).toBe(400);
    const paths = res.body.issues.map((i: { path: string }) => i.path);
    expect(paths).toEqual(expect.arrayContaining(['name', 'platform', 'password']));
    const ssm = await api.call('POST', '/hosts', {
      body: { name: 'vm-1', platform: 'aws', transport: 'ssm' },
    });
    expect(ssm.body.issues).toEqual([expect.objectContaining({ path: 'instanceId' })]);
  });
});

describe('reading hosts and operations', () => {
  it('lists and gets registered hosts', async () => {
    await api.call('POST', '/hosts', { body: { ...webA, name: 'lister' } });
    const list = await api.call('GET', '/hosts?limit=100');
    expect(list.status).toBe(200);
    expect(list.body.items.map((h: { registration: { name: string } }) => h.registration.name)).toContain(
      'lister',
    );
    const one = await api.call('GET', '/hosts/lister');
    expect(one.body.registration.paths).toEqual(['/srv/shop']);
    expect((await api.call('GET', '/hosts/nobody')).status).toBe(404);
  });

  it('answers 404 for an unknown operation and 400 for a malformed id', async () => {
    expect((await api.call('GET', '/operations/0123456789abcdef')).status).toBe(404);
    const bad = await api.call('GET', '/operations/x');
    expect(bad.status).toBe(400);
    expect(bad.body.issues[0].path).toBe('params.id');
  });
});
