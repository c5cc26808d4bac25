import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HostRegistration } from '../../core/host/schema.js';
import { hosts } from '../../functions/shared/runtime.js';
import { useWorkflowStarter, workflows } from '../../functions/shared/workflows.js';
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

  it('refuses paths and process names that a command could misread, naming each and showing it escaped (400)', async () => {
    const res = await api.call('POST', '/hosts', {
      body: {
        ...webA,
        name: 'hostile-paths',
        address: '-oProxyCommand=sh',
        paths: [
          '/srv/fine',
          '/--checkpoint-action=exec=sh',
          'srv/shop',
          '/srv/a\nb',
          '/srv/../root',
          '/srv//x',
          '/srv/\x1b[2J',
        ],
        processes: ['nginx', 'a\nb', ''],
      },
    });
    expect(res.status).toBe(400);
    const byPath = Object.fromEntries(
      res.body.issues.map((i: { path: string; message: string }) => [i.path, i.message]),
    );
    expect(Object.keys(byPath).sort()).toEqual(
      [
        'address',
        'paths[1]',
        'paths[2]',
        'paths[3]',
        'paths[4]',
        'paths[5]',
        'paths[6]',
        'processes[1]',
        'processes[2]',
      ].sort(),
    );
    expect(byPath['paths[1]']).toContain('"/--checkpoint-action=exec=sh" starts with "-"');
    expect(byPath['paths[3]']).toBe('"/srv/a\\nb" contains a control character');
    expect(byPath['paths[5]']).toContain('write "/srv/x"');
    // The escape sequence is shown as text, never sent to a terminal as itself.
    expect(JSON.stringify(res.body)).not.toContain('\\u001b');
    expect((await api.call('GET', '/hosts/hostile-paths')).status).toBe(404);
  });

  it('accepts application paths with spaces, quotes and wildcards, and keeps them as given', async () => {
    const paths = ['/srv/my app', "/srv/it's", '/srv/$(x)', '/srv/*', '/srv/shop/-later'];
    const res = await api.call('POST', '/hosts', {
      body: { ...webA, name: 'odd-paths', paths, processes: ['web app'] },
    });
    expect(res.status).toBe(201);
    expect(res.body.registration.paths).toEqual(paths);
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

describe('POST /hosts/{host}/capture: retries and idempotency keys', () => {
  // Reached over SSH at a closed loopback port with a credential that does not resolve: the
  // capture fails at its first step, which is enough to show that the workflow ran. Saved
  // straight into the registry: what the credential reference looks like is not the point here.
  const register = async (name: string) => {
    const registration = {
      name,
      platform: 'baremetal',
      transport: 'ssh',
      address: '127.0.0.1',
      port: 1,
      user: 'root',
      credentialRef: { provider: 'local', key: `${name}/no-such-key` },
      tags: {},
      paths: [],
      processes: [],
    };
    await hosts().save(registration as unknown as HostRegistration, new Date());
  };
  const ended = async (id: string) => {
    for (let i = 0; i < 400; i++) {
      const op = await api.call('GET', `/operations/${id}`);
      if (op.body.status === 'SUCCEEDED' || op.body.status === 'FAILED') return op.body;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`operation ${id} did not end`);
  };

  it('starts the workflow on a retry with the same key when StartExecution failed the first time', async () => {
    await register('retry-a');
    const real = workflows();
    const starts: string[] = [];
    let faults = 1;
    useWorkflowStarter({
      async start(workflow, input) {
        starts.push(input.operationId);
        if (faults-- > 0) throw new Error('StartExecution: ServiceUnavailable (injected)');
        return real.start(workflow, input);
      },
    });
    try {
      const key = { 'idempotency-key': 'retry-after-fault-1' };
      const first = await api.call('POST', '/hosts/retry-a/capture', { headers: key });
      expect(first.status).toBe(500);
      const [id] = starts;
      expect((await api.call('GET', `/operations/${id}`)).body.status).toBe('PENDING');

      const again = await api.call('POST', '/hosts/retry-a/capture', { headers: key });
      expect(again.status).toBe(202);
      expect(again.body.id).toBe(id);
      expect(again.headers.get('location')).toBe(`/operations/${id}`);
      const op = await ended(id as string);
      expect(op.status).toBe('FAILED');
      expect(op.steps[0]).toMatchObject({ name: 'connect', status: 'FAILED' });

      // Once the workflow is under way, a retry finds the operation and starts nothing.
      const third = await api.call('POST', '/hosts/retry-a/capture', { headers: key });
      expect(third.body).toMatchObject({ id, status: 'FAILED' });
      expect(starts).toEqual([id, id]);
    } finally {
      useWorkflowStarter(real);
    }
  });

  it("refuses the same key sent for another host (422) instead of answering with the first host's operation", async () => {
    await register('scope-a');
    await register('scope-b');
    const key = { 'idempotency-key': 'same-key-twice-1' };
    const a = await api.call('POST', '/hosts/scope-a/capture', { headers: key });
    expect(a.status).toBe(202);
    expect(a.body).toMatchObject({
      host: 'scope-a',
      // The key belongs to its caller: a digest of who sent it sits before the key itself.
      idempotencyKey: expect.stringMatching(
        /^POST \/hosts\/\{host\}\/capture#scope-a#[A-Za-z0-9_-]{22}#same-key-twice-1$/,
      ),
    });
    expect(a.body.requestHash).toMatch(/^[0-9a-f]{64}$/);

    const b = await api.call('POST', '/hosts/scope-b/capture', { headers: key });
    expect(b.status).toBe(422);
    expect(b.headers.get('content-type')).toBe('application/problem+json');
    expect(b.body).toMatchObject({ status: 422, code: 'IDEMPOTENCY_KEY_REUSED' });
    expect(b.body.detail).toMatch(/another host \(scope-a\)/);
    expect(b.body.issues).toEqual([
      { path: 'headers.idempotency-key', message: 'first sent with another host' },
    ]);
    const listed = await api.call('GET', '/operations?kind=capture&host=scope-b&limit=100');
    expect(listed.body.items).toEqual([]);

    // The same key with another body on the same host is refused too; the first request's
    // retry still finds its operation.
    const other = await api.call('POST', '/hosts/scope-a/capture', {
      headers: key,
      body: { acceptNewHostKey: true },
    });
    expect(other.status).toBe(422);
    expect(other.body.issues[0].message).toBe('first sent with another body');
    await ended(a.body.id);
    const repeat = await api.call('POST', '/hosts/scope-a/capture', { headers: key, body: {} });
    expect(repeat.status).toBe(202);
    expect(repeat.body.id).toBe(a.body.id);
  });
});
