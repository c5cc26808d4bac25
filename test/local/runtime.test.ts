// The embedded runtime is not an open door: started for real, it listens on loopback only,
// answers only to its own name, refuses what a web page of another site could send, and keeps
// its data to its owner.
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROUTES } from '../../core/api/routes.js';
import { startLocal } from '../../local/runtime.js';
import { startTestPersona, type TestPersona } from '../support/local.js';

let api: TestPersona;
let port: number;

const registration = {
  name: 'door',
  platform: 'baremetal',
  transport: 'ssh',
  address: '10.0.0.9',
  credentialRef: { provider: 'aws-secretsmanager', secretId: 'persona/ssh/door' },
};

/** A raw HTTP request, with headers fetch would not let us set (Host) or would add (none). */
function raw(
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: string,
  to = port,
): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: to, method, path, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        text += d;
      });
      res.on('end', () => {
        let parsed: unknown;
        try {
          parsed = text ? JSON.parse(text) : undefined;
        } catch {
          parsed = text;
        }
        resolve({ status: res.statusCode ?? 0, body: parsed });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

const portOf = (url: string) => Number(new URL(url).port);

beforeAll(async () => {
  api = await startTestPersona();
  port = portOf(api.url);
});

afterAll(async () => {
  await api?.stop();
});

describe('listening', () => {
  it('has the API, DynamoDB Local and the S3-protocol server listening on 127.0.0.1 only', () => {
    const listening = execFileSync('ss', ['-ltnH'], { encoding: 'utf8' })
      .split('\n')
      .map((line) => line.trim().split(/\s+/)[3])
      .filter((local): local is string => local !== undefined);
    for (const [what, url] of [
      ['API', api.url],
      ['DynamoDB Local', api.dynamoEndpoint],
      ['S3-protocol server', api.s3Endpoint],
    ] as const) {
      const ours = listening.filter((local) => local.endsWith(`:${portOf(url)}`));
      expect(ours, what).not.toEqual([]);
      for (const local of ours) expect(local, what).toMatch(/^(127\.0\.0\.1|\[::ffff:127\.0\.0\.1\]):\d+$/);
    }
  });

  it('refuses to listen on an address that is not loopback', async () => {
    for (const host of ['0.0.0.0', '::', '10.0.0.1']) {
      await expect(startLocal({ host, port: 0, dataDir: join(api.dataDir, 'never') })).rejects.toThrow(
        /listens on loopback only/,
      );
    }
  });
});

describe('the Host header', () => {
  it('answers to its own names', async () => {
    for (const name of [`127.0.0.1:${port}`, `localhost:${port}`, `LOCALHOST:${port}`]) {
      expect((await raw('GET', '/openapi.json', { host: name })).status, name).toBe(200);
    }
  });

  it('refuses any other name with 421, as a page that rebinds its own name to 127.0.0.1 would send', async () => {
    for (const name of [`evil.example:${port}`, 'evil.example', `127.0.0.1:${port + 1}`, '127.0.0.1']) {
      const res = await raw('GET', '/profiles', { host: name });
      expect(res.status, JSON.stringify(name)).toBe(421);
    }
    const write = await raw(
      'POST',
      '/hosts',
      { host: `rebound.example:${port}`, 'content-type': 'application/json' },
      JSON.stringify({ ...registration, name: 'rebound' }),
    );
    expect(write.status).toBe(421);
    expect((await api.call('GET', '/hosts/rebound')).status).toBe(404);
  });
});

describe('the stand-ins', () => {
  it('answer only to their own name: a rebound page cannot use their public credentials', async () => {
    const listTables = {
      'content-type': 'application/x-amz-json-1.0',
      'x-amz-target': 'DynamoDB_20120810.ListTables',
    };
    for (const [what, url, path, headers] of [
      ['DynamoDB Local', api.dynamoEndpoint, '/', listTables],
      ['S3-protocol server', api.s3Endpoint, '/persona-data', {}],
    ] as const) {
      const to = portOf(url);
      const foreign = await raw('POST', path, { ...headers, host: `evil.example:${to}` }, '{}', to);
      expect(foreign.status, what).toBe(421);
      const own = await raw('POST', path, { ...headers, host: `127.0.0.1:${to}` }, '{}', to);
      // Unsigned, so refused, but by the service itself: the name was accepted.
      expect(own.status, what).not.toBe(421);
    }
  });
});

describe('requests from web pages', () => {
  it('refuses a request whose Origin is another site with 403, and writes nothing', async () => {
    for (const origin of [
      'https://evil.example',
      'null',
      `http://127.0.0.1:${port + 1}`,
      `https://127.0.0.1:${port}`,
    ]) {
      const res = await api.call('POST', '/hosts', {
        body: { ...registration, name: 'from-page' },
        headers: { origin },
      });
      expect(res.status, origin).toBe(403);
    }
    expect((await api.call('GET', '/hosts/from-page')).status).toBe(404);
  });

  it('accepts its own origin', async () => {
    const res = await api.call('GET', '/openapi.json', { headers: { origin: `http://127.0.0.1:${port}` } });
    expect(res.status).toBe(200);
  });

  it('refuses text/plain, form and untyped bodies with 415 on every route that takes a body', async () => {
    const json = JSON.stringify({ ...registration, name: 'simple-request' });
    const simple: Record<string, string>[] = [
      { 'content-type': 'text/plain;charset=UTF-8' },
      { 'content-type': 'application/x-www-form-urlencoded' },
      { 'content-type': 'multipart/form-data; boundary=x' },
      {},
      { 'content-type': 'application/json; charset=iso-8859-1' },
    ];
    const writes = ROUTES.filter((r) => r.method === 'POST' || r.method === 'PUT');
    expect(writes.length).toBeGreaterThanOrEqual(4);
    for (const route of writes) {
      const path = route.path
        .replace('{name}', 'web')
        .replace('{host}', 'door')
        .replace('{id}', '00000000-0000-4000-8000-000000000000')
        .replace('{pool}', 'pool-a');
      for (const headers of simple) {
        const res = await raw(
          route.method,
          path,
          { host: `127.0.0.1:${port}`, 'if-match': '"0"', ...headers },
          json,
        );
        // An agent route refuses a caller without an agent credential before reading anything,
        // as API Gateway's authoriser does; a page has no such credential to send.
        const agent = 'auth' in route && route.auth === 'agent';
        expect(res.status, `${route.method} ${path} ${JSON.stringify(headers)}`).toBe(agent ? 401 : 415);
        expect(res.body).toMatchObject({ code: agent ? 'UNAUTHORIZED' : 'UNSUPPORTED_MEDIA_TYPE' });
      }
    }
    expect((await api.call('GET', '/hosts/simple-request')).status).toBe(404);
  });

  it('does not start a capture for a text/plain request, the request a page could send', async () => {
    await api.call('POST', '/hosts', { body: registration });
    const res = await raw(
      'POST',
      '/hosts/door/capture',
      { host: `127.0.0.1:${port}`, 'content-type': 'text/plain', 'idempotency-key': 'page-sent-capture-1' },
      '{}',
    );
    expect(res.status).toBe(415);
    expect((await api.call('GET', '/operations/page-sent-capture-1')).status).toBe(404);
  });

  it('accepts JSON and YAML bodies, with or without a UTF-8 charset', async () => {
    const yaml = `name: yaml-host\nplatform: baremetal\ntransport: ssh\naddress: 10.0.0.8\ncredentialRef: { provider: aws-secretsmanager, secretId: persona/ssh/yaml-host }\n`;
    for (const [type, body] of [
      ['application/json; charset=utf-8', JSON.stringify({ ...registration, name: 'json-host' })],
      ['application/yaml', yaml],
      ['text/yaml; charset="UTF-8"', yaml],
    ] as const) {
      const res = await raw('POST', '/hosts', { host: `127.0.0.1:${port}`, 'content-type': type }, body);
      expect([200, 201], type).toContain(res.status);
    }
  });
});

describe('data files', () => {
  it('keeps the data folder, its stand-ins folders and the endpoints file to their owner', () => {
    const mode = (p: string) => statSync(p).mode & 0o777;
    expect(mode(api.dataDir)).toBe(0o700);
    expect(mode(join(api.dataDir, 's3'))).toBe(0o700);
    expect(mode(join(api.dataDir, 'dynamodb'))).toBe(0o700);
    expect(mode(join(api.dataDir, 'endpoints.json'))).toBe(0o600);
    const databases = readdirSync(join(api.dataDir, 'dynamodb'));
    expect(databases.length).toBeGreaterThan(0);
    for (const db of databases) expect(mode(join(api.dataDir, 'dynamodb', db)), db).toBe(0o600);
  });
});
